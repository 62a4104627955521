//! The write-ahead log in front of sled: what makes an append durable.
//!
//! Each record is one atomic unit (an append, a delete, a blob put) expressed as
//! blind writes to sled keys, so replaying a record twice is harmless. Records are
//! numbered by a log sequence number (LSN), consecutive across segment files named
//! after their first LSN (`wal/00000000000000000042.wal`; how the files are written,
//! pre-zeroed and sealed is in [`super::segment`]).
//!
//! Record layout (little-endian):
//!
//! ```text
//! len: u32 | lsn: u64 | payload_crc: u32 | header_crc: u32 | payload: len bytes
//! ```
//!
//! `header_crc` covers the 16 bytes before it, `payload_crc` the payload (CRC-32,
//! IEEE). A header is never all zeros (LSNs start at 1), so zeros where a header
//! should be are unwritten space.
//!
//! Where the records of a segment end, recovery finds one of:
//! - the end of the file, or **zeros to the end of the file**: the segment's clean
//!   end (the last segment is written over zeros prepared ahead);
//! - a **torn** record: short, failing a checksum, breaking the LSN sequence, or
//!   zeros followed by something else (a group whose pages reached the disk out of
//!   order). None of its group was acknowledged: that group's `fdatasync` did not
//!   return.
//!
//! In the last segment either one is the end of the log. Since writing resumes in a
//! new segment, recovery trims what follows the last record (`ftruncate` +
//! `fsync`) so the segment is sealed like any other; a last segment with no record
//! at all is deleted (its name would be the next segment's). An earlier segment was
//! trimmed to its last record and `fsync`ed before the next one's name became
//! durable, so anything but the end of the file after its records — zeros
//! included — is corruption, and opening fails rather than dropping the records
//! after it.
//!
//! Payload: `count: u32`, then `count` ops, each a tag byte (1 put, 2 remove,
//! 3 remove-prefix), a `u32` key length and the key, and for puts a `u32` value length
//! and the value; or tag 4 (append events): the run (16 bytes), the first seq (`u64`),
//! an event count (`u32`) and each event as a `u32` length and its bytes.

use std::fs::OpenOptions;
use std::path::Path;

use bytes::{Buf, Bytes};

use super::segment::{Sealed, remove_if_present, sync_dir};
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
#[derive(Debug)]
enum Parsed {
    /// The segment ends exactly here.
    End,
    /// Zeros from here to the end of the segment: space not written yet.
    Zeros,
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
    if rest[..rest.len().min(HEADER_LEN)].iter().all(|b| *b == 0) {
        return match rest.iter().position(|b| *b != 0) {
            None => Parsed::Zeros,
            Some(at) => Parsed::Torn(format!(
                "an unwritten header followed by data {at} bytes later"
            )),
        };
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

/// The state of the log after replay.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Every segment that holds records, now sealed (writing resumes in a new
    /// segment).
    pub(crate) sealed: Vec<Sealed>,
    /// The last LSN in the log or in sled, whichever is later.
    pub(crate) last_lsn: u64,
    /// How many records were applied to sled.
    pub(crate) replayed: u64,
    /// Bytes of a torn tail cut off, if any (a clean zero tail does not count).
    pub(crate) truncated: u64,
}

fn wal_corrupt(detail: String) -> Error {
    Error::CorruptMeta {
        what: "write-ahead log",
        detail,
    }
}

/// Reads every segment in `dir` in order and hands each record above `applied` to
/// `apply`, checking that none is missing. Trims the last segment after its last
/// record (a torn tail or unwritten zeros), or deletes it if it holds none.
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
        let is_last = index + 1 == count;
        if first > next_needed {
            return Err(wal_corrupt(format!(
                "records {next_needed}..{first} are missing before {}",
                path.display()
            )));
        }
        let data = Bytes::from(std::fs::read(&path).map_err(Error::from_io)?);
        let mut pos = 0;
        let mut lsn = first;
        let end = loop {
            let torn = match parse(&data, pos) {
                Parsed::End => break None,
                Parsed::Zeros if is_last => break Some(None),
                Parsed::Zeros => "zeros where a record or the end was expected".to_owned(),
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
            if !is_last {
                return Err(wal_corrupt(format!(
                    "{torn} at byte {pos} of {}, which is not the last segment",
                    path.display()
                )));
            }
            break Some(Some(torn));
        };
        match &end {
            Some(Some(torn)) => {
                tracing::warn!(
                    segment = %path.display(),
                    offset = pos,
                    "cutting a torn write-ahead-log tail ({torn}); it was never acknowledged"
                );
                truncated = (data.len() - pos) as u64;
            }
            Some(None) => tracing::debug!(
                segment = %path.display(),
                offset = pos,
                "trimming the unwritten zero tail of the last write-ahead-log segment"
            ),
            None => {}
        }
        if is_last && lsn == first {
            // No record: nothing to keep, and the name is the next segment's.
            remove_if_present(&path).map_err(Error::from_io)?;
            sync_dir(dir).map_err(Error::from_io)?;
            continue;
        }
        if end.is_some() {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(Error::from_io)?;
            file.set_len(pos as u64).map_err(Error::from_io)?;
            file.sync_all().map_err(Error::from_io)?;
        }
        last_lsn = last_lsn.max(lsn.saturating_sub(1));
        sealed.push(Sealed {
            path,
            last_lsn: lsn.saturating_sub(1),
            bytes: pos as u64,
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
#[path = "wal_tests.rs"]
mod tests;
