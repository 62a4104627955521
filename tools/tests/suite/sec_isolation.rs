//! SECURITY.md checklist, OS isolation: items 43–44. Each test first shows the
//! action succeeds without isolation (so the refusal is the isolation's doing),
//! then that it fails with isolation on. Where the kernel lacks what is needed, the
//! test checks the `required` mode's message instead and says so.

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};

use keel_tools::sandbox::isolation_support;
use keel_tools::{ExecSecurity, IsolationMode};

use super::common::*;

fn isolated(mode: IsolationMode) -> Ws {
    isolated_ns(mode, true)
}

fn isolated_ns(mode: IsolationMode, namespaces: bool) -> Ws {
    Ws::with(|c| {
        c.exec.security = ExecSecurity::AllowAlways;
        c.exec.shell = "/bin/bash".into();
        c.isolation.mode = mode;
        c.isolation.namespaces = namespaces;
    })
}

fn plain() -> Ws {
    Ws::with(|c| {
        c.exec.security = ExecSecurity::AllowAlways;
        c.exec.shell = "/bin/bash".into();
    })
}

#[tokio::test]
async fn sec_43_network_fails_with_isolation_on() {
    let support = isolation_support();
    println!("isolation support: {support:?}");
    if !support.landlock_tcp && !support.namespaces {
        let e = err(isolated(IsolationMode::Required).sh("true").await);
        assert!(
            e.contains("isolation is required but this system cannot provide it"),
            "{e}"
        );
        assert!(
            e.contains("blocking the network needs Landlock ABI 4"),
            "{e}"
        );
        println!("UNSUPPORTED here: {e}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let connect = format!("echo hello > /dev/tcp/127.0.0.1/{port} && echo connected");
    // Control: without isolation the connection is made.
    let out = ok(plain().sh(&connect).await);
    assert!(out.starts_with("connected"), "{out}");
    listener
        .accept()
        .expect("the control connection should be pending");
    // With isolation: refused, and nothing reaches the listener.
    let out = err(isolated(IsolationMode::BestEffort).sh(&connect).await);
    assert!(!out.contains("connected"), "{out}");
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    if support.namespaces || support.landlock_udp {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        udp.set_nonblocking(true).unwrap();
        let send = format!("echo datagram > /dev/udp/127.0.0.1/{port} && echo sent");
        assert!(ok(plain().sh(&send).await).starts_with("sent"));
        let mut buf = [0u8; 64];
        assert!(udp.recv(&mut buf).is_ok(), "control datagram missing");
        let out = err(isolated(IsolationMode::BestEffort).sh(&send).await);
        assert!(!out.contains("sent"), "{out}");
        assert_eq!(
            udp.recv(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        // Everything requested was applied: `required` runs the command.
        ok(isolated(IsolationMode::Required).sh("true").await);
    } else {
        let e = err(isolated(IsolationMode::Required).sh("true").await);
        assert!(e.contains("UDP is not blocked"), "{e}");
        println!("UDP stays open on this system: {e}");
    }
}

/// The unprivileged path: Landlock alone (no namespaces), as for a normal user.
#[tokio::test]
async fn sec_43_network_fails_with_landlock_alone() {
    let support = isolation_support();
    if !support.landlock_tcp {
        let e = err(isolated_ns(IsolationMode::Required, false).sh("true").await);
        assert!(
            e.contains("blocking the network needs Landlock ABI 4"),
            "{e}"
        );
        println!("UNSUPPORTED here: {e}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let connect = format!("echo hello > /dev/tcp/127.0.0.1/{port} && echo connected");
    assert!(ok(plain().sh(&connect).await).starts_with("connected"));
    listener
        .accept()
        .expect("the control connection should be pending");
    let out = err(isolated_ns(IsolationMode::BestEffort, false)
        .sh(&connect)
        .await);
    assert!(out.contains("Permission denied"), "{out}");
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    if !support.landlock_udp {
        // Best effort says what it could not do; required refuses to run.
        assert!(
            out.contains("[isolation not applied: UDP is not blocked"),
            "{out}"
        );
        let e = err(isolated_ns(IsolationMode::Required, false).sh("true").await);
        assert_eq!(
            e,
            "isolation is required but this system cannot provide it: UDP is not blocked: Landlock has UDP rules from ABI 10, and a network namespace needs root or user namespaces. Set isolation.mode to \"best-effort\" to run with what is available, or \"off\""
        );
    }
}

#[tokio::test]
async fn sec_44_writes_outside_the_workspace_fail_with_isolation_on() {
    let support = isolation_support();
    if !support.landlock_fs {
        let e = err(isolated(IsolationMode::Required).sh("true").await);
        assert!(e.contains("confining writes needs Landlock"), "{e}");
        println!("UNSUPPORTED here: {e}");
        return;
    }
    // Control: without isolation a command can write beside the workspace.
    let ws = plain();
    let target = ws.outside.join("control");
    ok(ws.sh(&format!("echo x > {}", target.display())).await);
    assert!(target.exists());

    let ws = isolated(IsolationMode::BestEffort);
    let outside = ws.outside.join("pwned");
    let in_tmp = std::env::temp_dir().join(format!("keel-isolation-probe-{}", std::process::id()));
    for cmd in [
        format!("echo x > {}", outside.display()),
        format!("touch {}", in_tmp.display()),
        format!("mkdir {}/d", ws.outside.display()),
        format!("ln -s /etc {}/l", ws.outside.display()),
    ] {
        let out = err(ws.sh(&cmd).await);
        assert!(out.contains("Permission denied"), "{cmd}: {out}");
    }
    assert!(!outside.exists() && !in_tmp.exists());
    assert_eq!(std::fs::read_dir(&ws.outside).unwrap().count(), 0);
    // Inside the workspace and in the private TMPDIR, writes work.
    let out = ok(ws
        .sh("echo in > inside.txt && echo t > \"$TMPDIR/t\" && cat \"$TMPDIR/t\" && echo $TMPDIR")
        .await);
    assert!(out.starts_with("t\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(ws.path("inside.txt")).unwrap(),
        "in\n"
    );
    let tmpdir = out.lines().nth(1).unwrap();
    assert!(tmpdir.contains("keel-exec-"), "{out}");
    assert!(
        !std::path::Path::new(tmpdir).exists(),
        "the private TMPDIR outlived the command"
    );
}
