//! Test support: a raw HTTP/1.1 client (so tests choose every header), a server
//! over a real sled store, and the recorded coding session's agent.
#![allow(dead_code)]

pub mod generate;

use std::net::SocketAddr;
use std::path::Path;

use keel_dashboard::{Local, Options, Server};
use keel_engine::{Agent, Keel};
use keel_storage::SledStore;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A response: status, headers (lowercase names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request; `headers` as given (no Host unless listed).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in headers {
        request += &format!("{k}: {v}\r\n");
    }
    if let Some(b) = body {
        request += &format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        );
    }
    request += "\r\n";
    if let Some(b) = body {
        request += b;
    }
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse(&String::from_utf8_lossy(&raw))
}

fn parse(raw: &str) -> Reply {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out += &rest[..n];
        body = &rest[n + 2..];
    }
    out
}

/// A dashboard over a store, and how to call it.
pub struct Dash {
    pub server: Server,
    pub keel: Keel,
    pub dir: tempfile::TempDir,
}

impl Dash {
    /// A server over a fresh sled store, with `agents`.
    pub async fn start(agents: Vec<Agent>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, agents).await
    }

    pub async fn start_in(dir: tempfile::TempDir, agents: Vec<Agent>) -> Self {
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let keel = Keel::new(store);
        let source = Local::new(keel.clone(), agents);
        let server = Server::start(source, Options::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        Self { server, keel, dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn host(&self) -> String {
        self.addr().to_string()
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.server.token())
    }

    /// GET with the bearer token.
    pub async fn get(&self, path: &str) -> Reply {
        let host = self.host();
        let bearer = self.bearer();
        send(
            self.addr(),
            "GET",
            path,
            &[("host", &host), ("authorization", &bearer)],
            None,
        )
        .await
    }

    /// POST JSON with the bearer token.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        let host = self.host();
        let bearer = self.bearer();
        let body = body.to_string();
        send(
            self.addr(),
            "POST",
            path,
            &[("host", &host), ("authorization", &bearer)],
            Some(&body),
        )
        .await
    }

    /// Opens an SSE stream; returns the reader positioned after the headers.
    pub async fn sse(&self, path: &str, last_event_id: Option<u64>) -> Sse {
        let mut stream = TcpStream::connect(self.addr()).await.unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\naccept: text/event-stream\r\n",
            self.host(),
            self.bearer()
        );
        if let Some(id) = last_event_id {
            request += &format!("last-event-id: {id}\r\n");
        }
        request += "\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).await.unwrap();
        assert!(status.contains(" 200 "), "SSE status: {status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Sse {
            reader,
            pending: Default::default(),
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<u64>,
    pub data: String,
}

/// A chunked SSE response, read event by event.
pub struct Sse {
    reader: BufReader<TcpStream>,
    pending: std::collections::VecDeque<String>,
}

impl Sse {
    /// The next event (comments and keep-alives skipped); `None` at the end.
    pub async fn next(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        let mut any = false;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                if any {
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            any = true;
            let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| {
                (f, v.strip_prefix(' ').unwrap_or(v))
            });
            match field {
                "event" => event.event = value.to_owned(),
                "id" => event.id = value.parse().ok(),
                "data" => event.data += value,
                _ => {}
            }
        }
    }

    /// The next line of the event stream, across chunk boundaries.
    async fn line(&mut self) -> Option<String> {
        // Chunked encoding: a size line, then data, read chunk by chunk into the
        // pending lines.
        loop {
            if let Some(l) = self.pending.pop_front() {
                return Some(l);
            }
            let mut size = String::new();
            if self.reader.read_line(&mut size).await.ok()? == 0 {
                return None;
            }
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                return None;
            }
            let mut chunk = vec![0; n + 2];
            self.reader.read_exact(&mut chunk).await.ok()?;
            let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
            for l in text.split('\n') {
                self.pending.push_back(l.trim_end_matches('\r').to_owned());
            }
            // A chunk ends with a newline: the split leaves one empty tail.
            if text.ends_with('\n') {
                self.pending.pop_back();
            }
        }
    }
}

/// The recorded coding session (write hello.sh, run it, report) as an agent with
/// the real sandbox tools in `workspace`: each write and command waits for approval.
pub fn coding_agent(workspace: &Path) -> Agent {
    std::fs::create_dir_all(workspace).unwrap();
    let mut tools = keel_tools::SandboxConfig::default();
    tools.local.cwd = workspace.to_path_buf();
    tools.local.path_restriction = Some(workspace.to_path_buf());
    Agent::builder("coding_agent")
        .provider(keel_providers::Scripted::demo().unwrap())
        .model("claude-sonnet-4-5")
        .system_prompt("You are a coding agent.")
        .tools(keel_tools::sandbox_tools(tools).unwrap())
        .build()
}
