//! The schema, created and migrated by Keel itself.
//!
//! Migrations are embedded, numbered, and applied in order, all pending ones in one
//! transaction under a transaction-scoped advisory lock: of several processes opening
//! the store at once, one migrates and the others wait, then find nothing to do. A
//! migration is DDL inside a transaction, so it is applied whole or not at all, and
//! each one only adds (tables, columns, indexes) or fills what it added: none drops
//! or rewrites recorded data. `keel_migrations` records each applied version with a
//! checksum of its SQL; a database migrated by a newer Keel, or whose record of a
//! migration differs from this build's, is refused with [`Error::Schema`].

use tokio_postgres::Client;

use super::error::col;
use crate::error::{Error, Result};

/// One schema change.
pub(crate) struct Migration {
    pub(crate) version: i32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first. Append only: never edit a released one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "runs, events and blobs",
        sql: "
CREATE TABLE keel_runs (
    run      uuid   PRIMARY KEY,
    next_seq bigint NOT NULL CHECK (next_seq >= 0),
    summary  jsonb
);
CREATE TABLE keel_events (
    run   uuid   NOT NULL,
    seq   bigint NOT NULL CHECK (seq >= 0),
    bytes bytea  NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE TABLE keel_blobs (
    hash  bytea PRIMARY KEY CHECK (length(hash) = 32),
    bytes bytea NOT NULL
);
",
    },
    Migration {
        version: 2,
        name: "leases and fencing epochs",
        sql: "
ALTER TABLE keel_runs
    ADD COLUMN status        text,
    ADD COLUMN epoch         bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease_owner   text,
    ADD COLUMN lease_expires timestamptz;
UPDATE keel_runs SET status = lower(summary->>'status') WHERE summary IS NOT NULL;
CREATE INDEX keel_runs_running ON keel_runs (run) WHERE status = 'running';
CREATE INDEX keel_runs_leased ON keel_runs (run) WHERE lease_owner IS NOT NULL;
",
    },
];

/// The schema version this build writes.
pub(crate) const LATEST: i32 = 2;

/// The advisory lock all Keel migrations take (any fixed number: `keel` in ASCII).
const LOCK: i64 = 0x6b65_656c;

fn checksum(sql: &str) -> String {
    hex::encode(&blake3::hash(sql.as_bytes()).as_bytes()[..16])
}

/// Brings the schema up to `up_to` (normally [`LATEST`]). Returns the versions
/// applied by this call. `target` names the store in errors.
pub(crate) async fn migrate(client: &mut Client, up_to: i32, target: &str) -> Result<Vec<i32>> {
    let schema_error = |err| super::error::from_pg(target, err);
    let tx = client.transaction().await.map_err(schema_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(schema_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS keel_migrations (
            version    integer     PRIMARY KEY,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(schema_error)?;
    let applied = tx
        .query(
            "SELECT version, checksum FROM keel_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(schema_error)?;
    let mut current = 0;
    for row in &applied {
        let (version, sum): (i32, String) = (col(row, 0)?, col(row, 1)?);
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == version) else {
            return Err(Error::Schema(format!(
                "the database was migrated to schema version {version} by a newer Keel; \
                 this build knows versions up to {LATEST}: upgrade keel"
            )));
        };
        if sum != checksum(known.sql) {
            return Err(Error::Schema(format!(
                "migration {version} ({}) recorded in the database differs from this \
                 build's; the database was migrated by a different build of Keel",
                known.name
            )));
        }
        current = current.max(version);
    }
    let mut done = Vec::new();
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= up_to)
    {
        tx.batch_execute(migration.sql)
            .await
            .map_err(schema_error)?;
        tx.execute(
            "INSERT INTO keel_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[
                &migration.version,
                &migration.name,
                &checksum(migration.sql),
            ],
        )
        .await
        .map_err(schema_error)?;
        done.push(migration.version);
    }
    tx.commit().await.map_err(schema_error)?;
    for version in &done {
        tracing::info!(version, "applied Keel schema migration");
    }
    Ok(done)
}
