//! The SQLite backend: one writer connection behind a mutex, a small pool of
//! reader connections (WAL lets them read while the writer writes), every
//! PRAGMA set in one place, and every write in one IMMEDIATE transaction.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OptionalExtension, ToSql, TransactionBehavior};
use serde_json::{Map, Value};

use super::checkpoint::{Checkpointer, Thresholds};
use super::group::{Committed, Group, GroupCommit};
use super::schema::{upgrade, MIGRATIONS};
use super::sql::{self, level_code, parse_stored, stored_time, Arg, EventRow, PieceRow, RollupDelta, RollupTable};
use super::{EventFilter, Store, StoreOptions, StoredCounts, WriteItem, Written};
use crate::aggregate::{Aggregate, Bucket, Partials, Query};
use crate::error::{Error, Result, StorageKind};
use crate::event::{Event, Reason, RejectedEvent, StoredEvent};
use crate::failure::FailPoint;
use crate::rules::Rules;
use crate::timestamp::Timestamp;
use crate::Durability;

/// Idle reader connections kept for reuse.
const IDLE_READERS: usize = 4;

pub(crate) struct SqliteStore {
    writer: Mutex<Connection>,
    group: GroupCommit,
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

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, or an in-memory one
    /// for `None`, and bring its schema up to date.
    pub(crate) fn open(path: Option<&Path>, opts: StoreOptions) -> Result<Self> {
        let mut writer = new_connection(path, &opts, false)?;
        migrate(&writer)?;
        let checkpointer = match path {
            Some(p) => Checkpointer::start(&mut writer, new_connection(Some(p), &opts, false)?, CHECKPOINT_AT),
            None => None,
        };
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            group: GroupCommit::default(),
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

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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
    Ok(conn)
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

fn migrate(conn: &Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    // IMMEDIATE: two processes opening a new file at once must not both
    // create the schema; the second waits, then finds it done.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(Error::storage(
                StorageKind::Other,
                format!("the database has schema version {version}; this library knows up to {known}"),
            ));
        }
        for statement in upgrade(&MIGRATIONS[version as usize..], &sql::Sqlite) {
            conn.execute_batch(&statement)?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {known}"))?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Error::from),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Run `f` in an IMMEDIATE transaction: commit on `Ok`, roll back on `Err`.
fn in_transaction<T>(conn: &mut Connection, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

impl SqliteStore {
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

    /// One group commit's transaction.
    fn write_group(&self, group: &mut Group<'_>, rules_version: i64) -> Result<Vec<Written>> {
        self.check_file()?;
        let fail = group.fail();
        let mut conn = self.writer();
        let out = in_transaction(&mut conn, |tx| {
            if fail == Some(FailPoint::BeforeInsert) {
                return Err(Error::Injected(FailPoint::BeforeInsert));
            }
            let mut written = Vec::new();
            // Each caller's items as they come: the group's later callers
            // are still on their way while the first ones are written.
            while let Some(items) = group.next() {
                write_items(tx, items, rules_version, &mut written)?;
            }
            let stored = group
                .items()
                .iter()
                .zip(&written)
                .filter_map(|(item, w)| match (item, w) {
                    (WriteItem::Event { event, .. }, Written::Inserted(_)) => Some(event),
                    _ => None,
                });
            let deltas = sql::rollup_deltas(stored);
            upsert_deltas(tx, RollupTable::Rollups, &deltas.across)?;
            upsert_deltas(tx, RollupTable::ClientDays, &deltas.client_days)?;
            if fail == Some(FailPoint::AfterInsert) {
                fail_with_real_statement(tx, FailPoint::AfterInsert)?;
            }
            Ok(written)
        })?;
        // Removed between the check above and the commit: the commit went to
        // a file no one can open again, so it does not count as kept.
        self.check_file()?;
        if fail == Some(FailPoint::AfterCommit) {
            return Err(Error::Injected(FailPoint::AfterCommit));
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn register_rules(&self, rules: &Rules, rekey: &dyn Fn(&Event) -> Vec<u8>) -> Result<i64> {
        let (document, key_spec) = sql::rules_record(rules);
        in_transaction(&mut self.writer(), |tx| {
            tx.execute(
                "INSERT INTO rules (document, created_at) VALUES (?1, ?2) ON CONFLICT (document) DO NOTHING",
                params![document, Timestamp::now().millis()],
            )?;
            let version: i64 = tx.query_row("SELECT version FROM rules WHERE document = ?1", [&document], |r| {
                r.get(0)
            })?;
            let stored: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'dedup_key'", [], |r| r.get(0))
                .optional()?;
            if stored.as_deref() != Some(key_spec.as_str()) {
                if stored.is_some() {
                    rekey_events(tx, rekey, &key_spec)?;
                }
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('dedup_key', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [&key_spec],
                )?;
            }
            Ok(version)
        })
    }

    fn write(&self, items: Vec<WriteItem>, rules_version: i64, fail: Option<FailPoint>) -> Result<Committed> {
        self.group
            .write(items, fail, |group| self.write_group(group, rules_version))
    }

    fn find(&self, key: &[u8]) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT id FROM events WHERE dedup_key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
    }

    fn aggregate(&self, q: &Query, fail: bool) -> Result<Aggregate> {
        self.read(|c| {
            // A read transaction: rollups and edge scans see one snapshot.
            c.execute_batch("BEGIN")?;
            let out = (|| {
                if fail {
                    fail_with_real_statement(c, FailPoint::Aggregate)?;
                }
                aggregate_in(c, q)
            })();
            let _ = c.execute_batch("COMMIT");
            out
        })
    }

    fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>> {
        let (sql, args) = sql::list_events(f);
        self.read(|c| query_events(c, &sql, &args))
    }

    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let (sql, args) = sql::events_after(after, limit);
        self.read(|c| query_events(c, &sql, &args))
    }

    fn rejected(&self, limit: usize, offset: usize) -> Result<Vec<RejectedEvent>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, raw, reasons, rules_version, received_at, attempts
                 FROM rejected ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            )?;
            let rows = stmt.query_map(params![limit as i64, offset as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, raw, reasons, rules_version, received_at, attempts) = row?;
                out.push(RejectedEvent {
                    id,
                    raw: parse_stored(&raw, "raw")?,
                    reasons: parse_stored::<Vec<Reason>>(&reasons, "reasons")?,
                    rules_version,
                    received_at: stored_time(received_at)?,
                    attempts,
                });
            }
            Ok(out)
        })
    }

    fn rejected_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, Value)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT id, raw FROM rejected WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = stmt.query_map(params![after, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, raw) = row?;
                out.push((id, parse_stored(&raw, "raw")?));
            }
            Ok(out)
        })
    }

    fn counts(&self) -> Result<StoredCounts> {
        self.read(|c| {
            let events: i64 = c.query_row(sql::COUNT_EVENTS, [level_code(Bucket::Month)], |r| r.get(0))?;
            let rejected: i64 = c.query_row("SELECT COUNT(*) FROM rejected", [], |r| r.get(0))?;
            Ok(StoredCounts {
                events: events as u64,
                rejected: rejected as u64,
            })
        })
    }
}

