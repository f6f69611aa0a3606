//! The PostgreSQL backend (feature `postgres`): many processes and hosts
//! over one database, with the same behaviour as the SQLite backend, from
//! the same engine (engine.rs).
//!
//! What is its own: the pool and the connection settings, the error
//! mapping, and the bulk writes. A group is gathered first and written in a
//! few set-based statements (rows travel as arrays and are unnested on the
//! server), so a batch costs a handful of round trips, not one per event.
//! Every statement touches rows in key order so that two writers never
//! wait on each other in a cycle; where a database still aborts a
//! transaction (a deadlock, or a serialization failure on databases that
//! run every transaction serializable), the engine runs it again.

mod bulk;
mod numeric;
mod pool;
mod schema;
mod session;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::GenericClient;

use super::db::{Arg, Backend, Db, DeadLetter, InsertedWith, NewEvent, Refusal, Row, Stamp};
use super::listing;
use super::migrate::Schema;
use super::rollup::{rollup_deltas, RollupDelta, RollupTable};
use super::StoreOptions;
use crate::error::{Error, Result, StorageKind};
use crate::exact::ExactSum;
use crate::Durability;
use bulk::{EventArrays, RollupArrays};
use numeric::{Exact, Numeric};
use pool::{Pool, Repeat};
use schema::SCHEMA;
use session::Session;

/// Connections one store keeps at most: enough for group commit's one
/// writer plus concurrent readers, few enough that many application
/// instances fit in PostgreSQL's default of 100 connections.
const POOL_SIZE: usize = 8;

/// Every migration and rules registration takes an advisory lock, so that
/// processes opening the same store at once apply each step once: one lock
/// per schema (its name hashed with this seed), so that stores in other
/// schemas of the database open without waiting for each other.
const SCHEMA_LOCK: i64 = 0x696e_6765_7374; // "ingest"

/// Take the lock of the schema named `$2` (seed `$1`), before it exists.
const LOCK_NAMED_SCHEMA: &str = "SELECT pg_advisory_xact_lock(hashtextextended($2, $1))";

/// Take the lock of the store's schema (seed `$1`).
const LOCK_SCHEMA: &str = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), $1))";

pub(crate) struct PostgresBackend {
    pool: Pool,
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        let kind = storage_kind(&e);
        let mut message = match e.as_db_error() {
            Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
            None => format!("PostgreSQL: {e}"),
        };
        if kind == StorageKind::Unavailable {
            message = format!(
                "the PostgreSQL server cannot be reached or does not take writes (a restart or a failover?); \
                 retry: {message}"
            );
        }
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            // lock_timeout is the store's busy timeout: say so, as SQLite's
            // busy errors do.
            message = format!("the database stayed locked past the busy timeout: {message}");
        }
        Error::Storage {
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}

fn storage_kind(e: &postgres::Error) -> StorageKind {
    let Some(code) = e.code() else {
        return if lost(e) {
            StorageKind::Unavailable
        } else {
            StorageKind::Io
        };
    };
    match code.code() {
        "40001" | "40P01" | "55P03" | "57014" | "53300" => StorageKind::Busy,
        "53100" => StorageKind::Full,
        // A read-only transaction is what a server in recovery answers a
        // write: an old primary back as a standby, or a URL that reached a
        // standby. Another connection (target_session_attrs=read-write)
        // finds the primary.
        "25006" => StorageKind::Unavailable,
        "42501" => StorageKind::ReadOnly,
        "XX001" | "XX002" => StorageKind::Corrupt,
        // Connection exceptions; the server shutting down, crashed, or not
        // accepting connections yet (starting, or in recovery).
        c if c.starts_with("08") || c.starts_with("57P") => StorageKind::Unavailable,
        _ => StorageKind::Other,
    }
}

/// Whether `e`, an error with no SQLSTATE, is the connection's: closed,
/// broken, timed out, or refused by every host of the URL (a host that is
/// down, or a standby when the URL asks for a read-write session).
fn lost(e: &postgres::Error) -> bool {
    use std::error::Error as _;
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        // The connect timeout carries no source; its message is the crate's.
        || e.to_string() == "timeout waiting for server"
}

