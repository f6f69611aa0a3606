//! Contender (h): DuckDB, the embedded engine a user would load the same
//! events into instead (issue 18), run from Python by
//! `benches/duckdb_compare.py` beside ingest's own Python calls on the same
//! events and queries, so both sides pay the same interpreter.
//!
//! DuckDB comes from PyPI (`duckdb`) rather than the `duckdb` crate: the
//! crate compiles DuckDB's C++ from source, many minutes of every clean
//! build, while the wheel installs in seconds.
//!
//! DuckDB's copy of the aggregate store is kept beside ingest's under the
//! data directory, named after it and the DuckDB version, so a 10M run
//! loads it once.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ingest_core::Rules;
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::aggregates::Shape;
use crate::gen::{normalised, Events, Spec};
use crate::measure::{fail, Rate, Res};
use crate::python;

/// The shapes issue 18 measures DuckDB on (SQL has no time zones, so the
/// Berlin shape is left to the full scan).
pub const SHAPES: [Shape; 4] = [
    Shape::ClientMetric30Days,
    Shape::MetricYear,
    Shape::Everything,
    Shape::MetricByDay90Days,
];

/// One batch size, written by both sides from Python.
#[derive(Debug, Clone)]
pub struct WriteRates {
    pub batch: u64,
    /// `Ingestor.submit_batch` of the raw dicts, durability normal.
    pub ingest: Rate,
    /// DuckDB's `INSERT OR IGNORE` of the normalised rows.
    pub duckdb: Rate,
}

impl WriteRates {
    /// How many times faster ingest wrote.
    pub fn ratio(&self) -> f64 {
        self.ingest.per_sec() / self.duckdb.per_sec().max(1e-9)
    }
}

/// One aggregate shape, both sides timed on the same queries.
#[derive(Debug, Clone)]
pub struct ShapeTimes {
    pub shape: Shape,
    pub runs: u64,
    pub ingest_median_us: f64,
    pub ingest_p99_us: f64,
    pub duckdb_median_us: f64,
    pub duckdb_p99_us: f64,
}

impl ShapeTimes {
    /// How many times faster ingest's median answer is.
    pub fn ratio(&self) -> f64 {
        self.duckdb_median_us / self.ingest_median_us.max(1e-3)
    }
}

/// The aggregate shapes on one store, by both sides.
#[derive(Debug, Clone)]
pub struct DuckAggregates {
    pub agg_events: u64,
    pub agg_unique: u64,
    /// Events per second of DuckDB's one-statement load of the aggregate
    /// store, when this run loaded it (not taken from the cache).
    pub load_per_sec: Option<f64>,
    pub shapes: Vec<ShapeTimes>,
}

impl DuckAggregates {
    /// Issue 18's speed-up for a store of this size: 100x at 10M events,
    /// 10x at 1M (and below, where the ratio is only a preview).
    pub fn goal(&self) -> f64 {
        if self.agg_events >= 10_000_000 {
            100.0
        } else {
            10.0
        }
    }
}

#[derive(Debug, Clone)]
pub struct DuckRun {
    pub python: String,
    pub duckdb: String,
    pub writes: Vec<WriteRates>,
    /// The store of (d), then one a tenth its size (the issue measures
    /// 10M and 1M events).
    pub aggregates: Vec<DuckAggregates>,
}

/// The DuckDB version `python` imports, along with `ingest`.
pub fn usable(python: &Path) -> Result<String, String> {
    if !python.exists() {
        return Err(format!("{} does not exist", python.display()));
    }
    let out = Command::new(python)
        .args(["-c", "import duckdb, ingest; print(duckdb.__version__)"])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import duckdb and ingest (make bench-python installs DuckDB from PyPI): {}",
            python.display(),
            // The exception, not the traceback: this lands in a table's note.
            String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub struct DuckJob<'a> {
    pub python: &'a Path,
    pub script: &'a Path,
    /// Scratch files and the write rows' stores, removed with the run.
    pub dir: &'a Path,
    pub spec: Spec,
    pub events: u64,
    pub batches: &'a [u64],
    pub agg_spec: Spec,
    /// Ingest's aggregate store, closed by the caller.
    pub agg_store: &'a Path,
    pub agg_unique: u64,
    pub runs: usize,
    pub seed: u64,
    /// From [`usable`]: names DuckDB's cached store.
    pub version: &'a str,
}

