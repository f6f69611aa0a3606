//! What every SQL backend shares: the rollup rows a batch changes, the SQL
//! of each piece of an aggregate, and the folding of piece rows into
//! [`Partials`]. A backend (sqlite.rs, a PostgreSQL one) only runs the text
//! and binds the arguments; what differs between dialects goes through
//! [`Dialect`].
//!
//! The SQL is written for both SQLite and PostgreSQL: placeholders are
//! `$1, $2, ...` numbered in order of first appearance (SQLite binds `$n`
//! names by that order, so the argument list is the same for both), casts
//! are `CAST(x AS BIGINT)`, and nothing relies on SQLite's loose typing.

use std::collections::HashMap;

use crate::aggregate::{plan, Bucket, GroupKey, Partials, Query, Source, Span, Stats, DAY_MS, HOUR_MS};
use crate::error::{Error, Result, StorageKind};
use serde_json::{Map, Value};

use super::EventFilter;
use crate::event::{Event, StoredEvent};
use crate::timestamp::Timestamp;

/// The rollup client that stands for every client (a real client id is
/// never empty).
pub(crate) const ALL_CLIENTS: &str = "";

/// Rollup levels kept per client. Across clients every level is kept (a
/// batch touches a few rows per metric); per client a batch touches about
/// one row per event at every level, so only days are kept: a client's
/// range reads its days, and the cut days at the edges from its events
/// through the (client_id, metric, ts) index.
pub(crate) const PER_CLIENT_LEVELS: [Bucket; 1] = [Bucket::Day];

/// The `level` column of a rollup row.
pub(crate) fn level_code(b: Bucket) -> i64 {
    match b {
        Bucket::Hour => 1,
        Bucket::Day => 2,
        Bucket::Month => 3,
    }
}

/// What differs between the SQL of two backends.
pub(crate) trait Dialect {
    /// An expression for the start (ms since the epoch, UTC) of the calendar
    /// month holding the millisecond instant `col`, the same as
    /// [`Bucket::floor`] for [`Bucket::Month`].
    fn month_floor(&self, col: &str) -> String;
}

/// SQLite's date functions.
pub(crate) struct Sqlite;

impl Dialect for Sqlite {
    fn month_floor(&self, col: &str) -> String {
        // Calendar months from SQLite's date functions, on whole seconds.
        format!(
            "CAST(strftime('%s', {} / 1000, 'unixepoch', 'start of month') AS BIGINT) * 1000",
            floor_sql(col, 1000)
        )
    }
}

/// `col` floored to a multiple of `w` (also for negative instants: `%`
/// truncates toward zero in both dialects).
pub(crate) fn floor_sql(col: &str, w: i64) -> String {
    format!("({col} - (({col} % {w}) + {w}) % {w})")
}

/// SQL for the start of the bucket holding the millisecond instant `col`;
/// the same buckets as [`Bucket::floor`].
fn bucket_sql(d: &dyn Dialect, bucket: Bucket, col: &str) -> String {
    match bucket {
        Bucket::Hour => floor_sql(col, HOUR_MS),
        Bucket::Day => floor_sql(col, DAY_MS),
        Bucket::Month => d.month_floor(col),
    }
}

/// One rollup row's change: add `stats` to the row of (level, client,
/// metric, bucket), creating it if missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupDelta<'a> {
    pub level: i64,
    pub client_id: &'a str,
    pub metric: &'a str,
    pub bucket: i64,
    pub stats: Stats,
}

/// The rollup changes of the newly stored `events`, summed per row in
/// memory, in the order of the rollups' primary key (deterministic, and
/// the order in which a b-tree takes them best).
pub(crate) fn rollup_deltas<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<RollupDelta<'a>> {
    let mut sums: HashMap<(i64, &'a str, &'a str, i64), Stats> = HashMap::new();
    for event in events {
        let ms = event.timestamp.millis();
        for level in Bucket::LEVELS {
            let mut add = |client: &'a str| {
                let key = (level_code(level), client, event.metric.as_str(), level.floor(ms));
                sums.entry(key).or_default().add(event.amount);
            };
            add(ALL_CLIENTS);
            if PER_CLIENT_LEVELS.contains(&level) {
                add(event.client_id.as_str());
            }
        }
    }
    let mut out: Vec<RollupDelta<'a>> = sums
        .into_iter()
        .map(|((level, client_id, metric, bucket), stats)| RollupDelta {
            level,
            client_id,
            metric,
            bucket,
            stats,
        })
        .collect();
    out.sort_unstable_by(|a, b| {
        (a.level, a.client_id, a.metric, a.bucket).cmp(&(b.level, b.client_id, b.metric, b.bucket))
    });
    out
}

