//! Containment, black box: the built `keel` binary with a scripted model whose
//! commands try to get out — drive the store's owner through its socket or by
//! running `keel`, read the provider key from `/proc`, leave processes behind —
//! under each shape commands run in (a PID namespace of their own where the
//! system allows; a supervisor process without namespaces).

use std::process::Stdio;

use serde_json::json;

use crate::support::*;

/// An agent in `ws/` whose commands run without approval; `namespaces = false`
/// runs them under a supervisor instead of in a PID namespace.
fn project_with(script: Vec<Turn>, namespaces: bool, isolation: &str) -> Project {
    let project = Project::new(script);
    std::fs::write(
        project.path().join("keel.toml"),
        format!(
            r#"
[agents.agent]
system_prompt = "You run commands."
max_steps = 10
[agents.agent.tools.local]
cwd = "ws"
[agents.agent.tools.exec]
security = "allow-always"
[agents.agent.tools.isolation]
mode = "{isolation}"
namespaces = {namespaces}
"#
        ),
    )
    .unwrap();
    std::fs::create_dir_all(project.path().join("ws")).unwrap();
    project
}

/// Every tool result the model received, joined.
fn results(project: &Project) -> String {
    project
        .server
        .requests()
        .iter()
        .flat_map(tool_results)
        .map(|(_, content, _)| content)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn exec(command: &str) -> Turn {
    call("Running.", "exec", json!({ "command": command }))
}

const SHAPES: [(&str, bool); 2] = [("namespaced", true), ("supervised", false)];

#[test]
fn a_command_cannot_drive_the_owner_through_its_socket() {
    for (shape, namespaces) in SHAPES {
        let marker =
            std::env::temp_dir().join(format!("keel-pwned-{}-{shape}", std::process::id()));
        let body = json!({
            "agent": {"id": "evil", "provider": "anthropic",
                      "tools": {"local": {"cwd": "/"}, "exec": {"security": "allow-always"}}},
            "input": format!("run: touch {}", marker.display()),
            "env": {}
        });
        let post = format!(
            "curl -s -w '\\nstatus %{{http_code}}\\n' --unix-socket ../.keel/keel.sock -H 'content-type: application/json' -X POST http://keel/v1/runs -d '{body}'; curl -s -w '\\nstatus %{{http_code}}\\n' --unix-socket ../.keel/keel.sock http://keel/v1/runs"
        );
        let project = project_with(vec![exec(&post), say("Done.")], namespaces, "off");
        let (code, out, err) = project.run(&["run", "agent", "try the socket"]);
        assert_eq!(code, 0, "{shape}: {out}\n{err}");
        let seen = results(&project);
        if namespaced_here(namespaces) {
            // The store directory is hidden: there is no socket to connect to.
            assert!(seen.contains("status 000"), "{shape}: {seen}");
        } else {
            assert!(seen.contains("status 403"), "{shape}: {seen}");
            assert!(seen.contains("refused"), "{shape}: {seen}");
            assert!(
                err.contains("keel: refused a connection to the control socket"),
                "{shape}: {err}"
            );
        }
        assert!(!seen.contains("status 200"), "{shape}: {seen}");
        assert_eq!(project.runs().len(), 1, "{shape}: a second run was started");
        assert!(!marker.exists(), "{shape}");
    }
}

#[test]
fn keel_run_by_a_command_cannot_reach_the_owner() {
    let keel = env!("CARGO_BIN_EXE_keel");
    for (shape, namespaces) in SHAPES {
        let command = format!(
            "{keel} --store ../.keel runs; echo \"exit $?\"; {keel} --store ../.keel run agent 'touch ../escaped' --approve-all; echo \"exit $?\""
        );
        let project = project_with(vec![exec(&command), say("Done.")], namespaces, "off");
        let (code, out, err) = project.run(&["run", "agent", "try keel"]);
        assert_eq!(code, 0, "{shape}: {out}\n{err}");
        let seen = results(&project);
        assert!(!seen.contains("exit 0"), "{shape}: {seen}");
        if !namespaced_here(namespaces) {
            assert!(seen.contains("refused this process"), "{shape}: {seen}");
        }
        assert_eq!(project.runs().len(), 1, "{shape}: {seen}");
        assert!(!project.path().join("escaped").exists());
    }
}

/// Whether commands get a PID namespace here with `namespaces` set.
fn namespaced_here(namespaces: bool) -> bool {
    namespaces && keel_tools::sandbox::isolation_support().pid_namespace
}

#[test]
fn the_provider_key_is_unreadable_from_proc_and_never_shown() {
    // The loopback server accepts only this key.
    let key = "test-key";
    let scan = "tr '\\0' '\\n' < /proc/$PPID/environ; cat /proc/$PPID/cmdline; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>&1 | grep -i -e api_key; echo scanned";
    for (shape, namespaces) in SHAPES {
        let project = project_with(
            vec![exec(scan), exec("echo again"), say("Done.")],
            namespaces,
            "off",
        );
        // Hold the model's turn 1 so keel is alive while the test looks at it.
        project.server.hold(1);
        let child = project
            .keel()
            .args(["run", "agent", "find the key"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        project.server.wait_holding(1);
        // From outside too (the test runs as keel's user or root): keel's
        // environment block no longer holds the key.
        let environ = std::fs::read(format!("/proc/{}/environ", child.id()));
        if let Ok(environ) = &environ {
            assert!(
                !String::from_utf8_lossy(environ).contains(key),
                "{shape}: the key is in keel's environment block"
            );
        }
        project.server.release();
        let output = child.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{shape}: {out}\n{err}");
        let seen = results(&project);
        assert!(seen.contains("scanned"), "{shape}: {seen}");
        assert!(
            !seen.contains(key),
            "{shape}: the key reached the model: {seen}"
        );
        let (_, log, _) = project.run(&["log", "last", "--json"]);
        let (_, show, _) = project.run(&["show", "last"]);
        for (what, text) in [
            ("stdout", &*out),
            ("stderr", &*err),
            ("log", &log),
            ("show", &show),
        ] {
            assert!(
                !text.contains(key),
                "{shape}: the key is in the {what}: {text}"
            );
        }
    }
}

#[test]
fn no_process_a_command_starts_outlives_its_call() {
    let tag = format!("31{}.5", std::process::id() % 1000 + 1000);
    let command = format!(
        "setsid -f env -i sh -c 'exec sleep {tag}'; nohup sleep {tag} > /dev/null 2>&1 & sh -c '(sleep {tag} &) &'; echo started"
    );
    for (shape, namespaces) in SHAPES {
        let project = project_with(
            vec![exec(&command), exec("sleep 0.2; echo next"), say("Done.")],
            namespaces,
            "off",
        );
        let (code, out, err) = project.run(&["run", "agent", "leave something behind"]);
        assert_eq!(code, 0, "{shape}: {out}\n{err}");
        let seen = results(&project);
        assert!(
            seen.contains("still running when the command ended were killed"),
            "{shape}: {seen}"
        );
        let alive = alive_with(&tag);
        assert!(
            alive.is_empty(),
            "{shape}: still running: {alive:?}\n{seen}"
        );
    }
}

/// Live processes whose command line contains `tag`.
fn alive_with(tag: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let state = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if cmdline.contains(tag) && !zombie {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn the_banner_says_what_is_not_guaranteed() {
    let project = project_with(vec![say("Hi.")], false, "off");
    let (code, out, err) = project.run(&["run", "agent", "hello"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("keel: isolation off: commands run under a supervisor"),
        "{err}"
    );
    assert!(
        err.contains("keel: not guaranteed here: no PID namespace"),
        "{err}"
    );
    assert!(
        err.contains("keel: not guaranteed here: isolation is off"),
        "{err}"
    );
}
