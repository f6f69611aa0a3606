//! The PostgreSQL backend (feature `postgres`): many processes and hosts
//! over one database, with the same behaviour as the SQLite backend.
//!
//! Every write call is one transaction of a few set-based statements (rows
//! travel as arrays and are unnested on the server), so a batch costs a
//! handful of round trips, not one per event. Concurrency across processes
//! is the database's: the dedup key is a UNIQUE constraint written with
//! `ON CONFLICT DO NOTHING`, rollups are upserts that add to what is there
//! (never read, modify, write), and every statement touches rows in key
//! order so that two writers never wait on each other in a cycle. Where a
//! database still aborts a transaction (a deadlock, or a serialization
//! failure on databases that run every transaction serializable), the whole
//! transaction is retried.

mod pool;
mod schema;
mod session;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use serde_json::{Map, Value};

use super::group::{Committed, GroupCommit};
use super::schema::upgrade;
use super::sql::{
    self, level_code, parse_stored, rollup_deltas, stored_time, Arg, Dialect, EventRow, PieceRow, RollupTable,
};
use super::{EventFilter, Store, StoreOptions, StoredCounts, WriteItem, Written};
use crate::aggregate::{Aggregate, Bucket, Partials, Query};
use crate::error::{Error, Result, StorageKind};
use crate::event::{Event, RejectedEvent, StoredEvent};
use crate::failure::FailPoint;
use crate::rules::Rules;
use crate::timestamp::Timestamp;
use crate::Durability;
use pool::{Pool, Pooled};
use schema::MIGRATIONS;
use session::Tx;

/// Connections one store keeps at most: enough for group commit's one
/// writer plus concurrent readers, few enough that many application
/// instances fit in PostgreSQL's default of 100 connections.
const POOL_SIZE: usize = 8;

/// Times a transaction aborted by the database (deadlock, serialization
/// failure) is tried again before the error is returned.
const CONFLICT_RETRIES: u32 = 8;

/// Every migration and rules registration takes this advisory lock, so
/// processes opening the same database at once apply each step once.
const SCHEMA_LOCK: i64 = 0x696e_6765_7374; // "ingest"

pub(crate) struct PostgresStore {
    pool: Pool,
    group: GroupCommit,
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        let kind = storage_kind(&e);
        let message = match e.as_db_error() {
            Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
            None => format!("PostgreSQL: {e}"),
        };
        Error::Storage {
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}

fn storage_kind(e: &postgres::Error) -> StorageKind {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or was closed.
        return StorageKind::Io;
    };
    match code.code() {
        "40001" | "40P01" | "55P03" | "57014" | "53300" => StorageKind::Busy,
        "53100" => StorageKind::Full,
        "25006" | "42501" => StorageKind::ReadOnly,
        "XX001" | "XX002" => StorageKind::Corrupt,
        c if c.starts_with("08") || c.starts_with("57P") => StorageKind::Io,
        _ => StorageKind::Other,
    }
}

/// A transaction the database aborted so that another could go on: safe
/// and right to run again from the start.
fn is_conflict(e: &Error) -> bool {
    let Error::Storage { source: Some(s), .. } = e else {
        return false;
    };
    s.downcast_ref::<postgres::Error>()
        .and_then(postgres::Error::code)
        .is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Split `schema=NAME` off the URL (the rest is for the client), checking
/// NAME is a plain identifier.
fn split_schema(url: &str) -> Result<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = Some(name.to_string()),
            None => rest.push(pair),
        }
    }
    let schema = schema.unwrap_or_else(|| "public".into());
    let plain = schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(Error::arg(format!(
            "schema {schema:?} in the PostgreSQL URL must be 1 to 63 of a-z, 0-9 and _, not starting with a digit"
        )));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, schema))
}

