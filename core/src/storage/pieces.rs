//! The SQL of each piece of an aggregate, and the folding of piece rows
//! into [`Partials`]. The engine runs the pieces of a query in one read
//! snapshot; the planner (aggregate.rs) decides which range each covers.
//!
//! A query across clients reads whole buckets from `rollups` and the cut
//! hours at its edges from the events of that hour, through the index
//! `events_by_hour (ts_hour, metric, client_id, ts, amount)`. A query for
//! one client reads its whole days from `client_days` and the hours of its
//! cut days from its events, one index seek per hour, for the hours (and
//! days) that the across-client rollups say have events of the metric: rows
//! that exist, never a walk over every bucket of the range.
//!
//! A query grouped by time in a zone (`Query::tz`) is planned over local
//! buckets instead (zone.rs): the range is cut at every local bucket start
//! and each cut piece peeled as above, then the pieces of one source are
//! read by one statement that seeks each of its ranges (a table of VALUES
//! joined first), and every row is put in its local bucket by a binary
//! search of the bucket starts. A zone whose offsets are whole hours reads
//! rollups only; one such as +05:45 also reads the events of the hour that
//! each bucket start cuts.

use super::db::{args, query_opt, Db, Param, Row, Sql};
use super::listing::stored_time;
use super::rollup::level_code;
use crate::aggregate::{plan, Aggregate, Bucket, GroupKey, Partials, Source, Span, Totals, DAY_MS, HOUR_MS};
use crate::error::{Error, Result, StorageKind};
use crate::options::Query;
use crate::timestamp::Timestamp;
use crate::zone::{Borrow, LocalBuckets, Window};

/// The levels a query for one client (or grouped by client) reads: hours
/// from the events through `events_by_hour`, days from `client_days`.
/// Keeping more per client (hours, months) costs about one rollup row per
/// event and level at every commit.
const PER_CLIENT_LEVELS: [Bucket; 2] = [Bucket::Hour, Bucket::Day];

/// The SQL of one piece of an aggregate, its arguments in placeholder order,
/// and how its rows fold into the answer. Every piece selects bucket
/// (BIGINT or NULL), client_id and metric (TEXT or NULL), then either one
/// event's amount or a rollup row's n, total, lo and hi. Nothing is summed
/// in SQL: the databases' sums of floats are rounded at every step, and
/// these are summed exactly in Rust.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub sql: String,
    pub args: Vec<Param>,
    fold: BucketOf,
    rows: Rows,
    /// For a piece that reads events, the times it reads them in: a prune
    /// may have removed them.
    events: Vec<Span>,
    role: Role,
}

/// What a piece's rows are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Added to their groups.
    Add,
    /// Rows of borrowed UTC days (zone.rs, [`Borrow`]), each less its
    /// excess hours before it is added.
    Borrowed,
}

/// What a piece's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// One event each: its amount.
    Events,
    /// One rollup row each: n, total (exact), lo, hi, n_lo, n_hi.
    Rollups,
}

fn piece(sql: Sql, fold: BucketOf, rows: Rows) -> Piece {
    Piece {
        sql: sql.text,
        args: sql.args,
        fold,
        rows,
        events: Vec::new(),
        role: Role::Add,
    }
}

/// A piece that reads the events of `spans`.
fn events_piece(sql: Sql, fold: BucketOf, spans: Vec<Span>) -> Piece {
    Piece {
        events: spans,
        ..piece(sql, fold, Rows::Events)
    }
}

/// How a row of a [`Piece`] gets its group's bucket.
#[derive(Debug, Clone, Copy)]
enum BucketOf {
    /// The bucket column holds a bucket's start (hour, day or month), to
    /// floor to the query's bucket; `None`: the query has no time bucket.
    Floor(Option<Bucket>),
    /// The same for every row.
    Fixed(Option<i64>),
    /// The bucket column holds an instant (an event's time, a rollup
    /// bucket's start) whose local bucket is looked up in the query's
    /// [`LocalBuckets`].
    Local,
}

/// The most ranges one statement seeks: a bound on its placeholders (three
/// a range at most), far below either database's limit.
const MAX_RANGES: usize = 500;

/// The ranges a piece reads: one, bound in place as before zones existed,
/// or several, read as a table of VALUES `w` (`column1`, `column2`) joined
/// first, so that one statement seeks each.
#[derive(Debug, Clone, Copy)]
enum Ranges<'a> {
    One(Span),
    Many(&'a [Span]),
}

