//! Semantics of `read`, `write` and `edit`, with the exact text a model sees.

use std::os::unix::fs::PermissionsExt;

use keel_tools::{AllowRule, Approval, FileApproval, FormContext};
use serde_json::json;

use super::common::*;

fn files_ws() -> Ws {
    Ws::with(|c| c.file_approval = FileApproval::Never)
}

#[tokio::test]
async fn read_numbers_lines_and_windows() {
    let ws = files_ws();
    let text: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    ws.put("ten.txt", &text);
    let all = ok(ws.call("read", json!({"path": "ten.txt"})).await);
    assert!(all.starts_with("     1\tline 1\n     2\tline 2\n"));
    assert!(all.ends_with("    10\tline 10\n"));
    assert_eq!(
        ok(ws
            .call("read", json!({"path": "ten.txt", "offset": 4, "limit": 2}))
            .await),
        "     4\tline 4\n     5\tline 5\n\n(showing lines 4-5 of 10; the file goes on: read with offset=6 to continue)"
    );
    assert_eq!(
        ok(ws
            .call("read", json!({"path": "ten.txt", "offset": 9, "limit": 5}))
            .await),
        "     9\tline 9\n    10\tline 10\n"
    );
    // No trailing newline: the last line still counts.
    ws.put("nonl.txt", "a\nb");
    assert_eq!(
        ok(ws.call("read", json!({"path": "nonl.txt"})).await),
        "     1\ta\n     2\tb\n"
    );
}

#[tokio::test]
async fn read_default_limit_and_long_lines() {
    let ws = Ws::with(|c| {
        c.files.read_default_lines = 3;
        c.files.max_line_chars = 10;
    });
    ws.put("f.txt", "short\n0123456789abcdef\nthird\nfourth\n");
    assert_eq!(
        ok(ws.call("read", json!({"path": "f.txt"})).await),
        "     1\tshort\n     2\t0123456789… [line cut: 16 bytes in total]\n     3\tthird\n\n(showing lines 1-3 of 4; the file goes on: read with offset=4 to continue)"
    );
}

#[tokio::test]
async fn read_shows_text_for_crlf_bom_and_bad_utf8() {
    let ws = files_ws();
    ws.put("w.txt", b"\xEF\xBB\xBFhello\r\nbad \xFF byte\r\n");
    assert_eq!(
        ok(ws.call("read", json!({"path": "w.txt"})).await),
        "     1\thello\n     2\tbad \u{FFFD} byte\n"
    );
}

#[tokio::test]
async fn read_errors() {
    let ws = files_ws();
    std::fs::create_dir(ws.path("dir")).unwrap();
    assert_eq!(
        err(ws.call("read", json!({"path": "nope.txt"})).await),
        "`nope.txt` does not exist"
    );
    assert_eq!(
        err(ws.call("read", json!({"path": "dir"})).await),
        "`dir` is a directory, not a file (use `glob` to list its files)"
    );
    assert_eq!(
        err(ws.call("read", json!({})).await),
        "invalid arguments for `read`: missing required field `path`"
    );
    assert_eq!(
        err(ws.call("read", json!({"path": "a", "lines": 3})).await),
        "invalid arguments for `read`: unknown field `lines`; the fields are `limit`, `offset`, `path`"
    );
    assert_eq!(
        err(ws.call("read", json!({"path": ""})).await),
        "invalid arguments for `read`: `path` must not be empty"
    );
}

#[tokio::test]
async fn write_creates_parents_atomically_and_keeps_modes() {
    let ws = files_ws();
    assert_eq!(
        ok(ws
            .call(
                "write",
                json!({"path": "src/deep/new.txt", "content": "hello"})
            )
            .await),
        "Wrote 5 bytes to `src/deep/new.txt` (created)."
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("src/deep/new.txt")).unwrap(),
        "hello"
    );
    let script = ws.put("run.sh", "#!/bin/sh\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        ok(ws
            .call(
                "write",
                json!({"path": "run.sh", "content": "#!/bin/sh\necho hi\n"})
            )
            .await),
        "Wrote 18 bytes to `run.sh` (replaced)."
    );
    let mode = std::fs::metadata(&script).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&ws.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("keel-")), "{names:?}");
    // A write makes the file known to `edit` in this run.
    ok(ws
        .call(
            "edit",
            json!({"path": "run.sh", "old_string": "hi", "new_string": "ho"}),
        )
        .await);
}

