//! `keel resume <run> [--adopt]`: continue an unfinished run — after a crash, or
//! after approvals — prompting (or `--approve-all`) as `keel run` does.
//!
//! The run continues with the definition it recorded when it started, from any
//! directory, with no flags: a changed `keel.toml` applies only when the person
//! adopts it (`--adopt`, recorded in the run). Runs recorded before runs carried
//! their definition continue as before: with the configuration and the flags given.

use anyhow::{Result, bail};
use keel_storage::Seq;

use super::drive::{Session, drive};
use super::{agent_of, load};
use crate::api::AgentBody;
use crate::args::ResumeArgs;
use crate::backend::Backend;
use crate::commands::{Ctx, who};
use crate::config::{AgentSpec, provider_env};

/// Continues the run and drives it at this terminal.
pub async fn resume(ctx: &Ctx, args: ResumeArgs) -> Result<u8> {
    let overrides = args.provider.absolute()?;
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
        let env = provider_env();
        let id = state.agent().map(|a| a.id.clone()).unwrap_or_default();
        // What the run continues with: (the spec to check here, a spec to adopt,
        // the spec to send for a run without a recorded definition).
        let (check, adopt, legacy) = match state.definition() {
            Some(definition) => {
                let recorded = AgentSpec::from_definition(definition).map_err(crate::usage)?;
                if args.adopt {
                    let new = ctx
                        .agents()?
                        .get(&id)
                        .map_err(crate::usage)?
                        .with_overrides(&overrides)
                        .map_err(crate::usage)?;
                    if new == recorded {
                        eprintln!("keel: the definition to adopt is the one run {run} has; nothing to record");
                        (recorded, None, None)
                    } else {
                        eprintln!("keel: adopting agent `{id}` as the configuration defines it now for run {run} (recorded in the run)");
                        (new.clone(), Some(new), None)
                    }
                } else {
                    if overrides.any() {
                        bail!(crate::usage(anyhow::anyhow!(
                            "run {run} continues with the definition it recorded; to change it, add --adopt (the change is recorded in the run)"
                        )));
                    }
                    let current = ctx.agents().ok().and_then(|a| a.get(&id).ok());
                    if current.is_some_and(|c| c != recorded) {
                        eprintln!(
                            "keel: continuing run {run} with the definition it recorded; `{id}` in keel.toml (or the built-in) differs — adopt it with `keel resume {run} --adopt`"
                        );
                    }
                    (recorded, None, None)
                }
            }
            None => {
                eprintln!(
                    "keel: run {run} was recorded before runs carried their definition; continuing with agent `{id}` as keel.toml (or the built-in definition) and the flags given declare it"
                );
                let spec = agent_of(&ctx.agents()?, &state)?
                    .with_overrides(&overrides)
                    .map_err(crate::usage)?;
                (spec.clone(), None, Some(spec))
            }
        };
        // Fail fast, here, on what the person must fix (a missing key, a workspace gone).
        check.build(&env).map_err(crate::usage)?;
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
        if state.waiting().is_empty() || adopt.is_some() {
            let body = AgentBody {
                agent: legacy.clone(),
                adopt,
                by: who(),
                env: env.clone(),
            };
            backend.continue_run(run, body).await?;
        }
        let session = Session {
            dir: ctx.store.clone(),
            isolation: check.tools.isolation.clone(),
            spec: legacy,
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
