//! Aggregate queries: what can be asked, how a time range is split between
//! rollups and events, and how partial results combine.
//!
//! A range `[start, end)` is answered from whole hour buckets of the rollups
//! plus the events of the cut buckets at its two edges, so the answer equals
//! a full scan to the last event while costing the number of buckets.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime};

use serde::ser::SerializeMap;
use serde::Serialize;

use crate::error::Result;
use crate::exact::ExactSum;
use crate::options::Query;
use crate::timestamp::Timestamp;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// A time bucket to group by. Buckets are UTC unless the query names a
/// time zone ([`Query::tz`]); then they are that zone's local hours, days
/// and months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// One clock hour, from `:00:00.000`.
    Hour,
    /// One calendar day, from midnight UTC.
    Day,
    /// One calendar month, from midnight UTC on its first day.
    Month,
}

impl Bucket {
    /// `"hour"`, `"day"` or `"month"`: the name `group_by` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Month => "month",
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// count, sum, avg, min and max of a set of amounts. `sum` is the exact
/// sum of the amounts rounded once to the nearest f64 (ties to even), and
/// `avg` that exact sum divided by the count, rounded once: the same from
/// any grouping, any order of arrival and either backend.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// How many events.
    pub count: u64,
    /// The exact sum of their amounts, rounded once; `0.0` when there are none.
    pub sum: f64,
    /// The smallest amount; `None` when there are no events.
    pub min: Option<f64>,
    /// The largest amount; `None` when there are no events.
    pub max: Option<f64>,
    avg: Option<f64>,
}

impl Stats {
    /// The exact sum divided by the count, rounded once; `None` when there
    /// are no events.
    pub fn avg(&self) -> Option<f64> {
        self.avg
    }

    fn write_fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("count", &self.count)?;
        m.serialize_entry("sum", &self.sum)?;
        m.serialize_entry("avg", &self.avg)?;
        m.serialize_entry("min", &self.min)?;
        m.serialize_entry("max", &self.max)
    }
}

/// count, exact sum, min and max of a set of amounts: what a rollup row
/// keeps and partial results add up, before the answer rounds them.
///
/// With the min and max, how many of the amounts equal each (0: not
/// known, as in rollup rows written before they were counted). They let a
/// part be taken out and the rest's min and max still be known where the
/// part held some of them but not all: amounts that repeat (counts,
/// prices) tie at the extremes nearly always.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Totals {
    pub count: u64,
    pub sum: ExactSum,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub min_times: u64,
    pub max_times: u64,
}

/// The extreme of two sets of amounts (`value`, how many times it occurs,
/// 0 for not known) by `beyond` (the lesser for a minimum): ties add up
/// their counts, where both are known.
fn extreme(a: (Option<f64>, u64), b: (Option<f64>, u64), beyond: fn(f64, f64) -> bool) -> (Option<f64>, u64) {
    match (a.0, b.0) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) if beyond(x, y) => a,
        (Some(x), Some(y)) if beyond(y, x) => b,
        (Some(_), Some(_)) => (a.0, if a.1 > 0 && b.1 > 0 { a.1 + b.1 } else { 0 }),
    }
}

/// The extreme of what is left of a set once a part is taken out: the
/// set's (value, times) less the part's, where the part cannot have held
/// all of it; `None` where it may have (then the rest's must be read).
fn extreme_left(
    all: (Option<f64>, u64),
    part: (Option<f64>, u64),
    beyond: fn(f64, f64) -> bool,
) -> Option<(Option<f64>, u64)> {
    match (all.0, part.0) {
        (_, None) => Some(all),
        (Some(a), Some(p)) if beyond(a, p) => Some(all),
        (Some(a), Some(p)) if a == p && part.1 > 0 && all.1 > part.1 => Some((all.0, all.1 - part.1)),
        _ => None,
    }
}

fn less(a: f64, b: f64) -> bool {
    a < b
}

fn greater(a: f64, b: f64) -> bool {
    a > b
}

/// What is left of a [`Totals`] once a part of it is taken out
/// ([`Totals::without`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rest {
    /// The count and exact sum left; the min and max too where known.
    pub totals: Totals,
    /// False when the part may have held the minimum or maximum: then the
    /// rest's are unknown (and not in `totals`), and must be read.
    pub extremes_known: bool,
}