/// DuckDB's copy of the aggregate store at `agg_store`.
pub fn store_path(agg_store: &Path, version: &str) -> PathBuf {
    agg_store.with_extension(format!("duckdb-{version}.duckdb"))
}

/// The normalised form of an event as the script loads it: the columns of
/// DuckDB's table.
fn row_json(raw: &Value, rules: &Rules) -> Value {
    let r = normalised(raw, rules);
    let e = r.event;
    json!({
        "client_id": e.client_id,
        "metric": e.metric,
        "ts": e.timestamp.millis(),
        "amount": e.amount,
        "event_id": e.event_id,
        "attributes": r.attributes,
    })
}

fn write_lines(path: &Path, lines: impl Iterator<Item = Value>) -> Res<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for v in lines {
        serde_json::to_writer(&mut out, &v)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The queries of every shape of [`SHAPES`], from the seeds the (d) rows
/// use, so both sides answer the questions the Rust rows answered.
fn queries(runs: usize, seed: u64) -> Value {
    let shapes: Vec<Value> = SHAPES
        .iter()
        .map(|&shape| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0xa66 + shape as u64));
            let qs: Vec<Value> = (0..runs.max(1))
                .map(|_| {
                    let (_, s) = shape.query(&mut rng);
                    json!({
                        "client_id": s.client_id,
                        "metric": s.metric,
                        "start": s.start,
                        "end": s.end,
                        "by_day": s.by_day,
                    })
                })
                .collect();
            json!({ "label": shape.label(), "queries": qs })
        })
        .collect();
    Value::Array(shapes)
}

/// Write the events, raw and normalised, and the queries; load DuckDB's
/// aggregate store unless cached; run the script and read its answer.
pub fn run(job: &DuckJob<'_>) -> Res<DuckRun> {
    let rules = Rules::builtin();
    let events_file = job.dir.join("duck-events.jsonl");
    let rows_file = job.dir.join("duck-rows.jsonl");
    let queries_file = job.dir.join("duck-queries.json");
    let unique = {
        let mut gen = Events::new(job.spec);
        let mut raws = BufWriter::new(std::fs::File::create(&events_file)?);
        let mut rows = BufWriter::new(std::fs::File::create(&rows_file)?);
        for g in gen.by_ref().take(job.events as usize) {
            serde_json::to_writer(&mut raws, &g.raw)?;
            raws.write_all(b"\n")?;
            serde_json::to_writer(&mut rows, &row_json(&g.raw, &rules))?;
            rows.write_all(b"\n")?;
        }
        raws.flush()?;
        rows.flush()?;
        gen.unique()
    };
    std::fs::write(&queries_file, queries(job.runs, job.seed).to_string())?;

    let duck_store = store_path(job.agg_store, job.version);
    let agg_rows = job.dir.join("duck-agg-rows.jsonl");
    // A store on disk is one the script loaded, checked and renamed into
    // place; the script counts it again against ingest's on every run.
    let load = !duck_store.exists();
    if load {
        write_lines(&agg_rows, Events::new(job.agg_spec).map(|g| row_json(&g.raw, &rules)))?;
    }

    let mut cmd = Command::new(job.python);
    cmd.arg(job.script)
        .arg("--events-file")
        .arg(&events_file)
        .arg("--rows-file")
        .arg(&rows_file)
        .args(["--events", &job.events.to_string()])
        .args(["--unique", &unique.to_string()])
        .arg("--dir")
        .arg(job.dir)
        .arg("--store")
        .arg(job.agg_store)
        .arg("--duckdb-store")
        .arg(&duck_store)
        .args(["--agg-unique", &job.agg_unique.to_string()])
        .arg("--queries")
        .arg(&queries_file);
    for b in job.batches {
        cmd.args(["--batch", &b.to_string()]);
    }
    if load {
        cmd.arg("--agg-rows").arg(&agg_rows);
    }
    let output = cmd.output()?;
    for f in [&events_file, &rows_file, &queries_file, &agg_rows] {
        let _ = std::fs::remove_file(f);
    }
    parse(&python::answer(job.script, &output)?, job)
}

