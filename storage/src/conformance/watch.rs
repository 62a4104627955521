//! The watch checks of the suite.

// Test code shipped for other crates' tests: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;

use super::cases::{append_ok, assert_log, fill};
use super::{Harness, event_bytes};
use crate::error::Result;
use crate::id::{RunId, Seq};
use crate::store::{Batch, EventStore, Record};

/// Waits for the next item of a watch stream, failing after a generous bound rather
/// than hanging the test run.
async fn next_record(stream: &mut futures::stream::BoxStream<'static, Result<Record>>) -> Record {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the watch stream produced nothing for 30 s")
        .expect("the watch stream ended")
        .expect("the watch stream failed")
}

/// A watch yields the stored records from its seq, then new ones as appended.
pub async fn watch_yields_existing_then_live<H: Harness>(h: &H) {
    let (store, _guard) = h.open().await.unwrap();
    let run = RunId::new();
    fill(&store, run, Seq::ZERO, 3, 30).await;
    let mut from_start = store.watch(run, Seq::ZERO);
    let mut from_two = store.watch(run, Seq(2));
    let mut unknown = store.watch(RunId::new(), Seq::ZERO);
    for seq in 0..3 {
        assert_log(
            &[next_record(&mut from_start).await],
            run,
            Seq(seq),
            Seq(seq + 1),
            30,
        );
    }
    assert_log(&[next_record(&mut from_two).await], run, Seq(2), Seq(3), 30);
    let next = fill(&store, run, Seq(3), 2, 30).await;
    append_ok(
        &store,
        run,
        next,
        Batch::events((5..8).map(|i| event_bytes(run, Seq(i), 30))),
    )
    .await;
    for seq in 3..8 {
        assert_log(
            &[next_record(&mut from_start).await],
            run,
            Seq(seq),
            Seq(seq + 1),
            30,
        );
        assert_log(
            &[next_record(&mut from_two).await],
            run,
            Seq(seq),
            Seq(seq + 1),
            30,
        );
    }
    // Nothing was appended to the other run, so its watcher has nothing yet.
    let idle = tokio::time::timeout(Duration::from_millis(50), unknown.next()).await;
    assert!(idle.is_err(), "a watch on an empty run yielded {idle:?}");
}

/// A watcher started while a writer appends sees every seq from its start exactly
/// once, in order.
pub async fn watch_started_mid_stream_has_no_gap_or_duplicate<H: Harness>(h: &H) {
    let (store, _guard) = h.open().await.unwrap();
    let run = RunId::new();
    const TOTAL: u64 = 300;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut started = Some(started_tx);
            let mut next = Seq::ZERO;
            while next.0 < TOTAL {
                let n = 1 + next.0 % 3;
                let batch = Batch::events(
                    (next.0..(next.0 + n).min(TOTAL)).map(|i| event_bytes(run, Seq(i), 40)),
                );
                next = append_ok(&store, run, next, batch).await;
                if next.0 >= 50
                    && let Some(tx) = started.take()
                {
                    let _ = tx.send(());
                }
                tokio::task::yield_now().await;
            }
        })
    };
    started_rx.await.unwrap();
    let mut late = store.watch(run, Seq(10));
    let mut seen = Vec::new();
    while seen.len() < (TOTAL - 10) as usize {
        seen.push(next_record(&mut late).await);
    }
    writer.await.unwrap();
    assert_log(&seen, run, Seq(10), Seq(TOTAL), 40);
}
