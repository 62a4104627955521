//! SECURITY.md item 46: commands cannot read the keys Keel holds, whatever the
//! isolation setting — where the system allows they see only their own processes
//! in `/proc`, their supervisor's memory and environment are unreadable, root's
//! commands lose the capabilities that would get around that — and every secret
//! value Keel knows is masked in tool results and approval forms, whatever the
//! tool (the keel binary's own environment block is checked in the CLI's tests).

use keel_tools::sandbox::isolation_support;
use keel_tools::{
    Approval, CallContext, ExecSecurity, FormContext, IsolationMode, Tool, ToolOutput,
    ToolRegistry, ToolSpec,
};
use serde_json::json;

use super::common::*;
use super::procs::shapes;

/// A process of the user's, outside any command, with a secret in its
/// environment (as the shell that started Keel would have).
struct Canary {
    child: std::process::Child,
    value: String,
}

impl Canary {
    fn start() -> Self {
        use std::io::BufRead;
        let value = format!("canary-{}-5e1f", std::process::id());
        // It says when it runs: before (and during) its `exec`, a child's /proc
        // environ is not yet its own. It then waits on its stdin, without exec'ing again.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "echo ready; read x"])
            .env("KEEL_TEST_CANARY", &value)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Self { child, value }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sec_46_proc_shows_only_the_commands_own_processes() {
    if !isolation_support().pid_namespace {
        println!("UNSUPPORTED here: no PID namespace for commands");
        return;
    }
    // Control: the test can read the canary's environment.
    let canary = Canary::start();
    let environ = std::fs::read(format!("/proc/{}/environ", canary.pid())).unwrap();
    assert!(
        String::from_utf8_lossy(&environ).contains(&canary.value),
        "{}",
        String::from_utf8_lossy(&environ)
    );
    for mode in [IsolationMode::Off, IsolationMode::BestEffort] {
        let ws = Ws::with(|c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.isolation.mode = mode;
        });
        let out = ws
            .sh("echo ppid=$PPID; ls /proc | grep -c '^[0-9]*$'; cat /proc/1/comm; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c KEEL_TEST_CANARY; cat /proc/1/environ /proc/1/mem 2>&1 | head -c 300")
            .await
            .content;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ppid=1", "{mode:?}: {out}");
        let visible: usize = lines[1].parse().unwrap();
        assert!(visible <= 8, "{mode:?}: {visible} processes visible: {out}");
        assert_eq!(lines[2], "keel-supervise", "{mode:?}: {out}");
        assert_eq!(lines[3], "0", "{mode:?}: {out}");
        assert!(
            out.matches("Permission denied").count() >= 2,
            "the supervisor's environment or memory was readable: {out}"
        );
    }
}

#[tokio::test]
async fn sec_46_without_a_pid_namespace_other_processes_stay_visible_as_documented() {
    // The gap that `guarantees` states: without a PID namespace a command sees the
    // user's other processes, and (unless Keel runs as root, whose commands lack
    // the capabilities those processes have) their environment. Keel's own is
    // never readable (not dumpable, and scrubbed: see the CLI's tests).
    let canary = Canary::start();
    let ws = Ws::with(|c| {
        c.exec.security = ExecSecurity::AllowAlways;
        c.isolation.namespaces = false;
    });
    let out = ws
        .sh(&format!(
            "test -d /proc/{pid} && echo visible; tr '\\0' '\\n' < /proc/{pid}/environ | grep -c {value}",
            pid = canary.pid(),
            value = canary.value
        ))
        .await
        .content;
    assert!(out.starts_with("visible\n"), "{out}");
    if rustix::process::geteuid().is_root() {
        assert!(out.contains("Permission denied"), "{out}");
    } else {
        assert!(out.contains("\n1\n"), "{out}");
    }
    let (_, gaps) = keel_tools::sandbox::guarantees::for_people(&keel_tools::IsolationConfig {
        namespaces: false,
        ..Default::default()
    });
    assert!(
        gaps.iter().any(|g| g.contains("no PID namespace")),
        "{gaps:?}"
    );
}

#[tokio::test]
async fn sec_46_root_commands_lose_the_capabilities_that_read_memory() {
    if !rustix::process::geteuid().is_root() {
        println!("not root: nothing to drop");
        return;
    }
    for (shape, configure) in shapes() {
        let ws = Ws::with(configure);
        let out = ws
            .sh("grep CapBnd /proc/self/status; mount -t tmpfs none /mnt 2>&1; echo done")
            .await
            .content;
        let hex = out
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .unwrap_or_else(|| panic!("{shape}: {out}"))
            .trim();
        let bits = u64::from_str_radix(hex, 16).unwrap();
        for cap in [2, 16, 17, 19, 21, 38, 39] {
            assert_eq!(
                bits & (1 << cap),
                0,
                "{shape}: capability {cap} kept: {out}"
            );
        }
        assert!(
            out.contains("permission denied")
                || out.contains("Operation not permitted")
                || out.contains("must be superuser"),
            "{shape}: {out}"
        );
    }
}

/// A tool of an embedder's own that leaks whatever it is given.
struct Echo;

#[derive(serde::Deserialize)]
struct EchoArgs {
    text: String,
}

impl Tool for Echo {
    type Args = EchoArgs;
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "echo".into(),
            description: "Echoes".into(),
            input_schema: json!({"type": "object", "properties": {"text": {"type": "string"}}}),
        }
    }
    async fn call(&self, args: EchoArgs, _ctx: CallContext) -> ToolOutput {
        ToolOutput::ok(format!("you said {}", args.text))
    }
}

