//! The storage engine: everything the backends do alike, written once over
//! [`Backend`] and [`Db`]. A write call joins a group commit; the group is
//! written in one transaction with the dedup key enforced by the database,
//! the dead letters counted per digest, and the rollups added to; the
//! failure points strike it through real failing statements and a real
//! rollback. Reads answer aggregates from one snapshot, and page through
//! events and dead letters.

use super::db::{query_opt, Arg, Backend, Db, DeadLetter, NewEvent, Refusal, Stamp};
use super::group::{Committed, Group, GroupCommit};
use super::keys;
use super::listing;
use super::listing::{StoredLetter, StoredRow};
use super::migrate::{migrate, register_rules};
use super::pieces;
use super::prune::{self, Chunk, Lifecycle};
use super::rollup::{rollup_deltas, RollupTable};
use super::{ClientCounts, StoredCounts, WriteItem, Written};
use crate::aggregate::Aggregate;
use crate::error::{Error, Result, StorageKind};
use crate::event::{Event, RejectedEvent, StoredEvent};
use crate::failure::FailPoint;
use crate::keys::{KeyInfo, KeyScope};
use crate::options::{EventFilter, Query};
use crate::rules::Rules;
use crate::timestamp::Timestamp;
use std::sync::atomic::{AtomicI64, Ordering};

/// Times a transaction aborted by the database (deadlock, serialization
/// failure) is tried again before the error is returned.
const CONFLICT_RETRIES: u32 = 8;

/// A store: one backend, and the group commit its writers share.
pub(crate) struct Engine {
    backend: Box<dyn Backend>,
    group: GroupCommit,
    /// How many dead letters are kept (see `DeadLetterBound`).
    dead_letter_rows: u64,
    /// The prune horizon as last read or raised here ([`NOT_PRUNED`] for
    /// none): the window's floor, read without a statement per write.
    pruned: AtomicI64,
}

const NOT_PRUNED: i64 = i64::MIN;

/// The message of a write refused by [`Engine::check_horizon`].
const HORIZON_MOVED: &str =
    "the store was pruned while this write was decided; nothing of it was kept, and it can be sent again";

/// Whether `e` refused a write decided before a prune that another process
/// made (see [`Engine::check_horizon`]): deciding it again, with the new
/// horizon, rejects what the prune removed.
pub(crate) fn horizon_moved(e: &Error) -> bool {
    matches!(e, Error::Storage { kind: StorageKind::Busy, message, .. } if message == HORIZON_MOVED)
}

impl Engine {
    /// Take `backend` into use, bringing its schema up to date.
    pub(crate) fn open(backend: Box<dyn Backend>) -> Result<Self> {
        let engine = Engine {
            backend,
            group: GroupCommit::default(),
            dead_letter_rows: crate::ingestor::DEFAULT_MAX_DEAD_LETTERS,
            pruned: AtomicI64::new(NOT_PRUNED),
        };
        let schema = engine.backend.schema();
        engine.transaction(|db| migrate(db, schema))?;
        engine.lifecycle()?;
        Ok(engine)
    }

    /// The prune horizon: nothing before it (ms) is accepted again.
    pub(crate) fn pruned_before(&self) -> Option<i64> {
        Some(self.pruned.load(Ordering::Relaxed)).filter(|&p| p != NOT_PRUNED)
    }

    /// What the store records of pruning, read now (the horizon kept here
    /// follows it).
    pub(crate) fn lifecycle(&self) -> Result<Lifecycle> {
        let now = self.read(false, prune::lifecycle)?;
        if let Some(p) = now.pruned_before {
            self.pruned.fetch_max(p, Ordering::Relaxed);
        }
        Ok(now)
    }

    /// Raise the prune horizon to `before` (see `prune::raise_horizon`).
    pub(crate) fn raise_horizon(&self, before: i64) -> Result<()> {
        self.transaction(|db| prune::raise_horizon(db, before))?;
        self.pruned.fetch_max(before, Ordering::Relaxed);
        Ok(())
    }

