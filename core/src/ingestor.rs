//! [`Ingestor`]: the entry point that ties rules, keys, storage, failure
//! injection and the stale-result cache together.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::aggregate::Aggregate;
use crate::dedup::dedup_key;
use crate::error::{Error, Result};
use crate::event::{Event, Outcome, Reason, RejectedEvent, StoredEvent};
use crate::failure::{FailPoint, FailureSwitch};
use crate::limits::{check_shape, too_large, DEFAULT_MAX_EVENT_BYTES};
use crate::location::{open_store, Location};
use crate::normalize::{normalize, normalize_fields, Fields};
use crate::options::{Durability, EventFilter, Page, Query, MAX_PAGE};
use crate::raw_event::{read_batch, read_event, InputNames, RawEvent};
use crate::rules::Rules;
use crate::storage::{Engine, WriteItem, Written};

/// Options for [`Ingestor::open`]; start from [`Ingestor::builder`].
#[derive(Debug, Clone)]
pub struct IngestorBuilder {
    location: Location,
    rules: Rules,
    durability: Durability,
    busy_timeout: Duration,
    max_event_bytes: usize,
}

impl IngestorBuilder {
    /// The rules to normalise with (default: [`Rules::builtin`]).
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

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

    /// Open the store, creating it and migrating its schema as needed.
    pub fn open(self) -> Result<Ingestor> {
        let store = open_store(&self.location, self.durability, self.busy_timeout)?;
        let rules = self.rules;
        let rules_version = store.register_rules(&rules, &|e| dedup_key(e, &rules))?;
        Ok(Ingestor {
            store,
            location: self.location.display(),
            names: InputNames::new(&rules),
            rules,
            rules_version,
            durability: self.durability,
            max_event_bytes: self.max_event_bytes,
            failures: FailureSwitch::default(),
            counters: Counters::default(),
            cache: Mutex::new(HashMap::new()),
        })
    }
}

/// Counts of what this `Ingestor` answered since it was opened, and what the
/// database holds (shared by every process on the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct IngestStats {
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    /// Calls that returned an error (storage or injected failures).
    pub failed: u64,
    /// Events stored in the database.
    pub stored_events: u64,
    /// Distinct rejected inputs in the dead-letter store.
    pub stored_rejected: u64,
}

/// What [`Ingestor::reprocess_rejected`] did with the stored rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReprocessReport {
    /// Now valid and stored as new events (and gone from the dead letters).
    pub accepted: u64,
    /// Now valid but already stored (and gone from the dead letters).
    pub duplicate: u64,
    /// Still rejected: kept, with the current rules' reasons and version.
    pub rejected: u64,
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
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

/// The stale cache holds at most this many distinct queries.
const CACHE_ENTRIES: usize = 256;

/// Rejections re-processed per transaction.
const REPROCESS_CHUNK: usize = 500;