impl Ranges<'_> {
    /// `(VALUES (a, b), ...) w CROSS JOIN ` for several ranges (every one
    /// bounded: they come from local buckets), nothing for one.
    fn table(self, sql: &mut Sql) {
        if let Ranges::Many(spans) = self {
            let rows: Vec<[i64; 2]> = spans
                .iter()
                .map(|s| [s.start.unwrap_or(i64::MIN), s.end.unwrap_or(i64::MAX)])
                .collect();
            values(sql, &rows);
        }
    }

    /// ` AND col >= start AND col < end` of each range.
    fn bound(self, sql: &mut Sql, col: &str) {
        match self {
            Ranges::One(span) => {
                if let Some(s) = span.start {
                    sql.bind(&format!(" AND {col} >= "), Param::Int(s));
                }
                if let Some(e) = span.end {
                    sql.bind(&format!(" AND {col} < "), Param::Int(e));
                }
            }
            Ranges::Many(_) => {
                sql.push(&format!(" AND {col} >= w.column1 AND {col} < w.column2"));
            }
        }
    }
}

/// `(VALUES (...), ...) w CROSS JOIN `: `rows` as a table `w` whose
/// columns are `column1`, `column2`, ... (both databases name them so),
/// each value cast to BIGINT by [`Sql::bind`] (PostgreSQL would take an
/// untyped one for text). Padded with empty ranges (all zero) to a power
/// of two of rows, so that the same few texts come back and are prepared
/// once: preparing a hundred rows of VALUES costs more than running them.
fn values<const N: usize>(sql: &mut Sql, rows: &[[i64; N]]) {
    sql.push("(VALUES ");
    let padding = std::iter::repeat_n([0; N], rows.len().next_power_of_two() - rows.len());
    for (i, row) in rows.iter().copied().chain(padding).enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        for (j, v) in row.iter().enumerate() {
            sql.bind(if j == 0 { "" } else { ", " }, Param::Int(*v));
        }
        sql.push(")");
    }
    sql.push(") w CROSS JOIN ");
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
            Source::Rollup(level) => out.push(rollup_piece(q, level, Ranges::One(span))),
        }
    }
    out
}

/// Whether `q` reads rows per client: for one client, or grouped by client.
fn per_client(q: &Query) -> bool {
    q.client_id.is_some() || q.by_client
}

/// The piece reading whole buckets of `level` in `ranges`: across clients
/// from `rollups`, per client hours from the events and days from
/// `client_days`.
fn rollup_piece(q: &Query, level: Bucket, ranges: Ranges<'_>) -> Piece {
    match level {
        _ if !per_client(q) => across(q, level, ranges),
        Bucket::Hour => client_hours(q, ranges),
        _ => client_days(q, ranges),
    }
}

/// What a query grouped in a zone reads: its pieces, its local buckets,
/// and the UTC days it borrows (in order).
struct LocalPlan {
    pieces: Vec<Piece>,
    local: LocalBuckets,
    borrows: Vec<Borrow>,
}

/// The pieces of `spans` of rollups of `level`, as many statements as
/// [`MAX_RANGES`] asks.
fn rollup_pieces(q: &Query, level: Bucket, spans: &[Span]) -> Vec<Piece> {
    spans
        .chunks(MAX_RANGES)
        .map(|c| {
            let ranges = if let [one] = c {
                Ranges::One(*one)
            } else {
                Ranges::Many(c)
            };
            rollup_piece(q, level, ranges)
        })
        .collect()
}

/// What answers `q`, grouped by `bucket` in zone `tz`; `None` when no
/// event is stored in its range. Local buckets are computed only over the
/// UTC months that hold events (of its metric, when it has one), read from
/// the month rollups' key: their cost follows the stored data, not the
/// length of the range, and an unbounded side ends where the data does.
/// Across clients, a UTC day that one local start cuts on the hour is read
/// from its day rollup less the hours of its smaller part, which are read
/// anyway for the bucket next door: one row where there were 23.
fn local_plan(db: &mut dyn Db, q: &Query, tz: chrono_tz::Tz, bucket: Bucket) -> Result<Option<LocalPlan>> {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT DISTINCT bucket FROM rollups WHERE {}",
        level_is("level", Bucket::Month)
    ));
    if let Some(m) = &q.metric {
        sql.bind(" AND metric = ", Param::text(m));
    }
    sql.push(" ORDER BY bucket");
    let mut months: Vec<i64> = Vec::new();
    db.query(&sql.text, &args(&sql.args), &mut |r| {
        months.push(r.int(0)?);
        Ok(())
    })?;
    let (start, end) = (q.start.map(Timestamp::millis), q.end.map(Timestamp::millis));
    let mut windows: Vec<Window> = Vec::new();
    for m in months {
        let next = Bucket::Month.ceil(m + 1);
        match windows.last_mut() {
            Some(last) if last.1 == m => last.1 = next,
            _ => windows.push((m, next)),
        }
    }
    let windows: Vec<Window> = windows
        .into_iter()
        .map(|(s, e)| (start.map_or(s, |x| x.max(s)), end.map_or(e, |x| x.min(e))))
        .filter(|(s, e)| s < e)
        .collect();
    if windows.is_empty() {
        return Ok(None);
    }
    let local = LocalBuckets::new(tz, bucket, &windows)?;
    let available: &[Bucket] = if per_client(q) {
        &PER_CLIENT_LEVELS
    } else {
        &Bucket::LEVELS
    };
    let mut pieces = Vec::new();
    let mut borrows = Vec::new();
    for (source, mut spans) in local.plan(&windows, &Bucket::usable(q.bucket, available)) {
        match source {
            Source::Events => {
                let parts: Vec<[i64; 3]> = spans
                    .iter()
                    .flat_map(|s| hours_of(*s))
                    .filter_map(|(hour, part)| Some([hour?, part.start?, part.end?]))
                    .collect();
                pieces.extend(parts.chunks(MAX_RANGES).map(|c| local_edges(q, c)));
            }
            Source::Rollup(Bucket::Hour) if !per_client(q) && bucket >= Bucket::Day => {
                borrows = local.borrow_days(&mut spans);
                pieces.extend(rollup_pieces(q, Bucket::Hour, &spans));
                let days = joined(borrows.iter().map(|b| Span {
                    start: Some(b.day),
                    end: Some(b.day + DAY_MS),
                }));
                pieces.extend(rollup_pieces(q, Bucket::Day, &days).into_iter().map(|p| Piece {
                    role: Role::Borrowed,
                    ..p
                }));
            }
            Source::Rollup(level) => pieces.extend(rollup_pieces(q, level, &spans)),
        }
    }
    for p in &mut pieces {
        p.fold = BucketOf::Local;
    }
    Ok(Some(LocalPlan { pieces, local, borrows }))
}

