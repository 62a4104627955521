//! Durable append benchmark: the sled store against the `fdatasync` floor, in one run.
//!
//! `cargo bench -p keel-storage --bench append`. Prints a table; ratios are to the
//! floor measured in the same run on the same filesystem (the machine is noisy, so
//! absolute numbers mean little across runs). `KEEL_BENCH_SECS` sets the seconds per
//! throughput point (default 3), `KEEL_BENCH_DIR` the directory to measure in
//! (default: cargo's target tmp dir). `KEEL_BENCH_WRITERS=64` measures only that
//! throughput point (for profiling).
//!
//! Besides the floor, two reference rows: the store's mechanism bare (overwriting a
//! pre-zeroed file + `fdatasync`, what a group costs at least), and the round trip of
//! the two thread hand-offs an append makes (to the flusher and back), without I/O.

// A benchmark that cannot set itself up has nothing to report: failing loudly is right.
#![allow(clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_storage::{Batch, EventStore, RunId, Seq, SledStore};

const RECORD: usize = 200;
const LATENCY_SAMPLES: usize = 3000;

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

/// The floor: append ~200 bytes to a plain file and `fdatasync`, one thread.
struct Floor {
    file: std::fs::File,
    record: [u8; RECORD],
}

impl Floor {
    fn new(dir: &std::path::Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("floor.log"))
            .expect("open the floor file");
        Self {
            file,
            record: [0x5a; RECORD],
        }
    }

    /// The mean of `n` samples, in µs.
    fn burst(&mut self, n: usize) -> f64 {
        (0..n).map(|_| self.sample()).sum::<f64>() / n as f64
    }

    /// One append + `fdatasync`, in µs.
    fn sample(&mut self) -> f64 {
        let start = Instant::now();
        self.file.write_all(&self.record).expect("write");
        self.file.sync_data().expect("fdatasync");
        start.elapsed().as_secs_f64() * 1e6
    }
}

/// The store's own mechanism, bare: overwrite ~200 bytes of a file written full of
/// zeros and `fsync`ed beforehand, then `fdatasync` (no size to commit).
struct Prezeroed {
    file: std::fs::File,
    offset: u64,
    record: [u8; RECORD],
}

const PREZEROED_BYTES: u64 = 8 << 20;

impl Prezeroed {
    fn new(dir: &std::path::Path) -> Self {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.join("prezeroed.log"))
            .expect("open the pre-zeroed file");
        file.write_all(&vec![0u8; PREZEROED_BYTES as usize])
            .expect("write zeros");
        file.sync_all().expect("fsync");
        Self {
            file,
            offset: 0,
            record: [0x5a; RECORD],
        }
    }

    /// One overwrite + `fdatasync`, in µs.
    fn sample(&mut self) -> f64 {
        use std::os::unix::fs::FileExt;
        let start = Instant::now();
        self.file
            .write_all_at(&self.record, self.offset)
            .expect("write");
        self.file.sync_data().expect("fdatasync");
        self.offset = (self.offset + RECORD as u64) % (PREZEROED_BYTES - RECORD as u64);
        start.elapsed().as_secs_f64() * 1e6
    }
}

/// One writer's durable append latency, interleaved sample by sample with the
/// floor's and the bare mechanism's (alternating the order), so all see the same
/// disk: on a shared machine the disk's speed changes from second to second.
async fn single_writer(
    store: &SledStore,
    floor: &mut Floor,
    bare: &mut Prezeroed,
    n: u64,
) -> [Latency; 3] {
    let run = RunId::new();
    let event = Bytes::from(vec![0x5au8; RECORD]);
    let mut floor_samples = Vec::with_capacity(n as usize);
    let mut bare_samples = Vec::with_capacity(n as usize);
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        if i % 2 == 0 {
            floor_samples.push(floor.sample());
            bare_samples.push(bare.sample());
        }
        let start = Instant::now();
        let next = store
            .append(run, Seq(i), Batch::events([event.clone()]))
            .await
            .expect("append");
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(next, Ok(Seq(i + 1)));
        if i % 2 == 1 {
            bare_samples.push(bare.sample());
            floor_samples.push(floor.sample());
        }
    }
    [
        summarize(floor_samples),
        summarize(bare_samples),
        summarize(samples),
    ]
}

/// The round trip of the store's two thread hand-offs without I/O: wake a thread
/// waiting on a condition variable, which answers through a tokio oneshot.
async fn hand_off(n: usize) -> Latency {
    use std::sync::{Condvar, Mutex};
    type Slot = Mutex<(Option<tokio::sync::oneshot::Sender<()>>, bool)>;
    let shared: Arc<(Slot, Condvar)> = Arc::new((Mutex::new((None, false)), Condvar::new()));
    let thread = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let (slot, wake) = &*shared;
            let mut guard = slot.lock().expect("lock");
            loop {
                if let Some(done) = guard.0.take() {
                    let _ = done.send(());
                }
                if guard.1 {
                    return;
                }
                guard = wake.wait(guard).expect("wait");
            }
        })
    };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (done, wait) = tokio::sync::oneshot::channel();
        let start = Instant::now();
        shared.0.lock().expect("lock").0 = Some(done);
        shared.1.notify_one();
        wait.await.expect("answer");
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    shared.0.lock().expect("lock").1 = true;
    shared.1.notify_one();
    thread.join().expect("hand-off thread");
    summarize(samples)
}

