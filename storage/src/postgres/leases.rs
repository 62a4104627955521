//! `Leases` on Postgres: claims with `FOR UPDATE SKIP LOCKED`, lease times on the
//! server's clock, epochs in `keel_runs`, fencing inside the append statement.

use std::future::Future;
use std::time::{Duration, Instant};

use super::PgStore;
use super::error::col;
use super::listen::Notice;
use super::store::to_i64;
use crate::error::{Error, Result};
use crate::id::{RunId, Seq, Timestamp};
use crate::leases::{Epoch, Fenced, FencedAppendResult, Lease, Leases, WorkHint, WorkerId};
use crate::store::Batch;

/// `lease_expires` as milliseconds since the Unix epoch.
const EXPIRES_MS: &str = "(extract(epoch FROM r.lease_expires) * 1000)::bigint";

fn claim_sql() -> String {
    format!(
        "WITH c AS (
            SELECT run FROM keel_runs
            WHERE status = 'running' AND (lease_expires IS NULL OR lease_expires < now())
            ORDER BY run LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        UPDATE keel_runs AS r
        SET epoch = r.epoch + 1, lease_owner = $1,
            lease_expires = now() + $3::float8 * interval '1 millisecond'
        FROM c WHERE r.run = c.run
        RETURNING r.run, r.epoch, {EXPIRES_MS}"
    )
}

fn claim_run_sql() -> String {
    format!(
        "INSERT INTO keel_runs AS r (run, next_seq, epoch, lease_owner, lease_expires)
        VALUES ($1, 0, 1, $2, now() + $3::float8 * interval '1 millisecond')
        ON CONFLICT (run) DO UPDATE
            SET epoch = r.epoch + 1, lease_owner = EXCLUDED.lease_owner,
                lease_expires = EXCLUDED.lease_expires
            WHERE r.lease_expires IS NULL OR r.lease_expires < now()
        RETURNING r.epoch, {EXPIRES_MS}"
    )
}

fn renew_sql() -> String {
    format!(
        "UPDATE keel_runs AS r
        SET lease_expires = now() + $3::float8 * interval '1 millisecond'
        FROM unnest($1::uuid[], $2::bigint[]) AS t(run, epoch)
        WHERE r.run = t.run AND r.epoch = t.epoch
        RETURNING r.run, {EXPIRES_MS}"
    )
}

const RELEASE: &str = "
UPDATE keel_runs SET epoch = epoch + 1, lease_owner = NULL, lease_expires = NULL
WHERE run = $1 AND epoch = $2
RETURNING status = 'running'";

const SWEEP: &str = "
UPDATE keel_runs SET epoch = epoch + 1, lease_owner = NULL, lease_expires = NULL
WHERE lease_owner IS NOT NULL AND lease_expires < now()
RETURNING run, status = 'running'";

fn uuid(run: RunId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*run.as_bytes())
}

fn epoch_of(value: i64) -> Result<Epoch> {
    u64::try_from(value)
        .map(Epoch)
        .map_err(|_| super::error::corrupt("fencing epoch", format!("negative epoch {value}")))
}

fn stamp(ms: i64) -> Timestamp {
    Timestamp(u64::try_from(ms).unwrap_or(0))
}

impl PgStore {
    fn lease_ms(&self) -> f64 {
        self.inner.lease_time.as_secs_f64() * 1000.0
    }

    /// The current epochs of `runs` (0 for a run that no longer exists).
    async fn epochs(&self, runs: Vec<uuid::Uuid>) -> Result<Vec<(RunId, Epoch)>> {
        let rows = self
            .with_client(|c| {
                Box::pin(async move {
                    c.query(
                        "SELECT t.run, COALESCE(r.epoch, 0) FROM unnest($1::uuid[]) AS t(run) \
                         LEFT JOIN keel_runs r ON r.run = t.run",
                        &[&runs],
                    )
                    .await
                })
            })
            .await?;
        rows.into_iter()
            .map(|row| {
                let run: uuid::Uuid = col(&row, 0)?;
                Ok((RunId::from_bytes(*run.as_bytes()), epoch_of(col(&row, 1)?)?))
            })
            .collect()
    }

    fn wake_workers(&self) {
        self.inner.hints.work_changed();
        self.inner.notifier.send(Notice::Work);
    }
}

impl Leases for PgStore {
    fn lease_time(&self) -> Duration {
        self.inner.lease_time
    }

    fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Lease>>> + Send {
        let worker = worker.clone();
        async move {
            let limit = to_i64(max as u64, "claim limit")?;
            let (name, ms, sql) = (worker.as_str().to_owned(), self.lease_ms(), claim_sql());
            let sent = Instant::now();
            let rows = self
                .with_client(|c| {
                    Box::pin(async move {
                        let st = c.prepare_cached(&sql).await?;
                        c.query(&st, &[&name, &limit, &ms]).await
                    })
                })
                .await?;
            rows.into_iter()
                .map(|row| {
                    let run: uuid::Uuid = col(&row, 0)?;
                    Ok(Lease {
                        run: RunId::from_bytes(*run.as_bytes()),
                        epoch: epoch_of(col(&row, 1)?)?,
                        worker: worker.clone(),
                        expires_at: stamp(col(&row, 2)?),
                        deadline: sent + self.inner.lease_time,
                    })
                })
                .collect()
        }
    }

