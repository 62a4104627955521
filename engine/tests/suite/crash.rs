//! Crash recovery in-process: the store "kills the process" at a chosen append —
//! before it is written, or after it is written but before the effect that follows —
//! and a new runtime on the same data recovers the run. Every commit point of a run
//! is tried, and a property test tries random scripts and crash points.

use std::sync::Arc;

use keel_engine::{Decision, Event, Keel, RunEnd, RunOutcome, interrupted_message};
use keel_providers::{ContentBlock, Message};
use keel_storage::{EventStore, MemoryStore, RunId, RunStatus, Seq};
use keel_tools::Recovery;
use proptest::prelude::*;
use serde_json::json;

use crate::support::*;

/// What a finished run left behind.
#[derive(Debug, Clone, PartialEq)]
struct Finished {
    transcript: Vec<Message>,
    end: RunEnd,
    files: std::collections::BTreeMap<String, String>,
    appended: Vec<String>,
}

fn answer_policy() -> Answer {
    Arc::new(|step| {
        let wants = |s: &str| match &step.form.context {
            keel_tools::FormContext::Write { path, .. } => path.contains(s),
            keel_tools::FormContext::Call { args } => args.contains(s),
            keel_tools::FormContext::Question { question } => question.contains(s),
            _ => false,
        };
        if matches!(step.form.context, keel_tools::FormContext::Question { .. }) {
            if wants("decline") {
                Decision::deny().with_note("no idea")
            } else {
                Decision::answer(json!({"answer": format!("answer to {}", step.step)}))
            }
        } else if wants("deny") {
            Decision::deny().with_note("not that one")
        } else {
            Decision::approve()
        }
    })
}

fn build_agent(provider: &Scripted, effects: &Effects, recovery: Recovery) -> keel_engine::Agent {
    keel_engine::Agent::builder("crasher")
        .provider(provider.clone())
        .model("m")
        .system_prompt("p")
        .tool(Put(effects.clone()))
        .tool(Append(effects.clone(), recovery))
        .tool(Look(effects.clone()))
        .ask_user()
        .build()
}

async fn finished(keel: &Keel, run: RunId, effects: &Effects) -> Finished {
    let state = keel.state(run).await.unwrap();
    Finished {
        transcript: state.messages(&|t| match t {
            keel_engine::Text::Inline(s) => s.clone(),
            keel_engine::Text::Blob { .. } => panic!("no blobs in these scripts"),
        }),
        end: state.end().cloned().expect("the run ended"),
        files: effects.files.lock().unwrap().clone(),
        appended: effects.appended.lock().unwrap().clone(),
    }
}

/// Runs the script without a crash: what it leaves, and how many appends it made.
async fn reference(script: &[TurnScript], recovery: Recovery) -> (Finished, usize) {
    let effects = Effects::default();
    let provider = Scripted::new(script.to_vec());
    let store = CrashStore::new(MemoryStore::new(), None);
    let keel = Keel::new(store.clone());
    let agent = build_agent(&provider, &effects, recovery);
    let run = keel.invoke(&agent, "go").await.unwrap().id();
    let outcome = drive(&keel, &store, run, &answer_policy()).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    (finished(&keel, run, &effects).await, store.appends())
}

/// Crashes at append `at`, recovers in a new runtime, and checks the invariants
/// against the reference.
async fn crash_and_recover(
    script: &[TurnScript],
    recovery: Recovery,
    at: (usize, bool),
    reference: &Finished,
) -> Result<Recovered, String> {
    run_schedule(script, recovery, &[at], reference).await
}

