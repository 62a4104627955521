//! Faults: the server crashes (`pg_ctl stop -m immediate`) and restarts mid-use;
//! a proxy cuts every connection mid-use. Writers keep appending through it all,
//! treating errors as a real caller must (retryable; the outcome of the failed
//! append unknown, so re-read the log's length). Afterwards every acknowledged event
//! is there byte for byte, the logs have no gap, and a watcher saw each event once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use keel_storage::conformance::{TestPostgres, event_bytes};
use keel_storage::{Batch, EventStore, PgOptions, PgStore, Record, Result, RunId, Seq};

use super::proxy::Proxy;

const EVENT: usize = 100;

/// A writer appending to its own run until stopped, counting acknowledgements and
/// errors.
struct Writer {
    run: RunId,
    acked: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Seq>,
}

fn start_writers(store: &PgStore, n: usize, stop: &Arc<AtomicBool>) -> Vec<Writer> {
    (0..n)
        .map(|_| {
            let run = RunId::new();
            let (acked, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let task = tokio::spawn({
                let (store, stop, acked, errors) =
                    (store.clone(), stop.clone(), acked.clone(), errors.clone());
                async move {
                    let mut next = Seq::ZERO;
                    while !stop.load(Ordering::Acquire) {
                        let batch = Batch::events([event_bytes(run, next, EVENT)]);
                        match store.append(run, next, batch).await {
                            Ok(Ok(n)) => {
                                next = n;
                                acked.fetch_add(1, Ordering::AcqRel);
                            }
                            // Only after an ambiguous failure: that append had landed.
                            Ok(Err(conflict)) => next = conflict.actual,
                            Err(err) => {
                                assert!(err.is_retryable(), "a fault gave a non-retryable {err:?}");
                                errors.fetch_add(1, Ordering::AcqRel);
                                next = resync(&store, run).await;
                            }
                        }
                    }
                    next
                }
            });
            Writer {
                run,
                acked,
                errors,
                task,
            }
        })
        .collect()
}

/// The run's length, once the store answers again.
async fn resync(store: &PgStore, run: RunId) -> Seq {
    loop {
        match store.run_info(run).await {
            Ok(info) => return info.map_or(Seq::ZERO, |i| i.next_seq),
            Err(err) => {
                assert!(err.is_retryable(), "{err:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Waits (polling, bounded) until every writer has `more` acknowledgements beyond
/// `from`.
async fn until_each_acked(writers: &[Writer], from: &[u64], more: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while writers
        .iter()
        .zip(from)
        .any(|(w, &f)| w.acked.load(Ordering::Acquire) < f + more)
    {
        assert!(
            Instant::now() < deadline,
            "the writers stopped making progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn acked(writers: &[Writer]) -> Vec<u64> {
    writers
        .iter()
        .map(|w| w.acked.load(Ordering::Acquire))
        .collect()
}

/// Stops the writers and checks every log and the watcher's view of the first.
async fn stop_and_check(
    store: &PgStore,
    writers: Vec<Writer>,
    stop: &AtomicBool,
    mut watch: BoxStream<'static, Result<Record>>,
) -> u64 {
    stop.store(true, Ordering::Release);
    let mut errors = 0;
    let watched = writers[0].run;
    let mut watched_len = Seq::ZERO;
    for writer in writers {
        let end = writer.task.await.unwrap();
        errors += writer.errors.load(Ordering::Acquire);
        let records = store.read(writer.run, Seq::ZERO).await.unwrap();
        assert_eq!(
            records.len() as u64,
            end.0,
            "the log's length is not what was acknowledged"
        );
        assert!(end.0 >= writer.acked.load(Ordering::Acquire));
        for record in &records {
            assert_eq!(record.bytes, event_bytes(writer.run, record.seq, EVENT));
        }
        if writer.run == watched {
            watched_len = end;
        }
    }
    for want in 0..watched_len.0 {
        let record = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .unwrap_or_else(|_| panic!("the watcher never got seq {want}"))
            .unwrap()
            .unwrap();
        assert_eq!(
            record.seq,
            Seq(want),
            "the watcher skipped or repeated a record"
        );
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_crash_and_restart_loses_nothing_acknowledged() {
    let server = tokio::task::spawn_blocking(TestPostgres::start)
        .await
        .unwrap();
    let server = Arc::new(server);
    let url = server.fresh_database().await;
    let options = PgOptions::new(&url)
        .unwrap()
        .statement_timeout(Duration::from_secs(5));
    let store = options.clone().open().await.unwrap();
    let watcher = options
        .poll_interval(Duration::from_millis(200))
        .open()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&store, 3, &stop);
    let watch = watcher.watch(writers[0].run, Seq::ZERO);

    until_each_acked(&writers, &[0, 0, 0], 20).await;
    let crashed = server.clone();
    tokio::task::spawn_blocking(move || crashed.stop_immediately())
        .await
        .unwrap();
    // Meanwhile callers get retryable errors.
    let deadline = Instant::now() + Duration::from_secs(30);
    while writers
        .iter()
        .any(|w| w.errors.load(Ordering::Acquire) == 0)
    {
        assert!(
            Instant::now() < deadline,
            "a writer saw no error while the server was down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarted = server.clone();
    tokio::task::spawn_blocking(move || restarted.start_again())
        .await
        .unwrap();
    until_each_acked(&writers, &acked(&writers), 20).await;

    let errors = stop_and_check(&store, writers, &stop, watch).await;
    eprintln!("the writers saw {errors} retryable errors while the server was down");
    assert!(errors >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_by_a_proxy_lose_nothing() {
    let server = TestPostgres::shared();
    let direct = server.fresh_database().await;
    let db = direct
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let proxy = Proxy::start(server.socket_path()).await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port());
    let options = PgOptions::new(&url)
        .unwrap()
        .statement_timeout(Duration::from_secs(5));
    let store = options.clone().open().await.unwrap();
    // Only notifications and the re-read after the listener reconnects can wake this
    // watcher in time: it polls once an hour.
    let watcher = options
        .poll_interval(Duration::from_secs(3600))
        .open()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&store, 2, &stop);
    let watch = watcher.watch(writers[0].run, Seq::ZERO);

    let mut cut = 0;
    for _ in 0..5 {
        until_each_acked(&writers, &acked(&writers), 15).await;
        cut += proxy.cut();
    }
    until_each_acked(&writers, &acked(&writers), 15).await;
    assert!(cut >= 5, "the proxy had no connections to cut");
    let errors = stop_and_check(&store, writers, &stop, watch).await;
    eprintln!("{cut} connections cut; the writers saw {errors} retryable errors");
}
