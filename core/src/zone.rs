//! Local time zones for aggregates: where the hours, days and months of an
//! IANA zone start, and how a range is split so that each piece lies in one
//! local bucket.
//!
//! A local bucket is named by its label, the local wall-clock time it
//! starts at (`2024-03-31T00:00` for a day), and starts at the first instant
//! whose local time is at or after that label:
//! - where the label exists once, at that instant;
//! - where the clocks went back over it (the label is shown twice), at the
//!   earlier instant, so the bucket holds both passes (a day of 25 hours,
//!   an hour of two);
//! - where the clocks jumped over it (it is never shown), at the instant of
//!   the jump: the first instant of that local day (a day of 23 hours).
//!
//! Equivalently, an instant `t` is in the bucket of the greatest label whose
//! start is at or before `t`; buckets never overlap and follow each other
//! in time, whatever the zone's history does to its clocks.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::aggregate::{plan, Bucket, Source, Span, DAY_MS, HOUR_MS};
use crate::error::{Error, Result};
use crate::limits::shorten;
use crate::timestamp::{MAX_MS, MIN_MS};

/// The zone named `name` (trimmed), or an `InvalidArgument` naming it.
pub(crate) fn parse(name: &str) -> Result<Tz> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::arg(
            "query: tz is empty; expected an IANA time zone name such as Europe/Berlin",
        ));
    }
    name.parse().map_err(|_| {
        Error::arg(format!(
            "query: unknown time zone {:?}; expected an IANA time zone name such as Europe/Berlin \
             (names are case-sensitive)",
            shorten(name, 60)
        ))
    })
}

/// A bucket's start `start_ms` as local time with the zone's offset there:
/// the label, or where the clocks jumped over the label the local time
/// just after the jump.
pub(crate) fn local_start(tz: Tz, start_ms: i64) -> Option<DateTime<FixedOffset>> {
    Some(
        DateTime::from_timestamp_millis(start_ms)?
            .with_timezone(&tz)
            .fixed_offset(),
    )
}

/// The local wall-clock time at instant `ms`.
fn local(tz: Tz, ms: i64) -> NaiveDateTime {
    let utc = DateTime::from_timestamp_millis(ms).unwrap_or_default().naive_utc();
    utc + chrono::TimeDelta::seconds(i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()))
}

/// The label of the bucket holding local time `t` by the calendar alone.
fn floor_label(bucket: Bucket, t: NaiveDateTime) -> NaiveDateTime {
    let day = t.date();
    match bucket {
        Bucket::Hour => day.and_time(NaiveTime::from_hms_opt(t.hour(), 0, 0).unwrap_or(NaiveTime::MIN)),
        Bucket::Day => day.and_time(NaiveTime::MIN),
        Bucket::Month => day.with_day(1).unwrap_or(day).and_time(NaiveTime::MIN),
    }
}

/// The label after `label`.
fn next_label(bucket: Bucket, label: NaiveDateTime) -> NaiveDateTime {
    match bucket {
        Bucket::Hour => label + chrono::TimeDelta::hours(1),
        Bucket::Day => label + chrono::TimeDelta::days(1),
        Bucket::Month => {
            let (y, m) = (label.year(), label.month());
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            NaiveDate::from_ymd_opt(y, m, 1)
                .unwrap_or(label.date())
                .and_time(NaiveTime::MIN)
        }
    }
}

/// The first instant (ms) whose local time is at or after `label`.
fn first_instant(tz: Tz, label: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&label) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
        chrono::LocalResult::None => {
            // The clocks jumped over `label`: the instant of the jump. Every
            // offset is within 26 hours of UTC, so the local time is before
            // `label` 26 hours before it read as UTC and after it 26 hours
            // later; in between, around a jump forward, local time only grows.
            let as_utc = label.and_utc().timestamp_millis();
            let (mut lo, mut hi) = (as_utc - 26 * HOUR_MS, as_utc + 26 * HOUR_MS);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if local(tz, mid) >= label {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        }
    }
}

/// The starts (ms) of the local buckets that meet a list of windows, in
/// order: in each window the first at or before its start, the others
/// inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalBuckets {
    starts: Vec<i64>,
}

/// A half-open window `[start, end)` of milliseconds.
pub(crate) type Window = (i64, i64);

impl LocalBuckets {
    /// The local `bucket`s of `tz` that meet `windows` (each `start <
    /// end`, in order, apart). Bucket starts outside the instants a
    /// [`crate::Timestamp`] can hold (years 1 to 9999) are an
    /// `InvalidArgument`: no group could say them.
    pub(crate) fn new(tz: Tz, bucket: Bucket, windows: &[Window]) -> Result<Self> {
        let mut starts: Vec<i64> = Vec::new();
        for &(start, end) in windows {
            let mut label = floor_label(bucket, local(tz, start));
            // Where the clocks went back over the next label, `start` can be
            // in its bucket already although its local time is before it.
            while first_instant(tz, next_label(bucket, label)) <= start {
                label = next_label(bucket, label);
            }
            let mut at = first_instant(tz, label);
            while at < end {
                // A label whose whole bucket was jumped over starts where
                // the next one does: it holds nothing and is no boundary
                // (nor is the first of a window that an earlier one holds).
                if starts.last().is_none_or(|&last| last < at) {
                    starts.push(at);
                }
                label = next_label(bucket, label);
                at = first_instant(tz, label);
            }
        }
        if starts.first().is_some_and(|&s| s < MIN_MS) || starts.last().is_some_and(|&s| s > MAX_MS) {
            return Err(Error::arg(format!(
                "query: a {bucket} in {} starts outside the years 1 to 9999",
                tz.name()
            )));
        }
        Ok(LocalBuckets { starts })
    }