/// The statements of `q` grouped in its zone, as [`aggregate`] plans them,
/// and those that read the least and greatest amounts of `kept` spans
/// (tests read their SQL).
#[cfg(test)]
pub(crate) fn zoned_statements(db: &mut dyn Db, q: &Query, kept: &[Span]) -> Result<Vec<(String, Vec<Param>)>> {
    let (Some(tz), Some(bucket)) = (q.tz, q.bucket) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, Vec<Param>)> = local_plan(db, q, tz, bucket)?
        .map(|plan| plan.pieces.into_iter().map(|p| (p.sql, p.args)).collect())
        .unwrap_or_default();
    let sql = extremes(q, kept);
    out.push((sql.text, sql.args));
    Ok(out)
}

/// `spans` in order, touching ones joined.
fn joined(spans: impl Iterator<Item = Span>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for s in spans {
        match out.last_mut() {
            Some(last) if last.end == s.start => last.end = s.end,
            _ => out.push(s),
        }
    }
    out
}

/// The series of a borrowed day: its index, client and metric.
type DaySeries = (usize, Option<String>, Option<String>);

/// Answer `q` in its zone from `plan`. The rows of a borrowed day and of
/// its excess hours are kept apart per series; the day less its excess
/// goes to the kept part's bucket. Where the excess may have held the
/// day's minimum or maximum (always, nearly, for counts, whose amounts
/// repeat), the kept part's are read: one row per day from its hours.
fn local_aggregate(db: &mut dyn Db, q: &Query, plan: LocalPlan) -> Result<Aggregate> {
    let LocalPlan { pieces, local, borrows } = plan;
    check_not_pruned(db, q, &pieces)?;
    let mut partials = Partials::default();
    let mut days: std::collections::HashMap<DaySeries, (Totals, Totals)> = Default::default();
    run_pieces(
        db,
        &pieces,
        Some(&local),
        &mut partials,
        &mut |piece, row, key, totals| {
            if piece.role == Role::Add && piece.rows == Rows::Events {
                return Ok(true);
            }
            let at = row_bucket(row)?;
            let found = match piece.role {
                Role::Borrowed => borrows.binary_search_by_key(&at, |b| b.day).ok(),
                Role::Add => borrows
                    .partition_point(|b| b.excess.start <= Some(at))
                    .checked_sub(1)
                    .filter(|&i| borrows[i].excess.end > Some(at)),
            };
            let Some(i) = found else {
                return Ok(piece.role == Role::Add);
            };
            let entry = days.entry((i, key.client_id.clone(), key.metric.clone())).or_default();
            match piece.role {
                Role::Borrowed => entry.0.merge(totals),
                Role::Add => entry.1.merge(totals),
            }
            Ok(piece.role == Role::Add)
        },
    )?;
    let mut unknown: std::collections::HashMap<DaySeries, (GroupKey, Totals)> = Default::default();
    for ((i, client_id, metric), (day, excess)) in days {
        let rest = day
            .without(&excess)
            .ok_or_else(|| corrupt("a day's rollup holds fewer events than its hours"))?;
        if rest.totals.count == 0 {
            continue;
        }
        let key = GroupKey {
            bucket: borrows[i]
                .kept
                .start
                .map(|s| stored_time(local.start_of(s)))
                .transpose()?,
            bucket_local: None,
            client_id: client_id.clone(),
            metric: metric.clone(),
        };
        if rest.extremes_known {
            partials.add(key, &rest.totals);
        } else {
            unknown.insert((i, client_id, metric), (key, rest.totals));
        }
    }
    if !unknown.is_empty() {
        let mut wanted: Vec<usize> = unknown.keys().map(|(i, _, _)| *i).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let kept: Vec<Span> = wanted.iter().map(|&i| borrows[i].kept).collect();
        // Rows come span by span: each span's least and greatest amount
        // are gathered before its series is looked up.
        type Run = (i64, Option<String>, Option<String>, f64, f64);
        let mut finish = |run: Run| -> Result<()> {
            let (start, client_id, metric, lo, hi) = run;
            let i = borrows
                .binary_search_by_key(&Some(start), |b| b.kept.start)
                .map_err(|_| corrupt("extremes of a span that was not asked for"))?;
            if let Some((_, t)) = unknown.get_mut(&(i, client_id, metric)) {
                t.min = Some(t.min.map_or(lo, |m| m.min(lo)));
                t.max = Some(t.max.map_or(hi, |m| m.max(hi)));
            }
            Ok(())
        };
        let mut run: Option<Run> = None;
        for chunk in kept.chunks(MAX_RANGES) {
            let sql = extremes(q, chunk);
            db.query(&sql.text, &args(&sql.args), &mut |r| {
                let (start, client_id, metric) = (r.int(0)?, r.opt_text(1)?, r.opt_text(2)?);
                let (lo, hi) = (r.real(3)?, r.real(4)?);
                match &mut run {
                    Some((s, c, m, least, most)) if *s == start && *c == client_id && *m == metric => {
                        *least = least.min(lo);
                        *most = most.max(hi);
                    }
                    _ => {
                        if let Some(done) = run.replace((start, client_id, metric, lo, hi)) {
                            finish(done)?;
                        }
                    }
                }
                Ok(())
            })?;
        }
        if let Some(done) = run {
            finish(done)?;
        }
        for (key, t) in unknown.into_values() {
            if t.min.is_none() {
                return Err(corrupt("a day's rollup holds events that none of its hours do"));
            }
            partials.add(key, &t);
        }
    }
    partials.finish(q)
}

