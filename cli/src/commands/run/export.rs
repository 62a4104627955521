//! `keel export <run>`: the whole log as JSON.

use anyhow::Result;
use keel_engine::Event;

use super::load;
use crate::args::RunRef;
use crate::backend::Backend;
use crate::commands::Ctx;
use crate::ui::timeline;

/// Prints the run's log as a JSON array of events, tool outputs included.
pub async fn export(ctx: &Ctx, args: RunRef) -> Result<u8> {
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run).await?;
        let (events, _) = load(&backend, run).await?;
        let mut out = Vec::with_capacity(events.len());
        for (seq, stamped) in &events {
            let output = match &stamped.event {
                Event::ToolFinished { output, .. } => Some(backend.text(output).await?),
                _ => None,
            };
            out.push(timeline::event_json(*seq, stamped, output.as_ref()));
        }
        println!("{}", crate::ui::json_pretty(&out));
        Ok(0)
    }
    .await;
    backend.close().await;
    result
}