impl PostgresStore {
    /// Connect to the database at `url` (a libpq-style URL; `schema=NAME`
    /// chooses the schema, created if missing, default `public`) and bring
    /// the schema up to date.
    pub(crate) fn open(url: &str, opts: StoreOptions) -> Result<Self> {
        let (url, schema) = split_schema(url)?;
        let mut config =
            postgres::Config::from_str(&url).map_err(|e| Error::arg(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(opts.busy_timeout.max(Duration::from_secs(1)));
        }
        // Every connection of the pool gets the same settings from its
        // start-up packet: no per-checkout SET, and none can be forgotten.
        let sync = match opts.durability {
            // The commit waits for the WAL flush: an accepted event survives
            // a crash of the database server or a power loss.
            Durability::Full => "on",
            // The commit returns before the flush: it survives a crash of
            // this process, but the server's last commits can be lost if it
            // crashes.
            Durability::Normal => "off",
        };
        let settings = format!(
            "-c search_path={schema} -c synchronous_commit={sync} -c lock_timeout={}",
            opts.busy_timeout.as_millis().max(1)
        );
        let options = match config.get_options() {
            Some(theirs) => format!("{theirs} {settings}"),
            None => settings,
        };
        config.options(&options);
        let pool = Pool::new(config, POOL_SIZE, opts.busy_timeout.max(Duration::from_secs(1)));
        let store = PostgresStore {
            pool,
            group: GroupCommit::default(),
        };
        store.migrate(&schema)?;
        Ok(store)
    }

    fn conn(&self) -> Result<Pooled<'_>> {
        self.pool.get()
    }

    fn migrate(&self, schema: &str) -> Result<()> {
        self.transaction(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS ingest_schema (
                 one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                 version BIGINT NOT NULL
             );
             INSERT INTO ingest_schema (version) VALUES (0) ON CONFLICT DO NOTHING;"
            ))?;
            let version: i64 = tx.query_one("SELECT version FROM ingest_schema", &[])?.get(0);
            let known = MIGRATIONS.len() as i64;
            if version > known {
                return Err(Error::storage(
                    StorageKind::Other,
                    format!("the database has schema version {version}; this library knows up to {known}"),
                ));
            }
            for statement in upgrade(&MIGRATIONS[version as usize..], &Postgres) {
                tx.batch_execute(&statement)?;
            }
            tx.execute("UPDATE ingest_schema SET version = $1", &[&known])?;
            Ok(())
        })
    }

    /// Run `f` in a transaction, again from the start when the database
    /// aborted it for a conflict with another transaction.
    fn transaction<T>(&self, mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let mut attempt = 0;
        loop {
            match conn.transaction(&mut f) {
                Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                other => return other,
            }
        }
    }

    fn query_events(&self, sql: &str, args: &[Arg]) -> Result<Vec<StoredEvent>> {
        let rows = self.conn()?.session().query(sql, &bind(args))?;
        rows.iter()
            .map(|r| {
                EventRow {
                    id: r.get(0),
                    client_id: r.get(1),
                    metric: r.get(2),
                    ts: r.get(3),
                    amount: r.get(4),
                    event_id: r.get(5),
                    attributes: r.get(6),
                    received_at: r.get(7),
                    rules_version: r.get(8),
                }
                .into_stored()
            })
            .collect()
    }

    fn write_group(&self, items: &[WriteItem], rules_version: i64, fail: Option<FailPoint>) -> Result<Vec<Written>> {
        let written = self.transaction(|tx| {
            if fail == Some(FailPoint::BeforeInsert) {
                return Err(Error::Injected(FailPoint::BeforeInsert));
            }
            let written = write_items(tx, items, rules_version)?;
            if fail == Some(FailPoint::AfterInsert) {
                fail_with_real_statement(tx, FailPoint::AfterInsert)?;
            }
            Ok(written)
        })?;
        if fail == Some(FailPoint::AfterCommit) {
            return Err(Error::Injected(FailPoint::AfterCommit));
        }
        Ok(written)
    }
}

/// A random pause of up to 2^(attempt+1) ms (at most 128): writers that
/// conflicted once must not retry in step and conflict again.
fn backoff(attempt: u32) -> Duration {
    let cap = 2u64 << attempt.min(6);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_micros(1_000 + noise % (cap * 1_000))
}

