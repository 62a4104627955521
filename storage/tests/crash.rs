//! Tests with real child processes: kill -9 while appending, and the one-process lock.
//!
//! The children are this test binary itself, re-run on an `#[ignore]`d test that
//! does nothing unless an environment variable hands it a store directory.
//!
//! `KEEL_CRASH_KILLS=400 KEEL_CRASH_SEED=7 cargo test -p keel-storage --test crash`
//! runs a longer soak (defaults: 40 kills, a fixed seed).

// Helpers of tests: a failed step fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use bytes::Bytes;
use keel_storage::conformance::event_bytes;
use keel_storage::{Batch, BlobHash, Error, EventStore, RunId, Seq, SledOptions, SledStore};

const WRITER_DIR: &str = "KEEL_TEST_CRASH_WRITER_DIR";
const HOLDER_DIR: &str = "KEEL_TEST_LOCK_HOLDER_DIR";
const WRITERS: u8 = 4;

/// The run of writer `w`: fixed, so every child continues the same logs.
fn run_of(w: u8) -> RunId {
    RunId::from_bytes([w + 1; 16])
}

/// The size of event `seq` of `run`: mostly small, sometimes large enough to take
/// sled's separate-file path for big values.
fn size_of(run: RunId, seq: Seq) -> usize {
    let h = BlobHash::of(&[run.as_bytes().as_slice(), &seq.0.to_le_bytes()].concat()).0;
    match h[0] % 40 {
        0 => 130_000 + usize::from(h[1]) * 10,
        1..=4 => 4_000 + usize::from(h[1]) * 10,
        _ => usize::from(h[1]) + 1,
    }
}

/// Every seventh event is written with a blob, in the same batch.
fn blob_of(run: RunId, seq: Seq) -> Option<Bytes> {
    seq.0
        .is_multiple_of(7)
        .then(|| event_bytes(run, Seq(seq.0 | 1 << 63), 300))
}

fn batch_for(run: RunId, from: Seq, n: u64) -> Batch {
    let seqs = (from.0..from.0 + n).map(Seq);
    Batch::events(seqs.clone().map(|s| event_bytes(run, s, size_of(run, s))))
        .with_blobs(seqs.filter_map(|s| blob_of(run, s)))
}

fn child_command(test: &str, env: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
    ])
    .env(env, dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// Kills the child if the test fails half-way.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines marked `@` in a child's stdout (libtest's own output shares the stream).
fn marked_lines(stdout: ChildStdout) -> impl Iterator<Item = String> {
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.find('@').map(|at| line[at + 1..].trim().to_owned()))
}

#[test]
#[ignore = "the writer child of kill_nine_at_many_points_loses_no_acknowledged_event"]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        // Small segments, so kills also land in rotations and checkpoints.
        let store = SledOptions::new(dir)
            .segment_bytes(256 << 10)
            .open()
            .unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let run = run_of(w);
                    let mut next = store
                        .run_info(run)
                        .await
                        .unwrap()
                        .map_or(Seq::ZERO, |i| i.next_seq);
                    loop {
                        let n = 1 + next.0 % 3;
                        let outcome = store.append(run, next, batch_for(run, next, n)).await;
                        next = outcome.unwrap().unwrap();
                        // Printed only once the append is acknowledged (durable).
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "@ack {w} {}", next.0).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        // The writers append until the parent kills this process.
        futures::future::try_join_all(writers).await.unwrap();
    });
}