/// Insert `items` (events and rejections), adding what was done with each
/// to `out`. The rollups are the caller's: once per transaction.
fn write_items(
    tx: &rusqlite::Transaction<'_>,
    items: &[WriteItem],
    rules_version: i64,
    out: &mut Vec<Written>,
) -> Result<()> {
    let now = Timestamp::now().millis();
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (dedup_key, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (dedup_key) DO NOTHING",
    )?;
    let mut find = tx.prepare_cached("SELECT id FROM events WHERE dedup_key = ?1")?;
    let mut unreject = tx.prepare_cached("DELETE FROM rejected WHERE id = ?1")?;
    let mut reject = tx.prepare_cached(
        "INSERT INTO rejected (digest, raw, reasons, rules_version, received_at, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, 1)
         ON CONFLICT (digest) DO UPDATE SET
             reasons = excluded.reasons,
             rules_version = excluded.rules_version,
             attempts = attempts + ?6",
    )?;
    out.reserve(items.len());
    // The id of each key met in these items: a repeat (a client's retry that
    // lands in the same batch, about one event in ten) is answered from it,
    // without an insert that fails and a lookup.
    let mut seen = foldhash::HashMap::with_capacity_and_hasher(items.len(), Default::default());
    // One buffer for every event's attributes text: no allocation per event.
    let mut buffer = Vec::new();
    for item in items {
        match item {
            WriteItem::Event { key, event, replaces } => {
                if let Some(id) = replaces {
                    unreject.execute([id])?;
                }
                if let Some(&id) = seen.get(key.as_slice()) {
                    out.push(Written::Duplicate(id));
                    continue;
                }
                buffer.clear();
                // serde_json writes UTF-8, and cannot fail on a map of values.
                let attributes = match serde_json::to_writer(&mut buffer, &event.attributes) {
                    Ok(()) => std::str::from_utf8(&buffer).unwrap_or("{}"),
                    Err(_) => "{}",
                };
                let changed = insert.execute(params![
                    key,
                    event.client_id,
                    event.metric,
                    event.timestamp.millis(),
                    event.amount,
                    event.event_id,
                    attributes,
                    now,
                    rules_version
                ])?;
                // One row changed: this insert made it, so it holds the
                // connection's last rowid. None: the key was already there.
                let inserted = (changed == 1).then(|| tx.last_insert_rowid());
                let (id, written) = match inserted {
                    Some(id) => (id, Written::Inserted(id)),
                    None => {
                        let id = find.query_row([key], |r| r.get(0))?;
                        (id, Written::Duplicate(id))
                    }
                };
                seen.insert(key.as_slice(), id);
                out.push(written);
            }
            WriteItem::Rejected {
                raw,
                digest,
                reasons,
                new_attempt,
            } => {
                let reasons = serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into());
                reject.execute(params![
                    &digest[..],
                    raw,
                    reasons,
                    rules_version,
                    now,
                    *new_attempt as i64
                ])?;
                out.push(Written::Rejected);
            }
        }
    }
    Ok(())
}

