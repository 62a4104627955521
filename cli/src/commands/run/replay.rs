//! `keel replay <run> [--against keel.toml]`: rebuild the run from its log with the
//! replay executor — calling no LLM and no tool — and check it is deterministic:
//! against the definition the run recorded (nothing outside the store is needed),
//! or against an agent as a configuration file defines it now.

use anyhow::Result;
use keel_engine::{check_events, check_recorded_events};

use super::{agent_of, load};
use crate::args::ReplayArgs;
use crate::backend::Backend;
use crate::commands::Ctx;
use crate::config::Agents;

/// The exit status when the run is not deterministic.
pub const NON_DETERMINISTIC: u8 = 4;

/// Replays the run and reports; exits 4 on a mismatch, showing both sides.
pub async fn replay(ctx: &Ctx, args: ReplayArgs) -> Result<u8> {
    let against = match &args.against {
        Some(path) => Some(Agents::load(Some(path)).map_err(crate::usage)?),
        None => None,
    };
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        let (events, state) = load(&backend, run).await?;
        let (report, what) = match &against {
            Some(agents) => {
                let spec = agent_of(agents, &state)?;
                let agent = spec.build_offline().map_err(crate::usage)?;
                let what = format!(
                    "the definition of agent `{}` in {}",
                    agent.id(),
                    args.against.as_deref().unwrap_or_else(|| "".as_ref()).display()
                );
                (check_events(run, &events, &agent)?, what)
            }
            None => {
                let id = state.agent().map(|a| a.id.clone()).unwrap_or_default();
                let what = format!("the definition of agent `{id}` it recorded");
                (check_recorded_events(run, &events)?, what)
            }
        };
        match report.verdict {
            Ok(()) => {
                println!(
                    "run {run}: deterministic. Replayed {} events and {} LLM responses from the log against {what}; no LLM or tool was called. Status: {}.",
                    report.events, report.turns, report.status
                );
                Ok(0)
            }
            Err(nd) => {
                println!("run {run}: NOT deterministic against {what}.");
                println!("{}", crate::ui::safe(&nd.to_string()));
                println!(
                    "The log was recorded with another definition (or another Keel). Fork the run from before seq {} to continue under this one.",
                    nd.seq
                );
                Ok(NON_DETERMINISTIC)
            }
        }
    }
    .await;
    backend.close().await;
    result
}
