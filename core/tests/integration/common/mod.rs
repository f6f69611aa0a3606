//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod exact;
pub mod local_time;

use std::process::Command;
use std::sync::Mutex;

use ingest_core::{EventFilter, Ingestor, IngestorBuilder, StoredEvent, MAX_PAGE};

// The scenario files every Rust suite runs, by one rule (also the C
// ABI's suite, ffi/tests/scenarios.rs).
#[path = "../../scenarios/files.rs"]
mod files;
pub use files::scenario_files;

/// This test binary, run again as a child process that runs only the test
/// `test` of the module `module` (pass `module_path!()`): `--exact` with the
/// test's name in the binary (`crash::killed_writers_...`, the crate's name
/// dropped from the module path) and `--test-threads=1`. The child knows it
/// is one by the environment its caller adds.
///
/// Checked once per name with `--list`: the filter must select exactly that
/// test. A filter that selects nothing would let each child exit at once
/// with success, and the parent pass without any child having run.
pub fn child_test(module: &str, test: &str) -> Command {
    let module = module.split_once("::").map_or("", |(_, m)| m);
    let name = if module.is_empty() {
        test.to_string()
    } else {
        format!("{module}::{test}")
    };
    let exe = std::env::current_exe().unwrap();
    static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if !checked.contains(&name) {
        let out = Command::new(&exe).args(["--list", "--exact", &name]).output().unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        let tests: Vec<&str> = listed.lines().filter_map(|l| l.strip_suffix(": test")).collect();
        assert_eq!(
            tests,
            [name.as_str()],
            "the child filter selects no single test:\n{listed}"
        );
        checked.push(name.clone());
    }
    drop(checked);
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", &name, "--test-threads=1"]);
    cmd
}

/// Every stored event, paging through the whole store.
pub fn all_events(ing: &Ingestor) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    loop {
        let page = ing
            .events(&EventFilter {
                limit: MAX_PAGE,
                offset: out.len(),
                ..EventFilter::default()
            })
            .unwrap();
        let done = page.len() < MAX_PAGE;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// Floats equal to 1e-9 relative (sums depend on addition order).
pub fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A new, empty store on one backend, for one test. The behaviour suite
/// runs each test on every backend from the same code:
///
/// ```ignore
/// for store in common::backends(Sqlite::Memory) {
///     let ing = store.open();
///     // ...
/// }
/// ```
pub struct TestStore {
    /// "sqlite" or "postgres", for assertion messages.
    pub backend: &'static str,
    location: String,
    _dir: Option<tempfile::TempDir>,
    #[cfg(feature = "postgres")]
    schema: Option<String>,
    /// Whether the PostgreSQL schema may serve another test once emptied
    /// (not after a test changed what emptying leaves, as its version).
    #[cfg(feature = "postgres")]
    reusable: bool,
}

/// Which SQLite store a test wants: a private in-memory one, or a file
/// (reopened, shared between processes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sqlite {
    Memory,
    File,
}

impl TestStore {
    /// What `Ingestor::open` takes: a path, `:memory:` or a URL.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn builder(&self) -> IngestorBuilder {
        Ingestor::builder(&self.location)
    }

    pub fn open(&self) -> Ingestor {
        Ingestor::open(&self.location).unwrap_or_else(|e| panic!("open {}: {e}", self.backend))
    }

    /// Another connection holding the store's write lock until dropped (then
    /// it rolls back): on SQLite `BEGIN IMMEDIATE` on the file, on
    /// PostgreSQL a transaction holding `LOCK TABLE events IN EXCLUSIVE
    /// MODE` (reads go on, writes wait). The store must exist: open it first.
    pub fn hold_write_lock(&self) -> WriteLock {
        match self.backend {
            "sqlite" => {
                assert_ne!(self.location, ":memory:", "a lock needs a file store: Sqlite::File");
                let c = rusqlite::Connection::open(&self.location).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteLock::Sqlite(c)
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                let mut c = self.postgres_client();
                c.batch_execute("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE").unwrap();
                WriteLock::Postgres(c)
            }
            other => unreachable!("backend {other}"),
        }
    }

    /// A connection of its own to the store's PostgreSQL schema (its
    /// tables by their bare names), beside the store's pool.
    #[cfg(feature = "postgres")]
    pub fn postgres_client(&self) -> ::postgres::Client {
        let schema = self.schema.as_deref().expect("a PostgreSQL store");
        let mut c = ::postgres::Client::connect(&postgres::server_url(), ::postgres::NoTls).unwrap();
        c.batch_execute(&format!("SET search_path = {schema}")).unwrap();
        c
    }

    /// Mark the store's schema as written by a newer library: SQLite's
    /// `user_version`, PostgreSQL's `ingest_schema.version`. (A PostgreSQL
    /// schema so marked is dropped after the test, never reused.)
    pub fn set_schema_version(&mut self, version: i64) {
        match self.backend {
            "sqlite" => rusqlite::Connection::open(&self.location)
                .unwrap()
                .execute_batch(&format!("PRAGMA user_version = {version}"))
                .unwrap(),
            #[cfg(feature = "postgres")]
            "postgres" => {
                self.reusable = false;
                let schema = self.schema.as_deref().unwrap();
                ::postgres::Client::connect(&postgres::server_url(), ::postgres::NoTls)
                    .unwrap()
                    .batch_execute(&format!("UPDATE {schema}.ingest_schema SET version = {version}"))
                    .unwrap();
            }
            other => unreachable!("backend {other}"),
        }
    }

    /// Where no store of this backend can be opened: a path under a
    /// directory that does not exist; a PostgreSQL URL whose port nothing
    /// listens on.
    pub fn unreachable_location(&self) -> String {
        match self.backend {
            "sqlite" => "/nonexistent-dir/for/ingest.db".into(),
            #[cfg(feature = "postgres")]
            "postgres" => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                format!("postgres://postgres@127.0.0.1:{port}/test?schema=t_unreachable")
            }
            other => unreachable!("backend {other}"),
        }
    }
}