/// The least and greatest amount in the hour rollups of each of `spans`
/// (across clients), per span start and series: the minimum and maximum of
/// borrowed days' kept parts.
fn extremes(q: &Query, spans: &[Span]) -> Sql {
    let mut sql = Sql::default();
    sql.push(&format!("SELECT w.column1, {}, r.lo, r.hi FROM ", series_cols(q, "r")));
    Ranges::Many(spans).table(&mut sql);
    sql.push(&format!("rollups r WHERE {}", level_is("r.level", Bucket::Hour)));
    if let Some(m) = &q.metric {
        sql.bind(" AND r.metric = ", Param::text(m));
    }
    Ranges::Many(spans).bound(&mut sql, "r.bucket");
    sql
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

const NO_BUCKET: &str = "CAST(NULL AS BIGINT)";
const ROW_STATS: &str = "r.n, r.total, r.lo, r.hi, r.n_lo, r.n_hi";

/// The events of `span`, which lies inside the hour starting at `hour`:
/// one seek into events_by_hour to the hour and metric (and client, when
/// both are given).
fn edge(q: &Query, hour: Option<i64>, span: Span) -> Piece {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {NO_BUCKET}, {}, e.amount FROM events e WHERE 1 = 1",
        series_cols(q, "e")
    ));
    if let Some(h) = hour {
        sql.bind(" AND e.ts_hour = ", Param::Int(h));
    }
    if let Some(c) = &q.client_id {
        sql.bind(" AND e.client_id = ", Param::text(c));
    }
    if let Some(m) = &q.metric {
        sql.bind(" AND e.metric = ", Param::text(m));
    }
    if let Some(s) = span.start {
        sql.bind(" AND e.ts >= ", Param::Int(s));
    }
    if let Some(e) = span.end {
        sql.bind(" AND e.ts < ", Param::Int(e));
    }
    // Inside one hour, so inside one bucket of any grouping.
    events_piece(
        sql,
        match (hour, q.bucket, span.start) {
            (Some(_), Some(b), Some(s)) => BucketOf::Fixed(Some(b.floor(s))),
            (_, None, _) => BucketOf::Fixed(None),
            _ => unreachable!("an events piece inside one hour is bounded"),
        },
        vec![span],
    )
}

