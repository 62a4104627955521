//! Runs every committed fuzz corpus file through its target's body, on the stable
//! toolchain: the bodies (`fuzz/bodies/`) keep compiling, and every input the fuzzers
//! kept (crashes that were fixed included) keeps passing.
//!
//! `write_seeds` (ignored) writes the hand-made seed inputs into `fuzz/corpus/`; it
//! was run once to start the corpora:
//! `KEEL_WRITE_FUZZ_SEEDS=1 cargo test -p keel --test fuzz_corpus -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/bodies/mod.rs"]
mod bodies;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn run_all(target: &str, body: impl Fn(&[u8])) {
    let files = corpus(target);
    assert!(
        files.len() >= 5,
        "the `{target}` corpus has {} files",
        files.len()
    );
    for (path, bytes) in &files {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(bytes)));
        assert!(
            result.is_ok(),
            "{} failed its target's properties",
            path.display()
        );
    }
}

#[test]
fn every_target_has_a_corpus_folder() {
    for target in bodies::TARGETS {
        assert!(!corpus(target).is_empty(), "{target}");
    }
}

#[test]
fn decode_corpus() {
    run_all("decode", bodies::decode::run);
}

/// The seeds are real records of every kind, written by Keel (format 1 by round 1,
/// `seed-v2-*` in format 2): each must still decode and round-trip. The fuzzers'
/// own finds (hash-named) need only keep the properties.
#[test]
fn decode_seeds_are_valid_records_of_each_format() {
    let seeds: Vec<_> = corpus("decode")
        .into_iter()
        .filter(|(path, _)| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        })
        .collect();
    let count = |format: u8| {
        seeds
            .iter()
            .filter(|(_, b)| b.first() == Some(&format))
            .count()
    };
    assert!(
        count(1) >= 28 && count(2) >= 28,
        "{} format-1 and {} format-2 seeds",
        count(1),
        count(2)
    );
    let mut broken = Vec::new();
    for (path, bytes) in &seeds {
        if std::panic::catch_unwind(|| bodies::decode::valid(bytes)).is_err() {
            broken.push(path.display().to_string());
        }
    }
    assert!(
        broken.is_empty(),
        "valid records that no longer decode: {broken:#?}"
    );
}

#[test]
fn sse_corpus() {
    run_all("sse", bodies::sse::run);
}

#[test]
fn path_resolver_corpus() {
    let fixture = bodies::path_resolver::Fixture::new().unwrap();
    run_all("path_resolver", |data| fixture.run(data));
}

/// The fixture is what the target's doc says, so the properties are not vacuous:
/// paths that stay inside resolve, the checklist's escapes are refused.
#[test]
fn path_fixture_resolves_inside_and_refuses_outside() {
    let fixture = bodies::path_resolver::Fixture::new().unwrap();
    let r = fixture.resolver();
    for inside in [
        "b.txt",
        "../a.txt",
        "../in_dir/b.txt",
        "../in_file",
        "up_file",
        "../hard",
    ] {
        assert!(r.open_read(inside).is_ok(), "{inside}");
    }
    assert!(r.open_dir("../in_dir").is_ok());
    assert!(r.write_target("new/dir/f", true).is_ok());
    for outside in [
        "../../etc/passwd",
        "/etc/passwd",
        "out_rel/secret.txt",
        "../out_file",
        "../out_abs/secret.txt",
        "../etc/passwd",
        "../in_abs",
        "/proc/self/root/etc/passwd",
        "../proc_root/etc/passwd",
        "../loop1",
        "../sock",
        "~/.bashrc",
    ] {
        let err = r.open_read(outside).unwrap_err();
        assert!(!err.is_empty(), "{outside}");
    }
    for protected in ["../.git/config", "../hooks/x", "../.keel/x"] {
        let err = r.write_target(protected, true).unwrap_err();
        assert!(err.contains("protected"), "{protected}: {err}");
    }
}

#[test]
fn exec_policy_corpus() {
    bodies::exec_policy::quiet_parser_panics();
    let policies = bodies::exec_policy::Policies::new().unwrap();
    run_all("exec_policy", |data| policies.run(data, true));
}

#[test]
fn keel_toml_corpus() {
    run_all("keel_toml", bodies::keel_toml::run);
}

#[path = "fuzz_corpus/seeds.rs"]
mod seeds;

#[test]
#[ignore = "writes the seed corpora; run with KEEL_WRITE_FUZZ_SEEDS=1"]
fn write_seeds() {
    if std::env::var_os("KEEL_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, inputs) in seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in inputs {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}
