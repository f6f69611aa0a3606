//! The database operations the storage engine is written over.
//!
//! [`Db`] is one connection, inside a transaction or not: run a statement,
//! read rows with typed access, run DDL. Its bulk writes have one plain
//! implementation here, a statement per row, which a backend replaces only
//! where its engine has a faster set-based form (PostgreSQL: arrays
//! unnested on the server, one round trip for a whole group). [`Backend`]
//! is what differs in connection handling: where a transaction runs, how
//! readers get a snapshot, which errors mean "run it again".
//!
//! The SQL text is shared by both databases: placeholders are `$1, $2, ...`
//! numbered in order of first appearance (SQLite binds `$n` names by that
//! order, so the argument list is the same for both), and nothing relies on
//! SQLite's loose typing.

use crate::error::{Error, Result};
use crate::event::Event;
use crate::exact::ExactSum;

use super::listing::StoredRow;
use super::rollup::{upsert_runs, RollupDelta, RollupTable};

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    OptText(Option<&'a str>),
    OptReal(Option<f64>),
    Blob(&'a [u8]),
    /// An exact sum, in the backend's exact column type.
    Exact(&'a ExactSum),
}

/// One row of a result, read by column index. A value of another type than
/// asked for is an error (the store is corrupt), never a panic.
pub(crate) trait Row {
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn real(&self, i: usize) -> Result<f64>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn blob(&self, i: usize) -> Result<Vec<u8>>;
    /// An exact sum, from the backend's exact column type.
    fn exact(&self, i: usize) -> Result<ExactSum>;
}

/// Why the database refused a statement, for the failure points, which
/// must fail through a real statement and tell its error from any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A CHECK constraint failed.
    Check,
    /// The statement named a table that does not exist.
    NoSuchTable,
}

/// A new event's row, its attributes already written as JSON text.
pub(crate) struct NewEvent<'a> {
    pub key: &'a [u8],
    pub event: &'a Event,
    pub attributes: &'a str,
}

/// A dead-letter row to add, or to count one more attempt on.
pub(crate) struct DeadLetter<'a> {
    pub digest: &'a [u8; 32],
    pub raw: &'a str,
    /// The size of the whole input's text, and whether `raw` is it.
    pub raw_bytes: i64,
    pub raw_exact: bool,
    pub reasons: String,
    /// The attempts a new row starts with.
    pub fresh: i64,
    /// The attempts added to a row already stored.
    pub added: i64,
    /// The client it belongs to (part of its digest: see
    /// `RawCopy::owned_by`), never changed once stored.
    pub client: Option<&'a str>,
}

/// What [`Db::insert_with_rollups`] did: each row's new id (`None`: not
/// inserted), and the prune horizon it read. The rollups were added when
/// every row has an id. Otherwise `stored` holds the rows already stored
/// under keys it did not insert, by key, as far as the statement saw them
/// (a row another transaction committed while it ran may be missing).
pub(crate) struct InsertedWith {
    pub ids: Vec<Option<i64>>,
    pub horizon: Option<i64>,
    pub stored: Vec<(Vec<u8>, StoredRow)>,
}

/// What every write of a call stamps its rows with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub received_at: i64,
    pub rules_version: i64,
}

/// One connection of a backend.
///
/// Statements use `$1`, `$2`, ... placeholders, bound by position. Number
/// them in the order they first appear in the text: SQLite reads `$7` as a
/// name and numbers names by first appearance, so a `$9` written before a
/// `$7` would be bound to the seventh argument there (and not on PostgreSQL).
pub(crate) trait Db {
    /// Run a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;