impl Store for PostgresStore {
    fn register_rules(&self, rules: &Rules, rekey: &dyn Fn(&Event) -> Vec<u8>) -> Result<i64> {
        let (document, key_spec) = sql::rules_record(rules);
        let now = Timestamp::now().millis();
        self.transaction(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            // Under the lock, so no version number is skipped by a conflict.
            tx.execute(
                "INSERT INTO rules (document, created_at)
                 SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM rules WHERE document = $1)",
                &[&document, &now],
            )?;
            let version: i64 = tx
                .query_one("SELECT version FROM rules WHERE document = $1", &[&document])?
                .get(0);
            let stored: Option<String> = tx
                .query_opt("SELECT value FROM meta WHERE key = 'dedup_key'", &[])?
                .map(|r| r.get(0));
            if stored.as_deref() != Some(key_spec.as_str()) {
                if stored.is_some() {
                    rekey_events(tx, rekey, &key_spec)?;
                }
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('dedup_key', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&key_spec],
                )?;
            }
            Ok(version)
        })
    }

    fn write(&self, items: Vec<WriteItem>, rules_version: i64, fail: Option<FailPoint>) -> Result<Committed> {
        self.group.write(items, fail, |group| {
            let fail = group.fail();
            self.write_group(group.gather(), rules_version, fail)
        })
    }

    fn find(&self, key: &[u8]) -> Result<Option<i64>> {
        let row = self
            .conn()?
            .session()
            .query_opt("SELECT id FROM events WHERE dedup_key = $1", &[&key])?;
        Ok(row.map(|r| r.get(0)))
    }

    fn aggregate(&self, q: &Query, fail: bool) -> Result<Aggregate> {
        self.transaction(|tx| {
            // Rollups and edge scans read one snapshot.
            tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
            if fail {
                fail_with_real_statement(tx, FailPoint::Aggregate)?;
            }
            aggregate_in(tx, q)
        })
    }

    fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>> {
        let (sql, args) = sql::list_events(f);
        self.query_events(&sql, &args)
    }

    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let (sql, args) = sql::events_after(after, limit);
        self.query_events(&sql, &args)
    }

    fn rejected(&self, limit: usize, offset: usize) -> Result<Vec<RejectedEvent>> {
        let rows = self.conn()?.session().query(
            "SELECT id, raw, reasons, rules_version, received_at, attempts
             FROM rejected ORDER BY id DESC LIMIT $1 OFFSET $2",
            &[&(limit as i64), &(offset as i64)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(RejectedEvent {
                    id: r.get(0),
                    raw: parse_stored(r.get(1), "raw")?,
                    reasons: parse_stored(r.get(2), "reasons")?,
                    rules_version: r.get(3),
                    received_at: stored_time(r.get(4))?,
                    attempts: r.get(5),
                })
            })
            .collect()
    }

    fn rejected_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, Value)>> {
        let rows = self.conn()?.session().query(
            "SELECT id, raw FROM rejected WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &(limit as i64)],
        )?;
        rows.iter()
            .map(|r| Ok((r.get(0), parse_stored(r.get(1), "raw")?)))
            .collect()
    }

    fn counts(&self) -> Result<StoredCounts> {
        let mut conn = self.conn()?;
        let mut s = conn.session();
        let events: i64 = s.query_one(sql::COUNT_EVENTS, &[&level_code(Bucket::Month)])?.get(0);
        let rejected: i64 = s.query_one("SELECT COUNT(*) FROM rejected", &[])?.get(0);
        Ok(StoredCounts {
            events: events as u64,
            rejected: rejected as u64,
        })
    }
}

