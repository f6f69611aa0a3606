//! Where a store lives: a SQLite file, a private in-memory database, or a
//! PostgreSQL URL, read from what `Ingestor::open` is given; and the
//! backend that opens each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Result;
use crate::options::Durability;
use crate::storage::sqlite::SqliteBackend;
use crate::storage::{Backend, Engine, StoreOptions};

/// Where a store lives, read from the path or URL it is opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    Memory,
    File(PathBuf),
    /// Kept as given: the URL may carry options for the client.
    Postgres(String),
}

impl Location {
    /// For messages and logs: a URL's password is hidden.
    pub(crate) fn display(&self) -> String {
        match self {
            Location::Memory => ":memory:".into(),
            Location::File(p) => p.display().to_string(),
            Location::Postgres(url) => hide_password(url),
        }
    }

    pub(crate) fn of(path: &Path) -> Self {
        match path.to_str() {
            Some(":memory:") => Location::Memory,
            Some(url) if crate::storage::is_postgres_url(url) => Location::Postgres(url.to_string()),
            _ => Location::File(path.to_path_buf()),
        }
    }
}

/// `url` with the password of its user part and any `password=` option
/// replaced by `***`.
fn hide_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

pub(crate) fn open_store(location: &Location, durability: Durability, busy_timeout: Duration) -> Result<Engine> {
    let opts = StoreOptions {
        durability,
        busy_timeout,
    };
    let backend: Box<dyn Backend> = match location {
        Location::Memory => Box::new(SqliteBackend::open(None, opts)?),
        Location::File(path) => Box::new(SqliteBackend::open(Some(path), opts)?),
        #[cfg(feature = "postgres")]
        Location::Postgres(url) => Box::new(crate::storage::postgres::PostgresBackend::open(url, opts)?),
        #[cfg(not(feature = "postgres"))]
        Location::Postgres(_) => {
            return Err(crate::error::Error::arg(
                "this build of ingest has no PostgreSQL backend; build it with the `postgres` feature",
            ))
        }
    };
    Engine::open(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_hide_passwords_only() {
        let shown = |p: &str| Location::of(Path::new(p)).display();
        assert_eq!(
            shown("postgres://app:s3cr@t@db:5432/m?schema=x"),
            "postgres://app:***@db:5432/m?schema=x"
        );
        assert_eq!(
            shown("postgresql://db/m?user=app&password=s3cret&schema=x"),
            "postgresql://db/m?user=app&password=***&schema=x"
        );
        assert_eq!(shown("postgres://app@db"), "postgres://app@db");
        assert_eq!(shown("data/x.db"), "data/x.db");
        assert_eq!(shown(":memory:"), ":memory:");
    }
}
