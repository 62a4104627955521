//! A throwaway Postgres server for tests, and the suite's harness on it.
//!
//! [`TestPostgres::shared`] starts one server per test binary, on first use: a fresh
//! data directory under `/tmp`, `initdb -A trust --no-sync` (as the `postgres` user
//! when running as root, since `initdb` refuses root), and `pg_ctl start` listening
//! only on a private Unix socket in that directory. A watchdog process stops the
//! server and removes the directory once the test process has exited, however it
//! exits. [`TestPostgres::start`] starts a private server (for tests that stop and
//! restart it), stopped when dropped.
//!
//! If the server's binaries cannot be found the tests **fail**, saying how to
//! install them: a Postgres test that silently skips would report a pass for nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

use super::Harness;
use crate::error::Result;
use crate::postgres::PgStore;

/// A Postgres server of the tests' own.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    /// Databases and schemas created so far.
    created: AtomicU64,
    /// The database holding the schemas of [`TestPostgres::fresh_schema`].
    schemas_db: tokio::sync::OnceCell<()>,
    /// Whether dropping this value stops the server (not for the shared one).
    stop_on_drop: bool,
}

const PORT: u16 = 5432;

impl TestPostgres {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut server = Self::start();
            server.stop_on_drop = false;
            server
        })
    }

    /// A private server, stopped (immediately) and deleted when dropped.
    pub fn start() -> TestPostgres {
        let bin = find_bin();
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("keel-pg-")
            .tempdir_in("/tmp")
            .expect("create a directory for the test server")
            .keep();
        let server = TestPostgres {
            bin,
            dir,
            as_postgres,
            created: AtomicU64::new(0),
            schemas_db: tokio::sync::OnceCell::new(),
            stop_on_drop: true,
        };
        if as_postgres {
            server.run(Command::new("chown").arg("postgres").arg(&server.dir));
        }
        server.watchdog();
        let data = server.data_dir();
        server.run(
            server
                .tool("initdb")
                .args(["-A", "trust", "--no-sync", "-U", "postgres", "-D"])
                .arg(&data),
        );
        server.start_again();
        server
    }

    /// Starts the (stopped) server again on the same data.
    pub fn start_again(&self) {
        let options = format!(
            "-k {} -c listen_addresses='' -p {PORT} -c max_connections=400 -c fsync=on",
            self.dir.display()
        );
        self.run(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
    }

    /// Stops the server the way a crash would: `pg_ctl stop -m immediate` (no
    /// checkpoint; the next start recovers from the WAL).
    pub fn stop_immediately(&self) {
        self.run(self.tool("pg_ctl").arg("-D").arg(self.data_dir()).args([
            "-w",
            "-m",
            "immediate",
            "stop",
        ]));
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's Unix socket itself (for a proxy in front of it).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join(format!(".s.PGSQL.{PORT}"))
    }

    /// The URL of database `db` on this server (libpq's `?host=/socket/dir` form).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql:///{db}?host={}&port={PORT}&user=postgres",
            self.dir.display()
        )
    }

    /// A new, empty database; returns its URL.
    pub async fn fresh_database(&self) -> String {
        let n = self.created.fetch_add(1, Ordering::Relaxed);
        let db = format!("keel_test_{n}");
        self.admin(&self.url("postgres"), &format!("CREATE DATABASE {db}"))
            .await;
        self.url(&db)
    }

    /// A new, empty schema in a shared database (cheaper than a database: for tests
    /// that open hundreds of stores); returns a URL whose `search_path` is it.
    pub async fn fresh_schema(&self) -> String {
        let url = self.url("keel_schemas");
        self.schemas_db
            .get_or_init(|| async {
                self.admin(&self.url("postgres"), "CREATE DATABASE keel_schemas")
                    .await;
            })
            .await;
        let n = self.created.fetch_add(1, Ordering::Relaxed);
        self.admin(&url, &format!("CREATE SCHEMA s{n}")).await;
        format!("{url}&options=-c%20search_path%3Ds{n}")
    }

    /// Runs one statement as the superuser on the database at `url`.
    pub async fn admin(&self, url: &str, sql: &str) {
        let config: tokio_postgres::Config = url.parse().expect("a test server URL");
        let (client, connection) = config
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the test server at {url}: {e}"));
        let driver = tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` on the test server: {e}"));
        drop(client);
        let _ = driver.await;
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// One of the server's programs, run as `postgres` when we are root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.current_dir(&self.dir);
        command
    }

    fn run(&self, command: &mut Command) {
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!(
                "{command:?} failed ({}):\n{}{}\nserver log:\n{log}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            );
        }
    }

    /// A process that outlives this one by at most a second, then stops the server
    /// and deletes its directory.
    // The watchdog must outlive this process (which is what it watches); once this
    // process is gone, init reaps it.
    #[allow(clippy::zombie_processes)]
    fn watchdog(&self) {
        let pg_ctl = self.tool("pg_ctl");
        let stop = std::iter::once(pg_ctl.get_program())
            .chain(pg_ctl.get_args())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            data = shell_quote(&self.data_dir().to_string_lossy()),
            dir = shell_quote(&self.dir.to_string_lossy()),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the test server's watchdog");
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self
                .tool("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-w", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// Where `initdb` and `pg_ctl` are: `KEEL_PG_BIN`, Debian's versioned directory
/// (the newest), or `PATH`.
fn find_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEEL_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    {
        return dir;
    }
    panic!(
        "the Postgres tests need a real Postgres server, and its programs (initdb, pg_ctl) \
         were not found in KEEL_PG_BIN, /usr/lib/postgresql/*/bin or PATH. Install them \
         (Debian/Ubuntu: `apt-get install postgresql-15`; elsewhere your distribution's \
         Postgres server package) or set KEEL_PG_BIN to the directory holding initdb. \
         These tests never skip."
    )
}

/// Postgres stores on the binary's shared test server: a fresh database per store;
/// reopening opens a new pool on the same database.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgHarness {
    /// A schema per store instead of a database (for tests opening hundreds).
    pub schema_per_store: bool,
}

impl Harness for PgHarness {
    type Store = PgStore;
    type Guard = String;

    async fn open(&self) -> Result<(PgStore, String)> {
        let server = TestPostgres::shared();
        let url = if self.schema_per_store {
            server.fresh_schema().await
        } else {
            server.fresh_database().await
        };
        Ok((PgStore::open(&url).await?, url))
    }

    async fn reopen(&self, store: PgStore, url: &String) -> Result<PgStore> {
        drop(store);
        PgStore::open(url).await
    }
}

impl super::LeaseHarness for PgHarness {
    type Store = PgStore;
    type Guard = String;

    async fn open(&self, lease_time: std::time::Duration) -> Result<(PgStore, String)> {
        let url = TestPostgres::shared().fresh_database().await;
        Ok((self.another(&url, lease_time).await?, url))
    }

    /// A store with a pool and listener of its own, as another process has.
    async fn another(&self, url: &String, lease_time: std::time::Duration) -> Result<PgStore> {
        crate::postgres::PgOptions::new(url)?
            .lease_time(lease_time)
            .open()
            .await
    }
}

/// Creates the schema at an older `version` on the database at `url`, as an older
/// Keel would have left it (for migration tests).
pub async fn create_schema_at(url: &str, version: i32) -> Result<()> {
    let config = crate::postgres::parse_url(url)?;
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| crate::Error::Backend(e.to_string()))?;
    let driver = tokio::spawn(connection);
    crate::postgres::schema::migrate(&mut client, version, url).await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
