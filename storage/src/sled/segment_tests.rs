//! Tests of segment files driven through [`Wal`] and [`Spares`] as the flusher
//! drives them, "crashing" (dropping everything without closing) at each step of
//! preparing, activating and sealing a segment, then recovering.

use bytes::Bytes;

use super::*;
use crate::sled::wal::{self, Op, Recovered};

/// A group of `n` records from `first`, each carrying a 200-byte value.
fn group(first: u64, n: u64) -> Vec<u8> {
    let mut framed = Vec::new();
    for lsn in first..first + n {
        let payload = wal::encode_ops(&[Op::Put {
            key: Bytes::copy_from_slice(&lsn.to_be_bytes()),
            value: Bytes::from(vec![0x5a; 200]),
        }]);
        wal::frame(&mut framed, lsn, &payload, crc32fast::hash(&payload));
    }
    framed
}

/// Writes and syncs a group as the flusher does; returns the segment it sealed.
fn write_group(wal: &mut Wal, first: u64, n: u64) -> Option<Sealed> {
    let framed = group(first, n);
    let sealed = wal.make_room(framed.len() as u64, first).unwrap();
    wal.write(&framed).unwrap();
    wal.sync().unwrap();
    sealed
}

/// Prepares a spare of `bytes` at once, as the preparer thread would.
fn ready_spare(spares: &Spares, bytes: u64) {
    let spare = spares.prepare(bytes).unwrap().unwrap();
    let mut state = lock(&spares.state);
    state.wanted = None;
    state.ready = Some(spare);
}

fn recovered(dir: &Path, applied: u64) -> (Vec<u64>, Recovered) {
    let mut seen = Vec::new();
    let r = wal::recover(dir, applied, |lsn, _| {
        seen.push(lsn);
        Ok(())
    })
    .unwrap();
    (seen, r)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn wal_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn records_overwrite_a_pre_zeroed_segment_and_its_zero_tail_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    ready_spare(&spares, 64 << 10);
    let mut wal = Wal::open(dir.path(), 1, 1 << 20, spares).unwrap();
    let path = segment_path(dir.path(), 1);
    assert_eq!(wal_files(dir.path()), ["00000000000000000001.wal"]);
    let mut written = 0;
    for g in 0..10 {
        assert!(write_group(&mut wal, 1 + g * 3, 3).is_none());
        written += group(1 + g * 3, 3).len() as u64;
        // Overwritten in place: the file never grows.
        assert_eq!(file_len(&path), 64 << 10);
    }
    // Killed: nothing trims the tail but recovery.
    drop(wal);
    let (seen, r) = recovered(dir.path(), 0);
    assert_eq!(seen, (1..=30).collect::<Vec<_>>());
    assert_eq!((r.last_lsn, r.truncated), (30, 0));
    assert_eq!(file_len(&path), written);
}

#[test]
fn a_segment_is_sealed_at_its_last_record_before_the_next_becomes_active() {
    let dir = tempfile::tempdir().unwrap();
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    ready_spare(&spares, 16 << 10);
    let mut wal = Wal::open(dir.path(), 1, 64 << 10, spares.clone()).unwrap();
    let first_path = segment_path(dir.path(), 1);

    // Full, but no spare is ready: the segment grows past its zeroed space rather
    // than wait.
    let (mut lsn, mut in_first) = (1, 0);
    while in_first < 20 << 10 {
        assert!(write_group(&mut wal, lsn, 2).is_none());
        in_first += group(lsn, 2).len() as u64;
        lsn += 2;
    }
    assert_eq!(file_len(&first_path), in_first);

    // A spare is ready: the next group starts the next segment.
    ready_spare(&spares, 16 << 10);
    let sealed = write_group(&mut wal, lsn, 2).unwrap();
    assert_eq!(sealed.path, first_path);
    assert_eq!(sealed.last_lsn, lsn - 1);
    assert_eq!(file_len(&first_path), in_first);
    let second_path = segment_path(dir.path(), lsn);
    assert_eq!(file_len(&second_path), 16 << 10);
    lsn += 2;

    // Within its zeroed space it is not rotated, even with a spare ready; at the
    // segment size it is, into a growing file when no spare is ready.
    ready_spare(&spares, 16 << 10);
    let mut in_second = group(lsn - 2, 2).len() as u64;
    while in_second + group(lsn, 2).len() as u64 <= 16 << 10 {
        assert!(write_group(&mut wal, lsn, 2).is_none());
        in_second += group(lsn, 2).len() as u64;
        lsn += 2;
    }
    assert!(spares.take().is_some());
    while in_second < 64 << 10 {
        assert!(write_group(&mut wal, lsn, 2).is_none());
        in_second += group(lsn, 2).len() as u64;
        lsn += 2;
    }
    let sealed = write_group(&mut wal, lsn, 1).unwrap();
    assert_eq!(sealed.path, second_path);
    assert_eq!(file_len(&second_path), in_second);
    let third_path = segment_path(dir.path(), lsn);
    assert_eq!(file_len(&third_path), group(lsn, 1).len() as u64);

    drop(wal);
    let (seen, r) = recovered(dir.path(), 0);
    assert_eq!(seen, (1..=lsn).collect::<Vec<_>>());
    assert_eq!(r.sealed.len(), 3);
    assert_eq!(r.truncated, 0);
}

