//! The boundary between the rules and the database.
//!
//! Everything above this module is pure (normalisation, keys, query plans).
//! Below it, one [`Engine`] does what every backend does alike (group
//! commit, the write of a group, dead letters, rollups, failure points,
//! migrations, rules and re-keying, listings, aggregates) over a small
//! trait of database operations (`db.rs`); a backend keeps only its
//! connections, its error mapping and its fast bulk statements: SQLite
//! (`sqlite.rs`) and, with the `postgres` feature, PostgreSQL
//! (`postgres/`). Both run the same tests.

use crate::event::{Event, Reason};
use crate::limits::RawCopy;

mod checkpoint;
mod db;
mod engine;
mod group;
mod keys;
mod listing;
mod migrate;
mod pieces;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod prune;
mod rollup;
mod schema;
pub(crate) mod sqlite;

pub(crate) use db::Backend;
pub(crate) use engine::{horizon_moved, Engine};
pub(crate) use prune::CHUNK_ROWS;

/// How a backend commits and waits, as [`crate::IngestorBuilder`] set it.
#[derive(Debug, Clone)]
pub(crate) struct StoreOptions {
    pub durability: crate::Durability,
    /// How long a write waits for another's lock (and, on PostgreSQL, for a
    /// free connection).
    pub busy_timeout: std::time::Duration,
}

/// True for the URLs the PostgreSQL backend opens (`postgres://`,
/// `postgresql://`), whether or not this build has it.
pub(crate) fn is_postgres_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// One thing a write call stores, already decided by the rules.
#[derive(Debug)]
pub(crate) enum WriteItem {
    /// A valid event: inserted unless its key is already stored.
    Event {
        key: Vec<u8>,
        event: Event,
        /// A dead-letter row this event came from (reprocessing): removed in
        /// the same transaction, whether the event is new or a duplicate.
        replaces: Option<i64>,
    },
    /// A rejection: kept once per distinct raw input and client (by the
    /// copy's digest, which is the client's: `RawCopy::owned_by`).
    Rejected {
        copy: RawCopy,
        reasons: Vec<Reason>,
        /// False when reprocessing re-rejects a stored row: not a new attempt.
        new_attempt: bool,
        /// The client the dead letter belongs to; `None`: none known.
        client: Option<String>,
    },
}

/// What the database did with one [`WriteItem`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Written {
    Inserted(i64),
    /// Its key was stored already: as this event, or (`None`) exactly as
    /// the item's own event, attributes and all.
    Stored(i64, Option<Box<Event>>),
    Rejected,
}

/// What one client has in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ClientCounts {
    pub events: u64,
    pub rejected: u64,
}

/// Counts kept by the database, shared by every process on the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StoredCounts {
    pub events: u64,
    pub rejected: u64,
    /// Dead letters removed to keep the store within its bound.
    pub evicted: u64,
}
