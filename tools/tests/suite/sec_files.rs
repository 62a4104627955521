//! SECURITY.md checklist, glob/grep/read/write/edit: items 15–27.

use std::io::Write;
use std::os::unix::fs::symlink;

use serde_json::json;

use super::common::*;

fn files_ws() -> Ws {
    Ws::with(|c| c.file_approval = keel_tools::FileApproval::Never)
}

#[tokio::test]
async fn sec_15_glob_pattern_is_never_a_shell() {
    let ws = files_ws();
    let pwn = ws.outside.join("pwn");
    let pattern = format!("'; touch {}; '", pwn.display());
    let out = ok(ws.call("glob", json!({ "pattern": pattern })).await);
    assert!(out.starts_with("No files match"), "{out}");
    let out = ok(ws
        .call("grep", json!({"pattern": "x", "glob": pattern}))
        .await);
    assert!(out.starts_with("No matches"), "{out}");
    assert!(!exists(&pwn));
    // The pattern is matched literally: a file with that very name is found.
    let literal = "$(touch pwn)";
    ws.put(literal, "x");
    let out = ok(ws.call("glob", json!({"pattern": "$(touch*"})).await);
    assert_eq!(out, literal);
    assert!(!exists(&ws.path("pwn")));
}

#[tokio::test]
async fn sec_16_grep_pattern_is_never_an_option() {
    let ws = files_ws();
    ws.put("a.txt", "use --pre=sh to preprocess\n");
    ws.put("b.txt", "flag -f/etc/passwd here\n");
    let out = ok(ws
        .call(
            "grep",
            json!({"pattern": "--pre=sh", "output_mode": "content"}),
        )
        .await);
    assert_eq!(out, "a.txt:1:use --pre=sh to preprocess");
    let out = ok(ws
        .call(
            "grep",
            json!({"pattern": "-f/etc/passwd", "output_mode": "content"}),
        )
        .await);
    assert_eq!(out, "b.txt:1:flag -f/etc/passwd here");
    assert!(!out.contains("root:"));
}

#[tokio::test]
async fn sec_17_symlink_loops_and_huge_trees_are_capped() {
    let ws = Ws::with(|c| {
        c.files.max_walk_entries = 1_000;
    });
    std::fs::create_dir(ws.path("a")).unwrap();
    symlink("..", ws.path("a/up")).unwrap();
    symlink(".", ws.path("self")).unwrap();
    symlink("loop2", ws.path("loop1")).unwrap();
    symlink("loop1", ws.path("loop2")).unwrap();
    ws.put("a/x.txt", "needle\n");
    let out = ok(ws.call("glob", json!({"pattern": "**/*.txt"})).await);
    assert_eq!(out, "a/x.txt");
    let out = ok(ws.call("grep", json!({"pattern": "needle"})).await);
    assert_eq!(out, "Found 1 files\na/x.txt");
    err(ws.call("read", json!({"path": "loop1"})).await);
    // A tree larger than the walk budget: stopped, flagged, capped.
    for i in 0..3_000 {
        std::fs::write(ws.path(&format!("f{i:04}.txt")), "needle\n").unwrap();
    }
    let out = ok(ws.call("glob", json!({"pattern": "*.txt"})).await);
    assert_eq!(out.lines().filter(|l| l.ends_with(".txt")).count(), 100);
    assert!(
        out.contains("(results truncated: showing the 100 most recently modified of"),
        "{out}"
    );
    assert!(
        out.contains("(the search stopped early because it visited the limit of 1000 directory entries; results are incomplete)"),
        "{out}"
    );
    let out = ok(ws
        .call("grep", json!({"pattern": "needle", "limit": 5}))
        .await);
    assert!(out.contains("(results truncated: showing 5 of"), "{out}");
    assert!(out.contains("stopped early"), "{out}");
}

#[tokio::test]
async fn sec_18_special_and_huge_files() {
    let ws = files_ws();
    err(ws.call("read", json!({"path": "/dev/zero"})).await);
    symlink("/dev/zero", ws.path("zero")).unwrap();
    assert!(err(ws.call("read", json!({"path": "zero"})).await).contains("outside the workspace"));
    // A FIFO with no writer would block a plain open; it is refused at once.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        ws.path("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    assert_eq!(
        err(ws.call("read", json!({"path": "fifo"})).await),
        "`fifo` is a named pipe (FIFO), not a regular file; refused"
    );
    err(ws
        .call("write", json!({"path": "fifo", "content": "x"}))
        .await);
    let g = ok(ws.call("grep", json!({"pattern": "x"})).await);
    assert!(g.starts_with("No matches"), "{g}");
    // A 2 GiB file (sparse after a text start): only the window is read.
    let big = ws.path("big.log");
    let mut f = std::fs::File::create(&big).unwrap();
    for i in 0..5_000 {
        writeln!(f, "line {i}").unwrap();
    }
    f.set_len(2 * 1024 * 1024 * 1024).unwrap();
    let out = ok(ws
        .call("read", json!({"path": "big.log", "limit": 3}))
        .await);
    assert_eq!(
        out,
        "     1\tline 0\n     2\tline 1\n     3\tline 2\n\n(showing lines 1-3; the file goes on: read with offset=4 to continue)"
    );
    let out = ok(ws.call("read", json!({"path": "big.log"})).await);
    assert!(out.len() < 64 * 1024, "{}", out.len());
    assert!(out.contains("  2000\tline 1999\n"));
    // Too large to edit.
    let e = err(ws
        .call(
            "edit",
            json!({"path": "big.log", "old_string": "line 1", "new_string": "x"}),
        )
        .await);
    assert!(e.contains("`edit` changes files of at most"), "{e}");
}

