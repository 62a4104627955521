//! Leases and fencing: how many worker processes share the runs of one store.
//!
//! A store that many processes open at once (Postgres) lets a **worker** claim a run
//! with a time-limited **lease**, renew it while it drives the run, and release it
//! when the run finishes or waits for a person. Every change of hands — a claim, a
//! release, a sweep of an expired lease — moves the run's **fencing epoch** on, and
//! an append made under a lease ([`Leases::append_fenced`]) is accepted only while the
//! run is still at the lease's epoch. So a worker that was paused or cut off past its
//! lease and has lost the run can no longer write to it, even if it wakes mid-turn:
//! its append is refused with [`Fenced`], in the same statement that would have
//! written it.
//!
//! # Guarantees (of every implementation)
//!
//! - **One holder.** At any moment at most one lease on a run is current (its epoch
//!   is the run's epoch). Two concurrent claims of one run never both succeed.
//! - **Fencing.** `append_fenced(lease, …)` writes only if the run's epoch equals
//!   `lease.epoch` when the append commits; otherwise it writes nothing and returns
//!   [`Refusal::Fenced`]. A wrong expected seq is [`Refusal::Conflict`], as for a
//!   plain append. Fencing is checked by the store, never by the worker's clock.
//! - **Expiry.** Expiry is measured on the store's clock: a lease not renewed within
//!   the lease time can be claimed by another worker ([`Leases::claim`] takes expired
//!   leases over; [`Leases::sweep`] clears them). Until someone does, the late holder
//!   may still renew and write: nobody else is driving the run.
//! - **Runnable runs.** A run is *runnable* when its summary's status is
//!   [`RunStatus::Running`](crate::RunStatus::Running) and nobody holds a live lease
//!   on it: submitted, answered, or abandoned by a worker that died. A run waiting
//!   for a person (status `Suspended`) or finished is never claimed by `claim`, and
//!   holds no lease once released. An append that makes a run runnable (a status
//!   `Running` summary on an unleased run) wakes the workers ([`Leases::work_hint`]).
//! - **Local deadline.** [`Lease::is_live`] is this process's conservative view: the
//!   lease's time counted from *before* the request that took or renewed it was sent.
//!   A worker checks it before starting an effect and stops starting effects once it
//!   is past, since the store may have handed the run to another worker by then.
//!
//! Not guaranteed: an effect already started when the lease was lost (a command
//! running, a model call in flight) is not stopped by fencing; only its recorded
//! result is refused, and the run's new holder resolves it by the tool's in-flight
//! policy like any crash.
//!
//! Implementations: the Postgres store (the server's clock), and the memory store
//! (this process's clock; for tests of worker code). Every one passes the lease suite
//! (`conformance::leases`). sled does not implement `Leases`: one process owns a
//! sled store, and it keeps one writer per run with in-process claims.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::id::{RunId, Seq, Timestamp};
use crate::store::{AppendResult, Batch, Conflict, EventStore};

/// A run's fencing epoch: moved on every time the run changes hands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names a worker process in the store (shown to operators as a lease's holder).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WorkerId(String);

impl WorkerId {
    /// A worker with this name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// A name unique to this process: `host:pid:random`.
    pub fn for_this_process() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        // The last digits of a UUIDv7 are random.
        let random = uuid::Uuid::now_v7().simple().to_string();
        Self(format!("{host}:{}:{}", std::process::id(), &random[24..]))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkerId({})", self.0)
    }
}

/// A worker's claim on a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run: RunId,
    /// The run's epoch this claim holds; appends under it are fenced by it.
    pub epoch: Epoch,
    /// The holder.
    pub worker: WorkerId,
    /// When the lease expires, on the store's clock (milliseconds since the epoch).
    pub expires_at: Timestamp,
    /// When the lease expires at the latest, on this process's clock.
    pub deadline: Instant,
}

impl Lease {
    /// Whether the lease's time has not run out, on this process's clock (counted
    /// from before the request that took or renewed it). Check before starting an
    /// effect: past it, another worker may hold the run.
    pub fn is_live(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// The time left before the local deadline (zero once past it).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The run changed hands since this lease was taken: the write was refused and
/// nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "run {run} was taken over: this worker's lease holds epoch {held}, the run is at epoch {current}; stop driving it"
)]
pub struct Fenced {
    /// The run.
    pub run: RunId,
    /// The epoch of the refused lease.
    pub held: Epoch,
    /// The run's epoch now (0 if the run no longer exists).
    pub current: Epoch,
}

/// Why an append under a lease wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The expected seq was wrong: another writer appended first.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The lease is no longer current.
    #[error(transparent)]
    Fenced(#[from] Fenced),
}

/// The result of [`Leases::append_fenced`]: a store failure, or the log's new length,
/// or why nothing was written.
pub type FencedAppendResult = Result<std::result::Result<Seq, Refusal>>;

