//! The Postgres backend: a store many processes on many machines open at once.
//!
//! # Design
//!
//! ```text
//! keel_runs    run ─ next_seq, summary (jsonb), status, epoch, lease_owner, lease_expires
//! keel_events  (run, seq) ─ bytes                 keel_blobs  hash ─ bytes
//!
//! append ─▶ one statement: CAS on keel_runs.next_seq (and epoch, if fenced)
//!                          + insert events + insert blobs ─▶ commit (WAL flushed)
//!        ─▶ wake local watchers ─▶ queue a hint for the notifier
//! notifier: takes every queued hint ─▶ one `pg_notify` statement (its own transaction)
//! listener: one connection, LISTEN keel_events, keel_work ─▶ wakes watchers / workers;
//!           pings; on reconnect wakes every watcher to re-read
//! watch:    read from next seq ─▶ wait for a hint or the poll interval ─▶ read again
//! ```
//!
//! Connections come from a [`deadpool_postgres`] pool; statements are prepared once
//! per connection. An append is one statement in its own implicit transaction, so
//! one round trip with the server and one WAL flush (which the server shares between
//! concurrent commits). NOTIFY is never sent inside an append's transaction: a
//! pending NOTIFY takes a database-wide lock at commit, which would serialize every
//! append behind it.
//!
//! Measured (`cargo bench -p keel-storage --bench postgres`, a throwaway local server
//! on this project's 2-core machine, whose disk other builds share): one durable
//! append of a 200-byte event costs 1.18–1.28× a bare 200-byte `INSERT` + commit on
//! the same server (means of 2000 paired samples, three runs; the floor was 2.6–3.7 ms, the
//! disk's `fsync` dominating both). With 16–64 concurrent writers the machine is
//! CPU-bound, and appends/s are 0.23–0.68× bare inserts/s: an append writes two rows
//! (the run's compare-and-set and the event) where the floor writes one. The server
//! shares WAL flushes between concurrent commits, so throughput grows with writers.
//!
//! # Guarantees (exactly)
//!
//! - `append`, `put_blob` and `delete_run` return `Ok` only after their transaction
//!   committed with `synchronous_commit` at least `local`: the commit record is
//!   flushed to the server's WAL, so it survives a crash of the server or its machine
//!   (on a server with `fsync` on, as by default; Keel warns at open if it is off). A
//!   connection whose server default is `synchronous_commit = off` is switched to
//!   `on`; a stronger setting (`remote_write`, `remote_apply` with synchronous
//!   standbys) is kept, and then commits also wait for the standbys.
//! - A batch (events, blobs, summary) is one transaction: visible and durable whole
//!   or not at all. Appends to one run commit in seq order (each waits for the row
//!   lock of the run), so every read sees a gap-free prefix `0..n`.
//! - The compare-and-set is on `keel_runs.next_seq` in the same statement as the
//!   inserts: of racing writers exactly one wins, and a loser writes nothing and gets
//!   a [`Conflict`](crate::Conflict) naming the length it lost to (read by a second
//!   statement). The `(run, seq)` primary key of `keel_events` is the last line of
//!   defence: a duplicate seq aborts the transaction and is reported as a conflict.
//! - A lost connection is [`Error::Unavailable`] (retryable); the pool reconnects on
//!   the next call. An append that fails that way may have committed or not (the
//!   answer was lost): re-read the log before retrying. A statement with no answer
//!   within [`PgOptions::statement_timeout`] drops its connection and fails the same
//!   way.
//! - Watches see every committed record once, in order: a watcher re-reads from its
//!   next seq whenever a hint arrives (an append in this process, a NOTIFY from
//!   another, the listener reconnecting) and at least every
//!   [`PgOptions::poll_interval`], so a lost NOTIFY (its sender died after
//!   committing) delays a watcher by at most that long. Transient failures inside a
//!   watch are retried, never skipped.
//! - Leases and fencing: see [`crate::leases`]. Lease expiry uses the server's clock.
//!
//! Not guaranteed: TLS (this build connects without it: use a Unix socket, a private
//! network or a tunnel; `sslmode=require` is refused at parse time); durability on a
//! server run with `fsync = off`.

mod config;
mod error;
mod leases;
mod listen;
pub(crate) mod schema;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use tokio_postgres::NoTls;

use crate::error::{Error, Result};

pub(crate) use config::{describe, parse as parse_url, redact};
use listen::Hints;

