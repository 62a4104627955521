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
