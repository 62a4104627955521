//! Live watching shared by the backends: a broadcast channel per watched run, fed
//! after each durable append, with gaps and lag repaired by reading the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::error::Result;
use crate::id::{RunId, Seq};
use crate::store::{EventStore, Record};

/// How many records a slow watcher may fall behind before it re-reads the store.
const CHANNEL_CAPACITY: usize = 1024;

/// The watched runs of one store and their channels. Runs nobody watches cost nothing.
#[derive(Debug, Default, Clone)]
pub struct WatchHub {
    channels: Arc<Mutex<HashMap<RunId, broadcast::Sender<Record>>>>,
}

impl WatchHub {
    /// Subscribes to new records of `run`.
    pub fn subscribe(&self, run: RunId) -> broadcast::Receiver<Record> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(run)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Tells the watchers of `run` about records that just became durable.
    pub fn publish(&self, run: RunId, records: impl IntoIterator<Item = Record>) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = channels.get(&run) else {
            return;
        };
        if sender.receiver_count() == 0 {
            channels.remove(&run);
            return;
        }
        for record in records {
            // An error means every receiver is gone; they re-subscribe if they come back.
            let _ = sender.send(record);
        }
    }

    /// A stream of `run`'s records from `from` on, reading stored ones from `store`.
    /// Subscribes before reading, so nothing appended meanwhile is missed.
    pub fn watch<S>(&self, store: S, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>>
    where
        S: EventStore + Clone,
    {
        let mut rx = self.subscribe(run);
        Box::pin(async_stream::try_stream! {
            let mut next = from;
            for record in store.read(run, next).await? {
                next = record.seq.next();
                yield record;
            }
            loop {
                match rx.recv().await {
                    Ok(record) if record.seq < next => {}
                    Ok(record) if record.seq == next => {
                        next = record.seq.next();
                        yield record;
                    }
                    // A gap (two appends published out of order) or lag: the store has it all.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        for record in store.read(run, next).await? {
                            next = record.seq.next();
                            yield record;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}
