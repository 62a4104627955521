//! Tests of the Postgres store beyond the conformance and lease suites:
//! watches across connections, schema migrations, opening by URL and its errors,
//! and faults (a server crash and restart, connections cut by a proxy). Every test
//! runs on a real server started by this binary (see `TestPostgres`); the fault
//! tests start private ones, since they stop them.

// Tests: a failed step fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
mod open;
mod proxy;
mod schema;
mod watch;

use keel_storage::conformance::TestPostgres;
use keel_storage::{RunStatus, RunSummary, Timestamp};

/// A fresh database on the binary's server.
async fn fresh_url() -> String {
    TestPostgres::shared().fresh_database().await
}

fn summary(status: RunStatus) -> RunSummary {
    RunSummary {
        agent: "coding_agent".to_owned(),
        status,
        created_at: Timestamp(1_700_000_000_000),
        updated_at: Timestamp(1_700_000_000_000),
        turns: 0,
        input_tokens: 0,
        output_tokens: 0,
        parent: None,
        title: "a test run".to_owned(),
    }
}
