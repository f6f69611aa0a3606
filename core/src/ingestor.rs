//! [`Ingestor`]: the entry point that ties rules, keys, storage, failure
//! injection and the stale-result cache together.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::aggregate::Aggregate;
use crate::archive::Archive;
use crate::dedup::dedup_key;
use crate::error::{Error, Result};
use crate::event::{Event, Outcome, Reason, ReasonCode, RejectedEvent, StoredEvent};
use crate::failure::{FailPoint, FailureSwitch};
use crate::identity::identity;
use crate::json_items::{may_hold_reserved_key, not_json, split_batch, split_one, ItemText};
use crate::keys::{self, KeyInfo, KeyScope, NewKey, Principal};
use crate::limits::{
    check_shape, raw_copy, shorten, RawCopy, DEFAULT_MAX_DEAD_LETTER_BYTES, DEFAULT_MAX_EVENT_BYTES, MAX_DEPTH,
    RESERVED_KEY_PREFIX,
};
use crate::location::{open_store, Location};
use crate::normalize::{client_id_of, dead_letter_client, normalize_fields_within, normalize_within, Fields};
use crate::options::{Durability, EventFilter, Page, Query, MAX_PAGE};
use crate::raw_event::{read_batch, read_event, read_with, InputNames, RawEvent, ReadEvent};
use crate::rules::Rules;
use crate::stale_cache::StaleCache;
use crate::storage::horizon_moved;
use crate::storage::{Engine, WriteItem, Written, CHUNK_ROWS};
use crate::timestamp::Timestamp;
use crate::window::Window;

/// Options for [`Ingestor::open`]; start from [`Ingestor::builder`].
#[derive(Debug, Clone)]
pub struct IngestorBuilder {
    location: Location,
    rules: Rules,
    durability: Durability,
    busy_timeout: Duration,
    max_event_bytes: usize,
    dead_letters: DeadLetterBound,
}

/// What the dead-letter store keeps: at most `max_rows` rejected inputs
/// (the oldest go first; stats count them as evicted), each with a copy of
/// at most `max_copy_bytes` of its JSON text. Together they bound the space
/// rejected junk can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterBound {
    /// The most dead letters kept (default 10 000); at least 1.
    pub max_rows: u64,
    /// The most bytes of JSON text kept as one input's copy (default
    /// 64 KiB); at least 64.
    pub max_copy_bytes: usize,
}

impl Default for DeadLetterBound {
    fn default() -> Self {
        DeadLetterBound {
            max_rows: DEFAULT_MAX_DEAD_LETTERS,
            max_copy_bytes: DEFAULT_MAX_DEAD_LETTER_BYTES,
        }
    }
}

/// The default bound on stored dead letters: with copies of at most 64 KiB,
/// about 640 MiB at the very worst.
pub const DEFAULT_MAX_DEAD_LETTERS: u64 = 10_000;

impl IngestorBuilder {
    /// The rules to normalise with (default: [`Rules::builtin`]).
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// How hard each commit works to survive failures (default
    /// [`Durability::Full`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a write waits for another process's lock before failing with
    /// a busy storage error (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The largest event accepted, in bytes of JSON (default 1 MiB).
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// How many dead letters are kept and how much of each (default 10 000
    /// rows, copies of at most 64 KiB); see [`DeadLetterBound`].
    pub fn dead_letters(mut self, bound: DeadLetterBound) -> Self {
        self.dead_letters = bound;
        self
    }

    /// Open the store, creating it and migrating its schema as needed.
    pub fn open(self) -> Result<Ingestor> {
        if self.dead_letters.max_rows == 0 || self.dead_letters.max_copy_bytes < 64 {
            return Err(Error::arg(
                "dead letters: max_rows must be at least 1 and max_copy_bytes at least 64",
            ));
        }
        let mut store = open_store(&self.location, self.durability, self.busy_timeout)?;
        store.bound_dead_letters(self.dead_letters.max_rows);
        let rules = self.rules;
        let rules_version = store.register_rules(&rules, &|e| dedup_key(e, &rules))?;
        Ok(Ingestor {
            store,
            location: self.location.display(),
            names: InputNames::new(&rules),
            rules: Arc::new(rules),
            rules_version,
            durability: self.durability,
            max_event_bytes: self.max_event_bytes,
            dead_letters: self.dead_letters,
            failures: FailureSwitch::default(),
            counters: Counters::default(),
            cache: Mutex::new(StaleCache::default()),
        })
    }
}

/// Counts of what this `Ingestor` answered since it was opened, and what the
/// database holds (shared by every process on the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct IngestStats {
    /// Events a submit call answered `accepted` (stored for the first time).
    pub accepted: u64,
    /// Events a submit call answered `duplicate` (already stored).
    pub duplicate: u64,
    /// Events whose key matched a stored event with other canonical fields.
    pub conflict: u64,
    /// Events a submit call answered `rejected`.
    pub rejected: u64,
    /// Storage or injected failures met by this `Ingestor`'s writes and
    /// aggregates (an aggregate answered from the stale cache counts too:
    /// the database failed); errors of listings and dry runs are not
    /// counted.
    pub failed: u64,
    /// Events stored in the database.
    pub stored_events: u64,
    /// Distinct rejected inputs in the dead-letter store.
    pub stored_rejected: u64,
    /// Dead letters removed, oldest first, to keep the store within its
    /// bound ([`DeadLetterBound`]), since the store was created.
    pub evicted_rejected: u64,
}

