//! Tests of the record format and of recovery from hand-made segment files: torn
//! tails, zero tails, damage in sealed segments.

use super::*;
use crate::sled::segment::segment_path;

fn ops() -> Vec<Op> {
    vec![
        Op::Put {
            key: Bytes::from_static(b"k1"),
            value: Bytes::from_static(b"value"),
        },
        Op::Remove {
            key: Bytes::from_static(b"k2"),
        },
        Op::RemovePrefix {
            prefix: Bytes::from_static(b"e"),
        },
        Op::Append {
            run: RunId::from_bytes([7; 16]),
            first: Seq(41),
            events: vec![Bytes::new(), Bytes::from_static(b"an event")],
        },
    ]
}

#[test]
fn ops_round_trip_and_garbage_is_an_error() {
    let payload = encode_ops(&ops());
    assert_eq!(decode_ops(Bytes::from(payload.clone())).unwrap(), ops());
    for cut in 0..payload.len() {
        assert!(decode_ops(Bytes::copy_from_slice(&payload[..cut])).is_err());
    }
    let mut bad = payload.clone();
    bad[4] = 9;
    assert!(decode_ops(Bytes::from(bad)).is_err());
}

/// Records `first..first + n`, framed.
fn records(first: u64, n: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    for lsn in first..first + n {
        let payload = encode_ops(&ops());
        frame(&mut buf, lsn, &payload, crc32fast::hash(&payload));
    }
    buf
}

/// Writes records `first..first + n` as a segment file followed by `zeros` zero
/// bytes (a pre-zeroed segment partly written); returns the records' bytes.
fn write_segment(dir: &Path, first: u64, n: u64, zeros: usize) -> Vec<u8> {
    let buf = records(first, n);
    let mut file = buf.clone();
    file.resize(buf.len() + zeros, 0);
    std::fs::write(segment_path(dir, first), file).unwrap();
    buf
}

fn replayed(dir: &Path, applied: u64) -> Result<(Vec<u64>, Recovered)> {
    let mut seen = Vec::new();
    let r = recover(dir, applied, |lsn, ops| {
        assert_eq!(ops.len(), 4);
        seen.push(lsn);
        Ok(())
    })?;
    Ok((seen, r))
}

fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).unwrap().len() as usize
}

#[test]
fn a_header_is_never_all_zeros() {
    let buf = records(1, 1);
    assert!(buf[..HEADER_LEN].iter().any(|b| *b != 0));
    // Nor is the header of an empty record at LSN 0 (which is never written).
    let mut empty = Vec::new();
    frame(&mut empty, 0, &[], crc32fast::hash(&[]));
    assert!(empty[16..HEADER_LEN].iter().any(|b| *b != 0));
}

#[test]
fn recovery_replays_above_applied_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let buf = write_segment(dir.path(), 1, 5, 0);
    let path = segment_path(dir.path(), 1);
    // Tear the last record in every possible place.
    let record = buf.len() / 5;
    for cut in (buf.len() - record + 1)..buf.len() {
        std::fs::write(&path, &buf[..cut]).unwrap();
        let (seen, r) = replayed(dir.path(), 2).unwrap();
        assert_eq!(seen, vec![3, 4]);
        assert_eq!(r.last_lsn, 4);
        assert_eq!(r.truncated as usize, cut - (buf.len() - record));
        assert_eq!(file_len(&path), buf.len() - record);
    }
}

#[test]
fn a_zero_tail_is_the_clean_end_of_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let buf = write_segment(dir.path(), 1, 4, 64 << 10);
    let path = segment_path(dir.path(), 1);
    let (seen, r) = replayed(dir.path(), 0).unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4]);
    assert_eq!(r.last_lsn, 4);
    // Not a torn record...
    assert_eq!(r.truncated, 0);
    // ...but trimmed, so the segment is sealed like one rotated out.
    assert_eq!(file_len(&path), buf.len());
    assert_eq!(r.sealed.len(), 1);
    assert_eq!(r.sealed[0].last_lsn, 4);
    // Zeros shorter than a header are the end too.
    let mut short = buf.clone();
    short.extend_from_slice(&[0; 7]);
    std::fs::write(&path, &short).unwrap();
    let (seen, r) = replayed(dir.path(), 0).unwrap();
    assert_eq!((seen.len(), r.truncated), (4, 0));
    assert_eq!(file_len(&path), buf.len());
}