    /// The next rows to prune before `before`; empty when none are left.
    pub(crate) fn prune_chunk(&self, before: i64) -> Result<Chunk> {
        self.read(false, |db| prune::next_chunk(db, before))
    }

    /// Remove `chunk` in one transaction (see `prune::remove_chunk`).
    pub(crate) fn remove_chunk(
        &self,
        chunk: &Chunk,
        was: &Option<(String, u64)>,
        now: &Option<(String, u64)>,
    ) -> Result<()> {
        self.transaction(|db| prune::remove_chunk(db, chunk, was, now))
    }

    /// Give removed rows' space back (see [`Backend::reclaim`]).
    pub(crate) fn reclaim(&self) -> Result<()> {
        self.backend.reclaim()
    }

    /// The bytes the store takes (see [`Backend::bytes_used`]).
    pub(crate) fn bytes_used(&self) -> Result<u64> {
        self.backend.bytes_used()
    }

    /// Keep at most `rows` dead letters from the next write on.
    pub(crate) fn bound_dead_letters(&mut self, rows: u64) {
        self.dead_letter_rows = rows;
    }

    /// Record `rules` and return their version number (the same document
    /// always gets the same number). Re-keys stored events when the dedup key
    /// changed since the last open.
    pub(crate) fn register_rules(&self, rules: &Rules, rekey: &dyn Fn(&Event) -> Vec<u8>) -> Result<i64> {
        self.transaction(|db| register_rules(db, rules, rekey))
    }

    /// Write `items` in one transaction, failing at `fail` if given, and hand
    /// them back with what was done with each. Concurrent calls may share a
    /// transaction (group commit); each returns only after it committed.
    pub(crate) fn write(
        &self,
        items: Vec<WriteItem>,
        rules_version: i64,
        fail: Option<FailPoint>,
    ) -> Result<Committed> {
        self.group
            .write(items, fail, |group| self.write_group(group, rules_version))
    }

    fn write_group(&self, group: &mut Group<'_>, rules_version: i64) -> Result<Vec<Written>> {
        let fail = group.fail();
        let stamp = Stamp {
            received_at: Timestamp::now().millis(),
            rules_version,
        };
        let written = if self.backend.streams_callers() {
            // Each caller's items as they come: the group's later callers
            // are still on their way while the first ones are written.
            // Run once: the group hands each caller out once.
            self.once(|db| {
                with_failure_points(db, fail, |db| {
                    let mut written = Vec::new();
                    while let Some(items) = group.next() {
                        write_items(db, items, stamp, self.dead_letter_rows, &mut written, None)?;
                    }
                    self.check_horizon(db, group.items())?;
                    add_to_rollups(db, group.items(), &written)?;
                    Ok(written)
                })
            })?
        } else {
            let items = group.gather();
            // One new event alone, the call a server makes most, is written
            // by one statement (`insert_with_rollups`) that commits on its
            // own: on a database server, one round trip.
            let alone = fail.is_none() && matches!(items, [WriteItem::Event { replaces: None, .. }]);
            self.retried(alone, |db| {
                with_failure_points(db, fail, |db| {
                    let mut written = Vec::new();
                    let done = write_items(
                        db,
                        items,
                        stamp,
                        self.dead_letter_rows,
                        &mut written,
                        Some(&self.pruned),
                    )?;
                    if !done.horizon_checked {
                        self.check_horizon(db, items)?;
                    }
                    if !done.rollups_added {
                        add_to_rollups(db, items, &written)?;
                    }
                    Ok(written)
                })
            })?
        };
        if fail == Some(FailPoint::AfterCommit) {
            return Err(Error::Injected(FailPoint::AfterCommit));
        }
        Ok(written)
    }