    fn claim_run(
        &self,
        worker: &WorkerId,
        run: RunId,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send {
        let worker = worker.clone();
        async move {
            let (id, name, ms, sql) = (
                uuid(run),
                worker.as_str().to_owned(),
                self.lease_ms(),
                claim_run_sql(),
            );
            let sent = Instant::now();
            let row = self
                .with_client(|c| {
                    Box::pin(async move {
                        let st = c.prepare_cached(&sql).await?;
                        c.query_opt(&st, &[&id, &name, &ms]).await
                    })
                })
                .await?;
            row.map(|row| {
                Ok(Lease {
                    run,
                    epoch: epoch_of(col(&row, 0)?)?,
                    worker,
                    expires_at: stamp(col(&row, 1)?),
                    deadline: sent + self.inner.lease_time,
                })
            })
            .transpose()
        }
    }

    fn renew(
        &self,
        leases: &[Lease],
    ) -> impl Future<Output = Result<Vec<std::result::Result<Lease, Fenced>>>> + Send {
        let leases = leases.to_vec();
        async move {
            if leases.is_empty() {
                return Ok(Vec::new());
            }
            let runs: Vec<uuid::Uuid> = leases.iter().map(|l| uuid(l.run)).collect();
            let epochs = leases
                .iter()
                .map(|l| to_i64(l.epoch.0, "epoch"))
                .collect::<Result<Vec<i64>>>()?;
            let (ms, sql) = (self.lease_ms(), renew_sql());
            let sent = Instant::now();
            let query_runs = runs.clone();
            let rows = self
                .with_client(|c| {
                    Box::pin(async move {
                        let st = c.prepare_cached(&sql).await?;
                        c.query(&st, &[&query_runs, &epochs, &ms]).await
                    })
                })
                .await?;
            let renewed = rows
                .iter()
                .map(|row| Ok((col::<uuid::Uuid>(row, 0)?, col::<i64>(row, 1)?)))
                .collect::<Result<std::collections::HashMap<_, _>>>()?;
            let lost: Vec<uuid::Uuid> = runs
                .iter()
                .filter(|r| !renewed.contains_key(r))
                .copied()
                .collect();
            let current: std::collections::HashMap<RunId, Epoch> = if lost.is_empty() {
                Default::default()
            } else {
                self.epochs(lost).await?.into_iter().collect()
            };
            Ok(leases
                .into_iter()
                .map(|lease| match renewed.get(&uuid(lease.run)) {
                    Some(&ms) => Ok(Lease {
                        expires_at: stamp(ms),
                        deadline: sent + self.inner.lease_time,
                        ..lease
                    }),
                    None => Err(Fenced {
                        run: lease.run,
                        held: lease.epoch,
                        current: current.get(&lease.run).copied().unwrap_or_default(),
                    }),
                })
                .collect())
        }
    }

    fn release(
        &self,
        lease: &Lease,
    ) -> impl Future<Output = Result<std::result::Result<(), Fenced>>> + Send {
        let lease = lease.clone();
        async move {
            let (id, epoch) = (uuid(lease.run), to_i64(lease.epoch.0, "epoch")?);
            let row = self
                .with_client(|c| {
                    Box::pin(async move {
                        let st = c.prepare_cached(RELEASE).await?;
                        c.query_opt(&st, &[&id, &epoch]).await
                    })
                })
                .await?;
            match row {
                Some(row) => {
                    if col::<Option<bool>>(&row, 0)? == Some(true) {
                        self.wake_workers();
                    }
                    Ok(Ok(()))
                }
                None => {
                    let current = self.epochs(vec![id]).await?;
                    Ok(Err(Fenced {
                        run: lease.run,
                        held: lease.epoch,
                        current: current.first().map(|(_, e)| *e).unwrap_or_default(),
                    }))
                }
            }
        }
    }

    async fn sweep(&self) -> Result<Vec<RunId>> {
        let rows = self
            .with_client(|c| {
                Box::pin(async move {
                    let st = c.prepare_cached(SWEEP).await?;
                    c.query(&st, &[]).await
                })
            })
            .await?;
        let mut runnable = false;
        let swept = rows
            .iter()
            .map(|row| {
                runnable |= col::<Option<bool>>(row, 1)? == Some(true);
                let run: uuid::Uuid = col(row, 0)?;
                Ok(RunId::from_bytes(*run.as_bytes()))
            })
            .collect::<Result<Vec<_>>>()?;
        if runnable {
            self.wake_workers();
        }
        Ok(swept)
    }

    fn append_fenced(
        &self,
        lease: &Lease,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = FencedAppendResult> + Send {
        let (run, epoch) = (lease.run, lease.epoch);
        async move {
            if epoch == Epoch(0) {
                return Err(Error::Backend(format!(
                    "a lease on run {run} with epoch 0 was not taken by a claim"
                )));
            }
            self.append_inner(run, expected, batch, Some(epoch)).await
        }
    }

    fn work_hint(&self) -> WorkHint {
        self.ensure_listener();
        WorkHint(self.inner.hints.work_receiver())
    }
}
