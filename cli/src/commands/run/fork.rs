//! `keel fork <run> --at <seq>`.

use anyhow::Result;
use keel_storage::Seq;

use super::{agent_of, load};
use crate::api::ForkBody;
use crate::args::ForkArgs;
use crate::backend::Backend;
use crate::commands::Ctx;
use crate::config::provider_env;

/// Creates the fork and prints its id; `keel resume` continues it.
pub async fn fork(ctx: &Ctx, args: ForkArgs) -> Result<u8> {
    let agents = ctx.agents()?;
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        let (_, state) = load(&backend, run).await?;
        let spec = agent_of(&agents, &state)?;
        let body = ForkBody {
            at: Seq(args.at),
            agent: spec,
            env: provider_env(),
            start: false,
        };
        let fork = backend.fork(run, body).await?;
        println!("{fork}");
        eprintln!(
            "keel: forked run {run} at seq {} as {fork}; continue it with `keel resume {fork}`",
            args.at
        );
        Ok(0)
    }
    .await;
    backend.close().await;
    result
}
