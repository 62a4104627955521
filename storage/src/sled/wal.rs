//! The write-ahead log in front of sled: what makes an append durable.
//!
//! Each record is one atomic unit (an append, a delete, a blob put) expressed as
//! blind writes to sled keys, so replaying a record twice is harmless. Records are
//! numbered by a log sequence number (LSN), consecutive across segment files named
//! after their first LSN (`wal/00000000000000000042.wal`).
//!
//! Record layout (little-endian):
//!
//! ```text
//! len: u32 | lsn: u64 | payload_crc: u32 | header_crc: u32 | payload: len bytes
//! ```
//!
//! `header_crc` covers the 16 bytes before it, `payload_crc` the payload (CRC-32,
//! IEEE). A record that is short, fails a checksum or breaks the LSN sequence is a
//! torn write: in the last segment it marks the end of the log and is cut off; in an
//! earlier segment (which was fully synced before the next one was created) it is
//! corruption and opening fails rather than dropping the records after it.
//!
//! Payload: `count: u32`, then `count` ops, each a tag byte (1 put, 2 remove,
//! 3 remove-prefix), a `u32` key length and the key, and for puts a `u32` value length
//! and the value; or tag 4 (append events): the run (16 bytes), the first seq (`u64`),
//! an event count (`u32`) and each event as a `u32` length and its bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes};

use crate::error::{Error, Result};
use crate::id::{RunId, Seq};

/// Bytes of a record header.
pub(crate) const HEADER_LEN: usize = 20;

const PUT: u8 = 1;
const REMOVE: u8 = 2;
const REMOVE_PREFIX: u8 = 3;
const APPEND: u8 = 4;

/// One blind write to the sled tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Sets `key` to `value`.
    Put { key: Bytes, value: Bytes },
    /// Removes `key`.
    Remove { key: Bytes },
    /// Removes every key starting with `prefix`.
    RemovePrefix { prefix: Bytes },
    /// Stores events `first, first + 1, …` of a run. Kept apart from `Put` so that the
    /// applier can store the events of several records of a run as one sled value.
    Append {
        run: RunId,
        first: Seq,
        events: Vec<Bytes>,
    },
}

/// The payload of a record carrying `ops`.
pub(crate) fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value } => 9 + key.len() + value.len(),
            Op::Remove { key } | Op::RemovePrefix { prefix: key } => 5 + key.len(),
            Op::Append { events, .. } => 29 + events.iter().map(|e| 4 + e.len()).sum::<usize>(),
        })
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&len_u32(ops.len()).to_le_bytes());
    for op in ops {
        let (tag, key, value) = match op {
            Op::Put { key, value } => (PUT, key, Some(value)),
            Op::Remove { key } => (REMOVE, key, None),
            Op::RemovePrefix { prefix } => (REMOVE_PREFIX, prefix, None),
            Op::Append { run, first, events } => {
                out.push(APPEND);
                out.extend_from_slice(run.as_bytes());
                out.extend_from_slice(&first.0.to_le_bytes());
                out.extend_from_slice(&len_u32(events.len()).to_le_bytes());
                for event in events {
                    out.extend_from_slice(&len_u32(event.len()).to_le_bytes());
                    out.extend_from_slice(event);
                }
                continue;
            }
        };
        out.push(tag);
        out.extend_from_slice(&len_u32(key.len()).to_le_bytes());
        out.extend_from_slice(key);
        if let Some(value) = value {
            out.extend_from_slice(&len_u32(value.len()).to_le_bytes());
            out.extend_from_slice(value);
        }
    }
    out
}

/// Lengths are checked against `u32` when a batch is prepared (see `MAX_RECORD`), so
/// this never saturates in practice; saturating keeps it panic-free regardless.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The largest payload one record may carry (and one append may write).
pub(crate) const MAX_RECORD: usize = u32::MAX as usize;

/// Reads the ops of a payload whose checksum matched. Slices `payload`, no copies.
pub(crate) fn decode_ops(mut payload: Bytes) -> Result<Vec<Op>, String> {
    fn take(buf: &mut Bytes, what: &str) -> Result<Bytes, String> {
        if buf.remaining() < 4 {
            return Err(format!("{what} length cut short"));
        }
        let len = buf.get_u32_le() as usize;
        if buf.remaining() < len {
            return Err(format!("{what} of {len} bytes cut short"));
        }
        Ok(buf.split_to(len))
    }
    if payload.remaining() < 4 {
        return Err("op count cut short".to_owned());
    }
    let count = payload.get_u32_le();
    let mut ops = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        if !payload.has_remaining() {
            return Err("op cut short".to_owned());
        }
        let op = match payload.get_u8() {
            PUT => Op::Put {
                key: take(&mut payload, "key")?,
                value: take(&mut payload, "value")?,
            },
            REMOVE => Op::Remove {
                key: take(&mut payload, "key")?,
            },
            REMOVE_PREFIX => Op::RemovePrefix {
                prefix: take(&mut payload, "prefix")?,
            },
            APPEND => {
                if payload.remaining() < 28 {
                    return Err("append header cut short".to_owned());
                }
                let mut run = [0u8; 16];
                payload.copy_to_slice(&mut run);
                let first = Seq(payload.get_u64_le());
                let count = payload.get_u32_le();
                let mut events = Vec::with_capacity(count.min(1024) as usize);
                for _ in 0..count {
                    events.push(take(&mut payload, "event")?);
                }
                Op::Append {
                    run: RunId::from_bytes(run),
                    first,
                    events,
                }
            }
            tag => return Err(format!("unknown op tag {tag}")),
        };
        ops.push(op);
    }
    if payload.has_remaining() {
        return Err(format!("{} bytes after the last op", payload.remaining()));
    }
    Ok(ops)
}