/// How to open a [`PgStore`]: the URL and the knobs operators turn.
#[derive(Clone)]
pub struct PgOptions {
    config: tokio_postgres::Config,
    max_connections: usize,
    lease_time: Duration,
    poll_interval: Duration,
    statement_timeout: Duration,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("store", &describe(&self.config))
            .field("max_connections", &self.max_connections)
            .field("lease_time", &self.lease_time)
            .field("poll_interval", &self.poll_interval)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl PgOptions {
    /// Options for the store at `url` (`postgres://…` or `postgresql://…`, including
    /// libpq's `?host=/socket/dir` form; unset parts come from `PGHOST`, `PGPORT`,
    /// `PGUSER`, `PGPASSWORD`, `PGDATABASE` as with libpq).
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self {
            config: parse_url(url)?,
            max_connections: 16,
            lease_time: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(30),
        })
    }

    /// The store as shown in messages: its URL without the password.
    pub fn target(&self) -> String {
        describe(&self.config)
    }

    /// The most connections the store's pool opens (default 16), besides the one
    /// that listens for notifications.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a lease lasts unless renewed (default 5 s; renew about every 1 s).
    #[must_use]
    pub fn lease_time(mut self, time: Duration) -> Self {
        self.lease_time = time;
        self
    }

    /// The longest a watcher waits without a hint before re-reading (default 1 s).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long a statement may go unanswered before its connection is dropped and
    /// the call fails with [`Error::Unavailable`] (default 30 s).
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Connects, migrates the schema, and returns the store. Fails with
    /// [`Error::Unavailable`] if the server cannot be reached (retry later) and
    /// [`Error::Denied`] if it refuses the credentials or database.
    pub async fn open(self) -> Result<PgStore> {
        let target = describe(&self.config);
        let manager = Manager::from_config(
            self.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let connect_timeout = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let pool = Pool::builder(manager)
            .max_size(self.max_connections)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(connect_timeout))
            .wait_timeout(Some(self.statement_timeout))
            .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
                Box::pin(async move {
                    // Durable commits even where the server's default is `off`; a
                    // stronger setting is left alone.
                    client
                        .batch_execute(
                            "SELECT set_config('synchronous_commit', 'on', false) \
                             WHERE current_setting('synchronous_commit') = 'off'",
                        )
                        .await
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| Error::Backend(format!("cannot build the connection pool: {e}")))?;
        let mut client = pool.get().await.map_err(|e| error::from_pool(&target, e))?;
        schema::migrate(&mut client, schema::LATEST, &target).await?;
        let fsync: String = client
            .query_one("SELECT current_setting('fsync')", &[])
            .await
            .map_err(|e| error::from_pg(&target, e))
            .and_then(|row| error::col(&row, 0))?;
        if fsync != "on" {
            tracing::warn!(
                store = %target,
                "the Postgres server runs with fsync = {fsync}: commits are not durable"
            );
        }
        drop(client);
        let hints = Arc::new(Hints::new());
        Ok(PgStore {
            inner: Arc::new(Inner {
                notifier: listen::Notifier::new(pool.clone(), target.clone()),
                pool,
                config: self.config,
                target,
                lease_time: self.lease_time,
                poll_interval: self.poll_interval,
                statement_timeout: self.statement_timeout,
                hints,
                listener: Mutex::new(None),
            }),
        })
    }
}

/// An [`EventStore`](crate::EventStore) in a Postgres database, shared by any number
/// of processes; also [`Leases`](crate::Leases). Cheap to clone; clones share one
/// connection pool. See the [module docs](self) for its guarantees.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    target: String,
    lease_time: Duration,
    poll_interval: Duration,
    statement_timeout: Duration,
    hints: Arc<Hints>,
    notifier: listen::Notifier,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .listener
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.inner.target)
    }
}

impl PgStore {
    /// Opens the store at `url` with default options.
    pub async fn open(url: &str) -> Result<Self> {
        PgOptions::new(url)?.open().await
    }

    /// The store as shown in messages: its URL without the password.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Runs `op` on a pooled connection, bounded by the statement timeout. A
    /// connection that timed out or broke is dropped, not returned to the pool.
    async fn with_client<T>(
        &self,
        op: impl for<'c> FnOnce(
            &'c deadpool_postgres::Client,
        ) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>
        + Send,
    ) -> Result<T> {
        let inner = &self.inner;
        let client = inner
            .pool
            .get()
            .await
            .map_err(|e| error::from_pool(&inner.target, e))?;
        let outcome = tokio::time::timeout(inner.statement_timeout, op(&client)).await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let err = error::from_pg(&inner.target, err);
                if matches!(err, Error::Unavailable { .. }) {
                    drop(deadpool_postgres::Object::take(client));
                }
                Err(err)
            }
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                Err(error::timed_out(&inner.target, inner.statement_timeout))
            }
        }
    }

    /// Starts the notification listener, once, if a runtime is at hand.
    fn ensure_listener(&self) {
        let mut listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if listener.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            *listener = Some(runtime.spawn(listen::listen(
                self.inner.config.clone(),
                self.inner.target.clone(),
                self.inner.hints.clone(),
            )));
        }
    }
}
