//! Test doubles for the engine's tests: a scripted provider that counts calls per
//! turn, tools with observable effects, and a store that "crashes" at a chosen append.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use keel_engine::{Agent, Decision, Keel, RunOutcome, StopCondition};
use keel_providers::{
    ContentBlock, Delta, DeltaSink, Json, LlmProvider, Request, Response, Role, StopReason, Usage,
};
use keel_storage::{
    AppendResult, Batch, BlobHash, EventStore, MemoryStore, Record, RunId, RunInfo, Seq,
};
use keel_tools::{
    AllowRule, Approval, ApprovalForm, CallContext, FormContext, Recovery, Tool, ToolOutput,
    ToolSpec, approval_digest,
};
use serde::Deserialize;
use tokio::sync::Notify;

// ---------------------------------------------------------------- provider

/// One scripted turn: text, then tool calls `(name, input)`.
#[derive(Clone, Debug)]
pub struct TurnScript {
    pub text: String,
    pub calls: Vec<(String, serde_json::Value)>,
}

pub fn say(text: &str) -> TurnScript {
    TurnScript {
        text: text.to_owned(),
        calls: Vec::new(),
    }
}

pub fn call(text: &str, calls: &[(&str, serde_json::Value)]) -> TurnScript {
    TurnScript {
        text: text.to_owned(),
        calls: calls
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect(),
    }
}

/// Plays a script by turn (the number of assistant messages in the request) and
/// counts the calls each turn received.
#[derive(Clone, Default)]
pub struct Scripted {
    pub turns: Arc<Vec<TurnScript>>,
    pub calls: Arc<Mutex<BTreeMap<usize, usize>>>,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// When set, every call fails with this error.
    pub fail_with: Option<Arc<dyn Fn() -> keel_providers::Error + Send + Sync>>,
}

impl Scripted {
    pub fn new(turns: Vec<TurnScript>) -> Self {
        Self {
            turns: Arc::new(turns),
            ..Self::default()
        }
    }

    pub fn calls_of(&self, turn: usize) -> usize {
        self.calls.lock().unwrap().get(&turn).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }
}

pub fn response_for(turn: usize, script: &TurnScript) -> Response {
    let mut content = Vec::new();
    if !script.text.is_empty() {
        content.push(ContentBlock::text(script.text.clone()));
    }
    for (i, (name, input)) in script.calls.iter().enumerate() {
        content.push(ContentBlock::ToolUse {
            id: format!("toolu_{turn}_{i}"),
            name: name.clone(),
            input: Json(input.clone()),
        });
    }
    Response {
        id: format!("msg_{turn}"),
        model: "scripted".into(),
        content,
        stop_reason: if script.calls.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        },
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        },
    }
}

impl LlmProvider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: DeltaSink<'a>,
    ) -> keel_providers::Result<Response> {
        {
            let turn = request
                .messages
                .iter()
                .filter(|m| m.role == Role::Assistant)
                .count();
            *self.calls.lock().unwrap().entry(turn).or_default() += 1;
            self.requests.lock().unwrap().push(request.clone());
            if let Some(fail) = &self.fail_with {
                return Err(fail());
            }
            let script = self
                .turns
                .get(turn)
                .ok_or_else(|| keel_providers::Error::Script(format!("no turn {turn}")))?;
            for word in script.text.split_inclusive(' ') {
                on_delta(Delta::Text(word.to_owned()));
            }
            Ok(response_for(turn, script))
        }
    }
}

// ---------------------------------------------------------------- tools

/// Effects the tools had, shared across "processes".
#[derive(Clone, Default)]
pub struct Effects {
    /// Files written by `put` (idempotent).
    pub files: Arc<Mutex<BTreeMap<String, String>>>,
    /// Every execution of a tool: (tool, key).
    pub executions: Arc<Mutex<Vec<(String, String)>>>,
    /// Lines appended by `append` (not idempotent).
    pub appended: Arc<Mutex<Vec<String>>>,
}

