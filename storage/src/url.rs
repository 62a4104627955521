//! Stores named by what a person types: a path is a sled store, a `postgres://` or
//! `postgresql://` URL a Postgres one. [`StoreUrl`] parses (for `--store` and
//! `KEEL_STORE`), [`AnyStore`] is the opened store the CLI holds.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{Error, Result};
use crate::id::{BlobHash, RunId, Seq};
use crate::sled::SledStore;
use crate::store::{AppendResult, Batch, EventStore, Record, RunInfo};

#[cfg(feature = "postgres")]
use crate::postgres::{PgOptions, PgStore};

/// Where a store lives.
#[derive(Clone)]
pub enum StoreUrl {
    /// A sled store in this directory.
    Path(PathBuf),
    /// A Postgres database.
    #[cfg(feature = "postgres")]
    Postgres(Box<PgOptions>),
}

impl StoreUrl {
    /// Parses what a person typed. Anything that is not a URL is a path; a URL with a
    /// scheme other than `postgres`/`postgresql` is an error.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Err(Error::BadUrl {
                url: String::new(),
                reason: "it is empty; give a directory or a postgres:// URL".to_owned(),
            });
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            if !matches!(
                scheme.to_ascii_lowercase().as_str(),
                "postgres" | "postgresql"
            ) {
                return Err(Error::BadUrl {
                    url: redact(text),
                    reason: format!(
                        "`{scheme}://` is not a kind of store Keel knows; use a directory \
                         (sled) or a postgres:// URL"
                    ),
                });
            }
            return Self::postgres(text);
        }
        Ok(StoreUrl::Path(PathBuf::from(text)))
    }

    #[cfg(feature = "postgres")]
    fn postgres(text: &str) -> Result<Self> {
        Ok(StoreUrl::Postgres(Box::new(PgOptions::new(text)?)))
    }

    #[cfg(not(feature = "postgres"))]
    fn postgres(text: &str) -> Result<Self> {
        Err(Error::BadUrl {
            url: redact(text),
            reason: "this build of Keel has no Postgres support (the `postgres` feature \
                     of keel-storage is off)"
                .to_owned(),
        })
    }

    /// Whether many processes may open this store at once (Postgres), as opposed to
    /// one owner process per store (sled).
    pub fn is_shared(&self) -> bool {
        !matches!(self, StoreUrl::Path(_))
    }

    /// Opens the store: a sled directory (created if missing), or a connection pool
    /// on a migrated Postgres schema.
    pub async fn open(&self) -> Result<AnyStore> {
        match self {
            StoreUrl::Path(dir) => {
                let dir = dir.clone();
                let store = tokio::task::spawn_blocking(move || SledStore::open(dir))
                    .await
                    .map_err(|e| Error::Backend(format!("opening the store panicked: {e}")))??;
                Ok(AnyStore::Sled(store))
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(options) => {
                Ok(AnyStore::Postgres(options.as_ref().clone().open().await?))
            }
        }
    }
}

fn redact(text: &str) -> String {
    #[cfg(feature = "postgres")]
    return crate::postgres::redact(text);
    #[cfg(not(feature = "postgres"))]
    text.to_owned()
}

impl FromStr for StoreUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Shown as a path, or as a URL without its password.
impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Path(dir) => write!(f, "{}", dir.display()),
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(options) => f.write_str(&options.target()),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// An opened store of any kind, itself an [`EventStore`]. Cheap to clone.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// A sled store: this process owns it.
    Sled(SledStore),
    /// A Postgres store, shared with other processes; also [`Leases`](crate::Leases).
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
}

impl AnyStore {
    /// The Postgres store, for its leases, if this is one.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            AnyStore::Postgres(store) => Some(store),
            AnyStore::Sled(_) => None,
        }
    }
}

macro_rules! each {
    ($self:ident, $store:ident => $body:expr) => {
        match $self {
            AnyStore::Sled($store) => $body,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($store) => $body,
        }
    };
}

impl EventStore for AnyStore {
    async fn append(&self, run: RunId, expected: Seq, batch: Batch) -> AppendResult {
        each!(self, s => s.append(run, expected, batch).await)
    }
    async fn read(&self, run: RunId, from: Seq) -> Result<Vec<Record>> {
        each!(self, s => s.read(run, from).await)
    }
    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>> {
        each!(self, s => s.run_info(run).await)
    }
    async fn list_runs(&self) -> Result<Vec<RunInfo>> {
        each!(self, s => s.list_runs().await)
    }
    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>> {
        each!(self, s => s.watch(run, from))
    }
    async fn put_blob(&self, bytes: Bytes) -> Result<BlobHash> {
        each!(self, s => s.put_blob(bytes).await)
    }
    async fn get_blob(&self, hash: BlobHash) -> Result<Option<Bytes>> {
        each!(self, s => s.get_blob(hash).await)
    }
    async fn delete_run(&self, run: RunId) -> Result<bool> {
        each!(self, s => s.delete_run(run).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls() {
        assert!(
            matches!(StoreUrl::parse("./.keel").unwrap(), StoreUrl::Path(p) if p == std::path::Path::new("./.keel"))
        );
        assert!(matches!(
            StoreUrl::parse("/var/lib/keel").unwrap(),
            StoreUrl::Path(_)
        ));
        let err = StoreUrl::parse("mysql://u:pw@h/db").unwrap_err();
        assert!(matches!(err, Error::BadUrl { .. }));
        assert!(err.to_string().contains("postgres://"), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
        assert!(StoreUrl::parse("").is_err());
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_urls_are_shared_stores_shown_without_passwords() {
        for text in [
            "postgres://keel:hunter2@db:5433/runs",
            "postgresql://keel:hunter2@db:5433/runs",
        ] {
            let url = StoreUrl::parse(text).unwrap();
            assert!(url.is_shared());
            assert_eq!(url.to_string(), "postgres://keel@db:5433/runs");
        }
        let url: StoreUrl = "postgresql:///runs?host=/run/keel&user=keel"
            .parse()
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://keel@[socket /run/keel/.s.PGSQL.5432]/runs"
        );
    }
}
