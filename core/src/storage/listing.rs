//! Reading stored rows back: pages of events and dead letters, whole-store
//! walks in id order (copy, reprocess, re-keying), and the stored counts.

use serde_json::{Map, Value};

use super::db::{args, query_all, query_opt, Arg, Db, Param, Row, Sql};
use super::rollup::level_code;
use super::{ClientCounts, StoredCounts};
use crate::aggregate::Bucket;
use crate::error::{Error, Result, StorageKind};
use crate::event::{Event, Reason, RejectedEvent, StoredEvent};
use crate::limits::RawCopy;
use crate::options::EventFilter;
use crate::timestamp::Timestamp;

/// The columns an event listing selects, in the order [`stored_event`] reads.
pub(crate) const EVENT_COLUMNS: &str =
    "id, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version";

/// A page of stored events matching `f`, newest first.
pub(crate) fn events(db: &mut dyn Db, f: &EventFilter) -> Result<Vec<StoredEvent>> {
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1"));
    if let Some(c) = &f.client_id {
        sql.bind(" AND client_id = ", Param::text(c));
    }
    if let Some(m) = &f.metric {
        sql.bind(" AND metric = ", Param::text(m));
    }
    if let Some(s) = f.start {
        sql.bind(" AND ts >= ", Param::Int(s.millis()));
    }
    if let Some(e) = f.end {
        sql.bind(" AND ts < ", Param::Int(e.millis()));
    }
    sql.push(" ORDER BY id DESC")
        .bind(" LIMIT ", Param::Int(f.limit as i64))
        .bind(" OFFSET ", Param::Int(f.offset as i64));
    query_all(db, &sql.text, &args(&sql.args), stored_event)
}

/// Up to `limit` stored events with id above `after`, in id order: a whole
/// store read in chunks, each an index range.
pub(crate) fn events_after(db: &mut dyn Db, after: i64, limit: usize) -> Result<Vec<StoredEvent>> {
    query_all(
        db,
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"),
        &[Arg::Int(after), Arg::Int(limit as i64)],
        stored_event,
    )
}

/// As [`events_after`], only what keys and rollups are made of: (id, the
/// event without its attributes).
pub(crate) fn canonical_after(db: &mut dyn Db, after: i64, limit: usize) -> Result<Vec<(i64, Event)>> {
    query_all(
        db,
        "SELECT id, client_id, metric, ts, amount, event_id FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        &[Arg::Int(after), Arg::Int(limit as i64)],
        |r| Ok((r.int(0)?, canonical(r, Map::new())?)),
    )
}

/// The stored events with these ids, each once, in no set order: what a
/// dry run's duplicate or conflict is answered with.
pub(crate) fn events_by_id(db: &mut dyn Db, ids: &[i64]) -> Result<Vec<StoredEvent>> {
    by_id(db, EVENT_COLUMNS, ids, stored_event)
}

/// The rows of `ids` (each once, in no set order) read by `f`, in chunks of
/// one statement each.
fn by_id<T>(db: &mut dyn Db, columns: &str, ids: &[i64], f: impl Fn(&dyn Row) -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut sql = Sql::default();
        sql.push(&format!("SELECT {columns} FROM events WHERE id IN ("));
        for (i, id) in chunk.iter().enumerate() {
            sql.bind(if i == 0 { "" } else { ", " }, Param::Int(*id));
        }
        sql.push(")");
        out.extend(query_all(db, &sql.text, &args(&sql.args), &f)?);
    }
    Ok(out)
}

/// A stored event as a repeat of it is measured against: its canonical
/// fields, and its attributes as the JSON text they were stored as, parsed
/// only when the answer needs them.
pub(crate) struct StoredRow {
    pub(crate) id: i64,
    /// The event, its attributes empty until parsed.
    event: Event,
    attributes: String,
    parsed: bool,
}

impl StoredRow {
    /// What a repeat `sent` is answered with: `None` when it is this event
    /// exactly (its attributes, written as the engine writes them, are
    /// `sent_text`; without that text they are compared as values), else
    /// this event.
    pub(crate) fn answer(&mut self, sent: &Event, sent_text: Option<&str>) -> Result<Option<Event>> {
        if sent.same_event(&self.event) && sent_text == Some(self.attributes.as_str()) {
            return Ok(None);
        }
        if !self.parsed {
            self.event.attributes = parse_stored(&self.attributes, "attributes")?;
            self.parsed = true;
        }
        Ok((sent != &self.event).then(|| self.event.clone()))
    }
}