/// Adds one [`RollupDelta`]: $1 level, $2 client_id, $3 metric, $4 bucket,
/// $5 count, $6 sum, $7 min, $8 max.
pub(crate) const UPSERT_ROLLUP: &str = "INSERT INTO rollups (level, client_id, metric, bucket, n, total, lo, hi)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (level, client_id, metric, bucket) DO UPDATE SET
         n = rollups.n + excluded.n,
         total = rollups.total + excluded.total,
         lo = CASE WHEN excluded.lo < rollups.lo THEN excluded.lo ELSE rollups.lo END,
         hi = CASE WHEN excluded.hi > rollups.hi THEN excluded.hi ELSE rollups.hi END";

/// The events stored: $1 the across-clients month level.
pub(crate) const COUNT_EVENTS: &str =
    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM rollups WHERE level = $1 AND client_id = $2";

/// An argument of a piece's SQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// The SQL of one piece of an aggregate, its arguments in placeholder order,
/// and how its rows fold into the answer. Every piece selects the same
/// seven columns: bucket (BIGINT or NULL), client_id (TEXT or NULL),
/// metric (TEXT or NULL), count (BIGINT), sum, min, max (DOUBLE or NULL).
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub sql: String,
    pub args: Vec<Arg>,
    fold: BucketOf,
}

/// One row of a [`Piece`], as the backend read it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PieceRow {
    pub bucket: Option<i64>,
    pub client_id: Option<String>,
    pub metric: Option<String>,
    pub count: Option<i64>,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// How a row of a [`Piece`] gets its group's bucket.
#[derive(Debug, Clone, Copy)]
enum BucketOf {
    /// The bucket column holds it (or NULL when the query has no time bucket).
    Column,
    /// The bucket column holds a rollup bucket's start, to floor to the query's bucket.
    Floor(Option<Bucket>),
    /// The same for every row.
    Fixed(Option<i64>),
}

/// The pieces that answer `q` (its metric already cased): rollups for the
/// whole buckets of its range, events for the cut ones at the edges.
pub(crate) fn pieces(d: &dyn Dialect, q: &Query) -> Vec<Piece> {
    let start = q.start.map(Timestamp::millis);
    let end = q.end.map(Timestamp::millis);
    // Rows per client only when the query needs clients apart.
    let per_client = q.client_id.is_some() || q.by_client;
    let available: &[Bucket] = if per_client {
        &PER_CLIENT_LEVELS
    } else {
        &Bucket::LEVELS
    };
    plan(start, end, &Bucket::usable(q.bucket, available))
        .into_iter()
        .map(|(source, span)| piece(d, q, source, per_client, span))
        .collect()
}

