//! The SQLite backend: one writer connection behind a mutex, a small pool of
//! reader connections (WAL lets them read while the writer writes), every
//! PRAGMA set in one place, every write in one IMMEDIATE transaction, and
//! the file's identity checked around each write. What it stores and how
//! is the engine's (engine.rs).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use super::checkpoint::{Checkpointer, Thresholds};
use super::db::{Arg, Backend, Db, NewEvent, Refusal, Row, Stamp};
use super::migrate::Schema;
use super::schema::SCHEMA;
use super::StoreOptions;
use crate::error::{Error, Result, StorageKind};
use crate::exact::ExactSum;
use crate::Durability;

/// Idle reader connections kept for reuse.
const IDLE_READERS: usize = 4;

pub(crate) struct SqliteBackend {
    writer: Mutex<Connection>,
    /// `None` for an in-memory database, which only the writer can see.
    readers: Option<Mutex<Vec<Connection>>>,
    path: Option<PathBuf>,
    /// The file's identity when opened: a write must never land in a file
    /// that was since removed or replaced, which SQLite would allow.
    identity: Option<FileId>,
    opts: StoreOptions,
    /// `None` for an in-memory database (no log), or when no thread could
    /// be started (the writer then checkpoints as SQLite does by default).
    /// Held for its thread, which stops when the store is dropped.
    _checkpointer: Option<Checkpointer>,
}

/// (device, inode) of a file.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<FileId> {
    None
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        let kind = match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StorageKind::Busy,
            Some(ErrorCode::ReadOnly) => StorageKind::ReadOnly,
            Some(ErrorCode::DiskFull) => StorageKind::Full,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StorageKind::Corrupt,
            Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => StorageKind::Io,
            _ => StorageKind::Other,
        };
        let message = match (kind, &e) {
            (StorageKind::Busy, _) => format!("the database stayed locked past the busy timeout: {e}"),
            _ => e.to_string(),
        };
        Error::Storage {
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}

impl SqliteBackend {
    /// Open (creating if needed) the database at `path`, or an in-memory one
    /// for `None`. The engine brings its schema up to date.
    pub(crate) fn open(path: Option<&Path>, opts: StoreOptions) -> Result<Self> {
        let mut writer = new_connection(path, &opts, false)?;
        let checkpointer = match path {
            Some(p) => Checkpointer::start(&mut writer, new_connection(Some(p), &opts, false)?, CHECKPOINT_AT),
            None => None,
        };
        Ok(SqliteBackend {
            writer: Mutex::new(writer),
            readers: path.map(|_| Mutex::new(Vec::new())),
            path: path.map(Path::to_path_buf),
            identity: path.and_then(file_id),
            opts,
            _checkpointer: checkpointer,
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock left no transaction open (the
        // Transaction's drop rolled it back), so the connection is usable.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(pool) = &self.readers else {
            return f(&self.writer());
        };
        let idle = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => new_connection(self.path.as_deref(), &self.opts, true)?,
        };
        let out = f(&conn);
        let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}

/// WAL pages written before the log is folded back into the database
/// (SQLite's default is 1 000). A commit of a batch writes a few hundred
/// pages, so the default checkpointed (and synced, at durability normal)
/// every few commits; 10 000 pages (40 MB) do it about ten times less
/// often, with the same pages written. The checkpoint thread takes them
/// from there; the writer itself only at four times as many.
const CHECKPOINT_AT: Thresholds = Thresholds {
    wake: 10_000,
    backstop: 40_000,
};

/// The one place connections are made: every PRAGMA is set here.
fn new_connection(path: Option<&Path>, opts: &StoreOptions, reader: bool) -> Result<Connection> {
    let conn = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    conn.busy_timeout(opts.busy_timeout)?;
    // Queries are built from a handful of shapes per piece and level; keep
    // them all compiled.
    conn.set_prepared_statement_cache_capacity(128);
    if !reader {
        // Takes effect only while the file has no tables: a new file keeps
        // its free pages apart, so a prune gives them back without a full
        // VACUUM (see `reclaim`).
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    }
    if path.is_some() {
        let mode: String = retry_busy(opts.busy_timeout, || {
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        })?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::storage(
                StorageKind::Other,
                format!("could not switch the database to WAL mode (it is in {mode} mode)"),
            ));
        }
    }
    let sync = match opts.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;
         PRAGMA wal_autocheckpoint = {};",
        CHECKPOINT_AT.wake
    ))?;
    if reader {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    }
    add_exact_function(&conn)?;
    Ok(conn)
}

