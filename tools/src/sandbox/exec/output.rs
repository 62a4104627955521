//! A command's output, bounded and cleaned for a model to read.
//!
//! Memory is bounded whatever the command prints: the first half of the budget is
//! kept as it arrives, the last half in a ring; what falls between is counted and
//! replaced by a marker. Terminal escape sequences (colours, cursor moves, OSC
//! titles and hyperlinks) are removed with `vte`, the terminal parser Alacritty
//! uses; a carriage return rewinds the line as a terminal would (so progress bars
//! leave their last state), and other control characters are dropped.

use std::collections::VecDeque;

/// Output kept from the start and the end of a stream.
#[derive(Debug)]
pub(crate) struct HeadTail {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl HeadTail {
    pub fn new(max_bytes: usize) -> Self {
        let head_cap = max_bytes / 2;
        Self {
            head: Vec::with_capacity(head_cap.min(64 * 1024)),
            tail: VecDeque::new(),
            head_cap,
            tail_cap: max_bytes - head_cap,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < self.head_cap {
            let n = (self.head_cap - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail
                .extend(bytes[bytes.len() - self.tail_cap..].iter().copied());
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(bytes.iter().copied());
    }

    /// Bytes received in all.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept text, cleaned, with a marker where bytes were left out.
    pub fn render(&self) -> String {
        let kept = self.head.len() as u64 + self.tail.len() as u64;
        let (front, back) = self.tail.as_slices();
        let mut tail = Vec::with_capacity(self.tail.len());
        tail.extend_from_slice(front);
        tail.extend_from_slice(back);
        if kept == self.total {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return clean(&all);
        }
        let omitted = self.total - kept;
        format!(
            "{}\n[... {omitted} bytes of output omitted ...]\n{}",
            clean(&self.head).trim_end_matches('\n'),
            clean(&tail).trim_start_matches('\n')
        )
    }
}

/// Turns terminal output into plain text.
pub(crate) fn clean(bytes: &[u8]) -> String {
    let mut screen = Screen::default();
    let mut parser = vte::Parser::new();
    parser.advance(&mut screen, bytes);
    screen.finish()
}

#[derive(Default)]
struct Screen {
    out: String,
    /// Where the current line starts in `out`.
    line_start: usize,
    /// A carriage return was seen: the next printable character rewinds the line.
    rewind: bool,
}

impl Screen {
    fn finish(self) -> String {
        self.out
    }
}

impl vte::Perform for Screen {
    fn print(&mut self, c: char) {
        if self.rewind {
            self.out.truncate(self.line_start);
            self.rewind = false;
        }
        self.out.push(c);
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => {
                self.rewind = false;
                self.out.push('\n');
                self.line_start = self.out.len();
            }
            b'\t' => {
                if self.rewind {
                    self.out.truncate(self.line_start);
                    self.rewind = false;
                }
                self.out.push('\t');
            }
            b'\r' => self.rewind = true,
            // Backspace, bell, and the rest: nothing a reader of text needs.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_keeps_tabs() {
        let raw =
            b"\x1b[31mred\x1b[0m\tplain\x1b]0;title\x07 \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n";
        assert_eq!(clean(raw), "red\tplain link\n");
    }

    #[test]
    fn carriage_returns_rewind_the_line() {
        assert_eq!(clean(b"10%\r50%\r100%\ndone\r\n"), "100%\ndone\n");
    }

    #[test]
    fn keeps_head_and_tail_with_a_marker() {
        let mut o = HeadTail::new(10);
        for _ in 0..100 {
            o.push(b"abcdefghij");
        }
        o.push(b"END");
        assert_eq!(o.total(), 1003);
        let text = o.render();
        assert!(
            text.starts_with("abcde\n[... 993 bytes of output omitted ...]\n"),
            "{text}"
        );
        assert!(text.ends_with("\nijEND"), "{text}");
    }

    #[test]
    fn small_output_is_whole() {
        let mut o = HeadTail::new(100);
        o.push(b"hello ");
        o.push(b"world\n");
        assert_eq!(o.render(), "hello world\n");
    }
}
