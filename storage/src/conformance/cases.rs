//! The checks of the suite, one public async function each.

// Test code shipped for other crates' tests: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{Harness, event_bytes};
use crate::id::{BlobHash, RunId, Seq, Timestamp};
use crate::store::{Batch, Conflict, EventStore, Record, RunStatus, RunSummary};

pub(crate) fn summary(agent: &str, status: RunStatus, turns: u32) -> RunSummary {
    RunSummary {
        agent: agent.to_owned(),
        status,
        created_at: Timestamp(1_700_000_000_000),
        updated_at: Timestamp(1_700_000_000_000 + u64::from(turns)),
        turns,
        input_tokens: 100 * u64::from(turns),
        output_tokens: 10 * u64::from(turns),
        parent: None,
        title: format!("{agent} run"),
    }
}

pub(super) async fn append_ok<S: EventStore>(
    store: &S,
    run: RunId,
    expected: Seq,
    batch: Batch,
) -> Seq {
    let n = batch.events.len() as u64;
    let next = store
        .append(run, expected, batch)
        .await
        .expect("append failed")
        .expect("append conflicted");
    assert_eq!(next, expected.plus(n), "append returned the wrong length");
    next
}

/// Appends `n` single-event batches of `len`-byte deterministic events.
pub(super) async fn fill<S: EventStore>(
    store: &S,
    run: RunId,
    from: Seq,
    n: u64,
    len: usize,
) -> Seq {
    let mut next = from;
    for _ in 0..n {
        let bytes = event_bytes(run, next, len);
        next = append_ok(store, run, next, Batch::events([bytes])).await;
    }
    next
}

pub(super) fn assert_log(records: &[Record], run: RunId, from: Seq, to: Seq, len: usize) {
    let seqs: Vec<u64> = records.iter().map(|r| r.seq.0).collect();
    assert_eq!(
        seqs,
        (from.0..to.0).collect::<Vec<_>>(),
        "wrong seqs in run {run}"
    );
    for r in records {
        assert_eq!(
            r.bytes,
            event_bytes(run, r.seq, len),
            "run {run} seq {} differs",
            r.seq
        );
    }
}

/// Appended events read back in order, from any seq; unknown runs read empty.
pub async fn append_and_read<H: Harness>(h: &H) {
    let (store, _guard) = h.open().await.unwrap();
    let run = RunId::new();
    let mut next = append_ok(
        &store,
        run,
        Seq::ZERO,
        Batch::events((0..3).map(|i| event_bytes(run, Seq(i), 50))),
    )
    .await;
    next = fill(&store, run, next, 4, 50).await;
    assert_eq!(next, Seq(7));
    assert_log(
        &store.read(run, Seq::ZERO).await.unwrap(),
        run,
        Seq(0),
        Seq(7),
        50,
    );
    assert_log(
        &store.read(run, Seq(5)).await.unwrap(),
        run,
        Seq(5),
        Seq(7),
        50,
    );
    assert!(store.read(run, Seq(7)).await.unwrap().is_empty());
    assert!(store.read(run, Seq(1000)).await.unwrap().is_empty());
    assert!(
        store
            .read(RunId::new(), Seq::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let info = store.run_info(run).await.unwrap().expect("the run exists");
    assert_eq!(info.next_seq, Seq(7));
    assert!(store.run_info(RunId::new()).await.unwrap().is_none());
}

/// A wrong expected seq is a `Conflict` naming the real length, and writes nothing:
/// no event, no blob, no summary, no run.
pub async fn wrong_expected_seq_never_writes<H: Harness>(h: &H) {
    let (store, guard) = h.open().await.unwrap();
    let run = RunId::new();
    append_ok(
        &store,
        run,
        Seq::ZERO,
        Batch::events([event_bytes(run, Seq(0), 10), event_bytes(run, Seq(1), 10)])
            .with_summary(summary("a", RunStatus::Running, 1)),
    )
    .await;
    for expected in [0, 1, 3, 100, u64::MAX] {
        let blob = Bytes::from(format!("blob of a losing append at {expected}"));
        let batch = Batch::events([Bytes::from_static(b"intruder")])
            .with_blobs([blob.clone()])
            .with_summary(summary("intruder", RunStatus::Failed, 9));
        let outcome = store.append(run, Seq(expected), batch).await.unwrap();
        assert_eq!(
            outcome,
            Err(Conflict {
                run,
                expected: Seq(expected),
                actual: Seq(2)
            })
        );
        assert_eq!(store.get_blob(BlobHash::of(&blob)).await.unwrap(), None);
    }
    // A run that does not exist is at seq 0; a conflict does not create it.
    let absent = RunId::new();
    let outcome = store
        .append(absent, Seq(1), Batch::events([Bytes::from_static(b"x")]))
        .await
        .unwrap();
    assert_eq!(outcome.unwrap_err().actual, Seq::ZERO);
    assert!(store.run_info(absent).await.unwrap().is_none());

    let store = h.reopen(store, &guard).await.unwrap();
    assert_log(
        &store.read(run, Seq::ZERO).await.unwrap(),
        run,
        Seq(0),
        Seq(2),
        10,
    );
    let info = store.run_info(run).await.unwrap().unwrap();
    assert_eq!(info.summary, Some(summary("a", RunStatus::Running, 1)));
    assert!(store.run_info(absent).await.unwrap().is_none());
}

/// Of several writers racing to append the same seq, exactly one wins, every time.
pub async fn racers_on_one_seq_exactly_one_wins<H: Harness>(h: &H) {
    let (store, _guard) = h.open().await.unwrap();
    let run = RunId::new();
    const RACERS: usize = 16;
    for round in 0..20u64 {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|racer| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let bytes = Bytes::from(format!("round {round} racer {racer}"));
                    let outcome = store
                        .append(run, Seq(round), Batch::events([bytes.clone()]))
                        .await
                        .unwrap();
                    (outcome, bytes)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (Ok(next), bytes) => {
                    assert_eq!(next, Seq(round + 1));
                    winners.push(bytes);
                }
                (Err(conflict), _) => {
                    assert_eq!(conflict.expected, Seq(round));
                    assert_eq!(conflict.actual, Seq(round + 1));
                }
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        let stored = store.read(run, Seq(round)).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].bytes, winners[0]);
    }
}

