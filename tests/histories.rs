//! Canned histories: stores written by earlier builds of Keel, which every later
//! build must still open, list, show, replay and continue (see
//! `tests/histories/README.md`).
//!
//! `dump_logs` (ignored) writes the raw records of every run of a canned store as
//! text, so the codec can be checked without the store:
//! `KEEL_DUMP_HISTORY=tests/histories/v1 cargo test -p keel --test histories -- --ignored dump_logs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;

use keel::storage::{EventStore, SledStore};

/// Writes `<dir>/logs/<run>.log`: one line per record, `<seq> <hex bytes>`.
#[tokio::test]
#[ignore = "writes a canned history's logs; run by hand"]
async fn dump_logs() {
    let dir =
        std::env::var("KEEL_DUMP_HISTORY").expect("set KEEL_DUMP_HISTORY to a history's folder");
    let dir = Path::new(&dir);
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir.join("store"), tmp.path());
    let store = SledStore::open(tmp.path()).unwrap();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for info in store.list_runs().await.unwrap() {
        let mut text = String::new();
        for record in store.read(info.run, keel::storage::Seq(0)).await.unwrap() {
            write!(text, "{}", record.seq.0).unwrap();
            text.push(' ');
            for b in record.bytes.iter() {
                write!(text, "{b:02x}").unwrap();
            }
            text.push('\n');
        }
        std::fs::write(logs.join(format!("{}.log", info.run)), text).unwrap();
    }
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
