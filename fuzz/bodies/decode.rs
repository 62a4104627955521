//! `decode`: the event-log codec (`keel_engine::{decode, encode}`).
//!
//! Properties: decoding any bytes returns `Ok` or a typed error naming the run and
//! seq, never panics; an event that decodes re-encodes, and decodes again to the same
//! event; encoding is a fixed point after one round (the canonical form is stable).
//!
//! [`valid`] is the stronger check for the corpus files named `seed-*`: real records
//! written by some build of Keel (format 1 by round 1, format 2 since). Each must
//! decode, forever; a seed that stops decoding means a stored shape changed.

use keel_engine::{decode, encode};
use keel_storage::{RunId, Seq};

/// Runs one input.
pub fn run(data: &[u8]) {
    let run = RunId::from_bytes(*b"keel-fuzz-decode");
    let seq = Seq(41);
    let event = match decode(run, seq, data) {
        Ok(event) => event,
        Err(e) => {
            assert_eq!((e.run, e.seq), (run, seq));
            let text = e.to_string();
            assert!(text.contains(&run.to_string()), "{text}");
            return;
        }
    };
    let bytes = encode(&event).unwrap_or_else(|e| panic!("a decoded event does not encode: {e}"));
    let again = decode(run, seq, &bytes)
        .unwrap_or_else(|e| panic!("a re-encoded event does not decode: {e}\n{event:?}"));
    assert_eq!(again, event, "decode(encode(event)) differs");
    let bytes2 = encode(&again).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bytes2, bytes, "encoding is not stable after one round");
}

/// Checks a record some build of Keel wrote: it must decode (and round-trip).
pub fn valid(data: &[u8]) {
    let run = RunId::from_bytes(*b"keel-fuzz-decode");
    if let Err(e) = decode(run, Seq(41), data) {
        panic!("a record written by Keel no longer decodes: {e}");
    }
    self::run(data);
}