/// Runs the script through a schedule of crashes: process `i` dies at its
/// `schedule[i]`-th append (written or not), the next one recovers the run; the
/// last process runs to the end. Checks the invariants after every crash and at the
/// end, against the uninterrupted reference.
async fn run_schedule(
    script: &[TurnScript],
    recovery: Recovery,
    schedule: &[(usize, bool)],
    reference: &Finished,
) -> Result<Recovered, String> {
    let base = MemoryStore::new();
    let effects = Effects::default();
    let provider = Scripted::new(script.to_vec());
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answer = {
        let asked = asked.clone();
        let policy = answer_policy();
        Arc::new(move |step: &keel_engine::PendingStep| {
            asked.lock().unwrap().push(step.step.to_string());
            policy(step)
        }) as Answer
    };
    let mut run: Option<RunId> = None;
    let mut durable_log: Vec<bytes::Bytes> = Vec::new();
    // Turns with a durable response, and how often they had been sent by then.
    let mut sent_when_durable: std::collections::BTreeMap<usize, usize> = Default::default();
    let mut approvals_before: Vec<(String, bool)> = Vec::new();
    let mut crashes = 0;
    let mut outcome = None;

    for point in schedule.iter().map(Some).chain([None]) {
        let store = CrashStore::new(base.clone(), point.copied());
        let keel = Keel::new(store.clone());
        let agent = build_agent(&provider, &effects, recovery);
        keel.register(agent.clone());
        let survived = async {
            let id = match run {
                Some(id) => {
                    let report = keel.recover().await.unwrap();
                    if !report.failed.is_empty() {
                        return Err(format!("recovery failed: {:?}", report.failed));
                    }
                    id
                }
                // Not started yet (or it died before its start was durable).
                None => keel.invoke(&agent, "go").await.unwrap().id(),
            };
            run = Some(id);
            Ok(drive(&keel, &store, id, &answer).await)
        };
        let result = tokio::select! {
            r = survived => r?,
            () = store.crashed.notified() => None,
        };
        if let Some(done) = result {
            outcome = Some(done);
            break;
        }
        crashes += 1;
        // What was durable when it died.
        let Some(id) = base.list_runs().await.unwrap().first().map(|i| i.run) else {
            run = None;
            continue;
        };
        run = Some(id);
        let log: Vec<bytes::Bytes> = base
            .read(id, Seq::ZERO)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.bytes)
            .collect();
        // No acknowledged event lost: the log extends what was durable before.
        if log.len() < durable_log.len() || log[..durable_log.len()] != durable_log[..] {
            return Err("the log lost or changed events that were durable".into());
        }
        durable_log = log;
        for e in keel1_events(&base, id).await {
            match e {
                Event::LlmResponded { turn, .. } => {
                    sent_when_durable
                        .entry(turn.0 as usize)
                        .or_insert_with(|| provider.calls_of(turn.0 as usize));
                }
                Event::ApprovalResolved {
                    step, resolution, ..
                } => approvals_before.push((step.to_string(), resolution.approved)),
                _ => {}
            }
        }
    }
    let run = run.ok_or("no run")?;
    let outcome = outcome.ok_or("the last process did not finish the run")?;
    if !matches!(outcome, RunOutcome::Completed { .. }) {
        return Err(format!("the run did not complete: {outcome:?}"));
    }
    let keel2 = Keel::new(base.clone());
    let got = finished(&keel2, run, &effects).await;

    // No paid call twice: a turn whose response was durable is never sent again.
    for (turn, sent) in &sent_when_durable {
        if provider.calls_of(*turn) != *sent {
            return Err(format!(
                "turn {turn} had a durable response after {sent} calls but was sent {} times",
                provider.calls_of(*turn)
            ));
        }
    }
    let turns = script.len();
    for turn in 0..turns {
        if provider.calls_of(turn) > 1 + crashes {
            return Err(format!(
                "turn {turn} sent {} times with {crashes} crashes",
                provider.calls_of(turn)
            ));
        }
    }
    if provider.total_calls() > turns + crashes {
        return Err(format!(
            "{} calls for {turns} turns and {crashes} crashes",
            provider.total_calls()
        ));
    }
    // Decisions recorded before a crash are honoured after it.
    let state = keel2.state(run).await.unwrap();
    for (step, approved) in &approvals_before {
        let honoured = state.turns().iter().flat_map(|t| t.calls.iter()).any(|c| {
            c.resolutions
                .iter()
                .any(|(s, r)| s.as_str() == step && r.approved == *approved)
        });
        if !honoured {
            return Err(format!("the decision at {step} was lost"));
        }
    }
    // Tools that must never run twice ran at most once per call (side effects
    // checked); an effect is missing only where its call was reported interrupted
    // (the crash fell after the intent was durable, before the effect).
    if recovery == Recovery::ReportInterrupted {
        let mut expected = reference.appended.iter().peekable();
        let times = |lines: &[String], line: &String| lines.iter().filter(|l| *l == line).count();
        for line in &got.appended {
            // A script may append the same line from two calls: more often than the
            // uninterrupted run did is a call run twice.
            if times(&got.appended, line) > times(&reference.appended, line) {
                return Err(format!("append `{line}` ran twice"));
            }
            loop {
                match expected.next() {
                    Some(e) if e == line => break,
                    Some(missing) if interrupted_lines(&state).contains(missing) => {}
                    Some(missing) => return Err(format!("append `{missing}` is missing")),
                    None => return Err(format!("append `{line}` was not in the reference")),
                }
            }
        }
        for missing in expected {
            if !interrupted_lines(&state).contains(missing) {
                return Err(format!("append `{missing}` is missing"));
            }
        }
    }
    // The run's status matches its log.
    let summary = base.run_info(run).await.unwrap().unwrap().summary.unwrap();
    if summary.status != state.status() {
        return Err(format!(
            "summary says {:?}, the log {:?}",
            summary.status,
            state.status()
        ));
    }
    if summary.status != RunStatus::Completed {
        return Err(format!("summary says {:?}", summary.status));
    }
    // No gap or torn record: the whole log decodes and folds.
    keel2.read_events(run).await.map_err(|e| e.to_string())?;
    // The transcript equals the uninterrupted one, except a reported interruption.
    if got.transcript != reference.transcript {
        let only_interruptions = recovery == Recovery::ReportInterrupted
            && got.transcript.len() == reference.transcript.len()
            && got
                .transcript
                .iter()
                .zip(&reference.transcript)
                .all(|(a, b)| a == b || differs_only_by_interruption(a, b));
        if !only_interruptions {
            return Err(format!(
                "transcripts differ:\n got {:#?}\n want {:#?}",
                got.transcript, reference.transcript
            ));
        }
    }
    if got.end != reference.end || got.files != reference.files {
        return Err(format!("end or files differ: {got:?} vs {reference:?}"));
    }
    let asked = asked.lock().unwrap().clone();
    Ok(Recovered {
        asked,
        interrupted: interrupted_lines(&state).len(),
    })
}