/// The SQLSTATE of `e`, when it is an error of this backend's database.
fn sql_state(e: &Error) -> Option<&SqlState> {
    let Error::Storage { source: Some(s), .. } = e else {
        return None;
    };
    s.downcast_ref::<postgres::Error>().and_then(postgres::Error::code)
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

impl PostgresBackend {
    /// Connect to the database at `url` (a libpq-style URL; `schema=NAME`
    /// chooses the schema, created if missing, default `public`). The
    /// engine brings the schema up to date.
    pub(crate) fn open(url: &str, opts: StoreOptions) -> Result<Self> {
        let (url, schema) = split_schema(url)?;
        let mut config =
            postgres::Config::from_str(&url).map_err(|e| Error::arg(format!("invalid PostgreSQL URL: {e}")))?;
        let patience = opts.busy_timeout.max(Duration::from_secs(1));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(patience);
        }
        // A server that vanishes without closing its sockets (a host down, a
        // network cut) would leave a call waiting for an answer for as long
        // as the kernel's defaults allow, hours. Sent data unacknowledged
        // for the busy timeout, or a silent peer failing three probes after
        // it, ends the connection with an error instead. A long query on a
        // live server is not cut: its kernel acknowledges and answers probes.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(patience);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_idle(patience);
            config.keepalives_interval(Duration::from_secs(1));
            config.keepalives_retries(3);
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
        let backend = PostgresBackend {
            pool: Pool::new(config, POOL_SIZE, opts.busy_timeout.max(Duration::from_secs(1))),
        };
        // The schema, and where its version is kept, before the engine reads
        // that version; under the lock, as two processes creating the same
        // schema at once would fail.
        backend.pool.run(Repeat::Always, |conn| {
            conn.transaction(|tx| {
                Session::execute(tx, LOCK_NAMED_SCHEMA, &[&SCHEMA_LOCK, &schema])?;
                tx.batch(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS ingest_schema (
                     one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                     version BIGINT NOT NULL
                 );
                 INSERT INTO ingest_schema (version) VALUES (0) ON CONFLICT DO NOTHING;"
                ))
            })
        })?;
        Ok(backend)
    }
}

impl Backend for PostgresBackend {
    fn write(&self, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()> {
        self.pool.run(Repeat::BeforeCommit, |conn| conn.transaction(|tx| f(tx)))
    }

    /// Outside a transaction: the statement commits itself, so a connection
    /// lost while it ran leaves it in doubt, and only the caller's retry
    /// (safe, by the dedup key) may run it again.
    fn write_alone(&self, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()> {
        self.pool.run(Repeat::BeforeCommit, |conn| f(&mut conn.session()))
    }

    fn read(&self, snapshot: bool, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()> {
        self.pool.run(Repeat::Always, |conn| {
            if !snapshot {
                return f(&mut conn.session());
            }
            conn.transaction(|tx| {
                tx.batch("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
                f(tx)
            })
        })
    }

    fn is_conflict(&self, e: &Error) -> bool {
        sql_state(e).is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
    }

    fn streams_callers(&self) -> bool {
        false
    }

    fn schema(&self) -> &'static Schema {
        &SCHEMA
    }

    /// A plain VACUUM: the removed rows' space is free for new rows and
    /// indexes at once (the files shrink only where their ends are free),
    /// without the exclusive lock of VACUUM FULL. Outside a transaction, as
    /// VACUUM must be.
    fn reclaim(&self) -> Result<()> {
        self.pool.run(Repeat::Always, |conn| {
            Db::batch(&mut conn.session(), "VACUUM (ANALYZE) events, rejected")
        })
    }

    fn bytes_used(&self) -> Result<u64> {
        let bytes = self.pool.run(Repeat::Always, |conn| {
            crate::storage::db::query_opt(
                &mut conn.session(),
                "SELECT CAST(pg_total_relation_size('events') + pg_total_relation_size('rejected')
                    + pg_total_relation_size('rollups') + pg_total_relation_size('client_days') AS BIGINT)",
                &[],
                |r| r.int(0),
            )
        })?;
        Ok(bytes.unwrap_or(0).max(0) as u64)
    }
}

/// An argument as rust-postgres binds it: each kind of value checks the
/// parameter's type and writes its own wire format.
#[derive(Debug)]
struct PgArg<'a>(Arg<'a>);

impl ToSql for PgArg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Arg::Int(n) => n.to_sql_checked(ty, out),
            Arg::Text(t) => t.to_sql_checked(ty, out),
            Arg::OptText(t) => t.to_sql_checked(ty, out),
            Arg::OptReal(x) => x.to_sql_checked(ty, out),
            Arg::Blob(b) => b.to_sql_checked(ty, out),
            Arg::Exact(x) => Numeric(x).to_sql_checked(ty, out),
        }
    }

    /// Each value checks its own type in `to_sql`.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn bound<'a>(args: &[Arg<'a>]) -> Vec<PgArg<'a>> {
    args.iter().map(|a| PgArg(*a)).collect()
}