impl Effects {
    pub fn executions_of(&self, tool: &str, key: &str) -> usize {
        self.executions
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, k)| t == tool && k == key)
            .count()
    }
}

#[derive(Deserialize)]
pub struct PutArgs {
    pub path: String,
    pub content: String,
}

/// Writes a "file": mutating, idempotent, needs approval, re-run after a crash.
pub struct Put(pub Effects);

impl Tool for Put {
    type Args = PutArgs;
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "put".into(),
            description: "write a file".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"]
            }),
        }
    }
    fn recovery(&self) -> Recovery {
        Recovery::Rerun
    }
    fn approval(&self, args: &PutArgs, raw: &serde_json::Value, rules: &[AllowRule]) -> Approval {
        if rules
            .iter()
            .any(|r| matches!(r, AllowRule::Tool { tool } if tool == "put"))
        {
            return Approval::NotNeeded;
        }
        Approval::Needed(Box::new(ApprovalForm {
            title: "WRITE APPROVAL REQUIRED".into(),
            tool: "put".into(),
            context: FormContext::Write {
                path: args.path.clone(),
                content: args.content.clone(),
                overwrites: false,
            },
            fields: vec![],
            digest: approval_digest("put", raw, ""),
        }))
    }
    async fn call(&self, args: PutArgs, _ctx: CallContext) -> ToolOutput {
        self.0
            .executions
            .lock()
            .unwrap()
            .push(("put".into(), args.path.clone()));
        self.0
            .files
            .lock()
            .unwrap()
            .insert(args.path.clone(), args.content.clone());
        ToolOutput::ok(format!(
            "wrote {} bytes to {}",
            args.content.len(),
            args.path
        ))
    }
}

#[derive(Deserialize)]
pub struct AppendArgs {
    pub line: String,
}

/// Appends a line: not idempotent; needs approval; an interrupted call is reported.
pub struct Append(pub Effects, pub Recovery);

impl Tool for Append {
    type Args = AppendArgs;
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "append".into(),
            description: "append a line".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"line": {"type": "string"}},
                "required": ["line"]
            }),
        }
    }
    fn recovery(&self) -> Recovery {
        self.1
    }
    async fn call(&self, args: AppendArgs, _ctx: CallContext) -> ToolOutput {
        self.0
            .executions
            .lock()
            .unwrap()
            .push(("append".into(), args.line.clone()));
        self.0.appended.lock().unwrap().push(args.line.clone());
        ToolOutput::ok(format!("appended {}", args.line))
    }
}

#[derive(Deserialize)]
pub struct LookArgs {
    pub key: String,
    #[serde(default)]
    pub size: usize,
}

/// Reads: not mutating, no approval, re-run after a crash. Returns `size` bytes.
pub struct Look(pub Effects);

impl Tool for Look {
    type Args = LookArgs;
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "look".into(),
            description: "look something up".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"key": {"type": "string"}, "size": {"type": "integer"}},
                "required": ["key"]
            }),
        }
    }
    fn is_mutating(&self) -> bool {
        false
    }
    async fn call(&self, args: LookArgs, _ctx: CallContext) -> ToolOutput {
        self.0
            .executions
            .lock()
            .unwrap()
            .push(("look".into(), args.key.clone()));
        if args.key == "fail" {
            return ToolOutput::error("lookup failed: no such key");
        }
        let mut out = format!("value of {}", args.key);
        while out.len() < args.size {
            out.push_str(" lorem ipsum dolor sit amet");
        }
        out.truncate(args.size.max(out.len().min(64)));
        ToolOutput::ok(out)
    }
}

