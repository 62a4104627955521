//! The key layout of the sled tree, and the encoding of what is stored under it.
//!
//! One tree holds everything: events, blobs, run markers and summaries, and the log
//! position sled reflects. Keys start with a one-byte kind; run ids are UUIDv7, so
//! runs list in creation order, and seqs are big-endian, so a run's events scan in
//! seq order.
//! Events are stored in chunks: consecutive events of a run applied together (one
//! append's batch, or the appends of a run that queued up while sled was busy) share
//! one sled value, keyed by the first one's seq. A sled insert is most of an
//! append's CPU cost, so under load fewer, larger values keep sled up with the log.
//! A run's length is its last chunk's end (a reverse scan), not a stored counter.
//!
//! A chunk is version byte 1, a `u32` count, then each event as a `u32` length
//! (little-endian) and its bytes.
//!
//! | key                          | value                                   |
//! |------------------------------|-----------------------------------------|
//! | `e` run(16) seq(8, BE)       | a chunk: events `seq, seq + 1, …`       |
//! | `r` run(16)                  | version byte 1: the run exists          |
//! | `s` run(16)                  | version byte 1, then the postcard `RunSummary` |
//! | `b` hash(32)                 | the blob's bytes                        |
//! | `m/applied_lsn`              | the last write-ahead-log record applied (8, BE) |

use bytes::{Buf, Bytes};

use crate::error::{Error, Result};
use crate::id::{BlobHash, RunId, Seq};
use crate::store::{Record, RunSummary};

const EVENT: u8 = b'e';
const RUN: u8 = b'r';
const SUMMARY: u8 = b's';
const BLOB: u8 = b'b';

/// Where the position of the last applied log record is kept.
pub(crate) const APPLIED_LSN: &[u8] = b"m/applied_lsn";

/// The format of stored chunks.
const CHUNK_VERSION: u8 = 1;

/// The stored form of consecutive events.
pub(crate) fn encode_chunk<'a>(events: impl IntoIterator<Item = &'a Bytes> + Clone) -> Vec<u8> {
    let (count, size) = events
        .clone()
        .into_iter()
        .fold((0usize, 0usize), |(n, s), e| (n + 1, s + 4 + e.len()));
    let mut out = Vec::with_capacity(5 + size);
    out.push(CHUNK_VERSION);
    out.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
    for event in events {
        out.extend_from_slice(&u32::try_from(event.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(event);
    }
    out
}

/// How many events the chunk of `run` stored under seq `first` holds.
pub(crate) fn chunk_count(run: RunId, first: Seq, value: &[u8]) -> Result<u64> {
    match value {
        [CHUNK_VERSION, a, b, c, d, ..] => Ok(u64::from(u32::from_le_bytes([*a, *b, *c, *d]))),
        _ => Err(Error::Corrupt {
            run,
            seq: first,
            detail: "the chunk's header is damaged".to_owned(),
        }),
    }
}

/// The events of the chunk of `run` stored under seq `first`, sliced out of `value`.
pub(crate) fn decode_chunk(run: RunId, first: Seq, value: Bytes) -> Result<Vec<Record>> {
    let corrupt = |seq: Seq, detail: String| Error::Corrupt { run, seq, detail };
    let mut rest = value;
    if rest.len() < 5 {
        return Err(corrupt(first, format!("a chunk of {} bytes", rest.len())));
    }
    let version = rest.get_u8();
    if version != CHUNK_VERSION {
        return Err(corrupt(
            first,
            format!(
                "stored in format {version}, this version of Keel reads format {CHUNK_VERSION}"
            ),
        ));
    }
    let count = rest.get_u32_le();
    let mut records = Vec::with_capacity(count.min(1024) as usize);
    for i in 0..u64::from(count) {
        let seq = first.plus(i);
        if rest.len() < 4 {
            return Err(corrupt(
                seq,
                "the chunk ends before this event's length".into(),
            ));
        }
        let len = rest.get_u32_le() as usize;
        if rest.len() < len {
            return Err(corrupt(
                seq,
                format!("the chunk ends inside this event of {len} bytes"),
            ));
        }
        records.push(Record {
            seq,
            bytes: rest.split_to(len),
        });
    }
    if !rest.is_empty() {
        return Err(corrupt(
            first,
            format!("{} stray bytes after the chunk's events", rest.len()),
        ));
    }
    Ok(records)
}

/// The format of stored summaries; bumped if `RunSummary`'s encoding changes.
const SUMMARY_VERSION: u8 = 1;

fn run_prefixed(kind: u8, run: RunId) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = kind;
    key[1..].copy_from_slice(run.as_bytes());
    key
}

/// The key of one event.
pub(crate) fn event_key(run: RunId, seq: Seq) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[..17].copy_from_slice(&event_prefix(run));
    key[17..].copy_from_slice(&seq.0.to_be_bytes());
    key
}

/// Whether `key` is an event (chunk) key.
pub(crate) fn is_event_key(key: &[u8]) -> bool {
    key.first() == Some(&EVENT)
}

/// The common prefix of a run's event keys.
pub(crate) fn event_prefix(run: RunId) -> [u8; 17] {
    run_prefixed(EVENT, run)
}

/// The value of a run key.
pub(crate) const RUN_MARKER: [u8; 1] = [1];

/// The key marking that a run exists (it may have no events yet).
pub(crate) fn run_key(run: RunId) -> [u8; 17] {
    run_prefixed(RUN, run)
}