/// What one client has in the store ([`crate::Scoped::stats`]): the
/// store-wide counters of [`IngestStats`] are not for a client's eyes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ClientStats {
    /// The client.
    pub client_id: String,
    /// Its events stored, exact: summed from its days' rollups, and counted
    /// from its events in the days a prune may have touched.
    pub stored_events: u64,
    /// Its dead letters stored (those of no known client are nobody's).
    pub stored_rejected: u64,
}

/// What [`Ingestor::reprocess_rejected`] did with the stored rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReprocessReport {
    /// Now valid and stored as new events (and gone from the dead letters).
    pub accepted: u64,
    /// Now valid but already stored (and gone from the dead letters).
    pub duplicate: u64,
    /// Now valid, but a stored event has its key with other canonical
    /// fields: kept in the dead letters, with its attempts unchanged.
    pub conflict: u64,
    /// Still rejected: kept, with the current rules' reasons and version.
    pub rejected: u64,
}

/// The rows a prune moves in one chunk (one transaction).
pub const PRUNE_CHUNK: usize = CHUNK_ROWS;

/// What [`Ingestor::prune`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Events removed (their rollups stay).
    pub events: u64,
    /// Dead letters removed.
    pub rejected: u64,
    /// The horizon: nothing before it is accepted from now on.
    pub before: Timestamp,
    /// The archive file, as an absolute path, when one was written.
    pub archive: Option<String>,
    /// The bytes the store's tables and indexes took before the prune.
    pub bytes_before: u64,
    /// The same after it, once the space was given back.
    pub bytes_after: u64,
}

/// What the store records of pruning ([`Ingestor::pruned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pruned {
    /// Nothing before this is accepted again; `None` if never pruned.
    pub before: Option<Timestamp>,
    /// Events removed by every prune so far.
    pub events: u64,
    /// Dead letters removed by every prune so far.
    pub rejected: u64,
}

