//! The lease suite every [`Leases`] backend passes: one holder per run, stale
//! epochs refused, expired leases taken over, runs waiting for a person unclaimed
//! until answered. [`lease_tests!`](crate::lease_tests) turns each check into a test.

// Test code shipped for other crates' tests: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::cases::summary;
use super::event_bytes;
use crate::error::{Error, Result};
use crate::id::{BlobHash, RunId, Seq};
use crate::leases::{Epoch, FencedStore, Lease, Leases, Refusal, WorkerId};
use crate::store::{Batch, EventStore, RunStatus};

/// How the lease suite gets stores.
pub trait LeaseHarness: Send + Sync {
    /// The store under test.
    type Store: Leases + Clone;
    /// Keeps the store's data until dropped.
    type Guard: Send + Sync;

    /// A fresh store whose claims last `lease_time`.
    fn open(
        &self,
        lease_time: Duration,
    ) -> impl Future<Output = Result<(Self::Store, Self::Guard)>> + Send;

    /// Another handle on the same data, as another worker process would open it,
    /// whose claims last `lease_time`.
    fn another(
        &self,
        guard: &Self::Guard,
        lease_time: Duration,
    ) -> impl Future<Output = Result<Self::Store>> + Send;
}

/// Generates one `#[tokio::test]` per check of the lease suite.
#[macro_export]
macro_rules! lease_tests {
    ($harness:expr) => {
        $crate::lease_tests!(@cases $harness;
            two_claimers_never_both_hold_a_run,
            an_append_with_a_stale_epoch_is_refused,
            an_expired_lease_is_taken_over,
            answers_wake_workers_and_leases_are_released_and_swept,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::leases::$case(&$harness).await;
            }
        )*
    };
}

const LONG: Duration = Duration::from_secs(30);

fn summarized(run: RunId, seq: Seq, status: RunStatus) -> Batch {
    Batch::events([event_bytes(run, seq, 40)]).with_summary(summary("coding_agent", status, 0))
}

/// Creates a run whose summary says `status`, through a plain append.
async fn run_with_status<S: EventStore>(store: &S, status: RunStatus) -> RunId {
    let run = RunId::new();
    let batch = summarized(run, Seq::ZERO, status);
    store.append(run, Seq::ZERO, batch).await.unwrap().unwrap();
    run
}

