//! SECURITY.md item 45 (and the socket half of 43): nothing a command runs can
//! drive a control server — a Unix socket whose server checks its peers refuses
//! every process a command started, in every shape and isolation mode, detached
//! or not; the store directory is hidden where a mount namespace exists; with
//! isolation on, sockets that act for the person (path and abstract) are out of
//! reach.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;
use std::sync::mpsc;

use keel_tools::sandbox::isolation_support;
use keel_tools::sandbox::peer::{Refusal, check_unix_peer};
use keel_tools::{ExecSecurity, IsolationMode};

use super::common::*;
use super::procs::shapes;

/// A server on `path` answering each connection with 403 (refused peer) or 200,
/// and reporting its verdicts.
fn guarded_server(path: &Path) -> mpsc::Receiver<Result<i32, Refusal>> {
    let listener = UnixListener::bind(path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let verdict = check_unix_peer(&stream).map(|p| p.pid);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let answer: &[u8] = if verdict.is_ok() {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            } else {
                b"HTTP/1.1 403 Forbidden\r\ncontent-length: 7\r\nconnection: close\r\n\r\nrefused"
            };
            let _ = stream.write_all(answer);
            if tx.send(verdict).is_err() {
                return;
            }
        }
    });
    rx
}

fn curl(path: &Path) -> String {
    format!(
        "curl -s -o /dev/null -w '%{{http_code}}\\n' --unix-socket {} http://keel/v1/runs",
        path.display()
    )
}

fn refused_as_command(verdict: Result<i32, Refusal>, what: &str) {
    match verdict {
        Err(Refusal::SandboxedCommand { why, .. }) => println!("{what}: refused ({why})"),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn sec_45_every_command_is_refused_by_a_peer_checking_server() {
    for (shape, configure) in shapes() {
        let ws = Ws::with(configure);
        let socket = ws.outside.join("control.sock");
        let verdicts = guarded_server(&socket);
        // Control: the test itself (a process no command started) is accepted.
        let mut me = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        me.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let pid = verdicts.recv().unwrap().unwrap();
        assert_eq!(pid, std::process::id() as i32);
        // A command connecting directly.
        let out = ok(ws.sh(&curl(&socket)).await);
        assert!(out.starts_with("403\n"), "{shape}: {out}");
        refused_as_command(verdicts.recv().unwrap(), shape);
        // Detached, in a new session, with an empty environment, after its
        // parent exited.
        let detached = format!(
            "setsid -f env -i /usr/bin/sh -c \"{} > code.txt\"; while [ ! -s code.txt ]; do sleep 0.02; done; cat code.txt",
            curl(&socket).replace('"', "\\\"")
        );
        let out = ok(ws.sh(&detached).await);
        assert!(out.starts_with("403\n"), "{shape}: {out}");
        refused_as_command(verdicts.recv().unwrap(), shape);
    }
}

#[tokio::test]
async fn sec_45_the_store_directory_is_hidden_from_commands() {
    let ws = Ws::exec();
    let store = ws.outside.join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("LOCK"), "owner").unwrap();
    let verdicts = guarded_server(&store.join("keel.sock"));
    keel_tools::sandbox::hide_from_commands(&store);
    // By absolute path, and relative to the working directory (which the shell
    // enters inside its own mount namespace, not through a descriptor from outside).
    let probe = format!(
        "ls -A {s}; cat {s}/LOCK; ls -A ../outside/store; cat ../outside/store/LOCK; echo x > {s}/new; {}",
        curl(&store.join("keel.sock")),
        s = store.display()
    );
    let out = ws.sh(&probe).await.content;
    if !isolation_support().pid_namespace {
        println!("no mount namespace here: the store stays visible, its socket refuses: {out}");
        assert!(out.contains("403"), "{out}");
        refused_as_command(verdicts.recv().unwrap(), "visible store");
        return;
    }
    assert!(
        !out.contains("owner") && !out.contains("keel.sock"),
        "{out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("000\n"), "curl never connected: {out}");
    assert!(!store.join("new").exists());
    assert!(verdicts.try_recv().is_err(), "a command reached the socket");
    // A store inside the workspace is hidden too, and cannot be a command's
    // working directory.
    let inner = ws.path(".keel-store");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(inner.join("LOCK"), "owner").unwrap();
    keel_tools::sandbox::hide_from_commands(&inner);
    let out = ws
        .sh("cat .keel-store/LOCK; ls -A .keel-store | wc -l")
        .await
        .content;
    assert!(!out.contains("owner") && out.contains("\n0\n"), "{out}");
    let e = err(ws
        .call(
            "exec",
            serde_json::json!({"command": "cat LOCK", "cwd": ".keel-store"}),
        )
        .await);
    assert!(e.contains("it is hidden from commands"), "{e}");
}

#[tokio::test]
async fn sec_45_sockets_that_act_for_the_person_are_hidden_with_isolation_on() {
    if !isolation_support().pid_namespace {
        println!("UNSUPPORTED here: hiding sockets needs a mount namespace");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let run = base.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let bus = run.join("bus");
    let _bus = UnixListener::bind(&bus).unwrap();
    let agent_dir = base.path().join("ssh-agent");
    std::fs::create_dir(&agent_dir).unwrap();
    let agent = agent_dir.join("agent.1");
    let verdicts = guarded_server(&agent);
    let mut env = host_env();
    env.push(("XDG_RUNTIME_DIR".into(), run.clone().into()));
    env.push(("SSH_AUTH_SOCK".into(), agent.clone().into()));
    let probe = format!("ls {}; {}", run.display(), curl(&agent));
    // Control: with isolation off both are reachable.
    let plain = Ws::with_env(|c| c.exec.security = ExecSecurity::AllowAlways, env.clone());
    let out = plain.sh(&probe).await.content;
    assert!(out.contains("bus") && out.contains("403"), "{out}");
    verdicts.recv().unwrap().unwrap_err();
    let isolated = Ws::with_env(
        |c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.isolation.mode = IsolationMode::BestEffort;
        },
        env,
    );
    let out = isolated.sh(&probe).await.content;
    assert!(!out.contains("bus\n"), "{out}");
    assert!(out.contains("000\n"), "{out}");
    assert!(verdicts.try_recv().is_err(), "a command reached the agent");
}

#[tokio::test]
async fn sec_45_abstract_sockets_are_out_of_reach_with_isolation_on() {
    let name = format!("keel-test-abstract-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let probe = format!(
        "perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; connect($s, pack_sockaddr_un(\"\\0{name}\")) or die \"connect: $!\\n\"; print \"connected\\n\"'"
    );
    let out = ok(Ws::exec().sh(&probe).await);
    assert!(out.starts_with("connected"), "control: {out}");
    assert!(listener.accept().is_ok());
    let support = isolation_support();
    for namespaces in [true, false] {
        let ws = Ws::with(|c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.isolation.mode = IsolationMode::BestEffort;
            c.isolation.namespaces = namespaces;
        });
        let out = ws.sh(&probe).await.content;
        let covered = support.landlock_scopes || (namespaces && support.namespaces);
        if covered {
            assert!(out.contains("connect: "), "namespaces {namespaces}: {out}");
            assert!(listener.accept().is_err(), "namespaces {namespaces}: {out}");
        } else {
            println!("UNSUPPORTED here (namespaces {namespaces}): {out}");
        }
    }
}