#[tokio::test]
async fn sec_19_nul_in_the_first_8k_is_binary() {
    let ws = files_ws();
    let mut bytes = b"needle in a binary\n".to_vec();
    bytes.push(0);
    bytes.extend_from_slice(b"more\n");
    ws.put("bin.dat", &bytes);
    assert_eq!(
        err(ws.call("read", json!({"path": "bin.dat"})).await),
        format!(
            "`bin.dat` is a binary file ({} bytes); `read` shows text files only",
            bytes.len()
        )
    );
    ws.put("text.txt", "needle in text\n");
    let out = ok(ws.call("grep", json!({"pattern": "needle"})).await);
    assert_eq!(out, "Found 1 files\ntext.txt");
}

#[tokio::test]
async fn sec_20_offset_and_limit_errors() {
    let ws = files_ws();
    ws.put("three.txt", "a\nb\nc\n");
    assert_eq!(
        err(ws
            .call("read", json!({"path": "three.txt", "offset": 0}))
            .await),
        "invalid arguments for `read`: `offset` must be at least 1, got 0"
    );
    assert_eq!(
        err(ws
            .call("read", json!({"path": "three.txt", "offset": 4}))
            .await),
        "`offset` 4 is past the end of `three.txt`, which has 3 lines"
    );
    assert_eq!(
        err(ws
            .call("read", json!({"path": "three.txt", "limit": 0}))
            .await),
        "invalid arguments for `read`: `limit` must be at least 1, got 0"
    );
    assert_eq!(
        err(ws
            .call("read", json!({"path": "three.txt", "offset": "2"}))
            .await),
        "invalid arguments for `read`: `offset` must be an integer, got a string (\"2\")"
    );
    // The last line, and an empty file, are not errors.
    assert_eq!(
        ok(ws
            .call("read", json!({"path": "three.txt", "offset": 3}))
            .await),
        "     3\tc\n"
    );
    ws.put("empty.txt", "");
    assert_eq!(
        ok(ws.call("read", json!({"path": "empty.txt"})).await),
        "(`empty.txt` is empty)"
    );
}

#[tokio::test]
async fn sec_21_a_single_10mb_line_is_cut() {
    let ws = files_ws();
    let line = "x".repeat(10 * 1024 * 1024);
    ws.put("one.txt", format!("{line}\nshort\n"));
    let out = ok(ws.call("read", json!({"path": "one.txt"})).await);
    assert!(out.len() < 4 * 1024, "{}", out.len());
    assert!(
        out.contains("… [line cut: 10485760 bytes in total]\n     2\tshort"),
        "{}",
        &out[out.len() - 100..]
    );
    let out = ok(ws
        .call("grep", json!({"pattern": "x+", "output_mode": "content"}))
        .await);
    assert!(out.len() < 4 * 1024 && out.ends_with("… [line cut: 10485760 bytes in total]"));
}

#[tokio::test]
async fn sec_22_bytes_outside_the_edit_are_preserved() {
    let ws = files_ws();
    let mut original = b"\xEF\xBB\xBFfirst\r\n\tindented\tline\r\n".to_vec();
    original.extend_from_slice(b"bad \xFF\xFE bytes\r\nlast");
    ws.put("f.txt", &original);
    let read = ok(ws.call("read", json!({"path": "f.txt"})).await);
    assert!(
        read.starts_with("     1\tfirst\n     2\t\tindented\tline\n     3\tbad"),
        "{read}"
    );
    ok(ws.call("edit", json!({"path": "f.txt", "old_string": "\tindented\tline", "new_string": "\tchanged\tline"})).await);
    let mut expected = b"\xEF\xBB\xBFfirst\r\n\tchanged\tline\r\n".to_vec();
    expected.extend_from_slice(b"bad \xFF\xFE bytes\r\nlast");
    assert_eq!(std::fs::read(ws.path("f.txt")).unwrap(), expected);
    // Models write LF; the file's CRLF is matched and kept.
    let out = ok(ws
        .call("edit", json!({"path": "f.txt", "old_string": "first\n\tchanged", "new_string": "FIRST\n\tchanged"}))
        .await);
    assert!(out.contains("CRLF"), "{out}");
    let mut expected = b"\xEF\xBB\xBFFIRST\r\n\tchanged\tline\r\n".to_vec();
    expected.extend_from_slice(b"bad \xFF\xFE bytes\r\nlast");
    assert_eq!(std::fs::read(ws.path("f.txt")).unwrap(), expected);
}