/// The events of `parts`, each `[hour, start, end)` inside the hour
/// starting at `hour`: one seek into events_by_hour per part, to its hour
/// and metric, each row with its time for its local bucket.
fn local_edges(q: &Query, parts: &[[i64; 3]]) -> Piece {
    let mut sql = Sql::default();
    sql.push(&format!("SELECT e.ts, {}, e.amount FROM ", series_cols(q, "e")));
    values(&mut sql, parts);
    sql.push("events e WHERE e.ts_hour = w.column1 AND e.ts >= w.column2 AND e.ts < w.column3");
    if let Some(c) = &q.client_id {
        sql.bind(" AND e.client_id = ", Param::text(c));
    }
    if let Some(m) = &q.metric {
        sql.bind(" AND e.metric = ", Param::text(m));
    }
    let spans = parts
        .iter()
        .map(|&[_, start, end]| Span {
            start: Some(start),
            end: Some(end),
        })
        .collect();
    events_piece(sql, BucketOf::Local, spans)
}

/// The columns read from rollup rows `r` (of `rollups` or `client_days`),
/// and how they fold. The rows, few by design (one per bucket and metric,
/// or client), stream out of the primary key and are folded in Rust.
fn rollup_select(q: &Query) -> (String, BucketOf) {
    let bucket = if q.bucket.is_some() { "r.bucket" } else { NO_BUCKET };
    (
        format!("{bucket}, {}, {ROW_STATS}", series_cols(q, "r")),
        BucketOf::Floor(q.bucket),
    )
}

/// `column = level`, the level written as a literal: SQLite uses an index
/// whose WHERE names a level (the hours by metric) only where the query
/// writes that level, not where it binds it.
fn level_is(column: &str, level: Bucket) -> String {
    format!("{column} = {}", level_code(level))
}

/// Whole buckets of `level` across clients, from `rollups`.
fn across(q: &Query, level: Bucket, ranges: Ranges<'_>) -> Piece {
    let mut sql = Sql::default();
    let (select, fold) = rollup_select(q);
    sql.push(&format!("SELECT {select} FROM "));
    ranges.table(&mut sql);
    sql.push(&format!("rollups r WHERE {}", level_is("r.level", level)));
    if let Some(m) = &q.metric {
        sql.bind(" AND r.metric = ", Param::text(m));
    }
    ranges.bound(&mut sql, "r.bucket");
    piece(sql, fold, Rows::Rollups)
}

/// ` FROM` the across-client rollups `a` of `level` in `ranges` that have
/// events of the query's metric (of each metric when none is given),
/// `CROSS JOIN` `then`, ` WHERE` their conditions: the buckets worth a seek
/// for one client, in the order SQLite must loop (CROSS JOIN fixes it; a
/// plain join to PostgreSQL).
fn drive(sql: &mut Sql, q: &Query, level: Bucket, ranges: Ranges<'_>, then: &str) {
    sql.push(" FROM ");
    ranges.table(sql);
    match &q.metric {
        Some(m) => {
            sql.push(&format!(
                "rollups a CROSS JOIN {then} WHERE {}",
                level_is("a.level", level)
            ))
            .bind(" AND a.metric = ", Param::text(m));
        }
        None => {
            // The metrics: one month row each at least, read from the key.
            sql.push(&format!(
                "(SELECT DISTINCT metric FROM rollups WHERE {}) m CROSS JOIN rollups a CROSS JOIN {then} WHERE {} \
                 AND a.metric = m.metric",
                level_is("level", Bucket::Month),
                level_is("a.level", level)
            ));
        }
    }
    ranges.bound(sql, "a.bucket");
}

/// Whole hours of `span` for one client (or grouped by client), from the
/// events through events_by_hour: for one client one seek per hour that the
/// across-client rollups say has events of the metric; for every client a
/// range (every event of the range is read anyway).
fn client_hours(q: &Query, ranges: Ranges<'_>) -> Piece {
    let spans = match ranges {
        Ranges::One(span) => vec![span],
        Ranges::Many(spans) => spans.to_vec(),
    };
    let mut sql = Sql::default();
    // Grouped by a time bucket: one row per hour, floored to the query's
    // bucket in Rust (a cut day's hours may span two days).
    let fold = BucketOf::Floor(q.bucket);
    match &q.client_id {
        Some(c) => {
            let bucket = if q.bucket.is_some() { "a.bucket" } else { NO_BUCKET };
            sql.push(&format!("SELECT {bucket}, {}, e.amount", series_cols(q, "e")));
            drive(&mut sql, q, Bucket::Hour, ranges, "events e");
            sql.push(" AND e.ts_hour = a.bucket")
                .push(" AND e.metric = a.metric")
                .bind(" AND e.client_id = ", Param::text(c));
        }
        None => {
            let bucket = if q.bucket.is_some() { "e.ts_hour" } else { NO_BUCKET };
            sql.push(&format!("SELECT {bucket}, {}, e.amount FROM ", series_cols(q, "e")));
            ranges.table(&mut sql);
            sql.push("events e WHERE 1 = 1");
            ranges.bound(&mut sql, "e.ts_hour");
            if let Some(m) = &q.metric {
                sql.bind(" AND e.metric = ", Param::text(m));
            }
        }
    }
    events_piece(sql, fold, spans)
}