    /// Refuse a group holding an event before the prune horizon as the
    /// store has it now, read inside the group's transaction: another
    /// process may have pruned since this one last read the horizon, and
    /// the window its callers were decided with let such an event through
    /// (its rollups still count the pruned one). Nothing of the group is
    /// kept; its callers decide again with the horizon read here
    /// ([`horizon_moved`]).
    fn check_horizon(&self, db: &mut dyn Db, items: &[WriteItem]) -> Result<()> {
        // A group of dead letters only stores no event a prune removed: no
        // statement (on PostgreSQL, no round trip and no lock) for it.
        let oldest = items
            .iter()
            .filter_map(|i| match i {
                WriteItem::Event { event, .. } => Some(event.timestamp.millis()),
                WriteItem::Rejected { .. } => None,
            })
            .min();
        let Some(oldest) = oldest else {
            return Ok(());
        };
        refuse_below(&self.pruned, prune::horizon_for_write(db)?, oldest)
    }

    /// Store key `id` of `scope` with its secret's digest.
    pub(crate) fn add_key(&self, id: &str, scope: &KeyScope, digest: &[u8]) -> Result<()> {
        let now = Timestamp::now().millis();
        self.transaction(|db| keys::insert(db, id, scope, digest, now))
    }

    /// Every key, oldest first.
    pub(crate) fn keys(&self) -> Result<Vec<KeyInfo>> {
        self.read(false, keys::list)
    }

    /// Revoke key `id`; whether a valid one was.
    pub(crate) fn revoke_key(&self, id: &str) -> Result<bool> {
        let now = Timestamp::now().millis();
        self.transaction(|db| keys::revoke(db, id, now))
    }

    /// Key `id` while valid, with its secret's digest.
    pub(crate) fn valid_key(&self, id: &str) -> Result<Option<(KeyInfo, Vec<u8>)>> {
        self.read(false, |db| keys::valid(db, id))
    }

    /// The stored event with this key.
    pub(crate) fn find(&self, key: &[u8]) -> Result<Option<StoredEvent>> {
        self.read(false, |db| match db.find_keys(&[key])?.pop().flatten() {
            Some(id) => Ok(listing::events_by_id(db, &[id])?.pop()),
            None => Ok(None),
        })
    }

    /// Answer a query (its metric already cased) from one snapshot; `fail`
    /// makes the read fail there.
    pub(crate) fn aggregate(&self, q: &Query, fail: Option<FailPoint>) -> Result<Aggregate> {
        self.read(true, |db| {
            if let Some(point) = fail {
                fail_with_real_statement(db, point)?;
            }
            pieces::aggregate(db, q)
        })
    }

    pub(crate) fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>> {
        self.read(false, |db| listing::events(db, f))
    }