#[tokio::test]
async fn sec_23_several_matches_need_replace_all() {
    let ws = files_ws();
    ws.put("f.txt", "x = 1\nx = 1\n");
    ok(ws.call("read", json!({"path": "f.txt"})).await);
    let args = json!({"path": "f.txt", "old_string": "x = 1", "new_string": "y = 2"});
    assert_eq!(
        err(ws.call("edit", args).await),
        "`old_string` occurs 2 times in `f.txt`; add surrounding lines to make it unique, or set `replace_all` to true to replace all 2"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("f.txt")).unwrap(),
        "x = 1\nx = 1\n"
    );
    let out = ok(ws
        .call("edit", json!({"path": "f.txt", "old_string": "x = 1", "new_string": "y = 2", "replace_all": true}))
        .await);
    assert_eq!(
        out,
        "Edited `f.txt`: replaced 2 occurrences. The first replacement is at line 1."
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("f.txt")).unwrap(),
        "y = 2\ny = 2\n"
    );
}

#[tokio::test]
async fn sec_24_empty_or_unchanged_old_string() {
    let ws = files_ws();
    ws.put("f.txt", "a\n");
    ok(ws.call("read", json!({"path": "f.txt"})).await);
    assert_eq!(
        err(ws
            .call(
                "edit",
                json!({"path": "f.txt", "old_string": "", "new_string": "b"})
            )
            .await),
        "`old_string` is empty; to create a file or replace all of it, use `write`"
    );
    assert_eq!(
        err(ws
            .call(
                "edit",
                json!({"path": "f.txt", "old_string": "a", "new_string": "a"})
            )
            .await),
        "`old_string` and `new_string` are the same; there is nothing to change"
    );
    assert_eq!(
        err(ws
            .call(
                "edit",
                json!({"path": "f.txt", "old_string": "zzz", "new_string": "b"})
            )
            .await),
        "`old_string` was not found in `f.txt`. It must match the file exactly, including whitespace and indentation; read the file again and copy the text exactly"
    );
}

#[tokio::test]
async fn sec_25_replacement_is_literal() {
    let ws = files_ws();
    ws.put("f.txt", "name = NAME\n");
    ok(ws.call("read", json!({"path": "f.txt"})).await);
    ok(ws
        .call(
            "edit",
            json!({"path": "f.txt", "old_string": "NAME", "new_string": "$& $1 \\1 ${x} $0"}),
        )
        .await);
    assert_eq!(
        std::fs::read_to_string(ws.path("f.txt")).unwrap(),
        "name = $& $1 \\1 ${x} $0\n"
    );
}

#[tokio::test]
async fn sec_26_file_changed_since_it_was_read() {
    let ws = files_ws();
    ws.put("f.txt", "v1\n");
    let args = json!({"path": "f.txt", "old_string": "v1", "new_string": "mine"});
    assert_eq!(
        err(ws.call("edit", args.clone()).await),
        "`f.txt` has not been read in this run; read it first, then edit it"
    );
    ok(ws.call("read", json!({"path": "f.txt"})).await);
    std::fs::write(ws.path("f.txt"), "v1 changed by someone else\n").unwrap();
    assert_eq!(
        err(ws.call("edit", args.clone()).await),
        "`f.txt` changed on disk since it was last read; read it again before editing it"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("f.txt")).unwrap(),
        "v1 changed by someone else\n"
    );
    // Another run has its own view.
    ok(ws.call("read", json!({"path": "f.txt"})).await);
    err(ws.call_in("run-2", "edit", args.clone()).await);
    ok(ws.call("edit", args).await);
    assert_eq!(
        std::fs::read_to_string(ws.path("f.txt")).unwrap(),
        "mine changed by someone else\n"
    );
}

#[tokio::test]
async fn sec_27_write_to_a_directory() {
    let ws = files_ws();
    std::fs::create_dir(ws.path("dir")).unwrap();
    for path in ["dir", "dir/", "."] {
        let e = err(ws
            .call("write", json!({"path": path, "content": "x"}))
            .await);
        assert!(e.contains("is a directory"), "{path}: {e}");
    }
    assert!(ws.path("dir").is_dir());
}