/// Whole days of `span` for one client (or grouped by client), from
/// client_days.
fn client_days(q: &Query, ranges: Ranges<'_>) -> Piece {
    let mut sql = Sql::default();
    let (select, fold) = rollup_select(q);
    sql.push(&format!("SELECT {select}"));
    match &q.client_id {
        Some(c) => {
            drive(&mut sql, q, Bucket::Day, ranges, "client_days r");
            sql.push(" AND r.bucket = a.bucket")
                .bind(" AND r.client_id = ", Param::text(c))
                .push(" AND r.metric = a.metric");
        }
        None => {
            sql.push(" FROM ");
            ranges.table(&mut sql);
            sql.push("client_days r WHERE 1 = 1");
            ranges.bound(&mut sql, "r.bucket");
            if let Some(m) = &q.metric {
                sql.bind(" AND r.metric = ", Param::text(m));
            }
        }
    }
    piece(sql, fold, Rows::Rollups)
}

impl Piece {
    /// The group and totals of one row of this piece; `local`: the
    /// query's local buckets, when it has a zone.
    fn read(&self, row: &dyn Row, local: Option<&LocalBuckets>) -> Result<(GroupKey, Totals)> {
        let bucket = match self.fold {
            BucketOf::Floor(None) => None,
            BucketOf::Floor(Some(b)) => Some(b.floor(row_bucket(row)?)),
            BucketOf::Fixed(b) => b,
            BucketOf::Local => {
                let local = local.ok_or_else(|| corrupt("a local piece without its buckets"))?;
                Some(local.start_of(row_bucket(row)?))
            }
        };
        let key = GroupKey {
            bucket: bucket.map(stored_time).transpose()?,
            bucket_local: None,
            client_id: row.opt_text(1)?,
            metric: row.opt_text(2)?,
        };
        let totals = match self.rows {
            Rows::Events => {
                let mut t = Totals::default();
                t.add(row.real(3)?);
                t
            }
            Rows::Rollups => {
                let count = |i| u64::try_from(row.int(i)?).map_err(|_| corrupt("a negative count"));
                Totals {
                    count: count(3)?,
                    sum: row.exact(4)?,
                    min: Some(row.real(5)?),
                    max: Some(row.real(6)?),
                    min_times: count(7)?,
                    max_times: count(8)?,
                }
            }
        };
        Ok((key, totals))
    }
}

/// Answer `q` (its metric already cased) from `db`, which should read one
/// snapshot. Rows of one group usually come one after another (an edge
/// hour's events, ungrouped or of one bucket): they are added up before
/// the group is looked up.
pub(crate) fn aggregate(db: &mut dyn Db, q: &Query) -> Result<Aggregate> {
    if let (Some(tz), Some(bucket)) = (q.tz, q.bucket) {
        return match local_plan(db, q, tz, bucket)? {
            Some(plan) => local_aggregate(db, q, plan),
            None => Partials::default().finish(q),
        };
    }
    if let Some(peeled) = peeled(q) {
        if let Some(answer) = peeled_aggregate(db, q, &peeled)? {
            return Ok(answer);
        }
    }
    let mut partials = Partials::default();
    let pieces = pieces(q);
    check_not_pruned(db, q, &pieces)?;
    run_pieces(db, &pieces, None, &mut partials, &mut |_, _, _, _| Ok(true))?;
    partials.finish(q)
}

/// A query for one client (or by client) whose range cuts a UTC day reads
/// that day's part one index seek per hour (there are no hour rollups per
/// client). Where the part of the day outside the range has fewer hours,
/// the range is widened to the whole day, read as one `client_days` row,
/// and the outside part is read to be taken out again: count and sum
/// exactly, minimum and maximum where the outside part cannot have held
/// them (each rollup row counts its ties, aggregate.rs). A range starting
/// at 03:30 reads four hours where it read twenty-one.
#[derive(Debug)]
struct Peeled {
    /// The pieces of the widened range.
    widened: Vec<Piece>,
    /// The pieces of what the widened range adds, to take out.
    outside: Vec<Piece>,
}

/// The hours `span` (bounded) touches: the seeks that read it for a client.
fn hours_touched(span: Span) -> i64 {
    match (span.start, span.end) {
        (Some(s), Some(e)) => (Bucket::Hour.ceil(e) - Bucket::Hour.floor(s)) / HOUR_MS,
        _ => i64::MAX,
    }
}

