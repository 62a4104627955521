//! Semantics of `glob` and `grep`, with the exact text a model sees.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::common::*;

fn set_mtime(ws: &Ws, rel: &str, secs_ago: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(ws.path(rel))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

fn tree() -> Ws {
    let ws = Ws::new();
    ws.put("src/main.rs", "fn main() {\n    println!(\"Hello\");\n}\n");
    ws.put(
        "src/lib.rs",
        "pub fn hello() -> &'static str {\n    \"hello\"\n}\n// TODO: more\n",
    );
    ws.put(
        "src/util/mod.rs",
        "// helpers\npub fn add(a: i32, b: i32) -> i32 { a + b }\n",
    );
    ws.put("README.md", "# Hello\nA project.\n");
    ws.put(".github/workflows/ci.yml", "name: ci # hello\n");
    ws.put(".gitignore", "target/\n*.log\n");
    ws.put("target/debug/out.rs", "fn hello() {}\n");
    ws.put("debug.log", "hello from the log\n");
    ws.put(".git/config", "[core] hello\n");
    set_mtime(&ws, "src/main.rs", 300);
    set_mtime(&ws, "src/lib.rs", 100);
    set_mtime(&ws, "src/util/mod.rs", 200);
    ws
}

#[tokio::test]
async fn glob_star_stays_in_one_directory_and_double_star_crosses() {
    let ws = tree();
    assert_eq!(
        ok(ws.call("glob", json!({"pattern": "**/*.rs"})).await),
        "src/lib.rs\nsrc/util/mod.rs\nsrc/main.rs"
    );
    assert_eq!(
        ok(ws.call("glob", json!({"pattern": "src/*.rs"})).await),
        "src/lib.rs\nsrc/main.rs"
    );
    assert_eq!(
        ok(ws.call("glob", json!({"pattern": "*.rs"})).await),
        "No files match `*.rs` in `.`."
    );
    assert_eq!(
        ok(ws
            .call("glob", json!({"pattern": "*.rs", "path": "src"}))
            .await),
        "src/lib.rs\nsrc/main.rs"
    );
    assert_eq!(
        ok(ws.call("glob", json!({"pattern": "**/*.{yml,md}"})).await)
            .lines()
            .count(),
        2
    );
}

#[tokio::test]
async fn glob_respects_gitignore_and_skips_git() {
    let ws = tree();
    let all = ok(ws.call("glob", json!({"pattern": "**/*"})).await);
    assert!(
        all.contains(".github/workflows/ci.yml"),
        "hidden files are listed: {all}"
    );
    assert!(!all.contains("target/"), "{all}");
    assert!(!all.contains("debug.log"), "{all}");
    assert!(!all.contains(".git/config"), "{all}");
}

#[tokio::test]
async fn glob_limit_and_errors() {
    let ws = tree();
    assert_eq!(
        ok(ws
            .call("glob", json!({"pattern": "**/*.rs", "limit": 1}))
            .await),
        "src/lib.rs\n(results truncated: showing the 1 most recently modified of 3 matches; narrow the pattern or `path`, or raise `limit`)"
    );
    assert_eq!(
        err(ws.call("glob", json!({"pattern": "/etc/*"})).await),
        "the pattern `/etc/*` is absolute; give a pattern relative to `path` (e.g. `**/*.rs`) and the directory in `path`"
    );
    assert_eq!(
        err(ws.call("glob", json!({"pattern": "../*"})).await),
        "the pattern `../*` contains `..`; put the directory in `path` instead"
    );
    assert_eq!(
        err(ws.call("glob", json!({"pattern": "src/[a"})).await),
        "invalid glob pattern `src/[a`: unclosed character class; missing ']'"
    );
    assert_eq!(
        err(ws
            .call("glob", json!({"pattern": "*", "path": "src/main.rs"}))
            .await),
        "`src/main.rs` is not a directory"
    );
    assert_eq!(
        err(ws.call("glob", json!({"pattern": "*", "limit": 0})).await),
        "invalid arguments for `glob`: `limit` must be at least 1, got 0"
    );
}

#[tokio::test]
async fn grep_modes() {
    let ws = tree();
    assert_eq!(
        ok(ws
            .call(
                "grep",
                json!({"pattern": "hello", "case_insensitive": true})
            )
            .await),
        "Found 4 files\n.github/workflows/ci.yml\nREADME.md\nsrc/lib.rs\nsrc/main.rs"
    );
    assert_eq!(
        ok(ws
            .call(
                "grep",
                json!({"pattern": "hello", "output_mode": "content"})
            )
            .await),
        ".github/workflows/ci.yml:1:name: ci # hello\nsrc/lib.rs:1:pub fn hello() -> &'static str {\nsrc/lib.rs:2:    \"hello\""
    );
    assert_eq!(
        ok(ws
            .call("grep", json!({"pattern": "fn", "output_mode": "count"}))
            .await),
        "src/lib.rs:1\nsrc/main.rs:1\nsrc/util/mod.rs:1\nFound 3 matching lines in 3 files."
    );
}

#[tokio::test]
async fn grep_context_lines() {
    let ws = Ws::new();
    ws.put("f.txt", "1\n2\nmatch a\n4\n5\n6\n7\nmatch b\n9\n");
    assert_eq!(
        ok(ws
            .call(
                "grep",
                json!({"pattern": "match", "output_mode": "content", "context": 1})
            )
            .await),
        "f.txt-2-2\nf.txt:3:match a\nf.txt-4-4\n--\nf.txt-7-7\nf.txt:8:match b\nf.txt-9-9"
    );
}

#[tokio::test]
async fn grep_filters_and_paths() {
    let ws = tree();
    assert_eq!(
        ok(ws
            .call("grep", json!({"pattern": "fn", "glob": "mod.rs"}))
            .await),
        "Found 1 files\nsrc/util/mod.rs"
    );
    assert_eq!(
        ok(ws
            .call(
                "grep",
                json!({"pattern": "TODO", "path": "src/lib.rs", "output_mode": "content"})
            )
            .await),
        "src/lib.rs:4:// TODO: more"
    );
    assert_eq!(
        ok(ws
            .call("grep", json!({"pattern": "fn hello", "path": "src"}))
            .await),
        "Found 1 files\nsrc/lib.rs"
    );
    // Ignored files and .git are not searched.
    let out = ok(ws
        .call(
            "grep",
            json!({"pattern": "hello", "case_insensitive": true}),
        )
        .await);
    assert!(
        !out.contains("target/") && !out.contains("debug.log") && !out.contains(".git/"),
        "{out}"
    );
    assert_eq!(
        ok(ws.call("grep", json!({"pattern": "zzz"})).await),
        "No matches for `zzz`."
    );
}

#[tokio::test]
async fn grep_limit_and_errors() {
    let ws = Ws::new();
    for i in 0..5 {
        ws.put(&format!("f{i}.txt"), "hit\nhit\n");
    }
    assert_eq!(
        ok(ws.call("grep", json!({"pattern": "hit", "limit": 2})).await),
        "Found 5 files\nf0.txt\nf1.txt\n(results truncated: showing 2 of 5 files, sorted by path; narrow the search with `path` or `glob`, or raise `limit`)"
    );
    assert_eq!(
        ok(ws
            .call(
                "grep",
                json!({"pattern": "hit", "limit": 3, "output_mode": "content"})
            )
            .await),
        "f0.txt:1:hit\nf0.txt:2:hit\nf1.txt:1:hit\n(results truncated: showing 3 of 10 matching lines, sorted by path; narrow the search with `path` or `glob`, or raise `limit`)"
    );
    // Context lines do not count toward the limit.
    ws.put("g/a.txt", "x\nhit\ny\n");
    ws.put("g/b.txt", "hit\n");
    assert_eq!(
        ok(ws.call("grep", json!({"pattern": "hit", "path": "g", "limit": 2, "output_mode": "content", "context": 1})).await),
        "g/a.txt-1-x\ng/a.txt:2:hit\ng/a.txt-3-y\n--\ng/b.txt:1:hit"
    );
    assert_eq!(
        ok(ws
            .call(
                "grep",
                json!({"pattern": "hit", "limit": 3, "output_mode": "content", "context": 1})
            )
            .await),
        "f0.txt:1:hit\nf0.txt:2:hit\n--\nf1.txt:1:hit\n(results truncated: showing 3 of 12 matching lines, sorted by path; narrow the search with `path` or `glob`, or raise `limit`)"
    );
    let e = err(ws.call("grep", json!({"pattern": "fn("})).await);
    assert!(e.starts_with("invalid regex `fn(`: "), "{e}");
    assert!(e.ends_with("(the pattern is Rust regex syntax; escape characters such as `(`, `[`, `{`, `.` or `*` with `\\` to match them literally)"), "{e}");
    assert_eq!(
        err(ws
            .call("grep", json!({"pattern": "x", "output_mode": "lines"}))
            .await),
        "invalid arguments for `grep`: `output_mode` must be one of \"files_with_matches\", \"content\", \"count\", got \"lines\""
    );
    assert_eq!(
        err(ws.call("grep", json!({"pattern": "x", "glob": "{a"})).await),
        "invalid glob `{a`: error parsing glob '{a': unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)"
    );
}
