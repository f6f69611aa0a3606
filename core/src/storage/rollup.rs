//! The rollup rows a write changes: count, sum, min and max per bucket,
//! summed in memory per row for a whole group, then added to the stored
//! rows by upserts (never read, modify, write), so concurrent writers lose
//! no counts.
//!
//! The layout (migrate.rs has each backend's schema):
//! - `rollups`: per (level, bucket, metric) across every client, levels
//!   hour, day and month, keyed by time so that the rows of a commit lie
//!   together;
//! - `client_days`: the same per (day, client, metric), keyed by the day
//!   first, so that a batch of events in time order touches few pages.

use std::sync::OnceLock;

use super::db::Arg;
use crate::aggregate::{Bucket, Totals};
use crate::event::Event;

/// The `level` column of a `rollups` row.
pub(crate) fn level_code(b: Bucket) -> i64 {
    match b {
        Bucket::Hour => 1,
        Bucket::Day => 2,
        Bucket::Month => 3,
    }
}

/// The key of one rollup row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RollupKey<'a> {
    /// A row of `rollups`, across every client.
    Across { level: i64, bucket: i64, metric: &'a str },
    /// A row of `client_days`.
    ClientDay {
        bucket: i64,
        client_id: &'a str,
        metric: &'a str,
    },
}

/// One rollup row's change: add `stats` to the row of `key`, creating it
/// if missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupDelta<'a> {
    pub key: RollupKey<'a>,
    pub stats: Totals,
}

impl<'a> RollupDelta<'a> {
    /// The key, bound in the order of [`RollupTable::keys`].
    pub(crate) fn key_args(&self) -> [Arg<'a>; 3] {
        match self.key {
            RollupKey::Across { level, bucket, metric } => [Arg::Int(level), Arg::Int(bucket), Arg::Text(metric)],
            RollupKey::ClientDay {
                bucket,
                client_id,
                metric,
            } => [Arg::Int(bucket), Arg::Text(client_id), Arg::Text(metric)],
        }
    }

    /// n, total, lo, hi, n_lo, n_hi.
    pub(crate) fn stats_args(&self) -> [Arg<'_>; 6] {
        let s = &self.stats;
        [
            Arg::Int(s.count as i64),
            Arg::Exact(&s.sum),
            Arg::OptReal(s.min),
            Arg::OptReal(s.max),
            Arg::Int(s.min_times as i64),
            Arg::Int(s.max_times as i64),
        ]
    }
}

/// The rollup changes of a group, each table's in the order of its primary
/// key (deterministic, the order in which a b-tree takes them best, and
/// the order every writer locks rows in, so two never wait in a cycle).
#[derive(Debug, Default)]
pub(crate) struct Deltas<'a> {
    /// For `rollups`.
    pub across: Vec<RollupDelta<'a>>,
    /// For `client_days`.
    pub client_days: Vec<RollupDelta<'a>>,
}

/// The in-memory sums of a group, hashed by foldhash (fast on short keys,
/// and kept by others: it replaced a hand-written hash).
type Sums<K> = foldhash::HashMap<K, Totals>;