#[test]
fn a_crash_between_preparing_and_activating_a_spare_recovers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    ready_spare(&spares, 32 << 10);
    let mut wal = Wal::open(dir.path(), 1, 1 << 20, spares.clone()).unwrap();
    for g in 0..4 {
        write_group(&mut wal, 1 + g * 2, 2);
    }
    // The next spare is complete, and a later one was being written when the
    // process died.
    ready_spare(&spares, 32 << 10);
    std::fs::write(dir.path().join(SPARE_PARTIAL), [0u8; 100]).unwrap();
    drop((wal, spares));

    let (seen, r) = recovered(dir.path(), 0);
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
    assert_eq!((r.last_lsn, r.truncated), (8, 0));
    // The next open deletes the half-written spare and starts in the complete one.
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    assert!(!dir.path().join(SPARE_PARTIAL).exists());
    let mut wal = Wal::open(dir.path(), 9, 1 << 20, spares.clone()).unwrap();
    assert_eq!(
        wal_files(dir.path()),
        ["00000000000000000001.wal", "00000000000000000009.wal"]
    );
    assert_eq!(file_len(&segment_path(dir.path(), 9)), 32 << 10);
    write_group(&mut wal, 9, 1);

    // Killed right after the next segment was activated (renamed, its name made
    // durable), before its first record: it holds nothing and is removed; the one
    // before was sealed exactly.
    ready_spare(&spares, 32 << 10);
    let framed = group(10, 40);
    wal.write(&framed).unwrap();
    wal.sync().unwrap();
    let sealed = wal.make_room(40 << 10, 50).unwrap().unwrap();
    assert_eq!(sealed.last_lsn, 49);
    drop(wal);
    let (seen, r) = recovered(dir.path(), 8);
    assert_eq!(seen, (9..=49).collect::<Vec<_>>());
    assert_eq!(r.last_lsn, 49);
    assert!(!segment_path(dir.path(), 50).exists());
    assert_eq!(
        file_len(&segment_path(dir.path(), 9)),
        (group(9, 1).len() + framed.len()) as u64
    );
}

#[test]
fn a_torn_group_in_a_pre_zeroed_segment_is_cut_and_writing_resumes_in_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    ready_spare(&spares, 32 << 10);
    let mut wal = Wal::open(dir.path(), 1, 1 << 20, spares.clone()).unwrap();
    write_group(&mut wal, 1, 3);
    let kept = group(1, 3).len() as u64;
    // The next group reached the disk only in part: its first record is cut short.
    let torn = group(4, 3);
    wal.write(&torn[..torn.len() / 6]).unwrap();
    drop(wal);

    let (seen, r) = recovered(dir.path(), 0);
    assert_eq!(seen, [1, 2, 3]);
    assert_eq!(r.last_lsn, 3);
    assert!(r.truncated > 0);
    assert_eq!(file_len(&segment_path(dir.path(), 1)), kept);
    // Writing resumes in a new segment, and the torn bytes never come back.
    let mut wal = Wal::open(dir.path(), 4, 1 << 20, spares).unwrap();
    write_group(&mut wal, 4, 1);
    drop(wal);
    let (seen, r) = recovered(dir.path(), 0);
    assert_eq!(seen, [1, 2, 3, 4]);
    assert_eq!((r.sealed.len(), r.truncated), (2, 0));
}

#[test]
fn close_keeps_an_unused_pre_zeroed_segment_as_the_spare() {
    let dir = tempfile::tempdir().unwrap();
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    ready_spare(&spares, 32 << 10);
    let wal = Wal::open(dir.path(), 1, 1 << 20, spares).unwrap();
    wal.close(0, 0).unwrap();
    assert_eq!(wal_files(dir.path()), [SPARE]);
    assert_eq!(file_len(&dir.path().join(SPARE)), 32 << 10);

    // Used, then closed with everything applied: deleted.
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    let mut wal = Wal::open(dir.path(), 1, 1 << 20, spares).unwrap();
    write_group(&mut wal, 1, 1);
    wal.close(1, 1).unwrap();
    assert!(wal_files(dir.path()).is_empty());

    // Nothing ready: a growing segment, deleted at close.
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    let wal = Wal::open(dir.path(), 2, 1 << 20, spares).unwrap();
    assert_eq!(file_len(&segment_path(dir.path(), 2)), 0);
    wal.close(1, 1).unwrap();
    assert!(wal_files(dir.path()).is_empty());
}

#[test]
fn the_preparer_writes_complete_zeroed_spares_of_growing_size() {
    let dir = tempfile::tempdir().unwrap();
    let spares = Arc::new(Spares::open(dir.path()).unwrap());
    let preparer = {
        let spares = spares.clone();
        std::thread::spawn(move || run_preparer(&spares))
    };
    let wait_ready = || {
        let mut state = lock(&spares.state);
        while state.ready.is_none() {
            assert!(!state.failed);
            state = wait(&spares.wake, state);
        }
    };
    // A growing first segment asks for a spare with its first group.
    let mut wal = Wal::open(dir.path(), 1, 4 << 20, spares.clone()).unwrap();
    write_group(&mut wal, 1, 1);
    wait_ready();
    let spare = dir.path().join(SPARE);
    assert_eq!(file_len(&spare), MIN_SPARE);
    assert!(std::fs::read(&spare).unwrap().iter().all(|b| *b == 0));
    assert!(!dir.path().join(SPARE_PARTIAL).exists());

    // The next group moves to it (the growing segment is sealed as it is); once it
    // is half full the next, twice as large, is prepared.
    assert!(write_group(&mut wal, 2, 1).is_some());
    let mut lsn = 3;
    // Until the preparer is asked (`wanted`), or has already finished (`ready`: on a
    // busy machine it can fill and sync the spare between two of these groups).
    while {
        let state = lock(&spares.state);
        state.wanted.is_none() && state.ready.is_none()
    } {
        assert!(write_group(&mut wal, lsn, 64).is_none());
        lsn += 64;
    }
    wait_ready();
    assert_eq!(file_len(&spare), 2 * MIN_SPARE);
    spares.stop();
    preparer.join().unwrap();
}