/// The SQL of `source` over `span`, grouped as the query asks.
///
/// No SQL sorting on the way (a GROUP BY's temporary b-tree costs more than
/// the rows themselves here): grouped rollup rows, few by design, are folded
/// in Rust as they stream out of the primary key; an events piece inside one
/// bucket of the grouping (every edge piece lies inside one hour) is a
/// single aggregate row, grouped in SQL only by client or metric.
fn piece(d: &dyn Dialect, q: &Query, source: Source, per_client: bool, span: Span) -> Piece {
    let client = if q.by_client { "client_id" } else { "CAST(NULL AS TEXT)" };
    let metric = if q.by_metric { "metric" } else { "CAST(NULL AS TEXT)" };
    let no_bucket = "CAST(NULL AS BIGINT)";
    let by_series = q.by_client || q.by_metric;
    let series_group = match (q.by_client, q.by_metric) {
        (true, true) => " GROUP BY client_id, metric",
        (true, false) => " GROUP BY client_id",
        (false, true) => " GROUP BY metric",
        (false, false) => "",
    };
    let (select, group, fold): (String, String, BucketOf) = match source {
        Source::Rollup(_) if q.is_grouped() => (
            format!("bucket, {client}, {metric}, n, total, lo, hi"),
            String::new(),
            BucketOf::Floor(q.bucket),
        ),
        Source::Rollup(_) => (
            format!("{no_bucket}, {client}, {metric}, CAST(SUM(n) AS BIGINT), SUM(total), MIN(lo), MAX(hi)"),
            String::new(),
            BucketOf::Column,
        ),
        Source::Events => {
            let stats = "COUNT(*), SUM(amount), MIN(amount), MAX(amount)";
            match (q.bucket, span.start, span.end) {
                (Some(b), Some(s), Some(e)) if b.floor(s) == b.floor(e - 1) => (
                    format!("{no_bucket}, {client}, {metric}, {stats}"),
                    if by_series { series_group.into() } else { String::new() },
                    BucketOf::Fixed(Some(b.floor(s))),
                ),
                (None, _, _) => (
                    format!("{no_bucket}, {client}, {metric}, {stats}"),
                    if by_series { series_group.into() } else { String::new() },
                    BucketOf::Fixed(None),
                ),
                // Events over several buckets: only where no rollup level
                // serves the grouping (a client's events grouped by hour).
                (Some(b), _, _) => {
                    let bucket = bucket_sql(d, b, "ts");
                    let mut group = format!(" GROUP BY {bucket}");
                    if q.by_client {
                        group.push_str(", client_id");
                    }
                    if q.by_metric {
                        group.push_str(", metric");
                    }
                    (
                        format!("{bucket}, {client}, {metric}, {stats}"),
                        group,
                        BucketOf::Column,
                    )
                }
            }
        }
    };
    let (table, time_col) = match source {
        Source::Events => ("events", "ts"),
        Source::Rollup(_) => ("rollups", "bucket"),
    };
    let mut w = Where::default();
    if let Source::Rollup(level) = source {
        w.push("level =", Arg::Int(level_code(level)));
        w.push(
            if per_client { "client_id <>" } else { "client_id =" },
            Arg::Text(ALL_CLIENTS.into()),
        );
    }
    if let Some(c) = &q.client_id {
        w.push("client_id =", Arg::Text(c.clone()));
    }
    if let Some(m) = &q.metric {
        w.push("metric =", Arg::Text(m.clone()));
    }
    if let Some(s) = span.start {
        w.push(&format!("{time_col} >="), Arg::Int(s));
    }
    if let Some(e) = span.end {
        w.push(&format!("{time_col} <"), Arg::Int(e));
    }
    Piece {
        sql: format!("SELECT {select} FROM {table} WHERE {}{group}", w.sql()),
        args: w.args,
        fold,
    }
}

/// Conditions joined by AND, each `<lhs> $n` with the next placeholder.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    fn push(&mut self, lhs: &str, arg: Arg) {
        self.args.push(arg);
        self.conds.push(format!("{lhs} ${}", self.args.len()));
    }

    fn sql(&self) -> String {
        if self.conds.is_empty() {
            "1 = 1".into()
        } else {
            self.conds.join(" AND ")
        }
    }
}

impl Piece {
    /// Add one row of this piece to `out`.
    pub(crate) fn fold(&self, row: PieceRow, out: &mut Partials) -> Result<()> {
        let count = row.count.unwrap_or(0);
        if count == 0 {
            return Ok(());
        }
        let bucket = match self.fold {
            BucketOf::Column => row.bucket,
            BucketOf::Floor(b) => match b {
                None => None,
                Some(b) => Some(b.floor(row.bucket.ok_or_else(|| corrupt("a rollup row without a bucket"))?)),
            },
            BucketOf::Fixed(b) => b,
        };
        out.add(
            GroupKey {
                bucket: bucket.map(stored_time).transpose()?,
                client_id: row.client_id,
                metric: row.metric,
            },
            Stats {
                count: count as u64,
                sum: row.sum.unwrap_or(0.0),
                min: row.min,
                max: row.max,
            },
        );
        Ok(())
    }
}

fn corrupt(what: &str) -> Error {
    Error::storage(StorageKind::Corrupt, what.to_string())
}

/// A stored millisecond instant as a [`Timestamp`].
pub(crate) fn stored_time(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millis(ms)
        .ok_or_else(|| Error::storage(StorageKind::Corrupt, format!("stored time {ms} is out of range")))
}

/// The columns an event listing selects, in the order of [`EventRow`].
const EVENT_COLUMNS: &str = "id, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version";