/// `ingest_exact_add(a, b)`: the exact sum of two totals, each the bytes of
/// an [`ExactSum`], as rollup upserts add them (SQLite has no exact number
/// type of its own).
fn add_exact_function(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "ingest_exact_add",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            let read = |i| {
                ExactSum::from_bytes(ctx.get_raw(i).as_blob()?)
                    .ok_or_else(|| rusqlite::Error::UserFunctionError("a stored total is not an exact sum".into()))
            };
            let mut sum = read(0)?;
            sum.add(&read(1)?);
            Ok(sum.to_bytes())
        },
    )
}

/// Retry `f` while it fails with SQLITE_BUSY, up to `timeout`. Needed where
/// SQLite answers busy at once instead of calling the busy handler: a journal
/// mode change racing another process that is creating the same file.
fn retry_busy<T>(timeout: Duration, mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let until = std::time::Instant::now() + timeout;
    loop {
        match f() {
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Run `f` in `tx`: commit on `Ok`, roll back on `Err` (dropping `tx`).
/// Every transaction of this backend goes through here.
fn in_transaction(tx: Transaction<'_>, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()> {
    f(&mut Conn(&tx))?;
    tx.commit()?;
    Ok(())
}

/// BEGIN IMMEDIATE on `conn`, waiting up to `timeout` for another
/// process's write lock. SQLite's own busy handler sleeps 1, 2, 5, 10 and
/// up to 100 ms between tries, while another process holds the lock for
/// about one commit: two server processes over one file then wait far
/// longer than either writes. Tries here come 50 us apart, doubling to 1 ms.
fn begin_immediate(conn: &Connection, timeout: Duration) -> Result<Transaction<'_>> {
    conn.busy_timeout(Duration::ZERO)?;
    let until = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_micros(50);
    let begun = loop {
        match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && std::time::Instant::now() < until => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(1));
            }
            other => break other,
        }
    };
    // The statements inside (a checkpoint's, a reader's page) wait as SQLite does.
    conn.busy_timeout(timeout)?;
    Ok(begun?)
}

impl SqliteBackend {
    /// Fail when the database file was removed or replaced since it was
    /// opened: SQLite would go on writing to the unlinked file, and an
    /// "accepted" answer would then promise data that no one can read.
    fn check_file(&self) -> Result<()> {
        let (Some(path), Some(id)) = (&self.path, self.identity) else {
            return Ok(());
        };
        if file_id(path) == Some(id) {
            return Ok(());
        }
        Err(Error::storage(
            StorageKind::Io,
            format!(
                "the database file {} was removed or replaced while open; reopen the store",
                path.display()
            ),
        ))
    }
}

impl Backend for SqliteBackend {
    fn write(&self, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()> {
        self.check_file()?;
        let writer = self.writer();
        in_transaction(begin_immediate(&writer, self.opts.busy_timeout)?, f)?;
        // Removed between the check above and the commit: the commit went to
        // a file no one can open again, so it does not count as kept.
        self.check_file()
    }

    fn read(&self, snapshot: bool, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()> {
        self.with_reader(|c| {
            if snapshot {
                in_transaction(Transaction::new_unchecked(c, TransactionBehavior::Deferred)?, f)
            } else {
                f(&mut Conn(c))
            }
        })
    }

    fn streams_callers(&self) -> bool {
        true
    }

    fn schema(&self) -> &'static Schema {
        &SCHEMA
    }

    /// Free pages go back to the file system: at once where the file keeps
    /// its free pages apart (incremental auto-vacuum, every file created
    /// since pruning exists), else by one full VACUUM that also turns that
    /// mode on for the next prune. The WAL is then folded in and cut.
    fn reclaim(&self) -> Result<()> {
        self.check_file()?;
        let conn = self.writer();
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        if mode == INCREMENTAL_VACUUM {
            // It frees pages as it is stepped: step it to the end.
            let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        } else {
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        }
        if self.path.is_some() {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    fn bytes_used(&self) -> Result<u64> {
        let conn = self.writer();
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages * size).max(0) as u64)
    }
}

/// `PRAGMA auto_vacuum`'s value for incremental.
const INCREMENTAL_VACUUM: i64 = 2;

/// A connection, or a transaction on one, as the engine uses it. Statements
/// are prepared once per connection (the texts are a bounded set of shapes)
/// and bound without allocating.
struct Conn<'c>(&'c Connection);

