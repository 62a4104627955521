//! Canned histories (`tests/histories/<version>/`): stores written by earlier builds
//! of Keel. For every folder, this build must open and list the store (statuses as
//! `runs.txt` says), decode every raw record of `logs/` exactly as the store holds
//! it, show and replay every run (deterministic, with nothing outside the store), and
//! continue the unfinished ones to completion: `waiting` (approve, then resume) and
//! `interrupted` (resume; recovery reports the interruption to the model).
//!
//! `dump_logs` (ignored) writes a folder's `logs/`: the raw records of every run as
//! text (`<run>.log`: `<seq> <hex bytes>` per line), so the codec is checked without
//! the store, and what each means (`<run>.jsonl`: the decoded events as JSON):
//! `KEEL_DUMP_HISTORY=tests/histories/vN cargo test -p keel-cli --test all -- --ignored dump_logs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use keel_storage::{EventStore, RunId, Seq, SledStore};

/// The workspace the canned runs were recorded with (see `generate.sh`); the built-in
/// agent's system prompt names it, so continuing a run recorded before runs carried
/// their definition needs the same path (given with `--workspace`, as then).
const WORKSPACE: &str = "/tmp/keel-canned-history/ws";

fn histories() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/histories");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("store").is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct Canned {
    name: String,
    dir: PathBuf,
    tmp: tempfile::TempDir,
    /// name -> (id, status, events)
    runs: BTreeMap<String, (String, String, u64)>,
}

impl Canned {
    fn open(dir: &Path) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir.join("store"), &tmp.path().join("store"));
        std::fs::create_dir_all(tmp.path().join("elsewhere")).unwrap();
        let runs = std::fs::read_to_string(dir.join("runs.txt"))
            .unwrap()
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (
                    f[0].to_owned(),
                    (f[1].to_owned(), f[2].to_owned(), f[3].parse().unwrap()),
                )
            })
            .collect();
        Self {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir: dir.to_path_buf(),
            tmp,
            runs,
        }
    }

    /// `keel --store <copy> args…`, run from a directory with no configuration and
    /// no workspace, without API keys.
    fn keel(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .current_dir(self.tmp.path().join("elsewhere"))
            .arg("--store")
            .arg(self.tmp.path().join("store"))
            .args(args)
            .env_remove("KEEL_STORE")
            .env_remove("KEEL_CONFIG")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.keel(args);
        assert_eq!(code, 0, "{}: keel {args:?}\n{out}\n{err}", self.name);
        out + &err
    }

    fn id(&self, name: &str) -> &str {
        &self.runs[name].0
    }

    fn listed(&self) -> BTreeMap<String, (String, u64)> {
        let out = self.ok(&["runs", "--json"]);
        let start = out.find('[').unwrap();
        let rows: serde_json::Value = serde_json::Deserializer::from_str(&out[start..])
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    (
                        r["status"].as_str().unwrap().to_owned(),
                        r["events"].as_u64().unwrap(),
                    ),
                )
            })
            .collect()
    }

    /// Every record of `logs/<run>.log` is the store's, and decodes.
    fn check_raw_logs(&self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = SledStore::open(self.tmp.path().join("store")).unwrap();
        for (id, _, _) in self.runs.values() {
            let run: RunId = id.parse().unwrap();
            let text =
                std::fs::read_to_string(self.dir.join("logs").join(format!("{id}.log"))).unwrap();
            let stored = rt.block_on(store.read(run, Seq::ZERO)).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), stored.len(), "{}: {id}", self.name);
            for (line, record) in lines.iter().zip(&stored) {
                let (seq, hex) = line.split_once(' ').unwrap();
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                assert_eq!(Seq(seq.parse().unwrap()), record.seq);
                assert_eq!(
                    bytes,
                    record.bytes.to_vec(),
                    "{}: {id} seq {seq}",
                    self.name
                );
                keel_engine::decode(run, record.seq, &bytes)
                    .unwrap_or_else(|e| panic!("{}: {e}", self.name));
            }
            // What each record meant when the folder was written, it still means:
            // every field recorded then decodes to the same value (fields added since
            // may appear besides).
            let meaning =
                std::fs::read_to_string(self.dir.join("logs").join(format!("{id}.jsonl"))).unwrap();
            let lines: Vec<&str> = meaning.lines().collect();
            assert_eq!(lines.len(), stored.len(), "{}: {id}", self.name);
            for (line, record) in lines.iter().zip(&stored) {
                let then: serde_json::Value = serde_json::from_str(line).unwrap();
                let event = keel_engine::decode(run, record.seq, &record.bytes).unwrap();
                let now = serde_json::json!({ "seq": record.seq, "event": event });
                if let Err(path) = contained(&then, &now, String::new()) {
                    panic!(
                        "{}: run {id} seq {}: {path} changed meaning\nthen: {then}\nnow:  {now}",
                        self.name, record.seq
                    );
                }
            }
        }
    }

    /// Whether the run `name` recorded its definition (in its first event).
    fn carries_definition(&self, name: &str) -> bool {
        let id = self.id(name);
        let meaning =
            std::fs::read_to_string(self.dir.join("logs").join(format!("{id}.jsonl"))).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(meaning.lines().next().unwrap()).unwrap();
        !first["event"]["event"]["RunStarted"]["definition"].is_null()
    }

    fn replay_all(&self) {
        for (name, (id, _, _)) in &self.runs {
            let out = self.ok(&["show", id]);
            assert!(out.contains(&format!("run {id}")), "{name}: {out}");
            let out = self.ok(&["replay", id]);
            assert!(
                out.contains("deterministic."),
                "{} {name}: {out}",
                self.name
            );
        }
    }
}