pub fn agent(provider: Scripted, effects: &Effects, prompt: &str) -> Agent {
    Agent::builder("tester")
        .provider(provider)
        .model("scripted")
        .system_prompt(prompt)
        .tool(Put(effects.clone()))
        .tool(Append(effects.clone(), Recovery::ReportInterrupted))
        .tool(Look(effects.clone()))
        .ask_user()
        .stop_when(StopCondition::max_steps(50))
        .build()
}

// ---------------------------------------------------------------- crash store

/// Wraps a store and "kills the process" at the `n`-th append (0-based): the append
/// is written (`after`) or not (`!after`), and then it and every later operation of
/// this wrapper hang forever, as if the process had died.
#[derive(Clone)]
pub struct CrashStore {
    inner: MemoryStore,
    appends: Arc<AtomicUsize>,
    at: Option<(usize, bool)>,
    pub crashed: Arc<Notify>,
    dead: Arc<std::sync::atomic::AtomicBool>,
}

impl CrashStore {
    pub fn new(inner: MemoryStore, at: Option<(usize, bool)>) -> Self {
        Self {
            inner,
            appends: Arc::new(AtomicUsize::new(0)),
            at,
            crashed: Arc::new(Notify::new()),
            dead: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    pub fn appends(&self) -> usize {
        self.appends.load(Ordering::SeqCst)
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    async fn die(&self) -> ! {
        self.dead.store(true, Ordering::SeqCst);
        self.crashed.notify_waiters();
        self.crashed.notify_one();
        std::future::pending::<()>().await;
        unreachable!()
    }
}

impl EventStore for CrashStore {
    async fn append(&self, run: RunId, expected: Seq, batch: Batch) -> AppendResult {
        {
            if self.is_dead() {
                self.die().await;
            }
            let n = self.appends.fetch_add(1, Ordering::SeqCst);
            match self.at {
                Some((at, after)) if at == n => {
                    if after {
                        let _ = self.inner.append(run, expected, batch).await;
                    }
                    self.die().await
                }
                _ => self.inner.append(run, expected, batch).await,
            }
        }
    }
    async fn read(&self, run: RunId, from: Seq) -> keel_storage::Result<Vec<Record>> {
        {
            if self.is_dead() {
                self.die().await;
            }
            self.inner.read(run, from).await
        }
    }
    fn run_info(
        &self,
        run: RunId,
    ) -> impl Future<Output = keel_storage::Result<Option<RunInfo>>> + Send {
        self.inner.run_info(run)
    }
    fn list_runs(&self) -> impl Future<Output = keel_storage::Result<Vec<RunInfo>>> + Send {
        self.inner.list_runs()
    }
    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, keel_storage::Result<Record>> {
        self.inner.watch(run, from)
    }
    fn put_blob(
        &self,
        bytes: Bytes,
    ) -> impl Future<Output = keel_storage::Result<BlobHash>> + Send {
        self.inner.put_blob(bytes)
    }
    fn get_blob(
        &self,
        hash: BlobHash,
    ) -> impl Future<Output = keel_storage::Result<Option<Bytes>>> + Send {
        self.inner.get_blob(hash)
    }
    fn delete_run(&self, run: RunId) -> impl Future<Output = keel_storage::Result<bool>> + Send {
        self.inner.delete_run(run)
    }
}

// ---------------------------------------------------------------- driving

/// How the harness answers approvals: by the call's tool and a counter.
pub type Answer = Arc<dyn Fn(&keel_engine::PendingStep) -> Decision + Send + Sync>;

pub fn approve_all() -> Answer {
    Arc::new(|_| Decision::approve())
}

/// Drives a run to its end, answering approvals. Returns `None` if the store
/// crashed meanwhile.
pub async fn drive(
    keel: &Keel,
    store: &CrashStore,
    run: RunId,
    answer: &Answer,
) -> Option<RunOutcome> {
    loop {
        let outcome = tokio::select! {
            o = keel.result(run) => o.expect("result"),
            () = store.crashed.notified() => return None,
        };
        match outcome {
            RunOutcome::Suspended { waiting } => {
                let step = &waiting[0];
                let decision = answer(step);
                tokio::select! {
                    r = keel.resume(run, &step.step, decision) => r.expect("resume"),
                    () = store.crashed.notified() => return None,
                }
            }
            RunOutcome::Interrupted => {
                tokio::select! {
                    r = keel.continue_run(run) => { r.expect("continue"); }
                    () = store.crashed.notified() => return None,
                }
            }
            done => return Some(done),
        }
    }
}

// ---------------------------------------------------------------- fault store

/// What a [`FaultStore`] fails with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `ENOSPC`.
    DiskFull,
    /// `EIO`.
    Io,
}

impl Fault {
    fn error(self) -> keel_storage::Error {
        let io = match self {
            Fault::DiskFull => std::io::Error::from_raw_os_error(28),
            Fault::Io => std::io::Error::from_raw_os_error(5),
        };
        keel_storage::Error::from_io(io)
    }
}

/// Wraps a store and fails appends from the `n`-th on (0-based), and/or every
/// read, until cleared: a full disk, a failing device. Nothing is written by a
/// failed append.
#[derive(Clone)]
pub struct FaultStore {
    inner: MemoryStore,
    appends: Arc<AtomicUsize>,
    fail_appends_from: Arc<Mutex<Option<(usize, Fault)>>>,
    fail_reads: Arc<Mutex<Option<Fault>>>,
}

impl FaultStore {
    pub fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            appends: Arc::new(AtomicUsize::new(0)),
            fail_appends_from: Arc::new(Mutex::new(None)),
            fail_reads: Arc::new(Mutex::new(None)),
        }
    }

