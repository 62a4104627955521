//! `grep` and `glob` against ripgrep, side by side in one run on one tree.
//!
//! Run: `cargo bench -p keel-tools --bench search_vs_rg` (needs `rg` on PATH:
//! `apt-get install -y ripgrep`). The tree is built once, under
//! `$KEEL_BENCH_TREE` (default `/tmp/keel-bench-tree`): three copies of the cargo
//! registry sources on this machine (`~/.cargo/registry/src/*`, real Rust code) plus
//! generated text files, until it holds at least 50,000 files. Delete the directory
//! to rebuild it.
//!
//! Each case runs once to warm the page cache, then `RUNS` times alternating Keel
//! and ripgrep, and reports the median and the fastest run of each and the ratio of
//! the medians. Both sides are asked the same question: hidden files included,
//! `.gitignore` files honoured outside git repositories (`rg --hidden
//! --no-require-git`), binary files skipped, symlinks not followed; ripgrep's
//! output is read through a pipe as Keel's is returned as a string. Keel's `glob`
//! also stats every match (it sorts by modification time) and ripgrep's does not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keel_tools::{CallContext, ExecSecurity, SandboxConfig, SandboxTools, ToolRegistry};
use serde_json::{Value, json};

const RUNS: usize = 7;
const MIN_FILES: usize = 50_000;

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                n += 1;
            }
        }
    }
    n
}

fn copy_tree(from: &Path, to: &Path) -> usize {
    let mut n = 0;
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let ft = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            n += copy_tree(&e.path(), &dest);
        } else if ft.is_file() && std::fs::copy(e.path(), &dest).is_ok() {
            n += 1;
        }
    }
    n
}

/// Deterministic filler text with some words the searches look for.
fn generated(i: usize) -> String {
    const WORDS: &[&str] = &[
        "alpha", "beta", "gamma", "delta", "config", "parse", "error", "value", "buffer", "stream",
        "index", "token", "unsafe", "handle", "result", "window",
    ];
    let mut out = String::new();
    let mut x = i as u64 * 2_654_435_761 + 1;
    for line in 0..40 {
        for _ in 0..10 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
            out.push(' ');
        }
        if line % 7 == 0 {
            out.push_str(&format!("ParseError{} at line {line}", x % 100));
        }
        out.push('\n');
    }
    out
}

fn build_tree(root: &Path) -> usize {
    if root.join(".complete").exists() {
        return count_files(root);
    }
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).unwrap();
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let registries: Vec<PathBuf> = std::fs::read_dir(home.join(".cargo/registry/src"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    let mut n = 0;
    for copy in 0..3 {
        for (i, reg) in registries.iter().enumerate() {
            n += copy_tree(reg, &root.join(format!("copy{copy}/reg{i}")));
        }
    }
    let mut i = 0;
    while n < MIN_FILES {
        let dir = root.join(format!("generated/d{:03}/e{:02}", i / 1000, (i / 50) % 20));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}.txt")), generated(i)).unwrap();
        n += 1;
        i += 1;
    }
    std::fs::write(root.join(".complete"), "").unwrap();
    count_files(root)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Case {
    name: &'static str,
    tool: &'static str,
    args: Value,
    rg: Vec<String>,
}

async fn keel(reg: &ToolRegistry, tool: &str, args: &Value) -> (Duration, String) {
    let start = Instant::now();
    let out = reg
        .get(tool)
        .unwrap()
        .call_json(args.clone(), CallContext::detached())
        .await;
    let took = start.elapsed();
    assert!(!out.is_error, "{}", out.content);
    (took, out.content)
}

fn ripgrep(args: &[String], dir: &Path) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let out = Command::new("rg")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{out:?}"
    );
    (took, out.stdout)
}

fn first_line_count(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::main]
async fn main() {
    if Command::new("rg").arg("--version").output().is_err() {
        println!("ripgrep (`rg`) is not installed: apt-get install -y ripgrep");
        return;
    }
    let root = std::env::var_os("KEEL_BENCH_TREE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/keel-bench-tree"));
    let files = build_tree(&root);
    let rg_version =
        String::from_utf8_lossy(&Command::new("rg").arg("--version").output().unwrap().stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
    println!(
        "tree: {} ({files} files), {rg_version}, {RUNS} runs each, medians",
        root.display()
    );

    let mut config = SandboxConfig::default();
    config.local.cwd = root.clone();
    config.exec.security = ExecSecurity::ApprovalAlways;
    config.files.search_max_limit = 10_000_000;
    config.files.search_max_output_bytes = 1 << 30;
    config.files.max_walk_entries = u64::MAX;
    config.files.search_timeout_secs = 3600;
    let reg = SandboxTools::new(config).unwrap().registry();

    let common = ["--hidden", "--no-require-git", "--no-messages"].map(String::from);
    let rg = |extra: &[&str]| -> Vec<String> {
        common
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    let cases = vec![
        Case {
            name: "grep literal, files with matches",
            tool: "grep",
            args: json!({"pattern": "unsafe", "limit": 10_000_000}),
            rg: rg(&["-l", "unsafe"]),
        },
        Case {
            name: "grep literal, content with line numbers",
            tool: "grep",
            args: json!({"pattern": "unsafe", "output_mode": "content", "limit": 10_000_000}),
            rg: rg(&["-n", "unsafe"]),
        },
        Case {
            name: "grep regex, content with line numbers",
            tool: "grep",
            args: json!({"pattern": "[A-Z][a-z]+Error[0-9]*", "output_mode": "content", "limit": 10_000_000}),
            rg: rg(&["-n", "[A-Z][a-z]+Error[0-9]*"]),
        },
        Case {
            name: "grep regex, files with matches",
            tool: "grep",
            args: json!({"pattern": "fn\\s+\\w+_test\\b", "limit": 10_000_000}),
            rg: rg(&["-l", "fn\\s+\\w+_test\\b"]),
        },
        Case {
            name: "glob **/*.rs vs rg --files -g '*.rs'",
            tool: "glob",
            args: json!({"pattern": "**/*.rs"}),
            rg: rg(&["--files", "-g", "*.rs"]),
        },
        Case {
            name: "glob **/*.rs, every match (no cap)",
            tool: "glob",
            args: json!({"pattern": "**/*.rs", "limit": 10_000_000}),
            rg: rg(&["--files", "-g", "*.rs"]),
        },
    ];

    println!(
        "{:<42} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "case", "keel", "keel min", "rg", "rg min", "ratio"
    );
    for case in &cases {
        // Warm up, and check both sides found the same amount.
        let (_, keel_out) = keel(&reg, case.tool, &case.args).await;
        let (_, rg_out) = ripgrep(&case.rg, &root);
        let rg_lines = rg_out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        let mut keel_times = Vec::new();
        let mut rg_times = Vec::new();
        for _ in 0..RUNS {
            keel_times.push(keel(&reg, case.tool, &case.args).await.0);
            rg_times.push(ripgrep(&case.rg, &root).0);
        }
        let (k, r) = (median(keel_times.clone()), median(rg_times.clone()));
        println!(
            "{:<42} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>6.2}x",
            case.name,
            k.as_secs_f64() * 1e3,
            keel_times.iter().min().unwrap().as_secs_f64() * 1e3,
            r.as_secs_f64() * 1e3,
            rg_times.iter().min().unwrap().as_secs_f64() * 1e3,
            k.as_secs_f64() / r.as_secs_f64()
        );
        println!(
            "    keel: {} lines (first: {:?}) | rg: {rg_lines} lines",
            keel_out.lines().count(),
            first_line_count(&keel_out)
        );
    }
}