/// Aggregate durable appends per second with `writers` concurrent writers, each on
/// its own run.
async fn throughput(store: &SledStore, writers: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let event = Bytes::from(vec![0x5au8; RECORD]);
    let mut tasks = Vec::with_capacity(writers);
    let start = Instant::now();
    for _ in 0..writers {
        let (store, stop, count, event) =
            (store.clone(), stop.clone(), count.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            let run = RunId::new();
            let mut next = Seq::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let result = store
                    .append(run, next, Batch::events([event.clone()]))
                    .await
                    .expect("append");
                next = result.expect("no other writer on this run");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("writer task");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::var("KEEL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let base = std::env::var_os("KEEL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("create the bench directory");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let store = SledStore::open(dir.path().join("store")).expect("open the store");
    let mut floor = Floor::new(dir.path());
    if let Some(writers) = std::env::var("KEEL_BENCH_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // One throughput point alone, for profiling.
        let rate = runtime.block_on(throughput(&store, writers, secs));
        println!("sled store, {writers} concurrent writers: {rate:.0} appends/s");
        return;
    }
    let mut bare = Prezeroed::new(dir.path());
    // Warm up (first extents, sled's first pages) before measuring.
    runtime.block_on(single_writer(&store, &mut floor, &mut bare, 300));
    let [floor_latency, bare_latency, single] = runtime.block_on(single_writer(
        &store,
        &mut floor,
        &mut bare,
        LATENCY_SAMPLES as u64,
    ));
    let hand_off_latency = runtime.block_on(hand_off(LATENCY_SAMPLES));
    let floor_mean = floor_latency.mean;

    println!(
        "durable append, {RECORD}-byte events, in {}",
        dir.path().display()
    );
    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>8}",
        "latency (µs)", "p50", "p99", "mean", "÷floor"
    );
    let row = |name: &str, l: &Latency| {
        println!(
            "{name:<44} {:>9.1} {:>9.1} {:>9.1} {:>8.2}",
            l.p50,
            l.p99,
            l.mean,
            l.mean / floor_mean
        );
    };
    row("floor: file append + fdatasync", &floor_latency);
    row("pre-zeroed file: overwrite + fdatasync", &bare_latency);
    row("sled store, one writer (interleaved)", &single);
    row(
        "thread hand-offs, no I/O (condvar+oneshot)",
        &hand_off_latency,
    );

    // Throughput, in two rounds. The shared disk's speed drifts between points, so
    // each point also measures the floor just before and after it, and is compared
    // with the others as appends per floor-fdatasync time.
    println!();
    println!(
        "{:<36} {:>11} {:>10} {:>14} {:>10} {:>10}",
        "throughput", "appends/s", "floor µs", "per fdatasync", "÷1 writer", "(raw)"
    );
    let counts = [1usize, 8, 64, 256];
    let mut appends_per_sync = vec![Vec::new(); counts.len()];
    let mut rates = vec![Vec::new(); counts.len()];
    let mut floors = vec![Vec::new(); counts.len()];
    for _round in 0..2 {
        for (i, &writers) in counts.iter().enumerate() {
            let before = floor.burst(200);
            let rate = runtime.block_on(throughput(&store, writers, secs / 2.0));
            let floor_us = (before + floor.burst(200)) / 2.0;
            appends_per_sync[i].push(rate * floor_us / 1e6);
            rates[i].push(rate);
            floors[i].push(floor_us);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let per_sync: Vec<f64> = appends_per_sync.iter().map(|v| mean(v)).collect();
    for (i, writers) in counts.iter().enumerate() {
        println!(
            "{:<36} {:>11.0} {:>10.1} {:>14.2} {:>10.2} {:>10.2}",
            format!("sled store, {writers} concurrent writers"),
            mean(&rates[i]),
            mean(&floors[i]),
            per_sync[i],
            per_sync[i] / per_sync[0],
            mean(&rates[i]) / mean(&rates[0]),
        );
    }
    println!();
    println!(
        "targets: one writer ≤ 1.3× the floor's latency: {:.2}× by mean, {:.2}× by p50",
        single.mean / floor_mean,
        single.p50 / floor_latency.p50
    );
    println!(
        "         (one writer ÷ its bare mechanism: {:.2}× by mean, {:.2}× by p50)",
        single.mean / bare_latency.mean,
        single.p50 / bare_latency.p50
    );
    println!(
        "         64 writers ≥ 10× one writer's appends/s: {:.2}× (per fdatasync), {:.2}× (raw)",
        per_sync[2] / per_sync[0],
        mean(&rates[2]) / mean(&rates[0])
    );
    drop(store);
}