impl Conn<'_> {
    fn prepared(&self, sql: &str, args: &[Arg<'_>]) -> Result<rusqlite::CachedStatement<'_>> {
        let mut stmt = self.0.prepare_cached(sql)?;
        for (i, arg) in args.iter().enumerate() {
            let i = i + 1;
            match *arg {
                Arg::Int(n) => stmt.raw_bind_parameter(i, n),
                Arg::Text(t) => stmt.raw_bind_parameter(i, t),
                Arg::OptText(t) => stmt.raw_bind_parameter(i, t),
                Arg::OptReal(x) => stmt.raw_bind_parameter(i, x),
                Arg::Blob(b) => stmt.raw_bind_parameter(i, b),
                Arg::Exact(x) => stmt.raw_bind_parameter(i, x.to_bytes()),
            }?;
        }
        Ok(stmt)
    }
}

impl Db for Conn<'_> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(self.prepared(sql, args)?.raw_execute()? as u64)
    }

    fn query(&mut self, sql: &str, args: &[Arg<'_>], each: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()> {
        let mut stmt = self.prepared(sql, args)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            each(r)?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn refusal(&self, e: &Error) -> Option<Refusal> {
        let Error::Storage { source: Some(s), .. } = e else {
            return None;
        };
        match s.downcast_ref::<rusqlite::Error>()? {
            rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => {
                Some(Refusal::Check)
            }
            rusqlite::Error::SqliteFailure(f, Some(m))
                if f.extended_code == rusqlite::ffi::SQLITE_ERROR && m.starts_with("no such table") =>
            {
                Some(Refusal::NoSuchTable)
            }
            _ => None,
        }
    }

    /// A statement per row, prepared once per call, and the new id from the
    /// connection rather than from a RETURNING row.
    fn insert_events(&mut self, rows: &[NewEvent<'_>], stamp: Stamp) -> Result<Vec<Option<i64>>> {
        let mut insert = self.0.prepare_cached(
            "INSERT INTO events (dedup_key, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (dedup_key) DO NOTHING",
        )?;
        rows.iter()
            .map(|row| {
                let e = row.event;
                let changed = insert.execute(rusqlite::params![
                    row.key,
                    e.client_id,
                    e.metric,
                    e.timestamp.millis(),
                    e.amount,
                    e.event_id,
                    row.attributes,
                    stamp.received_at,
                    stamp.rules_version
                ])?;
                // One row changed: this insert made it, so it holds the
                // connection's last rowid. None: the key was already there.
                Ok((changed == 1).then(|| self.0.last_insert_rowid()))
            })
            .collect()
    }

    fn schema_version(&mut self) -> Result<i64> {
        Ok(self.0.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn set_schema_version(&mut self, version: i64) -> Result<()> {
        Ok(self.0.execute_batch(&format!("PRAGMA user_version = {version}"))?)
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }

    fn real(&self, i: usize) -> Result<f64> {
        Ok(self.get(i)?)
    }

    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }

    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.get(i)?)
    }

    fn exact(&self, i: usize) -> Result<ExactSum> {
        let value = self.get_ref(i)?;
        value
            .as_blob()
            .ok()
            .and_then(ExactSum::from_bytes)
            .ok_or_else(|| Error::storage(StorageKind::Corrupt, "a stored total is not an exact sum"))
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
