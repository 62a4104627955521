//! Model-based property test: random sequences of appends (with right and wrong
//! expected seqs), reads, blob puts and gets, watches, deletes and reopens, run
//! against every backend and checked against a plain in-memory model.
//!
//! `KEEL_MODEL_CASES=5000 cargo test -p keel-storage --test model` runs more cases
//! (default 256 per backend). The Postgres backend runs on a throwaway server started
//! by the test binary, a schema per case.

// Helpers of tests: a failed step fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use keel_storage::conformance::{Harness, MemoryHarness, PgHarness, SledHarness, event_bytes};
use keel_storage::{
    Batch, BlobHash, EventStore, Record, Result, RunId, RunStatus, RunSummary, Seq, Timestamp,
};
use proptest::prelude::*;

const RUNS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Append {
        run: usize,
        /// Added to the model's length to get the expected seq: mostly 0.
        offset: i64,
        sizes: Vec<usize>,
        blob: Option<u8>,
        turns: Option<u32>,
    },
    Read {
        run: usize,
        from: u64,
    },
    Info {
        run: usize,
    },
    List,
    PutBlob {
        seed: u8,
    },
    GetBlob {
        seed: u8,
    },
    Watch {
        run: usize,
        from: u64,
    },
    Delete {
        run: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let run = 0..RUNS;
    prop_oneof![
        8 => (
            run.clone(),
            prop_oneof![6 => Just(0i64), 1 => Just(-1i64), 1 => Just(1i64), 1 => Just(7i64)],
            prop::collection::vec(prop_oneof![4 => 0usize..300, 1 => 300usize..20_000], 0..4),
            prop::option::weighted(0.2, any::<u8>()),
            prop::option::weighted(0.3, 0u32..100),
        )
            .prop_map(|(run, offset, sizes, blob, turns)| Op::Append { run, offset, sizes, blob, turns }),
        3 => (run.clone(), 0u64..12).prop_map(|(run, from)| Op::Read { run, from }),
        1 => run.clone().prop_map(|run| Op::Info { run }),
        1 => Just(Op::List),
        1 => any::<u8>().prop_map(|seed| Op::PutBlob { seed }),
        1 => any::<u8>().prop_map(|seed| Op::GetBlob { seed }),
        2 => (run.clone(), 0u64..8).prop_map(|(run, from)| Op::Watch { run, from }),
        1 => run.prop_map(|run| Op::Delete { run }),
        1 => Just(Op::Reopen),
    ]
}

fn blob(seed: u8) -> Bytes {
    event_bytes(
        RunId::from_bytes([0xb1; 16]),
        Seq(u64::from(seed)),
        64 + usize::from(seed),
    )
}

fn summary(turns: u32) -> RunSummary {
    RunSummary {
        agent: format!("agent-{turns}"),
        status: if turns.is_multiple_of(2) {
            RunStatus::Running
        } else {
            RunStatus::Suspended
        },
        created_at: Timestamp(1),
        updated_at: Timestamp(u64::from(turns)),
        turns,
        input_tokens: u64::from(turns) * 3,
        output_tokens: u64::from(turns),
        parent: None,
        title: String::new(),
    }
}

#[derive(Debug, Default, Clone)]
struct RunModel {
    events: Vec<Bytes>,
    summary: Option<RunSummary>,
}

#[derive(Debug, Default)]
struct Model {
    runs: BTreeMap<usize, RunModel>,
    blobs: BTreeSet<Bytes>,
}

struct Watcher {
    run: usize,
    next: u64,
    stream: BoxStream<'static, Result<Record>>,
}

impl Watcher {
    /// Pulls everything the model says the watcher must have by now.
    async fn catch_up(&mut self, model: &Model) {
        let events = model.runs.get(&self.run).map_or(&[][..], |r| &r.events[..]);
        while (self.next as usize) < events.len() {
            let record = tokio::time::timeout(Duration::from_secs(30), self.stream.next())
                .await
                .expect("a watcher got nothing for 30 s")
                .expect("a watch stream ended")
                .expect("a watch stream failed");
            assert_eq!(
                record.seq,
                Seq(self.next),
                "a watcher skipped or repeated a seq"
            );
            assert_eq!(
                record.bytes, events[self.next as usize],
                "a watcher got wrong bytes"
            );
            self.next += 1;
        }
    }
}

