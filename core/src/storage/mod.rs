//! The boundary between the rules and the database.
//!
//! Everything above this module is pure (normalisation, keys, query plans);
//! everything a backend must do is the [`Store`] trait: write a batch of
//! decided items in one transaction with the dedup key enforced by the
//! database, look a key up, answer aggregates from rollups and edge scans,
//! and page through events and rejections. A second backend (PostgreSQL)
//! implements the same trait and runs the same tests.

use serde_json::Value;

use crate::aggregate::{Aggregate, Query};
use crate::error::Result;
use crate::event::{Event, Reason, RejectedEvent, StoredEvent};
use crate::failure::FailPoint;
use crate::rules::Rules;
use crate::timestamp::Timestamp;

mod schema;
pub(crate) mod sqlite;

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
    /// A rejection: kept once per distinct raw input (by digest).
    Rejected {
        raw: String,
        digest: [u8; 32],
        reasons: Vec<Reason>,
        /// False when reprocessing re-rejects a stored row: not a new attempt.
        new_attempt: bool,
    },
}

/// What the database did with one [`WriteItem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Inserted(i64),
    Duplicate(i64),
    Rejected,
}

/// Filter and page for listing events. Newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub client_id: Option<String>,
    /// Cased by the rules before matching.
    pub metric: Option<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub limit: usize,
    pub offset: usize,
}

/// The most rows one page may ask for.
pub const MAX_PAGE: usize = 10_000;

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            client_id: None,
            metric: None,
            start: None,
            end: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// Counts kept by the database, shared by every process on the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StoredCounts {
    pub events: u64,
    pub rejected: u64,
}

/// A backend. Implementations are shared between threads; each call is
/// atomic on its own.
pub(crate) trait Store: Send + Sync {
    /// Record `rules` and return their version number (the same document
    /// always gets the same number). Re-keys stored events when the dedup key
    /// changed since the last open.
    fn register_rules(&self, rules: &Rules, rekey: &dyn Fn(&Event) -> Vec<u8>) -> Result<i64>;

    /// Write `items` in one transaction, failing at `fail` if given.
    fn write(&self, items: &[WriteItem], rules_version: i64, fail: Option<FailPoint>) -> Result<Vec<Written>>;

    /// The id of the stored event with this key.
    fn find(&self, key: &[u8]) -> Result<Option<i64>>;

    /// Answer a query (its metric already cased); `fail` makes the read fail.
    fn aggregate(&self, q: &Query, fail: bool) -> Result<Aggregate>;

    fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>>;

    fn rejected(&self, limit: usize, offset: usize) -> Result<Vec<RejectedEvent>>;

    /// Up to `limit` dead-letter rows with id above `after`, in id order: (id, raw).
    fn rejected_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, Value)>>;

    fn counts(&self) -> Result<StoredCounts>;
}
