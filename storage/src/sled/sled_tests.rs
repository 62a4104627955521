//! Unit tests of the sled backend's own behaviour (the shared behaviour is in the
//! conformance suite).

use super::*;

#[tokio::test]
async fn appends_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::new();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let next = store
            .append(run, Seq::ZERO, Batch::events([Bytes::from_static(b"a")]))
            .await
            .unwrap();
        assert_eq!(next, Ok(Seq(1)));
    }
    let store = SledStore::open(dir.path()).unwrap();
    let records = store.read(run, Seq::ZERO).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0].bytes[..], b"a");
}

#[tokio::test]
async fn a_failed_flush_poisons_the_store_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::new();
    let event = |b: &'static [u8]| Batch::events([Bytes::from_static(b)]);
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(run, Seq::ZERO, event(b"kept"))
            .await
            .unwrap()
            .unwrap();
        store
            .inner
            .shared
            .fail_next_sync
            .store(true, std::sync::atomic::Ordering::Release);
        let failed = store.append(run, Seq(1), event(b"unknown")).await;
        assert!(matches!(failed, Err(Error::Io(_))), "{failed:?}");
        // The store no longer knows what is durable: every write is refused...
        let refused = store.append(run, Seq(1), event(b"x")).await;
        assert!(matches!(refused, Err(Error::Poisoned(_))), "{refused:?}");
        let refused = store.put_blob(Bytes::from_static(b"blob")).await;
        assert!(matches!(refused, Err(Error::Poisoned(_))), "{refused:?}");
        assert!(matches!(
            store.delete_run(run).await,
            Err(Error::Poisoned(_))
        ));
        // ...while what was acknowledged stays readable.
        assert_eq!(store.read(run, Seq::ZERO).await.unwrap()[0].bytes, "kept");
    }
    // Reopening recovers from the disk. The failed append's outcome was unknown: its
    // record reached the log (only the sync "failed"), so it is replayed whole.
    let store = SledStore::open(dir.path()).unwrap();
    let records = store.read(run, Seq::ZERO).await.unwrap();
    assert_eq!(records[0].bytes, "kept");
    assert!(records.len() <= 2);
    let next = Seq(records.len() as u64);
    assert_eq!(
        store.append(run, next, event(b"after")).await.unwrap(),
        Ok(next.next())
    );
}

#[tokio::test]
async fn corrupt_stored_bytes_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::new();
    let store = SledStore::open(dir.path()).unwrap();
    store
        .append(run, Seq::ZERO, Batch::events([Bytes::from_static(b"e")]))
        .await
        .unwrap()
        .unwrap();
    // Damage what sled holds directly, as a bad disk or a bug would, once the
    // applier has written it (a read waits for that).
    store.read(run, Seq::ZERO).await.unwrap();
    store
        .db()
        .insert(keys::summary_key(run), &[1u8, 0xff, 0xff][..])
        .unwrap();
    let err = store.run_info(run).await.unwrap_err();
    assert!(matches!(err, Error::CorruptMeta { .. }), "{err}");
    assert!(matches!(
        store.list_runs().await,
        Err(Error::CorruptMeta { .. })
    ));
    store.db().remove(keys::summary_key(run)).unwrap();

    // A missing event in the middle of a log. Each append is read back before the
    // next, so each is applied (and chunked) on its own.
    for (seq, bytes) in [(1, "f"), (2, "g")] {
        let batch = Batch::events([Bytes::from_static(bytes.as_bytes())]);
        store.append(run, Seq(seq), batch).await.unwrap().unwrap();
        store.read(run, Seq::ZERO).await.unwrap();
    }
    store.db().remove(keys::event_key(run, Seq(1))).unwrap();
    let err = store.read(run, Seq::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { seq: Seq(1), .. }), "{err}");

    // A damaged chunk.
    store
        .db()
        .insert(keys::event_key(run, Seq(1)), &[1u8, 5, 0, 0, 0, 9][..])
        .unwrap();
    let err = store.read(run, Seq(1)).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { seq: Seq(1), .. }), "{err}");
    store
        .db()
        .insert(keys::event_key(run, Seq(1)), &[7u8][..])
        .unwrap();
    assert!(matches!(store.run_info(run).await, Ok(Some(_))));
    store
        .db()
        .insert(keys::event_key(run, Seq(2)), &[7u8][..])
        .unwrap();
    assert!(matches!(
        store.run_info(run).await,
        Err(Error::Corrupt { .. })
    ));

    // A blob whose bytes do not match its hash.
    let hash = store.put_blob(Bytes::from_static(b"blob")).await.unwrap();
    store.get_blob(hash).await.unwrap().unwrap();
    store
        .db()
        .insert(keys::blob_key(&hash), &b"bolb"[..])
        .unwrap();
    assert!(matches!(
        store.get_blob(hash).await,
        Err(Error::CorruptMeta { .. })
    ));

    // A malformed run key (with the damaged run out of the way).
    store.db().remove(keys::run_key(run)).unwrap();
    store.db().insert(b"rshort", &keys::RUN_MARKER[..]).unwrap();
    assert!(matches!(
        store.list_runs().await,
        Err(Error::CorruptMeta { .. })
    ));
}