    /// Run a query, handing each row to `each` as it comes.
    fn query(&mut self, sql: &str, args: &[Arg<'_>], each: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()>;

    /// Statements without parameters, sent as they are (DDL).
    fn batch(&mut self, sql: &str) -> Result<()>;

    /// What kind of refusal `e`, an error of this database, was.
    fn refusal(&self, e: &Error) -> Option<Refusal>;

    /// How many migrations the schema has had (0: a new database).
    fn schema_version(&mut self) -> Result<i64>;

    fn set_schema_version(&mut self, version: i64) -> Result<()>;

    /// Make other processes wait, until this transaction ends, before they
    /// change the schema or register rules. Nothing where the write
    /// transaction itself already excludes every other writer.
    fn lock_schema(&mut self) -> Result<()> {
        Ok(())
    }

    /// What a read of the prune horizon inside a write transaction ends
    /// with, so that no prune raises it until the transaction ends: nothing
    /// where the write transaction already excludes every other writer.
    fn share_lock(&self) -> &'static str {
        ""
    }

    /// Insert each row unless its key is stored: its new id, or `None`.
    /// Each backend writes its own: this is the hot path of every write.
    fn insert_events(&mut self, rows: &[NewEvent<'_>], stamp: Stamp) -> Result<Vec<Option<i64>>>;

    /// The whole write of a group of events in one statement, where the
    /// backend has one: read the prune horizon so that no prune raises it
    /// until the transaction ends, insert each row unless its key is stored
    /// (none when the horizon passed `oldest`, the oldest row's time), and,
    /// only when every row was new, add their rollups. `None`: no such
    /// statement here, and the engine takes those steps one by one.
    fn insert_with_rollups(
        &mut self,
        _rows: &[NewEvent<'_>],
        _stamp: Stamp,
        _oldest: i64,
    ) -> Result<Option<InsertedWith>> {
        Ok(None)
    }

    /// The id of the stored event with each key, in the order of `keys`.
    fn find_keys(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<i64>>> {
        keys.iter()
            .map(|key| {
                let mut id = None;
                self.query(
                    "SELECT id FROM events WHERE dedup_key = $1",
                    &[Arg::Blob(key)],
                    &mut |r| {
                        id = Some(r.int(0)?);
                        Ok(())
                    },
                )?;
                Ok(id)
            })
            .collect()
    }

    /// Give event `ids[i]` the key `keys[i]`.
    fn set_keys(&mut self, ids: &[i64], keys: &[Vec<u8>]) -> Result<()> {
        for (id, key) in ids.iter().zip(keys) {
            self.execute(
                "UPDATE events SET dedup_key = $1 WHERE id = $2",
                &[Arg::Blob(key), Arg::Int(*id)],
            )?;
        }
        Ok(())
    }

    /// Delete the rows of `table` (`events` or `rejected`, never text from
    /// a caller) with these ids; how many there were.
    fn delete_ids(&mut self, table: &'static str, ids: &[i64]) -> Result<u64> {
        let mut removed = 0;
        for id in ids {
            removed += self.execute(&format!("DELETE FROM {table} WHERE id = $1"), &[Arg::Int(*id)])?;
        }
        Ok(removed)
    }

    /// Add each dead letter, or count its attempts on the stored row of
    /// its digest (the reasons and rules version become these).
    fn upsert_rejected(&mut self, rows: &[DeadLetter<'_>], stamp: Stamp) -> Result<()> {
        for row in rows {
            self.execute(
                "INSERT INTO rejected (digest, raw, reasons, rules_version, received_at, attempts, raw_bytes, raw_exact, client_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (digest) DO UPDATE SET
                     reasons = excluded.reasons,
                     rules_version = excluded.rules_version,
                     attempts = rejected.attempts + $10",
                &[
                    Arg::Blob(&row.digest[..]),
                    Arg::Text(row.raw),
                    Arg::Text(&row.reasons),
                    Arg::Int(stamp.rules_version),
                    Arg::Int(stamp.received_at),
                    Arg::Int(row.fresh),
                    Arg::Int(row.raw_bytes),
                    Arg::Int(row.raw_exact as i64),
                    Arg::OptText(row.client),
                    Arg::Int(row.added),
                ],
            )?;
        }
        Ok(())
    }

    /// Add `deltas` to `table`, in multi-row statements.
    fn upsert_rollups(&mut self, table: RollupTable, deltas: &[RollupDelta<'_>]) -> Result<()> {
        let mut args = Vec::new();
        for run in upsert_runs(deltas) {
            args.clear();
            for d in run {
                args.extend(d.key_args());
                args.extend(d.stats_args());
            }
            self.execute(table.upsert(run.len()), &args)?;
        }
        Ok(())
    }
}

/// Where a backend's transactions and reads run. The engine is written
/// once over this; each backend keeps its connections, its pool and its
/// error mapping.
pub(crate) trait Backend: Send + Sync {
    /// Run `f` in one write transaction: commit on `Ok`, roll back on `Err`.
    fn write(&self, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()>;

    /// Run `f`, a write of one statement, where that statement commits on
    /// its own: a transaction's BEGIN and COMMIT would cost two more round
    /// trips to a database server. In a transaction where there is nothing
    /// to save (an embedded database).
    fn write_alone(&self, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()> {
        self.write(f)
    }

    /// Run `f` on a connection for reading; with `snapshot`, inside one
    /// read-only transaction, so that every statement sees the same data.
    fn read(&self, snapshot: bool, f: &mut dyn FnMut(&mut dyn Db) -> Result<()>) -> Result<()>;

    /// A transaction the database aborted so that another could go on: safe
    /// and right to run again from the start.
    fn is_conflict(&self, _e: &Error) -> bool {
        false
    }

    /// Whether a group commit writes each caller's items as they arrive
    /// (a statement per row costs little here, and the rows of the first
    /// callers are written while the last are on their way), or gathers
    /// the group first and writes it in set-based statements.
    fn streams_callers(&self) -> bool;

    /// The schema this backend creates and migrates.
    fn schema(&self) -> &'static super::migrate::Schema;

    /// Give the space of removed rows back, after a prune (outside any
    /// transaction: each database does this its own way).
    fn reclaim(&self) -> Result<()>;

    /// The bytes the store's tables and indexes take.
    fn bytes_used(&self) -> Result<u64>;
}

/// The first row of a query that finds one row at most, mapped by `f`.
pub(crate) fn query_opt<T>(
    db: &mut dyn Db,
    sql: &str,
    args: &[Arg<'_>],
    f: impl Fn(&dyn Row) -> Result<T>,
) -> Result<Option<T>> {
    Ok(query_all(db, sql, args, f)?.into_iter().next())
}

/// Every row of a query, mapped by `f`.
pub(crate) fn query_all<T>(
    db: &mut dyn Db,
    sql: &str,
    args: &[Arg<'_>],
    f: impl Fn(&dyn Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    db.query(sql, args, &mut |r| {
        out.push(f(r)?);
        Ok(())
    })?;
    Ok(out)
}

/// An argument owned by SQL built at run time ([`Sql`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

impl Param {
    pub(crate) fn text(s: &str) -> Self {
        Param::Text(s.to_string())
    }

    pub(crate) fn arg(&self) -> Arg<'_> {
        match self {
            Param::Int(n) => Arg::Int(*n),
            Param::Text(t) => Arg::Text(t),
        }
    }
}

/// The arguments of `params`, to bind.
pub(crate) fn args(params: &[Param]) -> Vec<Arg<'_>> {
    params.iter().map(Param::arg).collect()
}

/// SQL text with `$n` placeholders numbered as they are written.
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Param>,
}

impl Sql {
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// `text` followed by the next placeholder, bound to `arg` and cast to
    /// its type. The cast is what lets SQLite reuse the compiled statement:
    /// a bare parameter compared for equality in a join (`r.metric = $2`
    /// beside a table of VALUES) is propagated as a constant, and SQLite
    /// then compiles the statement again for every new value bound to it,
    /// which cost more than running it. A value with a type is left alone.
    /// PostgreSQL learns the parameter's type from it.
    pub(crate) fn bind(&mut self, text: &str, arg: Param) -> &mut Self {
        let ty = match arg {
            Param::Int(_) => "BIGINT",
            Param::Text(_) => "TEXT",
        };
        self.args.push(arg);
        self.text.push_str(text);
        self.text.push_str(&format!("CAST(${} AS {ty})", self.args.len()));
        self
    }
}
