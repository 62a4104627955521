//! `EventStore` on Postgres: the append statement and the reads.

use bytes::Bytes;
use futures::stream::BoxStream;

use super::PgStore;
use super::error::{col, corrupt};
use super::listen::{self, Notice};
use crate::error::{Error, Result};
use crate::id::{BlobHash, RunId, Seq};
use crate::leases::{Epoch, Fenced, FencedAppendResult, Refusal};
use crate::store::{AppendResult, Batch, Conflict, EventStore, Record, RunInfo, RunSummary};

/// Creates the run or extends an empty one (expected seq 0, no lease). The insert
/// of events and blobs happens only if the compare-and-set row comes back.
const APPEND_FIRST: &str = "
WITH cas AS (
    INSERT INTO keel_runs AS r (run, next_seq, summary, status)
    VALUES ($1, $2::bigint + cardinality($3::bytea[]), $4::text::jsonb, $5)
    ON CONFLICT (run) DO UPDATE
        SET next_seq = EXCLUDED.next_seq,
            summary = COALESCE(EXCLUDED.summary, r.summary),
            status = COALESCE(EXCLUDED.status, r.status)
        WHERE r.next_seq = $2::bigint
    RETURNING r.next_seq, r.status, r.lease_expires IS NULL OR r.lease_expires < now()
), events AS (
    INSERT INTO keel_events (run, seq, bytes)
    SELECT $1, $2::bigint + t.i - 1, t.b FROM cas, unnest($3::bytea[]) WITH ORDINALITY AS t(b, i)
), blobs AS (
    INSERT INTO keel_blobs (hash, bytes)
    SELECT t.h, t.b FROM cas, unnest($6::bytea[], $7::bytea[]) AS t(h, b)
    ON CONFLICT (hash) DO NOTHING
)
SELECT * FROM cas";

/// Extends an existing run; with `$8` set, only while its epoch is `$8` (fencing).
const APPEND_NEXT: &str = "
WITH cas AS (
    UPDATE keel_runs AS r
    SET next_seq = $2::bigint + cardinality($3::bytea[]),
        summary = COALESCE($4::text::jsonb, r.summary),
        status = COALESCE($5, r.status)
    WHERE r.run = $1 AND r.next_seq = $2::bigint AND ($8::bigint IS NULL OR r.epoch = $8)
    RETURNING r.next_seq, r.status, r.lease_expires IS NULL OR r.lease_expires < now()
), events AS (
    INSERT INTO keel_events (run, seq, bytes)
    SELECT $1, $2::bigint + t.i - 1, t.b FROM cas, unnest($3::bytea[]) WITH ORDINALITY AS t(b, i)
), blobs AS (
    INSERT INTO keel_blobs (hash, bytes)
    SELECT t.h, t.b FROM cas, unnest($6::bytea[], $7::bytea[]) AS t(h, b)
    ON CONFLICT (hash) DO NOTHING
)
SELECT * FROM cas";

pub(super) fn to_i64(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Backend(format!("{what} {value} is out of range")))
}

fn to_seq(value: i64) -> Result<Seq> {
    u64::try_from(value)
        .map(Seq)
        .map_err(|_| corrupt("run length", format!("negative seq {value}")))
}

fn uuid(run: RunId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*run.as_bytes())
}

fn run_id(uuid: uuid::Uuid) -> RunId {
    RunId::from_bytes(*uuid.as_bytes())
}

fn decode_summary(text: Option<String>) -> Result<Option<RunSummary>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("run summary", e)))
        .transpose()
}

/// A duplicate `(run, seq)` aborts the append: the primary key caught what the
/// compare-and-set did not (a log edited by hand). Nothing was written; it is
/// reported like a lost compare-and-set.
fn unique_is_refusal(
    outcome: Result<Option<tokio_postgres::Row>, tokio_postgres::Error>,
) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
    match outcome {
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            tracing::warn!(%err, "the events' primary key refused an append");
            Ok(None)
        }
        other => other,
    }
}

