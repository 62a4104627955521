//! `Leases` in memory: the same rules as the Postgres store's, on this process's
//! clock, for tests of worker code and for runs that live in one process.

use std::future::{Future, ready};
use std::time::{Duration, Instant};

use super::MemoryStore;
use crate::error::Result;
use crate::id::{RunId, Seq, Timestamp};
use crate::leases::{Epoch, Fenced, FencedAppendResult, Lease, Leases, WorkHint, WorkerId};
use crate::store::Batch;

impl MemoryStore {
    fn lease(&self, run: RunId, epoch: Epoch, worker: &WorkerId, now: Instant) -> Lease {
        let left = self.lease_time.as_millis() as u64;
        Lease {
            run,
            epoch,
            worker: worker.clone(),
            expires_at: Timestamp(Timestamp::now().0 + left),
            deadline: now + self.lease_time,
        }
    }

    fn wake_workers(&self) {
        self.work.send_modify(|n| *n += 1);
    }
}

impl Leases for MemoryStore {
    fn lease_time(&self) -> Duration {
        self.lease_time
    }

    fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Lease>>> + Send {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut leases = Vec::new();
        for (run, log) in inner.runs.iter_mut() {
            if leases.len() >= max {
                break;
            }
            if log.running() && !log.leased(now) {
                log.epoch = Epoch(log.epoch.0 + 1);
                log.lease = Some((worker.clone(), now + self.lease_time));
                leases.push(self.lease(*run, log.epoch, worker, now));
            }
        }
        ready(Ok(leases))
    }

    fn claim_run(
        &self,
        worker: &WorkerId,
        run: RunId,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send {
        let now = Instant::now();
        let mut inner = self.lock();
        let log = inner.runs.entry(run).or_default();
        let lease = (!log.leased(now)).then(|| {
            log.epoch = Epoch(log.epoch.0 + 1);
            log.lease = Some((worker.clone(), now + self.lease_time));
            self.lease(run, log.epoch, worker, now)
        });
        ready(Ok(lease))
    }

    fn renew(
        &self,
        leases: &[Lease],
    ) -> impl Future<Output = Result<Vec<std::result::Result<Lease, Fenced>>>> + Send {
        let now = Instant::now();
        let mut inner = self.lock();
        let renewed = leases
            .iter()
            .map(|lease| {
                let current = inner.runs.get(&lease.run).map_or(Epoch(0), |l| l.epoch);
                match inner.runs.get_mut(&lease.run) {
                    Some(log) if log.epoch == lease.epoch => {
                        log.lease = Some((lease.worker.clone(), now + self.lease_time));
                        Ok(self.lease(lease.run, lease.epoch, &lease.worker, now))
                    }
                    _ => Err(Fenced {
                        run: lease.run,
                        held: lease.epoch,
                        current,
                    }),
                }
            })
            .collect();
        ready(Ok(renewed))
    }

    fn release(
        &self,
        lease: &Lease,
    ) -> impl Future<Output = Result<std::result::Result<(), Fenced>>> + Send {
        let mut inner = self.lock();
        let outcome = match inner.runs.get_mut(&lease.run) {
            Some(log) if log.epoch == lease.epoch => {
                log.epoch = Epoch(log.epoch.0 + 1);
                log.lease = None;
                Ok(log.running())
            }
            other => Err(Fenced {
                run: lease.run,
                held: lease.epoch,
                current: other.map_or(Epoch(0), |l| l.epoch),
            }),
        };
        drop(inner);
        if outcome == Ok(true) {
            self.wake_workers();
        }
        ready(Ok(outcome.map(|_| ())))
    }

    fn sweep(&self) -> impl Future<Output = Result<Vec<RunId>>> + Send {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut swept = Vec::new();
        let mut runnable = false;
        for (run, log) in inner.runs.iter_mut() {
            if log.lease.is_some() && !log.leased(now) {
                log.epoch = Epoch(log.epoch.0 + 1);
                log.lease = None;
                runnable |= log.running();
                swept.push(*run);
            }
        }
        drop(inner);
        if runnable {
            self.wake_workers();
        }
        ready(Ok(swept))
    }

    fn append_fenced(
        &self,
        lease: &Lease,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = FencedAppendResult> + Send {
        ready(Ok(self.append_inner(
            lease.run,
            expected,
            batch,
            Some(lease.epoch),
        )))
    }

    fn work_hint(&self) -> WorkHint {
        WorkHint(self.work.subscribe())
    }
}
