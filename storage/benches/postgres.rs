//! Durable append benchmark on Postgres: the store against a bare `INSERT` + commit,
//! on the same throwaway local server, in one run.
//!
//! `cargo bench -p keel-storage --bench postgres`. Starts a private server (the same
//! way the tests do: `initdb`, `pg_ctl`, a Unix socket; `fsync` and
//! `synchronous_commit` on), then prints:
//! - latency of one durable append of one 200-byte event, against the floor: one
//!   prepared `INSERT` of a 200-byte row into a table with a primary key, committed
//!   (autocommit), on one connection. Samples are taken in pairs (one of each, in
//!   alternating order), so both see the same moment of a shared disk. Ratios are of
//!   the means, of the medians, and the median of the pairs' ratios (the figure
//!   least moved by the disk's drift).
//! - throughput with 1, 4, 16 and 64 concurrent writers (each appending to a run of
//!   its own), against the same number of connections doing bare inserts, in three
//!   alternating windows each.
//!
//! `KEEL_BENCH_SECS` sets the seconds per throughput point (default 3),
//! `KEEL_BENCH_SAMPLES` the latency samples (default 2000); `KEEL_BENCH_WRITERS=64`
//! measures only that throughput point.

// A benchmark that cannot set itself up has nothing to report: failing loudly is right.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_storage::conformance::TestPostgres;
use keel_storage::{Batch, EventStore, PgOptions, PgStore, RunId, Seq};
use tokio_postgres::NoTls;

const RECORD: usize = 200;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Latency {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn summarize(mut micros: Vec<f64>) -> Latency {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        mean: micros.iter().sum::<f64>() / micros.len() as f64,
    }
}

/// One connection doing bare inserts: the floor.
struct Floor {
    client: tokio_postgres::Client,
    insert: tokio_postgres::Statement,
    next_id: Arc<AtomicU64>,
}

impl Floor {
    async fn connect(url: &str, next_id: Arc<AtomicU64>) -> Floor {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let insert = client
            .prepare("INSERT INTO floor (id, payload) VALUES ($1, $2)")
            .await
            .unwrap();
        Floor {
            client,
            insert,
            next_id,
        }
    }

    async fn insert(&self, payload: &[u8]) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) as i64;
        self.client
            .execute(&self.insert, &[&id, &payload])
            .await
            .unwrap();
    }
}

/// Appends one event at a time to a run of its own.
struct Appender {
    store: PgStore,
    run: RunId,
    next: Seq,
}

impl Appender {
    fn new(store: &PgStore) -> Self {
        Self {
            store: store.clone(),
            run: RunId::new(),
            next: Seq::ZERO,
        }
    }

    async fn append(&mut self, payload: &Bytes) {
        self.next = self
            .store
            .append(self.run, self.next, Batch::events([payload.clone()]))
            .await
            .unwrap()
            .unwrap();
    }
}

async fn latency(url: &str, store: &PgStore, samples: usize) {
    let floor = Floor::connect(url, Arc::new(AtomicU64::new(0))).await;
    let mut appender = Appender::new(store);
    let payload = Bytes::from(vec![0x5a; RECORD]);
    for _ in 0..100 {
        floor.insert(&payload).await;
        appender.append(&payload).await;
    }
    let (mut bare, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        // Pairs, in alternating order: the disk's latency drifts (other processes
        // share it), and each pair sees the same moment.
        let (mut b, mut o) = (0.0, 0.0);
        for first_floor in [i % 2 == 0, i % 2 != 0] {
            let t = Instant::now();
            if first_floor {
                floor.insert(&payload).await;
                b = t.elapsed().as_secs_f64() * 1e6;
            } else {
                appender.append(&payload).await;
                o = t.elapsed().as_secs_f64() * 1e6;
            }
        }
        bare.push(b);
        ours.push(o);
        ratios.push(o / b);
    }
    ratios.sort_by(f64::total_cmp);
    let paired = ratios[ratios.len() / 2];
    let (bare, ours) = (summarize(bare), summarize(ours));
    println!("latency of one durable write ({samples} samples each, alternating), µs:");
    println!("  {:<40} {:>8} {:>8} {:>8}", "", "p50", "p99", "mean");
    for (name, l) in [
        ("floor: INSERT 200 B + commit", &bare),
        ("PgStore::append (1 event, 200 B)", &ours),
    ] {
        println!("  {name:<40} {:>8.0} {:>8.0} {:>8.0}", l.p50, l.p99, l.mean);
    }
    println!(
        "  ratio to the floor: {:.2}x mean, {:.2}x median, {paired:.2}x median of paired ratios\n",
        ours.mean / bare.mean,
        ours.p50 / bare.p50
    );
}