fn parse(v: &Value, job: &DuckJob<'_>) -> Res<DuckRun> {
    let num = |at: &Value, key: &str| -> Res<f64> {
        at[key]
            .as_f64()
            .ok_or_else(|| format!("duckdb_compare.py: no number at {key} in {at}").into())
    };
    let mut writes = Vec::new();
    for w in v["writes"].as_array().ok_or("duckdb_compare.py: no writes")? {
        let events = num(w, "events")?;
        if events as u64 != job.events {
            return fail(format!("duckdb_compare.py wrote {events} events, not {}", job.events));
        }
        let rate = |key: &str| -> Res<Rate> {
            Ok(Rate {
                events: events as u64,
                busy: Duration::try_from_secs_f64(num(w, key)?).map_err(|e| format!("{key}: {e}"))?,
            })
        };
        writes.push(WriteRates {
            batch: num(w, "batch")? as u64,
            ingest: rate("ingest_seconds")?,
            duckdb: rate("duckdb_seconds")?,
        });
    }
    let mut shapes = Vec::new();
    let answered = v["shapes"].as_array().ok_or("duckdb_compare.py: no shapes")?;
    if answered.len() != SHAPES.len() {
        return fail(format!("duckdb_compare.py answered {} shapes", answered.len()));
    }
    for (shape, s) in SHAPES.iter().zip(answered) {
        if s["label"].as_str() != Some(shape.label()) {
            return fail(format!(
                "duckdb_compare.py answered {} for {}",
                s["label"],
                shape.label()
            ));
        }
        shapes.push(ShapeTimes {
            shape: *shape,
            runs: num(s, "runs")? as u64,
            ingest_median_us: num(s, "ingest_median_us")?,
            ingest_p99_us: num(s, "ingest_p99_us")?,
            duckdb_median_us: num(s, "duckdb_median_us")?,
            duckdb_p99_us: num(s, "duckdb_p99_us")?,
        });
    }
    Ok(DuckRun {
        python: v["python"].as_str().unwrap_or("?").to_string(),
        duckdb: v["duckdb"].as_str().unwrap_or("?").to_string(),
        writes,
        aggregates: vec![DuckAggregates {
            agg_events: job.agg_spec.events,
            agg_unique: job.agg_unique,
            load_per_sec: v["load_seconds"]
                .as_f64()
                .map(|s| job.agg_spec.events as f64 / s.max(1e-9)),
            shapes,
        }],
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// DuckDB's primary key is the columns `(ts, client_id, metric,
    /// amount)` of the rows written for it: they must tell events apart
    /// exactly as ingest's dedup key does, or its count proves nothing.
    #[test]
    fn the_rows_key_is_ingests_dedup_key() {
        let rules = Rules::builtin();
        let mut gen = Events::new(Spec {
            events: 20_000,
            seed: 3,
        });
        let mut keys = HashSet::new();
        let mut dedup = HashSet::new();
        for g in gen.by_ref() {
            let r = row_json(&g.raw, &rules);
            let key = (
                r["ts"].as_i64().unwrap(),
                r["client_id"].as_str().unwrap().to_string(),
                r["metric"].as_str().unwrap().to_string(),
                r["amount"].as_f64().unwrap().to_bits(),
            );
            assert_eq!(
                keys.insert(key),
                dedup.insert(normalised(&g.raw, &rules).key),
                "{}",
                g.raw
            );
        }
        assert_eq!(keys.len() as u64, gen.unique());
    }

    #[test]
    fn the_queries_are_those_of_the_rust_rows() {
        let q = queries(3, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(6 ^ (0xa66 + Shape::MetricYear as u64));
        let (_, first) = Shape::MetricYear.query(&mut rng);
        assert_eq!(q[1]["label"], Shape::MetricYear.label());
        assert_eq!(q[1]["queries"][0]["start"], json!(first.start));
        assert_eq!(q[1]["queries"][0]["metric"], json!(first.metric));
        assert_eq!(q[1]["queries"].as_array().map(Vec::len), Some(3));
        assert_eq!(q[2]["queries"][0]["start"], Value::Null, "everything has no range");
        assert_eq!(q[3]["queries"][0]["by_day"], json!(true));
    }
}
