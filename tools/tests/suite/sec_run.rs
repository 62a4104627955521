//! SECURITY.md checklist, running commands: items 37–42.

use std::os::fd::AsFd;
use std::process::Stdio;

use keel_tools::ExecSecurity;
use serde_json::json;

use super::common::*;
use super::procs::{alive, shapes, tag};

#[tokio::test]
async fn sec_37_background_job_is_killed_when_the_command_ends() {
    for (shape, configure) in shapes() {
        let ws = Ws::with(|c| {
            configure(c);
            c.exec.shell = "/bin/bash".into();
        });
        let t = tag(1);
        let out = ok(ws.sh(&format!("sleep {t} & disown; echo started")).await);
        assert_eq!(alive(&t), Vec::<i32>::new(), "{shape}: {out}");
        assert!(
            out.contains("still running when the command ended were killed"),
            "{shape}: {out}"
        );
    }
}

#[tokio::test]
async fn sec_37_setsid_escapee_is_killed_at_the_timeout() {
    for (shape, configure) in shapes() {
        let ws = Ws::with(configure);
        let t = tag(2);
        let out = err(ws
            .call(
                "exec",
                json!({"command": format!("setsid sh -c 'exec sleep {t}'"), "timeout": 1}),
            )
            .await);
        assert!(
            out.contains("[timed out after 1 s: the command and all its processes were killed"),
            "{shape}: {out}"
        );
        assert_eq!(alive(&t), Vec::<i32>::new(), "{shape}: {out}");
    }
}

#[tokio::test]
async fn sec_37_orphaned_setsid_escapee_is_found_and_killed() {
    for (shape, configure) in shapes() {
        let ws = Ws::with(configure);
        let t = tag(3);
        // The escapee leaves the session and its parent exits at once.
        let out = ok(ws
            .sh(&format!("setsid sh -c 'echo $$ > escapee.pid; exec sleep {t}' & while [ ! -s escapee.pid ]; do :; done; echo parent done"))
            .await);
        assert_eq!(alive(&t), Vec::<i32>::new(), "{shape}: {out}");
    }
}

#[tokio::test]
async fn sec_37_fork_bomb_is_killed() {
    for namespaces in [true, false] {
        let ws = Ws::exclusive(|c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.exec.max_processes = 64;
            c.isolation.namespaces = namespaces;
        });
        // Every copy of the shell carries the tag in its command line.
        let t = format!("bomb{}", tag(4));
        // The shell stays to watch its bomb grow: killed at the process limit.
        let out = err(ws
            .call(
                "exec",
                json!({"command": format!(": {t}; bomb() {{ bomb | bomb & }}; bomb; sleep 30"), "timeout": 20}),
            )
            .await);
        // Root: Keel counts and kills. Other users: the kernel refuses the forks
        // past the limit (RLIMIT_NPROC), and the bomb fizzles out.
        assert!(
            out.contains("[killed: the command started more than 64 processes")
                || (!rustix::process::geteuid().is_root() && out.contains("fork")),
            "namespaces {namespaces}: {out}"
        );
        assert_eq!(alive(&t), Vec::<i32>::new(), "{out}");
        // The shell leaves at once: the bomb's processes are killed with the command.
        let out = ws
            .sh(&format!(": {t}; bomb() {{ bomb | bomb & }}; bomb"))
            .await;
        assert_eq!(alive(&t), Vec::<i32>::new(), "{}", out.content);
    }
}

#[tokio::test]
async fn sec_38_endless_output_is_bounded() {
    let ws = Ws::with(|c| {
        c.exec.security = ExecSecurity::AllowAlways;
        c.exec.max_output_bytes = 10_000;
    });
    let out = err(ws
        .call("exec", json!({"command": "yes", "timeout": 1}))
        .await);
    assert!(out.len() < 11_000, "{}", out.len());
    assert!(out.starts_with("y\ny\n"));
    assert!(out.contains(" bytes of output omitted ...]"), "{out}");
    assert!(out.contains("[timed out after 1 s"));
    // 50 MB in a burst, then an exit.
    let out = ok(ws
        .sh("head -c 50000000 /dev/zero | tr '\\0' 'a'; echo; echo END")
        .await);
    assert!(out.len() < 11_000);
    assert!(out.contains("[... 49990"), "{}", &out[4900..5200]);
    assert!(
        out.contains("aaaa\nEND\n[exit code 0"),
        "{}",
        &out[out.len() - 200..]
    );
}

#[tokio::test]
async fn sec_39_escape_sequences_are_stripped() {
    let ws = Ws::exec();
    let out = ok(ws
        .sh(r"printf '\033[1;31mRED\033[0m|\033]0;title\007|\033]8;;http://evil\033\\link\033]8;;\033\\|\033[2J\033[Hend\n'")
        .await);
    assert!(out.starts_with("RED||link|end\n"), "{out:?}");
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'));
}