impl Totals {
    pub(crate) fn add(&mut self, amount: f64) {
        self.merge(&Totals::of(amount));
    }

    /// One amount.
    fn of(amount: f64) -> Totals {
        Totals {
            count: 1,
            sum: ExactSum::of(amount),
            min: Some(amount),
            max: Some(amount),
            min_times: 1,
            max_times: 1,
        }
    }

    pub(crate) fn merge(&mut self, other: &Totals) {
        self.count += other.count;
        self.sum.add(&other.sum);
        (self.min, self.min_times) = extreme((self.min, self.min_times), (other.min, other.min_times), less);
        (self.max, self.max_times) = extreme((self.max, self.max_times), (other.max, other.max_times), greater);
    }

    /// What is left of `self` once `part`, some of its amounts, is taken
    /// out: count and exact sum always; min and max only where `part`
    /// cannot have held them (see [`Rest::extremes_known`]). `None` when
    /// `part` is not part of `self`.
    pub(crate) fn without(&self, part: &Totals) -> Option<Rest> {
        let count = self.count.checked_sub(part.count)?;
        if count == 0 {
            return Some(Rest {
                totals: Totals::default(),
                extremes_known: true,
            });
        }
        let mut sum = self.sum.clone();
        sum.add(&part.sum.neg());
        let min = extreme_left((self.min, self.min_times), (part.min, part.min_times), less);
        let max = extreme_left((self.max, self.max_times), (part.max, part.max_times), greater);
        let ((min, min_times), (max, max_times)) = (min.unwrap_or_default(), max.unwrap_or_default());
        Some(Rest {
            extremes_known: min.is_some() && max.is_some(),
            totals: Totals {
                count,
                sum,
                min,
                max,
                min_times,
                max_times,
            },
        })
    }

    /// The answer, its sum and average each rounded once. An exact sum
    /// beyond the f64 range (reachable only through amounts stored before
    /// amounts were bounded) is an error, never an infinite or wrong sum.
    pub(crate) fn stats(&self) -> crate::error::Result<Stats> {
        let beyond = || {
            crate::error::Error::storage(
                crate::error::StorageKind::Other,
                "the exact sum of these events is beyond the range of a 64-bit float; \
                 query a narrower range or fewer clients",
            )
        };
        Ok(Stats {
            count: self.count,
            sum: self.sum.to_f64().ok_or_else(beyond)?,
            avg: match self.count {
                0 => None,
                n => Some(self.sum.div_to_f64(n).ok_or_else(beyond)?),
            },
            min: self.min,
            max: self.max,
        })
    }
}

/// The key of one group: the bucket start, and the client and metric when
/// grouped by them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupKey {
    /// The start of the group's time bucket (UTC); `None` unless the query
    /// groups by hour, day or month.
    pub bucket: Option<Timestamp>,
    /// The same start as local time in the query's zone, with the zone's
    /// offset at that instant (`2024-03-31T00:00:00+01:00`); `None` unless
    /// the query groups by a time bucket in a zone ([`Query::tz`]). Where
    /// the clocks jumped over the bucket's label (a local midnight that
    /// does not exist), the local time just after the jump.
    pub bucket_local: Option<DateTime<FixedOffset>>,
    /// The group's client; `None` unless the query groups by client.
    pub client_id: Option<String>,
    /// The group's metric; `None` unless the query groups by metric.
    pub metric: Option<String>,
}

/// One group of a grouped aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Which bucket, client and metric the group is.
    pub key: GroupKey,
    /// The statistics of the group's events.
    pub stats: Stats,
}

impl Serialize for Group {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(b) = &self.key.bucket {
            m.serialize_entry("bucket", b)?;
        }
        if let Some(l) = &self.key.bucket_local {
            m.serialize_entry("bucket_local", &crate::timestamp::local_text(l))?;
        }
        if let Some(c) = &self.key.client_id {
            m.serialize_entry("client_id", c)?;
        }
        if let Some(x) = &self.key.metric {
            m.serialize_entry("metric", x)?;
        }
        self.stats.write_fields(&mut m)?;
        m.end()
    }
}

