//! Opening stores by what a person types, and the errors they get.

use keel_storage::conformance::TestPostgres;
use keel_storage::{AnyStore, Batch, Error, EventStore, RunId, Seq, StoreUrl};

use super::fresh_url;

/// A `postgres://` URL opens the Postgres store (libpq's socket form included), a
/// path the sled store; both are the same `EventStore`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_open_postgres_and_paths_open_sled() {
    let url = fresh_url().await;
    let store = StoreUrl::parse(&url).unwrap().open().await.unwrap();
    assert!(matches!(store, AnyStore::Postgres(_)) && store.postgres().is_some());
    let run = RunId::new();
    store
        .append(
            run,
            Seq::ZERO,
            Batch::events([bytes::Bytes::from_static(b"e")]),
        )
        .await
        .unwrap()
        .unwrap();
    // The same database through `postgres://user@%2Fsocket%2Fdir/db`.
    let server = TestPostgres::shared();
    let db = url.split('?').next().unwrap().rsplit('/').next().unwrap();
    let encoded = format!(
        "postgres://postgres@{}/{db}",
        server
            .socket_dir()
            .display()
            .to_string()
            .replace('/', "%2F")
    );
    let again = StoreUrl::parse(&encoded).unwrap().open().await.unwrap();
    assert_eq!(again.read(run, Seq::ZERO).await.unwrap().len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let sled = StoreUrl::parse(dir.path().join("s").to_str().unwrap())
        .unwrap()
        .open()
        .await
        .unwrap();
    assert!(matches!(sled, AnyStore::Sled(_)) && sled.postgres().is_none());
}

/// No server behind the URL: a retryable `Unavailable` that says what to check,
/// without the password, quickly (no hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_retryable_error() {
    let empty = tempfile::tempdir().unwrap();
    let socket = format!(
        "postgresql://keel:hunter2@/keel?host={}",
        empty.path().display()
    );
    // Port 9 (discard) on loopback: nothing listens there.
    let tcp = "postgres://keel:hunter2@127.0.0.1:9/keel?connect_timeout=5";
    for url in [socket.as_str(), tcp] {
        let err = StoreUrl::parse(url).unwrap().open().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Unavailable { .. }), "{url}: {err:?}");
        assert!(err.is_retryable());
        assert!(text.contains("check that the server is running"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

/// A database that does not exist: `Denied`, not retryable, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_denied() {
    let url = TestPostgres::shared().url("no_such_database");
    let err = StoreUrl::parse(&url).unwrap().open().await.unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("no_such_database"), "{err}");
}
