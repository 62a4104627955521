//! SECURITY.md item 53 (and 37): every process a call starts is gone when the
//! call ends, in every shape and isolation mode, without any marker a process
//! could clear: `setsid -f env -i`, double forks that clear their environment,
//! `nohup`, `disown`; and what happens when a command kills its own supervisor.

use keel_tools::sandbox::isolation_support;
use keel_tools::{ExecSecurity, IsolationMode};

use super::common::*;
use super::procs::{alive, kill_tagged, shapes, tag};

async fn none_survive(command_for: impl Fn(&str) -> String, n: u32) {
    for (shape, configure) in shapes() {
        let ws = Ws::with(|c| {
            configure(c);
            c.exec.shell = "/bin/bash".into();
        });
        let t = tag(n);
        let out = ws.sh(&command_for(&t)).await;
        assert_eq!(alive(&t), Vec::<i32>::new(), "{shape}: {}", out.content);
        assert!(
            out.content
                .contains("still running when the command ended were killed"),
            "{shape}: {}",
            out.content
        );
    }
}

#[tokio::test]
async fn sec_53_setsid_fork_with_an_empty_environment_is_killed() {
    none_survive(
        |t| format!("setsid -f env -i sh -c 'exec sleep {t}'; echo started"),
        10,
    )
    .await;
}

#[tokio::test]
async fn sec_53_a_double_fork_clearing_its_environment_is_killed() {
    none_survive(
        |t| format!("env -i /bin/sh -c '( ( exec sleep {t} ) & ) &'; sleep 0.1; echo forked"),
        11,
    )
    .await;
}

#[tokio::test]
async fn sec_53_nohup_and_disown_are_killed() {
    none_survive(
        |t| format!("nohup sleep {t} > /dev/null 2>&1 & disown; echo away"),
        12,
    )
    .await;
}

#[tokio::test]
async fn sec_53_a_new_process_group_and_session_per_child_are_killed() {
    none_survive(
        |t| format!("for i in 1 2 3; do setsid sh -c 'sleep {t} & exec sleep {t}' & done; sleep 0.2; echo many"),
        13,
    )
    .await;
}

#[tokio::test]
async fn sec_53_a_command_cannot_kill_its_supervisor_where_it_is_protected() {
    let support = isolation_support();
    // Namespaced: the supervisor is pid 1 of the command's namespace, and the
    // kernel drops every signal the command sends it. With isolation on and no
    // namespace, Landlock's signal scope keeps the supervisor out of reach.
    let mut cases: Vec<(&str, bool, IsolationMode)> = Vec::new();
    if support.pid_namespace {
        cases.push(("namespaced, isolation off", true, IsolationMode::Off));
    }
    if support.landlock_scopes {
        cases.push(("supervised, best-effort", false, IsolationMode::BestEffort));
    }
    for (shape, namespaces, mode) in cases {
        let ws = Ws::with(|c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.isolation.namespaces = namespaces;
            c.isolation.mode = mode;
        });
        let t = tag(14);
        let out = ws
            .sh(&format!("setsid -f sleep {t}; kill -9 $PPID; kill -STOP $PPID; echo \"kill: $?\"; sleep 0.1; echo still here"))
            .await;
        assert!(
            out.content.contains("still here") && !out.is_error,
            "{shape}: {}",
            out.content
        );
        assert_eq!(alive(&t), Vec::<i32>::new(), "{shape}: {}", out.content);
    }
}

#[tokio::test]
async fn sec_53_killing_an_unprotected_supervisor_ends_the_call_and_says_what_may_survive() {
    // Isolation off and no namespaces: nothing stops the command from killing its
    // supervisor. The shell dies with it, the call ends at once, and the result
    // says that detached processes may have survived — which they do.
    let ws = Ws::with(|c| {
        c.exec.security = ExecSecurity::AllowAlways;
        c.isolation.namespaces = false;
    });
    let t = tag(15);
    let out = ws
        .sh(&format!(
            "setsid -f sleep {t}; kill -9 $PPID; sleep 30; echo never"
        ))
        .await;
    let survivors = alive(&t);
    kill_tagged(&t);
    assert!(out.is_error, "{}", out.content);
    assert!(
        out.content.contains("the command killed its supervisor")
            && out.content.contains("may have survived"),
        "{}",
        out.content
    );
    assert!(!out.content.contains("never"), "{}", out.content);
    println!("survivors, as stated: {survivors:?}");
}

/// Root's commands get a PID namespace without a user namespace; everyone else's
/// through one. When the tests run as root, this runs the containment tests again
/// as `nobody`, so the unprivileged path is checked on the same machine.
#[test]
fn sec_53_the_containment_tests_pass_as_an_unprivileged_user() {
    if !rustix::process::geteuid().is_root() {
        println!("not root: this run already is the unprivileged one");
        return;
    }
    if !std::path::Path::new("/usr/bin/setpriv").exists() {
        println!("UNSUPPORTED here: no setpriv to drop to nobody");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "suite::sec_detach::sec_53_a",
            "suite::sec_detach::sec_53_n",
            "suite::sec_detach::sec_53_s",
            "suite::sec_detach::sec_53_k",
            "suite::sec_secrets",
            "suite::sec_socket",
            "suite::sec_isolation",
            "--nocapture",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", tmp.path())
        .env("HOME", tmp.path())
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Permission denied") && !stdout.contains("test result") {
        println!("UNSUPPORTED here: nobody cannot run the test binary: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" passed; 0 failed"), "{stdout}");
    // Which shape the unprivileged run had (sec_43 prints what the system offers).
    let support = stdout
        .lines()
        .find(|l| l.starts_with("isolation support:"))
        .unwrap_or("isolation support: not printed");
    println!("as nobody, {support}");
}
