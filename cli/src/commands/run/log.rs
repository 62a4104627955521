//! `keel log <run> [--follow]`.

use anyhow::Result;
use futures::StreamExt;
use keel_engine::Event;
use keel_storage::Seq;

use super::load;
use crate::args::LogArgs;
use crate::backend::Backend;
use crate::client::ClientError;
use crate::commands::Ctx;
use crate::ui::live::Live;
use crate::ui::timeline::{self, Outputs};

/// Prints the run's events; with `--follow`, live until the run ends — also when
/// another process executes it.
pub async fn log(ctx: &Ctx, args: LogArgs) -> Result<u8> {
    let mut backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend.resolve(&args.run.run).await?;
        if !args.follow {
            let (events, _) = load(&backend, run).await?;
            let mut outputs = Outputs::new();
            for (seq, stamped) in &events {
                if let Event::ToolFinished { output, .. } = &stamped.event {
                    outputs.insert(*seq, backend.text(output).await?);
                }
            }
            if args.json {
                for (seq, e) in &events {
                    let value = timeline::event_json(*seq, e, outputs.get(seq));
                    println!("{}", crate::ui::json_line(&value));
                }
            } else {
                print!("{}", timeline::render(run, &events, &outputs));
            }
            return Ok(0);
        }
        let mut live = Live::new(args.json);
        let mut from = Seq::ZERO;
        loop {
            let mut stream = backend.events(run, from);
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    _ = tokio::signal::ctrl_c() => return Ok(130),
                };
                match next {
                    Some(Ok(event)) => {
                        if let Some(seq) = event.seq() {
                            from = seq.next();
                        }
                        live.event(&event);
                        if event.is_terminal() {
                            return Ok(u8::from(!matches!(
                                event,
                                keel_engine::RunEvent::RunCompleted { .. }
                            )));
                        }
                    }
                    None | Some(Err(ClientError::Gone(_))) => break,
                    Some(Err(ClientError::Api(e))) => return Err(e.into()),
                }
            }
            // The owner went away; follow through whoever owns the store next.
            drop(stream);
            backend = Backend::connect(&ctx.store).await?;
        }
    }
    .await;
    backend.close().await;
    result
}