    /// The start of the bucket holding `ms`, which must be in a window.
    pub(crate) fn start_of(&self, ms: i64) -> i64 {
        let i = self.starts.partition_point(|&s| s <= ms);
        self.starts[i.saturating_sub(1)]
    }

    /// The starts, in order.
    #[cfg(test)]
    pub(crate) fn starts(&self) -> &[i64] {
        &self.starts
    }

    /// `windows` (those given to [`LocalBuckets::new`]) split at every
    /// bucket start inside them and planned piece by piece over `levels`
    /// (see [`plan`]), then gathered by source: each source's spans in
    /// order, touching ones joined. A rollup bucket inside one of these
    /// spans lies inside one local bucket, as does every piece of an events
    /// span cut at hours.
    pub(crate) fn plan(&self, windows: &[Window], levels: &[Bucket]) -> Vec<(Source, Vec<Span>)> {
        let mut by_source: Vec<(Source, Vec<Span>)> = Vec::new();
        for &(start, end) in windows {
            let from = self.starts.partition_point(|&s| s <= start);
            let to = self.starts.partition_point(|&s| s < end);
            let cuts = self.starts[from..to.max(from)].iter().copied();
            let edges: Vec<i64> = std::iter::once(start).chain(cuts).chain([end]).collect();
            for w in edges.windows(2) {
                for (source, span) in plan(Some(w[0]), Some(w[1]), levels) {
                    match by_source.iter_mut().find(|(s, _)| *s == source) {
                        Some((_, spans)) => spans.push(span),
                        None => by_source.push((source, vec![span])),
                    }
                }
            }
        }
        for (_, spans) in &mut by_source {
            spans.sort_by_key(|s| s.start);
            spans.dedup_by(|next, prev| {
                let touching = prev.end == next.start;
                if touching {
                    prev.end = next.end;
                }
                touching
            });
        }
        by_source
    }
}

/// A UTC day read whole from its rollup although a local bucket starts
/// inside it (Berlin's days start at 23:00 or 22:00 UTC): its part in one
/// local bucket, `kept`, is the day's rollup less the rest of the day,
/// `excess`, whose hours are read anyway for the bucket next to it. One row
/// instead of up to 23.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Borrow {
    /// The UTC day's start.
    pub day: i64,
    /// The larger part of the day, in one local bucket.
    pub kept: Span,
    /// The rest of the day.
    pub excess: Span,
}

impl LocalBuckets {
    /// The days to borrow among `hours` (spans of hour rollups, in order,
    /// touching ones joined, as [`LocalBuckets::plan`] gives them): each UTC
    /// day that they cover whole and that exactly one local bucket start
    /// cuts. `hours` loses the kept parts, which the days give now.
    pub(crate) fn borrow_days(&self, hours: &mut Vec<Span>) -> Vec<Borrow> {
        let mut borrows = Vec::new();
        for span in hours.iter() {
            let (Some(s), Some(e)) = (span.start, span.end) else {
                continue;
            };
            let mut day = Bucket::Day.ceil(s);
            while day + DAY_MS <= e {
                let from = self.starts.partition_point(|&x| x <= day);
                let to = self.starts.partition_point(|&x| x < day + DAY_MS);
                if to == from + 1 {
                    // On the hour: the hours around it are rollups.
                    let cut = self.starts[from];
                    let first = Span {
                        start: Some(day),
                        end: Some(cut),
                    };
                    let second = Span {
                        start: Some(cut),
                        end: Some(day + DAY_MS),
                    };
                    let (kept, excess) = if cut - day >= day + DAY_MS - cut {
                        (first, second)
                    } else {
                        (second, first)
                    };
                    borrows.push(Borrow { day, kept, excess });
                }
                day += DAY_MS;
            }
        }
        let mut rest = Vec::with_capacity(hours.len() + borrows.len());
        let mut kept = borrows.iter().map(|b| b.kept).peekable();
        for span in hours.drain(..) {
            let mut at = span.start;
            while let Some(k) = kept.next_if(|k| span.end.is_none_or(|e| k.start < Some(e))) {
                if at < k.start {
                    rest.push(Span {
                        start: at,
                        end: k.start,
                    });
                }
                at = k.end;
            }
            if span.end.is_none_or(|e| at < Some(e)) {
                rest.push(Span {
                    start: at,
                    end: span.end,
                });
            }
        }
        *hours = rest;
        borrows
    }
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod zone_tests;
