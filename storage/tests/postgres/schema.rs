//! Migrations: an older schema is brought up to date without losing anything,
//! concurrent openers migrate once, and a schema this build does not know is refused.

use keel_storage::conformance::{TestPostgres, create_schema_at};
use keel_storage::{Error, EventStore, Leases, PgStore, RunId, RunStatus, Seq, WorkerId};

use super::{fresh_url, summary};

/// A database left by a build that knew only schema version 1 (no leases): its runs,
/// events, summaries and blobs survive the migration, and its running runs become
/// claimable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_an_older_schema_migrates_it_and_keeps_every_record() {
    let url = fresh_url().await;
    create_schema_at(&url, 1).await.unwrap();
    let (running, suspended) = (RunId::new(), RunId::new());
    let as_uuid = |run: RunId| uuid_text(run);
    let json = |status| serde_json::to_string(&summary(status)).unwrap();
    TestPostgres::shared()
        .admin(
            &url,
            &format!(
                "INSERT INTO keel_runs (run, next_seq, summary) VALUES
                    ('{r}', 2, '{s1}'), ('{q}', 1, '{s2}');
                 INSERT INTO keel_events (run, seq, bytes) VALUES
                    ('{r}', 0, '\\x00aa'), ('{r}', 1, '\\x01bb'), ('{q}', 0, '\\x02cc');
                 INSERT INTO keel_blobs (hash, bytes) VALUES ('\\x{h}', '\\x626c6f62');",
                r = as_uuid(running),
                q = as_uuid(suspended),
                s1 = json(RunStatus::Running),
                s2 = json(RunStatus::Suspended),
                h = keel_storage::BlobHash::of(b"blob"),
            ),
        )
        .await;

    let store = PgStore::open(&url).await.unwrap();
    let records = store.read(running, Seq::ZERO).await.unwrap();
    let bytes: Vec<&[u8]> = records.iter().map(|r| &r.bytes[..]).collect();
    assert_eq!(bytes, [&[0x00, 0xaa][..], &[0x01, 0xbb][..]]);
    let info = store.run_info(suspended).await.unwrap().unwrap();
    assert_eq!(
        (info.next_seq, info.summary),
        (Seq(1), Some(summary(RunStatus::Suspended)))
    );
    assert_eq!(
        store
            .get_blob(keel_storage::BlobHash::of(b"blob"))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"blob"[..])
    );
    let claimed = store.claim(&WorkerId::new("w"), 10).await.unwrap();
    assert_eq!(claimed.iter().map(|l| l.run).collect::<Vec<_>>(), [running]);
    // And the log goes on where it was.
    store
        .append(running, Seq(2), keel_storage::Batch::default())
        .await
        .unwrap()
        .unwrap();
}

/// Many processes opening a new database at once: one migrates, the others wait
/// for it and find nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_openers_migrate_once() {
    let url = fresh_url().await;
    let opened = futures::future::join_all((0..6).map(|_| PgStore::open(&url))).await;
    for store in opened {
        store.unwrap();
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query("SELECT version FROM keel_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
}

/// A database migrated by a newer Keel, or whose record of a migration differs
/// from this build's, is refused with a clear, typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_this_build_does_not_know_is_refused() {
    let url = fresh_url().await;
    drop(PgStore::open(&url).await.unwrap());
    let server = TestPostgres::shared();
    server
        .admin(
            &url,
            "INSERT INTO keel_migrations (version, name, checksum) VALUES (99, 'future', 'x')",
        )
        .await;
    let err = PgStore::open(&url).await.unwrap_err();
    assert!(matches!(err, Error::Schema(_)), "{err:?}");
    assert!(err.to_string().contains("upgrade keel"), "{err}");

    server
        .admin(
            &url,
            "DELETE FROM keel_migrations WHERE version = 99;
             UPDATE keel_migrations SET checksum = 'edited' WHERE version = 1",
        )
        .await;
    let err = PgStore::open(&url).await.unwrap_err();
    assert!(matches!(err, Error::Schema(_)), "{err:?}");
    assert!(err.to_string().contains("differs"), "{err}");
}

fn uuid_text(run: RunId) -> String {
    let hex = run.to_string();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What Keel did not write — a table of another program under Keel's name, a
/// summary edited by hand — is a typed error naming what is wrong, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_edited_rows_are_errors_not_panics() {
    let server = TestPostgres::shared();
    let url = fresh_url().await;
    server
        .admin(
            &url,
            "CREATE TABLE keel_migrations (version text, checksum integer);
             INSERT INTO keel_migrations VALUES ('one', 1)",
        )
        .await;
    let err = PgStore::open(&url).await.unwrap_err();
    assert!(matches!(err, Error::CorruptMeta { .. }), "{err:?}");

    let url = fresh_url().await;
    let store = PgStore::open(&url).await.unwrap();
    let run = RunId::new();
    let batch = keel_storage::Batch::default().with_summary(summary(RunStatus::Running));
    store.append(run, Seq::ZERO, batch).await.unwrap().unwrap();
    server
        .admin(&url, r#"UPDATE keel_runs SET summary = '{"agent": 7}'"#)
        .await;
    let err = store.run_info(run).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::CorruptMeta {
                what: "run summary",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(store.list_runs().await.is_err());
}
