//! Contender (d): aggregate queries on a large store, timed, each answer
//! checked against a scan of the events table (the original design's way).
//!
//! The store takes minutes to build at 10M events, so it is kept between
//! runs under the data directory, named by its size, the seed and a digest
//! of the core files that decide what is on disk (schema and dedup key): a
//! core that stores differently gets a new store, never a stale one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ingest_core::{Aggregate, Bucket, Durability, Ingestor, Query, Stats, Timestamp, Tz};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rusqlite::Connection;

use crate::gen::{Spec, CLIENTS, DAY_MS, METRICS, YEAR_MS, YEAR_START_MS};
use crate::measure::{fail, peak_rss_kib, reset_peak_rss, Latencies, Rate, Res};
use crate::original::{scan, Plan, ScanAnswer, ScanQuery, ScanStats};
use crate::runs;

/// Events per `submit_batch_json` call while building the store.
pub const BUILD_BATCH: usize = 10_000;

/// The core sources whose change makes a stored file mean something else.
const ON_DISK: [&str; 2] = [
    include_str!("../../core/src/storage/schema.rs"),
    include_str!("../../core/src/dedup.rs"),
];

/// FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
fn digest(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// How a store was obtained in this run.
#[derive(Debug, Clone)]
pub struct Built {
    pub rate: Rate,
    pub batches: Latencies,
    /// Peak resident set while building, in KiB, and whether it covers only
    /// the build (false: the whole process so far).
    pub peak_rss_kib: Option<u64>,
    pub peak_is_build_only: bool,
}

/// What the run that built a cached store measured while building it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub built_at: String,
    pub events_per_sec: f64,
    pub peak_rss_kib: Option<u64>,
    pub peak_is_build_only: bool,
}

pub struct AggStore {
    pub path: PathBuf,
    pub ingestor: Ingestor,
    pub events: u64,
    pub unique: u64,
    /// `None` when it came from the cache.
    pub built: Option<Built>,
    /// For a cached store, what its build measured, if it was recorded.
    pub recorded: Option<Recorded>,
}

fn file_stem(spec: Spec) -> String {
    format!("agg-n{}-seed{}-core{:016x}", spec.events, spec.seed, digest(&ON_DISK))
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Read the whole store file once, so that every query shape and every
/// contender (ingest, the full scan, indexed SQL) starts from the same warm
/// page cache, as a server's working set would be; otherwise whichever runs
/// first pays the disk reads of the others.
fn warm(path: &Path) -> Res<()> {
    std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
    Ok(())
}

/// Open the cached store for `spec` under `dir`, building it first when it
/// is missing, unreadable or incomplete.
pub fn store(spec: Spec, dir: &Path) -> Res<AggStore> {
    std::fs::create_dir_all(dir)?;
    let stem = file_stem(spec);
    let path = dir.join(format!("{stem}.db"));
    let marker = dir.join(format!("{stem}.unique"));
    if let Some(s) = open_cached(spec, &path, &marker) {
        warm(&path)?;
        return Ok(s);
    }
    // Stores of the same data for an older core are dead weight (gigabytes at 10M).
    let prefix = format!("agg-n{}-seed{}-", spec.events, spec.seed);
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let building = dir.join(format!("{stem}.building-{}.db", std::process::id()));
    remove_db(&building);
    let peak_is_build_only = reset_peak_rss();
    let (rate, batches) = runs::batches(spec, spec.events, BUILD_BATCH, Durability::Normal, &building)?;
    let peak = peak_rss_kib();
    let unique = {
        let ing = runs::open(&building, Durability::Normal)?;
        ing.stats()?.stored_events
    };
    // Closed: the last connection folded the WAL into the file, which can move.
    std::fs::rename(&building, &path)?;
    remove_db(&building);
    let record = serde_json::json!({
        "built_at": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        "events_per_sec": rate.per_sec(),
        "peak_rss_kib": peak,
        "peak_is_build_only": peak_is_build_only,
    });
    std::fs::write(dir.join(format!("{stem}.build.json")), record.to_string())?;
    std::fs::write(&marker, unique.to_string())?;
    warm(&path)?;
    let mut s = open_cached(spec, &path, &marker).ok_or("the store just built does not open")?;
    s.built = Some(Built {
        rate,
        batches,
        peak_rss_kib: peak,
        peak_is_build_only,
    });
    Ok(s)
}

fn open_cached(spec: Spec, path: &Path, marker: &Path) -> Option<AggStore> {
    let unique: u64 = std::fs::read_to_string(marker).ok()?.trim().parse().ok()?;
    if !path.exists() {
        return None;
    }
    let ingestor = Ingestor::builder(path).durability(Durability::Normal).open().ok()?;
    let stored = ingestor.stats().ok()?.stored_events;
    let recorded = std::fs::read_to_string(marker.with_extension("build.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            Some(Recorded {
                built_at: v["built_at"].as_str()?.to_string(),
                events_per_sec: v["events_per_sec"].as_f64()?,
                peak_rss_kib: v["peak_rss_kib"].as_u64(),
                peak_is_build_only: v["peak_is_build_only"].as_bool().unwrap_or(false),
            })
        });
    (stored == unique).then(|| AggStore {
        path: path.to_path_buf(),
        ingestor,
        events: spec.events,
        unique,
        built: None,
        recorded,
    })
}