impl PgStore {
    /// The append of both `EventStore::append` and `Leases::append_fenced`.
    pub(super) async fn append_inner(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
        epoch: Option<Epoch>,
    ) -> FencedAppendResult {
        let Ok(expected_i64) = i64::try_from(expected.0) else {
            // No log is that long: a conflict, whatever the log's length.
            return self.refusal(run, expected, epoch).await;
        };
        let epoch_i64 = epoch.map(|e| to_i64(e.0, "epoch")).transpose()?;
        let summary = batch
            .summary
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Backend(format!("cannot encode the run summary: {e}")))?;
        let status = batch.summary.as_ref().map(|s| s.status.as_str());
        let mut blobs: Vec<(BlobHash, Bytes)> = batch
            .blobs
            .into_iter()
            .map(|b| (BlobHash::of(&b), b))
            .collect();
        blobs.sort_by_key(|(hash, _)| *hash);
        blobs.dedup_by_key(|(hash, _)| *hash);
        let events = batch.events;
        let has_summary = summary.is_some();
        let first = expected.0 == 0 && epoch.is_none();
        let id = uuid(run);
        let outcome = self
            .with_client(|c| {
                Box::pin(async move {
                    let hashes: Vec<&[u8]> = blobs.iter().map(|(h, _)| &h.0[..]).collect();
                    let blob_bytes: Vec<&[u8]> = blobs.iter().map(|(_, b)| &b[..]).collect();
                    let events: Vec<&[u8]> = events.iter().map(|e| &e[..]).collect();
                    if first {
                        let st = c.prepare_cached(APPEND_FIRST).await?;
                        unique_is_refusal(
                            c.query_opt(
                                &st,
                                &[
                                    &id,
                                    &expected_i64,
                                    &events,
                                    &summary,
                                    &status,
                                    &hashes,
                                    &blob_bytes,
                                ],
                            )
                            .await,
                        )
                    } else {
                        let st = c.prepare_cached(APPEND_NEXT).await?;
                        unique_is_refusal(
                            c.query_opt(
                                &st,
                                &[
                                    &id,
                                    &expected_i64,
                                    &events,
                                    &summary,
                                    &status,
                                    &hashes,
                                    &blob_bytes,
                                    &epoch_i64,
                                ],
                            )
                            .await,
                        )
                    }
                })
            })
            .await;
        let Some(row) = outcome? else {
            return self.refusal(run, expected, epoch).await;
        };
        let next = to_seq(col(&row, 0)?)?;
        let status: Option<String> = col(&row, 1)?;
        let unleased: bool = col(&row, 2)?;
        self.inner.hints.run_changed(run);
        self.inner.notifier.send(Notice::Appended(run));
        if has_summary && unleased && status.as_deref() == Some("running") {
            // Submitted, or answered: a worker should take it.
            self.inner.hints.work_changed();
            self.inner.notifier.send(Notice::Work);
        }
        Ok(Ok(next))
    }

    /// Why an append wrote nothing: the run's epoch moved (if fenced), else its length.
    async fn refusal(&self, run: RunId, expected: Seq, epoch: Option<Epoch>) -> FencedAppendResult {
        let id = uuid(run);
        let row = self
            .with_client(|c| {
                Box::pin(async move {
                    let st = c
                        .prepare_cached("SELECT next_seq, epoch FROM keel_runs WHERE run = $1")
                        .await?;
                    c.query_opt(&st, &[&id]).await
                })
            })
            .await?;
        let (actual, current) = match row {
            Some(row) => (to_seq(col(&row, 0)?)?, Epoch(to_seq(col(&row, 1)?)?.0)),
            None => (Seq::ZERO, Epoch(0)),
        };
        if let Some(held) = epoch
            && held != current
        {
            return Ok(Err(Refusal::Fenced(Fenced { run, held, current })));
        }
        Ok(Err(Refusal::Conflict(Conflict {
            run,
            expected,
            actual,
        })))
    }
}

impl EventStore for PgStore {
    async fn append(&self, run: RunId, expected: Seq, batch: Batch) -> AppendResult {
        match self.append_inner(run, expected, batch, None).await? {
            Ok(next) => Ok(Ok(next)),
            Err(Refusal::Conflict(conflict)) => Ok(Err(conflict)),
            // Unfenced appends are never fenced.
            Err(Refusal::Fenced(fenced)) => Err(fenced.into()),
        }
    }