    /// Up to `limit` stored events with id above `after`, in id order.
    pub(crate) fn events_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.read(false, |db| listing::events_after(db, after, limit))
    }

    /// A page of dead letters, newest first: every one, or (`client`) only
    /// that client's.
    pub(crate) fn rejected(&self, client: Option<&str>, limit: usize, offset: usize) -> Result<Vec<RejectedEvent>> {
        self.read(false, |db| listing::rejected(db, client, limit, offset))
    }

    /// What `client` has in the store, from one snapshot.
    pub(crate) fn client_counts(&self, client: &str) -> Result<ClientCounts> {
        self.read(true, |db| listing::client_counts(db, client))
    }

    /// Up to `limit` dead-letter rows with id above `after`, in id order.
    pub(crate) fn rejected_after(&self, after: i64, limit: usize) -> Result<Vec<StoredLetter>> {
        self.read(false, |db| listing::rejected_after(db, after, limit))
    }

    pub(crate) fn counts(&self) -> Result<StoredCounts> {
        self.read(true, listing::counts)
    }

    /// Run `f` in a write transaction, again from the start when the
    /// database aborted it for a conflict with another transaction.
    fn transaction<T>(&self, f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        self.retried(false, f)
    }

    /// [`Engine::transaction`]; with `alone`, `f` is one statement that
    /// commits on its own ([`Backend::write_alone`]).
    fn retried<T>(&self, alone: bool, mut f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match self.run(alone, &mut f) {
                Err(e) if self.backend.is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                other => return other,
            }
        }
    }

    /// Run `f` in a write transaction, once.
    fn once<T>(&self, f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        self.run(false, f)
    }

    fn run<T>(&self, alone: bool, mut f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        let mut out = None;
        let mut write = |db: &mut dyn Db| {
            out = Some(f(db)?);
            Ok(())
        };
        if alone {
            self.backend.write_alone(&mut write)?;
        } else {
            self.backend.write(&mut write)?;
        }
        out.ok_or_else(|| Error::storage(StorageKind::Other, "a write transaction ended without its answer"))
    }

    fn read<T>(&self, snapshot: bool, mut f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.backend.read(snapshot, &mut |db| {
            out = Some(f(db)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::storage(StorageKind::Other, "a read ended without its answer"))
    }
}

/// A random pause of up to 2^(attempt+1) ms (at most 128): writers that
/// conflicted once must not retry in step and conflict again.
fn backoff(attempt: u32) -> std::time::Duration {
    let cap = 2u64 << attempt.min(6);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    std::time::Duration::from_micros(1_000 + noise % (cap * 1_000))
}

/// The failure points inside a group's transaction, around its writes.
fn with_failure_points(
    db: &mut dyn Db,
    fail: Option<FailPoint>,
    write: impl FnOnce(&mut dyn Db) -> Result<Vec<Written>>,
) -> Result<Vec<Written>> {
    if fail == Some(FailPoint::BeforeInsert) {
        return Err(Error::Injected(FailPoint::BeforeInsert));
    }
    let written = write(db)?;
    if fail == Some(FailPoint::AfterInsert) {
        fail_with_real_statement(db, FailPoint::AfterInsert)?;
    }
    Ok(written)
}

/// Make the current transaction fail through the database itself: a write
/// that violates a CHECK constraint, or (for a read, possibly on a
/// read-only connection) a read of a table that does not exist. The error
/// that comes back is the database's own.
fn fail_with_real_statement(db: &mut dyn Db, point: FailPoint) -> Result<()> {
    let (result, expected) = if point == FailPoint::Aggregate {
        (
            db.query("SELECT * FROM \"injected aggregate failure\"", &[], &mut |_| Ok(())),
            Refusal::NoSuchTable,
        )
    } else {
        (
            db.execute(
                "INSERT INTO fault_probe (point) VALUES ($1)",
                &[Arg::Text(point.as_str())],
            )
            .map(drop),
            Refusal::Check,
        )
    };
    match result {
        Err(e) if db.refusal(&e) == Some(expected) => Err(Error::Injected(point)),
        // Anything else is a real failure that happened to strike here.
        Err(other) => Err(other),
        Ok(()) => Err(Error::storage(
            StorageKind::Other,
            "injected failure statement did not fail",
        )),
    }
}

/// Write one caller's `items` (events and dead letters), adding what was
/// done with each to `out`. The rollups are the caller's, once per group;
/// with `whole_group` (the store's horizon as last read), `items` are the
/// whole group, and the backend may check the horizon and add the rollups
/// in the insert's own statement.
fn write_items(
    db: &mut dyn Db,
    items: &[WriteItem],
    stamp: Stamp,
    bound: u64,
    out: &mut Vec<Written>,
    whole_group: Option<&AtomicI64>,
) -> Result<Folded> {
    // The first item of each key is offered for insert; a repeat (a
    // client's retry that lands in the same batch) is a duplicate of it,
    // answered without a statement.
    let mut first: foldhash::HashMap<&[u8], usize> =
        foldhash::HashMap::with_capacity_and_hasher(items.len(), Default::default());
    // Per item, its key's place in `offered`.
    let mut place = Vec::with_capacity(items.len());
    let mut offered: Vec<(usize, &[u8], &Event)> = Vec::with_capacity(items.len());
    // Every offered event's attributes in one text, no allocation per event.
    let mut attributes: Vec<u8> = Vec::new();
    let mut spans = Vec::with_capacity(items.len());
    let mut letters: foldhash::HashMap<&[u8; 32], DeadLetter<'_>> = foldhash::HashMap::default();
    for (i, item) in items.iter().enumerate() {
        match item {
            WriteItem::Event { key, event, .. } => {
                let next = offered.len();
                let at = *first.entry(key.as_slice()).or_insert(next);
                if at == next {
                    offered.push((i, key, event));
                    let start = attributes.len();
                    // A map of JSON values always serialises, as UTF-8.
                    if serde_json::to_writer(&mut attributes, &event.attributes).is_err() {
                        attributes.truncate(start);
                        attributes.extend_from_slice(b"{}");
                    }
                    spans.push(start..attributes.len());
                }
                place.push(at);
            }
            WriteItem::Rejected {
                copy,
                reasons,
                new_attempt,
                client,
            } => {
                let reasons = serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into());
                let added = *new_attempt as i64;
                // One row per digest: a first one starts at one attempt,
                // and every new attempt after it adds one.
                letters
                    .entry(&copy.digest)
                    .and_modify(|row| {
                        row.reasons.clone_from(&reasons);
                        row.fresh += added;
                        row.added += added;
                    })
                    .or_insert(DeadLetter {
                        digest: &copy.digest,
                        raw: &copy.text,
                        raw_bytes: copy.bytes as i64,
                        raw_exact: copy.exact,
                        reasons,
                        fresh: 1,
                        added,
                        client: client.as_deref(),
                    });
                place.push(usize::MAX);
            }
        }
    }
    let rows: Vec<NewEvent<'_>> = offered
        .iter()
        .zip(&spans)
        .map(|(&(_, key, event), span)| NewEvent {
            key,
            event,
            attributes: std::str::from_utf8(&attributes[span.clone()]).unwrap_or("{}"),
        })
        .collect();
    let mut done = Folded::default();
    // Rows stored before under keys of this group, as the insert's own
    // statement read them (where it did): no round trip to look them up.
    let mut seen: foldhash::HashMap<Vec<u8>, StoredRow> = foldhash::HashMap::default();
    let inserted = match whole_group {
        _ if rows.is_empty() => Vec::new(),
        // Dead letters, and the dead letters a reprocess removes, are
        // written after the rollups are added: folding the rollups into the
        // insert would take their locks in the other order.
        Some(pruned)
            if letters.is_empty()
                && !items
                    .iter()
                    .any(|i| matches!(i, WriteItem::Event { replaces: Some(_), .. })) =>
        {
            let oldest = rows
                .iter()
                .map(|r| r.event.timestamp.millis())
                .min()
                .unwrap_or(i64::MAX);
            match db.insert_with_rollups(&rows, stamp, oldest)? {
                Some(with) => {
                    refuse_below(pruned, with.horizon, oldest)?;
                    done = Folded {
                        horizon_checked: true,
                        rollups_added: with.ids.iter().all(Option::is_some),
                    };
                    seen.extend(with.stored);
                    with.ids
                }
                None => db.insert_events(&rows, stamp)?,
            }
        }
        _ => db.insert_events(&rows, stamp)?,
    };
    // Keys stored before: by another transaction, or an earlier caller of
    // this group.
    let missing: Vec<&[u8]> = rows
        .iter()
        .zip(&inserted)
        .filter(|(row, id)| id.is_none() && !seen.contains_key(row.key))
        .map(|(row, _)| row.key)
        .collect();
    let mut found = if missing.is_empty() {
        Vec::new()
    } else {
        db.find_keys(&missing)?
    }
    .into_iter();
    let ids = rows
        .iter()
        .zip(&inserted)
        .map(|(row, id)| match (id, seen.get(row.key)) {
            (Some(id), _) => Ok((*id, true)),
            (None, Some(before)) => Ok((before.id, false)),
            (None, None) => found
                .next()
                .flatten()
                .map(|id| (id, false))
                .ok_or_else(|| Error::storage(StorageKind::Other, "an event's key was neither inserted nor found")),
        })
        .collect::<Result<Vec<_>>>()?;
    if !letters.is_empty() {
        let mut letters: Vec<DeadLetter<'_>> = letters.into_values().collect();
        // The order every writer takes the digest's index entries in.
        letters.sort_unstable_by_key(|row| *row.digest);
        lock_dead_letters(db)?;
        db.upsert_rejected(&letters, stamp)?;
        evict_dead_letters(db, bound)?;
    }
    // What each repeat is answered with. A retry sent exactly as stored
    // (the common case) is answered with the event it sent: the stored
    // row is read for its canonical fields and attributes text, compared,
    // and never parsed. Otherwise the stored event (the first of its key in
    // this call, or the one read back).
    let mut stored: foldhash::HashMap<i64, StoredRow> = seen.into_values().map(|row| (row.id, row)).collect();
    let before: Vec<i64> = ids
        .iter()
        .filter(|&&(id, new)| !new && !stored.contains_key(&id))
        .map(|&(id, _)| id)
        .collect();
    if !before.is_empty() {
        stored.extend(listing::stored_rows(db, &before)?.into_iter().map(|row| (row.id, row)));
    }
    out.reserve(items.len());
    for (i, &at) in place.iter().enumerate() {
        out.push(match ids.get(at) {
            Some(&(id, true)) if offered[at].0 == i => Written::Inserted(id),
            Some(&(id, new)) => {
                let WriteItem::Event { event: sent, .. } = &items[i] else {
                    return Err(Error::storage(StorageKind::Other, "a repeat that is not an event"));
                };
                let first = offered[at].2;
                let answer = match new {
                    true if sent == first => None,
                    true => Some(first.clone()),
                    false => {
                        let row = stored.get_mut(&id).ok_or_else(|| {
                            Error::storage(
                                StorageKind::Other,
                                format!("stored event {id} vanished while it was read"),
                            )
                        })?;
                        let sent_text = (offered[at].0 == i)
                            .then(|| std::str::from_utf8(&attributes[spans[at].clone()]).unwrap_or(""));
                        row.answer(sent, sent_text)?
                    }
                };
                Written::Stored(id, answer.map(Box::new))
            }
            None => Written::Rejected,
        });
    }
    // A dead letter now stored as an event, new or the same event again,
    // leaves the dead letters; one whose key holds another event (a
    // conflict) stays, so that nothing of it is lost.
    let start = out.len() - items.len();
    let mut replaced: Vec<i64> = items
        .iter()
        .zip(&out[start..])
        .filter_map(|(item, w)| match (item, w) {
            (
                WriteItem::Event {
                    replaces: Some(row), ..
                },
                Written::Inserted(_),
            ) => Some(*row),
            (
                WriteItem::Event {
                    replaces: Some(row),
                    event,
                    ..
                },
                Written::Stored(_, stored),
            ) => stored.as_ref().is_none_or(|e| e.same_event(event)).then_some(*row),
            _ => None,
        })
        .collect();
    if !replaced.is_empty() {
        replaced.sort_unstable();
        lock_dead_letters(db)?;
        db.delete_ids("rejected", &replaced)?;
    }
    Ok(done)
}