/// Events copied per transaction by [`Ingestor::copy_to`].
const COPY_CHUNK: usize = 5_000;

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
    rules: Rules,
    /// The rules' input names, indexed for the fast JSON path.
    names: InputNames,
    rules_version: i64,
    durability: Durability,
    max_event_bytes: usize,
    failures: FailureSwitch,
    counters: Counters,
    cache: Mutex<HashMap<Query, Aggregate>>,
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

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Submit one raw event. Rejections are outcomes; an error means nothing
    /// of this call was kept (see [`FailPoint::AfterCommit`] for the one
    /// deliberate exception) and the same call may be retried.
    pub fn submit(&self, raw: &Value) -> Result<Outcome> {
        let item = self.decide(raw)?;
        Ok(self.answer(vec![item])?.remove(0))
    }

    /// [`Ingestor::submit`] from JSON text. Text that does not parse is an
    /// [`Error::InvalidArgument`], not a rejection.
    pub fn submit_json(&self, text: &str) -> Result<Outcome> {
        if text.len() > self.max_event_bytes {
            return Err(too_large(self.max_event_bytes));
        }
        let Some(event) = read_event(text, &self.names) else {
            return self.submit(&self.parse(text)?);
        };
        let item = self.decide_read(event)?;
        Ok(self.answer(vec![item])?.remove(0))
    }

    /// Submit typed fields without JSON (the C fast path): the same rules,
    /// keys and storage as [`Ingestor::submit`].
    pub fn submit_fields(&self, fields: &Fields<'_>) -> Result<Outcome> {
        let item = match normalize_fields(fields, &self.rules) {
            Ok(event) => self.valid(event),
            Err(reasons) => reject_item(fields.to_raw().to_string(), reasons, true),
        };
        Ok(self.answer(vec![item])?.remove(0))
    }

    /// Submit many events in one transaction: one outcome per input, in
    /// order; a repeat inside the batch is a duplicate of the first. On an
    /// error nothing of the batch is kept.
    pub fn submit_batch(&self, raws: &[Value]) -> Result<Vec<Outcome>> {
        let items = raws.iter().map(|raw| self.decide(raw)).collect::<Result<Vec<_>>>()?;
        self.answer(items)
    }

    /// [`Ingestor::submit_batch`] from the JSON text of an array.
    pub fn submit_batch_json(&self, text: &str) -> Result<Vec<Outcome>> {
        if let Some(events) = read_batch(text, &self.names) {
            let items = events
                .into_iter()
                .map(|event| self.decide_read(event))
                .collect::<Result<Vec<_>>>()?;
            return self.answer(items);
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => self.submit_batch(&items),
            Ok(_) => Err(Error::arg("a batch must be a JSON array of events")),
            Err(e) => Err(Error::arg(format!("batch is not valid JSON: {e}"))),
        }
    }

    /// What [`Ingestor::submit`] would answer for `raw`, storing nothing.
    /// An accepted answer has no id.
    pub fn check(&self, raw: &Value) -> Result<Outcome> {
        check_shape(raw, self.max_event_bytes)?;
        match normalize(raw, &self.rules) {
            Err(reasons) => Ok(Outcome::Rejected { reasons }),
            Ok(event) => match self.store.find(&dedup_key(&event, &self.rules))? {
                Some(id) => Ok(Outcome::Duplicate { id, event }),
                None => Ok(Outcome::Accepted { id: None, event }),
            },
        }
    }

    /// [`Ingestor::check`] from JSON text.
    pub fn check_json(&self, text: &str) -> Result<Outcome> {
        self.check(&self.parse(text)?)
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
        let fail = self.failures.take(|p| p == FailPoint::Aggregate);
        match self.store.aggregate(&q, fail) {
            Ok(result) => {
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= CACHE_ENTRIES && !cache.contains_key(&q) {
                    let oldest = cache.iter().min_by_key(|(_, a)| a.computed_at).map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        cache.remove(&k);
                    }
                }
                cache.insert(q, result.clone());
                Ok(result)
            }
            Err(e) if e.is_storage() => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                match cache.get(&q) {
                    Some(last) => Ok(Aggregate {
                        stale: true,
                        ..last.clone()
                    }),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Stored events matching `filter`, newest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        check_page(filter.limit)?;
        let mut f = filter.clone();
        f.metric = f.metric.map(|m| self.rules.normalize_metric(&m));
        self.store.events(&f)
    }

    /// Stored rejections (dead letters), newest first.
    pub fn rejected(&self, page: Page) -> Result<Vec<RejectedEvent>> {
        check_page(page.limit)?;
        self.store.rejected(page.limit, page.offset)
    }

    /// Normalise every stored rejection again under the current rules. Those
    /// that pass are stored (still deduplicated) and leave the dead-letter
    /// store in the same transaction; the rest keep their place with the
    /// current reasons and rules version. Works in chunks, one transaction
    /// each, so an error part-way leaves every chunk either done or untouched.
    pub fn reprocess_rejected(&self) -> Result<ReprocessReport> {
        let mut report = ReprocessReport::default();
        let mut after = 0;
        loop {
            let rows = self.counted(self.store.rejected_after(after, REPROCESS_CHUNK))?;
            let Some(&(last, _)) = rows.last() else {
                return Ok(report);
            };
            after = last;
            let items: Vec<WriteItem> = rows
                .into_iter()
                .map(|(id, raw)| match self.decide(&raw) {
                    Ok(WriteItem::Event { key, event, .. }) => WriteItem::Event {
                        key,
                        event,
                        replaces: Some(id),
                    },
                    Ok(WriteItem::Rejected { raw, reasons, .. }) => reject_item(raw, reasons, false),
                    // Stored raw input once passed the shape limits; under a
                    // lower limit now it stays a dead letter, its reasons
                    // replaced by the limit it breaks.
                    Err(e) => reject_item(
                        raw.to_string(),
                        vec![Reason::new(crate::ReasonCode::BadValue, "", e.to_string())],
                        false,
                    ),
                })
                .collect();
            for outcome in self.write(items)? {
                match outcome {
                    Outcome::Accepted { .. } => report.accepted += 1,
                    Outcome::Duplicate { .. } => report.duplicate += 1,
                    Outcome::Rejected { .. } => report.rejected += 1,
                }
            }
        }
    }

    /// Copy every stored event and dead letter into `target`, for moving a
    /// store to another backend (SQLite to PostgreSQL, say) or file.
    ///
    /// Events go in as they are stored (canonical, already normalised),
    /// keyed and summed into rollups by the target, so the target stays
    /// exact; what it already holds is a duplicate, never a second copy,
    /// which makes the copy safe to run again after an interruption. Dead
    /// letters are decided again by the target's rules (kept, or stored as
    /// events if those rules now accept them). The target records the time
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
            let items = events.into_iter().map(|stored| target.valid(stored.event)).collect();
            for outcome in target.write(items)? {
                match outcome {
                    Outcome::Accepted { .. } => report.copied += 1,
                    _ => report.already_there += 1,
                }
            }
        }
        let mut after = 0;
        loop {
            let rows = self.store.rejected_after(after, REPROCESS_CHUNK)?;
            let Some(&(last, _)) = rows.last() else {
                return Ok(report);
            };
            after = last;
            let items = rows
                .iter()
                .map(|(_, raw)| target.decide(raw))
                .collect::<Result<Vec<_>>>()?;
            for outcome in target.write(items)? {
                match outcome {
                    Outcome::Rejected { .. } => report.rejected += 1,
                    _ => report.now_accepted += 1,
                }
            }
        }
    }

    /// Counts of outcomes since open, and of what the database holds.
    pub fn stats(&self) -> Result<IngestStats> {
        let stored = self.store.counts()?;
        let c = &self.counters;
        Ok(IngestStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            duplicate: c.duplicate.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            stored_events: stored.events,
            stored_rejected: stored.rejected,
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

    fn parse(&self, text: &str) -> Result<Value> {
        if text.len() > self.max_event_bytes {
            return Err(too_large(self.max_event_bytes));
        }
        serde_json::from_str(text).map_err(|e| Error::arg(format!("event is not valid JSON: {e}")))
    }

    fn decide(&self, raw: &Value) -> Result<WriteItem> {
        check_shape(raw, self.max_event_bytes)?;
        Ok(match normalize(raw, &self.rules) {
            Ok(event) => self.valid(event),
            Err(reasons) => reject_item(raw.to_string(), reasons, true),
        })
    }

    /// [`Ingestor::decide`] for an event read by the fast path: the same
    /// limit, the same rules. A rejected event goes the `Value` path, so its
    /// reasons and kept raw text are exactly what `decide` gives.
    fn decide_read(&self, event: RawEvent<'_>) -> Result<WriteItem> {
        if event.approx_bytes(&self.rules) > self.max_event_bytes {
            return Err(too_large(self.max_event_bytes));
        }
        match event.normalize(&self.rules) {
            Ok(event) => Ok(self.valid(event)),
            Err((_, event)) => self.decide(&event.into_value(&self.rules)),
        }
    }

    fn valid(&self, event: Event) -> WriteItem {
        WriteItem::Event {
            key: dedup_key(&event, &self.rules),
            event,
            replaces: None,
        }
    }

    /// Write `items` and count each outcome: the submit calls' answers.
    fn answer(&self, items: Vec<WriteItem>) -> Result<Vec<Outcome>> {
        let outcomes = self.write(items)?;
        for o in &outcomes {
            let counter = match o {
                Outcome::Accepted { .. } => &self.counters.accepted,
                Outcome::Duplicate { .. } => &self.counters.duplicate,
                Outcome::Rejected { .. } => &self.counters.rejected,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcomes)
    }

    /// The one write path of submit, reprocessing and copying: the armed
    /// failure strikes it, a failure is counted, and each item gets its
    /// outcome.
    fn write(&self, items: Vec<WriteItem>) -> Result<Vec<Outcome>> {
        let fail = self.failures.take(FailPoint::is_write);
        let (items, written) = self.counted(self.store.write(items, self.rules_version, fail))?;
        items
            .into_iter()
            .zip(written)
            .map(|(item, w)| match (item, w) {
                (WriteItem::Event { event, .. }, Written::Inserted(id)) => {
                    Ok(Outcome::Accepted { id: Some(id), event })
                }
                (WriteItem::Event { event, .. }, Written::Duplicate(id)) => Ok(Outcome::Duplicate { id, event }),
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

fn reject_item(raw: String, reasons: Vec<Reason>, new_attempt: bool) -> WriteItem {
    let digest = Sha256::digest(raw.as_bytes()).into();
    WriteItem::Rejected {
        raw,
        digest,
        reasons,
        new_attempt,
    }
}

fn check_page(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::arg(format!("limit must be from 1 to {MAX_PAGE}, not {limit}")));
    }
    Ok(())
}
