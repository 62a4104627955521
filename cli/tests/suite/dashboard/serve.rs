//! `keel ui` as a process: the URL and the token file, Ctrl-C, the loopback rule,
//! and working through another process that owns the store.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::Ui;
use crate::support::{Project, hello_script};

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30"])
        .args(args)
        .output()
        .expect("these tests call the API with curl (apt-get install -y curl)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn api(ui: &Ui, path: &str, body: Option<&Value>) -> Value {
    let auth = format!("Authorization: Bearer {}", ui.token());
    let url = format!("{}{path}", ui.base);
    let text = match body {
        Some(b) => curl(&[
            "-H",
            &auth,
            "-H",
            "content-type: application/json",
            "-d",
            &b.to_string(),
            &url,
        ]),
        None => curl(&["-H", &auth, &url]),
    };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

impl Ui {
    fn token(&self) -> &str {
        self.url.split("token=").nth(1).unwrap()
    }
}

#[test]
fn ui_prints_its_url_writes_the_token_for_its_user_only_and_stops_on_ctrl_c() {
    let project = Project::new(vec![]);
    std::fs::create_dir_all(project.workspace()).unwrap();
    let mut ui = Ui::start(&project);
    let file = project.path().join(".keel/ui-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), ui.token());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(ui.token().len(), 64);
    let agents = api(&ui, "/api/agents", None);
    assert_eq!(agents["agents"], json!(["coding_agent"]));

    let status = Command::new("kill")
        .args(["-INT", &ui.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = ui.wait();
    assert_eq!(
        code,
        Some(130),
        "Ctrl-C stops it like the other long-running commands"
    );
    assert!(!file.exists(), "the token dies with the server");

    let again = Ui::start(&project);
    assert_ne!(again.token(), ui.token(), "a fresh token at every start");
}

#[test]
fn an_address_other_machines_reach_needs_allow_remote() {
    let project = Project::new(vec![]);
    let (code, out, err) = project.run(&["ui", "--addr", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("--allow-remote"), "{err}");
    let (code, _, err) = project.run(&["ui", "--addr", "nowhere"]);
    assert_eq!(code, 2);
    assert!(err.contains("HOST:PORT"), "{err}");
}

/// Reads a run's SSE stream (through curl) until an `entry` whose data contains
/// every one of `needles`, or `event: end`. Returns whether such an entry came.
fn read_until(lines: &mut impl Iterator<Item = String>, needles: &[&str]) -> bool {
    let mut event = String::new();
    for line in lines {
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
            if event == "end" {
                return false;
            }
        } else if event == "entry"
            && line.starts_with("data: ")
            && needles.iter().all(|n| line.contains(n))
        {
            return true;
        }
    }
    false
}

#[test]
fn through_another_owner_the_dashboard_lists_approves_and_follows_a_run() {
    let project = Project::new(hello_script());
    let mut owner = Owner(
        project
            .keel()
            .arg("serve")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut owner_err = BufReader::new(owner.0.stderr.take().unwrap()).lines();
    assert!(
        owner_err
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("Ctrl-C to stop")),
        "keel serve started"
    );

    let (code, _, err) = project.run(&["run", "coding_agent", "Write hello.sh and run it."]);
    assert_eq!(code, 3, "waits for an approval: {err}");
    let mut ui = Ui::start(&project);
    assert!(
        ui.stderr_line().contains("owned by process"),
        "works through the owner"
    );

    let list = api(&ui, "/api/runs", None);
    assert_eq!(list["total"], 1, "{list}");
    let run = list["runs"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["runs"][0]["status"], "suspended");

    let auth = format!("Authorization: Bearer {}", ui.token());
    let mut stream = Command::new("curl")
        .args([
            "-s",
            "-N",
            "-H",
            &auth,
            &format!("{}/api/runs/{run}/events", ui.base),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(stream.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    for tool in ["write", "exec"] {
        let view = api(&ui, &format!("/api/runs/{run}"), None);
        let step = &view["waiting"][0];
        assert_eq!(step["form"]["tool"], tool, "{view}");
        let answer =
            json!({"step": step["step"], "decision": "approve", "digest": step["form"]["digest"]});
        let decided = api(&ui, &format!("/api/runs/{run}/decisions"), Some(&answer));
        assert_eq!(
            decided["continued"], true,
            "the owner continues the run: {decided}"
        );
        if tool == "write" {
            assert!(
                read_until(
                    &mut lines,
                    &["\"kind\":\"approval_requested\"", "\"tool\":\"exec\""]
                ),
                "the command's approval arrives live"
            );
        }
    }
    assert!(
        read_until(&mut lines, &["\"kind\":\"run_completed\""]),
        "the end arrives live"
    );
    let _ = stream.kill();
    let _ = stream.wait();
    let view = api(&ui, &format!("/api/runs/{run}"), None);
    assert_eq!(view["run"]["status"], "completed");
    drop(ui);
    drop(owner);
}

/// The owning `keel serve`, stopped even when the test fails.
struct Owner(std::process::Child);

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
