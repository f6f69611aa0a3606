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
//!
//! The layout the SQL reads (schema.rs, migrations 2 to 6):
//! - `rollups`: count, sum, min, max per (level, bucket, metric) across
//!   every client, levels hour, day and month, keyed by time so that the
//!   rows of a commit lie together;
//! - `client_days`: the same per (day, client, metric), keyed by the day
//!   first, so that a batch of events in time order touches few pages;
//! - `events.ts_hour`, the start of the event's hour, and the index
//!   `events_by_hour (ts_hour, metric, client_id, ts, amount)`.
//!
//! A query across clients reads whole buckets from `rollups` and the cut
//! hours at its edges from the events of that hour. A query for one client
//! reads its whole days from `client_days` and the hours of its cut days
//! from its events, one index seek per hour, for the hours (and days) that
//! the across-client rollups say have events of the metric: rows that
//! exist, never a walk over every bucket of the range.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::EventFilter;
use crate::aggregate::{plan, Bucket, GroupKey, Partials, Query, Source, Span, Stats, DAY_MS, HOUR_MS};
use crate::error::{Error, Result, StorageKind};
use crate::event::{Event, StoredEvent};
use crate::rules::Rules;
use crate::timestamp::Timestamp;

/// The client of an across-client [`RollupDelta`]: none, `rollups` sums
/// every client and has no client column. (Never bind an empty text to
/// SQLite: rusqlite hands it Rust's dangling empty-slice pointer, and where
/// AVX-512 masked loads meet an unmapped page, as on this project's virtual
/// machines, each comparison with it costs 150 ns instead of 3.)
pub(crate) const ALL_CLIENTS: &str = "";

/// The levels a query for one client (or grouped by client) reads: hours
/// from the events through `events_by_hour`, days from `client_days`.
/// Keeping more per client (hours, months) costs about one rollup row per
/// event and level at every commit.
const PER_CLIENT_LEVELS: [Bucket; 2] = [Bucket::Hour, Bucket::Day];

/// The `level` column of a `rollups` row.
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

/// `col` floored to a multiple of `w`, also before 1970 (`%` truncates
/// toward zero in both dialects).
pub(crate) fn floor_sql(col: &str, w: i64) -> String {
    format!("({col} - (({col} % {w}) + {w}) % {w})")
}

/// The statements that recompute `rollups` and `client_days` from the
/// events, for a migration that changes their layout (or a repair).
pub(crate) fn rebuild_rollups(d: &dyn Dialect) -> Vec<String> {
    let stats = "COUNT(*), SUM(amount), MIN(amount), MAX(amount)";
    let across = |level: Bucket, bucket: String| {
        format!(
            "INSERT INTO rollups (level, bucket, metric, n, total, lo, hi)
             SELECT {}, {bucket}, metric, {stats} FROM events GROUP BY {bucket}, metric",
            level_code(level)
        )
    };
    let day = floor_sql("ts", DAY_MS);
    vec![
        "DELETE FROM rollups".into(),
        "DELETE FROM client_days".into(),
        across(Bucket::Hour, floor_sql("ts", HOUR_MS)),
        across(Bucket::Day, day.clone()),
        across(Bucket::Month, d.month_floor("ts")),
        format!(
            "INSERT INTO client_days (bucket, client_id, metric, n, total, lo, hi)
             SELECT {day}, client_id, metric, {stats} FROM events GROUP BY {day}, client_id, metric"
        ),
    ]
}

/// One rollup row's change: add `stats` to the row of (level, client,
/// metric, bucket), creating it if missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupDelta<'a> {
    /// [`level_code`]; always the day's for `client_days`.
    pub level: i64,
    pub client_id: &'a str,
    pub metric: &'a str,
    pub bucket: i64,
    pub stats: Stats,
}

/// The rollup changes of a batch, each table's in the order of its primary
/// key (deterministic, and the order in which a b-tree takes them best).
#[derive(Debug, Default)]
pub(crate) struct Deltas<'a> {
    /// For `rollups` ([`upsert_rollups`]).
    pub across: Vec<RollupDelta<'a>>,
    /// For `client_days` ([`upsert_client_days`]).
    pub client_days: Vec<RollupDelta<'a>>,
}

