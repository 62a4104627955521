//! Engine benchmarks, each against a baseline measured in the same run:
//!
//! 1. per-turn durable overhead (scripted instant LLM, no-op tool, sled store) as a
//!    ratio to the `fdatasync` floor;
//! 2. replay speed: events decoded, folded and checked per second;
//! 3. time to resume a 10,000-event run;
//! 4. resident memory of a runtime with 10,000 runs suspended on approvals (in a
//!    child process, against the same child with an empty store).
//!
//! `cargo bench -p keel-engine --bench engine`. `KEEL_BENCH_DIR` picks the directory
//! (default: the system temp dir).

// A benchmark that cannot set itself up has nothing to report: failing loudly is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use keel_engine::{Agent, CallId, Decision, Keel, RunOutcome, StepKey, Turn, replay};
use keel_providers::{
    ContentBlock, DeltaSink, Json, LlmProvider, Request, Response, Role, StopReason, Usage,
};
use keel_storage::{EventStore, MemoryStore, Record, RunId, Seq, SledStore};
use keel_tools::{CallContext, Tool, ToolOutput, ToolSpec};

/// Answers instantly: a tool call per turn until `turns` (to `gate` at the last
/// one, when set, else `noop`), then a final text.
#[derive(Clone)]
struct Instant_ {
    turns: usize,
    gate_last: bool,
}

impl LlmProvider for Instant_ {
    fn name(&self) -> &str {
        "instant"
    }
    async fn complete<'a>(
        &'a self,
        request: &'a Request,
        _d: DeltaSink<'a>,
    ) -> keel_providers::Result<Response> {
        let turn = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count();
        let content = if turn < self.turns {
            vec![
                ContentBlock::text("next"),
                ContentBlock::ToolUse {
                    id: format!("t{turn}"),
                    name: if self.gate_last && turn + 1 == self.turns {
                        "gate".into()
                    } else {
                        "noop".into()
                    },
                    input: Json(serde_json::json!({})),
                },
            ]
        } else {
            vec![ContentBlock::text("done")]
        };
        Ok(Response {
            id: format!("m{turn}"),
            model: "instant".into(),
            stop_reason: if turn < self.turns {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            },
            content,
            usage: Usage {
                input_tokens: 1,
                output_tokens: 1,
                ..Usage::default()
            },
        })
    }
}

/// Does nothing; `approve` makes it wait for a person (and names it `gate`).
struct Noop {
    approve: bool,
}

impl Tool for Noop {
    type Args = serde_json::Value;
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: if self.approve {
                "gate".into()
            } else {
                "noop".into()
            },
            description: "nothing".into(),
            input_schema: serde_json::json!({"type": "object"}),
        }
    }
    fn is_mutating(&self) -> bool {
        self.approve
    }
    async fn call(&self, _args: serde_json::Value, _ctx: CallContext) -> ToolOutput {
        ToolOutput::ok("ok")
    }
}

fn agent(turns: usize, gate_last: bool) -> Agent {
    Agent::builder("bench")
        .provider(Instant_ { turns, gate_last })
        .model("instant")
        .tool(Noop { approve: false })
        .tool(Noop { approve: true })
        .build()
}

/// The records of a run re-encoded in format 1: postcard of the events, whose serde
/// shape is round 1's except for `RunStarted` (fields added since), which is written
/// field by field as round 1 did. Request digests are recomputed as format-1 runs
/// compute them.
fn format_1(run: RunId, records: &[Record]) -> Vec<Record> {
    let mut state = keel_engine::RunState::new(run);
    records
        .iter()
        .map(|r| {
            let mut event = keel_engine::decode(run, r.seq, &r.bytes).unwrap();
            let mut first = None;
            match &mut event.event {
                keel_engine::Event::RunStarted(s) => {
                    s.digest_scheme = keel_engine::DigestScheme::Postcard1;
                    let a = &s.agent;
                    let fields = (
                        event.at.0,
                        0u32, // the variant `RunStarted`
                        (
                            &a.id,
                            &a.provider,
                            &a.model,
                            &a.system_prompt,
                            &a.tools,
                            &a.tools_digest,
                            a.max_tokens,
                            &a.stop_conditions,
                            &a.fingerprint,
                        ),
                        &s.input,
                        Option::<()>::None,
                    );
                    first = Some(postcard::to_extend(&fields, vec![1u8]).unwrap());
                }
                keel_engine::Event::LlmRequested {
                    turn,
                    request_digest,
                } => *request_digest = state.request_digest(*turn),
                _ => {}
            }
            state.apply(r.seq, event.clone()).unwrap();
            let bytes = first.unwrap_or_else(|| postcard::to_extend(&event, vec![1u8]).unwrap());
            Record {
                seq: r.seq,
                bytes: bytes.into(),
            }
        })
        .collect()
}