/// What happened after a recovery.
#[derive(Debug)]
struct Recovered {
    /// The steps people were asked.
    asked: Vec<String>,
    /// `append` calls reported as interrupted.
    interrupted: usize,
}

/// The lines of `append` calls the run reported as interrupted.
fn interrupted_lines(state: &keel_engine::RunState) -> Vec<String> {
    state
        .turns()
        .iter()
        .flat_map(|t| t.calls.iter())
        .filter(|c| {
            matches!(
                c.phase,
                keel_engine::CallPhase::Finished {
                    kind: keel_engine::FinishKind::Interrupted,
                    ..
                }
            )
        })
        .filter_map(|c| {
            c.input
                .get("line")
                .and_then(|l| l.as_str())
                .map(str::to_owned)
        })
        .collect()
}

fn differs_only_by_interruption(a: &Message, b: &Message) -> bool {
    a.role == b.role
        && a.content.len() == b.content.len()
        && a.content.iter().zip(&b.content).all(|(x, y)| {
            x == y
                || matches!(
                    (x, y),
                    (
                        ContentBlock::ToolResult { tool_use_id: i, content, is_error: true },
                        ContentBlock::ToolResult { tool_use_id: j, .. },
                    ) if i == j && content.starts_with(&interrupted_message(1)[..40])
                )
        })
}

async fn keel1_events(store: &MemoryStore, run: RunId) -> Vec<Event> {
    store
        .read(run, Seq::ZERO)
        .await
        .unwrap()
        .iter()
        .map(|r| keel_engine::decode(run, r.seq, &r.bytes).unwrap().event)
        .collect()
}

fn rerun_script() -> Vec<TurnScript> {
    vec![
        call(
            "write a file",
            &[(
                "put",
                json!({"path": "hello.js", "content": "console.log(1)"}),
            )],
        ),
        call(
            "look and write",
            &[
                ("look", json!({"key": "hello.js"})),
                ("put", json!({"path": "deny-me.txt", "content": "x"})),
                ("put", json!({"path": "b.txt", "content": "y"})),
            ],
        ),
        call("ask", &[("ask_user", json!({"question": "Proceed?"}))]),
        call("one more look", &[("look", json!({"key": "end"}))]),
        say("All done."),
    ]
}

fn append_script() -> Vec<TurnScript> {
    vec![
        call("append one", &[("append", json!({"line": "first"}))]),
        call(
            "append two",
            &[
                ("append", json!({"line": "second"})),
                ("look", json!({"key": "k"})),
                ("append", json!({"line": "deny-me"})),
            ],
        ),
        say("Appended."),
    ]
}

