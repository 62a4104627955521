//! `keel fork <run> --at <seq> [--model M --provider P --base-url U --script F
//! --workspace W --system-prompt T]`: a new run from the first events of another,
//! with the definition the run had recorded at that point — plus any overrides,
//! which the fork records.

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
    let overrides = args.provider.absolute()?;
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        let (_, state) = load(&backend, run).await?;
        // Runs recorded before runs carried their definition fork with the agent
        // the configuration declares now (and the overrides).
        let agent = if state.started().is_some_and(|s| s.definition.is_none()) {
            eprintln!(
                "keel: run {run} was recorded before runs carried their definition; the fork uses agent `{}` as keel.toml (or the built-in definition) declares it",
                state.agent().map(|a| a.id.as_str()).unwrap_or("")
            );
            Some(
                agent_of(&ctx.agents()?, &state)?
                    .with_overrides(&overrides)
                    .map_err(crate::usage)?,
            )
        } else {
            None
        };
        let body = ForkBody {
            at: Seq(args.at),
            agent,
            overrides,
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