/// One line of a prune's archive: the row, tagged with what it was.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Archived<'a> {
    Event(&'a StoredEvent),
    Rejected(&'a RejectedEvent),
}

/// What [`Ingestor::copy_to`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CopyReport {
    /// Events stored in the target for the first time.
    pub copied: u64,
    /// Events the target already held (a copy run again, or data that was
    /// there before).
    pub already_there: u64,
    /// Dead letters kept by the target (still rejected by its rules).
    pub rejected: u64,
    /// Dead letters the target's rules accept: stored there as events.
    pub now_accepted: u64,
    /// Events before the target's prune horizon, not copied: the target
    /// keeps that time in its rollups only, and cannot tell which of them
    /// it counted already.
    pub pruned: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    conflict: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

/// Event text up to this many times the byte limit is parsed to be
/// rejected as a value; longer text is rejected unread, kept as text.
const TEXT_READ_FACTOR: usize = 16;

/// Rejections re-processed per transaction.
const REPROCESS_CHUNK: usize = 500;

/// Events copied per transaction by [`Ingestor::copy_to`].
const COPY_CHUNK: usize = 5_000;

/// Times a write is decided again when the store was pruned meanwhile by
/// another process: once is enough unless prunes follow each other faster
/// than a write; the last refusal is returned (a busy error, to retry).
const DECIDE_AGAIN: u32 = 3;

/// Normalises, deduplicates, stores and aggregates events. Share one between
/// threads (it is `Send + Sync`); several processes may open the same file.
///
/// ```
/// use ingest_core::{Ingestor, Query};
/// use serde_json::json;
///
/// let ing = Ingestor::in_memory()?;
/// let first = ing.submit(&json!({"source": "clientA", "payload": {"metric": "sales", "value": 1200, "timestamp": "2024-01-01"}}))?;
/// assert_eq!(first.status(), "accepted");
/// // The same event spelled differently is the same event.
/// let again = ing.submit(&json!({"client_id": "clientA", "metric": "Sales", "amount": "1200", "ts": "2024-01-01T00:00:00Z"}))?;
/// assert_eq!((again.status(), again.id()), ("duplicate", first.id()));
/// // Missing amount and timestamp: rejected with every reason, never guessed.
/// let bad = ing.submit(&json!({"source": "clientC", "payload": {"metric": "views"}}))?;
/// assert_eq!(bad.reasons().len(), 2);
///
/// let total = ing.aggregate(&Query { metric: Some("sales".into()), ..Query::default() })?;
/// assert_eq!((total.totals.count, total.totals.sum), (1, 1200.0));
/// # Ok::<(), ingest_core::Error>(())
/// ```
pub struct Ingestor {
    store: Engine,
    location: String,
    /// Shared with each [`ReadEvent`] read under them (see
    /// [`Ingestor::read_input`]).
    rules: Arc<Rules>,
    /// The rules' input names, indexed for the fast JSON path.
    names: InputNames,
    rules_version: i64,
    durability: Durability,
    max_event_bytes: usize,
    dead_letters: DeadLetterBound,
    failures: FailureSwitch,
    counters: Counters,
    cache: Mutex<StaleCache>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("location", &self.location)
            .field("rules_version", &self.rules_version)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Ingestor {
    /// Options for opening the store at `path`: a SQLite file, `":memory:"`
    /// for a private in-memory store, or a `postgres://` URL (with the
    /// `postgres` feature; `?schema=NAME` picks the schema, default `public`).
    pub fn builder(path: impl AsRef<Path>) -> IngestorBuilder {
        IngestorBuilder {
            location: Location::of(path.as_ref()),
            rules: Rules::builtin(),
            durability: Durability::default(),
            busy_timeout: Duration::from_secs(5),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            dead_letters: DeadLetterBound::default(),
        }
    }

    /// Open the store at `path` (see [`Ingestor::builder`]) with the
    /// built-in rules and full durability.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// A private in-memory store, gone when dropped.
    pub fn in_memory() -> Result<Self> {
        Self::builder(":memory:").open()
    }

    /// Where the store lives: the path or URL it was opened with, with a
    /// URL's password hidden (`postgres://app:***@db/metrics`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The version number the store gave these rules; rejections record it.
    pub fn rules_version(&self) -> i64 {
        self.rules_version
    }

    /// The durability the store was opened with.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Submit one raw event. Rejections are outcomes (an event too large,
    /// too deep or holding a number no double can hold among them); an error
    /// means nothing of this call was kept (see [`FailPoint::AfterCommit`]
    /// for the one deliberate exception) and the same call may be retried.
    pub fn submit(&self, raw: &Value) -> Result<Outcome> {
        Ok(self.answer(|| Ok(vec![self.decide(raw, &self.window())]))?.remove(0))
    }

    /// [`Ingestor::submit`] from JSON text. Text that is not JSON is an
    /// [`Error::InvalidArgument`]; an event that is JSON but cannot be kept
    /// as a value (a lone surrogate escape, nesting past
    /// [`MAX_DEPTH`](crate::limits::MAX_DEPTH), text over the byte limit)
    /// is a rejection.
    pub fn submit_json(&self, text: &str) -> Result<Outcome> {
        Ok(self
            .answer(|| Ok(vec![self.decide_text(text, &self.window())?]))?
            .remove(0))
    }

    /// Submit typed fields without JSON (the C fast path): the same rules,
    /// keys and storage as [`Ingestor::submit`].
    pub fn submit_fields(&self, fields: &Fields<'_>) -> Result<Outcome> {
        let decide = || {
            Ok(vec![
                match normalize_fields_within(fields, &self.rules, &self.window()) {
                    Ok(event) => self.valid(event),
                    // Typed fields name their client directly, whatever the
                    // rules' input names: it is read as normalize_fields reads it.
                    Err(reasons) => {
                        let client = client_id_of(fields.client_id, &self.rules).ok();
                        reject_item(self.copy_of(&fields.to_raw()), reasons, true, client)
                    }
                },
            ])
        };
        Ok(self.answer(decide)?.remove(0))
    }

    /// Submit many events in one transaction: one outcome per input, in
    /// order; a repeat inside the batch is a duplicate of the first. Each
    /// item that breaks a rule is rejected alone; on an error (of the
    /// storage) nothing of the batch is kept.
    pub fn submit_batch(&self, raws: &[Value]) -> Result<Vec<Outcome>> {
        self.answer(|| {
            let w = self.window();
            Ok(raws.iter().map(|raw| self.decide(raw, &w)).collect())
        })
    }

    /// [`Ingestor::submit_batch`] for items as a binding read them (see
    /// [`Input`]). Only an item of text that is not JSON fails the call,
    /// and the error names it.
    pub fn submit_inputs(&self, inputs: &[Input]) -> Result<Vec<Outcome>> {
        self.answer(|| self.decide_inputs(inputs, &self.window()))
    }

    /// [`Ingestor::submit`] for one [`Input`].
    pub fn submit_input(&self, input: &Input) -> Result<Outcome> {
        Ok(self
            .answer(|| Ok(vec![self.decide_input(input, &self.window())?]))?
            .remove(0))
    }

    /// One event read from a binding's own values through `de`, a serde
    /// deserializer over them, into what the fast JSON path reads from text
    /// (see `raw_event.rs`): no `Value` is built for it, and it is decided
    /// exactly as that value would be. `Err` where the reading steps aside
    /// (anything unusual, such as a reserved key or a `payload` that is not
    /// an object, or whatever `de` itself refuses): the binding then builds
    /// the [`Input::Value`] (or [`Input::Unreadable`]) it stands for, which
    /// answers it. `de` must give what the value's JSON would: a
    /// deserializer that cannot must refuse.
    pub fn read_input<D: serde::Deserializer<'static>>(&self, de: D) -> std::result::Result<Input, D::Error> {
        Ok(Input::Read(ReadEvent {
            event: read_with(de, &self.names)?,
            rules: Arc::clone(&self.rules),
        }))
    }

    /// [`Ingestor::check`] for one [`Input`].
    pub fn check_input(&self, input: &Input) -> Result<Outcome> {
        self.dry_run(self.decide_input(input, &self.window())?)
    }

    /// [`Ingestor::submit_batch`] from the JSON text of an array. Only text
    /// that is not JSON fails the call (the error names the item); each item
    /// [`Ingestor::submit_json`] would reject is rejected alone.
    pub fn submit_batch_json(&self, text: &str) -> Result<Vec<Outcome>> {
        self.answer(|| self.decide_batch_text(text, &self.window()))
    }

    /// What [`Ingestor::submit`] would answer for `raw`, storing nothing.
    /// An accepted answer has no id.
    pub fn check(&self, raw: &Value) -> Result<Outcome> {
        self.dry_run(self.decide(raw, &self.window()))
    }

    /// [`Ingestor::check`] from JSON text, as [`Ingestor::submit_json`] reads it.
    pub fn check_json(&self, text: &str) -> Result<Outcome> {
        self.dry_run(self.decide_text(text, &self.window())?)
    }

    /// Aggregate stored events. Exact for any range: whole hours come from
    /// the rollups and the cut hours at the edges from the events.
    ///
    /// When the database cannot be read, the last result computed for the
    /// same query is returned with `stale: true`; without one, the error.
    pub fn aggregate(&self, query: &Query) -> Result<Aggregate> {
        query.check_range()?;
        let mut q = query.clone();
        q.metric = q.metric.map(|m| self.rules.normalize_metric(&m));
        q.client_id = q.client_id.map(|c| identity(&c).into_owned());
        let fail = self.failures.take(|p| p == FailPoint::Aggregate);
        match self.store.aggregate(&q, fail) {
            Ok(result) => {
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).put(q, &result);
                Ok(result)
            }
            Err(e) if e.is_storage() => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                cache.stale(&q).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Stored events matching `filter`, newest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        check_page(filter.limit)?;
        let mut f = filter.clone();
        f.metric = f.metric.map(|m| self.rules.normalize_metric(&m));
        f.client_id = f.client_id.map(|c| identity(&c).into_owned());
        self.store.events(&f)
    }

    /// Stored rejections (dead letters), newest first, of every client and
    /// of none ([`Scoped::rejected`](crate::Scoped::rejected) lists one
    /// client's).
    pub fn rejected(&self, page: Page) -> Result<Vec<RejectedEvent>> {
        check_page(page.limit)?;
        self.store.rejected(None, page.limit, page.offset)
    }

    /// One client's dead letters, newest first (see [`crate::Scoped`]).
    pub(crate) fn client_rejected(&self, client: &str, page: Page) -> Result<Vec<RejectedEvent>> {
        check_page(page.limit)?;
        self.store.rejected(Some(client), page.limit, page.offset)
    }

    /// What one client has in the store (see [`crate::Scoped::stats`]).
    pub(crate) fn client_stats(&self, client: &str) -> Result<ClientStats> {
        let counts = self.store.client_counts(client)?;
        Ok(ClientStats {
            client_id: client.to_string(),
            stored_events: counts.events,
            stored_rejected: counts.rejected,
        })
    }

    /// Normalise every stored rejection again under the current rules. Those
    /// that pass are stored (still deduplicated) and leave the dead-letter
    /// store in the same transaction, unless a stored event holds their key
    /// with other fields (a conflict: they stay); the rest keep their place
    /// with the current reasons and rules version. Copies that are not the
    /// input itself (`raw_exact: false`) are left as they are. A dead letter
    /// of a client is decided again as that client's (as a scoped caller of
    /// it would be) and stays that client's; one of no client stays of none.
    /// Works in chunks, one transaction each, so an error part-way leaves
    /// every chunk either done or untouched.
    pub fn reprocess_rejected(&self) -> Result<ReprocessReport> {
        let mut report = ReprocessReport::default();
        let mut after = 0;
        loop {
            let rows = self.counted(self.store.rejected_after(after, REPROCESS_CHUNK))?;
            let Some(last) = rows.last() else {
                return Ok(report);
            };
            after = last.id;
            let mut raws: Vec<(i64, Value, Option<String>)> = Vec::with_capacity(rows.len());
            for row in rows {
                // A copy that is not the input (cut, or standing in for what
                // JSON cannot hold) is never decided again: the input is gone.
                match row.exact_raw()? {
                    Some(raw) => raws.push((row.id, raw, row.client)),
                    None => report.rejected += 1,
                }
            }
            let decide = || {
                let w = self.window();
                Ok(raws
                    .iter()
                    .map(|(id, raw, client)| match self.decide_letter(raw, &w, client) {
                        WriteItem::Event { key, event, .. } => WriteItem::Event {
                            key,
                            event,
                            replaces: Some(*id),
                        },
                        WriteItem::Rejected {
                            copy, reasons, client, ..
                        } => WriteItem::Rejected {
                            copy,
                            reasons,
                            new_attempt: false,
                            client,
                        },
                    })
                    .collect())
            };
            for outcome in self.write(decide)? {
                match outcome {
                    Outcome::Accepted { .. } => report.accepted += 1,
                    Outcome::Duplicate { .. } => report.duplicate += 1,
                    Outcome::Conflict { .. } => report.conflict += 1,
                    Outcome::Rejected { .. } => report.rejected += 1,
                }
            }
        }
    }

    /// Remove the events before `before` and the dead letters received
    /// before it, keeping every rollup: aggregates over whole buckets stay
    /// exact, and a range whose edge needs a removed event is refused (see
    /// the README's lifecycle section).
    ///
    /// It refuses ([`Error::InvalidArgument`]) unless the rules set
    /// `max_age` and `before` is at or before now minus `max_age`: then
    /// every removed event is one the window rejects (`too_old`) if it is
    /// sent again, and the store keeps `before` as a floor that holds even
    /// if the rules change later, so a retry is never counted twice.
    ///
    /// With `archive`, the removed rows go to that file first as NDJSON
    /// (gzip when its name ends in `.gz`), each chunk synced before the
    /// chunk is removed. Rows go in chunks of [`PRUNE_CHUNK`], one short
    /// transaction each; an interrupted prune run again with the same
    /// archive finishes the work, with every row archived exactly once.
    /// Then the space is given back (SQLite: incremental vacuum, or one full
    /// VACUUM on a file made before pruning existed; PostgreSQL: VACUUM).
    ///
    /// ```
    /// # use ingest_core::{Ingestor, Rules, Timestamp};
    /// let ing = Ingestor::builder(":memory:").rules(Rules::from_json(r#"{"max_age": "90d"}"#)?).open()?;
    /// let before = Timestamp::parse("2020-01-01").unwrap();
    /// assert_eq!(ing.prune(before, None)?.events, 0);
    /// assert!(ing.prune(Timestamp::now(), None).is_err(), "inside the window");
    /// # Ok::<(), ingest_core::Error>(())
    /// ```
    pub fn prune(&self, before: Timestamp, archive: Option<&Path>) -> Result<PruneReport> {
        let Some(max_age) = self.rules.max_age() else {
            return Err(Error::arg(
                "prune needs the rules' max_age: without an acceptance window a retry of a pruned event would be stored and counted again; set max_age (such as \"90d\") in the rules first",
            ));
        };
        let floor = Window::at(Timestamp::now(), Some(max_age), None, None).floor();
        if let Some(floor) = floor.filter(|f| before > *f) {
            return Err(Error::arg(format!(
                "before {before} is inside the acceptance window (max_age {max_age}): events after {floor} are still accepted, so their retries could be counted again; prune up to that time at most"
            )));
        }
        let mut report = PruneReport {
            events: 0,
            rejected: 0,
            before,
            archive: None,
            bytes_before: self.counted(self.store.bytes_used())?,
            bytes_after: 0,
        };
        self.counted(self.store.raise_horizon(before.millis()))?;
        let mut recorded = self.counted(self.store.lifecycle())?.archive;
        let mut file = archive.map(|p| Archive::open(p, recorded.as_ref())).transpose()?;
        loop {
            let chunk = self.counted(self.store.prune_chunk(before.millis()))?;
            if chunk.is_empty() {
                break;
            }
            let next = match &mut file {
                Some(f) => {
                    if chunk.events.is_empty() {
                        f.append(&chunk.rejected.iter().map(Archived::Rejected).collect::<Vec<_>>())?;
                    } else {
                        f.append(&chunk.events.iter().map(Archived::Event).collect::<Vec<_>>())?;
                    }
                    Some(f.record())
                }
                None => None,
            };
            self.counted(self.store.remove_chunk(&chunk, &recorded, &next))?;
            if next.is_some() {
                recorded = next;
            }
            report.events += chunk.events.len() as u64;
            report.rejected += chunk.rejected.len() as u64;
        }
        self.counted(self.store.reclaim())?;
        report.bytes_after = self.counted(self.store.bytes_used())?;
        report.archive = recorded.filter(|_| archive.is_some()).map(|(p, _)| p);
        Ok(report)
    }

    /// What the store records of pruning: the horizon and how many rows
    /// every prune removed.
    pub fn pruned(&self) -> Result<Pruned> {
        let l = self.store.lifecycle()?;
        Ok(Pruned {
            before: l.pruned_before.and_then(Timestamp::from_millis),
            events: l.pruned_events,
            rejected: l.pruned_rejected,
        })
    }

    /// Copy every stored event and dead letter into `target`, for moving a
    /// store to another backend (SQLite to PostgreSQL, say) or file.
    ///
    /// Events go in as they are stored (canonical, already normalised),
    /// keyed and summed into rollups by the target, so the target stays
    /// exact; what it already holds is a duplicate, never a second copy,
    /// which makes the copy safe to run again after an interruption. Dead
    /// letters are decided again by the target's rules (kept, or stored as
    /// events if those rules now accept them), each keeping its client as
    /// [`Ingestor::reprocess_rejected`] does. The target records the time
    /// of the copy as each row's `received_at`, and its own rules version.
    /// Work goes in chunks, one transaction each; stop writers to the
    /// source first, or copy again afterwards to pick up what came later.
    ///
    /// ```
    /// # use ingest_core::Ingestor;
    /// # use serde_json::json;
    /// let old = Ingestor::in_memory()?;
    /// old.submit(&json!({"client_id": "a", "metric": "sales", "amount": 3, "timestamp": 0}))?;
    /// let new = Ingestor::in_memory()?; // e.g. Ingestor::open("postgres://db.internal/metrics")
    /// assert_eq!(old.copy_to(&new)?.copied, 1);
    /// assert_eq!(old.copy_to(&new)?.already_there, 1);
    /// # Ok::<(), ingest_core::Error>(())
    /// ```
    pub fn copy_to(&self, target: &Ingestor) -> Result<CopyReport> {
        let mut report = CopyReport::default();
        let mut after = 0;
        loop {
            let events = self.store.events_after(after, COPY_CHUNK)?;
            let Some(last) = events.last() else {
                break;
            };
            after = last.id;
            // Events before the target's prune horizon stay out: the target
            // keeps that time in its rollups only, and cannot tell which of
            // them it counted already.
            let decide = || {
                let horizon = target.store.pruned_before().unwrap_or(i64::MIN);
                Ok(events
                    .iter()
                    .filter(|stored| stored.event.timestamp.millis() >= horizon)
                    .map(|stored| target.valid(stored.event.clone()))
                    .collect())
            };
            let outcomes = target.write(decide)?;
            report.pruned += (events.len() - outcomes.len()) as u64;
            for outcome in outcomes {
                match outcome {
                    Outcome::Accepted { .. } => report.copied += 1,
                    _ => report.already_there += 1,
                }
            }
        }
        let mut after = 0;
        loop {
            let rows = self.store.rejected_after(after, REPROCESS_CHUNK)?;
            let Some(last) = rows.last() else {
                return Ok(report);
            };
            after = last.id;
            // Each letter's input, to decide by the target's rules, or (`Err`)
            // the letter itself, kept as it is: there is no input left to decide.
            let mut letters = Vec::with_capacity(rows.len());
            for row in rows {
                letters.push(match row.exact_raw()? {
                    Some(raw) => Ok((raw, row.client)),
                    None => Err((row.reasons()?, row.copy, row.client)),
                });
            }
            let decide = || {
                let w = target.window();
                Ok(letters
                    .iter()
                    .map(|letter| match letter {
                        Ok((raw, client)) => target.decide_letter(raw, &w, client),
                        // Its digest is already its client's: kept as it is.
                        Err((reasons, copy, client)) => WriteItem::Rejected {
                            copy: copy.clone(),
                            reasons: reasons.clone(),
                            new_attempt: false,
                            client: client.clone(),
                        },
                    })
                    .collect())
            };
            for outcome in target.write(decide)? {
                match outcome {
                    Outcome::Rejected { .. } => report.rejected += 1,
                    _ => report.now_accepted += 1,
                }
            }
        }
    }

    /// Make an API key of `scope` and store it: its token is in the answer
    /// and nowhere else (the store keeps only its digest).
    pub fn add_key(&self, scope: KeyScope) -> Result<NewKey> {
        if let Some(client) = scope.client_id() {
            self.client_name(client)?;
        }
        let (id, token, digest) = keys::generate()?;
        self.store.add_key(&id, &scope, &digest)?;
        Ok(NewKey { id, token, scope })
    }

    /// Every API key, oldest first, revoked ones too (never their secrets).
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        self.store.keys()
    }

    /// Revoke the key with this id: from now on no process over this store
    /// accepts its token. Whether a valid key was revoked (`false`: no such
    /// key, or revoked already); an id of the wrong shape is an
    /// `InvalidArgument`.
    pub fn revoke_key(&self, id: &str) -> Result<bool> {
        self.store.revoke_key(&keys::check_id(id)?)
    }

    /// Whose `token` is: its key's id and scope; `None` when it is not the
    /// token of a valid key (malformed, unknown, revoked, or a wrong
    /// secret), so every wrong token gets one answer. The secret is
    /// compared in constant time.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        let Some((id, secret)) = keys::parse(token) else {
            return Ok(None);
        };
        let found = self.store.valid_key(&id.to_ascii_lowercase())?;
        Ok(found
            .filter(|(_, digest)| keys::matches(secret, digest))
            .map(|(info, _)| Principal {
                key_id: info.id,
                scope: info.scope,
            }))
    }

    /// `client`, checked as a client id an event may name (not empty, no
    /// NUL, within the length limit), in its one form of names: an API
    /// key's client, and the client a scoped caller writes as, are ones
    /// the store could have read from an event.
    pub(crate) fn client_name(&self, client: &str) -> Result<String> {
        let named = client_id_of(client, &self.rules).map_err(|reasons| {
            let why: Vec<&str> = reasons.iter().map(|r| r.message.as_str()).collect();
            Error::arg(format!("not a client id: {}", why.join("; ")))
        })?;
        if named != client {
            return Err(Error::arg(format!(
                "{:?} is not a client id in the one form of names (as an API key keeps it: {:?})",
                shorten(client, 60),
                shorten(&named, 60)
            )));
        }
        Ok(named)
    }

    /// Counts of outcomes since open, and of what the database holds.
    pub fn stats(&self) -> Result<IngestStats> {
        let stored = self.store.counts()?;
        let c = &self.counters;
        Ok(IngestStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            duplicate: c.duplicate.load(Ordering::Relaxed),
            conflict: c.conflict.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            stored_events: stored.events,
            stored_rejected: stored.rejected,
            evicted_rejected: stored.evicted,
        })
    }

    /// Make the next `times` calls that reach `point` fail there
    /// (`times == 0` disarms). Write points strike `submit`, `submit_batch`,
    /// `submit_fields`, `reprocess_rejected` and a `copy_to` into this
    /// store; `aggregate` strikes `aggregate`. Thread-safe; one point is armed at a time.
    pub fn simulate_failure(&self, point: FailPoint, times: u32) {
        self.failures.arm(point, times);
    }

    /// Disarm any simulated failure.
    pub fn clear_failure(&self) {
        self.failures.clear();
    }

    /// The armed failure point and how many more calls it strikes.
    pub fn armed_failure(&self) -> Option<(FailPoint, u32)> {
        self.failures.armed()
    }

    /// The acceptance window now: the rules' `max_age` and `max_future`,
    /// and the store's prune horizon.
    pub(crate) fn window(&self) -> Window {
        self.rules.window(Timestamp::now(), self.store.pruned_before())
    }

    /// What to write for `raw`: its event, or its rejection.
    fn decide(&self, raw: &Value, w: &Window) -> WriteItem {
        self.decide_owned(raw, w, || dead_letter_client(Some(raw), &self.rules, w))
    }

    /// [`Ingestor::decide`], a rejection being the dead letter of the
    /// client `owner` gives.
    fn decide_owned(&self, raw: &Value, w: &Window, owner: impl FnOnce() -> Option<String>) -> WriteItem {
        if let Err(reasons) = check_shape(raw, self.max_event_bytes) {
            let copy = raw_copy(raw, self.dead_letters.max_copy_bytes, true);
            return reject_item(copy, reasons, true, owner());
        }
        match normalize_within(raw, &self.rules, w) {
            Ok(event) => self.valid(event),
            Err(reasons) => reject_item(self.copy_of(raw), reasons, true, owner()),
        }
    }

    /// A stored dead letter's input decided again under the window `w`
    /// (reprocessing, copying): as its client's when it has one, as a
    /// scoped caller of that client would be, and still its client's (and
    /// of none when it has none) if rejected again, so that the row keeps
    /// its digest and who may list it.
    fn decide_letter(&self, raw: &Value, w: &Window, client: &Option<String>) -> WriteItem {
        match client {
            Some(c) => self.decide_owned(raw, &w.clone().for_client(c), || client.clone()),
            None => self.decide_owned(raw, w, || None),
        }
    }

    /// [`Ingestor::decide`] for an event read by the fast path: the same
    /// limits, the same rules. Anything rejected goes the `Value` path, so
    /// its reasons and kept raw text are exactly what `decide` gives.
    fn decide_read(&self, event: RawEvent<'_>, w: &Window) -> WriteItem {
        let size = event.measure(&self.rules);
        if size.bytes > self.max_event_bytes || !size.finite {
            return self.decide(&event.into_value(&self.rules), w);
        }
        match event.normalize(&self.rules, w) {
            Ok(event) => self.valid(event),
            Err((_, event)) => self.decide(&event.into_value(&self.rules), w),
        }
    }

    /// What to write for each of a batch's `inputs`; only text that is not
    /// JSON fails, naming its item.
    pub(crate) fn decide_inputs(&self, inputs: &[Input], w: &Window) -> Result<Vec<WriteItem>> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                self.decide_input(input, w).map_err(|e| match e {
                    Error::InvalidArgument(m) => Error::arg(format!("item {i} of the batch: {m}")),
                    other => other,
                })
            })
            .collect()
    }

    fn decide_input(&self, input: &Input, w: &Window) -> Result<WriteItem> {
        match input {
            Input::Value(raw) => Ok(self.decide(raw, w)),
            Input::Text(text) => self.decide_text(text, w),
            Input::Unreadable { copy, reasons } => Ok(self.reject_stand_in(copy, reasons.clone(), w)),
            // Read under these very rules: its aliases are this ingestor's.
            // Under others (read by another ingestor), as the value it is.
            Input::Read(read) if Arc::ptr_eq(&read.rules, &self.rules) => Ok(self.decide_read(read.event.clone(), w)),
            Input::Read(read) => Ok(self.decide(&read.to_value(), w)),
        }
    }

    /// The decision for one event's JSON text: the fast path, else the text
    /// read on its own (see `json_items`).
    pub(crate) fn decide_text(&self, text: &str, w: &Window) -> Result<WriteItem> {
        // Text far over the limit is refused unread. Nearer, it is read, so
        // that its dead letter is the one the same event gets in a batch or
        // as a value (one digest: retries count on one row).
        if text.len() > self.max_event_bytes.saturating_mul(TEXT_READ_FACTOR) {
            return Ok(self.reject_text(text, vec![too_large_text(text.len(), self.max_event_bytes)], w));
        }
        if !may_hold_reserved_key(text) {
            if let Some(event) = read_event(text, &self.names) {
                return Ok(self.decide_read(event, w));
            }
        }
        let item = split_one(text)?;
        self.decide_item(text, &item, w)
            .map_err(|e| Error::arg(format!("event is not valid JSON: {e}")))
    }

    /// The decisions for a batch's JSON text: the one-pass fast path, else
    /// each item read on its own (see `json_items`).
    pub(crate) fn decide_batch_text(&self, text: &str, w: &Window) -> Result<Vec<WriteItem>> {
        if !may_hold_reserved_key(text) {
            if let Some(events) = read_batch(text, &self.names) {
                return Ok(events.into_iter().map(|event| self.decide_read(event, w)).collect());
            }
        }
        split_batch(text)?
            .iter()
            .enumerate()
            .map(|(index, item)| {
                self.decide_item(text, item, w)
                    .map_err(|e| not_json(index, item.span.start, &format!("is not valid JSON: {e}")))
            })
            .collect()
    }

    /// The decision for the item `item` of `text`; an error is the item's
    /// own parse error.
    fn decide_item(
        &self,
        text: &str,
        item: &ItemText,
        w: &Window,
    ) -> std::result::Result<WriteItem, serde_json::Error> {
        // Sized as the fast path sizes it (its compact text), once parsed:
        // the whole batch's text is in memory already.
        let own = &text[item.span.clone()];
        if item.reserved_key {
            // serde_json reads an object whose first key is its private one
            // as a number (or fails): only when the key survives the parse
            // is it answered as a value would be.
            if let Ok(raw) = serde_json::from_str::<Value>(own) {
                if let Err(reasons) = check_shape(&raw, self.max_event_bytes) {
                    if reasons.iter().any(|r| r.code == ReasonCode::ReservedKey) {
                        return Ok(self.decide(&raw, w));
                    }
                }
            }
            let reason = Reason::new(
                ReasonCode::ReservedKey,
                "",
                format!("the event has a key starting with {RESERVED_KEY_PREFIX:?}, which the JSON library reserves"),
            );
            return Ok(self.reject_text(own, vec![reason], w));
        }
        if item.too_deep() {
            let reason = Reason::new(
                ReasonCode::TooDeep,
                "",
                format!("the event is nested deeper than {MAX_DEPTH} levels"),
            );
            return Ok(self.reject_text(own, vec![reason], w));
        }
        if item.lone_surrogates.is_empty() {
            return serde_json::from_str::<Value>(own).map(|raw| self.decide(&raw, w));
        }
        let raw: Value = serde_json::from_str(&item.repaired(own))?;
        let reason = Reason::new(
            ReasonCode::InvalidText,
            "",
            format!(
                "the event's text has {} escape(s) of a lone surrogate (such as \\ud800), which no Unicode text can hold; the kept copy shows U+FFFD in its place",
                item.lone_surrogates.len()
            ),
        );
        Ok(self.reject_stand_in(&raw, vec![reason], w))
    }

    /// What `check` answers for an item, storing nothing.
    fn dry_run(&self, item: WriteItem) -> Result<Outcome> {
        match item {
            WriteItem::Rejected { reasons, .. } => Ok(Outcome::Rejected { reasons }),
            WriteItem::Event { key, event, .. } => match self.store.find(&key)? {
                Some(stored) => Ok(Outcome::repeat(stored.id, stored.event, &event)),
                None => Ok(Outcome::Accepted { id: None, event }),
            },
        }
    }

    /// The dead letter's copy of `raw`, a value that reads back.
    fn copy_of(&self, raw: &Value) -> RawCopy {
        raw_copy(raw, self.dead_letters.max_copy_bytes, false)
    }

    /// A rejection kept as `stand_in`, the closest JSON to an input that
    /// JSON cannot hold: never decided again. Only a scoped caller's client
    /// owns it: the stand-in may spell a client the input did not.
    fn reject_stand_in(&self, stand_in: &Value, reasons: Vec<Reason>, w: &Window) -> WriteItem {
        let unsafe_as_value = check_shape(stand_in, usize::MAX).is_err();
        let mut copy = raw_copy(stand_in, self.dead_letters.max_copy_bytes, unsafe_as_value);
        copy.exact = false;
        reject_item(copy, reasons, true, dead_letter_client(None, &self.rules, w))
    }

    /// A rejection of text never read as a value: only a scoped caller's
    /// client owns it.
    fn reject_text(&self, text: &str, reasons: Vec<Reason>, w: &Window) -> WriteItem {
        let copy = RawCopy::of_text(text, self.dead_letters.max_copy_bytes);
        reject_item(copy, reasons, true, dead_letter_client(None, &self.rules, w))
    }

    fn valid(&self, event: Event) -> WriteItem {
        WriteItem::Event {
            key: dedup_key(&event, &self.rules),
            event,
            replaces: None,
        }
    }

    /// Write what `decide` gives and count each outcome: the submit calls'
    /// answers.
    pub(crate) fn answer(&self, decide: impl Fn() -> Result<Vec<WriteItem>>) -> Result<Vec<Outcome>> {
        let outcomes = self.write(decide)?;
        for o in &outcomes {
            let counter = match o {
                Outcome::Accepted { .. } => &self.counters.accepted,
                Outcome::Duplicate { .. } => &self.counters.duplicate,
                Outcome::Conflict { .. } => &self.counters.conflict,
                Outcome::Rejected { .. } => &self.counters.rejected,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcomes)
    }

    /// The one write path of submit, reprocessing and copying: the items
    /// `decide` gives are written, the armed failure strikes them, a
    /// failure is counted, and each item gets its outcome. Where another
    /// process pruned since they were decided and one of them is an event
    /// the prune removed, the store refuses them all, and they are decided
    /// again with the horizon it read.
    fn write(&self, decide: impl Fn() -> Result<Vec<WriteItem>>) -> Result<Vec<Outcome>> {
        let fail = self.failures.take(FailPoint::is_write);
        let mut decided_again = 0;
        let (items, written) = loop {
            match self.store.write(decide()?, self.rules_version, fail) {
                Err(e) if horizon_moved(&e) && decided_again < DECIDE_AGAIN => decided_again += 1,
                other => break self.counted(other)?,
            }
        };
        items
            .into_iter()
            .zip(written)
            .map(|(item, w)| match (item, w) {
                (WriteItem::Event { event, .. }, Written::Inserted(id)) => {
                    Ok(Outcome::Accepted { id: Some(id), event })
                }
                (WriteItem::Event { event, .. }, Written::Stored(id, None)) => Ok(Outcome::Duplicate { id, event }),
                (WriteItem::Event { event, .. }, Written::Stored(id, Some(stored))) => {
                    Ok(Outcome::repeat(id, *stored, &event))
                }
                (WriteItem::Rejected { reasons, .. }, Written::Rejected) => Ok(Outcome::Rejected { reasons }),
                _ => Err(Error::storage(
                    crate::StorageKind::Other,
                    "the store answered out of order",
                )),
            })
            .collect()
    }

    /// Count a failed storage call in the stats, passing the result through.
    fn counted<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

/// The dead letter of `copy`, `client`'s (its digest then the client's).
fn reject_item(copy: RawCopy, reasons: Vec<Reason>, new_attempt: bool, client: Option<String>) -> WriteItem {
    WriteItem::Rejected {
        copy: copy.owned_by(client.as_deref()),
        reasons,
        new_attempt,
        client,
    }
}

fn too_large_text(bytes: usize, max_bytes: usize) -> Reason {
    Reason::new(
        ReasonCode::TooLarge,
        "",
        format!("the event is {bytes} bytes of JSON; the limit is {max_bytes}"),
    )
}

/// One item as a binding read it from its own language's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A JSON value (what [`Ingestor::submit`] takes).
    Value(Value),
    /// JSON text of one event (what [`Ingestor::submit_json`] takes).
    Text(String),
    /// A value JSON cannot hold (a Python `nan` or `b"bytes"`, a str with a
    /// lone surrogate): rejected with the reasons the binding found (see
    /// [`Reason::unreadable`]), and kept in the dead letters as `copy`, the
    /// JSON closest to it, marked as not the input itself.
    Unreadable {
        /// The JSON closest to the value, kept as its dead letter's copy.
        copy: Value,
        /// Why it cannot be read, as the binding found.
        reasons: Vec<Reason>,
    },
    /// An event read straight from a binding's own values by
    /// [`Ingestor::read_input`], without a `Value` between.
    Read(ReadEvent),
}

fn check_page(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::arg(format!("limit must be from 1 to {MAX_PAGE}, not {limit}")));
    }
    Ok(())
}