/// Writes `<dir>/logs/` for the canned store in `<dir>/store`.
#[test]
#[ignore = "writes a canned history's logs; run by hand"]
fn dump_logs() {
    use std::fmt::Write as _;
    let dir =
        std::env::var("KEEL_DUMP_HISTORY").expect("set KEEL_DUMP_HISTORY to a history's folder");
    let dir = Path::new(&dir);
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir.join("store"), tmp.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = SledStore::open(tmp.path()).unwrap();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for info in rt.block_on(store.list_runs()).unwrap() {
        let (mut text, mut meaning) = (String::new(), String::new());
        for record in rt.block_on(store.read(info.run, Seq::ZERO)).unwrap() {
            write!(text, "{} ", record.seq.0).unwrap();
            for b in record.bytes.iter() {
                write!(text, "{b:02x}").unwrap();
            }
            text.push('\n');
            let event = keel_engine::decode(info.run, record.seq, &record.bytes).unwrap();
            let value = serde_json::json!({ "seq": record.seq, "event": event });
            meaning.push_str(&serde_json::to_string(&value).unwrap());
            meaning.push('\n');
        }
        std::fs::write(logs.join(format!("{}.log", info.run)), text).unwrap();
        std::fs::write(logs.join(format!("{}.jsonl", info.run)), meaning).unwrap();
    }
}

#[test]
fn canned_histories_open_list_show_replay_and_continue() {
    let dirs = histories();
    assert!(dirs.len() >= 2, "{dirs:?}");
    std::fs::create_dir_all(WORKSPACE).unwrap();
    for dir in dirs {
        let canned = Canned::open(&dir);
        canned.check_raw_logs();
        let listed = canned.listed();
        assert_eq!(listed.len(), canned.runs.len(), "{}", canned.name);
        for (name, (id, status, events)) in &canned.runs {
            assert_eq!(
                listed[id],
                (status.clone(), *events),
                "{} {name}",
                canned.name
            );
        }
        canned.replay_all();

        // Continue the unfinished runs with this build: runs that recorded their
        // definition with no flags at all; older runs as then, with the flags.
        let carries_definition = canned.carries_definition("waiting");
        if carries_definition {
            let scripts = Path::new(WORKSPACE).with_file_name("scripts");
            std::fs::create_dir_all(&scripts).unwrap();
            for s in ["waiting", "interrupted"] {
                let name = format!("{s}.json");
                std::fs::copy(canned.dir.join("scripts").join(&name), scripts.join(&name)).unwrap();
            }
        }
        let script = |s: &str| canned.dir.join("scripts").join(format!("{s}.json"));
        let flags = |s: &str| {
            let mut flags = vec!["--approve-all".to_owned()];
            if !carries_definition {
                flags.extend([
                    "--script".to_owned(),
                    script(s).display().to_string(),
                    "--model".to_owned(),
                    "claude-sonnet-4-5".to_owned(),
                    "--workspace".to_owned(),
                    WORKSPACE.to_owned(),
                ]);
            }
            flags
        };
        let waiting = canned.id("waiting").to_owned();
        canned.ok(&["approve", &waiting]);
        let mut args = vec!["resume".to_owned(), waiting.clone()];
        args.extend(flags("waiting"));
        let out = canned.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let legacy = out.contains("was recorded before runs carried their definition");
        assert_eq!(legacy, !carries_definition, "{}: {out}", canned.name);
        let interrupted = canned.id("interrupted").to_owned();
        let mut args = vec!["resume".to_owned(), interrupted.clone()];
        args.extend(flags("interrupted"));
        canned.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let shown = canned.ok(&["show", &interrupted]);
        assert!(shown.contains("interrupted"), "{}: {shown}", canned.name);

        let listed = canned.listed();
        for id in [&waiting, &interrupted] {
            assert_eq!(listed[id].0, "completed", "{}: {id}", canned.name);
        }
        canned.replay_all();
    }
}

/// Whether every value of `then` is in `now` at the same place (objects may have
/// gained keys); `Err` names the first place that differs.
fn contained(
    then: &serde_json::Value,
    now: &serde_json::Value,
    path: String,
) -> Result<(), String> {
    use serde_json::Value;
    match (then, now) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}.{k}");
                contained(v, b.get(k).ok_or_else(|| p.clone())?, p)?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                contained(x, y, format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (a, b) if a == b => Ok(()),
        _ => Err(if path.is_empty() {
            ".".to_owned()
        } else {
            path
        }),
    }
}