/// The rollup changes of the newly stored `events`, summed per row in
/// memory.
pub(crate) fn rollup_deltas<'a>(events: impl IntoIterator<Item = &'a Event>) -> Deltas<'a> {
    let mut across: Sums<(i64, i64, &'a str)> = Sums::default();
    let mut clients: Sums<(i64, &'a str, &'a str)> = Sums::default();
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
                .entry((level_code(level), bucket, metric))
                .or_default()
                .add(event.amount);
        }
        clients
            .entry((day, event.client_id.as_str(), metric))
            .or_default()
            .add(event.amount);
    }
    let mut out = Deltas {
        across: across
            .into_iter()
            .map(|((level, bucket, metric), stats)| RollupDelta {
                key: RollupKey::Across { level, bucket, metric },
                stats,
            })
            .collect(),
        client_days: clients
            .into_iter()
            .map(|((bucket, client_id, metric), stats)| RollupDelta {
                key: RollupKey::ClientDay {
                    bucket,
                    client_id,
                    metric,
                },
                stats,
            })
            .collect(),
    };
    out.across.sort_unstable_by_key(|d| d.key);
    out.client_days.sort_unstable_by_key(|d| d.key);
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
    /// lo, hi, n_lo, n_hi.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            RollupTable::Rollups => &["level", "bucket", "metric"],
            RollupTable::ClientDays => &["bucket", "client_id", "metric"],
        }
    }

    /// Every column, in binding order.
    pub(crate) fn columns(self) -> String {
        format!("{}, n, total, lo, hi, n_lo, n_hi", self.keys().join(", "))
    }

    /// What makes an insert of deltas add to a stored row (never replace
    /// it), so concurrent writers lose no counts. Totals are added exactly
    /// by `ingest_exact_add`, which each backend defines on its exact
    /// column type (SQLite: a function of this library on the bytes of an
    /// [`crate::exact::ExactSum`]; PostgreSQL: `numeric` addition).
    pub(crate) fn add_on_conflict(self) -> String {
        let t = self.name();
        format!(
            "ON CONFLICT ({}) DO UPDATE SET
                 n = {t}.n + excluded.n,
                 total = ingest_exact_add({t}.total, excluded.total),
                 lo = CASE WHEN excluded.lo < {t}.lo THEN excluded.lo ELSE {t}.lo END,
                 hi = CASE WHEN excluded.hi > {t}.hi THEN excluded.hi ELSE {t}.hi END,
                 n_lo = CASE WHEN excluded.lo < {t}.lo THEN excluded.n_lo
                             WHEN excluded.lo > {t}.lo THEN {t}.n_lo
                             WHEN {t}.n_lo > 0 AND excluded.n_lo > 0 THEN {t}.n_lo + excluded.n_lo
                             ELSE 0 END,
                 n_hi = CASE WHEN excluded.hi > {t}.hi THEN excluded.n_hi
                             WHEN excluded.hi < {t}.hi THEN {t}.n_hi
                             WHEN {t}.n_hi > 0 AND excluded.n_hi > 0 THEN {t}.n_hi + excluded.n_hi
                             ELSE 0 END",
            self.keys().join(", ")
        )
    }

    /// Adds `rows` [`RollupDelta`]s, each bound as [`RollupTable::columns`];
    /// `rows` is one of the run lengths of [`upsert_runs`]. The text is built
    /// once: a statement cache looks it up by text on every commit, and
    /// formatting it there showed in the profile of a batch.
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
                values(rows, self.keys().len() + 6),
                self.add_on_conflict()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{DAY_MS, HOUR_MS};
    use crate::timestamp::Timestamp;

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
        let across: Vec<_> = d.across.iter().map(|r| r.key).collect();
        let mut sorted = across.clone();
        sorted.sort();
        assert_eq!(across, sorted);
        let days: Vec<_> = d.client_days.iter().map(|r| r.key).collect();
        let day = |bucket, client_id| RollupKey::ClientDay {
            bucket,
            client_id,
            metric: "m",
        };
        assert_eq!(days, vec![day(-DAY_MS, "a"), day(0, "a"), day(0, "b")]);
        let hour5 = d
            .across
            .iter()
            .find(|r| {
                r.key
                    == RollupKey::Across {
                        level: 1,
                        bucket: 5 * HOUR_MS,
                        metric: "m",
                    }
            })
            .unwrap();
        let stats = hour5.stats.stats().unwrap();
        assert_eq!(
            (stats.count, stats.sum, stats.min, stats.max),
            (2, 1.0, Some(-1.0), Some(2.0))
        );
        let months: Vec<_> = d
            .across
            .iter()
            .filter_map(|r| match r.key {
                RollupKey::Across { level: 3, bucket, .. } => Some(bucket),
                _ => None,
            })
            .collect();
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
        let columns =
            "(level, bucket, metric, n, total, lo, hi, n_lo, n_hi) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), ($10,";
        assert!(across.contains(columns), "{across}");
    }
}