/// Retries `attempt` every 20 ms until it yields something; fails after `within`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Workers on separate handles claim concurrently: every runnable run is claimed
/// exactly once, and runs waiting or finished are never claimed. Of racing
/// `claim_run`s of one run, exactly one wins.
pub async fn two_claimers_never_both_hold_a_run<H: LeaseHarness>(h: &H) {
    let (setup, guard) = h.open(LONG).await.unwrap();
    const RUNS: usize = 60;
    let mut runs = BTreeSet::new();
    for _ in 0..RUNS {
        runs.insert(run_with_status(&setup, RunStatus::Running).await);
    }
    run_with_status(&setup, RunStatus::Suspended).await;
    run_with_status(&setup, RunStatus::Completed).await;

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let mut workers = Vec::new();
    for i in 0..4 {
        let (store, barrier) = (h.another(&guard, LONG).await.unwrap(), barrier.clone());
        workers.push(tokio::spawn(async move {
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
        }));
    }
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let distinct: BTreeSet<RunId> = claimed.iter().map(|l| l.run).collect();
    assert_eq!(claimed.len(), RUNS, "some run was claimed twice");
    assert_eq!(distinct, runs);
    assert!(claimed.iter().all(|l| l.epoch == Epoch(1) && l.is_live()));

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
pub async fn an_append_with_a_stale_epoch_is_refused<H: LeaseHarness>(h: &H) {
    let (store, guard) = h.open(Duration::from_millis(300)).await.unwrap();
    let (a, b) = (WorkerId::new("a"), WorkerId::new("b"));
    let run = RunId::new();
    // A process starting a run claims it first, creating it empty.
    let stale = store
        .claim_run(&a, run)
        .await
        .unwrap()
        .expect("a new run is free");
    assert_eq!(stale.epoch, Epoch(1));
    let first = Batch::events([event_bytes(run, Seq(0), 10)]);
    let next = store.append_fenced(&stale, Seq::ZERO, first).await.unwrap();
    assert_eq!(next, Ok(Seq(1)));
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
    let other = h.another(&guard, LONG).await.unwrap();
    assert!(
        other.claim_run(&b, run).await.unwrap().is_none(),
        "a live lease was taken"
    );
    let fresh = eventually(Duration::from_secs(20), "the takeover", || async {
        other.claim_run(&b, run).await.unwrap()
    })
    .await;
    assert_eq!(fresh.epoch, Epoch(2));

    // A wakes up mid-turn: its append is refused, and nothing of it is written.
    let blob = Bytes::from_static(b"the stale worker's tool output");
    let late = summarized(run, Seq(1), RunStatus::Failed).with_blobs([blob.clone()]);
    match store.append_fenced(&stale, Seq(1), late).await.unwrap() {
        Err(Refusal::Fenced(f)) => {
            assert_eq!((f.run, f.held, f.current), (run, Epoch(1), Epoch(2)));
            assert!(f.to_string().contains("taken over"), "{f}");
        }
        other => panic!("a stale append was not fenced: {other:?}"),
    }
    assert_eq!(store.read(run, Seq::ZERO).await.unwrap().len(), 1);
    assert_eq!(store.get_blob(BlobHash::of(&blob)).await.unwrap(), None);
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
    let renewed = store.renew(std::slice::from_ref(&stale)).await.unwrap();
    assert!(
        matches!(renewed[..], [Err(f)] if f.current == Epoch(2)),
        "{renewed:?}"
    );
    assert!(store.release(&stale).await.unwrap().is_err());

    // The new holder writes on.
    let view = FencedStore::new(other.clone(), fresh);
    let next = view
        .append(run, Seq(1), Batch::events([event_bytes(run, Seq(1), 10)]))
        .await
        .unwrap();
    assert_eq!(next, Ok(Seq(2)));
}

/// While its holder renews, a lease is not taken; once it expires, `claim` takes
/// the run over (no sweep needed) and moves the epoch on.
pub async fn an_expired_lease_is_taken_over<H: LeaseHarness>(h: &H) {
    let (holder_store, guard) = h.open(Duration::from_millis(1500)).await.unwrap();
    let run = run_with_status(&holder_store, RunStatus::Running).await;
    let holder = WorkerId::new("holder");
    let mut lease = holder_store
        .claim(&holder, 10)
        .await
        .unwrap()
        .pop()
        .expect("runnable");
    let thief_store = h.another(&guard, LONG).await.unwrap();
    let thief = WorkerId::new("thief");

    // Renewing every 150 ms (a tenth of the lease) for three lease times.
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

    let taken: Lease = eventually(Duration::from_secs(20), "the takeover", || async {
        thief_store.claim(&thief, 10).await.unwrap().pop()
    })
    .await;
    assert_eq!((taken.run, taken.epoch), (run, Epoch(lease.epoch.0 + 1)));
    assert_eq!(taken.worker, thief);
    let renewed = holder_store.renew(&[lease]).await.unwrap();
    assert!(renewed[0].is_err(), "the old holder renewed a lost lease");
}

/// A run waiting for a person is not claimable; the answer (an append whose summary
/// says running, from another handle) makes it claimable and wakes the workers.
/// Releasing a run still running hands it on; sweeping clears expired leases.
pub async fn answers_wake_workers_and_leases_are_released_and_swept<H: LeaseHarness>(h: &H) {
    let (worker_store, guard) = h.open(Duration::from_millis(400)).await.unwrap();
    let cli = h.another(&guard, LONG).await.unwrap();
    let worker = WorkerId::new("w");
    let mut hint = worker_store.work_hint();
    // A store that listens for hints over a connection hints once it is connected.
    hint.wait(Duration::from_secs(2)).await;

    let run = run_with_status(&cli, RunStatus::Suspended).await;
    assert!(worker_store.claim(&worker, 10).await.unwrap().is_empty());
    let answer = summarized(run, Seq(1), RunStatus::Running);
    cli.append(run, Seq(1), answer).await.unwrap().unwrap();
    assert!(
        hint.wait(Duration::from_secs(20)).await,
        "an answer from another handle did not wake the worker"
    );
    let lease = worker_store
        .claim(&worker, 10)
        .await
        .unwrap()
        .pop()
        .expect("runnable");
    assert_eq!(lease.run, run);

    // Released while still running (the worker shuts down): claimable again, and
    // the release is a hint.
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

    // The worker dies holding it: any worker's sweep clears the expired lease.
    let swept = eventually(Duration::from_secs(20), "the sweep", || async {
        Some(cli.sweep().await.unwrap()).filter(|s| !s.is_empty())
    })
    .await;
    assert_eq!(swept, vec![run]);
    let late = Batch::events([Bytes::from_static(b"late")]);
    let fenced = worker_store
        .append_fenced(&again, Seq(2), late)
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
    let done = summarized(run, Seq(2), RunStatus::Completed);
    worker_store
        .append_fenced(&last, Seq(2), done)
        .await
        .unwrap()
        .unwrap();
    worker_store.release(&last).await.unwrap().unwrap();
    assert!(worker_store.claim(&worker, 10).await.unwrap().is_empty());
}