async fn check<H: Harness>(harness: &H, ops: Vec<Op>) {
    let (mut store, guard) = harness.open().await.unwrap();
    let ids: Vec<RunId> = (0..RUNS).map(|_| RunId::new()).collect();
    let mut model = Model::default();
    let mut watchers: Vec<Watcher> = Vec::new();
    for op in ops {
        match op {
            Op::Append {
                run,
                offset,
                sizes,
                blob: blob_seed,
                turns,
            } => {
                let id = ids[run];
                let len = model.runs.get(&run).map_or(0, |r| r.events.len() as u64);
                let expected = Seq(len.saturating_add_signed(offset));
                let events: Vec<Bytes> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &size)| event_bytes(id, expected.plus(i as u64), size))
                    .collect();
                let mut batch = Batch::events(events.clone()).with_blobs(blob_seed.map(blob));
                batch.summary = turns.map(summary);
                let outcome = store.append(id, expected, batch).await.unwrap();
                if expected.0 == len {
                    assert_eq!(outcome, Ok(Seq(len + events.len() as u64)));
                    let entry = model.runs.entry(run).or_default();
                    entry.events.extend(events);
                    if let Some(turns) = turns {
                        entry.summary = Some(summary(turns));
                    }
                    model.blobs.extend(blob_seed.map(blob));
                    for w in watchers.iter_mut().filter(|w| w.run == run) {
                        w.catch_up(&model).await;
                    }
                } else {
                    let conflict = outcome.expect_err("a wrong expected seq must conflict");
                    assert_eq!((conflict.expected, conflict.actual), (expected, Seq(len)));
                }
            }
            Op::Read { run, from } => {
                let records = store.read(ids[run], Seq(from)).await.unwrap();
                let events = model.runs.get(&run).map_or(&[][..], |r| &r.events[..]);
                let want: Vec<Record> = events
                    .iter()
                    .enumerate()
                    .skip(from as usize)
                    .map(|(i, b)| Record {
                        seq: Seq(i as u64),
                        bytes: b.clone(),
                    })
                    .collect();
                assert_eq!(records, want);
            }
            Op::Info { run } => {
                let info = store.run_info(ids[run]).await.unwrap();
                let want = model.runs.get(&run);
                assert_eq!(info.is_some(), want.is_some());
                if let (Some(info), Some(want)) = (info, want) {
                    assert_eq!(info.next_seq, Seq(want.events.len() as u64));
                    assert_eq!(info.summary, want.summary);
                }
            }
            Op::List => {
                let listed: Vec<(RunId, Seq, Option<RunSummary>)> = store
                    .list_runs()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|i| (i.run, i.next_seq, i.summary))
                    .collect();
                let want: Vec<_> = model
                    .runs
                    .iter()
                    .map(|(&run, r)| (ids[run], Seq(r.events.len() as u64), r.summary.clone()))
                    .collect();
                assert_eq!(listed, want);
            }
            Op::PutBlob { seed } => {
                let bytes = blob(seed);
                assert_eq!(
                    store.put_blob(bytes.clone()).await.unwrap(),
                    BlobHash::of(&bytes)
                );
                model.blobs.insert(bytes);
            }
            Op::GetBlob { seed } => {
                let bytes = blob(seed);
                let got = store.get_blob(BlobHash::of(&bytes)).await.unwrap();
                assert_eq!(got, model.blobs.contains(&bytes).then_some(bytes));
            }
            Op::Watch { run, from } => {
                let mut watcher = Watcher {
                    run,
                    next: from,
                    stream: store.watch(ids[run], Seq(from)),
                };
                watcher.catch_up(&model).await;
                watchers.push(watcher);
            }
            Op::Delete { run } => {
                // What a watcher of a deleted run sees is not specified: stop watching.
                watchers.retain(|w| w.run != run);
                let existed = store.delete_run(ids[run]).await.unwrap();
                assert_eq!(existed, model.runs.remove(&run).is_some());
            }
            Op::Reopen => {
                watchers.clear();
                store = harness.reopen(store, &guard).await.unwrap();
            }
        }
    }
    // Everything acknowledged is still there after a last reopen, byte for byte.
    drop(watchers);
    let store = harness.reopen(store, &guard).await.unwrap();
    for (run, id) in ids.iter().enumerate() {
        let events = model.runs.get(&run).map_or(&[][..], |r| &r.events[..]);
        let records = store.read(*id, Seq::ZERO).await.unwrap();
        assert_eq!(records.len(), events.len());
        for (record, want) in records.iter().zip(events) {
            assert_eq!(&record.bytes, want);
        }
    }
    for bytes in &model.blobs {
        assert_eq!(
            store.get_blob(BlobHash::of(bytes)).await.unwrap().as_ref(),
            Some(bytes)
        );
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("KEEL_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn run_case<H: Harness>(harness: H, ops: Vec<Op>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(check(&harness, ops));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sled_store_behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run_case(SledHarness, ops);
    }

    #[test]
    fn postgres_store_behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run_case(PgHarness { schema_per_store: true }, ops);
    }

    #[test]
    fn memory_store_behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run_case(MemoryHarness, ops);
    }
}