/// Note the `horizon` a write read, and refuse the write ([`HORIZON_MOVED`])
/// when its `oldest` event lies below it.
fn refuse_below(pruned: &AtomicI64, horizon: Option<i64>, oldest: i64) -> Result<()> {
    let Some(horizon) = horizon else {
        return Ok(());
    };
    pruned.fetch_max(horizon, Ordering::Relaxed);
    if oldest < horizon {
        return Err(Error::storage(StorageKind::Busy, HORIZON_MOVED));
    }
    Ok(())
}

/// What the insert of a whole group already did of the steps after it
/// ([`Db::insert_with_rollups`]).
#[derive(Debug, Default)]
struct Folded {
    horizon_checked: bool,
    rollups_added: bool,
}

/// Take the dead letters' lock (the row of `dead_letter_stats`) before
/// any row of `rejected`: a writer locks the rows it upserts in digest
/// order, but evicting at the bound deletes the oldest rows, which other
/// writers may hold, and a reprocess deletes the rows it replaced. Two such
/// writers, each holding a row the other deletes, deadlock; PostgreSQL
/// settles that only after `deadlock_timeout` (1 s) by failing one. Under
/// this lock the writers of dead letters take turns, and no other write
/// waits for them. On SQLite, whose one writer holds the file, it costs one
/// row write.
fn lock_dead_letters(db: &mut dyn Db) -> Result<()> {
    db.execute("UPDATE dead_letter_stats SET evicted = evicted WHERE id = 1", &[])?;
    Ok(())
}