    async fn read(&self, run: RunId, from: Seq) -> Result<Vec<Record>> {
        let Ok(from_i64) = i64::try_from(from.0) else {
            return Ok(Vec::new());
        };
        let id = uuid(run);
        let rows = self
            .with_client(|c| {
                Box::pin(async move {
                    let st = c
                        .prepare_cached(
                            "SELECT seq, bytes FROM keel_events \
                             WHERE run = $1 AND seq >= $2 ORDER BY seq",
                        )
                        .await?;
                    c.query(&st, &[&id, &from_i64]).await
                })
            })
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        let mut want = from;
        for row in rows {
            let seq = to_seq(col(&row, 0)?)?;
            if seq != want {
                return Err(Error::Corrupt {
                    run,
                    seq: want,
                    detail: format!("the log jumps from seq {want} to {seq}"),
                });
            }
            let bytes: Vec<u8> = col(&row, 1)?;
            records.push(Record {
                seq,
                bytes: bytes.into(),
            });
            want = seq.next();
        }
        Ok(records)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>> {
        let id = uuid(run);
        let row = self
            .with_client(|c| {
                Box::pin(async move {
                    let st = c
                        .prepare_cached(
                            "SELECT next_seq, summary::text FROM keel_runs WHERE run = $1",
                        )
                        .await?;
                    c.query_opt(&st, &[&id]).await
                })
            })
            .await?;
        row.map(|row| {
            Ok(RunInfo {
                run,
                next_seq: to_seq(col(&row, 0)?)?,
                summary: decode_summary(col(&row, 1)?)?,
            })
        })
        .transpose()
    }

    async fn list_runs(&self) -> Result<Vec<RunInfo>> {
        let rows = self
            .with_client(|c| {
                Box::pin(async move {
                    let st = c
                        .prepare_cached(
                            "SELECT run, next_seq, summary::text FROM keel_runs ORDER BY run",
                        )
                        .await?;
                    c.query(&st, &[]).await
                })
            })
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RunInfo {
                    run: run_id(col(&row, 0)?),
                    next_seq: to_seq(col(&row, 1)?)?,
                    summary: decode_summary(col(&row, 2)?)?,
                })
            })
            .collect()
    }

    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>> {
        listen::watch(self.clone(), run, from)
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobHash> {
        let hash = BlobHash::of(&bytes);
        self.with_client(|c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO keel_blobs (hash, bytes) VALUES ($1, $2) \
                         ON CONFLICT (hash) DO NOTHING",
                    )
                    .await?;
                c.execute(&st, &[&&hash.0[..], &&bytes[..]]).await
            })
        })
        .await?;
        Ok(hash)
    }

    async fn get_blob(&self, hash: BlobHash) -> Result<Option<Bytes>> {
        let row = self
            .with_client(|c| {
                Box::pin(async move {
                    let st = c
                        .prepare_cached("SELECT bytes FROM keel_blobs WHERE hash = $1")
                        .await?;
                    c.query_opt(&st, &[&&hash.0[..]]).await
                })
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let bytes: Vec<u8> = col(&row, 0)?;
        if BlobHash::of(&bytes) != hash {
            return Err(corrupt(
                "blob",
                format!("the blob stored as {hash} has other bytes"),
            ));
        }
        Ok(Some(bytes.into()))
    }

    async fn delete_run(&self, run: RunId) -> Result<bool> {
        let id = uuid(run);
        let existed = self
            .with_client(|c| {
                Box::pin(async move {
                    // Delete the run's row first: that takes its lock, so appends
                    // in flight finish before and later ones find no run; the
                    // events are deleted by a later statement, which sees every
                    // event committed before the lock was taken.
                    c.batch_execute("BEGIN").await?;
                    let deleted = async {
                        let gone = c
                            .execute("DELETE FROM keel_runs WHERE run = $1", &[&id])
                            .await?;
                        c.execute("DELETE FROM keel_events WHERE run = $1", &[&id])
                            .await?;
                        c.batch_execute("COMMIT").await?;
                        Ok(gone > 0)
                    }
                    .await;
                    if deleted.is_err() {
                        // Leave the pooled connection outside any transaction.
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                    deleted
                })
            })
            .await?;
        self.inner.hints.run_changed(run);
        Ok(existed)
    }
}