/// One group's rows, in a fixed number of statements whatever its size.
fn write_items(tx: &mut Tx<'_, '_>, items: &[WriteItem], rules_version: i64) -> Result<Vec<Written>> {
    let now = Timestamp::now().millis();

    // Events: the first of each key is offered for insert; a repeat inside
    // the group is a duplicate of it. Sorted by key: the order every writer
    // takes the key's index entries in.
    let mut first: HashMap<&[u8], usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let WriteItem::Event { key, .. } = item {
            first.entry(key.as_slice()).or_insert(i);
        }
    }
    let mut offered: Vec<(&[u8], &Event)> = first
        .iter()
        .filter_map(|(&key, &i)| match &items[i] {
            WriteItem::Event { event, .. } => Some((key, event)),
            WriteItem::Rejected { .. } => None,
        })
        .collect();
    offered.sort_unstable_by_key(|(key, _)| *key);
    let mut ids: HashMap<Vec<u8>, (i64, bool)> = HashMap::with_capacity(offered.len());
    if !offered.is_empty() {
        let keys: Vec<&[u8]> = offered.iter().map(|(k, _)| *k).collect();
        let clients: Vec<&str> = offered.iter().map(|(_, e)| e.client_id.as_str()).collect();
        let metrics: Vec<&str> = offered.iter().map(|(_, e)| e.metric.as_str()).collect();
        let times: Vec<i64> = offered.iter().map(|(_, e)| e.timestamp.millis()).collect();
        let amounts: Vec<f64> = offered.iter().map(|(_, e)| e.amount).collect();
        let event_ids: Vec<Option<&str>> = offered.iter().map(|(_, e)| e.event_id.as_deref()).collect();
        let attributes: Vec<String> = offered
            .iter()
            .map(|(_, e)| serde_json::to_string(&e.attributes).unwrap_or_else(|_| "{}".into()))
            .collect();
        for row in tx.query(
            "INSERT INTO events (dedup_key, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version)
             SELECT k, c, m, t, a, e, at, $8, $9
             FROM unnest($1::BYTEA[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::FLOAT8[], $6::TEXT[], $7::TEXT[])
                  AS u(k, c, m, t, a, e, at)
             ON CONFLICT (dedup_key) DO NOTHING
             RETURNING id, dedup_key",
            &[
                &keys,
                &clients,
                &metrics,
                &times,
                &amounts,
                &event_ids,
                &attributes,
                &now,
                &rules_version,
            ],
        )? {
            ids.insert(row.get(1), (row.get(0), true));
        }
        // Keys another transaction stored first (it committed before our
        // insert went on, so this statement's snapshot sees it).
        let stored: Vec<&[u8]> = keys.into_iter().filter(|k| !ids.contains_key(*k)).collect();
        if !stored.is_empty() {
            for row in tx.query("SELECT id, dedup_key FROM events WHERE dedup_key = ANY($1)", &[&stored])? {
                ids.insert(row.get(1), (row.get(0), false));
            }
        }
    }

    let replaced: Vec<i64> = items
        .iter()
        .filter_map(|item| match item {
            WriteItem::Event { replaces, .. } => *replaces,
            WriteItem::Rejected { .. } => None,
        })
        .collect();
    if !replaced.is_empty() {
        tx.execute("DELETE FROM rejected WHERE id = ANY($1)", &[&replaced])?;
    }

    write_rejected(tx, items, rules_version, now)?;

    let mut stored = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(match item {
            WriteItem::Event { key, event, .. } => {
                let Some(&(id, inserted)) = ids.get(key.as_slice()) else {
                    return Err(Error::storage(
                        StorageKind::Other,
                        "an event's key was neither inserted nor found",
                    ));
                };
                if inserted && first.get(key.as_slice()) == Some(&i) {
                    stored.push(event);
                    Written::Inserted(id)
                } else {
                    Written::Duplicate(id)
                }
            }
            WriteItem::Rejected { .. } => Written::Rejected,
        });
    }
    write_rollups(tx, stored)?;
    Ok(out)
}

/// Every rollup row the new events change, in one upsert per table that
/// adds to what is stored (concurrent writers never lose each other's
/// counts), taking the rows in key order.
fn write_rollups(tx: &mut Tx<'_, '_>, stored: Vec<&Event>) -> Result<()> {
    let deltas = rollup_deltas(stored);
    upsert_deltas(tx, RollupTable::Rollups, &deltas.across)?;
    upsert_deltas(tx, RollupTable::ClientDays, &deltas.client_days)
}

