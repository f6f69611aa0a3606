//! `ingest-core`: take metric events from unreliable clients, normalise their
//! inconsistent schemas, store each real event exactly once, and answer
//! aggregate queries that stay correct however often clients retry.
//!
//! Where to find what:
//! - [`normalize`](mod@normalize): raw JSON to the canonical [`Event`], or every [`Reason`] it fails;
//! - `raw_event`: the same from JSON text in one pass, the fast path of
//!   `submit_json` and `submit_batch_json`; `json_items`: the slow path
//!   that reads a batch's text one item at a time, so one unreadable item
//!   is rejected alone;
//! - [`limits`]: the shape every event must keep (size, depth, finite
//!   numbers, reserved keys) and the bounded copy a dead letter keeps;
//! - [`rules`]: the rules document and its merge over the built-in rules;
//! - `options`: what a caller passes besides events: durability, queries,
//!   filters, pages;
//! - [`timestamp`]: the accepted ways of writing an instant;
//! - [`window`]: the acceptance window (`max_age`, `max_future`, the prune
//!   horizon) that makes pruning safe;
//! - [`dedup`]: the key that makes two events the same event;
//! - [`identity`](mod@identity): the one form of names (client, metric, event id);
//! - `storage`: the engine both backends share (writes, dead letters,
//!   rollups, migrations, listings, aggregate pieces) over a small trait of
//!   database operations; the SQLite backend and (feature `postgres`) the
//!   PostgreSQL backend;
//! - [`aggregate`](mod@aggregate): queries, range planning over rollups, results;
//! - `zone`: the local buckets of a time zone ([`Query::tz`]) and the
//!   planning of a range over them;
//! - [`failure`]: failure injection;
//! - [`Ingestor`]: the API that ties them together.
//!
//! ```
//! use ingest_core::{Ingestor, Outcome};
//! let ing = Ingestor::in_memory()?;
//! let out = ing.submit_json(r#"{"source": "clientB", "payload": {"amt": "1200", "ts": "2024-01-02"}}"#)?;
//! let Outcome::Accepted { event, .. } = out else { panic!("expected accepted") };
//! assert_eq!(event.metric, "unknown");
//! assert_eq!(event.timestamp.to_string(), "2024-01-02T00:00:00.000Z");
//! # Ok::<(), ingest_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod aggregate;
mod archive;
pub mod dedup;
mod error;
mod event;
mod exact;
pub mod failure;
pub mod identity;
mod ingestor;
mod json_items;
pub mod keys;
pub mod limits;
mod location;
pub mod normalize;
mod options;
mod raw_event;
pub mod rules;
mod scoped;
mod stale_cache;
mod storage;
pub mod timestamp;
pub mod window;
mod zone;

pub use aggregate::{Aggregate, Bucket, Group, GroupKey, Stats};
/// An IANA time zone, as [`Query::tz`] takes it (from the chrono-tz crate).
pub use chrono_tz::Tz;
pub use dedup::dedup_key;
pub use error::{Error, ErrorKind, Result, StorageKind};
pub use event::{Event, Outcome, Reason, ReasonCode, RejectedEvent, StoredEvent};
pub use failure::FailPoint;
pub use ingestor::{
    ClientStats, CopyReport, DeadLetterBound, IngestStats, Ingestor, IngestorBuilder, Input, PruneReport, Pruned,
    ReprocessReport, DEFAULT_MAX_DEAD_LETTERS, PRUNE_CHUNK,
};
pub use keys::{KeyInfo, KeyScope, NewKey, Principal};
pub use normalize::{normalize, normalize_fields, Fields};
pub use options::{Durability, EventFilter, Page, PruneRequest, Query, MAX_PAGE};
pub use raw_event::ReadEvent;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub use raw_event::{fast_normalize_batch, fast_read_batch, fast_read_event, FastRead};
pub use rules::{Field, MetricCase, Rules};
pub use scoped::Scoped;
pub use timestamp::Timestamp;
pub use window::{Age, Window};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