    pub fn fail_appends_from(&self, n: usize, fault: Fault) {
        *self.fail_appends_from.lock().unwrap() = Some((n, fault));
    }

    pub fn fail_reads(&self, fault: Fault) {
        *self.fail_reads.lock().unwrap() = Some(fault);
    }

    pub fn clear(&self) {
        *self.fail_appends_from.lock().unwrap() = None;
        *self.fail_reads.lock().unwrap() = None;
    }

    pub fn appends(&self) -> usize {
        self.appends.load(Ordering::SeqCst)
    }

    fn read_fault(&self) -> keel_storage::Result<()> {
        match *self.fail_reads.lock().unwrap() {
            Some(f) => Err(f.error()),
            None => Ok(()),
        }
    }
}

impl EventStore for FaultStore {
    async fn append(&self, run: RunId, expected: Seq, batch: Batch) -> AppendResult {
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        let fault = *self.fail_appends_from.lock().unwrap();
        if let Some((from, fault)) = fault
            && n >= from
        {
            return Err(fault.error());
        }
        self.inner.append(run, expected, batch).await
    }
    async fn read(&self, run: RunId, from: Seq) -> keel_storage::Result<Vec<Record>> {
        self.read_fault()?;
        self.inner.read(run, from).await
    }
    async fn run_info(&self, run: RunId) -> keel_storage::Result<Option<RunInfo>> {
        self.read_fault()?;
        self.inner.run_info(run).await
    }
    async fn list_runs(&self) -> keel_storage::Result<Vec<RunInfo>> {
        self.read_fault()?;
        self.inner.list_runs().await
    }
    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, keel_storage::Result<Record>> {
        self.inner.watch(run, from)
    }
    fn put_blob(
        &self,
        bytes: Bytes,
    ) -> impl Future<Output = keel_storage::Result<BlobHash>> + Send {
        self.inner.put_blob(bytes)
    }
    async fn get_blob(&self, hash: BlobHash) -> keel_storage::Result<Option<Bytes>> {
        self.read_fault()?;
        self.inner.get_blob(hash).await
    }
    fn delete_run(&self, run: RunId) -> impl Future<Output = keel_storage::Result<bool>> + Send {
        self.inner.delete_run(run)
    }
}