/// Add `deltas` to `table` in multi-row statements.
fn upsert_deltas(tx: &rusqlite::Transaction<'_>, table: RollupTable, deltas: &[RollupDelta<'_>]) -> Result<()> {
    for run in sql::upsert_runs(deltas) {
        let mut upsert = tx.prepare_cached(table.upsert(run.len()))?;
        let mut i = 0;
        for d in run {
            let count = d.stats.count as i64;
            let key: &[&dyn ToSql] = match table {
                RollupTable::Rollups => &[&d.level, &d.bucket, &d.metric],
                RollupTable::ClientDays => &[&d.bucket, &d.client_id, &d.metric],
            };
            let stats: [&dyn ToSql; 4] = [&count, &d.stats.sum, &d.stats.min, &d.stats.max];
            for v in key.iter().chain(&stats) {
                i += 1;
                upsert.raw_bind_parameter(i, v)?;
            }
        }
        upsert.raw_execute()?;
    }
    Ok(())
}

/// Make the current transaction fail through the database itself: a write
/// that violates a CHECK constraint, or, on a read-only connection, a read of
/// a table that does not exist. The error that comes back is SQLite's own.
fn fail_with_real_statement(c: &Connection, point: FailPoint) -> Result<()> {
    let result = if point == FailPoint::Aggregate {
        c.query_row("SELECT * FROM \"injected aggregate failure\"", [], |_| Ok(()))
            .map(|_| ())
    } else {
        c.execute("INSERT INTO fault_probe (point) VALUES (?1)", [point.as_str()])
            .map(|_| ())
    };
    match result {
        Err(e)
            if extended_code(&e) == Some(rusqlite::ffi::SQLITE_CONSTRAINT_CHECK)
                || (point == FailPoint::Aggregate && extended_code(&e) == Some(rusqlite::ffi::SQLITE_ERROR)) =>
        {
            Err(Error::Injected(point))
        }
        // Anything else is a real failure that happened to strike here.
        Err(other) => Err(other.into()),
        Ok(()) => Err(Error::storage(
            StorageKind::Other,
            "injected failure statement did not fail",
        )),
    }
}

fn rekey_events(tx: &rusqlite::Transaction<'_>, rekey: &dyn Fn(&Event) -> Vec<u8>, spec: &str) -> Result<()> {
    // Two passes: park every key on a value no real key has (real keys start
    // with a tag letter), then write the new keys, so that a new key never
    // collides with a not-yet-updated old one.
    tx.execute("UPDATE events SET dedup_key = CAST(X'00' || id AS BLOB)", [])?;
    let mut select = tx.prepare("SELECT id, client_id, metric, ts, amount, event_id FROM events")?;
    let mut update = tx.prepare("UPDATE events SET dedup_key = ?1 WHERE id = ?2")?;
    let mut owner = tx.prepare("SELECT id FROM events WHERE dedup_key = ?1")?;
    let mut rows = select.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let event = Event {
            client_id: r.get(1)?,
            metric: r.get(2)?,
            timestamp: stored_time(r.get(3)?)?,
            amount: r.get(4)?,
            event_id: r.get(5)?,
            attributes: Map::new(),
        };
        let key = rekey(&event);
        if let Err(e) = update.execute(params![key, id]) {
            if extended_code(&e) == Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) {
                let other: i64 = owner.query_row([&key], |r| r.get(0))?;
                return Err(sql::key_collision(spec, other, id));
            }
            return Err(e.into());
        }
    }
    Ok(())
}

fn extended_code(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
        _ => None,
    }
}

fn bind(args: &[Arg]) -> impl Iterator<Item = SqlValue> + '_ {
    args.iter().map(|a| match a {
        Arg::Int(i) => SqlValue::Integer(*i),
        Arg::Text(t) => SqlValue::Text(t.clone()),
    })
}

fn query_events(c: &Connection, sql: &str, args: &[Arg]) -> Result<Vec<StoredEvent>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(bind(args)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(
            EventRow {
                id: r.get(0)?,
                client_id: r.get(1)?,
                metric: r.get(2)?,
                ts: r.get(3)?,
                amount: r.get(4)?,
                event_id: r.get(5)?,
                attributes: r.get(6)?,
                received_at: r.get(7)?,
                rules_version: r.get(8)?,
            }
            .into_stored()?,
        );
    }
    Ok(out)
}

fn aggregate_in(c: &Connection, q: &Query) -> Result<Aggregate> {
    let mut partials = Partials::default();
    for piece in sql::pieces(q) {
        let mut stmt = c.prepare_cached(&piece.sql)?;
        let mut rows = stmt.query(params_from_iter(bind(&piece.args)))?;
        while let Some(r) = rows.next()? {
            piece.fold(
                PieceRow {
                    bucket: r.get(0)?,
                    client_id: r.get(1)?,
                    metric: r.get(2)?,
                    count: r.get(3)?,
                    sum: r.get(4)?,
                    min: r.get(5)?,
                    max: r.get(6)?,
                },
                &mut partials,
            )?;
        }
    }
    Ok(partials.finish(q))
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