/// Blobs are stored under their hash once; unknown hashes read as `None`.
pub async fn blobs_are_content_addressed<H: Harness>(h: &H) {
    let (store, guard) = h.open().await.unwrap();
    let bytes = Bytes::from_static(b"a large tool output");
    let hash = store.put_blob(bytes.clone()).await.unwrap();
    assert_eq!(hash, BlobHash::of(&bytes));
    assert_eq!(store.put_blob(bytes.clone()).await.unwrap(), hash);
    assert_eq!(store.get_blob(hash).await.unwrap(), Some(bytes.clone()));
    assert_eq!(
        store.get_blob(BlobHash::of(b"never stored")).await.unwrap(),
        None
    );
    let empty = store.put_blob(Bytes::new()).await.unwrap();
    assert_eq!(store.get_blob(empty).await.unwrap(), Some(Bytes::new()));

    // Blobs written with an append, including one already stored.
    let run = RunId::new();
    let in_batch = Bytes::from_static(b"an LLM response body");
    append_ok(
        &store,
        run,
        Seq::ZERO,
        Batch::events([event_bytes(run, Seq(0), 5)]).with_blobs([in_batch.clone(), bytes.clone()]),
    )
    .await;
    let store = h.reopen(store, &guard).await.unwrap();
    assert_eq!(
        store.get_blob(BlobHash::of(&in_batch)).await.unwrap(),
        Some(in_batch)
    );
    assert_eq!(store.get_blob(hash).await.unwrap(), Some(bytes));
    assert_eq!(store.get_blob(empty).await.unwrap(), Some(Bytes::new()));
}

/// Summaries are replaced when a batch carries one and kept otherwise; runs list
/// oldest first with their lengths.
pub async fn summaries_and_list_runs<H: Harness>(h: &H) {
    let (store, guard) = h.open().await.unwrap();
    assert!(store.list_runs().await.unwrap().is_empty());
    let runs: Vec<RunId> = (0..5).map(|_| RunId::new()).collect();
    for (i, run) in runs.iter().enumerate().rev() {
        let batch = Batch::events([event_bytes(*run, Seq(0), 8)]);
        let batch = if i % 2 == 0 {
            batch.with_summary(summary(&format!("agent{i}"), RunStatus::Running, 1))
        } else {
            batch
        };
        let next = append_ok(&store, *run, Seq::ZERO, batch).await;
        fill(&store, *run, next, i as u64, 8).await;
    }
    // A batch without a summary keeps the last one; one with a summary replaces it.
    fill(&store, runs[0], Seq(1), 1, 8).await;
    append_ok(
        &store,
        runs[2],
        Seq(3),
        Batch::events([event_bytes(runs[2], Seq(3), 8)]).with_summary(summary(
            "agent2",
            RunStatus::Completed,
            2,
        )),
    )
    .await;

    let check = async |store: &H::Store| {
        let listed = store.list_runs().await.unwrap();
        assert_eq!(
            listed.iter().map(|i| i.run).collect::<Vec<_>>(),
            runs,
            "runs are listed oldest first"
        );
        let lens: Vec<u64> = listed.iter().map(|i| i.next_seq.0).collect();
        assert_eq!(lens, vec![2, 2, 4, 4, 5]);
        assert_eq!(
            listed[0].summary,
            Some(summary("agent0", RunStatus::Running, 1))
        );
        assert_eq!(listed[1].summary, None);
        assert_eq!(
            listed[2].summary,
            Some(summary("agent2", RunStatus::Completed, 2))
        );
        assert_eq!(
            store.run_info(runs[2]).await.unwrap().unwrap().summary,
            listed[2].summary
        );
    };
    check(&store).await;
    let store = h.reopen(store, &guard).await.unwrap();
    check(&store).await;
}