/// `q` planned with its cut days widened where that reads fewer hours;
/// `None` where nothing is gained, or the query groups by hour (a day's
/// row cannot be split into its hours' groups).
fn peeled(q: &Query) -> Option<Peeled> {
    if !per_client(q) || q.bucket == Some(Bucket::Hour) {
        return None;
    }
    let (start, end) = (q.start.map(Timestamp::millis), q.end.map(Timestamp::millis));
    // Worth it when the outside part and the day's row take fewer seeks
    // than the inside part.
    let cheaper = |outside: Span, inside: Span| hours_touched(outside) + 1 < hours_touched(inside);
    let span = |start: i64, end: i64| Span {
        start: Some(start),
        end: Some(end),
    };
    let (mut from, mut to) = (start, end);
    let mut outside = Vec::new();
    if let Some(s) = start {
        let day = Bucket::Day.floor(s);
        let next = day + DAY_MS;
        if day < s && end.is_none_or(|e| next <= e) && cheaper(span(day, s), span(s, next)) {
            from = Some(day);
            outside.push(span(day, s));
        }
    }
    if let Some(e) = end {
        let day = Bucket::Day.floor(e);
        let next = day + DAY_MS;
        if day < e && start.is_none_or(|s| s <= day) && cheaper(span(e, next), span(day, e)) {
            to = Some(next);
            outside.push(span(e, next));
        }
    }
    if outside.is_empty() {
        return None;
    }
    // `None` where a widened bound is no timestamp (beyond the range of times).
    let bound = |ms: Option<i64>| ms.map_or(Some(None), |ms| Timestamp::from_millis(ms).map(Some));
    let within = |span: Span| -> Option<Query> {
        Some(Query {
            start: bound(span.start)?,
            end: bound(span.end)?,
            ..q.clone()
        })
    };
    let widened = pieces(&within(Span { start: from, end: to })?);
    let mut parts = Vec::new();
    for o in outside {
        parts.extend(pieces(&within(o)?));
    }
    Some(Peeled {
        widened,
        outside: parts,
    })
}

/// `q` answered from `peeled`; `None` where the outside part may have held
/// a group's minimum or maximum, or a prune removed events it reads: then
/// the plain pieces answer (in the same snapshot).
fn peeled_aggregate(db: &mut dyn Db, q: &Query, peeled: &Peeled) -> Result<Option<Aggregate>> {
    let every = peeled.widened.iter().chain(&peeled.outside);
    if pruned_read(db, q, every)?.is_some() {
        return Ok(None);
    }
    let mut whole = Partials::default();
    run_pieces(db, &peeled.widened, None, &mut whole, &mut |_, _, _, _| Ok(true))?;
    let mut outside = Partials::default();
    run_pieces(db, &peeled.outside, None, &mut outside, &mut |_, _, _, _| Ok(true))?;
    match whole.without(outside)? {
        Some(rest) => rest.finish(q).map(Some),
        None => Ok(None),
    }
}

/// What [`run_pieces`] shows each row before it is added: its piece, the
/// row, its group and totals; `false` keeps it out of the groups.
type Tap<'a> = dyn FnMut(&Piece, &dyn Row, &GroupKey, &Totals) -> Result<bool> + 'a;

/// Run `pieces` and add their rows to `partials`, as `tap` lets them.
fn run_pieces(
    db: &mut dyn Db,
    pieces: &[Piece],
    local: Option<&LocalBuckets>,
    partials: &mut Partials,
    tap: &mut Tap<'_>,
) -> Result<()> {
    let mut run: Option<(GroupKey, Totals)> = None;
    for piece in pieces {
        db.query(&piece.sql, &args(&piece.args), &mut |r| {
            let (key, totals) = piece.read(r, local)?;
            if !tap(piece, r, &key, &totals)? {
                return Ok(());
            }
            match &mut run {
                Some((k, t)) if *k == key => t.merge(&totals),
                _ => {
                    if let Some((k, t)) = run.replace((key, totals)) {
                        partials.add(k, &t);
                    }
                }
            }
            Ok(())
        })?;
    }
    if let Some((k, t)) = run {
        partials.add(k, &t);
    }
    Ok(())
}

/// Refuse `q` when one of its pieces must read events a prune removed:
/// where the rollups say the hours it reads held events before the
/// horizon, the answer is no longer known exactly. Where they held none,
/// nothing was removed there and the answer stands.
fn check_not_pruned(db: &mut dyn Db, q: &Query, pieces: &[Piece]) -> Result<()> {
    let Some((horizon, span)) = pruned_read(db, q, pieces)? else {
        return Ok(());
    };
    let at = |ms: Option<i64>, open: &str| {
        ms.and_then(Timestamp::from_millis)
            .map_or(open.to_string(), |t| t.to_string())
    };
    let unit = if q.client_id.is_some() || q.by_client {
        "days"
    } else {
        "hours"
    };
    Err(Error::arg(format!(
        "events before {} were pruned, and this query needs some of them: it reads events from {} to {}, which the rollups cannot answer on their own; \
         start and end the range on whole {unit} (UTC) there, or query after {0}{}",
        at(Some(horizon), ""),
        at(span.start, "the first"),
        at(span.end, "the last"),
        if q.by_client && q.bucket == Some(Bucket::Hour) {
            " (hours per client are read from the events themselves: group by day there)"
        } else {
            ""
        },
    )))
}

