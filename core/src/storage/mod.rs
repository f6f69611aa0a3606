//! The boundary between the rules and the database.
//!
//! Everything above this module is pure (normalisation, keys, query plans);
//! everything a backend must do is the [`Store`] trait: write a batch of
//! decided items in one transaction with the dedup key enforced by the
//! database, look a key up, answer aggregates from rollups and edge scans,
//! and page through events and rejections. A second backend (PostgreSQL)
//! implements the same trait and runs the same tests.

use serde_json::Value;

use crate::aggregate::{opt_text, opt_time};
use crate::error::Error;

use crate::aggregate::{Aggregate, Query};
use crate::error::Result;
use crate::event::{Event, Reason, RejectedEvent, StoredEvent};
use crate::failure::FailPoint;
use crate::rules::Rules;
use crate::timestamp::Timestamp;

mod checkpoint;
mod group;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod schema;
pub(crate) mod sql;
pub(crate) mod sqlite;

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

pub(crate) use group::Committed;

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

impl EventFilter {
    /// Parse `{"client_id", "metric", "start", "end", "limit", "offset"}`
    /// (every key optional), as the C ABI and the server pass it. Unknown keys
    /// and bad values are errors.
    ///
    /// ```
    /// let f = ingest_core::EventFilter::from_json(r#"{"metric": "sales", "limit": 5}"#).unwrap();
    /// assert_eq!((f.metric.as_deref(), f.limit, f.offset), (Some("sales"), 5, 0));
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value(&parse_object(text, "filter")?)
    }

    /// As [`EventFilter::from_json`], from a parsed value.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = object(v, "filter", &["client_id", "metric", "start", "end", "limit", "offset"])?;
        let page = Page::from_value(&Value::Object(
            obj.iter()
                .filter(|(k, _)| *k == "limit" || *k == "offset")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))?;
        Ok(EventFilter {
            client_id: opt_text(obj.get("client_id"), "client_id")?,
            metric: opt_text(obj.get("metric"), "metric")?,
            start: opt_time(obj.get("start"), "start")?,
            end: opt_time(obj.get("end"), "end")?,
            limit: page.limit,
            offset: page.offset,
        })
    }
}

/// A page of a listing: at most `limit` rows (1 to [`MAX_PAGE`]) after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page { limit: 100, offset: 0 }
    }
}

impl Page {
    /// Parse `{"limit", "offset"}` (both optional).
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value(&parse_object(text, "page")?)
    }

    /// As [`Page::from_json`], from a parsed value.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = object(v, "page", &["limit", "offset"])?;
        let count = |key: &str, default: usize| -> Result<usize> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(n) => n
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| Error::arg(format!("{key} must be a whole number >= 0"))),
            }
        };
        Ok(Page {
            limit: count("limit", 100)?,
            offset: count("offset", 0)?,
        })
    }
}

fn parse_object(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::arg(format!("{what} is not valid JSON: {e}")))
}

fn object<'a>(v: &'a Value, what: &str, keys: &[&str]) -> Result<&'a serde_json::Map<String, Value>> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::arg(format!("{what} must be a JSON object")))?;
    if let Some(k) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(Error::arg(format!(
            "{what}: unknown key {k:?}; expected one of {}",
            keys.join(", ")
        )));
    }
    Ok(obj)
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

    /// Write `items` in one transaction, failing at `fail` if given, and hand
    /// them back with what was done with each. Concurrent calls may share a
    /// transaction (group commit); each returns only after it committed.
    fn write(&self, items: Vec<WriteItem>, rules_version: i64, fail: Option<FailPoint>) -> Result<Committed>;

    /// The id of the stored event with this key.
    fn find(&self, key: &[u8]) -> Result<Option<i64>>;

    /// Answer a query (its metric already cased); `fail` makes the read fail.
    fn aggregate(&self, q: &Query, fail: bool) -> Result<Aggregate>;

    fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>>;

    /// Up to `limit` stored events with id above `after`, in id order.
    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>>;

    fn rejected(&self, limit: usize, offset: usize) -> Result<Vec<RejectedEvent>>;

    /// Up to `limit` dead-letter rows with id above `after`, in id order: (id, raw).
    fn rejected_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, Value)>>;

    fn counts(&self) -> Result<StoredCounts>;
}