/// The answer to a [`Query`]: totals, the groups when grouped, and whether it
/// came from the cache because the database could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The statistics of every event the query matches, over all groups.
    pub totals: Stats,
    /// `Some` (possibly empty) when the query groups, in key order.
    pub groups: Option<Vec<Group>>,
    /// True when this is the last result computed for the same query,
    /// returned because the database could not be read now.
    pub stale: bool,
    /// When this result was computed; a stale result keeps the time it was
    /// first computed.
    pub computed_at: Timestamp,
}

/// `{"count", "sum", "avg", "min", "max", "stale", "computed_at", "groups"?}`
impl Serialize for Aggregate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.totals.write_fields(&mut m)?;
        m.serialize_entry("stale", &self.stale)?;
        m.serialize_entry("computed_at", &self.computed_at)?;
        if let Some(g) = &self.groups {
            m.serialize_entry("groups", g)?;
        }
        m.end()
    }
}

/// Partial results keyed by group, merged from rollups and edge scans.
#[derive(Debug, Default)]
pub(crate) struct Partials(BTreeMap<GroupKey, Totals>);

impl Partials {
    pub(crate) fn add(&mut self, key: GroupKey, totals: &Totals) {
        self.0.entry(key).or_default().merge(totals);
    }

    /// What is left of each group once `part`, some of its events, is
    /// taken out; `None` where `part` may have held a group's minimum or
    /// maximum (see [`Totals::without`]): then those must be read. A group
    /// left with no events is gone.
    pub(crate) fn without(mut self, part: Partials) -> crate::error::Result<Option<Partials>> {
        let corrupt = || {
            crate::error::Error::storage(
                crate::error::StorageKind::Corrupt,
                "a rollup holds fewer events than the events it summarises",
            )
        };
        for (key, taken) in part.0 {
            let whole = self.0.get_mut(&key).ok_or_else(corrupt)?;
            let rest = whole.without(&taken).ok_or_else(corrupt)?;
            if !rest.extremes_known {
                return Ok(None);
            }
            if rest.totals.count == 0 {
                self.0.remove(&key);
            } else {
                *whole = rest.totals;
            }
        }
        Ok(Some(self))
    }

    pub(crate) fn finish(self, q: &Query) -> crate::error::Result<Aggregate> {
        let mut totals = Totals::default();
        for t in self.0.values() {
            totals.merge(t);
        }
        let groups = if q.is_grouped() {
            Some(
                self.0
                    .into_iter()
                    .map(|(mut key, t)| {
                        if let (Some(tz), Some(b)) = (q.tz, key.bucket) {
                            key.bucket_local = crate::zone::local_start(tz, b.millis());
                        }
                        Ok(Group { key, stats: t.stats()? })
                    })
                    .collect::<crate::error::Result<_>>()?,
            )
        } else {
            None
        };
        Ok(Aggregate {
            totals: totals.stats()?,
            groups,
            stale: false,
            computed_at: Timestamp::now(),
        })
    }
}

/// A half-open millisecond range; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// Where a piece of a range is read from: the events themselves, or the
/// rollups of one bucket level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Events,
    Rollup(Bucket),
}

impl Bucket {
    /// The start of the bucket holding `ms` (UTC).
    pub(crate) fn floor(self, ms: i64) -> i64 {
        match self {
            Bucket::Hour => floor_to(ms, HOUR_MS),
            Bucket::Day => floor_to(ms, DAY_MS),
            Bucket::Month => {
                let dt = DateTime::from_timestamp_millis(ms).unwrap_or_default();
                let first = dt.date_naive().with_day(1).unwrap_or_default();
                first.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
            }
        }
    }

    /// The start of the first bucket at or after `ms`.
    pub(crate) fn ceil(self, ms: i64) -> i64 {
        let f = self.floor(ms);
        if f == ms {
            return ms;
        }
        match self {
            Bucket::Hour => f + HOUR_MS,
            Bucket::Day => f + DAY_MS,
            // 32 days after the start of a month is always in the next one.
            Bucket::Month => self.floor(f + 32 * DAY_MS),
        }
    }

    /// Every level, finest first: the order in which a range is peeled.
    pub(crate) const LEVELS: [Bucket; 3] = [Bucket::Hour, Bucket::Day, Bucket::Month];

    /// The levels, finest first, that a query grouped by `self` may read
    /// (never coarser than its own buckets), among `available`.
    pub(crate) fn usable(group: Option<Bucket>, available: &[Bucket]) -> Vec<Bucket> {
        available
            .iter()
            .copied()
            .filter(|l| group.is_none_or(|g| *l <= g))
            .collect()
    }
}