/// The columns [`stored_row`] reads, in its order.
pub(crate) const STORED_ROW_COLUMNS: &str = "id, client_id, metric, ts, amount, event_id, attributes";

/// The rows [`StoredRow`] holds, for these ids.
pub(crate) fn stored_rows(db: &mut dyn Db, ids: &[i64]) -> Result<Vec<StoredRow>> {
    by_id(db, STORED_ROW_COLUMNS, ids, stored_row)
}

/// A row whose first columns are [`STORED_ROW_COLUMNS`].
pub(crate) fn stored_row(r: &dyn Row) -> Result<StoredRow> {
    Ok(StoredRow {
        id: r.int(0)?,
        event: canonical(r, Map::new())?,
        attributes: r.text(6)?,
        parsed: false,
    })
}

/// The event of a row whose columns 1 to 5 are client_id, metric, ts,
/// amount, event_id (every event query selects them so), with `attributes`.
fn canonical(r: &dyn Row, attributes: Map<String, Value>) -> Result<Event> {
    Ok(Event {
        client_id: r.text(1)?,
        metric: r.text(2)?,
        timestamp: stored_time(r.int(3)?)?,
        amount: r.real(4)?,
        event_id: r.opt_text(5)?,
        attributes,
    })
}

pub(crate) fn stored_event(r: &dyn Row) -> Result<StoredEvent> {
    Ok(StoredEvent {
        id: r.int(0)?,
        event: canonical(r, parse_stored::<Map<String, Value>>(&r.text(6)?, "attributes")?)?,
        received_at: stored_time(r.int(7)?)?,
        rules_version: r.int(8)?,
    })
}

/// The columns a dead-letter listing selects, in the order [`rejected_event`] reads.
pub(crate) const REJECTED_COLUMNS: &str =
    "id, raw, reasons, rules_version, received_at, attempts, raw_bytes, raw_exact, client_id";

