//! `keel show <run>`: the timeline.

use anyhow::Result;
use keel_engine::Event;

use super::load;
use crate::args::ShowArgs;
use crate::backend::Backend;
use crate::commands::Ctx;
use crate::ui::timeline::{self, Outputs};

/// Prints the run's timeline (or its JSON).
pub async fn show(ctx: &Ctx, args: ShowArgs) -> Result<u8> {
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        let (events, state) = load(&backend, run).await?;
        let mut outputs = Outputs::new();
        for (seq, stamped) in &events {
            if let Event::ToolFinished { output, .. } = &stamped.event {
                outputs.insert(*seq, backend.text(output).await?);
            }
        }
        if args.json {
            let started = state.started();
            let value = serde_json::json!({
                "id": run.to_string(),
                "agent": started.map(|s| s.agent.id.clone()),
                "model": started.map(|s| s.agent.model.clone()),
                "status": state.status().as_str(),
                "turns": state.responses(),
                "usage": state.usage(),
                "input": started.map(|s| s.input.clone()),
                "events": events
                    .iter()
                    .map(|(seq, e)| timeline::event_json(*seq, e, outputs.get(seq)))
                    .collect::<Vec<_>>(),
            });
            println!("{}", crate::ui::json_pretty(&value));
        } else {
            print!("{}", timeline::render(run, &events, &outputs));
        }
        Ok(0)
    }
    .await;
    backend.close().await;
    result
}