/// A page of stored events matching `f`, newest first.
pub(crate) fn list_events(f: &EventFilter) -> (String, Vec<Arg>) {
    let mut w = Where::default();
    if let Some(c) = &f.client_id {
        w.push("client_id =", Arg::Text(c.clone()));
    }
    if let Some(m) = &f.metric {
        w.push("metric =", Arg::Text(m.clone()));
    }
    if let Some(s) = f.start {
        w.push("ts >=", Arg::Int(s.millis()));
    }
    if let Some(e) = f.end {
        w.push("ts <", Arg::Int(e.millis()));
    }
    let n = w.args.len();
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {} ORDER BY id DESC LIMIT ${} OFFSET ${}",
        w.sql(),
        n + 1,
        n + 2
    );
    let mut args = w.args;
    args.extend([Arg::Int(f.limit as i64), Arg::Int(f.offset as i64)]);
    (sql, args)
}

/// Up to `limit` stored events with id above `after`, in id order: a whole
/// store read in chunks, each an index range.
pub(crate) fn events_after(after: i64, limit: usize) -> (String, Vec<Arg>) {
    (
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"),
        vec![Arg::Int(after), Arg::Int(limit as i64)],
    )
}

/// One row of an event listing, as the backend read it.
pub(crate) struct EventRow {
    pub id: i64,
    pub client_id: String,
    pub metric: String,
    pub ts: i64,
    pub amount: f64,
    pub event_id: Option<String>,
    pub attributes: String,
    pub received_at: i64,
    pub rules_version: i64,
}

impl EventRow {
    pub(crate) fn into_stored(self) -> Result<StoredEvent> {
        Ok(StoredEvent {
            id: self.id,
            event: Event {
                client_id: self.client_id,
                metric: self.metric,
                amount: self.amount,
                timestamp: stored_time(self.ts)?,
                attributes: parse_stored::<Map<String, Value>>(&self.attributes, "attributes")?,
                event_id: self.event_id,
            },
            received_at: stored_time(self.received_at)?,
            rules_version: self.rules_version,
        })
    }
}

/// A stored JSON column (attributes, raw input, reasons) read back.
pub(crate) fn parse_stored<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::storage(StorageKind::Corrupt, format!("stored {what} is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(client: &str, metric: &str, ms: i64, amount: f64) -> Event {
        Event {
            client_id: client.into(),
            metric: metric.into(),
            amount,
            timestamp: Timestamp::from_millis(ms).unwrap(),
            attributes: Default::default(),
            event_id: None,
        }
    }

    #[test]
    fn deltas_are_summed_per_row_and_sorted_by_key() {
        let events = [
            event("b", "m", 5 * HOUR_MS + 1, 2.0),
            event("a", "m", 5 * HOUR_MS + 2, -1.0),
            event("a", "m", 1, 4.0),
        ];
        let deltas = rollup_deltas(&events);
        let keys: Vec<_> = deltas.iter().map(|d| (d.level, d.client_id, d.bucket)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let hour5 = deltas
            .iter()
            .find(|d| d.level == 1 && d.client_id == ALL_CLIENTS && d.bucket == 5 * HOUR_MS)
            .unwrap();
        assert_eq!(
            hour5.stats,
            Stats {
                count: 2,
                sum: 1.0,
                min: Some(-1.0),
                max: Some(2.0)
            }
        );
        let day_a = deltas.iter().find(|d| d.level == 2 && d.client_id == "a").unwrap();
        assert_eq!(day_a.stats.count, 2);
    }

    #[test]
    fn placeholders_are_numbered_in_order_of_appearance() {
        let q = Query {
            client_id: Some("c".into()),
            metric: Some("m".into()),
            start: Timestamp::from_millis(5),
            end: Timestamp::from_millis(3 * DAY_MS + 7),
            ..Query::default()
        };
        for p in pieces(&Sqlite, &q) {
            let mut at = 0;
            for n in 1..=p.args.len() {
                let found = p.sql[at..].find(&format!("${n}")).map(|i| i + at);
                assert!(found.is_some(), "${n} missing or out of order in {}", p.sql);
                at = found.unwrap();
            }
            assert!(!p.sql.contains(&format!("${}", p.args.len() + 1)));
            assert!(!p.sql.contains('?'));
        }
    }
}
