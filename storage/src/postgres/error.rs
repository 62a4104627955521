//! Postgres failures as this crate's [`Error`]: lost or refused connections become
//! `Unavailable` (retryable), bad credentials or a missing database `Denied`, the
//! rest `Backend` with the server's SQLSTATE.

use deadpool_postgres::PoolError;

use crate::error::Error;

/// Classifies a driver error. `target` names the store (no password).
pub(crate) fn from_pg(target: &str, err: tokio_postgres::Error) -> Error {
    let target = target.to_owned();
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        let detail = format!("{} (SQLSTATE {code})", db.message());
        return match code {
            // connection exceptions; admin, crash or starting-up shutdowns; too many
            // connections; serialization failures and deadlocks: try again.
            c if c.starts_with("08")
                || c.starts_with("57P")
                || c == "53300"
                || c == "40001"
                || c == "40P01" =>
            {
                Error::Unavailable { target, detail }
            }
            // invalid authorization, missing database, missing privileges.
            c if c.starts_with("28") || c == "3D000" || c == "42501" => {
                Error::Denied { target, detail }
            }
            _ => Error::Backend(format!("Postgres at {target}: {detail}")),
        };
    }
    if err.is_closed() || io_cause(&err) {
        return Error::Unavailable {
            target,
            detail: error_chain(&err),
        };
    }
    Error::Backend(format!("Postgres at {target}: {}", error_chain(&err)))
}

/// Classifies a failure to get a connection from the pool.
pub(crate) fn from_pool(target: &str, err: PoolError) -> Error {
    match err {
        PoolError::Backend(e) => from_pg(target, e),
        PoolError::PostCreateHook(deadpool_postgres::HookError::Backend(e)) => from_pg(target, e),
        PoolError::Timeout(kind) => Error::Unavailable {
            target: target.to_owned(),
            detail: format!("no connection within the pool's time limit ({kind:?})"),
        },
        PoolError::Closed => Error::Closed,
        other => Error::Backend(format!("Postgres at {target}: {other}")),
    }
}

/// A statement got no answer in time; its connection was dropped.
pub(crate) fn timed_out(target: &str, after: std::time::Duration) -> Error {
    Error::Unavailable {
        target: target.to_owned(),
        detail: format!("no answer within {after:?}; the connection was dropped"),
    }
}

/// A value read back that cannot be what Keel wrote.
pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::CorruptMeta {
        what,
        detail: detail.to_string(),
    }
}

fn io_cause(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error and its causes on one line (the driver's top-level message alone often
/// says only "error connecting to server").
fn error_chain(err: &tokio_postgres::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Column `idx` of a row, or an error (never a panic) if the database holds
/// something Keel did not write there: a table of the same name from another
/// program, a column changed by hand.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    idx: usize,
) -> crate::error::Result<T> {
    row.try_get(idx)
        .map_err(|e| corrupt("row", format!("column {idx} is not what Keel wrote: {e}")))
}