/// Appends the framed record `(lsn, payload)` to `out`.
pub(crate) fn frame(out: &mut Vec<u8>, lsn: u64, payload: &[u8], payload_crc: u32) {
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&len_u32(payload.len()).to_le_bytes());
    header[4..12].copy_from_slice(&lsn.to_le_bytes());
    header[12..16].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&header[..16]);
    header[16..].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// What `parse` found at an offset of a segment.
enum Parsed {
    /// The segment ends exactly here.
    End,
    /// A whole record with a valid checksum.
    Record {
        lsn: u64,
        payload: Bytes,
        size: usize,
    },
    /// A torn or garbled record.
    Torn(String),
}

fn parse(data: &Bytes, pos: usize) -> Parsed {
    let rest = &data[pos..];
    if rest.is_empty() {
        return Parsed::End;
    }
    if rest.len() < HEADER_LEN {
        return Parsed::Torn(format!("a header cut short ({} bytes)", rest.len()));
    }
    let word = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
    if crc32fast::hash(&rest[..16]) != word(16) {
        return Parsed::Torn("a header checksum mismatch".to_owned());
    }
    let len = word(0) as usize;
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&rest[4..12]);
    if rest.len() - HEADER_LEN < len {
        return Parsed::Torn(format!("a record of {len} bytes cut short"));
    }
    let payload = data.slice(pos + HEADER_LEN..pos + HEADER_LEN + len);
    if crc32fast::hash(&payload) != word(12) {
        return Parsed::Torn("a payload checksum mismatch".to_owned());
    }
    Parsed::Record {
        lsn: u64::from_le_bytes(lsn),
        payload,
        size: HEADER_LEN + len,
    }
}

/// A segment that is no longer written to, and the last LSN it holds.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) path: PathBuf,
    pub(crate) last_lsn: u64,
}

/// The segment being written, owned by the flusher thread.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    len: u64,
}

fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// Makes a directory's entries (created, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Wal {
    /// Creates the segment whose first record will be `first_lsn`, durably.
    pub(crate) fn create(dir: &Path, first_lsn: u64) -> io::Result<Self> {
        let path = segment_path(dir, first_lsn);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        // fdatasync of a record covers the file's size but not its name.
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            path,
            len: 0,
        })
    }

    /// Writes framed records at the end of the segment (not yet durable).
    pub(crate) fn write(&mut self, framed: &[u8]) -> io::Result<()> {
        self.file.write_all(framed)?;
        self.len += framed.len() as u64;
        Ok(())
    }

    /// Makes everything written so far durable: one `fdatasync`.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Bytes in the current segment.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Starts a new segment at `next_lsn` and returns the finished one, whose records
    /// end at `next_lsn - 1`. Call only after a successful `sync`.
    pub(crate) fn rotate(&mut self, next_lsn: u64) -> io::Result<Sealed> {
        let next = Self::create(&self.dir, next_lsn)?;
        let old = std::mem::replace(self, next);
        Ok(Sealed {
            path: old.path,
            last_lsn: next_lsn.saturating_sub(1),
        })
    }

    /// Closes the segment, deleting it if every record in it is at or below `applied`.
    pub(crate) fn close(self, last_lsn: u64, applied: u64) -> io::Result<()> {
        if last_lsn <= applied {
            drop(self.file);
            remove_if_present(&self.path)?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Deletes a file, treating "already gone" as done.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The state of the log after replay.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Every segment found, now sealed (writing resumes in a new segment).
    pub(crate) sealed: Vec<Sealed>,
    /// The last LSN in the log or in sled, whichever is later.
    pub(crate) last_lsn: u64,
    /// How many records were applied to sled.
    pub(crate) replayed: u64,
    /// Bytes cut off a torn tail, if any.
    pub(crate) truncated: u64,
}

fn wal_corrupt(detail: String) -> Error {
    Error::CorruptMeta {
        what: "write-ahead log",
        detail,
    }
}

/// Reads every segment in `dir` in order and hands each record above `applied` to
/// `apply`, checking that none is missing. Cuts a torn tail off the last segment.
pub(crate) fn recover(
    dir: &Path,
    applied: u64,
    mut apply: impl FnMut(u64, Vec<Op>) -> Result<()>,
) -> Result<Recovered> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::from_io)? {
        let entry = entry.map_err(Error::from_io)?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((first, entry.path()));
    }
    segments.sort();

    let mut next_needed = applied + 1;
    let mut last_lsn = applied;
    let mut sealed = Vec::with_capacity(segments.len());
    let mut replayed = 0;
    let mut truncated = 0;
    let count = segments.len();
    for (index, (first, path)) in segments.into_iter().enumerate() {
        if first > next_needed {
            return Err(wal_corrupt(format!(
                "records {next_needed}..{first} are missing before {}",
                path.display()
            )));
        }
        let data = Bytes::from(std::fs::read(&path).map_err(Error::from_io)?);
        let mut pos = 0;
        let mut lsn = first;
        loop {
            let torn = match parse(&data, pos) {
                Parsed::End => break,
                Parsed::Record {
                    lsn: found,
                    payload,
                    size,
                } if found == lsn => {
                    if lsn >= next_needed {
                        let ops = decode_ops(payload).map_err(|e| {
                            wal_corrupt(format!("record {lsn} in {}: {e}", path.display()))
                        })?;
                        apply(lsn, ops)?;
                        replayed += 1;
                        next_needed = lsn + 1;
                    }
                    pos += size;
                    lsn += 1;
                    continue;
                }
                Parsed::Record { lsn: found, .. } => {
                    format!("record {found} where {lsn} was expected")
                }
                Parsed::Torn(why) => why,
            };
            if index + 1 < count {
                return Err(wal_corrupt(format!(
                    "{torn} at byte {pos} of {}, which is not the last segment",
                    path.display()
                )));
            }
            tracing::warn!(
                segment = %path.display(),
                offset = pos,
                "cutting a torn write-ahead-log tail ({torn}); it was never acknowledged"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(Error::from_io)?;
            file.set_len(pos as u64).map_err(Error::from_io)?;
            file.sync_all().map_err(Error::from_io)?;
            truncated = (data.len() - pos) as u64;
            break;
        }
        last_lsn = last_lsn.max(lsn.saturating_sub(1));
        sealed.push(Sealed {
            path,
            last_lsn: lsn.saturating_sub(1),
        });
    }
    Ok(Recovered {
        sealed,
        last_lsn,
        replayed,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn write_records(dir: &Path, first: u64, n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for lsn in first..first + n {
            let payload = encode_ops(&ops());
            frame(&mut buf, lsn, &payload, crc32fast::hash(&payload));
        }
        let mut wal = Wal::create(dir, first).unwrap();
        wal.write(&buf).unwrap();
        wal.sync().unwrap();
        buf
    }

    #[test]
    fn recovery_replays_above_applied_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let buf = write_records(dir.path(), 1, 5);
        let path = segment_path(dir.path(), 1);
        // Tear the last record in every possible place.
        let record = buf.len() / 5;
        for cut in (buf.len() - record + 1)..buf.len() {
            std::fs::write(&path, &buf[..cut]).unwrap();
            let mut seen = Vec::new();
            let r = recover(dir.path(), 2, |lsn, ops| {
                assert_eq!(ops.len(), 4);
                seen.push(lsn);
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, vec![3, 4]);
            assert_eq!(r.last_lsn, 4);
            assert_eq!(r.truncated as usize, cut - (buf.len() - record));
            assert_eq!(
                std::fs::metadata(&path).unwrap().len() as usize,
                buf.len() - record
            );
        }
    }

    #[test]
    fn a_flipped_bit_ends_the_log_and_a_gap_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = write_records(dir.path(), 1, 3);
        let path = segment_path(dir.path(), 1);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        std::fs::write(&path, &buf).unwrap();
        let r = recover(dir.path(), 0, |_, _| Ok(())).unwrap();
        assert_eq!(r.last_lsn, 2);

        // A segment starting after what sled holds: records are missing.
        let dir = tempfile::tempdir().unwrap();
        write_records(dir.path(), 10, 1);
        let err = recover(dir.path(), 5, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn damage_in_an_earlier_segment_is_not_silently_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = write_records(dir.path(), 1, 3);
        write_records(dir.path(), 4, 3);
        buf[30] ^= 0xff;
        std::fs::write(segment_path(dir.path(), 1), &buf).unwrap();
        let err = recover(dir.path(), 0, |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, Error::CorruptMeta { .. }), "{err}");
        assert!(err.to_string().contains("not the last segment"), "{err}");
    }
}