/// A page of dead letters, newest first: every one, or only `client`'s
/// (through `rejected_by_client`, in the same order).
pub(crate) fn rejected(
    db: &mut dyn Db,
    client: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<Vec<RejectedEvent>> {
    let (limit, offset) = (Arg::Int(limit as i64), Arg::Int(offset as i64));
    match client {
        None => query_all(
            db,
            &format!("SELECT {REJECTED_COLUMNS} FROM rejected ORDER BY id DESC LIMIT $1 OFFSET $2"),
            &[limit, offset],
            rejected_event,
        ),
        Some(c) => query_all(
            db,
            &format!(
                "SELECT {REJECTED_COLUMNS} FROM rejected WHERE client_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
            ),
            &[Arg::Text(c), limit, offset],
            rejected_event,
        ),
    }
}

/// A dead letter read from [`REJECTED_COLUMNS`].
pub(crate) fn rejected_event(r: &dyn Row) -> Result<RejectedEvent> {
    Ok(RejectedEvent {
        id: r.int(0)?,
        raw: parse_stored(&r.text(1)?, "raw")?,
        reasons: parse_stored::<Vec<Reason>>(&r.text(2)?, "reasons")?,
        rules_version: r.int(3)?,
        received_at: stored_time(r.int(4)?)?,
        attempts: r.int(5)?,
        raw_bytes: r.int(6)?.max(0) as u64,
        raw_exact: r.int(7)? != 0,
        client_id: r.opt_text(8)?,
    })
}

/// A dead letter as stored, for reprocessing and copying.
#[derive(Debug)]
pub(crate) struct StoredLetter {
    pub(crate) id: i64,
    pub(crate) copy: RawCopy,
    reasons: String,
    /// The client it belongs to, which reprocessing and copying keep.
    pub(crate) client: Option<String>,
}

impl StoredLetter {
    /// The input itself, when the row keeps it exactly.
    pub(crate) fn exact_raw(&self) -> Result<Option<Value>> {
        match self.copy.exact {
            true => parse_stored(&self.copy.text, "raw").map(Some),
            false => Ok(None),
        }
    }

    pub(crate) fn reasons(&self) -> Result<Vec<Reason>> {
        parse_stored(&self.reasons, "reasons")
    }
}

/// Up to `limit` dead letters with id above `after`, in id order.
pub(crate) fn rejected_after(db: &mut dyn Db, after: i64, limit: usize) -> Result<Vec<StoredLetter>> {
    query_all(
        db,
        "SELECT id, raw, digest, raw_bytes, raw_exact, reasons, client_id FROM rejected WHERE id > $1 ORDER BY id LIMIT $2",
        &[Arg::Int(after), Arg::Int(limit as i64)],
        |r| {
            let digest = r.blob(2)?;
            Ok(StoredLetter {
                id: r.int(0)?,
                copy: RawCopy {
                    text: r.text(1)?,
                    digest: digest
                        .as_slice()
                        .try_into()
                        .map_err(|_| Error::storage(StorageKind::Corrupt, "a stored digest is not 32 bytes"))?,
                    bytes: r.int(3)?.max(0) as usize,
                    exact: r.int(4)? != 0,
                },
                reasons: r.text(5)?,
                client: r.opt_text(6)?,
            })
        },
    )
}

/// How many events and dead letters are stored. Events are counted from
/// the month rollups (each event is in exactly one): a few rows, not a
/// scan of the events.
pub(crate) fn counts(db: &mut dyn Db) -> Result<StoredCounts> {
    let count = |db: &mut dyn Db, sql: &str, args: &[Arg<'_>]| -> Result<u64> {
        Ok(query_opt(db, sql, args, |r| r.int(0))?.unwrap_or(0) as u64)
    };
    Ok(StoredCounts {
        events: count(
            db,
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM rollups WHERE level = $1",
            &[Arg::Int(level_code(Bucket::Month))],
        )?
        // Rollups keep what pruning removed: it is counted apart.
        .saturating_sub(count(db, "SELECT pruned_events FROM lifecycle WHERE id = 1", &[])?),
        rejected: count(db, "SELECT COUNT(*) FROM rejected", &[])?,
        evicted: count(db, "SELECT evicted FROM dead_letter_stats WHERE id = 1", &[])?,
    })
}

/// What `client` has in the store: its dead letters counted (through
/// `rejected_by_client`), and its events summed from its days in
/// `client_days` (through `client_days_by_client`), exact to the event.
/// Rollups keep what pruning removed, so the days a prune may have touched
/// (those before the end of the horizon's day) are counted from the events
/// still stored there instead: after a finished prune, less than a day.
pub(crate) fn client_counts(db: &mut dyn Db, client: &str) -> Result<ClientCounts> {
    let count = |db: &mut dyn Db, sql: &str, args: &[Arg<'_>]| -> Result<u64> {
        Ok(query_opt(db, sql, args, |r| r.int(0))?.unwrap_or(0).max(0) as u64)
    };
    let horizon = query_opt(db, "SELECT pruned_before FROM lifecycle WHERE id = 1", &[], |r| {
        r.opt_int(0)
    })?
    .flatten();
    let whole_days = match horizon {
        None => count(
            db,
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM client_days WHERE client_id = $1",
            &[Arg::Text(client)],
        )?,
        Some(horizon) => {
            let from = Bucket::Day.ceil(horizon);
            count(
                db,
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM client_days WHERE client_id = $1 AND bucket >= $2",
                &[Arg::Text(client), Arg::Int(from)],
            )? + count(
                db,
                "SELECT COUNT(*) FROM events WHERE ts_hour < $1 AND ts < $1 AND client_id = $2",
                &[Arg::Int(from), Arg::Text(client)],
            )?
        }
    };
    Ok(ClientCounts {
        events: whole_days,
        rejected: count(
            db,
            "SELECT COUNT(*) FROM rejected WHERE client_id = $1",
            &[Arg::Text(client)],
        )?,
    })
}

/// A stored millisecond instant as a [`Timestamp`].
pub(crate) fn stored_time(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millis(ms)
        .ok_or_else(|| Error::storage(StorageKind::Corrupt, format!("stored time {ms} is out of range")))
}

/// A stored JSON column (attributes, raw input, reasons) read back.
pub(crate) fn parse_stored<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::storage(StorageKind::Corrupt, format!("stored {what} is not valid: {e}")))
}