/// Add `deltas` to `table` in one statement: the rows travel as one array
/// per column and are unnested on the server.
fn upsert_deltas(tx: &mut Tx<'_, '_>, table: RollupTable, deltas: &[sql::RollupDelta<'_>]) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let levels: Vec<i64> = deltas.iter().map(|d| d.level).collect();
    let clients: Vec<&str> = deltas.iter().map(|d| d.client_id).collect();
    let metrics: Vec<&str> = deltas.iter().map(|d| d.metric).collect();
    let buckets: Vec<i64> = deltas.iter().map(|d| d.bucket).collect();
    let counts: Vec<i64> = deltas.iter().map(|d| d.stats.count as i64).collect();
    let sums: Vec<f64> = deltas.iter().map(|d| d.stats.sum).collect();
    let mins: Vec<Option<f64>> = deltas.iter().map(|d| d.stats.min).collect();
    let maxes: Vec<Option<f64>> = deltas.iter().map(|d| d.stats.max).collect();
    // (column values, element type), in the table's binding order.
    let mut columns: Vec<(&(dyn ToSql + Sync), &str)> = match table {
        RollupTable::Rollups => vec![(&levels, "BIGINT"), (&buckets, "BIGINT"), (&metrics, "TEXT")],
        RollupTable::ClientDays => vec![(&buckets, "BIGINT"), (&clients, "TEXT"), (&metrics, "TEXT")],
    };
    columns.extend::<[(&(dyn ToSql + Sync), &str); 4]>([
        (&counts, "BIGINT"),
        (&sums, "FLOAT8"),
        (&mins, "FLOAT8"),
        (&maxes, "FLOAT8"),
    ]);
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{ty}[]", i + 1))
        .collect();
    let values: Vec<&(dyn ToSql + Sync)> = columns.iter().map(|(v, _)| *v).collect();
    tx.execute(
        &format!(
            "INSERT INTO {} ({}) SELECT * FROM unnest({}) {}",
            table.name(),
            table.columns(),
            arrays.join(", "),
            table.add_on_conflict()
        ),
        &values,
    )?;
    Ok(())
}

/// PostgreSQL's date functions.
struct Postgres;

impl Dialect for Postgres {
    fn month_floor(&self, col: &str) -> String {
        format!(
            "CAST(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp({} / 1000) AT TIME ZONE 'UTC')) AS BIGINT) * 1000",
            sql::floor_sql(col, 1000)
        )
    }
}

fn bind(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Arg::Int(n) => n as &(dyn ToSql + Sync),
            Arg::Text(t) => t as &(dyn ToSql + Sync),
        })
        .collect()
}

fn aggregate_in(tx: &mut Tx<'_, '_>, q: &Query) -> Result<Aggregate> {
    let mut partials = Partials::default();
    for piece in sql::pieces(q) {
        for r in tx.query(&piece.sql, &bind(&piece.args))? {
            piece.fold(
                PieceRow {
                    bucket: r.get(0),
                    client_id: r.get(1),
                    metric: r.get(2),
                    count: r.get(3),
                    sum: r.get(4),
                    min: r.get(5),
                    max: r.get(6),
                },
                &mut partials,
            )?;
        }
    }
    Ok(partials.finish(q))
}

/// Dead letters, one row per digest: the first time with one attempt, then
/// one more per new attempt, as in SQLite's per-row upsert.
fn write_rejected(tx: &mut Tx<'_, '_>, items: &[WriteItem], rules_version: i64, now: i64) -> Result<()> {
    // digest -> (raw, reasons, attempts if new, attempts added if stored)
    let mut rows: HashMap<&[u8; 32], (&str, String, i64, i64)> = HashMap::new();
    for item in items {
        let WriteItem::Rejected {
            raw,
            digest,
            reasons,
            new_attempt,
        } = item
        else {
            continue;
        };
        let reasons = serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into());
        let added = *new_attempt as i64;
        rows.entry(digest)
            .and_modify(|r| {
                r.1.clone_from(&reasons);
                r.2 += added;
                r.3 += added;
            })
            .or_insert((raw.as_str(), reasons, 1, added));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_unstable_by_key(|(d, _)| **d);
    let digests: Vec<&[u8]> = rows.iter().map(|(d, _)| &d[..]).collect();
    let raws: Vec<&str> = rows.iter().map(|(_, r)| r.0).collect();
    let reasons: Vec<&str> = rows.iter().map(|(_, r)| r.1.as_str()).collect();
    let fresh: Vec<i64> = rows.iter().map(|(_, r)| r.2).collect();
    let added: Vec<i64> = rows.iter().map(|(_, r)| r.3).collect();
    tx.execute(
        "WITH input AS (
             SELECT * FROM unnest($1::BYTEA[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])
                 AS u(digest, raw, reasons, fresh, added)
         )
         INSERT INTO rejected (digest, raw, reasons, rules_version, received_at, attempts)
         SELECT digest, raw, reasons, $6, $7, fresh FROM input
         ON CONFLICT (digest) DO UPDATE SET
             reasons = excluded.reasons,
             rules_version = excluded.rules_version,
             attempts = rejected.attempts + (SELECT added FROM input WHERE input.digest = excluded.digest)",
        &[&digests, &raws, &reasons, &fresh, &added, &rules_version, &now],
    )?;
    Ok(())
}