/// Operations per second of `writers` concurrent loops for `window`.
async fn throughput<F, Fut>(writers: usize, window: Duration, make: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<
            Output = Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>,
        >,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..writers {
        let mut op = make(i).await;
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                op().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for task in tasks {
        task.await.unwrap();
    }
    n as f64 / elapsed
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let server = TestPostgres::start();
    runtime.block_on(async {
        let url = server.fresh_database().await;
        server
            .admin(
                &url,
                "CREATE TABLE floor (id bigint PRIMARY KEY, payload bytea NOT NULL)",
            )
            .await;
        let store = PgOptions::new(&url)
            .unwrap()
            .max_connections(64)
            .open()
            .await
            .unwrap();
        println!("Postgres store vs a bare INSERT + commit, same local server (Unix socket)\n");
        let only = std::env::var("KEEL_BENCH_WRITERS")
            .ok()
            .and_then(|v| v.parse().ok());
        if only.is_none() {
            latency(&url, &store, env_or("KEEL_BENCH_SAMPLES", 2000) as usize).await;
        }

        let secs = env_or("KEEL_BENCH_SECS", 3);
        const ROUNDS: u32 = 3;
        let window = Duration::from_secs(secs) / ROUNDS;
        println!("throughput, one 200-byte event per append, {secs} s per point:");
        println!(
            "  {:>8} {:>14} {:>14} {:>8}",
            "writers", "floor ops/s", "appends/s", "ratio"
        );
        let ids = Arc::new(AtomicU64::new(1 << 40));
        let points = only.map_or(vec![1usize, 4, 16, 64], |n| vec![n]);
        for writers in points {
            let payload = Bytes::from(vec![0x5a; RECORD]);
            // Alternating windows, so both see the same moments of a shared disk.
            let (mut floor, mut ours) = (0.0, 0.0);
            for _ in 0..ROUNDS {
                floor += throughput(writers, window, |_| {
                    let (url, ids, payload) = (url.clone(), ids.clone(), payload.clone());
                    async move {
                        let floor = Arc::new(Floor::connect(&url, ids).await);
                        Box::new(move || {
                            let (floor, payload) = (floor.clone(), payload.clone());
                            Box::pin(async move { floor.insert(&payload).await })
                                as futures::future::BoxFuture<'static, ()>
                        })
                            as Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>
                    }
                })
                .await;
                ours += throughput(writers, window, |_| {
                    let (store, payload) = (store.clone(), payload.clone());
                    async move {
                        let appender = Arc::new(tokio::sync::Mutex::new(Appender::new(&store)));
                        Box::new(move || {
                            let (appender, payload) = (appender.clone(), payload.clone());
                            Box::pin(async move { appender.lock().await.append(&payload).await })
                                as futures::future::BoxFuture<'static, ()>
                        })
                            as Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>
                    }
                })
                .await;
            }
            let (floor, ours) = (floor / ROUNDS as f64, ours / ROUNDS as f64);
            println!(
                "  {writers:>8} {floor:>14.0} {ours:>14.0} {:>7.2}x",
                ours / floor
            );
        }
    });
}