/// The in-memory sums of a batch, hashed by foldhash (fast on short keys,
/// and kept by others: it replaced a hand-written hash). Summing had cost
/// 0.6 µs per event while a key held the empty across-client id; see
/// [`ALL_CLIENTS`].
type Sums<K> = foldhash::HashMap<K, Stats>;

/// The rollup changes of the newly stored `events`, summed per row in
/// memory.
pub(crate) fn rollup_deltas<'a>(events: impl IntoIterator<Item = &'a Event>) -> Deltas<'a> {
    // Keyed without the constant client of the across rows: a key holding
    // an empty string summed six times slower (hashbrown compares keys).
    let mut across: Sums<(i64, &'a str, i64)> = Sums::default();
    let mut clients: Sums<(&'a str, &'a str, i64)> = Sums::default();
    // Months from chrono cost more than the rest; events of a batch share a few days.
    let mut month_of: Option<(i64, i64)> = None;
    for event in events {
        let ms = event.timestamp.millis();
        let day = Bucket::Day.floor(ms);
        let month = match month_of {
            Some((d, m)) if d == day => m,
            _ => {
                let m = Bucket::Month.floor(day);
                month_of = Some((day, m));
                m
            }
        };
        let metric = event.metric.as_str();
        for (level, bucket) in [
            (Bucket::Hour, Bucket::Hour.floor(ms)),
            (Bucket::Day, day),
            (Bucket::Month, month),
        ] {
            across
                .entry((level_code(level), metric, bucket))
                .or_default()
                .add(event.amount);
        }
        clients
            .entry((event.client_id.as_str(), metric, day))
            .or_default()
            .add(event.amount);
    }
    let day = level_code(Bucket::Day);
    let row = |level, client_id, metric, bucket, stats| RollupDelta {
        level,
        client_id,
        metric,
        bucket,
        stats,
    };
    let mut out = Deltas {
        across: across
            .into_iter()
            .map(|((level, metric, bucket), stats)| row(level, ALL_CLIENTS, metric, bucket, stats))
            .collect(),
        client_days: clients
            .into_iter()
            .map(|((client_id, metric, bucket), stats)| row(day, client_id, metric, bucket, stats))
            .collect(),
    };
    out.across
        .sort_unstable_by(|a, b| (a.level, a.bucket, a.metric).cmp(&(b.level, b.bucket, b.metric)));
    out.client_days
        .sort_unstable_by(|a, b| (a.bucket, a.client_id, a.metric).cmp(&(b.bucket, b.client_id, b.metric)));
    out
}

/// The most rows of one multi-row upsert (SQLite's bound on variables is
/// 32 766; PostgreSQL's 65 535).
const UPSERT_ROWS: usize = 64;

/// `rows` cut into runs for multi-row statements: as many of
/// [`UPSERT_ROWS`] as fit, then the rest by powers of two, so that a
/// backend keeps at most seven statements per table prepared.
pub(crate) fn upsert_runs<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= UPSERT_ROWS {
            UPSERT_ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some(run)
    })
}

