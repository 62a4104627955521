//! Leases and fencing: one holder per run, stale epochs refused, expired leases
//! taken over, runs waiting for a person unclaimed until answered.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_storage::conformance::event_bytes;
use keel_storage::{
    Batch, Epoch, Error, EventStore, FencedStore, Lease, Leases, PgStore, Refusal, RunId,
    RunStatus, Seq, WorkerId,
};

use super::{fresh_url, open_with_lease, summary};

/// Creates a run whose summary says `status`, through a plain append.
async fn run_with_status(store: &PgStore, status: RunStatus) -> RunId {
    let run = RunId::new();
    let batch = Batch::events([event_bytes(run, Seq::ZERO, 40)]).with_summary(summary(status));
    store.append(run, Seq::ZERO, batch).await.unwrap().unwrap();
    run
}

/// Claims `run` for `worker`, retrying until the previous lease has expired; fails
/// the test after `within`.
async fn take_over(store: &PgStore, worker: &WorkerId, run: RunId, within: Duration) -> Lease {
    let deadline = Instant::now() + within;
    loop {
        if let Some(lease) = store.claim_run(worker, run).await.unwrap() {
            return lease;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} was not taken over within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Workers in separate stores (separate pools, as separate processes would have)
/// claim concurrently: every runnable run is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claimers_never_both_hold_a_run() {
    let url = fresh_url().await;
    let setup = PgStore::open(&url).await.unwrap();
    const RUNS: usize = 60;
    let mut runs = BTreeSet::new();
    for _ in 0..RUNS {
        runs.insert(run_with_status(&setup, RunStatus::Running).await);
    }
    // Suspended and finished runs are never claimed.
    run_with_status(&setup, RunStatus::Suspended).await;
    run_with_status(&setup, RunStatus::Completed).await;

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (url, barrier) = (url.clone(), barrier.clone());
            tokio::spawn(async move {
                let store = PgStore::open(&url).await.unwrap();
                let worker = WorkerId::new(format!("worker-{i}"));
                barrier.wait().await;
                let mut mine = Vec::new();
                loop {
                    let leases = store.claim(&worker, 3).await.unwrap();
                    if leases.is_empty() {
                        return mine;
                    }
                    mine.extend(leases);
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let distinct: BTreeSet<RunId> = claimed.iter().map(|l| l.run).collect();
    assert_eq!(claimed.len(), RUNS, "some run was claimed twice");
    assert_eq!(distinct, runs);
    assert!(claimed.iter().all(|l| l.epoch == Epoch(1) && l.is_live()));

    // Racing claims of one run: exactly one wins.
    let run = run_with_status(&setup, RunStatus::Running).await;
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = setup.clone();
            tokio::spawn(async move {
                store
                    .claim_run(&WorkerId::new(format!("racer-{i}")), run)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}

/// A worker whose lease was taken over can no longer append, renew or release:
/// each is refused with `Fenced`, and nothing it tried is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_with_a_stale_epoch_is_refused() {
    let url = fresh_url().await;
    let store = open_with_lease(&url, Duration::from_millis(300)).await;
    let (a, b) = (WorkerId::new("a"), WorkerId::new("b"));
    let run = RunId::new();
    // A process starting a run claims it first, creating it empty.
    let stale = store
        .claim_run(&a, run)
        .await
        .unwrap()
        .expect("a new run is free");
    assert_eq!(stale.epoch, Epoch(1));
    let next = store
        .append_fenced(
            &stale,
            Seq::ZERO,
            Batch::events([event_bytes(run, Seq(0), 10)]),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, Seq(1));
    // A wrong seq under a current lease is a conflict, not fencing.
    let wrong = store
        .append_fenced(&stale, Seq(5), Batch::events([Bytes::from_static(b"x")]))
        .await
        .unwrap();
    assert!(
        matches!(wrong, Err(Refusal::Conflict(c)) if c.actual == Seq(1)),
        "{wrong:?}"
    );

    // A stops renewing (paused, partitioned); B takes the run over once it expires.
    let other = open_with_lease(&url, Duration::from_secs(30)).await;
    assert!(
        other.claim_run(&b, run).await.unwrap().is_none(),
        "a live lease was taken"
    );
    let fresh = take_over(&other, &b, run, Duration::from_secs(20)).await;
    assert_eq!(fresh.epoch, Epoch(2));

    // A wakes up mid-turn: its append is refused in the same statement, and nothing
    // of it (event, blob, summary) is written.
    let blob = Bytes::from_static(b"the stale worker's tool output");
    let refused = store
        .append_fenced(
            &stale,
            Seq(1),
            Batch::events([Bytes::from_static(b"stale")])
                .with_blobs([blob.clone()])
                .with_summary(summary(RunStatus::Failed)),
        )
        .await
        .unwrap();
    match refused {
        Err(Refusal::Fenced(f)) => {
            assert_eq!((f.run, f.held, f.current), (run, Epoch(1), Epoch(2)));
            assert!(f.to_string().contains("taken over"), "{f}");
        }
        other => panic!("a stale append was not fenced: {other:?}"),
    }
    assert_eq!(store.read(run, Seq::ZERO).await.unwrap().len(), 1);
    assert_eq!(
        store
            .get_blob(keel_storage::BlobHash::of(&blob))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.run_info(run).await.unwrap().unwrap().summary, None);
    // Through the engine's view of the store, the refusal is `Error::Fenced`.
    let view = FencedStore::new(store.clone(), stale.clone());
    let err = view
        .append(run, Seq(1), Batch::events([Bytes::from_static(b"stale")]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Fenced(_)) && !err.is_retryable(),
        "{err:?}"
    );
    // Renewing and releasing the stale lease are refused too.
    let renewed = store.renew(std::slice::from_ref(&stale)).await.unwrap();
    assert!(
        matches!(renewed[..], [Err(f)] if f.current == Epoch(2)),
        "{renewed:?}"
    );
    assert!(store.release(&stale).await.unwrap().is_err());

    // The new holder writes on.
    let view = FencedStore::new(other.clone(), fresh.clone());
    let next = view
        .append(run, Seq(1), Batch::events([event_bytes(run, Seq(1), 10)]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, Seq(2));
}

/// An expired lease is taken over by `claim` (no sweep needed), and not before it
/// expires while its holder renews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over() {
    let url = fresh_url().await;
    let holder_store = open_with_lease(&url, Duration::from_millis(1500)).await;
    let run = run_with_status(&holder_store, RunStatus::Running).await;
    let holder = WorkerId::new("holder");
    let [mut lease] = <[Lease; 1]>::try_from(holder_store.claim(&holder, 10).await.unwrap())
        .expect("one runnable run");
    let thief_store = open_with_lease(&url, Duration::from_secs(30)).await;
    let thief = WorkerId::new("thief");

    // While the holder renews (every 150 ms, a tenth of the lease), nobody else gets
    // the run, for three lease times.
    let until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < until {
        assert!(thief_store.claim(&thief, 10).await.unwrap().is_empty());
        let renewed = holder_store
            .renew(std::slice::from_ref(&lease))
            .await
            .unwrap();
        lease = renewed
            .into_iter()
            .next()
            .unwrap()
            .expect("the holder keeps its lease");
        assert!(lease.is_live());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // The holder stops renewing: once the lease expires on the server's clock, a
    // claim takes the run over and moves the epoch on.
    let started = Instant::now();
    let taken = loop {
        let leases = thief_store.claim(&thief, 10).await.unwrap();
        if let Some(lease) = leases.into_iter().next() {
            break lease;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never taken over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((taken.run, taken.epoch), (run, Epoch(lease.epoch.0 + 1)));
    assert_eq!(taken.worker, thief);
    let renewed = holder_store.renew(&[lease]).await.unwrap();
    assert!(renewed[0].is_err(), "the old holder renewed a lost lease");
}

/// A run waiting for a person is not claimable; the answer (an append whose summary
/// says running) makes it claimable and wakes workers in other processes. Releasing
/// a run still running hands it on; sweeping clears expired leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_wake_workers_and_leases_are_released_and_swept() {
    let url = fresh_url().await;
    let cli = PgStore::open(&url).await.unwrap();
    let worker_store = open_with_lease(&url, Duration::from_millis(400)).await;
    let worker = WorkerId::new("w");
    let mut hint = worker_store.work_hint();
    // The listener's first connection is itself a hint (re-check everything).
    assert!(
        hint.wait(Duration::from_secs(20)).await,
        "the listener never connected"
    );

    let run = run_with_status(&cli, RunStatus::Suspended).await;
    assert!(worker_store.claim(&worker, 10).await.unwrap().is_empty());
    let answer =
        Batch::events([event_bytes(run, Seq(1), 40)]).with_summary(summary(RunStatus::Running));
    cli.append(run, Seq(1), answer).await.unwrap().unwrap();
    assert!(
        hint.wait(Duration::from_secs(20)).await,
        "an answer in another process did not wake the worker"
    );
    let lease = worker_store
        .claim(&worker, 10)
        .await
        .unwrap()
        .pop()
        .expect("runnable");
    assert_eq!(lease.run, run);

    // Released while still running (the worker shuts down): claimable again, and the
    // release is a hint.
    worker_store.release(&lease).await.unwrap().unwrap();
    assert!(hint.wait(Duration::from_secs(20)).await);
    let again = worker_store
        .claim(&worker, 10)
        .await
        .unwrap()
        .pop()
        .expect("released");
    assert_eq!(
        again.epoch,
        Epoch(lease.epoch.0 + 2),
        "a release moves the epoch on"
    );

    // A worker dies holding it: any worker's sweep clears the expired lease.
    let deadline = Instant::now() + Duration::from_secs(20);
    let swept = loop {
        let swept = cli.sweep().await.unwrap();
        if !swept.is_empty() {
            break swept;
        }
        assert!(
            Instant::now() < deadline,
            "the expired lease was never swept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(swept, vec![run]);
    let fenced = worker_store
        .append_fenced(&again, Seq(2), Batch::events([Bytes::from_static(b"late")]))
        .await
        .unwrap();
    assert!(matches!(fenced, Err(Refusal::Fenced(_))), "{fenced:?}");

    // Finished: the last holder releases it, and nobody claims it again.
    let last = worker_store
        .claim(&worker, 10)
        .await
        .unwrap()
        .pop()
        .expect("swept");
    let done =
        Batch::events([event_bytes(run, Seq(2), 40)]).with_summary(summary(RunStatus::Completed));
    worker_store
        .append_fenced(&last, Seq(2), done)
        .await
        .unwrap()
        .unwrap();
    worker_store.release(&last).await.unwrap().unwrap();
    assert!(worker_store.claim(&worker, 10).await.unwrap().is_empty());
}