fn floor_us(dir: &Path, samples: usize) -> f64 {
    let path = dir.join("floor.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let record = [0x5au8; 200];
    let start = Instant::now();
    for _ in 0..samples {
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / samples as f64;
    std::fs::remove_file(&path).unwrap();
    us
}

async fn run_to_end(keel: &Keel, agent: &Agent) -> RunId {
    let run = keel.invoke(agent, "go").await.unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    run.id()
}

/// This thread's CPU time, in seconds.
fn cpu_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In a child: open the store, start a runtime, recover, and print the RSS.
fn rss_child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let keel = Keel::new(SledStore::open(dir).unwrap());
        keel.register(agent(1, true));
        let report = keel.recover().await.unwrap();
        let runs = keel.store().list_runs().await.unwrap().len();
        println!("{} {} {}", rss_kib(), runs, report.waiting.len());
    });
}

fn child_rss(dir: &Path) -> (u64, usize, usize) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--rss-child")
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().unwrap());
    (
        parts.next().unwrap(),
        parts.next().unwrap() as usize,
        parts.next().unwrap() as usize,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        rss_child(Path::new(&args[i + 1]));
        return;
    }
    let base = std::env::var_os("KEEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    println!(
        "keel-engine benchmarks ({} cores)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let floor = floor_us(tmp.path(), 2000);
    println!("floor: write 200 B + fdatasync              {floor:>9.1} µs");

    // `KEEL_BENCH_ONLY=turn|replay|resume|memory` runs one part (for profiling).
    let only = std::env::var("KEEL_BENCH_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);

    // 1. Per-turn durable overhead. The shared disk's speed drifts from second to
    //    second, so short runs alternate with floor measurements of similar length,
    //    and the ratio is taken pair by pair.
    if part("turn") {
        let turns = 40;
        let rounds = 15;
        let mut ratios = Vec::new();
        let mut per_turn_all = Vec::new();
        let mut floor_all = Vec::new();
        rt.block_on(async {
            let dir = tmp.path().join("turns");
            let keel = Keel::new(SledStore::open(&dir).unwrap());
            let a = agent(turns, false);
            run_to_end(&keel, &agent(5, false)).await; // warm up
            for _ in 0..rounds {
                let floor = floor_us(tmp.path(), 2 * turns);
                let start = Instant::now();
                run_to_end(&keel, &a).await;
                let per_turn = start.elapsed().as_secs_f64() * 1e6 / (turns + 1) as f64;
                ratios.push(per_turn / floor);
                per_turn_all.push(per_turn);
                floor_all.push(floor);
            }
        });
        let per_turn_mem = rt.block_on(async {
            let keel = Keel::new(MemoryStore::new());
            let a = agent(400, false);
            let start = Instant::now();
            run_to_end(&keel, &a).await;
            start.elapsed().as_secs_f64() * 1e6 / 401.0
        });
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (lo, hi) = (
            ratios.iter().copied().fold(f64::MAX, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "per turn (LLM call + tool, sled, durable)   {:>9.1} µs  = {:.2}x the floor measured alongside, median of {rounds} pairs (range {lo:.2}-{hi:.2}; target <= 2.5x)",
            median(&mut per_turn_all),
            median(&mut ratios)
        );
        println!(
            "  floor alongside (median)                   {:>9.1} µs",
            median(&mut floor_all)
        );
        println!(
            "per turn, same on the memory store           {per_turn_mem:>9.1} µs  (the engine's own cost, 400 turns)"
        );
    }

    // 2. Replay speed, on a long run's log.
    if part("replay") {
        let (records, agent_long) = rt.block_on(async {
            let store = MemoryStore::new();
            let keel = Keel::new(store.clone());
            let a = agent(25_000, false);
            let run = run_to_end(&keel, &a).await;
            (store.read(run, Seq::ZERO).await.unwrap(), (a, run))
        });
        let (a, run) = agent_long;
        let mut best_checked = f64::MAX;
        let mut best_checked_cpu = f64::MAX;
        let mut best_fold = f64::MAX;
        for _ in 0..7 {
            let (start, cpu) = (Instant::now(), cpu_secs());
            let state = replay(run, &records, Some(&a)).unwrap();
            best_checked = best_checked.min(start.elapsed().as_secs_f64());
            best_checked_cpu = best_checked_cpu.min(cpu_secs() - cpu);
            assert!(state.end().is_some());
            let start = Instant::now();
            replay(run, &records, None).unwrap();
            best_fold = best_fold.min(start.elapsed().as_secs_f64());
        }
        // Baseline in the same run: the same log in format 1 (round 1's postcard
        // records, read through the frozen format-1 types), replayed the same way.
        let v1 = format_1(run, &records);
        let mut best_v1 = f64::MAX;
        for _ in 0..7 {
            let start = Instant::now();
            let state = replay(run, &v1, Some(&a)).unwrap();
            best_v1 = best_v1.min(start.elapsed().as_secs_f64());
            assert!(state.end().is_some());
        }
        let n = records.len() as f64;
        println!(
            "replay of the same log in format 1 (baseline) {:>6.0} events/s; format 2 takes {:.2}x its time",
            n / best_v1,
            best_checked / best_v1
        );
        println!(
            "replay, decode + fold + determinism check  {:>9.0} events/s ({:.0} per CPU-second; {} events; target >= 1,000,000/s)",
            n / best_checked,
            n / best_checked_cpu,
            records.len()
        );
        println!(
            "replay, decode + fold only                 {:>9.0} events/s",
            n / best_fold
        );
    }

    // 3. Resume a 10,000-event run waiting for an approval at its end, in a new
    //    runtime on the reopened store (as after a restart).
    if part("resume") {
        let (resume_ms, (read_ms, fold_ms), events) = rt.block_on(async {
            let dir = tmp.path().join("resume");
            // 2,500 turns of 4 events; the last one waits for approval: 10,000 events.
            let long = agent(2_500, true);
            let run = {
                let keel = Keel::new(SledStore::open(&dir).unwrap());
                let run = keel.invoke(&long, "go").await.unwrap().id();
                assert!(matches!(
                    keel.result(run).await.unwrap(),
                    RunOutcome::Suspended { .. }
                ));
                keel.shutdown().await;
                run
            };
            // A new process: open the store and resume at once, cold.
            let keel = Keel::new(SledStore::open(&dir).unwrap());
            keel.register(long.clone());
            let step = StepKey::for_call(CallId::new(Turn(2_499), 0), 1);
            let start = Instant::now();
            keel.resume(run, &step, Decision::approve()).await.unwrap();
            let resumed = start.elapsed().as_secs_f64() * 1e3;
            assert!(matches!(
                keel.result(run).await.unwrap(),
                RunOutcome::Completed { .. }
            ));
            // Its parts, warm: reading the log, and folding it with the check.
            let (mut read, mut fold) = (f64::MAX, f64::MAX);
            let mut events = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let records = keel.store().read(run, Seq::ZERO).await.unwrap();
                read = read.min(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                replay(run, &records, Some(&long)).unwrap();
                fold = fold.min(t.elapsed().as_secs_f64() * 1e3);
                events = records.len();
            }
            (resumed, (read, fold), events)
        });
        println!(
            "resume a {events}-event run after a restart  {resume_ms:>9.2} ms (read, fold + check, answer durably, go live; target < 20 ms)"
        );
        println!("  of which, warm: read {read_ms:.2} ms, decode + fold + check {fold_ms:.2} ms");
    }

    // 4. Memory with 10,000 runs suspended on approvals.
    if part("memory") {
        let dir = tmp.path().join("suspended");
        let empty = tmp.path().join("empty");
        rt.block_on(async {
            let keel = Keel::new(SledStore::open(&dir).unwrap());
            let a = agent(1, true);
            let mut tasks = Vec::new();
            for chunk in 0..100 {
                let keel = keel.clone();
                let a = a.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..100 {
                        let run = keel.invoke(&a, format!("run {chunk}")).await.unwrap();
                        assert!(matches!(
                            run.result().await.unwrap(),
                            RunOutcome::Suspended { .. }
                        ));
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            keel.shutdown().await;
            let _ = SledStore::open(&empty).unwrap();
        });
        let (empty_kib, _, _) = child_rss(&empty);
        let (rss, runs, waiting) = child_rss(&dir);
        println!(
            "RSS, runtime + store with {runs} runs ({waiting} waiting)  {:>6.1} MB (empty store: {:.1} MB; target < 50 MB)",
            rss as f64 / 1024.0,
            empty_kib as f64 / 1024.0
        );
    }
}