#[tokio::test]
async fn sec_46_known_secrets_are_masked_in_results_and_forms_of_every_tool() {
    let secret = format!("sk-test-{}-{}", std::process::id(), "9f8e7d6c5b4a");
    keel_tools::secrets::global().add("TEST_MASKED_KEY", &secret);
    let masked = "[masked: TEST_MASKED_KEY]";
    // A command that prints it (as if it had found it somewhere).
    let ws = Ws::exec();
    ws.put("found.txt", format!("key={secret}\n"));
    let out = ok(ws
        .sh("cat found.txt; echo \"$(cat found.txt | rev | rev)\"")
        .await);
    assert!(!out.contains(&secret), "{out}");
    assert_eq!(out.matches(masked).count(), 2, "{out}");
    // `read` returns file contents: masked too.
    let out = ok(ws.call("read", json!({"path": "found.txt"})).await);
    assert!(!out.contains(&secret) && out.contains(masked), "{out}");
    // Approval forms: a command, a write.
    let approving = Ws::new();
    let form = needed(approving.approval("exec", json!({"command": format!("echo {secret}")})));
    let FormContext::Command { command, .. } = &form.context else {
        panic!("{form:?}")
    };
    assert_eq!(command, &format!("echo {masked}"));
    let form =
        needed(approving.approval("write", json!({"path": "k.txt", "content": secret.clone()})));
    let FormContext::Write { content, .. } = &form.context else {
        panic!("{form:?}")
    };
    assert!(content.contains(masked) && !content.contains(&secret));
    // A tool of the embedder's own: the layer every tool goes through masks it.
    let mut reg = ToolRegistry::new();
    reg.register(Echo);
    let tool = reg.get("echo").unwrap();
    let out = tool
        .call_json(json!({"text": secret.clone()}), CallContext::detached())
        .await;
    assert_eq!(out.content, format!("you said {masked}"));
    match tool
        .approval_json(&json!({"text": secret.clone()}), &[])
        .unwrap()
    {
        Approval::Needed(form) => {
            let FormContext::Call { args } = &form.context else {
                panic!("{form:?}")
            };
            assert!(args.contains(masked) && !args.contains(&secret), "{args}");
        }
        other => panic!("{other:?}"),
    }
}