/// Make the current transaction fail through the database itself, as the
/// SQLite backend does: a CHECK that always fails, or a read of a table
/// that does not exist.
fn fail_with_real_statement(tx: &mut Tx<'_, '_>, point: FailPoint) -> Result<()> {
    let (result, expected) = if point == FailPoint::Aggregate {
        (
            tx.try_execute("SELECT * FROM \"injected aggregate failure\"", &[])
                .map(|_| ()),
            SqlState::UNDEFINED_TABLE,
        )
    } else {
        (
            tx.try_execute("INSERT INTO fault_probe (point) VALUES ($1)", &[&point.as_str()])
                .map(|_| ()),
            SqlState::CHECK_VIOLATION,
        )
    };
    match result {
        Err(e) if e.code() == Some(&expected) => Err(Error::Injected(point)),
        Err(other) => Err(other.into()),
        Ok(()) => Err(Error::storage(
            StorageKind::Other,
            "injected failure statement did not fail",
        )),
    }
}

/// Keys re-written per statement while re-keying.
const REKEY_CHUNK: i64 = 5_000;

fn rekey_events(tx: &mut Tx<'_, '_>, rekey: &dyn Fn(&Event) -> Vec<u8>, spec: &str) -> Result<()> {
    // Park every key on a value no real key has (real keys start with a tag
    // letter), then write the new keys chunk by chunk. A new key already
    // taken belongs to an event re-keyed before: a collision, found before
    // the write so the error can name both events.
    tx.execute("UPDATE events SET dedup_key = '\\x00'::BYTEA || int8send(id)", &[])?;
    let mut after = 0i64;
    loop {
        let rows = tx.query(
            "SELECT id, client_id, metric, ts, amount, event_id FROM events WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &REKEY_CHUNK],
        )?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.get(0);
        let mut ids = Vec::with_capacity(rows.len());
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
        let mut seen: HashMap<Vec<u8>, i64> = HashMap::new();
        for r in &rows {
            let id: i64 = r.get(0);
            let event = Event {
                client_id: r.get(1),
                metric: r.get(2),
                timestamp: stored_time(r.get(3))?,
                amount: r.get(4),
                event_id: r.get(5),
                attributes: Map::new(),
            };
            let key = rekey(&event);
            if let Some(other) = seen.insert(key.clone(), id) {
                return Err(sql::key_collision(spec, other, id));
            }
            ids.push(id);
            keys.push(key);
        }
        if let Some(row) = tx.query_opt("SELECT id FROM events WHERE dedup_key = ANY($1) LIMIT 1", &[&keys])? {
            let other: i64 = row.get(0);
            let key: Vec<u8> = tx
                .query_one("SELECT dedup_key FROM events WHERE id = $1", &[&other])?
                .get(0);
            return Err(sql::key_collision(spec, other, seen[&key]));
        }
        tx.execute(
            "UPDATE events SET dedup_key = u.k FROM unnest($1::BIGINT[], $2::BYTEA[]) AS u(id, k) WHERE events.id = u.id",
            &[&ids, &keys],
        )?;
    }
}
