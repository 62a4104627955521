//! SSE parsing throughput against baselines measured in the same run.
//!
//! `cargo bench -p keel-providers --bench sse`
//!
//! A long recorded-style stream (an Anthropic message with tens of thousands of
//! `text_delta` and `input_json_delta` events, and an OpenAI chunk stream of the same
//! text) is fed in 16 KiB reads, the size a socket read typically returns, to:
//! - `memchr lines`: only finding the line ends, the least any line parser must do;
//! - `sse::Parser`: the event parser alone;
//! - `anthropic decode` / `openai decode`: parser + JSON decoding + assembling the
//!   response, what a call does per byte;
//! - `loopback TCP`: the same bytes through a TCP socket on 127.0.0.1 (no parsing);
//! - `loopback HTTP end to end`: a real provider call against a local HTTP server
//!   streaming the body (reqwest + hyper + parse + decode).
//!
//! Each figure is the median of several interleaved runs; ratios compare figures
//! from this run.

// A benchmark stops at the first failure; that is what its unwraps are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use keel_providers::sse::Parser;
use keel_providers::{
    Anthropic, Flow, LlmProvider, Message, Request, RetryPolicy, anthropic, openai,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const READ: usize = 16 * 1024;
const RUNS: usize = 7;

/// Token-like pieces of text, some multi-byte, some needing JSON escapes.
const WORDS: &[&str] = &[
    "The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy",
    " dog",
    ".",
    " Ça",
    " coûte",
    " 12",
    " €",
    " —",
    " 日本語",
    " テキスト",
    " 🦀",
    "\n",
    " fn",
    " main",
    "()",
    " {",
    " println",
    "!(\"",
    "hi",
    "\")",
    ";",
    " }",
    " and",
    " then",
    " some",
];

/// `text` as a JSON string literal.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn anthropic_stream(deltas: usize) -> Vec<u8> {
    let mut out = String::with_capacity(deltas * 130);
    out.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1200,\"cache_read_input_tokens\":9000,\"output_tokens\":1}}}\n\n");
    out.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for i in 0..deltas {
        if i % 500 == 0 {
            out.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
        }
        let word = quoted(WORDS[i % WORDS.len()]);
        out.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{word}}}}}\n\n"));
    }
    out.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    out.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"write\",\"input\":{}}}\n\n");
    // The tool input `{"content": "<words>"}` in fragments, each a JSON string.
    let mut fragments = vec!["{\"content\": \"".to_owned()];
    for i in 0..deltas / 4 {
        let escaped = quoted(WORDS[i % WORDS.len()]);
        fragments.push(escaped[1..escaped.len() - 1].to_owned());
    }
    fragments.push("\"}".to_owned());
    for fragment in fragments {
        let fragment = quoted(&fragment);
        out.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{fragment}}}}}\n\n"));
    }
    out.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    );
    out.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":40000}}\n\n");
    out.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    out.into_bytes()
}

fn openai_stream(deltas: usize) -> Vec<u8> {
    let mut out = String::with_capacity(deltas * 200);
    for i in 0..deltas {
        let word = quoted(WORDS[i % WORDS.len()]);
        out.push_str(&format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{word}}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"));
    }
    out.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// One measured workload: a name, the bytes it processes per run, the work.
struct Bench<'a> {
    name: &'static str,
    bytes: usize,
    run: Box<dyn FnMut() + 'a>,
    times: Vec<Duration>,
}

impl<'a> Bench<'a> {
    fn new(name: &'static str, bytes: usize, run: impl FnMut() + 'a) -> Self {
        Self {
            name,
            bytes,
            run: Box::new(run),
            times: Vec::new(),
        }
    }

    /// Median throughput in MB/s (10^6 bytes).
    fn rate(&self) -> f64 {
        let mut times = self.times.clone();
        times.sort();
        self.bytes as f64 / times[times.len() / 2].as_secs_f64() / 1e6
    }
}