#[tokio::test]
async fn sec_40_no_secrets_in_the_environment() {
    let mut env = host_env();
    for (name, value) in [
        ("OPENAI_API_KEY", "sk-secret-openai"),
        ("ANTHROPIC_API_KEY", "sk-secret-anthropic"),
        ("GITHUB_TOKEN", "ghp_secret"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ("DB_PASSWORD", "db-secret"),
        ("MY_SERVICE_SECRET", "svc-secret"),
        ("PLAIN_SETTING", "visible"),
    ] {
        env.push((name.into(), value.into()));
    }
    // By default commands get a small named set of variables; `inherit = "all"`
    // (an explicit choice) passes the rest but what `exclude` names.
    for inherit in [keel_tools::EnvInherit::Core, keel_tools::EnvInherit::All] {
        let ws = Ws::with_env(
            |c| {
                c.exec.security = ExecSecurity::AllowAlways;
                c.exec.env.inherit = inherit;
            },
            env.clone(),
        );
        for cmd in ["env", "cat /proc/self/environ | tr '\\0' '\\n'"] {
            let out = ok(ws.sh(cmd).await);
            assert!(
                !out.contains("secret") && !out.contains("ghp_"),
                "{cmd}: {out}"
            );
            let plain = inherit == keel_tools::EnvInherit::All;
            assert_eq!(out.contains("PLAIN_SETTING=visible"), plain, "{out}");
            assert!(out.contains("PATH="), "{out}");
        }
    }
}

#[tokio::test]
async fn sec_41_stdin_is_empty() {
    let ws = Ws::exec();
    let out = ok(ws.sh("cat").await);
    assert!(out.starts_with("(no output)\n[exit code 0 · "), "{out}");
    let out = ok(ws.sh("read x; echo \"got:[$x] status:$?\"").await);
    assert!(out.starts_with("got:[] status:1\n"), "{out}");
    // git commit without -m would open an editor; it must not wait for one.
    let out = ws
        .sh("git init -q . && git config user.email a@b.c && git config user.name a && echo x > f && git add f && git commit")
        .await;
    assert!(out.is_error, "{}", out.content);
    assert!(out.content.contains("Aborting commit"), "{}", out.content);
}

/// Runs inside a process whose controlling terminal is a pty (see `sec_42`).
#[tokio::test]
#[ignore = "helper: run by sec_42_tiocsti_cannot_reach_a_terminal"]
async fn tiocsti_helper() {
    let inject = |byte: &str| {
        format!(
            "/usr/bin/python3 -c 'import fcntl,termios; f=open(\"/dev/tty\",\"wb\"); fcntl.ioctl(f, termios.TIOCSTI, b\"{byte}\")'"
        )
    };
    // Control: a plain child in this session can inject into its terminal.
    let control = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(inject("C"))
        .status()
        .unwrap();
    println!("control-injected={}", control.success());
    let ws = Ws::exec();
    let out = ws
        .sh(&format!("{}; cat /proc/self/stat", inject("X")))
        .await;
    println!("exec-output-begin\n{}\nexec-output-end", out.content);
}

#[test]
fn sec_42_tiocsti_cannot_reach_a_terminal() {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    if !std::path::Path::new("/usr/bin/python3").exists()
        || !std::path::Path::new("/usr/bin/setsid").exists()
    {
        println!("python3 or setsid missing: only the session checks of sec_41/37 apply");
        return;
    }
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    // Raw mode, so injected bytes are readable without a newline.
    let mut termios = rustix::termios::tcgetattr(&slave).unwrap();
    termios.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &termios).unwrap();
    // The helper gets the pty as its controlling terminal (`setsid --ctty`).
    let output = std::process::Command::new("/usr/bin/setsid")
        .arg("--ctty")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "suite::sec_run::tiocsti_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What reached the terminal's input queue.
    rustix::io::ioctl_fionbio(slave.as_fd(), true).unwrap();
    let mut queued = [0u8; 64];
    let n = rustix::io::read(&slave, &mut queued).unwrap_or(0);
    let queued = String::from_utf8_lossy(&queued[..n]);
    let controlled = stdout.contains("control-injected=true");
    if controlled {
        assert!(
            queued.contains('C'),
            "control injection missing: {queued:?} / {stdout}"
        );
    } else {
        println!(
            "this kernel refuses TIOCSTI outright (dev.tty.legacy_tiocsti=0); checking the session only"
        );
    }
    assert!(
        !queued.contains('X'),
        "a command injected into the terminal: {queued:?}\n{stdout}"
    );
    // The command had no controlling terminal: /dev/tty could not even be opened,
    // and its /proc stat shows tty_nr 0 in a session of its own.
    assert!(stdout.contains("No such device or address"), "{stdout}");
    let stat = stdout
        .lines()
        .find(|l| l.contains(" (cat) "))
        .unwrap_or_else(|| panic!("no stat line: {stdout}"));
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // state ppid pgrp session tty_nr
    assert_eq!(
        fields[4], "0",
        "the command had a controlling terminal: {stat}"
    );
}