#[test]
fn the_applier_joins_consecutive_events_of_a_run_into_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let db = ::sled::Config::new().path(dir.path()).open().unwrap();
    let (run, other) = (RunId::new(), RunId::new());
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let append = |run, first, events: &[&'static str]| Op::Append {
        run,
        first: Seq(first),
        events: events.iter().map(|e| b(e)).collect(),
    };
    let ops = [
        append(run, 0, &["a", "b"]),
        append(other, 0, &["x"]),
        append(run, 2, &["c"]),
        Op::Put {
            key: Bytes::copy_from_slice(&keys::summary_key(run)),
            value: b("summary"),
        },
        append(other, 1, &["y"]),
        // A removal closes the open chunks; what follows starts new ones.
        Op::RemovePrefix {
            prefix: Bytes::copy_from_slice(&keys::event_prefix(other)),
        },
        append(run, 3, &["d"]),
        append(other, 0, &["z"]),
    ];
    commit::apply_ops(&db, &ops, 9).unwrap();
    let chunks = |run| -> Vec<(u64, Vec<Bytes>)> {
        db.scan_prefix(keys::event_prefix(run))
            .map(|e| {
                let (k, v) = e.unwrap();
                let first = keys::decode_event_key(run, &k).unwrap();
                let records = keys::decode_chunk(run, first, Bytes::copy_from_slice(&v)).unwrap();
                (first.0, records.into_iter().map(|r| r.bytes).collect())
            })
            .collect()
    };
    assert_eq!(
        chunks(run),
        vec![(0, vec![b("a"), b("b"), b("c")]), (3, vec![b("d")])]
    );
    assert_eq!(chunks(other), vec![(0, vec![b("z")])]);
    assert_eq!(
        db.get(keys::APPLIED_LSN).unwrap().unwrap(),
        9u64.to_be_bytes()
    );
}

/// The log's segment files, by name.
fn segments(dir: &Path) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            (name, e.metadata().unwrap().len())
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn an_empty_segment_left_by_a_crash_does_not_take_the_next_ones_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::new();
    let event = |b: &'static [u8]| Batch::events([Bytes::from_static(b)]);
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(run, Seq::ZERO, event(b"a"))
            .await
            .unwrap()
            .unwrap();
    }
    // A process that died right after starting its segment (LSN 2 comes next) and
    // before writing to it: the file is there, pre-zeroed, with no record.
    let orphan = dir.path().join("wal").join(format!("{:020}.wal", 2));
    std::fs::write(&orphan, vec![0u8; 4096]).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store
        .append(run, Seq(1), event(b"b"))
        .await
        .unwrap()
        .unwrap();
    // The segment holding the acknowledged record is on disk, under its name (the
    // opening checkpoint deletes what it sealed; it must not be this file).
    let found = segments(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, format!("{:020}.wal", 2));
    let data = std::fs::read(&orphan).unwrap();
    assert!(data.contains(&b'b'));
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    let records = store.read(run, Seq::ZERO).await.unwrap();
    assert_eq!(records.len(), 2);
}

#[tokio::test]
async fn a_close_keeps_the_spare_and_the_next_open_writes_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::new();
    let store = SledOptions::new(dir.path())
        .segment_bytes(64 << 10)
        .open()
        .unwrap();
    // Enough appends that the first (growing) segment moves to a spare.
    let mut next = Seq::ZERO;
    let payload = Bytes::from(vec![7u8; 2000]);
    for _ in 0..100 {
        next = store
            .append(run, next, Batch::events([payload.clone()]))
            .await
            .unwrap()
            .unwrap();
    }
    drop(store);
    let spare = dir.path().join("wal").join("spare.zeroed");
    // Asked for once a segment is half full, so by now one was written (unless the
    // close abandoned it half-way: then nothing is left under its name).
    if spare.exists() {
        assert!(std::fs::read(&spare).unwrap().iter().all(|b| *b == 0));
        let store = SledStore::open(dir.path()).unwrap();
        // The spare became the first segment (a new spare may already be on its way:
        // the store asks for one at open).
        let found = segments(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, 64 << 10);
        store
            .append(run, next, Batch::events([payload.clone()]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(segments(dir.path())[0].1, 64 << 10);
        drop(store);
    }
    assert!(!dir.path().join("wal").join("spare.zeroing").exists());
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.read(run, Seq::ZERO).await.unwrap().len() >= 100);
}