#[test]
fn a_torn_record_inside_a_pre_zeroed_segment_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(dir.path(), 1);
    let buf = records(1, 3);
    let record = buf.len() / 3;
    let kept = buf.len() - record;
    let zeros = 16 << 10;
    // The last record of the last group written only in part, over zeros: every
    // prefix of it, then the same with a hole (its first bytes never reached the
    // disk, later ones did).
    for cut in 1..record {
        let mut file = buf[..kept + cut].to_vec();
        file.resize(kept + record + zeros, 0);
        std::fs::write(&path, &file).unwrap();
        let (seen, r) = replayed(dir.path(), 0).unwrap();
        assert_eq!(seen, vec![1, 2], "cut at {cut}");
        assert_eq!(r.last_lsn, 2);
        assert_eq!(file_len(&path), kept, "cut at {cut}");

        let mut holed = buf.clone();
        holed[kept..kept + cut].fill(0);
        holed.resize(kept + record + zeros, 0);
        std::fs::write(&path, &holed).unwrap();
        let (seen, r) = replayed(dir.path(), 0).unwrap();
        assert_eq!(seen, vec![1, 2], "hole of {cut}");
        assert_eq!(file_len(&path), kept);
        assert!(
            r.truncated > 0,
            "a hole followed by data is torn, not clean"
        );
    }
}

#[test]
fn a_flipped_bit_ends_the_log_and_a_gap_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut buf = write_segment(dir.path(), 1, 3, 0);
    let path = segment_path(dir.path(), 1);
    let last = buf.len() - 1;
    buf[last] ^= 1;
    std::fs::write(&path, &buf).unwrap();
    let (_, r) = replayed(dir.path(), 0).unwrap();
    assert_eq!(r.last_lsn, 2);

    // A segment starting after what sled holds: records are missing.
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 10, 1, 0);
    let err = replayed(dir.path(), 5).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn damage_in_an_earlier_segment_is_not_silently_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut buf = write_segment(dir.path(), 1, 3, 0);
    write_segment(dir.path(), 4, 3, 0);
    buf[30] ^= 0xff;
    std::fs::write(segment_path(dir.path(), 1), &buf).unwrap();
    let err = replayed(dir.path(), 0).unwrap_err();
    assert!(matches!(err, Error::CorruptMeta { .. }), "{err}");
    assert!(err.to_string().contains("not the last segment"), "{err}");
}

#[test]
fn a_sealed_segment_ends_at_its_last_record() {
    // Sealed exactly: recovered across both segments.
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, 3, 0);
    write_segment(dir.path(), 4, 2, 4096);
    let (seen, r) = replayed(dir.path(), 0).unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(r.sealed.len(), 2);
    assert_eq!(r.sealed[0].last_lsn, 3);

    // Zeros after the records of an earlier segment: its trim was lost or its last
    // records were, and the next segment's first record says which.
    for lost_last_record in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let buf = write_segment(dir.path(), 1, 3, 4096);
        if lost_last_record {
            // The last record of the first segment zeroed out.
            let record = buf.len() / 3;
            let mut file = buf[..buf.len() - record].to_vec();
            file.resize(buf.len() + 4096, 0);
            std::fs::write(segment_path(dir.path(), 1), file).unwrap();
        }
        write_segment(dir.path(), 4, 1, 0);
        let err = replayed(dir.path(), 0).unwrap_err();
        assert!(matches!(err, Error::CorruptMeta { .. }), "{err}");
        assert!(err.to_string().contains("zeros where a record"), "{err}");
    }
}

#[test]
fn an_empty_last_segment_is_removed_and_the_one_before_stays_sealed() {
    // A crash after the next segment's name became durable and before its first
    // record: the pre-zeroed file holds nothing.
    let dir = tempfile::tempdir().unwrap();
    let buf = write_segment(dir.path(), 1, 3, 0);
    let empty = segment_path(dir.path(), 4);
    std::fs::write(&empty, vec![0u8; 8192]).unwrap();
    let (seen, r) = replayed(dir.path(), 0).unwrap();
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(r.last_lsn, 3);
    assert_eq!(r.sealed.len(), 1);
    // Its name is the next segment's: it must not stay to be deleted by a checkpoint
    // that believes it sealed.
    assert!(!empty.exists());
    assert_eq!(file_len(&segment_path(dir.path(), 1)), buf.len());

    // The same with a torn first record, and with a file that grew by appending.
    for contents in [records(4, 1)[..10].to_vec(), Vec::new()] {
        std::fs::write(&empty, contents).unwrap();
        let (seen, r) = replayed(dir.path(), 3).unwrap();
        assert!(seen.is_empty());
        assert_eq!(r.last_lsn, 3);
        assert!(!empty.exists());
    }
}