/// `VALUES` with `rows` rows of `cols` placeholders, numbered row by row.
fn values(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The two tables rollup deltas are added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollupTable {
    /// Across clients, every level: [`Deltas::across`].
    Rollups,
    /// Per client, by day: [`Deltas::client_days`].
    ClientDays,
}

impl RollupTable {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RollupTable::Rollups => "rollups",
            RollupTable::ClientDays => "client_days",
        }
    }

    /// The key columns, in the order a row is bound; then come n, total,
    /// lo, hi.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            RollupTable::Rollups => &["level", "bucket", "metric"],
            RollupTable::ClientDays => &["bucket", "client_id", "metric"],
        }
    }

    /// Every column, in binding order.
    pub(crate) fn columns(self) -> String {
        format!("{}, n, total, lo, hi", self.keys().join(", "))
    }

    /// What makes an insert of deltas add to a stored row (never replace
    /// it), so concurrent writers lose no counts.
    pub(crate) fn add_on_conflict(self) -> String {
        let t = self.name();
        format!(
            "ON CONFLICT ({}) DO UPDATE SET
                 n = {t}.n + excluded.n,
                 total = {t}.total + excluded.total,
                 lo = CASE WHEN excluded.lo < {t}.lo THEN excluded.lo ELSE {t}.lo END,
                 hi = CASE WHEN excluded.hi > {t}.hi THEN excluded.hi ELSE {t}.hi END",
            self.keys().join(", ")
        )
    }

    /// Adds `rows` [`RollupDelta`]s, each bound as [`RollupTable::columns`];
    /// `rows` is one of the run lengths of [`upsert_runs`]. The text is built
    /// once: the statement cache looks it up by text on every commit, and
    /// formatting it there cost about 5% of a batch.
    pub(crate) fn upsert(self, rows: usize) -> &'static str {
        const SIZES: usize = UPSERT_ROWS.ilog2() as usize + 1;
        static TEXTS: [OnceLock<String>; 2 * SIZES] = [const { OnceLock::new() }; 2 * SIZES];
        assert!(
            rows.is_power_of_two() && rows <= UPSERT_ROWS,
            "not a run length of upsert_runs: {rows}"
        );
        TEXTS[self as usize * SIZES + rows.ilog2() as usize].get_or_init(|| {
            format!(
                "INSERT INTO {} ({}) VALUES {} {}",
                self.name(),
                self.columns(),
                values(rows, self.keys().len() + 4),
                self.add_on_conflict()
            )
        })
    }
}

/// The events stored: $1 the month level (every event is in one month row).
pub(crate) const COUNT_EVENTS: &str = "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM rollups WHERE level = $1";

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
    /// The bucket column holds a bucket's start (hour, day or month), to
    /// floor to the query's bucket; `None`: the query has no time bucket.
    Floor(Option<Bucket>),
    /// The same for every row.
    Fixed(Option<i64>),
}

/// The pieces that answer `q` (its metric already cased): rollups for the
/// whole buckets of its range, events for the cut ones at the edges.
pub(crate) fn pieces(q: &Query) -> Vec<Piece> {
    let start = q.start.map(Timestamp::millis);
    let end = q.end.map(Timestamp::millis);
    // Rows per client only when the query needs clients apart.
    let per_client = q.client_id.is_some() || q.by_client;
    let available: &[Bucket] = if per_client {
        &PER_CLIENT_LEVELS
    } else {
        &Bucket::LEVELS
    };
    let mut out = Vec::new();
    for (source, span) in plan(start, end, &Bucket::usable(q.bucket, available)) {
        match source {
            Source::Events => out.extend(hours_of(span).into_iter().map(|(hour, part)| edge(q, hour, part))),
            Source::Rollup(level) if !per_client => out.push(across(q, level, span)),
            Source::Rollup(Bucket::Hour) => out.push(client_hours(q, span)),
            Source::Rollup(_) => out.push(client_days(q, span)),
        }
    }
    out
}

/// `span` cut at hour boundaries: (hour start, part). The plan's event
/// pieces are bounded and shorter than two hours (every level list holds
/// hours), so this is one or two parts; an unbounded one (none today) is
/// read whole, without the hour.
fn hours_of(span: Span) -> Vec<(Option<i64>, Span)> {
    let (Some(mut s), Some(e)) = (span.start, span.end) else {
        return vec![(None, span)];
    };
    let mut out = Vec::new();
    while s < e {
        let hour = Bucket::Hour.floor(s);
        let next = (hour + HOUR_MS).min(e);
        out.push((
            Some(hour),
            Span {
                start: Some(s),
                end: Some(next),
            },
        ));
        s = next;
    }
    out
}

/// SQL text with `$n` placeholders numbered as they are written.
#[derive(Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// `text` followed by the next placeholder, bound to `arg`.
    fn bind(&mut self, text: &str, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push_str(text);
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    fn piece(self, fold: BucketOf) -> Piece {
        Piece {
            sql: self.text,
            args: self.args,
            fold,
        }
    }
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_string())
}

/// The grouping columns of a query, on the table aliased `t`.
fn series_cols(q: &Query, t: &str) -> String {
    let client = if q.by_client {
        format!("{t}.client_id")
    } else {
        "CAST(NULL AS TEXT)".into()
    };
    let metric = if q.by_metric {
        format!("{t}.metric")
    } else {
        "CAST(NULL AS TEXT)".into()
    };
    format!("{client}, {metric}")
}

