//! From what a person types to a connection configuration: libpq's URL forms, libpq's
//! environment defaults, and the text shown in errors (never the password).

use std::path::Path;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::error::{Error, Result};

/// Parses a Postgres URL, filling in what libpq would take from the environment
/// (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`) and its default socket
/// directory, and checks that this build can honour it.
pub(crate) fn parse(text: &str) -> Result<tokio_postgres::Config> {
    let bad = |reason: String| Error::BadUrl {
        url: redact(text),
        reason,
    };
    let mut config: tokio_postgres::Config = text.trim().parse().map_err(|e| {
        bad(format!(
            "{e}; expected postgres://user[:password]@host[:port]/database, or \
             postgresql:///database?host=/socket/dir for a Unix socket"
        ))
    })?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',') {
                    if host.starts_with('/') {
                        config.host_path(host);
                    } else {
                        config.host(host);
                    }
                }
            }
            None => {
                config.host_path(default_socket_dir());
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = env("PGPORT")
    {
        let port = port
            .parse()
            .map_err(|_| bad(format!("PGPORT=`{port}` is not a port number")))?;
        config.port(port);
    }
    if config.get_user().is_none()
        && let Some(user) = env("PGUSER")
    {
        config.user(user);
    }
    if config.get_password().is_none()
        && let Some(password) = env("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_dbname().is_none()
        && let Some(db) = env("PGDATABASE")
    {
        config.dbname(db);
    }
    if config.get_application_name().is_none() {
        config.application_name("keel");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(bad(
            "sslmode=require: this build of Keel speaks to Postgres without TLS. Connect \
             over a Unix socket, a private network, or a TLS tunnel (ssh -L, stunnel), \
             and drop sslmode=require"
                .to_owned(),
        ));
    }
    // This build has no TLS, so `prefer` (the default) means plain text.
    config.ssl_mode(SslMode::Disable);
    Ok(config)
}

/// libpq's default: Debian's socket directory if a server lives there, else `/tmp`.
fn default_socket_dir() -> &'static str {
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql"
    } else {
        "/tmp"
    }
}

/// The store as shown in messages: `postgres://user@host:port/db`, no password.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("[socket {}/.s.PGSQL.{}]", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("{addr}:{}", port(i)))
            .collect();
    }
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

/// `text` with any password replaced by `***`: the user-info part of a URL and a
/// `password=` parameter.
pub(crate) fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let start = scheme_end + 3 + colon + 1;
            out.replace_range(start..scheme_end + 3 + at, "***");
        }
    }
    if let Some(at) = out.find("password=") {
        let start = at + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_libpq_forms() {
        let c = parse("postgres://alice@db.example:6543/keel").unwrap();
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_dbname(), Some("keel"));
        assert_eq!(describe(&c), "postgres://alice@db.example:6543/keel");

        let c = parse("postgresql:///keel?host=/run/pg&user=bob").unwrap();
        assert_eq!(c.get_hosts(), &[Host::Unix("/run/pg".into())]);
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(
            describe(&c),
            "postgres://bob@[socket /run/pg/.s.PGSQL.5432]/keel"
        );

        let c = parse("postgresql://carol@%2Frun%2Fpg/keel").unwrap();
        assert_eq!(c.get_hosts(), &[Host::Unix("/run/pg".into())]);
    }

    #[test]
    fn rejects_what_it_cannot_honour_with_a_clear_reason() {
        let err = parse("postgres://u:secret@h:notaport/db").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::BadUrl { .. }), "{err:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("expected postgres://"), "{text}");

        let err = parse("postgres://u@h/db?sslmode=require").unwrap_err();
        assert!(err.to_string().contains("without TLS"), "{err}");
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://u:s3cret@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("postgres://u@h/db?password=s3cret&x=1"),
            "postgres://u@h/db?password=***&x=1"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let c = parse("postgres://u:s3cret@h/db").unwrap();
        assert!(!describe(&c).contains("s3cret"));
    }
}