/// The prefix of every run key (for listing runs).
pub(crate) fn run_key_prefix() -> [u8; 1] {
    [RUN]
}

/// The key of a run's summary.
pub(crate) fn summary_key(run: RunId) -> [u8; 17] {
    run_prefixed(SUMMARY, run)
}

/// The key of a blob.
pub(crate) fn blob_key(hash: &BlobHash) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = BLOB;
    key[1..].copy_from_slice(&hash.0);
    key
}

/// The seq in an event key of `run`; the key must come from a scan of its prefix.
pub(crate) fn decode_event_key(run: RunId, key: &[u8]) -> Result<Seq> {
    match key.get(17..).map(<[u8; 8]>::try_from) {
        Some(Ok(seq)) if key.len() == 25 => Ok(Seq(u64::from_be_bytes(seq))),
        _ => Err(Error::CorruptMeta {
            what: "event key",
            detail: format!(
                "a key under run {run} is {} bytes long, expected 25",
                key.len()
            ),
        }),
    }
}

/// The run of a run key.
pub(crate) fn decode_run_key(key: &[u8]) -> Result<RunId> {
    match key.get(1..).map(<[u8; 16]>::try_from) {
        Some(Ok(bytes)) if key.len() == 17 => Ok(RunId::from_bytes(bytes)),
        _ => Err(Error::CorruptMeta {
            what: "run key",
            detail: format!("a run key is {} bytes long, expected 17", key.len()),
        }),
    }
}

/// A stored u64 (the applied log position).
pub(crate) fn decode_u64(what: &'static str, value: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::CorruptMeta {
            what,
            detail: format!("expected 8 bytes, found {}", value.len()),
        })
}

/// The stored form of a summary.
pub(crate) fn encode_summary(summary: &RunSummary) -> Result<Vec<u8>> {
    let mut out = vec![SUMMARY_VERSION];
    let body = postcard::to_allocvec(summary)
        .map_err(|e| Error::Backend(format!("cannot encode a run summary: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads back a stored summary of `run`.
pub(crate) fn decode_summary(run: RunId, value: &[u8]) -> Result<RunSummary> {
    let corrupt = |detail: String| Error::CorruptMeta {
        what: "run summary",
        detail: format!("run {run}: {detail}"),
    };
    match value.split_first() {
        Some((&SUMMARY_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| corrupt(format!("undecodable: {e}")))
        }
        Some((version, _)) => Err(corrupt(format!(
            "written in format {version}, this version of Keel reads format {SUMMARY_VERSION}"
        ))),
        None => Err(corrupt("empty".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Timestamp;
    use crate::store::RunStatus;

    #[test]
    fn event_keys_sort_by_seq_and_decode() {
        let run = RunId::new();
        let a = event_key(run, Seq(9));
        let b = event_key(run, Seq(10));
        assert!(a < b);
        assert!(a.starts_with(&event_prefix(run)));
        assert_eq!(decode_event_key(run, &b).unwrap(), Seq(10));
        assert!(decode_event_key(run, &b[..20]).is_err());
    }

    #[test]
    fn chunks_round_trip_and_damage_names_the_seq() {
        let run = RunId::new();
        let events = [
            Bytes::from_static(b"one"),
            Bytes::new(),
            Bytes::from_static(b"three"),
        ];
        let chunk = Bytes::from(encode_chunk(&events));
        let records = decode_chunk(run, Seq(4), chunk.clone()).unwrap();
        assert_eq!(
            records.iter().map(|r| r.seq.0).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert_eq!(
            records.iter().map(|r| r.bytes.clone()).collect::<Vec<_>>(),
            events
        );
        for cut in 0..chunk.len() {
            let err = decode_chunk(run, Seq(4), chunk.slice(..cut)).unwrap_err();
            assert!(
                matches!(err, Error::Corrupt { run: r, .. } if r == run),
                "{err}"
            );
        }
        let mut newer = chunk.to_vec();
        newer[0] = 2;
        let err = decode_chunk(run, Seq(4), newer.into()).unwrap_err();
        assert!(err.to_string().contains("format 2"), "{err}");
        let mut long = chunk.to_vec();
        long.push(0);
        assert!(decode_chunk(run, Seq(4), long.into()).is_err());
    }

    #[test]
    fn run_keys_decode_and_reject_bad_lengths() {
        let run = RunId::new();
        assert_eq!(decode_run_key(&run_key(run)).unwrap(), run);
        assert!(matches!(
            decode_run_key(b"r123"),
            Err(Error::CorruptMeta { .. })
        ));
        assert!(decode_u64("x", &[1, 2, 3]).is_err());
    }

    #[test]
    fn summaries_round_trip_and_bad_bytes_are_typed_errors() {
        let run = RunId::new();
        let summary = RunSummary {
            agent: "coder".into(),
            status: RunStatus::Suspended,
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            turns: 3,
            input_tokens: 4,
            output_tokens: 5,
            parent: Some((RunId::new(), Seq(7))),
            title: "fix the bug".into(),
        };
        let bytes = encode_summary(&summary).unwrap();
        assert_eq!(decode_summary(run, &bytes).unwrap(), summary);
        for bad in [&[][..], &[1, 0xff, 0xff][..], &[9, 1, 2][..], &bytes[..3]] {
            let err = decode_summary(run, bad).unwrap_err();
            assert!(matches!(err, Error::CorruptMeta { .. }), "{err}");
            assert!(err.to_string().contains(&run.to_string()));
        }
    }
}
