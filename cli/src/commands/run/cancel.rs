//! `keel cancel <run>`.

use anyhow::Result;

use crate::args::CancelArgs;
use crate::backend::Backend;
use crate::commands::Ctx;

/// Cancels the run, durably.
pub async fn cancel(ctx: &Ctx, args: CancelArgs) -> Result<u8> {
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        backend.cancel(run, &args.reason).await?;
        eprintln!("keel: cancelled run {run}");
        Ok(0)
    }
    .await;
    backend.close().await;
    result
}