/// ` GROUP BY` the given columns and the query's series columns on `t`, or
/// nothing when there are none.
fn group_by(q: &Query, first: Option<&str>, t: &str) -> String {
    let mut cols: Vec<String> = first.into_iter().map(str::to_string).collect();
    if q.by_client {
        cols.push(format!("{t}.client_id"));
    }
    if q.by_metric {
        cols.push(format!("{t}.metric"));
    }
    if cols.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", cols.join(", "))
    }
}

const NO_BUCKET: &str = "CAST(NULL AS BIGINT)";
const EVENT_STATS: &str = "COUNT(*), SUM(e.amount), MIN(e.amount), MAX(e.amount)";
const SUMMED_STATS: &str = "CAST(SUM(r.n) AS BIGINT), SUM(r.total), MIN(r.lo), MAX(r.hi)";
const ROW_STATS: &str = "r.n, r.total, r.lo, r.hi";

/// The events of `span`, which lies inside the hour starting at `hour`:
/// one seek into events_by_hour to the hour and metric (and client, when
/// both are given).
fn edge(q: &Query, hour: Option<i64>, span: Span) -> Piece {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {NO_BUCKET}, {}, {EVENT_STATS} FROM events e WHERE 1 = 1",
        series_cols(q, "e")
    ));
    if let Some(h) = hour {
        sql.bind(" AND e.ts_hour = ", Arg::Int(h));
    }
    if let Some(c) = &q.client_id {
        sql.bind(" AND e.client_id = ", text(c));
    }
    if let Some(m) = &q.metric {
        sql.bind(" AND e.metric = ", text(m));
    }
    if let Some(s) = span.start {
        sql.bind(" AND e.ts >= ", Arg::Int(s));
    }
    if let Some(e) = span.end {
        sql.bind(" AND e.ts < ", Arg::Int(e));
    }
    sql.push(&group_by(q, None, "e"));
    // Inside one hour, so inside one bucket of any grouping.
    sql.piece(match (hour, q.bucket, span.start) {
        (Some(_), Some(b), Some(s)) => BucketOf::Fixed(Some(b.floor(s))),
        (_, None, _) => BucketOf::Fixed(None),
        _ => unreachable!("an events piece inside one hour is bounded"),
    })
}

/// `and <alias>.bucket >= $s and <alias>.bucket < $e` for the bounds of `span`.
fn bucket_range(sql: &mut Sql, alias: &str, span: Span) {
    if let Some(s) = span.start {
        sql.bind(&format!(" AND {alias}.bucket >= "), Arg::Int(s));
    }
    if let Some(e) = span.end {
        sql.bind(&format!(" AND {alias}.bucket < "), Arg::Int(e));
    }
}

/// The columns read from rollup rows `r` (of `rollups` or `client_days`),
/// and how they fold: grouped rows, few by design, stream out of the
/// primary key and are folded in Rust (no SQL sorting); otherwise one
/// summed row.
fn rollup_select(q: &Query) -> (String, BucketOf) {
    if q.is_grouped() {
        (
            format!("r.bucket, {}, {ROW_STATS}", series_cols(q, "r")),
            BucketOf::Floor(q.bucket),
        )
    } else {
        (
            format!("{NO_BUCKET}, {}, {SUMMED_STATS}", series_cols(q, "r")),
            BucketOf::Fixed(None),
        )
    }
}

/// Whole buckets of `level` across clients, from `rollups`.
fn across(q: &Query, level: Bucket, span: Span) -> Piece {
    let mut sql = Sql::default();
    let (select, fold) = rollup_select(q);
    sql.push(&format!("SELECT {select} FROM rollups r WHERE "))
        .bind("r.level = ", Arg::Int(level_code(level)));
    if let Some(m) = &q.metric {
        sql.bind(" AND r.metric = ", text(m));
    }
    bucket_range(&mut sql, "r", span);
    sql.piece(fold)
}