/// Opens the store and checks every writer's log against what was acknowledged.
async fn verify(dir: &Path, acked: &HashMap<u8, u64>) -> SledStore {
    let store = SledStore::open(dir).unwrap();
    for w in 0..WRITERS {
        let run = run_of(w);
        let records = store.read(run, Seq::ZERO).await.unwrap();
        let len = records.len() as u64;
        let acked = acked.get(&w).copied().unwrap_or(0);
        assert!(
            len >= acked,
            "writer {w}: {len} events stored, {acked} acknowledged"
        );
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.seq, Seq(i as u64), "writer {w}: a gap in the log");
            let expected = event_bytes(run, record.seq, size_of(run, record.seq));
            assert_eq!(
                record.bytes, expected,
                "writer {w}: seq {} differs",
                record.seq
            );
            if let Some(blob) = blob_of(run, record.seq) {
                let stored = store.get_blob(BlobHash::of(&blob)).await.unwrap();
                assert_eq!(
                    stored,
                    Some(blob),
                    "writer {w}: seq {}'s blob is missing",
                    record.seq
                );
            }
        }
        if len > 0 {
            let info = store.run_info(run).await.unwrap().unwrap();
            assert_eq!(info.next_seq, Seq(len));
        }
    }
    store
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_at_many_points_loses_no_acknowledged_event() {
    let kills = env_u64("KEEL_CRASH_KILLS", 40);
    let mut seed = env_u64("KEEL_CRASH_SEED", 0x6b65_656c);
    let mut random = move |below: u64| {
        // splitmix64: reproducible kill points from the seed.
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % below
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("store");
    let mut acked: HashMap<u8, u64> = HashMap::new();
    let mut total_acks = 0u64;
    for kill in 0..kills {
        // Kill after 1 to 200 acknowledgements: early (during recovery of the last
        // crash, first appends) as well as late (rotations, checkpoints).
        let target = 1 + random(200);
        let mut child = Reaped(
            child_command("crash_writer_child", WRITER_DIR, &dir)
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let mut seen = 0;
        let mut killed = false;
        for line in marked_lines(stdout) {
            let mut words = line.split_whitespace().skip(1);
            let (Some(w), Some(len)) = (words.next(), words.next()) else {
                panic!("unexpected child output {line:?}");
            };
            let (w, len): (u8, u64) = (w.parse().unwrap(), len.parse().unwrap());
            let entry = acked.entry(w).or_default();
            *entry = (*entry).max(len);
            seen += 1;
            if seen == target {
                // SIGKILL; lines already printed are still read: they were acknowledged.
                child.0.kill().unwrap();
                killed = true;
            }
        }
        let status = child.0.wait().unwrap();
        assert!(
            killed,
            "kill {kill}: the writer exited by itself ({status}) after {seen} acks"
        );
        total_acks += seen;
        let store = verify(&dir, &acked).await;
        // The recovered store still takes appends, continuing the same logs.
        let run = run_of(0);
        let next = store
            .run_info(run)
            .await
            .unwrap()
            .map_or(Seq::ZERO, |i| i.next_seq);
        let after = store
            .append(run, next, batch_for(run, next, 1))
            .await
            .unwrap();
        assert_eq!(after, Ok(next.next()));
        acked.insert(0, next.0 + 1);
    }
    assert!(
        total_acks >= kills,
        "{total_acks} acknowledgements over {kills} kills"
    );
}

#[test]
#[ignore = "the lock-holding child of a_second_process_is_refused_at_once"]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(HOLDER_DIR) else {
        return;
    };
    let store = SledStore::open(dir).unwrap();
    println!("@holding");
    // Hold the store until the parent closes our stdin.
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).unwrap() > 0 {}
    drop(store);
}

fn spawn_holder(dir: &Path) -> Reaped {
    let mut child = Reaped(
        child_command("lock_holder_child", HOLDER_DIR, dir)
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = marked_lines(stdout);
    assert_eq!(lines.next().as_deref(), Some("holding"));
    // Keep draining, or the child's last words meet a broken pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

#[test]
fn a_second_process_is_refused_at_once_and_told_who_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = spawn_holder(dir.path());
    let pid = holder.0.id();
    let err = SledStore::open(dir.path()).unwrap_err();
    let Error::Locked { path, owner } = &err else {
        panic!("expected Locked, got {err}");
    };
    assert_eq!(path, dir.path());
    let owner = owner.as_deref().unwrap();
    assert!(
        owner.contains(&format!("pid {pid}")),
        "owner text {owner:?}"
    );
    assert!(owner.contains("lock_holder_child"), "owner text {owner:?}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );

    // Closing its stdin lets the holder close the store and exit cleanly.
    drop(holder.0.stdin.take());
    assert!(holder.0.wait().unwrap().success());
    drop(SledStore::open(dir.path()).unwrap());

    // A holder killed with SIGKILL releases the lock with its death.
    let mut holder = spawn_holder(dir.path());
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(Error::Locked { .. })
    ));
    holder.0.kill().unwrap();
    holder.0.wait().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
}