/// Runs every bench once per round, round after round, so that the machine's load
/// changes hit all of them alike, and prints the medians.
fn measure_all(benches: &mut [Bench<'_>]) {
    for bench in benches.iter_mut() {
        (bench.run)();
    }
    for _ in 0..RUNS {
        for bench in benches.iter_mut() {
            let start = Instant::now();
            (bench.run)();
            bench.times.push(start.elapsed());
        }
    }
    for bench in benches.iter() {
        let mut times = bench.times.clone();
        times.sort();
        let rate = |t: Duration| bench.bytes as f64 / t.as_secs_f64() / 1e6;
        println!(
            "{:<34} {:>8.1} MB/s  (median {:>7.2} ms; runs {:.0}..{:.0} MB/s)",
            bench.name,
            bench.rate(),
            times[RUNS / 2].as_secs_f64() * 1e3,
            rate(times[RUNS - 1]),
            rate(times[0]),
        );
    }
}

fn memchr_lines(body: &[u8]) -> usize {
    body.chunks(READ)
        .map(|chunk| memchr::memchr_iter(b'\n', chunk).count())
        .sum()
}

fn sse_events(body: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut count = 0;
    for chunk in body.chunks(READ) {
        let _ = parser
            .feed_with(chunk, |event| {
                black_box(event);
                count += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
    }
    count
}

/// The owned-event API, which allocates each event's strings.
fn sse_owned_events(body: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    let mut count = 0;
    for chunk in body.chunks(READ) {
        parser.feed(chunk, &mut events).unwrap();
        count += events.len();
        events.clear();
    }
    count
}

fn decode_anthropic(body: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut acc = anthropic::Accumulator::new();
    let sink = |d| {
        black_box(d);
    };
    for chunk in body.chunks(READ) {
        let mut done = false;
        let _ = parser
            .feed_with(chunk, |event| {
                done = acc.event(event, &sink).unwrap() == Flow::Done;
                if done {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        if done {
            return acc.finish().unwrap().content.len();
        }
    }
    panic!("the stream did not end");
}

fn decode_openai(body: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut acc = openai::Accumulator::new();
    let sink = |d| {
        black_box(d);
    };
    for chunk in body.chunks(READ) {
        let mut done = false;
        let _ = parser
            .feed_with(chunk, |event| {
                done = acc.event(event, &sink).unwrap() == Flow::Done;
                if done {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        if done {
            return acc.finish().unwrap().text().len();
        }
    }
    panic!("the stream did not end");
}

/// Sends `body` through a loopback TCP connection and reads it all.
async fn loopback_tcp(body: &[u8]) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let send = async {
        let (mut socket, _) = listener.accept().await.unwrap();
        for chunk in body.chunks(READ) {
            socket.write_all(chunk).await.unwrap();
        }
        socket.shutdown().await.unwrap();
    };
    let receive = async {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; READ];
        let mut total = 0;
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    };
    tokio::join!(send, receive).1
}

/// Serves `body` as an SSE response to every request on `listener`.
async fn serve(listener: TcpListener, body: std::sync::Arc<Vec<u8>>) {
    loop {
        let (mut socket, _) = listener.accept().await.unwrap();
        let body = body.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut seen = Vec::new();
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if seen.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            for chunk in body.chunks(READ) {
                socket.write_all(chunk).await.unwrap();
            }
            let _ = socket.shutdown().await;
        });
    }
}

/// Reads a streamed HTTP body with reqwest and throws it away.
async fn http_raw(client: &reqwest::Client, url: &str) -> usize {
    let mut response = client.post(url).body("{}").send().await.unwrap();
    let mut total = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += black_box(chunk).len();
    }
    total
}

fn main() {
    let anthropic_body = anthropic_stream(120_000);
    let openai_body = openai_stream(60_000);
    let a = anthropic_body.len();
    let o = openai_body.len();
    println!(
        "streams: anthropic {:.1} MB ({} events), openai {:.1} MB ({} events); reads of {} KiB; median of {RUNS} interleaved rounds\n",
        a as f64 / 1e6,
        sse_events(&anthropic_body),
        o as f64 / 1e6,
        sse_events(&openai_body),
        READ / 1024
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = std::sync::Arc::new(anthropic_body.clone());
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(serve(listener, body));
    let provider = Anthropic::builder()
        .api_key("bench")
        .base_url(url.clone())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let request = Request::new("claude-sonnet-4-5", vec![Message::user("bench")]);

    let mut benches = vec![
        Bench::new("memchr lines (baseline)", a, || {
            black_box(memchr_lines(black_box(&anthropic_body)));
        }),
        Bench::new("sse::Parser", a, || {
            black_box(sse_events(black_box(&anthropic_body)));
        }),
        Bench::new("sse::Parser, owned events", a, || {
            black_box(sse_owned_events(black_box(&anthropic_body)));
        }),
        Bench::new("anthropic decode (parse+JSON)", a, || {
            black_box(decode_anthropic(black_box(&anthropic_body)));
        }),
        Bench::new("sse::Parser, openai body", o, || {
            black_box(sse_events(black_box(&openai_body)));
        }),
        Bench::new("openai decode (parse+JSON)", o, || {
            black_box(decode_openai(black_box(&openai_body)));
        }),
        Bench::new("loopback TCP, no parsing", a, || {
            assert_eq!(rt.block_on(loopback_tcp(&anthropic_body)), a);
        }),
        Bench::new("loopback HTTP (reqwest), no parsing", a, || {
            assert_eq!(rt.block_on(http_raw(&client, &url)), a);
        }),
        Bench::new("loopback HTTP, Anthropic provider", a, || {
            let response = rt.block_on(provider.complete(&request, &|d| {
                black_box(d);
            }));
            assert_eq!(response.unwrap().content.len(), 2);
        }),
    ];
    measure_all(&mut benches);
    let rate = |name: &str| {
        benches
            .iter()
            .find(|b| b.name == name)
            .map(Bench::rate)
            .unwrap()
    };
    let memchr = rate("memchr lines (baseline)");
    let parse = rate("sse::Parser");
    let decode = rate("anthropic decode (parse+JSON)");
    let decode_openai_rate = rate("openai decode (parse+JSON)");
    let tcp = rate("loopback TCP, no parsing");
    let http_raw_rate = rate("loopback HTTP (reqwest), no parsing");
    let http = rate("loopback HTTP, Anthropic provider");

    // A fast model streams ~100-200 tokens/s, one event per token: ~130 bytes per
    // Anthropic event, ~230 per OpenAI chunk.
    let stream_rate = 200.0 * 130.0 / 1e6;
    println!();
    println!(
        "time per byte, sse::Parser vs memchr lines       {:>9.1}x",
        memchr / parse
    );
    println!(
        "time per byte, sse::Parser vs loopback TCP       {:>9.2}x",
        tcp / parse
    );
    println!(
        "time per byte, decode vs loopback HTTP (reqwest) {:>9.2}x",
        http_raw_rate / decode
    );
    println!(
        "time per byte, provider call vs reqwest alone    {:>9.2}x",
        http_raw_rate / http
    );
    println!(
        "decode vs a 200 token/s stream (~26 kB/s)        {:>9.0}x faster ({:.3} % of one core per stream)",
        decode / stream_rate,
        100.0 * stream_rate / decode
    );
    println!(
        "openai decode vs a 200 token/s stream (~46 kB/s) {:>9.0}x faster",
        decode_openai_rate / (200.0 * 230.0 / 1e6)
    );
}
