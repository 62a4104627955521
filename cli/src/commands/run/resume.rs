//! `keel resume <run>`: continue an unfinished run — after a crash, or after
//! approvals — prompting (or `--approve-all`) as `keel run` does.

use anyhow::Result;
use keel_storage::Seq;

use super::drive::{Session, drive};
use super::{agent_of, load};
use crate::api::AgentBody;
use crate::args::ResumeArgs;
use crate::backend::Backend;
use crate::commands::Ctx;
use crate::config::provider_env;

/// Continues the run and drives it at this terminal.
pub async fn resume(ctx: &Ctx, args: ResumeArgs) -> Result<u8> {
    let agents = ctx.agents()?;
    let mut backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        let (events, state) = load(&backend, run).await?;
        if let Some(end) = state.end() {
            eprintln!(
                "keel: run {run} already ended ({}); nothing to resume",
                state.status()
            );
            return Ok(u8::from(!matches!(
                end,
                keel_engine::RunEnd::Completed { .. }
            )));
        }
        let spec = agent_of(&agents, &state)?
            .with_overrides(&args.provider)
            .map_err(crate::usage)?;
        let env = provider_env();
        spec.build(&env).map_err(crate::usage)?;
        // Show the waits already pending, so they are answered here.
        let waiting_since = events
            .iter()
            .rev()
            .find(|(_, e)| matches!(e.event, keel_engine::Event::ApprovalRequested { .. }))
            .map(|(s, _)| *s);
        let from = match waiting_since {
            Some(seq) if !state.waiting().is_empty() => seq,
            _ => Seq(events.len() as u64),
        };
        if state.waiting().is_empty() {
            let body = AgentBody {
                agent: spec.clone(),
                env: env.clone(),
            };
            backend.continue_run(run, body).await?;
        }
        let session = Session {
            dir: ctx.store.clone(),
            spec,
            env,
            drive: args.drive,
        };
        drive(&mut backend, run, from, &session).await
    }
    .await;
    if matches!(result, Ok(130)) {
        backend.stop().await;
    } else {
        backend.close().await;
    }
    result
}
