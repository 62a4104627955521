//! The kill -9 harness: a real `keel` process runs an agent against a loopback
//! Anthropic server with a real sled store and real tools; the harness SIGKILLs it at
//! random moments (seeded, reproducible schedules), restarts it with `keel resume`,
//! and repeats until the run ends. After every kill it opens the store itself and
//! checks the invariants; at the end it compares with an uninterrupted run.
//!
//! CI runs at least 200 kills across several scripts. The soak:
//! `KEEL_KILLS=2000 cargo test -p keel-cli --test all kill9 -- --nocapture`
//! (`KEEL_KILL_SEED` picks another schedule).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use keel_engine::{Event, FinishKind, Stamped, decode, replay_events};
use keel_storage::{EventStore, RunId, Seq, SledStore};
use serde_json::json;

use crate::support::*;

/// A small seeded generator (splitmix64): the schedule is the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Scripts whose exec calls append a marker line to `effects.log`: a command that
/// must never run twice, checked by its side effect. No call's result depends on
/// another call's effect (reads look at `seed.txt`, which no tool changes), so a call
/// reported interrupted changes only its own result.
fn scripts() -> Vec<(&'static str, Vec<Turn>)> {
    let mark = |m: &str| json!({"command": format!("echo {m} >> effects.log")});
    vec![
        (
            "hello",
            vec![
                call(
                    "Writing.",
                    "write",
                    json!({"path": "hello.sh", "content": "echo hello\n"}),
                ),
                call("Running.", "exec", json!({"command": "echo hello"})),
                call("Marking.", "exec", mark("m2")),
                say("Done."),
            ],
        ),
        (
            "multi",
            vec![
                call(
                    "Writing.",
                    "write",
                    json!({"path": "a.txt", "content": "alpha\nbeta\n"}),
                ),
                Turn {
                    text: "Three things at once.".into(),
                    tools: vec![
                        ("exec".into(), mark("m1")),
                        ("read".into(), json!({"path": "seed.txt"})),
                        (
                            "grep".into(),
                            json!({"pattern": "beta", "path": "seed.txt"}),
                        ),
                    ],
                },
                call("Marking.", "exec", mark("m2")),
                call("Listing.", "glob", json!({"pattern": "seed*"})),
                say("All done."),
            ],
        ),
        (
            "long",
            (0..8)
                .map(|i| {
                    if i % 2 == 0 {
                        call(&format!("Step {i}."), "exec", mark(&format!("m{i}")))
                    } else {
                        call(&format!("Step {i}."), "read", json!({"path": "seed.txt"}))
                    }
                })
                .chain([say("Finished.")])
                .collect(),
        ),
    ]
}

/// A project with the file the scripts read.
fn seeded_project(script: &[Turn]) -> Project {
    let project = Project::new(script.to_vec());
    project.server.set_delay(15);
    std::fs::create_dir_all(project.workspace()).unwrap();
    std::fs::write(project.workspace().join("seed.txt"), "alpha\nbeta\ngamma\n").unwrap();
    project
}

/// What a finished run left.
struct Outcome {
    transcript: Vec<keel_providers::Message>,
    kinds: Vec<FinishKind>,
    effects: String,
}

/// Opens the project's store. A child the killed process was forking at that instant
/// holds a copy of its descriptors (the lock's among them) until it execs or dies, so
/// the lock can stay taken for a moment after the kill: wait for it, as `keel` does.
fn open_store(project: &Project) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open(project.path().join(".keel")) {
            Ok(store) => return store,
            Err(keel_storage::Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("opening the store after a kill: {e}"),
        }
    }
}

fn read_log(store: &SledStore, run: RunId) -> Vec<(Seq, Stamped, bytes::Bytes)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let records = rt.block_on(store.read(run, Seq::ZERO)).unwrap();
    records
        .into_iter()
        .map(|r| {
            let stamped = decode(run, r.seq, &r.bytes)
                .unwrap_or_else(|e| panic!("torn or corrupt record: {e}"));
            (r.seq, stamped, r.bytes)
        })
        .collect()
}

