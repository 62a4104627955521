//! History grows with new content, not with the square of the conversation.

use keel_engine::{Event, Keel, RunOutcome, Text};
use keel_storage::{EventStore, MemoryStore, Seq};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_200_turn_run_stores_little_more_than_its_new_content() {
    let turns = 200;
    let mut script: Vec<TurnScript> = (0..turns)
        .map(|i| {
            call(
                &format!("step {i}"),
                &[("look", json!({"key": format!("k{i}"), "size": 2048}))],
            )
        })
        .collect();
    script.push(say("finished"));
    let effects = Effects::default();
    let provider = Scripted::new(script);
    let agent = keel_engine::Agent::builder("historian")
        .provider(provider)
        .model("m")
        .tool(Look(effects))
        .build();
    let store = MemoryStore::new();
    let keel = Keel::new(store.clone());
    let input = "read everything";
    let run = keel.invoke(&agent, input).await.unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));

    let records = store.read(run.id(), Seq::ZERO).await.unwrap();
    let stored: usize = records.iter().map(|r| r.bytes.len()).sum();
    // New content: the input, what the model said (text, tool names and arguments)
    // and what the tools returned.
    let mut new_content = input.len();
    for (_, stamped) in keel.read_events(run.id()).await.unwrap() {
        match &stamped.event {
            Event::LlmResponded { response, .. } => {
                new_content += response.text().len();
                for (_, name, args) in response.tool_uses() {
                    new_content += name.len() + args.to_text().len();
                }
            }
            Event::ToolFinished { output, .. } => {
                new_content += match output {
                    Text::Inline(s) => s.len(),
                    Text::Blob { len, .. } => *len as usize,
                }
            }
            _ => {}
        }
    }
    let ratio = stored as f64 / new_content as f64;
    eprintln!(
        "history: {} events, {stored} bytes stored for {new_content} bytes of new content: {ratio:.3}x",
        records.len()
    );
    assert!(new_content > turns * 2048);
    assert!(ratio < 1.2, "stored {ratio:.3}x the new content");
}
