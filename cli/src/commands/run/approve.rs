//! `keel approve <run> [--step KEY] [--deny] [--always | --always-prefix] [--note TEXT]
//! [--answer JSON]`: answer a waiting run from another terminal, durably.

use anyhow::{Result, bail};
use keel_engine::{Decision, StepKey};

use super::load;
use crate::api::DecisionBody;
use crate::args::ApproveArgs;
use crate::backend::Backend;
use crate::commands::{Ctx, who};
use crate::config::provider_env;

/// Records the decision; the store's owner continues the run if it can.
pub async fn approve(ctx: &Ctx, args: ApproveArgs) -> Result<u8> {
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        let (_, state) = load(&backend, run).await?;
        let waiting = state.waiting();
        // A named step the run does not wait at is refused by the engine, which says
        // why (already answered, or unknown).
        let step = match &args.step {
            Some(key) => StepKey::from(key.as_str()),
            None => match waiting.as_slice() {
                [(s, _)] => (*s).clone(),
                [] => bail!("run {run} is not waiting for anyone ({})", state.status()),
                many => bail!(
                    "run {run} waits at several steps ({}); name one with --step",
                    many.iter()
                        .map(|(s, _)| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        };
        let mut decision = if args.deny {
            Decision::deny()
        } else if let Some(answer) = &args.answer {
            let value = serde_json::from_str::<serde_json::Value>(answer)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| serde_json::json!({ "answer": answer }));
            Decision::answer(value)
        } else {
            Decision::approve()
        };
        if args.always {
            decision = decision.always();
        }
        if args.always_prefix {
            let form = waiting
                .iter()
                .find(|(s, _)| **s == step)
                .and_then(|(_, call)| call.form.clone());
            let (rule, words) = match form.as_deref().map(|f| &f.context) {
                Some(keel_tools::FormContext::Command { command, cwd, .. }) => {
                    keel_tools::sandbox::exec_always_choices(command, cwd)
                        .into_iter()
                        .nth(1)
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "step {step} has no broader rule to offer (only one simple command without redirections or substitutions has one); use --always for exactly this command"
                            )
                        })?
                }
                _ => bail!("--always-prefix is for a waiting command; use --always"),
            };
            eprintln!("keel: from now on in this run, allowing {words}");
            decision = decision.always_as(rule);
        }
        if let Some(note) = &args.note {
            decision = decision.with_note(note.clone());
        }
        decision = decision.by(format!("{} (keel approve)", who()));
        // The owner continues the run when it can have the run's agent (rebuilt from
        // the definition the run recorded; for older runs, the configuration's);
        // answering needs no key, no workspace and no agent.
        let env = provider_env();
        let remote = matches!(backend, Backend::Remote(_));
        let spec = match (remote, state.definition()) {
            (true, None) => state
                .started()
                .and_then(|s| ctx.agents().ok()?.get(&s.agent.id).ok())
                .filter(|spec| spec.build(&env).is_ok()),
            _ => None,
        };
        let continue_run = remote;
        let body = DecisionBody {
            step: step.clone(),
            decision,
            continue_run,
            agent: spec,
            env,
        };
        let continued = backend.decide(run, body).await?;
        let verdict = if args.deny { "denied" } else { "approved" };
        if continued {
            eprintln!("keel: {verdict} step {step} of run {run}; the run continues in the process that owns the store");
        } else {
            eprintln!("keel: {verdict} step {step} of run {run} (recorded); continue the run with `keel resume {run}`");
        }
        Ok(0)
    }
    .await;
    backend.close().await;
    result
}
