//! Contender (b), the original design, written by hand the way it was: per
//! event a SELECT for the same content, then an INSERT when there is none,
//! each statement in autocommit, on SQLite's default rollback journal
//! (DELETE) and default synchronous setting; aggregates by scanning the
//! events table, with no rollups.
//!
//! It normalises with the core's own rules (the comparison is of storage
//! designs, not of normalisers), and it gets an index on the looked-up
//! columns, which the original had no reason to lack: both choices make it
//! faster, so the ratios against it are conservative.

use std::path::Path;
use std::time::Instant;

use ingest_core::{normalize, Rules, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::gen::{Events, Spec};
use crate::measure::{fail, Latencies, Rate, Res, Tally};

/// Generated between two stretches of timed submissions.
const CHUNK: usize = 1_000;

/// Ingest the first `n` events of `spec` one by one into a new database at
/// `path`, from their JSON text.
pub fn ingest(spec: Spec, n: u64, path: &Path) -> Res<(Rate, Latencies)> {
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") || sync != 2 {
        return fail(format!(
            "original design: expected SQLite's defaults (journal DELETE, synchronous FULL), got {mode} and {sync}"
        ));
    }
    conn.execute_batch(
        "CREATE TABLE events (
             id          INTEGER PRIMARY KEY,
             client_id   TEXT NOT NULL,
             metric      TEXT NOT NULL,
             ts          INTEGER NOT NULL,
             amount      REAL NOT NULL,
             event_id    TEXT,
             attributes  TEXT NOT NULL,
             received_at INTEGER NOT NULL
         );
         CREATE INDEX events_lookup ON events (client_id, metric, ts, amount);",
    )?;
    let mut find =
        conn.prepare("SELECT id FROM events WHERE client_id = ?1 AND metric = ?2 AND ts = ?3 AND amount = ?4")?;
    let mut insert = conn.prepare(
        "INSERT INTO events (client_id, metric, ts, amount, event_id, attributes, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let rules = Rules::builtin();
    let mut gen = Events::new(spec);
    let mut texts: Vec<String> = Vec::with_capacity(CHUNK);
    let mut lat = Latencies::with_capacity(n as usize);
    let mut tally = Tally::default();
    let mut left = n;
    while left > 0 {
        texts.clear();
        texts.extend(gen.by_ref().take(CHUNK.min(left as usize)).map(|g| g.raw.to_string()));
        left -= texts.len() as u64;
        for text in &texts {
            let t = Instant::now();
            let raw: Value = serde_json::from_str(text)?;
            let Ok(e) = normalize(&raw, &rules) else {
                tally.rejected += 1;
                lat.push(t.elapsed());
                continue;
            };
            let ts = e.timestamp.millis();
            let found: Option<i64> = find
                .query_row(params![e.client_id, e.metric, ts, e.amount], |r| r.get(0))
                .optional()?;
            if found.is_some() {
                tally.duplicate += 1;
            } else {
                let attributes = Value::Object(e.attributes).to_string();
                insert.execute(params![
                    e.client_id,
                    e.metric,
                    ts,
                    e.amount,
                    e.event_id,
                    attributes,
                    Timestamp::now().millis()
                ])?;
                tally.accepted += 1;
            }
            lat.push(t.elapsed());
        }
    }
    tally.check("original design", n, gen.unique())?;
    let rate = Rate {
        events: n,
        busy: lat.total(),
    };
    Ok((rate, lat))
}

/// count, sum, min and max, as a scan of the events table gives them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScanStats {
    pub count: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The answer of a scan: totals, and per day when grouped by day.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScanAnswer {
    pub totals: ScanStats,
    /// (start of the day in ms, stats), in day order; empty days absent.
    pub days: Option<Vec<(i64, ScanStats)>>,
}

/// A filter as the original design's aggregate endpoint took it.
#[derive(Debug, Clone, Default)]
pub struct ScanQuery {
    pub client_id: Option<String>,
    pub metric: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub by_day: bool,
    /// Days are this zone's local days (midnight to midnight, 23 or 25
    /// hours around daylight saving changes); `None`: UTC days.
    pub tz: Option<ingest_core::Tz>,
}

