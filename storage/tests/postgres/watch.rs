//! Watching across connections: a watcher in one store sees appends made through
//! another (as another process would), woken by NOTIFY alone.

use std::time::Duration;

use futures::StreamExt;
use keel_storage::conformance::event_bytes;
use keel_storage::{Batch, EventStore, PgOptions, PgStore, RunId, Seq};

use super::fresh_url;

/// The watcher polls once an hour, so only notifications can wake it in time.
async fn deaf_to_polling(url: &str) -> PgStore {
    PgOptions::new(url)
        .unwrap()
        .poll_interval(Duration::from_secs(3600))
        .open()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_appends_from_another_connection_once_each() {
    let url = fresh_url().await;
    let watcher_store = deaf_to_polling(&url).await;
    let writers: Vec<PgStore> = futures::future::join_all((0..2).map(|_| PgStore::open(&url)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let run = RunId::new();
    writers[0]
        .append(
            run,
            Seq::ZERO,
            Batch::events([event_bytes(run, Seq(0), 64)]),
        )
        .await
        .unwrap()
        .unwrap();
    let mut stream = watcher_store.watch(run, Seq::ZERO);
    let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.seq, Seq(0));

    // Two writers in turn (each appending where the other left off), in batches.
    const TOTAL: u64 = 400;
    let writer = tokio::spawn({
        let writers = writers.clone();
        async move {
            let mut next = Seq(1);
            let mut turn = 0;
            while next.0 < TOTAL {
                let n = (1 + next.0 % 4).min(TOTAL - next.0);
                let batch =
                    Batch::events((next.0..next.0 + n).map(|i| event_bytes(run, Seq(i), 64)));
                next = writers[turn % 2]
                    .append(run, next, batch)
                    .await
                    .unwrap()
                    .unwrap();
                turn += 1;
            }
        }
    });
    for want in 1..TOTAL {
        let record = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no notification woke the watcher for seq {want}"))
            .unwrap()
            .unwrap();
        assert_eq!(record.seq, Seq(want));
        assert_eq!(record.bytes, event_bytes(run, Seq(want), 64));
    }
    writer.await.unwrap();
    let extra = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(
        extra.is_err(),
        "the watcher yielded more than was appended: {extra:?}"
    );
}