#[tokio::test]
async fn write_size_limit() {
    let ws = Ws::with(|c| {
        c.file_approval = FileApproval::Never;
        c.files.max_file_bytes = 10;
    });
    assert_eq!(
        err(ws
            .call("write", json!({"path": "f", "content": "01234567890"}))
            .await),
        "the content is 11 bytes; `write` takes at most 10 bytes"
    );
}

#[test]
fn write_approval_form() {
    let ws = Ws::new();
    ws.put("old.js", "x");
    let form = needed(ws.approval(
        "write",
        json!({"path": "hello.js", "content": "console.log(1);\n"}),
    ));
    assert_eq!(form.title, "WRITE APPROVAL REQUIRED");
    assert_eq!(form.tool, "write");
    assert_eq!(
        form.context,
        FormContext::Write {
            path: ws.path("hello.js").display().to_string(),
            content: "console.log(1);\n".into(),
            overwrites: false,
        }
    );
    let form = needed(ws.approval("write", json!({"path": "old.js", "content": "y"})));
    assert!(matches!(
        form.context,
        FormContext::Write {
            overwrites: true,
            ..
        }
    ));
    // Very long content is cut for display; the digest covers all of it.
    let big = "z".repeat(30_000);
    let form = needed(ws.approval("write", json!({"path": "big", "content": big})));
    let FormContext::Write { content, .. } = form.context else {
        panic!()
    };
    assert!(
        content.ends_with("\n[... 10000 more bytes not shown]"),
        "{}",
        &content[content.len() - 60..]
    );
    // "Always" for a write covers later writes in the run.
    let rule = ws
        .reg
        .get("write")
        .unwrap()
        .always_rule_json(&json!({"path": "a", "content": ""}))
        .unwrap();
    assert_eq!(
        rule,
        AllowRule::Tool {
            tool: "write".into()
        }
    );
    assert_eq!(
        ws.approval_with("write", json!({"path": "b", "content": "x"}), &[rule]),
        Approval::NotNeeded
    );
    // With file approval off, no form at all (but refusals stay).
    let free = files_ws();
    assert_eq!(
        free.approval("write", json!({"path": "a", "content": ""})),
        Approval::NotNeeded
    );
    refused(free.approval("write", json!({"path": "/etc/x", "content": ""})));
}

#[test]
fn edit_approval_shows_a_unified_diff() {
    let ws = Ws::new();
    ws.put("src/lib.rs", "fn a() {}\nfn b() {}\nfn c() {}\n");
    let form = needed(ws.approval(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "fn b() {}", "new_string": "fn b() { todo() }"}),
    ));
    assert_eq!(form.title, "EDIT APPROVAL REQUIRED");
    assert_eq!(
        form.context,
        FormContext::Edit {
            path: ws.path("src/lib.rs").display().to_string(),
            diff: "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,3 @@\n fn a() {}\n-fn b() {}\n+fn b() { todo() }\n fn c() {}\n".into(),
        }
    );
    // An edit that cannot apply is refused before anyone is asked.
    assert_eq!(
        refused(ws.approval(
            "edit",
            json!({"path": "src/lib.rs", "old_string": "fn z", "new_string": "x"})
        )),
        "`old_string` was not found in `src/lib.rs`. It must match the file exactly, including whitespace and indentation; read the file again and copy the text exactly"
    );
    assert_eq!(
        refused(ws.approval(
            "edit",
            json!({"path": "missing.rs", "old_string": "a", "new_string": "b"})
        )),
        "`missing.rs` does not exist; use `write` to create it"
    );
}

#[tokio::test]
async fn edit_reports_where_it_changed() {
    let ws = files_ws();
    ws.put("f.txt", "a\nb\nc\n");
    ok(ws.call("read", json!({"path": "f.txt"})).await);
    assert_eq!(
        ok(ws
            .call(
                "edit",
                json!({"path": "f.txt", "old_string": "b\n", "new_string": "B1\nB2\n"})
            )
            .await),
        "Edited `f.txt`: replaced 1 occurrence. The first replacement is at lines 2-3."
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("f.txt")).unwrap(),
        "a\nB1\nB2\nc\n"
    );
    // Edits chain without re-reading: the tracker knows the agent's own write.
    ok(ws
        .call(
            "edit",
            json!({"path": "f.txt", "old_string": "c", "new_string": "C"}),
        )
        .await);
}
