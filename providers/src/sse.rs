//! An incremental parser for `text/event-stream` (server-sent events).
//!
//! Both providers stream their answers as SSE. The parser is pure and byte-oriented:
//! feed it the body in whatever pieces the network delivers — split anywhere, including
//! inside a UTF-8 sequence or between the `\r` and `\n` of a line ending — and it
//! returns each event once its terminating blank line has arrived. It follows the
//! WHATWG "event stream interpretation": `\r\n`, `\r` and `\n` all end a line, a leading
//! byte-order mark is dropped, lines starting with `:` are comments, one space after the
//! field's colon is dropped, several `data` lines join with `\n`, an event without
//! `data` is not dispatched, and the event type defaults to `message`.
//!
//! Lines are decoded as UTF-8 only once complete, so a character split across two reads
//! decodes the same as an unsplit one; invalid bytes become U+FFFD as the standard says.
//!
//! A server that never ends a line would otherwise grow the buffer without bound, so
//! the parser refuses an event larger than [`Parser::with_limit`] (default
//! [`DEFAULT_LIMIT`]).
//!
//! ```
//! use keel_providers::sse::Parser;
//!
//! let mut parser = Parser::new();
//! let mut events = Vec::new();
//! parser.feed(b"event: ping\r\ndata: {\"a\"", &mut events).unwrap();
//! assert!(events.is_empty());
//! parser.feed(b":1}\r\n\r\n", &mut events).unwrap();
//! assert_eq!(events[0].event, "ping");
//! assert_eq!(events[0].data, "{\"a\":1}");
//! ```

use std::fmt;
use std::ops::ControlFlow;

/// The default bound on one event's size (line being assembled plus its data), 16 MiB.
pub const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event` field, or `message` when the event had none.
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The last `id` seen on the stream so far (empty if none), as the standard defines it.
    pub id: String,
}

/// An event borrowed from the parser, as [`Parser::feed_with`] hands it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The `event` field, or `message` when the event had none.
    pub event: &'a str,
    /// The `data` lines joined with `\n`.
    pub data: &'a str,
    /// The last `id` seen on the stream so far (empty if none).
    pub id: &'a str,
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> Event {
        Event {
            event: self.event.to_owned(),
            data: self.data.to_owned(),
            id: self.id.to_owned(),
        }
    }
}

impl Event {
    /// The event borrowed, as decoders take it.
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            event: &self.event,
            data: &self.data,
            id: &self.id,
        }
    }
}

/// An event grew past the parser's limit. The stream cannot be trusted any further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The limit in bytes.
    pub limit: usize,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a server-sent event exceeded {} bytes", self.limit)
    }
}

impl std::error::Error for LimitExceeded {}

/// The incremental SSE parser. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Parser {
    /// Bytes of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The previous read ended in `\r`: a `\n` starting the next read belongs to it.
    after_cr: bool,
    /// No line has been completed yet (a byte-order mark may start the first one).
    at_start: bool,
    event: String,
    data: String,
    id: String,
    retry: Option<u64>,
    limit: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser with the default size limit.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_LIMIT)
    }

    /// A parser refusing events larger than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            partial: Vec::new(),
            after_cr: false,
            at_start: true,
            event: String::new(),
            data: String::new(),
            id: String::new(),
            retry: None,
            limit,
        }
    }

    /// Parses the next piece of the stream, appending every event it completes to `out`.
    ///
    /// After an error the parser's state is unspecified; drop it with the stream.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Event>) -> Result<(), LimitExceeded> {
        // The callback never breaks, so the whole input is always parsed.
        let _always_continue = self.feed_with(input, |event| {
            out.push(event.to_owned());
            ControlFlow::Continue(())
        })?;
        Ok(())
    }

    /// Parses the next piece of the stream, calling `on_event` with each event it
    /// completes, borrowed from the parser's buffers (no allocation per event).
    ///
    /// When `on_event` breaks, parsing stops there and `Ok(ControlFlow::Break(()))`
    /// is returned; the rest of `input` is not parsed, so the parser should then be
    /// dropped with its stream, as after an error.
    pub fn feed_with(
        &mut self,
        mut input: &[u8],
        mut on_event: impl FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, LimitExceeded> {
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', input) {
            let flow = if self.partial.is_empty() {
                self.line(&input[..end], &mut on_event)?
            } else {
                self.grow(end)?;
                self.partial.extend_from_slice(&input[..end]);
                let line = std::mem::take(&mut self.partial);
                let result = self.line(&line, &mut on_event);
                self.partial = line;
                self.partial.clear();
                result?
            };
            let mut next = end + 1;
            if input[end] == b'\r' {
                match input.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            input = &input[next..];
            if flow.is_break() {
                return Ok(flow);
            }
        }
        self.grow(input.len())?;
        self.partial.extend_from_slice(input);
        Ok(ControlFlow::Continue(()))
    }

    /// Parses a whole body at once and returns its events (a convenience for tests and
    /// tools; streaming callers use [`Parser::feed`]).
    pub fn parse_all(body: &[u8]) -> Result<Vec<Event>, LimitExceeded> {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(body, &mut out)?;
        Ok(out)
    }

    /// Whether an event has begun but not been dispatched: at the end of a stream this
    /// means the stream was cut (the standard discards such an event).
    pub fn has_partial_event(&self) -> bool {
        !self.partial.is_empty() || !self.data.is_empty() || !self.event.is_empty()
    }

    /// The reconnection time the server asked for with a `retry` field, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry
    }

    fn grow(&self, more: usize) -> Result<(), LimitExceeded> {
        if self.partial.len() + self.data.len() + more > self.limit {
            Err(LimitExceeded { limit: self.limit })
        } else {
            Ok(())
        }
    }

    fn line(
        &mut self,
        mut line: &[u8],
        on_event: &mut impl FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, LimitExceeded> {
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            return Ok(self.dispatch(on_event));
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => return Ok(ControlFlow::Continue(())),
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                // Counted after decoding: each invalid byte becomes a 3-byte U+FFFD.
                let text = decode(value);
                if self.data.len() + text.len() + 1 > self.limit {
                    return Err(LimitExceeded { limit: self.limit });
                }
                self.data.push_str(&text);
                self.data.push('\n');
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&decode(value));
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.push_str(&decode(value));
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Hands the assembled event over and clears the buffers, keeping their capacity
    /// for the next event.
    fn dispatch(
        &mut self,
        on_event: &mut impl FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.data.is_empty() {
            self.event.clear();
            return ControlFlow::Continue(());
        }
        let flow = on_event(EventRef {
            event: if self.event.is_empty() {
                "message"
            } else {
                &self.event
            },
            data: &self.data[..self.data.len() - 1],
            id: &self.id,
        });
        self.event.clear();
        self.data.clear();
        flow
    }
}

/// UTF-8 text with invalid sequences replaced. Checked with `from_utf8` first: it is
/// several times faster than the lossy decoder on the valid text servers send.
fn decode(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
