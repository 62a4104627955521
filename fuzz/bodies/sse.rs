//! `sse`: the server-sent-events parser (`keel_providers::sse`).
//!
//! Properties: any bytes, never a panic; the events do not depend on how the body is
//! split into reads (whole, byte by byte, or at points derived from the input);
//! memory is bounded: with a small limit, no dispatched event is larger than the
//! limit, and a line that grows past the limit without ending is refused rather than
//! buffered.

use keel_providers::sse::{Event, Parser};

/// The limit of the bounded-memory checks: small, so short inputs reach it.
const SMALL_LIMIT: usize = 64;

fn feed_pieces(parser: &mut Parser, body: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, body.len());
        let fed = parser.feed(&body[start..cut], &mut out);
        assert!(
            fed.is_ok(),
            "the default limit cannot be reached by a fuzz input"
        );
        start = cut;
    }
    let fed = parser.feed(&body[start..], &mut out);
    assert!(
        fed.is_ok(),
        "the default limit cannot be reached by a fuzz input"
    );
    out
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let whole = feed_pieces(&mut Parser::new(), data, &[]);

    let mut parser = Parser::new();
    let mut bytewise = Vec::new();
    for b in data {
        assert!(parser.feed(std::slice::from_ref(b), &mut bytewise).is_ok());
    }
    assert_eq!(bytewise, whole, "byte by byte differs from whole");

    // Split points derived from the input, so the fuzzer can steer them.
    let sum: usize = data.iter().map(|&b| usize::from(b)).sum();
    let len = data.len().max(1);
    let first = data.first().map_or(0, |&b| usize::from(b)) % len;
    let cuts = [first, first + sum % len];
    let split = feed_pieces(&mut Parser::new(), data, &cuts);
    assert_eq!(split, whole, "split at {cuts:?} differs from whole");

    // `parse_all` is the same parser.
    assert_eq!(Parser::parse_all(data).ok(), Some(whole.clone()));

    // Stopping early hands over exactly the events fed so far, in order.
    let mut parser = Parser::new();
    let mut seen = Vec::new();
    let flow = parser.feed_with(data, |e| {
        seen.push(e.to_owned());
        if seen.len() == 2 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    assert!(flow.is_ok());
    assert_eq!(seen[..], whole[..seen.len()]);

    bounded(data);
}

/// Under a small limit no event the parser hands over is larger than the limit, fed
/// whole or byte by byte; and byte by byte it buffers at most `SMALL_LIMIT` bytes of
/// an unfinished line, so a longer run of bytes without a line ending is refused.
fn bounded(data: &[u8]) {
    // Whole, the input is in memory already, but the data the parser assembles from
    // it is still bounded.
    let mut events = Vec::new();
    if Parser::with_limit(SMALL_LIMIT)
        .feed(data, &mut events)
        .is_ok()
    {
        for e in &events {
            assert!(
                e.data.len() <= SMALL_LIMIT,
                "fed whole, an event of {} bytes of data got past the limit of {SMALL_LIMIT}",
                e.data.len()
            );
        }
    }

    let mut parser = Parser::with_limit(SMALL_LIMIT);
    let mut out = Vec::new();
    let mut line = 0usize;
    let mut refused = false;
    for b in data {
        let before = out.len();
        if parser.feed(std::slice::from_ref(b), &mut out).is_err() {
            refused = true;
            break;
        }
        for e in &out[before..] {
            assert!(
                e.data.len() <= SMALL_LIMIT,
                "an event of {} bytes of data got past the limit of {SMALL_LIMIT}",
                e.data.len()
            );
        }
        line = if matches!(b, b'\n' | b'\r') {
            0
        } else {
            line + 1
        };
        assert!(
            line <= SMALL_LIMIT,
            "a line of {line} bytes was buffered under a limit of {SMALL_LIMIT}"
        );
    }
    if !refused {
        // Then it agrees with the unbounded parser on everything it handed over.
        let whole = Parser::parse_all(data).unwrap_or_default();
        assert_eq!(
            out, whole,
            "a small limit changed the events without refusing"
        );
    }
}
