//! Live updates across processes: hints, not data. After an append commits, its run
//! is queued for the notifier, which sends every queued hint in one `pg_notify`
//! statement (coalescing bursts; never inside an append's transaction). One listener
//! connection per store receives them and wakes the watchers, which re-read the log
//! from their next seq: a hint carries no records, so a lost or repeated hint can
//! delay a watcher but never make it skip or repeat a record.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::PgStore;
use crate::error::Result;
use crate::id::{RunId, Seq};
use crate::store::{EventStore, Record};

/// The channel announcing appends; the payload is the run's id.
const EVENTS: &str = "keel_events";
/// The channel announcing that a run may have become runnable.
const WORK: &str = "keel_work";

/// Wake-up counters: one per watched run, one for "re-read everything" (the listener
/// reconnected), one for workers.
pub(super) struct Hints {
    runs: Mutex<HashMap<RunId, watch::Sender<u64>>>,
    everything: watch::Sender<u64>,
    work: watch::Sender<u64>,
}

impl Hints {
    pub(super) fn new() -> Self {
        Self {
            runs: Mutex::default(),
            everything: watch::channel(0).0,
            work: watch::channel(0).0,
        }
    }

    fn subscribe(&self, run: RunId) -> watch::Receiver<u64> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.entry(run)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the watchers of `run` in this process.
    pub(super) fn run_changed(&self, run: RunId) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = runs.get(&run) {
            if sender.receiver_count() == 0 {
                runs.remove(&run);
            } else {
                sender.send_modify(|n| *n += 1);
            }
        }
    }

    pub(super) fn work_changed(&self) {
        self.work.send_modify(|n| *n += 1);
    }

    pub(super) fn work_receiver(&self) -> watch::Receiver<u64> {
        self.work.subscribe()
    }

    fn everything_changed(&self) {
        self.everything.send_modify(|n| *n += 1);
    }
}

/// A hint for other processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Notice {
    Appended(RunId),
    Work,
}

/// Sends queued hints, coalesced, from a task started by the first one.
pub(super) struct Notifier {
    queue: Mutex<Option<mpsc::UnboundedSender<Notice>>>,
    pool: Pool,
    target: String,
}

impl Notifier {
    pub(super) fn new(pool: Pool, target: String) -> Self {
        Self {
            queue: Mutex::new(None),
            pool,
            target,
        }
    }

    /// Queues a hint; it is sent after whatever is being sent now.
    pub(super) fn send(&self, notice: Notice) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = queue.as_ref()
            && tx.send(notice).is_ok()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(notice);
        runtime.spawn(notify_loop(self.pool.clone(), self.target.clone(), rx));
        *queue = Some(tx);
    }
}

async fn notify_loop(pool: Pool, target: String, mut rx: mpsc::UnboundedReceiver<Notice>) {
    while let Some(first) = rx.recv().await {
        let mut notices = BTreeSet::from([first]);
        while let Ok(more) = rx.try_recv() {
            notices.insert(more);
        }
        let (channels, payloads): (Vec<&str>, Vec<String>) = notices
            .iter()
            .map(|n| match n {
                Notice::Appended(run) => (EVENTS, run.to_string()),
                Notice::Work => (WORK, String::new()),
            })
            .unzip();
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                // A transaction that notifies gets a transaction id and so a commit
                // record: committed asynchronously, it costs no WAL flush of its own
                // (a hint needs none), and the appends' flushes do not queue behind it.
                .execute(
                    "SELECT set_config('synchronous_commit', 'off', true), pg_notify(c, p) \
                     FROM unnest($1::text[], $2::text[]) AS t(c, p)",
                    &[&channels, &payloads],
                )
                .await
                .map_err(|e| e.to_string())
        };
        // Watchers and workers also poll, so a hint that cannot be sent only delays them.
        if let Err(err) = tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()))
        {
            tracing::debug!(store = %target, %err, "could not send notifications");
        }
    }
}

/// The listener: keeps one connection LISTENing, dispatches notifications, pings it,
/// and reconnects with backoff. After every (re)connection every watcher re-reads.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    target: String,
    hints: std::sync::Arc<Hints>,
) {
    const PING: Duration = Duration::from_secs(5);
    let mut backoff = Duration::from_millis(50);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
                let dispatch = hints.clone();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message {
                            match n.channel() {
                                EVENTS => {
                                    if let Ok(run) = n.payload().parse() {
                                        dispatch.run_changed(run);
                                    }
                                }
                                WORK => dispatch.work_changed(),
                                _ => {}
                            }
                        }
                    }
                    drop(closed_tx);
                });
                let listening = client
                    .batch_execute(&format!("LISTEN {EVENTS}; LISTEN {WORK}"))
                    .await;
                if listening.is_ok() {
                    backoff = Duration::from_millis(50);
                    hints.everything_changed();
                    hints.work_changed();
                    loop {
                        tokio::select! {
                            _ = &mut closed => break,
                            () = tokio::time::sleep(PING) => {
                                let ping = tokio::time::timeout(PING, client.simple_query("SELECT 1"));
                                if !matches!(ping.await, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                }
                driver.abort();
                tracing::debug!(store = %target, "the notification listener lost its connection");
            }
            Err(err) => {
                tracing::debug!(store = %target, %err, "the notification listener cannot connect");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A watch stream: read from the next seq, wait for a hint or the poll interval,
/// read again. Retryable failures are retried with backoff (50 ms to 2 s), so the
/// stream outlives lost connections; any other failure ends it with the error.
pub(super) fn watch(store: PgStore, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>> {
    let mut run_hint = store.inner.hints.subscribe(run);
    let mut everything = store.inner.hints.everything.subscribe();
    let poll = store.inner.poll_interval;
    Box::pin(async_stream::stream! {
        store.ensure_listener();
        let mut next = from;
        let mut backoff = Duration::from_millis(50);
        loop {
            // Mark the hints seen *before* reading, so one arriving during the read
            // causes another read instead of being lost.
            run_hint.borrow_and_update();
            everything.borrow_and_update();
            match store.read(run, next).await {
                Ok(records) => {
                    backoff = Duration::from_millis(50);
                    for record in records {
                        next = record.seq.next();
                        yield Ok(record);
                    }
                }
                Err(err) if err.is_retryable() => {
                    tracing::debug!(store = %store.target(), %run, %err, "watch read failed; retrying");
                    store.ensure_listener();
                    tokio::time::sleep(backoff.min(poll)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                Err(err) => {
                    yield Err(err);
                    break;
                }
            }
            tokio::select! {
                changed = run_hint.changed() => {
                    if changed.is_err() {
                        run_hint = store.inner.hints.subscribe(run);
                    }
                }
                _ = everything.changed() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    })
}