fn refs<'a>(args: &'a [PgArg<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl<C: GenericClient> Db for Session<'_, C> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Session::execute(self, sql, &refs(&bound(args)))
    }

    fn query(&mut self, sql: &str, args: &[Arg<'_>], each: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()> {
        for row in Session::query(self, sql, &refs(&bound(args)))? {
            each(&row)?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.batch_execute(sql)
    }

    fn refusal(&self, e: &Error) -> Option<Refusal> {
        match sql_state(e)? {
            c if *c == SqlState::CHECK_VIOLATION => Some(Refusal::Check),
            c if *c == SqlState::UNDEFINED_TABLE => Some(Refusal::NoSuchTable),
            _ => None,
        }
    }

    fn schema_version(&mut self) -> Result<i64> {
        Session::query_one(self, "SELECT version FROM ingest_schema", &[])?
            .try_get(0)
            .map_err(corrupt)
    }

    fn set_schema_version(&mut self, version: i64) -> Result<()> {
        Session::execute(self, "UPDATE ingest_schema SET version = $1", &[&version])?;
        Ok(())
    }

    /// A shared lock on the lifecycle row: a prune's raise of the horizon
    /// (an UPDATE of it) waits for every write that read the old one, and
    /// removes what they stored after they commit.
    fn share_lock(&self) -> &'static str {
        " FOR SHARE"
    }

    fn lock_schema(&mut self) -> Result<()> {
        Session::execute(self, LOCK_SCHEMA, &[&SCHEMA_LOCK])?;
        Ok(())
    }

    /// One statement for the whole group ([`bulk::EVENTS`]).
    fn insert_events(&mut self, rows: &[NewEvent<'_>], stamp: Stamp) -> Result<Vec<Option<i64>>> {
        let events = EventArrays::new(rows);
        let [k, c, m, t, a, e, at] = events.values();
        let mut ids: HashMap<Vec<u8>, i64> = HashMap::with_capacity(rows.len());
        for row in Session::query(
            self,
            &bulk::EVENTS,
            &[k, c, m, t, a, e, at, &stamp.received_at, &stamp.rules_version],
        )? {
            ids.insert(row.try_get(1).map_err(corrupt)?, row.try_get(0).map_err(corrupt)?);
        }
        Ok(rows.iter().map(|r| ids.get(r.key).copied()).collect())
    }

    /// One statement for the whole write ([`bulk::WITH_ROLLUPS`]).
    fn insert_with_rollups(
        &mut self,
        rows: &[NewEvent<'_>],
        stamp: Stamp,
        oldest: i64,
    ) -> Result<Option<InsertedWith>> {
        let deltas = rollup_deltas(rows.iter().map(|r| r.event));
        let across = RollupArrays::new(RollupTable::Rollups, &deltas.across);
        let per_client = RollupArrays::new(RollupTable::ClientDays, &deltas.client_days);
        let events = EventArrays::new(rows);
        let n = rows.len() as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(29);
        params.extend(events.values());
        params.extend([
            &stamp.received_at as &(dyn ToSql + Sync),
            &stamp.rules_version,
            &oldest,
            &n,
        ]);
        params.extend(across.values());
        params.extend(per_client.values());
        let mut ids: HashMap<Vec<u8>, i64> = HashMap::with_capacity(rows.len());
        let mut horizon = None;
        let mut stored = Vec::new();
        for row in Session::query(self, &bulk::WITH_ROLLUPS, &params)? {
            match row.try_get::<_, &str>(9).map_err(corrupt)? {
                "new" => {
                    ids.insert(row.try_get(7).map_err(corrupt)?, Row::int(&row, 0)?);
                }
                "horizon" => horizon = Row::opt_int(&row, 8)?,
                _ => stored.push((row.try_get(7).map_err(corrupt)?, listing::stored_row(&row)?)),
            }
        }
        Ok(Some(InsertedWith {
            ids: rows.iter().map(|r| ids.get(r.key).copied()).collect(),
            horizon,
            stored,
        }))
    }

    fn find_keys(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<i64>>> {
        let mut ids: HashMap<Vec<u8>, i64> = HashMap::with_capacity(keys.len());
        for row in Session::query(
            self,
            "SELECT id, dedup_key FROM events WHERE dedup_key = ANY($1)",
            &[&keys],
        )? {
            ids.insert(row.try_get(1).map_err(corrupt)?, row.try_get(0).map_err(corrupt)?);
        }
        Ok(keys.iter().map(|k| ids.get(*k).copied()).collect())
    }

    fn set_keys(&mut self, ids: &[i64], keys: &[Vec<u8>]) -> Result<()> {
        Session::execute(
            self,
            "UPDATE events SET dedup_key = u.k FROM unnest($1::BIGINT[], $2::BYTEA[]) AS u(id, k) WHERE events.id = u.id",
            &[&ids, &keys],
        )?;
        Ok(())
    }

    fn delete_ids(&mut self, table: &'static str, ids: &[i64]) -> Result<u64> {
        Session::execute(self, &format!("DELETE FROM {table} WHERE id = ANY($1)"), &[&ids])
    }

    fn upsert_rejected(&mut self, rows: &[DeadLetter<'_>], stamp: Stamp) -> Result<()> {
        let digests: Vec<&[u8]> = rows.iter().map(|r| &r.digest[..]).collect();
        let raws: Vec<&str> = rows.iter().map(|r| r.raw).collect();
        let reasons: Vec<&str> = rows.iter().map(|r| r.reasons.as_str()).collect();
        let fresh: Vec<i64> = rows.iter().map(|r| r.fresh).collect();
        let added: Vec<i64> = rows.iter().map(|r| r.added).collect();
        let raw_bytes: Vec<i64> = rows.iter().map(|r| r.raw_bytes).collect();
        let raw_exact: Vec<i64> = rows.iter().map(|r| r.raw_exact as i64).collect();
        let clients: Vec<Option<&str>> = rows.iter().map(|r| r.client).collect();
        Session::execute(
            self,
            "WITH input AS (
                 SELECT * FROM unnest($1::BYTEA[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[])
                     AS u(digest, raw, reasons, fresh, added, raw_bytes, raw_exact, client_id)
             )
             INSERT INTO rejected (digest, raw, reasons, rules_version, received_at, attempts, raw_bytes, raw_exact, client_id)
             SELECT digest, raw, reasons, $6, $7, fresh, raw_bytes, raw_exact, client_id FROM input
             ON CONFLICT (digest) DO UPDATE SET
                 reasons = excluded.reasons,
                 rules_version = excluded.rules_version,
                 attempts = rejected.attempts + (SELECT added FROM input WHERE input.digest = excluded.digest)",
            &[
                &digests,
                &raws,
                &reasons,
                &fresh,
                &added,
                &stamp.rules_version,
                &stamp.received_at,
                &raw_bytes,
                &raw_exact,
                &clients,
            ],
        )?;
        Ok(())
    }

    /// One statement per table: the rows travel as one array per column.
    fn upsert_rollups(&mut self, table: RollupTable, deltas: &[RollupDelta<'_>]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        static UPSERTS: [LazyLock<String>; 2] = [
            LazyLock::new(|| RollupArrays::insert(RollupTable::Rollups, 1, "")),
            LazyLock::new(|| RollupArrays::insert(RollupTable::ClientDays, 1, "")),
        ];
        let arrays = RollupArrays::new(table, deltas);
        Session::execute(self, &UPSERTS[table as usize], &arrays.values())?;
        Ok(())
    }
}

/// A column that is not of the type asked for: the store is not what this
/// library wrote.
fn corrupt(e: postgres::Error) -> Error {
    Error::storage(StorageKind::Corrupt, format!("PostgreSQL: {e}"))
}

fn column<'a, T: postgres::types::FromSql<'a>>(row: &'a postgres::Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(corrupt)
}

impl Row for postgres::Row {
    fn int(&self, i: usize) -> Result<i64> {
        column(self, i)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        column(self, i)
    }

    fn real(&self, i: usize) -> Result<f64> {
        column(self, i)
    }

    fn text(&self, i: usize) -> Result<String> {
        column(self, i)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        column(self, i)
    }

    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        column(self, i)
    }

    fn exact(&self, i: usize) -> Result<ExactSum> {
        column::<Exact>(self, i).map(|e| e.0)
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod schema_tests;