/// ` FROM` the across-client rollups `a` of `level` in `span` that have
/// events of the query's metric (of each metric when none is given),
/// `CROSS JOIN` `then`, ` WHERE` their conditions: the buckets worth a seek
/// for one client, in the order SQLite must loop (CROSS JOIN fixes it; a
/// plain join to PostgreSQL).
fn drive(sql: &mut Sql, q: &Query, level: Bucket, span: Span, then: &str) {
    match &q.metric {
        Some(m) => {
            sql.push(&format!(" FROM rollups a CROSS JOIN {then} WHERE "))
                .bind("a.level = ", Arg::Int(level_code(level)))
                .bind(" AND a.metric = ", text(m));
        }
        None => {
            // The metrics: one month row each at least, read from the key.
            sql.bind(
                " FROM (SELECT DISTINCT metric FROM rollups WHERE level = ",
                Arg::Int(level_code(Bucket::Month)),
            )
            .push(&format!(") m CROSS JOIN rollups a CROSS JOIN {then} WHERE "))
            .bind("a.level = ", Arg::Int(level_code(level)))
            .push(" AND a.metric = m.metric");
        }
    }
    bucket_range(sql, "a", span);
}

/// Whole hours of `span` for one client (or grouped by client), from the
/// events through events_by_hour: for one client one seek per hour that the
/// across-client rollups say has events of the metric; for every client a
/// range (every event of the range is read anyway).
fn client_hours(q: &Query, span: Span) -> Piece {
    let mut sql = Sql::default();
    // Grouped by a time bucket: one row per hour, floored to the query's
    // bucket in Rust (a cut day's hours may span two days).
    let fold = BucketOf::Floor(q.bucket);
    match &q.client_id {
        Some(c) => {
            let bucket = if q.bucket.is_some() { "a.bucket" } else { NO_BUCKET };
            sql.push(&format!("SELECT {bucket}, {}, {EVENT_STATS}", series_cols(q, "e")));
            drive(&mut sql, q, Bucket::Hour, span, "events e");
            sql.push(" AND e.ts_hour = a.bucket")
                .push(" AND e.metric = a.metric")
                .bind(" AND e.client_id = ", text(c))
                .push(&group_by(q, q.bucket.map(|_| "a.bucket"), "e"));
        }
        None => {
            let bucket = if q.bucket.is_some() { "e.ts_hour" } else { NO_BUCKET };
            sql.push(&format!(
                "SELECT {bucket}, {}, {EVENT_STATS} FROM events e WHERE 1 = 1",
                series_cols(q, "e")
            ));
            if let Some(s) = span.start {
                sql.bind(" AND e.ts_hour >= ", Arg::Int(s));
            }
            if let Some(e) = span.end {
                sql.bind(" AND e.ts_hour < ", Arg::Int(e));
            }
            if let Some(m) = &q.metric {
                sql.bind(" AND e.metric = ", text(m));
            }
            sql.push(&group_by(q, q.bucket.map(|_| "e.ts_hour"), "e"));
        }
    }
    sql.piece(fold)
}

/// Whole days of `span` for one client (or grouped by client), from
/// client_days.
fn client_days(q: &Query, span: Span) -> Piece {
    let mut sql = Sql::default();
    let (select, fold) = rollup_select(q);
    sql.push(&format!("SELECT {select}"));
    match &q.client_id {
        Some(c) => {
            drive(&mut sql, q, Bucket::Day, span, "client_days r");
            sql.push(" AND r.bucket = a.bucket")
                .bind(" AND r.client_id = ", text(c))
                .push(" AND r.metric = a.metric");
        }
        None => {
            sql.push(" FROM client_days r WHERE 1 = 1");
            bucket_range(&mut sql, "r", span);
            if let Some(m) = &q.metric {
                sql.bind(" AND r.metric = ", text(m));
            }
        }
    }
    sql.piece(fold)
}

