//! Writes realistic runs straight into a store, in large batches: a coding agent's
//! turns (request, response with a tool call, tool start and finish) with usage and
//! times. For paging tests, the benchmark and the browser tests; the logs are what
//! the engine records, but written without calling a model (request digests are not
//! those a replay would compute).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use keel_engine::{
    AgentSnapshot, CallId, Digest, Event, FinishKind, RunStarted, Stamped, Text, Turn, encode,
};
use keel_providers::{ContentBlock, Json, Response, StopReason, Usage};
use keel_storage::{Batch, EventStore, RunId, RunStatus, RunSummary, Seq, Timestamp};

/// The agent every generated run records.
pub fn snapshot(agent: &str) -> AgentSnapshot {
    AgentSnapshot {
        id: agent.to_owned(),
        provider: "anthropic".to_owned(),
        model: "claude-sonnet-4-5".to_owned(),
        system_prompt: "You are a coding agent with access to the local filesystem.".to_owned(),
        tools: vec!["exec".to_owned(), "read".to_owned()],
        tools_digest: "0".repeat(64),
        max_tokens: 4096,
        stop_conditions: vec![],
        fingerprint: "0".repeat(64),
        recovery: vec![],
    }
}

/// The events of a completed run with `turns` tool-calling turns (4 events each)
/// plus its start, a final answer and its end: `4 * turns + 4` events.
pub fn events(agent: &str, input: &str, turns: u32, start_ms: u64) -> Vec<Stamped> {
    let mut at = start_ms;
    let mut out = Vec::new();
    let mut push = |event: Event, step: u64| {
        at += step;
        out.push(Stamped {
            at: Timestamp(at),
            event,
        });
    };
    push(
        Event::RunStarted(Box::new(RunStarted {
            agent: snapshot(agent),
            input: input.to_owned(),
            parent: None,
            definition: None,
            digest_scheme: Default::default(),
        })),
        0,
    );
    let usage = Usage {
        input_tokens: 1200,
        output_tokens: 80,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
    };
    for t in 0..=turns {
        push(
            Event::LlmRequested {
                turn: Turn(t),
                request_digest: Digest([t as u8; 32]),
            },
            3,
        );
        let last = t == turns;
        let mut content = vec![ContentBlock::Text {
            text: if last {
                "All done: the tests pass.".to_owned()
            } else {
                format!("Step {t}: I run the tests again.")
            },
        }];
        if !last {
            content.push(ContentBlock::ToolUse {
                id: format!("toolu_{t}"),
                name: "exec".to_owned(),
                input: Json(serde_json::json!({ "command": format!("cargo test --test t{t}") })),
            });
        }
        push(
            Event::LlmResponded {
                turn: Turn(t),
                response: Box::new(Response {
                    id: format!("msg_{t}"),
                    model: "claude-sonnet-4-5".to_owned(),
                    content,
                    stop_reason: if last {
                        StopReason::EndTurn
                    } else {
                        StopReason::ToolUse
                    },
                    usage,
                }),
                latency_ms: 700,
            },
            700,
        );
        if last {
            break;
        }
        let call = CallId::new(Turn(t), 0);
        push(Event::ToolStarted { call, attempt: 1 }, 2);
        push(
            Event::ToolFinished {
                call,
                output: Text::Inline(format!(
                    "running 12 tests\ntest result: ok. 12 passed (turn {t})"
                )),
                is_error: t % 97 == 13,
                kind: FinishKind::Ran,
                duration_ms: 150,
            },
            150,
        );
    }
    push(
        Event::RunCompleted {
            output: "All done: the tests pass.".to_owned(),
            stopped_by: None,
        },
        1,
    );
    out
}

/// Appends `events` as run `run`, 1,000 events a batch, with a completed summary.
pub async fn write_run(
    store: &impl EventStore,
    run: RunId,
    agent: &str,
    input: &str,
    events: &[Stamped],
) {
    let turns = events
        .iter()
        .filter(|e| matches!(e.event, Event::LlmResponded { .. }))
        .count() as u32;
    let summary = RunSummary {
        agent: agent.to_owned(),
        status: RunStatus::Completed,
        created_at: events[0].at,
        updated_at: events[events.len() - 1].at,
        turns,
        input_tokens: 1200 * u64::from(turns),
        output_tokens: 80 * u64::from(turns),
        parent: None,
        title: input.chars().take(80).collect(),
    };
    let mut next = Seq(0);
    for chunk in events.chunks(1000) {
        let batch =
            Batch::events(chunk.iter().map(|e| encode(e).unwrap())).with_summary(summary.clone());
        next = store.append(run, next, batch).await.unwrap().unwrap();
    }
}

/// A store of `runs` small runs (8 events each, agents `agent-0` … `agent-3`, one
/// minute apart) ending now, written 64 at a time (their syncs are shared).
pub async fn many_runs(store: &impl EventStore, runs: usize) -> Vec<RunId> {
    use futures::StreamExt;
    let now = Timestamp::now().0;
    let ids: Vec<RunId> = (0..runs).map(|_| RunId::new()).collect();
    futures::stream::iter(ids.iter().enumerate())
        .for_each_concurrent(64, |(i, run)| async move {
            let agent = format!("agent-{}", i % 4);
            let input = format!("task {i}: fix the failing test in module m{}", i % 50);
            let start = now - (runs - i) as u64 * 60_000;
            write_run(
                store,
                *run,
                &agent,
                &input,
                &events(&agent, &input, 1, start),
            )
            .await;
        })
        .await;
    ids
}