/// The prune horizon and the first span of events that `pieces` read
/// where a prune removed some; `None` where they read none removed.
fn pruned_read<'a>(
    db: &mut dyn Db,
    q: &Query,
    pieces: impl IntoIterator<Item = &'a Piece>,
) -> Result<Option<(i64, Span)>> {
    let reads: Vec<Span> = pieces.into_iter().flat_map(|p| p.events.iter().copied()).collect();
    if reads.is_empty() {
        return Ok(None);
    }
    let Some(horizon) = query_opt(db, "SELECT pruned_before FROM lifecycle WHERE id = 1", &[], |r| {
        r.opt_int(0)
    })?
    .flatten() else {
        return Ok(None);
    };
    for span in reads {
        if span.start.is_some_and(|s| s >= horizon) {
            continue;
        }
        // The hours of the part before the horizon, whole.
        let gone = Span {
            start: span.start.map(|s| Bucket::Hour.floor(s)),
            end: Some(Bucket::Hour.ceil(span.end.map_or(horizon, |e| e.min(horizon)))),
        };
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT COUNT(*) FROM rollups r WHERE {}",
            level_is("r.level", Bucket::Hour)
        ));
        if let Some(m) = &q.metric {
            sql.bind(" AND r.metric = ", Param::text(m));
        }
        Ranges::One(gone).bound(&mut sql, "r.bucket");
        let held = query_opt(db, &sql.text, &args(&sql.args), |r| r.int(0))?.unwrap_or(0);
        if held > 0 {
            return Ok(Some((horizon, span)));
        }
    }
    Ok(None)
}

/// The bucket column of a row that must have one.
fn row_bucket(row: &dyn Row) -> Result<i64> {
    row.opt_int(0)?.ok_or_else(|| corrupt("a row without its bucket"))
}

fn corrupt(what: &str) -> Error {
    Error::storage(StorageKind::Corrupt, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::DAY_MS;

    #[test]
    fn a_client_query_reads_the_shorter_side_of_each_cut_day() {
        const HOUR: i64 = HOUR_MS;
        let day = 20_000 * DAY_MS;
        let query = |start: i64, end: i64, bucket: Option<Bucket>, client: bool| Query {
            client_id: client.then(|| "c".into()),
            metric: Some("m".into()),
            start: Timestamp::from_millis(start),
            end: Timestamp::from_millis(end),
            bucket,
            ..Query::default()
        };
        let outside = |p: &Peeled| -> Vec<Span> { p.outside.iter().flat_map(|p| p.events.clone()).collect() };
        let span = |s: i64, e: i64| Span {
            start: Some(s),
            end: Some(e),
        };
        // 03:30 to 20:30, 30 days later: both cut days are read from their
        // shorter sides, outside the range.
        let (s, e) = (day + 3 * HOUR + HOUR / 2, day + 30 * DAY_MS + 20 * HOUR + HOUR / 2);
        for bucket in [None, Some(Bucket::Day), Some(Bucket::Month)] {
            let p = peeled(&query(s, e, bucket, true)).expect("both edges peeled");
            assert_eq!(
                outside(&p),
                vec![
                    span(day + 3 * HOUR, s),
                    span(day, day + 3 * HOUR),
                    span(e, day + 30 * DAY_MS + 21 * HOUR),
                    span(day + 30 * DAY_MS + 21 * HOUR, day + 31 * DAY_MS),
                ]
            );
            let widened: Vec<Span> = p.widened.iter().flat_map(|p| p.events.clone()).collect();
            assert!(widened.is_empty(), "whole days read no events: {widened:?}");
        }
        // 20:30 to 03:30: the inside parts are the shorter.
        let (s, e) = (day + 20 * HOUR + HOUR / 2, day + 30 * DAY_MS + 3 * HOUR + HOUR / 2);
        assert!(peeled(&query(s, e, None, true)).is_none());
        // One side only.
        let p = peeled(&query(day + 3 * HOUR, day + 30 * DAY_MS + 2 * HOUR, None, true)).unwrap();
        assert_eq!(outside(&p), vec![span(day, day + 3 * HOUR)]);
        // Not by hour, not across clients, not inside one day.
        assert!(peeled(&query(day + HOUR, day + 30 * DAY_MS, Some(Bucket::Hour), true)).is_none());
        assert!(peeled(&query(day + HOUR, day + 30 * DAY_MS, None, false)).is_none());
        assert!(peeled(&query(day + HOUR, day + 23 * HOUR, None, true)).is_none());
        let grouped = Query {
            client_id: None,
            by_client: true,
            ..query(day + HOUR, day + 30 * DAY_MS, None, false)
        };
        assert!(peeled(&grouped).is_some(), "grouped by client reads per client too");
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
                    tz: None,
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