pub(crate) fn floor_to(ms: i64, width: i64) -> i64 {
    ms - ms.rem_euclid(width)
}

/// Split `[start, end)` into pieces that together cover it exactly once,
/// peeling level by level: with `levels` `[Hour, Day, Month]`, the cut hours
/// at the edges come from the events, the cut days from hour rollups, the
/// cut months from day rollups, and the whole months inside from month
/// rollups. `levels` are the rollup levels that may be read, finest first
/// (a query grouped by day cannot read months; a query for one client reads
/// hours and days, see storage/pieces.rs). The rows read are bounded by the buckets at each edge, not
/// by the length of the range.
pub(crate) fn plan(start: Option<i64>, end: Option<i64>, levels: &[Bucket]) -> Vec<(Source, Span)> {
    let mut pieces = Vec::new();
    if let (Some(s), Some(e)) = (start, end) {
        if s >= e {
            return pieces;
        }
    }
    let (mut s, mut e) = (start, end);
    let mut source = Source::Events;
    for &level in levels {
        // [s, e) is aligned to the finer level already; align it to `level`.
        let inner_s = s.map(|x| level.ceil(x));
        let inner_e = e.map(|x| level.floor(x));
        if let (Some(is), Some(ie)) = (inner_s, inner_e) {
            if is >= ie {
                // No whole bucket of this level inside: read it all here.
                pieces.push((source, Span { start: s, end: e }));
                return pieces;
            }
        }
        if let (Some(a), Some(b)) = (s, inner_s) {
            if a < b {
                pieces.push((source, Span { start: s, end: inner_s }));
            }
        }
        if let (Some(a), Some(b)) = (inner_e, e) {
            if a < b {
                pieces.push((source, Span { start: inner_e, end: e }));
            }
        }
        (s, e) = (inner_s, inner_e);
        source = Source::Rollup(level);
    }
    pieces.push((source, Span { start: s, end: e }));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;
    const D: i64 = DAY_MS;
    /// 2024-01-01T00:00:00Z
    const JAN: i64 = 1_704_067_200_000;
    /// 2024-02-01T00:00:00Z
    const FEB: i64 = JAN + 31 * D;

    fn span(start: Option<i64>, end: Option<i64>) -> Span {
        Span { start, end }
    }

    use Source::{Events, Rollup};

    const ALL: &[Bucket] = &Bucket::LEVELS;

    #[test]
    fn aligned_ranges_need_no_scan() {
        assert_eq!(
            plan(Some(JAN), Some(JAN + 3 * H), ALL),
            vec![(Rollup(Bucket::Hour), span(Some(JAN), Some(JAN + 3 * H)))]
        );
        assert_eq!(plan(None, None, ALL), vec![(Rollup(Bucket::Month), span(None, None))]);
        assert_eq!(
            plan(Some(JAN), Some(FEB), ALL),
            vec![(Rollup(Bucket::Month), span(Some(JAN), Some(FEB)))]
        );
        assert_eq!(
            plan(None, None, &[Bucket::Hour]),
            vec![(Rollup(Bucket::Hour), span(None, None))]
        );
    }

    #[test]
    fn a_range_is_peeled_level_by_level() {
        let s = JAN - D - H - 10; // 2023-12-30T22:59:59.990Z
        let e = FEB + 2 * D + 3 * H + 5;
        assert_eq!(
            plan(Some(s), Some(e), ALL),
            vec![
                (Events, span(Some(s), Some(JAN - D - H))),
                (Events, span(Some(FEB + 2 * D + 3 * H), Some(e))),
                (Rollup(Bucket::Hour), span(Some(JAN - D - H), Some(JAN - D))),
                (Rollup(Bucket::Hour), span(Some(FEB + 2 * D), Some(FEB + 2 * D + 3 * H))),
                (Rollup(Bucket::Day), span(Some(JAN - D), Some(JAN))),
                (Rollup(Bucket::Day), span(Some(FEB), Some(FEB + 2 * D))),
                (Rollup(Bucket::Month), span(Some(JAN), Some(FEB))),
            ]
        );
        // Grouped by day: no month rollups.
        assert_eq!(
            plan(Some(JAN + 5), Some(FEB), &[Bucket::Hour, Bucket::Day]),
            vec![
                (Events, span(Some(JAN + 5), Some(JAN + H))),
                (Rollup(Bucket::Hour), span(Some(JAN + H), Some(JAN + D))),
                (Rollup(Bucket::Day), span(Some(JAN + D), Some(FEB))),
            ]
        );
    }

    #[test]
    fn per_client_ranges_read_days_and_edge_events() {
        assert_eq!(
            plan(Some(JAN + 5), Some(JAN + 3 * D + H), &[Bucket::Day]),
            vec![
                (Events, span(Some(JAN + 5), Some(JAN + D))),
                (Events, span(Some(JAN + 3 * D), Some(JAN + 3 * D + H))),
                (Rollup(Bucket::Day), span(Some(JAN + D), Some(JAN + 3 * D))),
            ]
        );
        assert_eq!(plan(None, None, &[]), vec![(Events, span(None, None))]);
        assert_eq!(Bucket::usable(Some(Bucket::Hour), &[Bucket::Day]), vec![]);
        assert_eq!(Bucket::usable(Some(Bucket::Day), ALL), vec![Bucket::Hour, Bucket::Day]);
        assert_eq!(Bucket::usable(None, ALL), ALL.to_vec());
    }

    #[test]
    fn short_ranges_stop_at_the_finest_level_that_fits() {
        assert_eq!(plan(Some(10), Some(20), ALL), vec![(Events, span(Some(10), Some(20)))]);
        assert_eq!(
            plan(Some(10), Some(H + 20), ALL),
            vec![(Events, span(Some(10), Some(H + 20)))]
        );
        assert_eq!(plan(Some(20), Some(20), ALL), vec![]);
        assert_eq!(
            plan(Some(-10), None, &[Bucket::Hour]),
            vec![
                (Events, span(Some(-10), Some(0))),
                (Rollup(Bucket::Hour), span(Some(0), None))
            ]
        );
    }

    #[test]
    fn buckets_floor_and_ceil_across_the_epoch_and_leap_years() {
        assert_eq!(Bucket::Month.floor(FEB + 28 * D + 5), FEB, "2024-02-29 is in February");
        assert_eq!(Bucket::Month.ceil(FEB + 1), FEB + 29 * D);
        assert_eq!(Bucket::Month.floor(-1), -31 * D, "1969-12-01");
        assert_eq!(Bucket::Day.floor(-1), -D);
        assert_eq!(Bucket::Hour.ceil(-1), 0);
        assert_eq!(Bucket::Month.ceil(JAN), JAN);
    }

    #[test]
    fn query_json_is_strict() {
        assert!(Query::from_json(r#"{"client": "a"}"#)
            .unwrap_err()
            .to_string()
            .contains("\"client\""));
        assert!(Query::from_json(r#"{"start": "tomorrow"}"#).is_err());
        assert!(Query::from_json(r#"{"group_by": ["day", "month"]}"#).is_err());
        assert!(Query::from_json("[]").is_err());
        let q = Query::from_json(r#"{"start": "2024-01-02", "end": "2024-01-01"}"#).unwrap();
        assert!(q.check_range().is_err());
    }

    #[test]
    fn totals_add_exactly_and_round_once() {
        let mut t = Totals::default();
        assert_eq!(t.stats().unwrap().avg(), None);
        t.add(2.0);
        t.add(-1.0);
        let s = t.stats().unwrap();
        assert_eq!(
            (s.count, s.sum, s.min, s.max, s.avg()),
            (2, 1.0, Some(-1.0), Some(2.0), Some(0.5))
        );
        let mut tenths = Totals::default();
        for _ in 0..10 {
            tenths.add(0.1);
        }
        assert_eq!(
            (tenths.stats().unwrap().sum, tenths.stats().unwrap().avg()),
            (1.0, Some(0.1))
        );
        // Taking a part out: exact count and sum; min and max where the
        // part cannot have held them, else unknown.
        let mut all = Totals::default();
        for x in [0.1, 5.0, -2.0, 0.2] {
            all.add(x);
        }
        let mut part = Totals::default();
        part.add(0.1);
        part.add(0.2);
        let rest = all.without(&part).unwrap();
        assert!(rest.extremes_known);
        let rest = rest.totals;
        assert_eq!(
            (rest.count, rest.stats().unwrap().sum, rest.min, rest.max),
            (2, 3.0, Some(-2.0), Some(5.0))
        );
        let mut holds_max = part.clone();
        holds_max.add(5.0);
        let rest = all.without(&holds_max).unwrap();
        assert!(!rest.extremes_known, "the rest's max is unknown");
        assert_eq!((rest.totals.count, rest.totals.stats().unwrap().sum), (1, -2.0));
        let known = |t: Totals| {
            Some(Rest {
                totals: t,
                extremes_known: true,
            })
        };
        // Ties: a part holding some of the extremes leaves the rest's known.
        let mut ties = Totals::default();
        for x in [1.0, 1.0, 5.0, 5.0, 3.0] {
            ties.add(x);
        }
        let mut some = Totals::default();
        some.add(1.0);
        some.add(5.0);
        let rest = ties.without(&some).unwrap();
        assert!(rest.extremes_known);
        assert_eq!(
            (
                rest.totals.min,
                rest.totals.min_times,
                rest.totals.max,
                rest.totals.max_times
            ),
            (Some(1.0), 1, Some(5.0), 1)
        );
        some.add(5.0);
        assert!(!ties.without(&some).unwrap().extremes_known, "every 5 was in the part");
        let mut uncounted = ties.clone();
        uncounted.max_times = 0;
        let mut one_five = Totals::default();
        one_five.add(5.0);
        assert!(
            !uncounted.without(&one_five).unwrap().extremes_known,
            "a count not known is never taken for one"
        );
        let mut merged = uncounted.clone();
        merged.merge(&one_five);
        assert_eq!((merged.max, merged.max_times), (Some(5.0), 0), "unknown stays unknown");
        merged.merge(&Totals::of(6.0));
        assert_eq!(
            (merged.max, merged.max_times),
            (Some(6.0), 1),
            "a new extreme is counted"
        );
        assert_eq!(all.without(&all), known(Totals::default()));
        assert_eq!(all.without(&Totals::default()), known(all.clone()));
        assert_eq!(part.without(&all), None, "not a part");
        let mut huge = Totals::default();
        huge.add(f64::MAX);
        huge.add(f64::MAX);
        assert!(huge.stats().is_err(), "beyond f64: an error, never inf");
    }

    #[test]
    fn partials_without_a_part_keep_what_is_left_or_say_unknown() {
        let key = |bucket: Option<i64>| GroupKey {
            bucket: bucket.and_then(Timestamp::from_millis),
            bucket_local: None,
            client_id: Some("c".into()),
            metric: None,
        };
        let totals = |xs: &[f64]| {
            let mut t = Totals::default();
            xs.iter().for_each(|&x| t.add(x));
            t
        };
        let mut whole = Partials::default();
        whole.add(key(Some(0)), &totals(&[1.0, 4.0, 9.0]));
        whole.add(key(Some(DAY_MS)), &totals(&[2.0, 2.0]));
        let mut part = Partials::default();
        part.add(key(Some(0)), &totals(&[4.0]));
        part.add(key(Some(DAY_MS)), &totals(&[2.0, 2.0]));
        let rest = whole.without(part).unwrap().expect("the part held no extreme alone");
        assert_eq!(rest.0.len(), 1, "a group left empty is gone: {rest:?}");
        let t = &rest.0[&key(Some(0))];
        assert_eq!(
            (t.count, t.stats().unwrap().sum, t.min, t.max),
            (2, 10.0, Some(1.0), Some(9.0))
        );

        let mut whole = Partials::default();
        whole.add(key(None), &totals(&[1.0, 4.0, 9.0]));
        let mut holds_max = Partials::default();
        holds_max.add(key(None), &totals(&[9.0]));
        assert!(whole.without(holds_max).unwrap().is_none(), "the rest's max is unknown");

        let mut whole = Partials::default();
        whole.add(key(None), &totals(&[1.0]));
        let mut stranger = Partials::default();
        stranger.add(key(Some(0)), &totals(&[1.0]));
        assert!(whole.without(stranger).is_err(), "a part outside the whole is corrupt");
        let mut whole = Partials::default();
        whole.add(key(None), &totals(&[1.0]));
        let mut more = Partials::default();
        more.add(key(None), &totals(&[1.0, 1.0]));
        assert!(whole.without(more).is_err(), "a part bigger than the whole is corrupt");
    }
}
