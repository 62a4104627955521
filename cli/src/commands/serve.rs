//! `keel serve`: own the store and serve its control socket until Ctrl-C, resuming
//! the interrupted runs of the configured agents.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use keel_engine::Agent;

use crate::backend::Backend;
use crate::commands::Ctx;
use crate::config::{Agents, provider_env};
use crate::owner::Local;

/// Serves until Ctrl-C.
pub async fn serve(ctx: &Ctx) -> Result<u8> {
    let agents = ctx.agents()?;
    let backend = Backend::connect(&ctx.store).await?;
    let Backend::Local(local) = &backend else {
        bail!(
            "the store {} is already served by another process",
            ctx.store.display()
        );
    };
    take_over(local, &agents, &provider_env(), "serving", &ctx.store).await?;
    eprintln!("keel: Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    backend.stop().await;
    Ok(130)
}

/// Registers the configured agents with the owner (saying which cannot be built
/// here) and resumes the runs a crash or shutdown interrupted. Returns the agents
/// built.
pub async fn take_over(
    local: &Local,
    agents: &Agents,
    env: &BTreeMap<String, String>,
    doing: &str,
    store: &Path,
) -> Result<Vec<Agent>> {
    let mut built = Vec::new();
    for spec in agents.all() {
        match local.owner().register(spec, env) {
            Ok(agent) => built.push(agent),
            Err(e) => eprintln!("keel: agent `{}` is not available here: {e}", spec.id),
        }
    }
    let report = local.owner().keel().recover().await?;
    eprintln!(
        "keel: {doing} {} ({} runs resumed, {} waiting for people, {} could not resume)",
        store.display(),
        report.resumed.len(),
        report.waiting.len(),
        report.failed.len()
    );
    for (run, e) in &report.failed {
        eprintln!("keel: run {run} was not resumed: {e}");
    }
    Ok(built)
}