/// Deleting a run removes its events and summary durably, keeps blobs, and lets the
/// id start over at seq 0.
pub async fn delete_run_removes_the_log_and_keeps_blobs<H: Harness>(h: &H) {
    let (store, guard) = h.open().await.unwrap();
    let (gone, kept) = (RunId::new(), RunId::new());
    let blob = Bytes::from_static(b"shared blob");
    append_ok(
        &store,
        gone,
        Seq::ZERO,
        Batch::events([event_bytes(gone, Seq(0), 20)])
            .with_blobs([blob.clone()])
            .with_summary(summary("a", RunStatus::Running, 1)),
    )
    .await;
    fill(&store, gone, Seq(1), 5, 20).await;
    fill(&store, kept, Seq::ZERO, 3, 20).await;

    assert!(store.delete_run(gone).await.unwrap());
    assert!(!store.delete_run(gone).await.unwrap());
    assert!(!store.delete_run(RunId::new()).await.unwrap());
    assert!(store.read(gone, Seq::ZERO).await.unwrap().is_empty());
    assert!(store.run_info(gone).await.unwrap().is_none());

    let store = h.reopen(store, &guard).await.unwrap();
    assert!(store.read(gone, Seq::ZERO).await.unwrap().is_empty());
    assert!(store.run_info(gone).await.unwrap().is_none());
    let listed: Vec<RunId> = store
        .list_runs()
        .await
        .unwrap()
        .iter()
        .map(|i| i.run)
        .collect();
    assert_eq!(listed, vec![kept]);
    assert_log(
        &store.read(kept, Seq::ZERO).await.unwrap(),
        kept,
        Seq(0),
        Seq(3),
        20,
    );
    assert_eq!(
        store.get_blob(BlobHash::of(&blob)).await.unwrap(),
        Some(blob)
    );

    // The id is free again: it starts over at 0, and a stale writer conflicts.
    let stale = store
        .append(gone, Seq(6), Batch::events([Bytes::from_static(b"late")]))
        .await
        .unwrap();
    assert_eq!(stale.unwrap_err().actual, Seq::ZERO);
    fill(&store, gone, Seq::ZERO, 2, 7).await;
    assert_log(
        &store.read(gone, Seq::ZERO).await.unwrap(),
        gone,
        Seq(0),
        Seq(2),
        7,
    );
}

/// A batch is all-or-nothing: a concurrent reader never sees part of one, and its
/// blobs and summary arrive with its events.
pub async fn batches_are_atomic<H: Harness>(h: &H) {
    let (store, guard) = h.open().await.unwrap();
    let run = RunId::new();
    const BATCH: u64 = 8;
    const BATCHES: u64 = 40;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (reading_tx, reading) = tokio::sync::oneshot::channel();
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut reading_tx = Some(reading_tx);
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let records = store.read(run, Seq::ZERO).await.unwrap();
                let n = records.len() as u64;
                assert_eq!(n % BATCH, 0, "a reader saw {n} events, part of a batch");
                if let Some(info) = store.run_info(run).await.unwrap() {
                    assert_eq!(info.next_seq.0 % BATCH, 0, "run_info saw part of a batch");
                    if info.next_seq.0 > 0 {
                        let turns = info.summary.expect("summary written with the events").turns;
                        assert!(
                            u64::from(turns) * BATCH >= n,
                            "summary older than events read before it"
                        );
                    }
                }
                reads += 1;
                if let Some(tx) = reading_tx.take() {
                    let _ = tx.send(());
                }
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    reading.await.unwrap();
    let mut next = Seq::ZERO;
    for b in 0..BATCHES {
        let blob = Bytes::from(format!("blob of batch {b}"));
        let batch = Batch::events((0..BATCH).map(|i| event_bytes(run, next.plus(i), 64)))
            .with_blobs([blob])
            .with_summary(summary("atomic", RunStatus::Running, (b + 1) as u32));
        next = append_ok(&store, run, next, batch).await;
        tokio::task::yield_now().await;
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.await.unwrap() > 0);
    let store = h.reopen(store, &guard).await.unwrap();
    assert_log(
        &store.read(run, Seq::ZERO).await.unwrap(),
        run,
        Seq(0),
        next,
        64,
    );
    for b in 0..BATCHES {
        let blob = Bytes::from(format!("blob of batch {b}"));
        assert!(store.get_blob(BlobHash::of(&blob)).await.unwrap().is_some());
    }
}