/// How the scan may read the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `NOT INDEXED`: every row of the table, as the original design's
    /// aggregates read it.
    FullTable,
    /// Whatever index SQLite picks on the file: the best plain SQL can do
    /// there without rollups.
    AnyIndex,
}

/// Aggregate by scanning `events` (any table with `client_id`, `metric`,
/// `ts` in ms and `amount`): the original design's only way, and the
/// reference every rollup answer is checked against.
pub fn scan(conn: &Connection, q: &ScanQuery, plan: Plan) -> Res<ScanAnswer> {
    let mut filter = String::from(match plan {
        Plan::FullTable => " FROM events NOT INDEXED WHERE 1 = 1",
        Plan::AnyIndex => " FROM events WHERE 1 = 1",
    });
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(c) = &q.client_id {
        filter.push_str(" AND client_id = ?");
        args.push(c.clone().into());
    }
    if let Some(m) = &q.metric {
        filter.push_str(" AND metric = ?");
        args.push(m.clone().into());
    }
    if let Some(s) = q.start {
        filter.push_str(" AND ts >= ?");
        args.push(s.into());
    }
    if let Some(e) = q.end {
        filter.push_str(" AND ts < ?");
        args.push(e.into());
    }
    let stats = "COUNT(*), SUM(amount), MIN(amount), MAX(amount)";
    let row_stats = |r: &rusqlite::Row<'_>, at: usize| -> rusqlite::Result<ScanStats> {
        Ok(ScanStats {
            count: r.get::<_, i64>(at)? as u64,
            sum: r.get::<_, Option<f64>>(at + 1)?.unwrap_or(0.0),
            min: r.get(at + 2)?,
            max: r.get(at + 3)?,
        })
    };
    if !q.by_day {
        let sql = format!("SELECT {stats}{filter}");
        let totals = conn.query_row(&sql, rusqlite::params_from_iter(args.iter()), |r| row_stats(r, 0))?;
        return Ok(ScanAnswer { totals, days: None });
    }
    if let Some(tz) = q.tz {
        return scan_local_days(conn, &filter, &args, tz);
    }
    let day = "(ts - ((ts % 86400000) + 86400000) % 86400000)";
    let sql = format!("SELECT {day} AS day, {stats}{filter} GROUP BY day ORDER BY day");
    let mut stmt = conn.prepare(&sql)?;
    let days: Vec<(i64, ScanStats)> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get(0)?, row_stats(r, 1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(by_days(days))
}

/// The answer of per-day stats: totals over the days.
fn by_days(days: Vec<(i64, ScanStats)>) -> ScanAnswer {
    let mut totals = ScanStats::default();
    for (_, s) in &days {
        totals.count += s.count;
        totals.sum += s.sum;
        totals.min = [totals.min, s.min].into_iter().flatten().reduce(f64::min);
        totals.max = [totals.max, s.max].into_iter().flatten().reduce(f64::max);
    }
    ScanAnswer {
        totals,
        days: Some(days),
    }
}

/// Per local day of `tz`: every matching row read, its local date taken
/// from the zone, and the day's start the first instant of that date's
/// midnight (SQL has no zones; the scan stays a scan of every row).
fn scan_local_days(
    conn: &Connection,
    filter: &str,
    args: &[rusqlite::types::Value],
    tz: ingest_core::Tz,
) -> Res<ScanAnswer> {
    use chrono::{DateTime, NaiveTime, TimeZone};
    let mut stmt = conn.prepare(&format!("SELECT ts, amount{filter}"))?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut days: std::collections::BTreeMap<i64, ScanStats> = Default::default();
    while let Some(r) = rows.next()? {
        let (ts, amount): (i64, f64) = (r.get(0)?, r.get(1)?);
        let date = DateTime::from_timestamp_millis(ts)
            .ok_or("ts out of range")?
            .with_timezone(&tz)
            .date_naive();
        let start = tz
            .from_local_datetime(&date.and_time(NaiveTime::MIN))
            .earliest()
            .ok_or("a local midnight that does not exist")?
            .timestamp_millis();
        let d = days.entry(start).or_default();
        d.count += 1;
        d.sum += amount;
        d.min = Some(d.min.map_or(amount, |m| m.min(amount)));
        d.max = Some(d.max.map_or(amount, |m| m.max(amount)));
    }
    Ok(by_days(days.into_iter().collect()))
}
