//! An oracle for the local buckets of a time zone, independent of the
//! library's planner: the zone's transitions found by sampling its offset
//! (the tz database, through chrono-tz, is the one thing shared) and
//! bisecting, then each bucket straight from its definition. An instant is
//! in the bucket of the greatest label (local hour, midnight or first of
//! the month) that the zone's clocks have shown by then, and that bucket
//! starts at the first instant the clocks showed its label or later.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Datelike, Offset, TimeZone, Utc};
use ingest_core::{Bucket, Tz};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The spans of time the oracle knows a zone's transitions in: the
/// property tests draw their times from inside these, well away from
/// their ends (a month's bucket reaches back 32 days at most).
const KNOWN: [(i64, i64); 2] = [
    // 1969-10-01 to 1970-04-01: around the epoch, negative times.
    (-92 * DAY, 90 * DAY),
    // 2023-11-01 to 2025-02-01.
    (1_698_796_800_000, 1_738_368_000_000),
];

/// A zone's offset at each instant, and where it changes.
pub struct Zone {
    tz: Tz,
    /// (instant, offset before, offset after), offsets in ms, in order.
    changes: Vec<(i64, i64, i64)>,
}

/// The zone, its transitions found once per test process.
pub fn zone(tz: Tz) -> &'static Zone {
    static ZONES: OnceLock<Mutex<HashMap<Tz, &'static Zone>>> = OnceLock::new();
    let mut zones = ZONES.get_or_init(Default::default).lock().unwrap();
    zones.entry(tz).or_insert_with(|| Box::leak(Box::new(Zone::new(tz))))
}

impl Zone {
    fn new(tz: Tz) -> Zone {
        let mut z = Zone {
            tz,
            changes: Vec::new(),
        };
        for (from, to) in KNOWN {
            // Offsets change hours or months apart, never twice in 10 minutes.
            let mut at = from;
            while at < to {
                let next = at + 10 * MINUTE;
                let (a, b) = (z.offset_ms(at), z.offset_ms(next));
                if a != b {
                    let (mut lo, mut hi) = (at, next);
                    while hi - lo > 1 {
                        let mid = lo + (hi - lo) / 2;
                        if z.offset_ms(mid) == a {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                    z.changes.push((hi, a, b));
                }
                at = next;
            }
        }
        z
    }

    /// The offset at `ms`, in seconds east of UTC.
    pub fn offset_secs(&self, ms: i64) -> i32 {
        let utc = DateTime::from_timestamp_millis(ms).unwrap().naive_utc();
        self.tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()
    }

    fn offset_ms(&self, ms: i64) -> i64 {
        i64::from(self.offset_secs(ms)) * 1000
    }

    /// The local wall-clock time at `ms`, as milliseconds (read as if UTC).
    fn local(&self, ms: i64) -> i64 {
        ms + self.offset_ms(ms)
    }

    /// The start (an instant, ms) of the local bucket holding `ms`.
    pub fn bucket_start(&self, bucket: Bucket, ms: i64) -> i64 {
        assert!(
            KNOWN
                .iter()
                .any(|(from, to)| from + 40 * DAY <= ms && ms < to - 40 * DAY),
            "{ms} is outside the oracle's spans"
        );
        // The latest local time shown so far: now, or just before a
        // change that set the clocks back.
        let shown = self
            .changes
            .iter()
            .filter(|(at, _, _)| *at <= ms)
            .map(|(at, before, _)| at - 1 + before)
            .fold(self.local(ms), i64::max);
        let label = floor_label(bucket, shown);
        // The first instant showing `label` or later: in each stretch of
        // one offset, the instant that shows the label, or the stretch's
        // start when the label was passed already; the earliest of those.
        let mut starts: Vec<i64> = vec![i64::MIN / 4];
        starts.extend(self.changes.iter().map(|c| c.0));
        let mut ends: Vec<i64> = self.changes.iter().map(|c| c.0).collect();
        ends.push(i64::MAX / 4);
        starts
            .iter()
            .zip(&ends)
            .filter_map(|(&from, &to)| {
                let offset = self.offset_ms(from.max(ms - 60 * DAY).min(to - 1));
                let at = from.max(label - offset);
                (at < to).then_some(at)
            })
            .min()
            .unwrap()
    }
}

/// The label (local time read as UTC ms) of the bucket holding local time
/// `local` by the calendar alone.
fn floor_label(bucket: Bucket, local: i64) -> i64 {
    match bucket {
        Bucket::Hour => local - local.rem_euclid(HOUR),
        Bucket::Day => local - local.rem_euclid(DAY),
        Bucket::Month => {
            let d = DateTime::from_timestamp_millis(local).unwrap();
            Utc.with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        }
    }
}