/// The query shapes of the issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    ClientMetric30Days,
    MetricYear,
    Everything,
    MetricByDay90Days,
    /// Local days of a zone with daylight saving changes (issue 17).
    MetricByBerlinDay90Days,
}

/// The zone of [`Shape::MetricByBerlinDay90Days`]: whole-hour offsets, and
/// days of 23 and 25 hours in the data's year.
pub const BERLIN: Tz = Tz::Europe__Berlin;

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::ClientMetric30Days,
        Shape::MetricYear,
        Shape::Everything,
        Shape::MetricByDay90Days,
        Shape::MetricByBerlinDay90Days,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Shape::ClientMetric30Days => "one client and metric, 30 days",
            Shape::MetricYear => "one metric, all clients, 365 days",
            Shape::Everything => "everything, all time",
            Shape::MetricByDay90Days => "one metric, group_by day, 90 days",
            Shape::MetricByBerlinDay90Days => "one metric, group_by day in Europe/Berlin, 90 days",
        }
    }

    /// One query of this shape. Ranges start at a random millisecond, as
    /// "the last 30 days" does, so the edges cut hours, days and months.
    pub fn query(self, rng: &mut ChaCha8Rng) -> (Query, ScanQuery) {
        let client = format!("client-{:03}", rng.random_range(0..CLIENTS));
        let metric = METRICS[rng.random_range(0..METRICS.len())].to_string();
        let window = |rng: &mut ChaCha8Rng, days: i64| {
            let start = YEAR_START_MS + rng.random_range(0..=(YEAR_MS - days * DAY_MS));
            (start, start + days * DAY_MS)
        };
        let (client, metric, range, by_day) = match self {
            Shape::ClientMetric30Days => (Some(client), Some(metric), Some(window(rng, 30)), false),
            Shape::MetricYear => {
                let start = YEAR_START_MS + rng.random_range(0..30 * DAY_MS);
                (None, Some(metric), Some((start, start + YEAR_MS)), false)
            }
            Shape::Everything => (None, None, None, false),
            Shape::MetricByDay90Days | Shape::MetricByBerlinDay90Days => {
                (None, Some(metric), Some(window(rng, 90)), true)
            }
        };
        let tz = (self == Shape::MetricByBerlinDay90Days).then_some(BERLIN);
        let ts = |ms: i64| Timestamp::from_millis(ms).expect("2025 is in range");
        let q = Query {
            client_id: client.clone(),
            metric: metric.clone(),
            start: range.map(|r| ts(r.0)),
            end: range.map(|r| ts(r.1)),
            bucket: by_day.then_some(Bucket::Day),
            tz,
            ..Query::default()
        };
        let s = ScanQuery {
            client_id: client,
            metric,
            start: range.map(|r| r.0),
            end: range.map(|r| r.1),
            by_day,
            tz,
        };
        (q, s)
    }
}