impl Piece {
    /// Add one row of this piece to `out`.
    pub(crate) fn fold(&self, row: PieceRow, out: &mut Partials) -> Result<()> {
        let count = row.count.unwrap_or(0);
        if count == 0 {
            return Ok(());
        }
        let bucket = match self.fold {
            BucketOf::Floor(None) => None,
            BucketOf::Floor(Some(b)) => Some(b.floor(row.bucket.ok_or_else(|| corrupt("a row without its bucket"))?)),
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
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1"));
    if let Some(c) = &f.client_id {
        sql.bind(" AND client_id = ", text(c));
    }
    if let Some(m) = &f.metric {
        sql.bind(" AND metric = ", text(m));
    }
    if let Some(s) = f.start {
        sql.bind(" AND ts >= ", Arg::Int(s.millis()));
    }
    if let Some(e) = f.end {
        sql.bind(" AND ts < ", Arg::Int(e.millis()));
    }
    sql.push(" ORDER BY id DESC")
        .bind(" LIMIT ", Arg::Int(f.limit as i64))
        .bind(" OFFSET ", Arg::Int(f.offset as i64));
    let Sql { text, args } = sql;
    (text, args)
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

/// What a store records of `rules`: the whole document (the same document
/// always gets the same version number) and the dedup key's spec (when it
/// changed since the last open, stored events are re-keyed).
pub(crate) fn rules_record(rules: &Rules) -> (String, String) {
    let document = rules.to_value();
    let key_spec = serde_json::to_string(&document["dedup_key"]).unwrap_or_default();
    (document.to_string(), key_spec)
}

/// Re-keying under `spec` would make stored events `a` and `b` one event.
pub(crate) fn key_collision(spec: &str, a: i64, b: i64) -> Error {
    Error::rules(format!(
        "dedup_key {spec} would make stored events {a} and {b} the same event; \
         keep the old key or remove one of them first"
    ))
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
            event("a", "m", -1, 8.0),
        ];
        let d = rollup_deltas(&events);
        let across: Vec<_> = d.across.iter().map(|r| (r.level, r.bucket, r.metric)).collect();
        let mut sorted = across.clone();
        sorted.sort();
        assert_eq!(across, sorted);
        assert!(d.across.iter().all(|r| r.client_id == ALL_CLIENTS));
        let days: Vec<_> = d
            .client_days
            .iter()
            .map(|r| (r.bucket, r.client_id, r.metric))
            .collect();
        assert_eq!(days, vec![(-DAY_MS, "a", "m"), (0, "a", "m"), (0, "b", "m")]);
        let hour5 = d
            .across
            .iter()
            .find(|r| r.level == 1 && r.bucket == 5 * HOUR_MS)
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
        let months: Vec<_> = d.across.iter().filter(|r| r.level == 3).map(|r| r.bucket).collect();
        assert_eq!(months, vec![-31 * DAY_MS, 0], "December 1969 and January 1970");
    }

    #[test]
    fn upserts_run_in_few_sizes() {
        let rows: Vec<usize> = (0..200).collect();
        let runs: Vec<usize> = upsert_runs(&rows).map(<[usize]>::len).collect();
        assert_eq!(runs, vec![64, 64, 64, 8]);
        assert_eq!(
            upsert_runs(&rows[..7]).map(<[usize]>::len).collect::<Vec<_>>(),
            vec![4, 2, 1]
        );
        assert_eq!(upsert_runs::<usize>(&[]).count(), 0);
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        let across = RollupTable::Rollups.upsert(2);
        let columns = "(level, bucket, metric, n, total, lo, hi) VALUES ($1, $2, $3, $4, $5, $6, $7), ($8,";
        assert!(across.contains(columns), "{across}");
    }

    #[test]
    fn placeholders_are_numbered_in_order_of_appearance() {
        for (client, metric, by_client) in [
            (Some("c"), Some("m"), false),
            (Some("c"), None, true),
            (None, Some("m"), true),
            (None, None, false),
        ] {
            for bucket in [None, Some(Bucket::Hour), Some(Bucket::Day), Some(Bucket::Month)] {
                let q = Query {
                    client_id: client.map(Into::into),
                    metric: metric.map(Into::into),
                    start: Timestamp::from_millis(5),
                    end: Timestamp::from_millis(40 * DAY_MS + 7),
                    bucket,
                    by_client,
                    by_metric: true,
                };
                for p in pieces(&q) {
                    let mut at = 0;
                    for n in 1..=p.args.len() {
                        let found = p.sql[at..].find(&format!("${n}")).map(|i| i + at);
                        assert!(found.is_some(), "${n} missing or out of order in {}", p.sql);
                        at = found.unwrap();
                    }
                    assert!(!p.sql.contains(&format!("${}", p.args.len() + 1)), "{}", p.sql);
                    assert!(!p.sql.contains('?'));
                }
            }
        }
    }
}
