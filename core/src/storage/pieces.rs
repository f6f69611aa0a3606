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

use super::db::{args, query_opt, Db, Param, Row, Sql};
use super::listing::stored_time;
use super::rollup::level_code;
use crate::aggregate::{plan, Aggregate, Bucket, GroupKey, Partials, Source, Span, Totals, HOUR_MS};
use crate::error::{Error, Result, StorageKind};
use crate::options::Query;
use crate::timestamp::Timestamp;

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
    /// For a piece that reads events, the time it reads them in: a prune
    /// may have removed them.
    events: Option<Span>,
}

/// What a piece's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// One event each: its amount.
    Events,
    /// One rollup row each: n, total (exact), lo, hi.
    Rollups,
}

fn piece(sql: Sql, fold: BucketOf, rows: Rows) -> Piece {
    Piece {
        sql: sql.text,
        args: sql.args,
        fold,
        rows,
        events: None,
    }
}

/// A piece that reads the events of `span`.
fn events_piece(sql: Sql, fold: BucketOf, span: Span) -> Piece {
    Piece {
        events: Some(span),
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
const ROW_STATS: &str = "r.n, r.total, r.lo, r.hi";

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
        span,
    )
}

/// `and <alias>.bucket >= $s and <alias>.bucket < $e` for the bounds of `span`.
fn bucket_range(sql: &mut Sql, alias: &str, span: Span) {
    if let Some(s) = span.start {
        sql.bind(&format!(" AND {alias}.bucket >= "), Param::Int(s));
    }
    if let Some(e) = span.end {
        sql.bind(&format!(" AND {alias}.bucket < "), Param::Int(e));
    }
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

/// Whole buckets of `level` across clients, from `rollups`.
fn across(q: &Query, level: Bucket, span: Span) -> Piece {
    let mut sql = Sql::default();
    let (select, fold) = rollup_select(q);
    sql.push(&format!("SELECT {select} FROM rollups r WHERE "))
        .bind("r.level = ", Param::Int(level_code(level)));
    if let Some(m) = &q.metric {
        sql.bind(" AND r.metric = ", Param::text(m));
    }
    bucket_range(&mut sql, "r", span);
    piece(sql, fold, Rows::Rollups)
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
                .bind("a.level = ", Param::Int(level_code(level)))
                .bind(" AND a.metric = ", Param::text(m));
        }
        None => {
            // The metrics: one month row each at least, read from the key.
            sql.bind(
                " FROM (SELECT DISTINCT metric FROM rollups WHERE level = ",
                Param::Int(level_code(Bucket::Month)),
            )
            .push(&format!(") m CROSS JOIN rollups a CROSS JOIN {then} WHERE "))
            .bind("a.level = ", Param::Int(level_code(level)))
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
            sql.push(&format!("SELECT {bucket}, {}, e.amount", series_cols(q, "e")));
            drive(&mut sql, q, Bucket::Hour, span, "events e");
            sql.push(" AND e.ts_hour = a.bucket")
                .push(" AND e.metric = a.metric")
                .bind(" AND e.client_id = ", Param::text(c));
        }
        None => {
            let bucket = if q.bucket.is_some() { "e.ts_hour" } else { NO_BUCKET };
            sql.push(&format!(
                "SELECT {bucket}, {}, e.amount FROM events e WHERE 1 = 1",
                series_cols(q, "e")
            ));
            if let Some(s) = span.start {
                sql.bind(" AND e.ts_hour >= ", Param::Int(s));
            }
            if let Some(e) = span.end {
                sql.bind(" AND e.ts_hour < ", Param::Int(e));
            }
            if let Some(m) = &q.metric {
                sql.bind(" AND e.metric = ", Param::text(m));
            }
        }
    }
    events_piece(sql, fold, span)
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
                .bind(" AND r.client_id = ", Param::text(c))
                .push(" AND r.metric = a.metric");
        }
        None => {
            sql.push(" FROM client_days r WHERE 1 = 1");
            bucket_range(&mut sql, "r", span);
            if let Some(m) = &q.metric {
                sql.bind(" AND r.metric = ", Param::text(m));
            }
        }
    }
    piece(sql, fold, Rows::Rollups)
}

impl Piece {
    /// The group and totals of one row of this piece.
    fn read(&self, row: &dyn Row) -> Result<(GroupKey, Totals)> {
        let bucket = match self.fold {
            BucketOf::Floor(None) => None,
            BucketOf::Floor(Some(b)) => {
                Some(b.floor(row.opt_int(0)?.ok_or_else(|| corrupt("a row without its bucket"))?))
            }
            BucketOf::Fixed(b) => b,
        };
        let key = GroupKey {
            bucket: bucket.map(stored_time).transpose()?,
            client_id: row.opt_text(1)?,
            metric: row.opt_text(2)?,
        };
        let totals = match self.rows {
            Rows::Events => {
                let mut t = Totals::default();
                t.add(row.real(3)?);
                t
            }
            Rows::Rollups => Totals {
                count: u64::try_from(row.int(3)?).map_err(|_| corrupt("a negative count"))?,
                sum: row.exact(4)?,
                min: Some(row.real(5)?),
                max: Some(row.real(6)?),
            },
        };
        Ok((key, totals))
    }
}

/// Answer `q` (its metric already cased) from `db`, which should read one
/// snapshot. Rows of one group usually come one after another (an edge
/// hour's events, ungrouped or of one bucket): they are added up before
/// the group is looked up.
pub(crate) fn aggregate(db: &mut dyn Db, q: &Query) -> Result<Aggregate> {
    let pieces = pieces(q);
    check_not_pruned(db, q, &pieces)?;
    let mut partials = Partials::default();
    let mut run: Option<(GroupKey, Totals)> = None;
    for piece in pieces {
        db.query(&piece.sql, &args(&piece.args), &mut |r| {
            let (key, totals) = piece.read(r)?;
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
    partials.finish(q)
}

/// Refuse `q` when one of its pieces must read events a prune removed:
/// where the rollups say the hours it reads held events before the
/// horizon, the answer is no longer known exactly. Where they held none,
/// nothing was removed there and the answer stands.
fn check_not_pruned(db: &mut dyn Db, q: &Query, pieces: &[Piece]) -> Result<()> {
    let reads: Vec<Span> = pieces.iter().filter_map(|p| p.events).collect();
    if reads.is_empty() {
        return Ok(());
    }
    let Some(horizon) = query_opt(db, "SELECT pruned_before FROM lifecycle WHERE id = 1", &[], |r| {
        r.opt_int(0)
    })?
    .flatten() else {
        return Ok(());
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
        sql.bind(
            "SELECT COUNT(*) FROM rollups r WHERE r.level = ",
            Param::Int(level_code(Bucket::Hour)),
        );
        if let Some(m) = &q.metric {
            sql.bind(" AND r.metric = ", Param::text(m));
        }
        bucket_range(&mut sql, "r", gone);
        let held = query_opt(db, &sql.text, &args(&sql.args), |r| r.int(0))?.unwrap_or(0);
        if held > 0 {
            let at = |ms: Option<i64>, open: &str| {
                ms.and_then(Timestamp::from_millis)
                    .map_or(open.to_string(), |t| t.to_string())
            };
            let unit = if q.client_id.is_some() || q.by_client {
                "days"
            } else {
                "hours"
            };
            return Err(Error::arg(format!(
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
            )));
        }
    }
    Ok(())
}

fn corrupt(what: &str) -> Error {
    Error::storage(StorageKind::Corrupt, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::DAY_MS;

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
