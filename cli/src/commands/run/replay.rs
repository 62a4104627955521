//! `keel replay <run>`: rebuild the run from its log with the replay executor —
//! calling no LLM and no tool — and check it is deterministic under the current
//! agent definition.

use anyhow::Result;
use keel_engine::check_events;

use super::{agent_of, load};
use crate::args::RunRef;
use crate::backend::Backend;
use crate::commands::Ctx;

/// The exit status when the run is not deterministic.
pub const NON_DETERMINISTIC: u8 = 4;

/// Replays the run and reports; exits 4 on a mismatch, showing both sides.
pub async fn replay(ctx: &Ctx, args: RunRef) -> Result<u8> {
    let agents = ctx.agents()?;
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run).await?;
        let (events, state) = load(&backend, run).await?;
        let spec = agent_of(&agents, &state)?;
        let agent = spec.build_offline().map_err(crate::usage)?;
        let report = check_events(run, &events, &agent)?;
        match report.verdict {
            Ok(()) => {
                println!(
                    "run {run}: deterministic. Replayed {} events and {} LLM responses from the log under the current definition of agent `{}`; no LLM or tool was called. Status: {}.",
                    report.events,
                    report.turns,
                    agent.id(),
                    report.status
                );
                Ok(0)
            }
            Err(nd) => {
                println!("run {run}: NOT deterministic under the current definition of agent `{}`.", agent.id());
                println!("{}", crate::ui::safe(&nd.to_string()));
                println!(
                    "The log was recorded with another definition (or another Keel). Restore it to resume this run, or fork the run from before seq {} to continue under the new one.",
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