/// Timings of one shape.
#[derive(Debug, Clone)]
pub struct ShapeResult {
    pub shape: Shape,
    pub ingest: Latencies,
    /// The original design's full table scan.
    pub scan: Latencies,
    /// The same SQL, SQLite free to use the core's indexes.
    pub indexed: Latencies,
    /// Answers checked against the scan (all of them agreed, or the run failed).
    pub verified: usize,
}

/// Time `runs` queries of `shape` on the store, and scan (timed, and
/// compared) the first `scans` of them.
pub fn run_shape(store: &AggStore, shape: Shape, runs: usize, scans: usize, seed: u64) -> Res<ShapeResult> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0xa66 + shape as u64));
    let queries: Vec<(Query, ScanQuery)> = (0..runs.max(scans)).map(|_| shape.query(&mut rng)).collect();
    let ing = &store.ingestor;
    // One untimed pass to warm the page cache: every contender gets the same.
    ing.aggregate(&queries[0].0)?;
    let mut lat = Latencies::with_capacity(runs);
    let mut answers: Vec<Aggregate> = Vec::with_capacity(scans);
    for (i, (q, _)) in queries.iter().take(runs).enumerate() {
        let t = Instant::now();
        let a = ing.aggregate(q)?;
        lat.push(t.elapsed());
        if a.stale {
            return fail(format!("{}: a stale answer from the cache", shape.label()));
        }
        if i < scans {
            answers.push(a);
        }
    }
    for (q, _) in queries
        .iter()
        .skip(answers.len())
        .take(scans.saturating_sub(answers.len()))
    {
        answers.push(ing.aggregate(q)?);
    }
    let conn = Connection::open(&store.path)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    let mut scan_lat = Latencies::with_capacity(scans);
    let mut indexed_lat = Latencies::with_capacity(scans);
    for (i, (q, s)) in queries.iter().take(scans).enumerate() {
        for (plan, lat) in [(Plan::FullTable, &mut scan_lat), (Plan::AnyIndex, &mut indexed_lat)] {
            let t = Instant::now();
            let reference = scan(&conn, s, plan)?;
            lat.push(t.elapsed());
            if let Err(why) = agree(&answers[i], &reference) {
                return fail(format!(
                    "aggregate disagrees with the {plan:?} scan for {} ({q:?}): {why}",
                    shape.label()
                ));
            }
        }
    }
    Ok(ShapeResult {
        shape,
        ingest: lat,
        scan: scan_lat,
        indexed: indexed_lat,
        verified: scans,
    })
}

/// Exact counts, minima and maxima; sums within 1e-9 relative (the order of
/// additions differs between rollups and a scan).
fn agree(a: &Aggregate, s: &ScanAnswer) -> Result<(), String> {
    same_stats("totals", &a.totals, &s.totals)?;
    match (&a.groups, &s.days) {
        (None, None) => Ok(()),
        (Some(groups), Some(days)) => {
            if groups.len() != days.len() {
                return Err(format!("{} groups, the scan has {} days", groups.len(), days.len()));
            }
            for (g, (day, stats)) in groups.iter().zip(days) {
                let bucket = g.key.bucket.map(Timestamp::millis);
                if bucket != Some(*day) {
                    return Err(format!("group {bucket:?} where the scan has day {day}"));
                }
                same_stats(
                    &format!("day {}", g.key.bucket.map(|b| b.to_string()).unwrap_or_default()),
                    &g.stats,
                    stats,
                )?;
            }
            Ok(())
        }
        (a, s) => Err(format!("grouped {} but the scan grouped {}", a.is_some(), s.is_some())),
    }
}

fn same_stats(what: &str, a: &Stats, s: &ScanStats) -> Result<(), String> {
    let sum_ok = (a.sum - s.sum).abs() <= 1e-9 * a.sum.abs().max(s.sum.abs()).max(1.0);
    if a.count != s.count || !sum_ok || a.min != s.min || a.max != s.max {
        return Err(format!(
            "{what}: ingest count {} sum {} min {:?} max {:?}; scan count {} sum {} min {:?} max {:?}",
            a.count, a.sum, a.min, a.max, s.count, s.sum, s.min, s.max
        ));
    }
    Ok(())
}
