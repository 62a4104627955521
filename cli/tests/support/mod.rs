//! Test support: a loopback HTTP server speaking Anthropic's Messages API (streamed),
//! playing a scripted conversation by turn and recording every request; and a
//! builder of `keel` commands on a temporary store and workspace.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};

use serde_json::{Value, json};

/// One scripted model turn.
#[derive(Clone, Debug)]
pub struct Turn {
    pub text: String,
    pub tools: Vec<(String, Value)>,
}

pub fn say(text: &str) -> Turn {
    Turn {
        text: text.into(),
        tools: vec![],
    }
}

pub fn call(text: &str, tool: &str, input: Value) -> Turn {
    Turn {
        text: text.into(),
        tools: vec![(tool.into(), input)],
    }
}

#[derive(Default)]
struct State {
    /// A pause before each response.
    delay_ms: u64,
    requests: Vec<Value>,
    calls: BTreeMap<usize, usize>,
    /// Turns whose requests are held (never answered) while listed.
    held: Vec<usize>,
    /// Requests currently held, by turn.
    holding: BTreeMap<usize, usize>,
}

/// The server.
#[derive(Clone)]
pub struct Anthropic {
    pub url: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Anthropic {
    /// Starts serving `script` on a loopback port.
    pub fn start(script: Vec<Turn>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let server = Self { url, state };
        let this = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let this = this.clone();
                let script = script.clone();
                std::thread::spawn(move || this.serve(stream, &script));
            }
        });
        server
    }

    /// Pauses `ms` before each response (so a process can be killed mid-call).
    pub fn set_delay(&self, ms: u64) {
        self.state.0.lock().unwrap().delay_ms = ms;
    }

    /// Requests for `turn` are received but never answered until `release`.
    pub fn hold(&self, turn: usize) {
        self.state.0.lock().unwrap().held.push(turn);
    }

    /// Answers held requests of every turn from now on.
    pub fn release(&self) {
        self.state.0.lock().unwrap().held.clear();
        self.state.1.notify_all();
    }

    /// Waits until a request for `turn` is being held.
    pub fn wait_holding(&self, turn: usize) {
        let (lock, cvar) = &*self.state;
        let mut state = lock.lock().unwrap();
        while state.holding.get(&turn).copied().unwrap_or(0) == 0 {
            state = cvar.wait(state).unwrap();
        }
    }

    /// The request bodies received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.0.lock().unwrap().requests.clone()
    }

    /// How many requests `turn` received.
    pub fn calls_of(&self, turn: usize) -> usize {
        self.state
            .0
            .lock()
            .unwrap()
            .calls
            .get(&turn)
            .copied()
            .unwrap_or(0)
    }

    fn serve(&self, mut stream: TcpStream, script: &[Turn]) {
        let Some(body) = read_request(&mut stream) else {
            return;
        };
        let turn = body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
        {
            let (lock, cvar) = &*self.state;
            let mut state = lock.lock().unwrap();
            state.requests.push(body.clone());
            *state.calls.entry(turn).or_default() += 1;
            if state.held.contains(&turn) {
                *state.holding.entry(turn).or_default() += 1;
                cvar.notify_all();
                while state.held.contains(&turn) {
                    state = cvar.wait(state).unwrap();
                }
                *state.holding.entry(turn).or_default() -= 1;
            }
        }
        let delay = self.state.0.lock().unwrap().delay_ms;
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let Some(script_turn) = script.get(turn) else {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"the test script has no such turn\"}}");
            return;
        };
        let _ = stream.write_all(sse_response(turn, script_turn).as_bytes());
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if first {
            assert!(
                line.starts_with("POST /v1/messages"),
                "unexpected request line {line:?}"
            );
            first = false;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if lower.starts_with("x-api-key:") {
            assert_eq!(line.trim_end(), "x-api-key: test-key");
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A complete streamed response in Anthropic's format.
fn sse_response(turn: usize, script: &Turn) -> String {
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
    );
    out += &event(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": format!("msg_{turn}"), "type": "message", "role": "assistant", "content": [],
        "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 100 + turn, "output_tokens": 1}}}),
    );
    let mut index = 0;
    if !script.text.is_empty() {
        out += &event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        );
        for piece in script.text.split_inclusive(' ') {
            out += &event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            );
        }
        out += &event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    for (i, (name, input)) in script.tools.iter().enumerate() {
        out += &event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{turn}_{i}"), "name": name, "input": {}}}),
        );
        out += &event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
        );
        out += &event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    let stop = if script.tools.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    out += &event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 20 + turn}}),
    );
    out += &event("message_stop", json!({"type": "message_stop"}));
    out
}

/// The tool results a request sends back: `(tool_use_id, content, is_error)`.
pub fn tool_results(request: &Value) -> Vec<(String, String, bool)> {
    let last = request["messages"].as_array().unwrap().last().unwrap();
    last["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == "tool_result")
                .map(|b| {
                    let content = match &b["content"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (
                        b["tool_use_id"].as_str().unwrap().to_owned(),
                        content,
                        b["is_error"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A temporary project: its directory (the working directory of `keel`), store and
/// workspace.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub server: Anthropic,
}

impl Project {
    pub fn new(script: Vec<Turn>) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            server: Anthropic::start(script),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }

    /// `keel` in the project, pointed at the loopback server.
    pub fn keel(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.current_dir(self.path())
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("ANTHROPIC_BASE_URL", &self.server.url)
            .env_remove("KEEL_STORE")
            .env_remove("KEEL_CONFIG")
            .env_remove("OPENAI_API_KEY");
        cmd
    }

    /// Runs `keel args…` to the end; returns (status, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.keel().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The runs, from `keel runs --json`.
    pub fn runs(&self) -> Vec<Value> {
        let (code, out, err) = self.run(&["runs", "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

/// The local coding agent's scenario: write hello.sh, run it, report.
pub fn hello_script() -> Vec<Turn> {
    vec![
        call(
            "I'll write the script.",
            "write",
            json!({"path": "hello.sh", "content": "echo \"Hello, world!\"\n"}),
        ),
        call("Now I run it.", "exec", json!({"command": "sh hello.sh"})),
        say("Done: it printed Hello, world!"),
    ]
}
