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

    // A missing event in the middle of a log.
    store
        .append(
            run,
            Seq(1),
            Batch::events([Bytes::from_static(b"f"), Bytes::from_static(b"g")]),
        )
        .await
        .unwrap()
        .unwrap();
    store.read(run, Seq::ZERO).await.unwrap();
    store.db().remove(keys::event_key(run, Seq(1))).unwrap();
    let err = store.read(run, Seq::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { seq: Seq(1), .. }), "{err}");

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

    // A malformed run key.
    store.db().insert(b"rshort", &keys::RUN_MARKER[..]).unwrap();
    assert!(matches!(
        store.list_runs().await,
        Err(Error::CorruptMeta { .. })
    ));
}
