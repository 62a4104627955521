//! `keel serve`: own the store and serve its control socket until Ctrl-C, resuming
//! the interrupted runs of the configured agents.

use anyhow::{Result, bail};

use crate::backend::Backend;
use crate::commands::Ctx;
use crate::config::provider_env;

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
    let env = provider_env();
    for spec in agents.all() {
        if let Err(e) = local.owner().register(spec, &env) {
            eprintln!("keel: agent `{}` is not available here: {e}", spec.id);
        }
    }
    let report = local.owner().keel().recover().await?;
    eprintln!(
        "keel: serving {} ({} runs resumed, {} waiting for people, {} could not resume); Ctrl-C to stop",
        ctx.store.display(),
        report.resumed.len(),
        report.waiting.len(),
        report.failed.len()
    );
    for (run, e) in &report.failed {
        eprintln!("keel: run {run} was not resumed: {e}");
    }
    let _ = tokio::signal::ctrl_c().await;
    backend.stop().await;
    Ok(130)
}