/// See [`TestStore::hold_write_lock`].
pub enum WriteLock {
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres(::postgres::Client),
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Rolled back here, before the next statement of the test: a
        // connection's close alone reaches a PostgreSQL server later.
        let _ = match self {
            WriteLock::Sqlite(c) => c.execute_batch("ROLLBACK").map_err(|e| e.to_string()),
            #[cfg(feature = "postgres")]
            WriteLock::Postgres(c) => c.batch_execute("ROLLBACK").map_err(|e| e.to_string()),
        };
    }
}

/// One new store per backend: SQLite (as `sqlite` says), then PostgreSQL
/// when the core is built with the `postgres` feature.
pub fn backends(sqlite: Sqlite) -> Vec<TestStore> {
    let (location, dir) = match sqlite {
        Sqlite::Memory => (":memory:".to_string(), None),
        Sqlite::File => {
            let dir = tempfile::tempdir().unwrap();
            (dir.path().join("test.db").to_str().unwrap().to_string(), Some(dir))
        }
    };
    #[allow(unused_mut)]
    let mut out = vec![TestStore {
        backend: "sqlite",
        location,
        _dir: dir,
        #[cfg(feature = "postgres")]
        schema: None,
        #[cfg(feature = "postgres")]
        reusable: true,
    }];
    #[cfg(feature = "postgres")]
    out.extend(postgres::store());
    #[cfg(not(feature = "postgres"))]
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI runs the behaviour suite on PostgreSQL too: build the tests with --features postgres"
    );
    out
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, MutexGuard, OnceLock};

    use super::TestStore;

    /// The server the tests use: `INGEST_TEST_POSTGRES`, or this machine's.
    pub fn server_url() -> String {
        std::env::var("INGEST_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// Whether the server answers. Unreachable is a failure under CI
    /// (`CI=true`), and elsewhere skips the PostgreSQL half with a notice.
    fn reachable() -> bool {
        static REACHABLE: OnceLock<bool> = OnceLock::new();
        *REACHABLE.get_or_init(|| match ::postgres::Client::connect(&server_url(), ::postgres::NoTls) {
            Ok(mut c) => {
                drop_schemas_of_ended_runs(&mut c);
                true
            }
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL at {} is unreachable under CI: {e}", server_url())
            }
            Err(e) => {
                eprintln!(
                    "NOTE: PostgreSQL at {} is unreachable ({e}); running these tests on SQLite only",
                    server_url()
                );
                false
            }
        })
    }

    /// Test schemas are named `t_<pid>_...` and kept for reuse while their
    /// process runs; those of processes that have ended go.
    fn drop_schemas_of_ended_runs(c: &mut ::postgres::Client) {
        let Ok(rows) = c.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'", &[]) else {
            return;
        };
        for row in rows {
            let name: String = row.get(0);
            let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
            }
        }
    }

    /// Schemas emptied by a finished test, ready for the next: creating
    /// the tables is most of the cost of a store, and the property tests
    /// make hundreds.
    static FREE: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// One connection for creating and emptying schemas.
    fn admin() -> MutexGuard<'static, Option<::postgres::Client>> {
        static ADMIN: Mutex<Option<::postgres::Client>> = Mutex::new(None);
        let mut c = ADMIN.lock().unwrap_or_else(|e| e.into_inner());
        if c.as_ref().is_none_or(|c| c.is_closed()) {
            let mut client = ::postgres::Client::connect(&server_url(), ::postgres::NoTls).unwrap();
            // A test that died holding a lock must not hang the next.
            client.batch_execute("SET lock_timeout = '5s'").unwrap();
            *c = Some(client);
        }
        c
    }

    /// A store in a schema of its own: new, or emptied after another test.
    pub fn store() -> Option<TestStore> {
        if !reachable() {
            return None;
        }
        let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let schema = reused.unwrap_or_else(|| {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            format!(
                "t_{}_{}_{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )
        });
        let url = server_url();
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(TestStore {
            backend: "postgres",
            location: format!("{url}{sep}schema={schema}"),
            _dir: None,
            schema: Some(schema),
            reusable: true,
        })
    }

    impl Drop for TestStore {
        fn drop(&mut self) {
            let Some(schema) = self.schema.take() else {
                return;
            };
            let mut admin = admin();
            let client = admin.as_mut().unwrap();
            if !self.reusable {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                return;
            }
            // Emptied (DELETE: a TRUNCATE's file work costs more on tables
            // this small) and kept for the next test; if that fails (never
            // opened, or still locked), dropped.
            let emptied = client.batch_execute(&format!(
                "SET LOCAL synchronous_commit = off;
                 DELETE FROM {schema}.events; DELETE FROM {schema}.rejected; DELETE FROM {schema}.rollups;
                 DELETE FROM {schema}.client_days;
                 DELETE FROM {schema}.rules; DELETE FROM {schema}.meta; DELETE FROM {schema}.api_keys;
                 UPDATE {schema}.dead_letter_stats SET evicted = 0;
                 UPDATE {schema}.lifecycle SET pruned_before = NULL, pruned_events = 0, pruned_rejected = 0,
                     archive_path = NULL, archive_bytes = NULL;"
            ));
            if emptied.is_ok() {
                FREE.lock().unwrap_or_else(|e| e.into_inner()).push(schema);
            } else {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}