/// Wakes a worker when a run may have become runnable. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkHint(pub(crate) tokio::sync::watch::Receiver<u64>);

impl WorkHint {
    /// Waits until a run may have become runnable since the last call, or until
    /// `timeout` passes (a worker also polls: a hint can be lost with its sender, and
    /// leases expire without one). Returns whether a hint came.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        let hinted = matches!(
            tokio::time::timeout(timeout, self.0.changed()).await,
            Ok(Ok(()))
        );
        self.0.borrow_and_update();
        hinted
    }
}

/// Claims, renewals and fenced appends, for stores shared by many processes.
/// See the [module docs](self) for the guarantees.
pub trait Leases: EventStore {
    /// How long a lease lasts unless renewed.
    fn lease_time(&self) -> Duration;

    /// Claims up to `max` runnable runs (oldest first) that no live lease holds,
    /// taking expired leases over. Each claim moves its run's epoch on.
    fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Lease>>> + Send;

    /// Claims one run whatever its status, unless a live lease holds it (then
    /// `None`). Creates the run, empty, if it does not exist: a process starting a
    /// run claims it first and appends its first events under the lease.
    fn claim_run(
        &self,
        worker: &WorkerId,
        run: RunId,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send;

    /// Extends each lease by the lease time from now (the store's clock), in one
    /// request. The epoch stays; a lease that lost its run is `Fenced`.
    fn renew(
        &self,
        leases: &[Lease],
    ) -> impl Future<Output = Result<Vec<std::result::Result<Lease, Fenced>>>> + Send;

    /// Gives the run up (its epoch moves on). If it is still runnable, a worker is
    /// woken to take it.
    fn release(
        &self,
        lease: &Lease,
    ) -> impl Future<Output = Result<std::result::Result<(), Fenced>>> + Send;

    /// Clears every expired lease (moving their runs' epochs on) and wakes workers
    /// for the runnable ones. Returns the runs swept. Any worker may call it.
    fn sweep(&self) -> impl Future<Output = Result<Vec<RunId>>> + Send;

    /// Appends like [`EventStore::append`], if `lease` is still current.
    fn append_fenced(
        &self,
        lease: &Lease,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = FencedAppendResult> + Send;

    /// A hint that fires when a run may have become runnable, in any process.
    fn work_hint(&self) -> WorkHint;
}

/// An [`EventStore`] view whose appends to one run go through a lease: the form the
/// engine's driver holds while a worker drives that run. A refused lease surfaces as
/// [`Error::Fenced`](crate::Error::Fenced) (the driver stops, as on any store
/// failure); appends to other runs (a fork, a child run) are plain.
#[derive(Debug, Clone)]
pub struct FencedStore<S> {
    store: S,
    lease: Lease,
}

impl<S: Leases + Clone> FencedStore<S> {
    /// Appends to `lease.run` are fenced by `lease`.
    pub fn new(store: S, lease: Lease) -> Self {
        Self { store, lease }
    }

    /// The lease appends are fenced by.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl<S: Leases + Clone> EventStore for FencedStore<S> {
    fn append(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = AppendResult> + Send {
        let this = self.clone();
        async move {
            if run != this.lease.run {
                return this.store.append(run, expected, batch).await;
            }
            match this
                .store
                .append_fenced(&this.lease, expected, batch)
                .await?
            {
                Ok(next) => Ok(Ok(next)),
                Err(Refusal::Conflict(conflict)) => Ok(Err(conflict)),
                Err(Refusal::Fenced(fenced)) => Err(fenced.into()),
            }
        }
    }
    fn read(
        &self,
        run: RunId,
        from: Seq,
    ) -> impl Future<Output = Result<Vec<crate::Record>>> + Send {
        self.store.read(run, from)
    }
    fn run_info(&self, run: RunId) -> impl Future<Output = Result<Option<crate::RunInfo>>> + Send {
        self.store.run_info(run)
    }
    fn list_runs(&self) -> impl Future<Output = Result<Vec<crate::RunInfo>>> + Send {
        self.store.list_runs()
    }
    fn watch(
        &self,
        run: RunId,
        from: Seq,
    ) -> futures::stream::BoxStream<'static, Result<crate::Record>> {
        self.store.watch(run, from)
    }
    fn put_blob(
        &self,
        bytes: bytes::Bytes,
    ) -> impl Future<Output = Result<crate::BlobHash>> + Send {
        self.store.put_blob(bytes)
    }
    fn get_blob(
        &self,
        hash: crate::BlobHash,
    ) -> impl Future<Output = Result<Option<bytes::Bytes>>> + Send {
        self.store.get_blob(hash)
    }
    fn delete_run(&self, run: RunId) -> impl Future<Output = Result<bool>> + Send {
        self.store.delete_run(run)
    }
}