/// Keep at most `bound` dead letters, and count those removed. Beyond the
/// bound the oldest go of the client holding the most (the dead letters
/// that name no client are one such holder): a client flooding the store
/// with bad input evicts its own, never another client's few. The id range
/// bounds the count from above in one indexed look; only past the bound
/// are the rows counted (ids have gaps: a PostgreSQL sequence also moves
/// for a retry that updates its row).
fn evict_dead_letters(db: &mut dyn Db, bound: u64) -> Result<()> {
    let bound = bound.min(i64::MAX as u64) as i64;
    let span = query_opt(
        db,
        "SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM rejected",
        &[],
        |r| r.int(0),
    )?
    .unwrap_or(0);
    if span <= bound {
        return Ok(());
    }
    let count = query_opt(db, "SELECT COUNT(*) FROM rejected", &[], |r| r.int(0))?.unwrap_or(0);
    let mut excess = count - bound;
    let mut removed = 0;
    while excess > 0 {
        // Read through rejected_by_client (client_id, id): one pass over
        // the index, only when the store is at its bound.
        let Some((client, held)) = query_opt(
            db,
            "SELECT client_id, COUNT(*) AS held FROM rejected GROUP BY client_id \
             ORDER BY held DESC, client_id LIMIT 1",
            &[],
            |r| Ok((r.opt_text(0)?, r.int(1)?)),
        )?
        else {
            break;
        };
        let take = excess.min(held);
        // Plain equality and IS NULL, each of which both backends read
        // through the index; a null-safe comparison is not.
        let gone = match client.as_deref() {
            Some(client) => db.execute(
                "DELETE FROM rejected WHERE id IN (SELECT id FROM rejected \
                 WHERE client_id = $1 ORDER BY id LIMIT $2)",
                &[Arg::Text(client), Arg::Int(take)],
            )?,
            None => db.execute(
                "DELETE FROM rejected WHERE id IN (SELECT id FROM rejected \
                 WHERE client_id IS NULL ORDER BY id LIMIT $1)",
                &[Arg::Int(take)],
            )?,
        } as i64;
        if gone == 0 {
            break;
        }
        removed += gone;
        excess -= gone;
    }
    db.execute(
        "UPDATE dead_letter_stats SET evicted = evicted + $1 WHERE id = 1",
        &[Arg::Int(removed)],
    )?;
    Ok(())
}

/// Add the events `items` stored (as `written` says) to the rollups.
fn add_to_rollups(db: &mut dyn Db, items: &[WriteItem], written: &[Written]) -> Result<()> {
    let stored = items.iter().zip(written).filter_map(|(item, w)| match (item, w) {
        (WriteItem::Event { event, .. }, Written::Inserted(_)) => Some(event),
        _ => None,
    });
    let deltas = rollup_deltas(stored);
    db.upsert_rollups(RollupTable::Rollups, &deltas.across)?;
    db.upsert_rollups(RollupTable::ClientDays, &deltas.client_days)
}