fn outcome(project: &Project, run: RunId) -> Outcome {
    let store = open_store(project);
    let log = read_log(&store, run);
    let state = replay_events(run, log.iter().map(|(s, e, _)| (*s, e)), None).unwrap();
    let kinds = state
        .turns()
        .iter()
        .flat_map(|t| t.calls.iter())
        .filter_map(|c| match &c.phase {
            keel_engine::CallPhase::Finished { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    Outcome {
        transcript: normalized(&state.messages(&|t| match t {
            keel_engine::Text::Inline(s) => s.clone(),
            keel_engine::Text::Blob { .. } => String::new(),
        })),
        kinds,
        effects: std::fs::read_to_string(project.workspace().join("effects.log"))
            .unwrap_or_default(),
    }
}

/// The transcript with the durations commands report (`[exit code 0 · 0.01 s]`)
/// blanked: the one thing that differs between two runs of the same script.
fn normalized(messages: &[keel_providers::Message]) -> Vec<keel_providers::Message> {
    let blank = |text: &str| {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("· ") {
            out.push_str(&rest[..i + "· ".len()]);
            rest = &rest[i + "· ".len()..];
            if let Some(end) = rest.find(" s]")
                && rest[..end].chars().all(|c| c.is_ascii_digit() || c == '.')
            {
                out.push('T');
                rest = &rest[end..];
            }
        }
        out.push_str(rest);
        out
    };
    messages
        .iter()
        .cloned()
        .map(|mut m| {
            for block in &mut m.content {
                if let keel_providers::ContentBlock::ToolResult { content, .. } = block {
                    *content = blank(content);
                }
            }
            m
        })
        .collect()
}

/// Figures of a harness run.
#[derive(Default, Debug)]
struct Figures {
    kills: usize,
    recoveries: usize,
    resent: usize,
    runs: usize,
}

/// An uninterrupted run of a script: what it leaves, and how long it takes.
struct Reference {
    outcome: Outcome,
    span_ms: u64,
}

fn reference(script: &[Turn]) -> Reference {
    let project = seeded_project(script);
    let started = Instant::now();
    let (code, _, err) = project.run(&["run", "coding_agent", "go", "--approve-all"]);
    assert_eq!(code, 0, "{err}");
    let span_ms = started.elapsed().as_millis() as u64;
    let run: RunId = project.runs()[0]["id"].as_str().unwrap().parse().unwrap();
    Reference {
        outcome: outcome(&project, run),
        span_ms,
    }
}

/// Runs `script` to its end under random kills; checks every invariant; returns the
/// figures. Panics on a violation, naming the seed.
// Every child is waited for, except when a panic already fails the test.
#[allow(clippy::zombie_processes)]
fn kill_until_done(
    name: &str,
    script: &[Turn],
    reference: &Reference,
    seed: u64,
    figures: &mut Figures,
) {
    let span = reference.span_ms;
    let reference = &reference.outcome;

    let project = seeded_project(script);
    let mut rng = Rng(seed);
    let mut run: Option<RunId> = None;
    let mut durable: Vec<bytes::Bytes> = Vec::new();
    let mut sent_when_recorded: BTreeMap<usize, usize> = BTreeMap::new();
    let mut in_flight_kills: BTreeMap<usize, usize> = BTreeMap::new();
    let context = |detail: String| format!("script {name}, seed {seed}: {detail}");
    for attempt in 0.. {
        assert!(
            attempt < 200,
            "{}",
            context("the run never finished".into())
        );
        let mut cmd = project.keel();
        match run {
            None => cmd.args(["run", "coding_agent", "go", "--approve-all"]),
            Some(id) => cmd.args(["resume", &id.to_string(), "--approve-all"]),
        };
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a random moment within an uninterrupted run's span.
        let at = Duration::from_millis(rng.below(span));
        let deadline = Instant::now() + at;
        let mut finished = None;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let killed = finished.is_none();
        if killed {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            figures.kills += 1;
        }
        if let Some(status) = finished {
            assert!(
                status.success(),
                "{}",
                context(format!("keel exited with {status}"))
            );
        }
        // Open the store ourselves and check the invariants.
        let store = open_store(&project);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let runs = rt.block_on(store.list_runs()).unwrap();
        let Some(info) = runs.first() else {
            // Killed before the run's start was durable: run it again.
            assert!(killed, "{}", context("no run after a clean exit".into()));
            continue;
        };
        run = Some(info.run);
        let log = read_log(&store, info.run);
        let bytes: Vec<bytes::Bytes> = log.iter().map(|(_, _, b)| b.clone()).collect();
        // No acknowledged event lost, byte for byte; no gap (read checks seqs).
        assert!(
            bytes.len() >= durable.len() && bytes[..durable.len()] == durable[..],
            "{}",
            context("events that were durable are gone or changed".into())
        );
        durable = bytes;
        let state = replay_events(info.run, log.iter().map(|(s, e, _)| (*s, e)), None)
            .unwrap_or_else(|e| panic!("{}", context(format!("the log does not fold: {e}"))));
        // The run's status matches its log.
        assert_eq!(
            info.summary.as_ref().unwrap().status,
            state.status(),
            "{}",
            context("status".into())
        );
        // A turn with a recorded response is never sent again.
        for (seq, stamped, _) in &log {
            if let Event::LlmResponded { turn, .. } = &stamped.event {
                let turn = turn.0 as usize;
                let sent = *sent_when_recorded
                    .entry(turn)
                    .or_insert_with(|| project.server.calls_of(turn));
                assert_eq!(
                    project.server.calls_of(turn),
                    sent,
                    "{}",
                    context(format!("turn {turn} (seq {seq}) re-sent"))
                );
            }
        }
        // Which turn's call was in flight when it died.
        if killed
            && let Some(last) = state.turns().last()
            && last.response.is_none()
        {
            *in_flight_kills.entry(last.turn.0 as usize).or_default() += 1;
        }
        // A command that must not run twice ran at most once.
        let effects =
            std::fs::read_to_string(project.workspace().join("effects.log")).unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for line in effects.lines() {
            assert!(
                seen.insert(line.to_owned()),
                "{}",
                context(format!("`{line}` ran twice"))
            );
        }
        drop(store);
        if state.end().is_some() {
            break;
        }
        figures.recoveries += 1;
    }
    let run = run.unwrap();
    // At most one request per turn, plus one per crash that interrupted its call.
    for turn in 0..script.len() {
        let calls = project.server.calls_of(turn);
        let allowed = 1 + in_flight_kills.get(&turn).copied().unwrap_or(0);
        assert!(
            calls <= allowed,
            "{}",
            context(format!("turn {turn} sent {calls} times, allowed {allowed}"))
        );
        figures.resent += calls.saturating_sub(1);
    }
    // The transcript equals the uninterrupted one, except calls reported interrupted.
    let got = outcome(&project, run);
    assert_eq!(
        got.transcript.len(),
        reference.transcript.len(),
        "{}",
        context("transcript length".into())
    );
    for (a, b) in got.transcript.iter().zip(&reference.transcript) {
        if a != b {
            let interrupted = a.content.iter().zip(&b.content).all(|(x, y)| {
                x == y
                    || matches!(x, keel_providers::ContentBlock::ToolResult { content, is_error: true, .. }
                        if content.starts_with("This call was interrupted"))
            });
            assert!(
                interrupted,
                "{}",
                context(format!("transcripts differ: {a:?} vs {b:?}"))
            );
        }
    }
    // Every marker of the reference ran, unless its call was reported interrupted.
    let interrupted = got
        .kinds
        .iter()
        .filter(|k| **k == FinishKind::Interrupted)
        .count();
    let missing = reference
        .effects
        .lines()
        .filter(|l| !got.effects.contains(*l))
        .count();
    assert!(
        missing <= interrupted,
        "{}",
        context(format!(
            "{missing} effects missing, {interrupted} interrupted"
        ))
    );
    figures.runs += 1;
}

#[test]
fn kill9_harness_keeps_every_invariant() {
    let target: usize = std::env::var("KEEL_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("KEEL_KILL_SEED")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(7);
    let scripts = scripts();
    let references: Vec<Reference> = scripts.iter().map(|(_, s)| reference(s)).collect();
    let mut figures = Figures::default();
    let started = Instant::now();
    let mut trial = 0u64;
    while figures.kills < target {
        let i = trial as usize % scripts.len();
        let (name, script) = &scripts[i];
        let seed = seed.wrapping_mul(1_000_003).wrapping_add(trial);
        kill_until_done(name, script, &references[i], seed, &mut figures);
        trial += 1;
    }
    eprintln!(
        "kill -9 harness: {} kills, {} recoveries, {} runs to the end, {} requests re-sent (each for a call in flight), 0 invariant violations, in {:.0?}",
        figures.kills,
        figures.recoveries,
        figures.runs,
        figures.resent,
        started.elapsed()
    );
}