/// After reopening, every acknowledged event is there byte-for-byte, across runs and
/// record sizes, and appends continue where the log ends.
pub async fn reopen_keeps_every_acknowledged_event<H: Harness>(h: &H) {
    let (mut store, guard) = h.open().await.unwrap();
    let sizes = [0usize, 1, 200, 4096, 100_000];
    let runs: Vec<RunId> = (0..4).map(|_| RunId::new()).collect();
    let mut lens = vec![Seq::ZERO; runs.len()];
    for round in 0..3 {
        let writers: Vec<_> = runs
            .iter()
            .zip(&lens)
            .enumerate()
            .map(|(i, (&run, &from))| {
                let store = store.clone();
                let len = sizes[(i + round) % sizes.len()];
                tokio::spawn(async move { fill(&store, run, from, 10, len).await })
            })
            .collect();
        for (len, writer) in lens.iter_mut().zip(writers) {
            *len = writer.await.unwrap();
        }
        store = h.reopen(store, &guard).await.unwrap();
        for (i, (&run, &len)) in runs.iter().zip(&lens).enumerate() {
            let records = store.read(run, Seq::ZERO).await.unwrap();
            assert_eq!(records.len() as u64, len.0);
            for (r, chunk) in records.chunks(10).enumerate() {
                let size = sizes[(i + r) % sizes.len()];
                assert_log(
                    chunk,
                    run,
                    chunk[0].seq,
                    chunk[0].seq.plus(chunk.len() as u64),
                    size,
                );
            }
            assert_eq!(store.run_info(run).await.unwrap().unwrap().next_seq, len);
        }
    }
    let distinct: BTreeSet<RunId> = store
        .list_runs()
        .await
        .unwrap()
        .iter()
        .map(|i| i.run)
        .collect();
    assert_eq!(distinct, runs.iter().copied().collect());
}

/// An empty batch is a valid compare-and-set: it creates a missing run at seq 0,
/// leaves an existing one as it is, and still conflicts on a wrong seq.
pub async fn empty_batches<H: Harness>(h: &H) {
    let (store, guard) = h.open().await.unwrap();
    let run = RunId::new();
    assert_eq!(
        store
            .append(run, Seq::ZERO, Batch::default())
            .await
            .unwrap(),
        Ok(Seq::ZERO)
    );
    let info = store
        .run_info(run)
        .await
        .unwrap()
        .expect("an empty batch creates the run");
    assert_eq!(info.next_seq, Seq::ZERO);
    fill(&store, run, Seq::ZERO, 2, 10).await;
    assert_eq!(
        store.append(run, Seq(2), Batch::default()).await.unwrap(),
        Ok(Seq(2))
    );
    assert_eq!(
        store
            .append(run, Seq(1), Batch::default())
            .await
            .unwrap()
            .unwrap_err()
            .actual,
        Seq(2)
    );
    // A batch with only a summary updates it.
    let only_summary = Batch::default().with_summary(summary("s", RunStatus::Suspended, 3));
    assert_eq!(
        store.append(run, Seq(2), only_summary).await.unwrap(),
        Ok(Seq(2))
    );
    let store = h.reopen(store, &guard).await.unwrap();
    let info = store.run_info(run).await.unwrap().unwrap();
    assert_eq!(info.next_seq, Seq(2));
    assert_eq!(info.summary, Some(summary("s", RunStatus::Suspended, 3)));
    assert_log(
        &store.read(run, Seq::ZERO).await.unwrap(),
        run,
        Seq(0),
        Seq(2),
        10,
    );
}

/// Records of 1 MiB and a 4 MiB blob round-trip, before and after reopening.
pub async fn large_records<H: Harness>(h: &H) {
    let (store, guard) = h.open().await.unwrap();
    let run = RunId::new();
    const MIB: usize = 1 << 20;
    append_ok(
        &store,
        run,
        Seq::ZERO,
        Batch::events([event_bytes(run, Seq(0), MIB), event_bytes(run, Seq(1), MIB)]),
    )
    .await;
    fill(&store, run, Seq(2), 1, MIB).await;
    let blob = event_bytes(RunId::new(), Seq(0), 4 * MIB);
    let hash = store.put_blob(blob.clone()).await.unwrap();
    assert_log(
        &store.read(run, Seq::ZERO).await.unwrap(),
        run,
        Seq(0),
        Seq(3),
        MIB,
    );
    let store = h.reopen(store, &guard).await.unwrap();
    assert_log(
        &store.read(run, Seq::ZERO).await.unwrap(),
        run,
        Seq(0),
        Seq(3),
        MIB,
    );
    assert_eq!(store.get_blob(hash).await.unwrap(), Some(blob));
}