#[tokio::test]
async fn every_commit_point_recovers_to_the_same_run() {
    let script = rerun_script();
    let (reference, appends) = reference(&script, Recovery::Rerun).await;
    assert!(appends >= 10, "{appends} appends");
    for at in 0..appends {
        for after in [false, true] {
            crash_and_recover(&script, Recovery::Rerun, (at, after), &reference)
                .await
                .unwrap_or_else(|e| panic!("crash at append {at} (written: {after}): {e}"));
        }
    }
}

#[tokio::test]
async fn a_tool_that_must_not_run_twice_is_reported_as_interrupted() {
    let script = append_script();
    let (reference, appends) = reference(&script, Recovery::ReportInterrupted).await;
    let mut interrupted = 0;
    for at in 0..appends {
        for after in [false, true] {
            interrupted += crash_and_recover(
                &script,
                Recovery::ReportInterrupted,
                (at, after),
                &reference,
            )
            .await
            .unwrap_or_else(|e| panic!("crash at append {at} (written: {after}): {e}"))
            .interrupted;
        }
    }
    // Each approved append has two crash points inside its window: right after its
    // intent was written, and right before its result would have been.
    assert_eq!(interrupted, 4, "interrupted {interrupted} times");
}

#[tokio::test]
async fn ask_again_asks_the_person_again_under_a_new_step() {
    let script = append_script();
    let (reference, appends) = reference(&script, Recovery::AskAgain).await;
    let mut asked_again = 0;
    for at in 0..appends {
        for after in [false, true] {
            let recovered = crash_and_recover(&script, Recovery::AskAgain, (at, after), &reference)
                .await
                .unwrap_or_else(|e| panic!("crash at append {at} (written: {after}): {e}"));
            asked_again += recovered.asked.iter().filter(|s| s.contains('~')).count();
        }
    }
    // The crash right before `[ToolFinished, ...]` of each approved append
    // interrupts it; it is asked again as `turn.index~2`.
    assert!(asked_again >= 2, "asked again {asked_again} times");
}

// ---------------------------------------------------------------- property test

fn arb_call() -> impl Strategy<Value = (String, serde_json::Value)> {
    (0u8..4, 0u32..1000, any::<bool>()).prop_map(|(tool, n, deny)| {
        let tag = if deny {
            format!("deny-{n}")
        } else {
            format!("ok-{n}")
        };
        match tool {
            0 => (
                "put".to_owned(),
                json!({"path": tag, "content": n.to_string()}),
            ),
            1 => ("look".to_owned(), json!({"key": tag})),
            2 => ("append".to_owned(), json!({"line": tag})),
            _ => (
                "ask_user".to_owned(),
                json!({"question": if deny { format!("decline {n}?") } else { format!("q {n}?") }}),
            ),
        }
    })
}

fn arb_script() -> impl Strategy<Value = Vec<TurnScript>> {
    proptest::collection::vec(proptest::collection::vec(arb_call(), 0..4), 1..5).prop_map(|turns| {
        let mut script: Vec<TurnScript> = turns
            .into_iter()
            .enumerate()
            .filter(|(_, calls)| !calls.is_empty())
            .map(|(i, calls)| TurnScript {
                text: format!("turn {i}"),
                calls,
            })
            .collect();
        script.push(say("the end"));
        script
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("KEEL_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    /// Random scripts (turns, tool calls, approvals granted and denied, questions)
    /// through random schedules of crashes: before an append is written, or after it
    /// is written but before it is acknowledged (inside the commit) and before the
    /// effect that follows; between an effect and its record is the crash before the
    /// next append. A failure shrinks to a minimal script and schedule.
    #[test]
    fn random_scripts_survive_crash_schedules(
        script in arb_script(),
        schedule in proptest::collection::vec((any::<proptest::sample::Index>(), any::<bool>()), 1..4),
        report in any::<bool>(),
    ) {
        let recovery = if report { Recovery::ReportInterrupted } else { Recovery::Rerun };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = rt.block_on(async {
            let (reference, appends) = reference(&script, recovery).await;
            let points: Vec<(usize, bool)> = schedule
                .iter()
                .map(|(i, after)| (i.index(appends), *after))
                .collect();
            run_schedule(&script, recovery, &points, &reference).await
        });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
