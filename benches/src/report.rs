//! The tables `compare` prints and writes to BENCHMARKS.md, and the targets
//! of issues 6, 18 and 21 read off them. Only arithmetic on and formatting of figures
//! already measured: nothing here times or checks a contender, so a target
//! missed never fails a run.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use ingest_core::Durability;

use crate::aggregates::{Recorded, ShapeResult, BUILD_BATCH};
use crate::duckdb::DuckRun;
use crate::machine::Machine;
use crate::measure::{Latencies, Rate, Res};
use crate::postgres as pg;
use crate::python::PyRates;

/// One row of the ingest table.
pub struct Row {
    pub contender: String,
    pub n: u64,
    pub setting: String,
    pub rate: Rate,
    pub per_call: Option<Latencies>,
}

/// A ratio the issue sets a target for.
pub struct Target {
    pub what: String,
    pub value: String,
    pub goal: String,
    pub met: bool,
}

/// A peak resident set, and what the process had done when it was read.
pub struct Rss {
    pub what: String,
    pub events: u64,
    pub kib: Option<u64>,
    /// Whether the peak was reset just before, so it covers only `what`.
    pub scoped: bool,
}

/// The SQLite ingest figures the targets and the PostgreSQL ratios divide.
pub struct IngestRates {
    pub floor: Rate,
    /// (batch size, durability, rate) of each submit_batch_json row.
    pub batches: Vec<(usize, Durability, Rate)>,
    pub one_normal: Rate,
    pub one_full: Rate,
    pub threads_full: Rate,
    /// The threads of the group-commit row.
    pub threads: usize,
}

/// The aggregate queries and the store they ran on.
pub struct Aggregates {
    pub events: u64,
    pub unique: u64,
    /// Built in this run, rather than taken from the cache.
    pub built: bool,
    /// For a cached store, what its build measured, if it was recorded.
    pub recorded: Option<Recorded>,
    pub shapes: Vec<ShapeResult>,
}

/// The rows from Python, and the same one-by-one call in Rust.
pub struct Python {
    pub rates: PyRates,
    pub rust: Rate,
    pub rust_lat: Latencies,
    /// Which build of the extension ran: a debug build makes its figures meaningless.
    pub build: &'static str,
}

/// The PostgreSQL server and the rates of its rows.
pub struct Postgres {
    pub url: String,
    /// (contender, events/s) of each row; empty when PostgreSQL was skipped.
    pub rates: Vec<(String, f64)>,
}

/// Everything one run measured.
pub struct Report {
    /// The ingest table, in the order the rows ran.
    pub rows: Vec<Row>,
    pub rss: Vec<Rss>,
    pub ingest: IngestRates,
    /// Events of the one-by-one normal row, named in the notes.
    pub one_n: u64,
    pub original: Rate,
    pub original_n: u64,
    pub aggregates: Aggregates,
    /// Why not, when the Python rows did not run.
    pub python: Result<Python, String>,
    pub postgres: Postgres,
    /// Why not, when DuckDB (h) did not run.
    pub duckdb: Result<DuckRun, String>,
}

impl Report {
    /// The targets of the issue, from this run's figures only.
    pub fn targets(&self) -> Vec<Target> {
        let ing = &self.ingest;
        let t = ing.threads;
        let mut targets = Vec::new();
        let floor_ps = ing.floor.per_sec();
        // Issue 18's goals, which raised issue 6's (0.5x for every batch
        // row, 10x one by one).
        for (batch, durability, rate) in &ing.batches {
            let r = rate.per_sec() / floor_ps;
            let goal = if *batch >= 10_000 { 1.0 } else { 0.8 };
            targets.push(Target {
                what: format!(
                    "submit_batch_json({}) {} / floor (a)",
                    thousands(*batch as f64),
                    durability_name(*durability)
                ),
                value: format!("{r:.2}x"),
                goal: format!(">= {goal:.1}x"),
                met: r >= goal,
            });
        }
        let r = ing.one_normal.per_sec() / self.original.per_sec();
        targets.push(Target {
            what: "submit one by one, normal / original design (b)".into(),
            value: format!("{r:.1}x"),
            goal: ">= 20x".into(),
            met: r >= 20.0,
        });
        let r = ing.threads_full.per_sec() / ing.one_full.per_sec();
        targets.push(Target {
            what: format!("{t} threads full / 1 thread full (group commit)"),
            value: format!("{r:.2}x"),
            goal: ">= 5x".into(),
            met: r >= 5.0,
        });
        let agg_events = self.aggregates.events;
        let at = if agg_events >= 10_000_000 {
            String::new()
        } else {
            format!(" (at {}, not 10M)", thousands(agg_events as f64))
        };
        for s in &self.aggregates.shapes {
            let (median, p99) = (s.ingest.median_us(), s.ingest.p99_us());
            let ratio = s.scan.median_us() / median.max(1e-3);
            targets.push(Target {
                what: format!("{}: median, p99{at}", s.shape.label()),
                value: format!("{median:.0} µs, {p99:.0} µs"),
                goal: "< 1 000 µs, < 5 000 µs".into(),
                met: median < 1000.0 && p99 < 5000.0,
            });
            targets.push(Target {
                what: format!("{}: full scan / ingest{at}", s.shape.label()),
                value: format!("{}x", self::ratio(ratio)),
                goal: ">= 1 000x".into(),
                met: ratio >= 1000.0,
            });
        }
        if let Ok(py) = &self.python {
            let p = &py.rates;
            let r = p.batch_per_sec / p.pure_per_sec;
            targets.push(Target {
                what: "Python submit_batch / pure-Python sqlite3".into(),
                value: format!("{r:.1}x"),
                goal: ">= 20x".into(),
                met: r >= 20.0,
            });
            let rust_json = ing
                .batches
                .iter()
                .find(|&&(batch, d, _)| batch as u64 == p.batch && d == Durability::Normal);
            if let Some((_, _, rate)) = rust_json {
                let r = p.batch_per_sec / rate.per_sec();
                targets.push(Target {
                    what: format!(
                        "Python submit_batch({b}) of dicts / Rust submit_batch_json({b}), normal",
                        b = thousands(p.batch as f64)
                    ),
                    value: format!("{r:.2}x"),
                    goal: ">= 0.8x".into(),
                    met: r >= 0.8,
                });
            }
            let r = py.rust.per_sec() / p.submit_per_sec;
            targets.push(Target {
                what: "Rust submit / Python submit, one by one, normal".into(),
                value: format!("{r:.2}x"),
                goal: "<= 2x".into(),
                met: r <= 2.0,
            });
        }
        if let Ok(d) = &self.duckdb {
            duckdb_targets(d, &mut targets);
        }
        let pg = |label: &str| self.pg_rate(label);
        if let (Some(p), Some(floor)) = (pg("one by one"), pg("pgbench")) {
            let r = p / floor;
            targets.push(Target {
                what: "PostgreSQL one by one, normal / pgbench floor (g)".into(),
                value: format!("{r:.2}x"),
                goal: ">= 2x".into(),
                met: r >= 2.0,
            });
        }
        if let (Some(p), Some(floor)) = (pg("batches of 1000"), pg("rows per COPY")) {
            let r = p / floor;
            targets.push(Target {
                what: "PostgreSQL submit_batch_json(1 000), normal / COPY floor (g)".into(),
                value: format!("{r:.2}x"),
                goal: ">= 0.5x".into(),
                met: r >= 0.5,
            });
        }
        if let Some(r) = self.largest_rss() {
            let mib = r.kib.map(|k| k as f64 / 1024.0);
            let at = if r.events >= 10_000_000 {
                String::new()
            } else {
                format!(" (at {}, not 10M)", thousands(r.events as f64))
            };
            targets.push(Target {
                what: format!("peak RSS ingesting {} events{at}", thousands(r.events as f64)),
                value: mib.map_or("unknown".into(), |m| format!("{m:.0} MB")),
                goal: "< 200 MB".into(),
                met: mib.is_some_and(|m| m < 200.0),
            });
        }
        targets
    }

    /// The rate of the first PostgreSQL row whose contender holds `label`.
    fn pg_rate(&self, label: &str) -> Option<f64> {
        self.postgres
            .rates
            .iter()
            .find(|(l, _)| l.contains(label))
            .map(|(_, r)| *r)
    }

    /// The peak the memory target is judged on: that of the most events.
    fn largest_rss(&self) -> Option<&Rss> {
        self.rss.iter().max_by_key(|r| r.events)
    }

    /// The tables and their notes, as printed and as BENCHMARKS.md holds them.
    pub fn markdown(&self) -> Res<String> {
        let targets = self.targets();
        let mut md = String::new();
        self.ingest_table(&mut md)?;
        self.aggregates_table(&mut md)?;
        self.python_table(&mut md)?;
        self.duckdb_table(&mut md)?;
        self.postgres_table(&mut md)?;
        targets_table(&mut md, &targets)?;
        self.notes(&mut md)?;
        Ok(md)
    }

    fn ingest_table(&self, md: &mut String) -> Res<()> {
        writeln!(
            md,
            "## Ingest (events/s; each row a new store; only calls into the contender timed)\n"
        )?;
        writeln!(
            md,
            "| contender | N | setting | events/s | per call median µs | per call p99 µs |"
        )?;
        writeln!(md, "| --- | ---: | --- | ---: | ---: | ---: |")?;
        for r in &self.rows {
            let (med, p99) = r
                .per_call
                .as_ref()
                .map_or(("".into(), "".into()), |l| (us(l.median_us()), us(l.p99_us())));
            writeln!(
                md,
                "| {} | {} | {} | {} | {med} | {p99} |",
                r.contender,
                thousands(r.n as f64),
                r.setting,
                thousands(r.rate.per_sec())
            )?;
        }
        Ok(())
    }

    fn aggregates_table(&self, md: &mut String) -> Res<()> {
        let agg = &self.aggregates;
        writeln!(
            md,
            "\n## Aggregates on a store of {} events ({} distinct; {})\n",
            thousands(agg.events as f64),
            thousands(agg.unique as f64),
            if agg.built {
                "built in this run"
            } else {
                "cached from an earlier run of the same core schema"
            }
        )?;
        if let (false, Some(rec)) = (agg.built, &agg.recorded) {
            writeln!(
                md,
                "The store was built at {} with submit_batch_json({}), normal, at {} events/s (a figure of that run).\n",
                rec.built_at,
                thousands(BUILD_BATCH as f64),
                thousands(rec.events_per_sec)
            )?;
        }
        writeln!(
            md,
            "Before the queries the earlier runs' writes are flushed (`sync`, and a PostgreSQL `CHECKPOINT`) and the store file \
             is read once, so every contender starts from the same quiet disk and warm page cache. \
             Ranges start at a random millisecond (edges cut hours, days and months); each run a different client, metric or range. \
             Full scan: `SELECT COUNT(*), SUM(amount), MIN(amount), MAX(amount) FROM events NOT INDEXED WHERE ...` on the same file, \
             the original design's aggregate (b); indexed SQL: the same query with SQLite free to use the core's indexes, \
             the best plain SQL can do there without rollups. Every scanned query's answer, both ways, equals ingest's \
             (count, min, max exact; sum to 1e-9 relative).\n"
        )?;
        writeln!(
            md,
            "| query shape | ingest runs | median µs | p99 µs | scans | full scan median µs | full scan / ingest | indexed SQL median µs | indexed SQL / ingest |"
        )?;
        writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")?;
        for s in &agg.shapes {
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {}x | {} | {}x |",
                s.shape.label(),
                s.ingest.len(),
                us(s.ingest.median_us()),
                us(s.ingest.p99_us()),
                s.verified,
                us(s.scan.median_us()),
                thousands(s.scan.median_us() / s.ingest.median_us().max(1e-3)),
                us(s.indexed.median_us()),
                ratio(s.indexed.median_us() / s.ingest.median_us().max(1e-3))
            )?;
        }
        Ok(())
    }

    fn python_table(&self, md: &mut String) -> Res<()> {
        writeln!(md, "\n## From Python (durability normal)\n")?;
        let py = match &self.python {
            Ok(py) => py,
            Err(why) => {
                writeln!(md, "Not run: {why}.")?;
                return Ok(());
            }
        };
        let (p, rust, rust_lat) = (&py.rates, &py.rust, &py.rust_lat);
        writeln!(
            md,
            "| contender | N | events/s | per call median µs | per call p99 µs |"
        )?;
        writeln!(md, "| --- | ---: | ---: | ---: | ---: |")?;
        writeln!(
            md,
            "| (e) Python `Ingestor.submit_batch` of dicts, batches of {} | {} | {} | | |",
            thousands(p.batch as f64),
            thousands(p.batch_events as f64),
            thousands(p.batch_per_sec)
        )?;
        writeln!(
            md,
            "| (e) pure-Python sqlite3, same rules, one transaction per batch of {} | {} | {} | | |",
            thousands(p.batch as f64),
            thousands(p.batch_events as f64),
            thousands(p.pure_per_sec)
        )?;
        writeln!(
            md,
            "| (e) Python `Ingestor.submit(dict)` one by one | {} | {} | {} | {} |",
            thousands(p.submit_events as f64),
            thousands(p.submit_per_sec),
            us(p.submit_median_us),
            us(p.submit_p99_us)
        )?;
        writeln!(
            md,
            "| (c) Rust `Ingestor::submit(&Value)` one by one | {} | {} | {} | {} |",
            thousands(rust.events as f64),
            thousands(rust.per_sec()),
            us(rust_lat.median_us()),
            us(rust_lat.p99_us())
        )?;
        writeln!(md, "\nPython {}; the `ingest` extension: {}.", p.python, py.build)?;
        Ok(())
    }

    fn duckdb_table(&self, md: &mut String) -> Res<()> {
        writeln!(md, "\n## DuckDB beside ingest, from Python (h)\n")?;
        let d = match &self.duckdb {
            Ok(d) => d,
            Err(why) => {
                writeln!(md, "Not run: {why}.")?;
                return Ok(());
            }
        };
        writeln!(
            md,
            "DuckDB {} (PyPI, default settings) and the `ingest` extension in one Python {} process \
             (`benches/duckdb_compare.py`). Writes: the same events, each side on a new store; ingest's \
             `submit_batch` takes the raw dicts (durability normal) and normalises them, DuckDB's \
             `INSERT OR IGNORE` takes the rows already normalised (untimed) into a table whose primary key is \
             ingest's dedup key `(ts, client_id, metric, amount)`, each batch handed over as a CSV file it reads \
             (the file's writing timed), each batch its own transaction. Both end with exactly the distinct events.\n",
            d.duckdb, d.python
        )?;
        writeln!(
            md,
            "| batch | N | ingest `submit_batch` events/s | DuckDB `INSERT OR IGNORE` events/s | ingest / DuckDB |"
        )?;
        writeln!(md, "| ---: | ---: | ---: | ---: | ---: |")?;
        for w in &d.writes {
            writeln!(
                md,
                "| {} | {} | {} | {} | {:.2}x |",
                thousands(w.batch as f64),
                thousands(w.duckdb.events as f64),
                thousands(w.ingest.per_sec()),
                thousands(w.duckdb.per_sec()),
                w.ratio()
            )?;
        }
        for (i, a) in d.aggregates.iter().enumerate() {
            let store = if i == 0 {
                "the store of (d)"
            } else {
                "a store of the first tenth of its events (built and cached like it)"
            };
            writeln!(
                md,
                "\nAggregates on {store} ({} events, {} distinct) and on DuckDB's copy of the same events{}: \
                 the queries of (d), each run by both; DuckDB's SQL is `SELECT count(*), sum(amount), min(amount), \
                 max(amount) FROM events WHERE ...` (and `GROUP BY` the UTC day), and every answer of it equals ingest's \
                 (count, min, max exact; sum to 1e-9 relative).\n",
                thousands(a.agg_events as f64),
                thousands(a.agg_unique as f64),
                a.load_per_sec
                    .map_or(" (loaded in an earlier run, cached)".to_string(), |r| format!(
                        " (loaded in this run by one `INSERT OR IGNORE ... SELECT` from `read_json`, {} events/s)",
                        thousands(r)
                    ))
            )?;
            writeln!(
                md,
                "| query shape | runs | ingest median µs | ingest p99 µs | DuckDB median µs | DuckDB p99 µs | DuckDB / ingest |"
            )?;
            writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")?;
            for s in &a.shapes {
                writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {}x |",
                    s.shape.label(),
                    s.runs,
                    us(s.ingest_median_us),
                    us(s.ingest_p99_us),
                    us(s.duckdb_median_us),
                    us(s.duckdb_p99_us),
                    ratio(s.ratio())
                )?;
            }
        }
        Ok(())
    }

    fn postgres_table(&self, md: &mut String) -> Res<()> {
        writeln!(md, "\n## PostgreSQL beside SQLite (ratios from this run)\n")?;
        let pg_rates = &self.postgres.rates;
        if pg_rates.is_empty() {
            writeln!(md, "Not run: PostgreSQL was skipped.")?;
            return Ok(());
        }
        let t = self.ingest.threads;
        let rate = |label: &str| self.pg_rate(label);
        let sqlite_batch = self
            .ingest
            .batches
            .iter()
            .find(|(b, d, _)| *b == 1_000 && *d == Durability::Normal)
            .map(|(_, _, r)| r.per_sec());
        // Asked only now, after every contender ran, so no query of it
        // lands among the timed ones.
        writeln!(
            md,
            "PostgreSQL {} on 127.0.0.1, default settings; the same library, data and checks as the SQLite rows.\n",
            pg::server_version(&self.postgres.url).unwrap_or_else(|e| format!("(version unknown: {e})"))
        )?;
        writeln!(md, "| measure | ratio |")?;
        writeln!(md, "| --- | ---: |")?;
        if let (Some(p), Some(s)) = (rate("batches of 1000"), sqlite_batch) {
            writeln!(
                md,
                "| submit_batch_json(1 000), normal: PostgreSQL / SQLite | {:.2}x |",
                p / s
            )?;
        }
        if let Some(p) = rate("one by one") {
            writeln!(
                md,
                "| one by one, normal: PostgreSQL / SQLite | {:.2}x |",
                p / self.ingest.one_normal.per_sec()
            )?;
        }
        if let (Some(p), Some(floor)) = (rate("batches of 1000"), rate("rows per COPY")) {
            writeln!(
                md,
                "| submit_batch_json(1 000), normal / COPY floor (g), PostgreSQL | {:.2}x |",
                p / floor
            )?;
        }
        if let (Some(p), Some(floor)) = (rate("one by one"), rate("pgbench")) {
            writeln!(
                md,
                "| one by one, normal / pgbench floor (g), PostgreSQL | {:.2}x |",
                p / floor
            )?;
        }
        if let (Some(one), Some(many)) = (rate("1 thread(s)"), rate(&format!("{t} thread(s)"))) {
            writeln!(
                md,
                "| {t} threads full / 1 thread full, PostgreSQL (group commit) | {:.2}x |",
                many / one
            )?;
        }
        Ok(())
    }

    fn notes(&self, md: &mut String) -> Res<()> {
        let (original_n, one_n) = (self.original_n, self.one_n);
        writeln!(
            md,
            "\nRates are per event, so rows with different N compare: each row runs on the first N events of the same \
             stream. The original design (b) runs on {original_n} events because it is slow; ingest one by one runs on \
             {one_n}, and a bigger store only slows it, so that ratio errs against ingest. The floor (a) writes rows \
             normalised beforehand; ingest starts from JSON text and normalises, deduplicates, keeps rollups at three \
             levels and commits, all timed. Per call: per batch for the batch rows, per event otherwise."
        )?;
        if let Some(r) = self.largest_rss() {
            writeln!(
                md,
                "\nPeak RSS: VmHWM of the process {} {} ({} events).",
                if r.scoped {
                    "reset just before, read just after"
                } else {
                    "since it started, read after"
                },
                r.what,
                thousands(r.events as f64),
            )?;
        }
        Ok(())
    }
}

/// Issue 18's targets against DuckDB: writes at every batch size, and each
/// shape's speed-up (10x at 1M events, 100x at 10M) and latency from Python.
fn duckdb_targets(d: &DuckRun, targets: &mut Vec<Target>) {
    for w in &d.writes {
        let r = w.ratio();
        targets.push(Target {
            what: format!(
                "Python submit_batch({b}) / DuckDB INSERT OR IGNORE({b}) (h)",
                b = thousands(w.batch as f64)
            ),
            value: format!("{r:.2}x"),
            goal: ">= 2x".into(),
            met: r >= 2.0,
        });
    }
    for a in &d.aggregates {
        let goal = a.goal();
        let at = match a.agg_events {
            10_000_000 | 1_000_000 => format!(", {}M events", a.agg_events / 1_000_000),
            n => format!(
                " (at {}, not {})",
                thousands(n as f64),
                if goal > 10.0 { "10M" } else { "1M" }
            ),
        };
        for s in &a.shapes {
            let r = s.ratio();
            targets.push(Target {
                what: format!("{}: DuckDB / ingest, from Python (h){at}", s.shape.label()),
                value: format!("{}x", ratio(r)),
                goal: format!(">= {goal:.0}x"),
                met: r >= goal,
            });
            let (median, p99) = (s.ingest_median_us, s.ingest_p99_us);
            targets.push(Target {
                what: format!("{}: median, p99 from Python{at}", s.shape.label()),
                value: format!("{median:.0} µs, {p99:.0} µs"),
                goal: "< 1 000 µs, < 5 000 µs".into(),
                met: median < 1000.0 && p99 < 5000.0,
            });
        }
    }
}

fn targets_table(md: &mut String, targets: &[Target]) -> Res<()> {
    writeln!(md, "\n## Targets (ratios from this run)\n")?;
    writeln!(md, "| target | measured | goal | met |")?;
    writeln!(md, "| --- | ---: | --- | --- |")?;
    for t in targets {
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.what,
            t.value,
            t.goal,
            if t.met { "yes" } else { "**no**" }
        )?;
    }
    Ok(())
}

/// What BENCHMARKS.md says above the tables: when, how and on what they were measured.
pub struct Header<'a> {
    pub started: DateTime<Utc>,
    /// The make command that ran the harness, if one did.
    pub command: Option<String>,
    /// The harness's own command line.
    pub argv: Vec<String>,
    pub machine: &'a Machine,
    pub seed: u64,
}

/// BENCHMARKS.md: the header, then `md` from [`Report::markdown`].
pub fn document(h: &Header<'_>, md: &str) -> Res<String> {
    let mut doc = String::new();
    writeln!(doc, "# Benchmarks\n")?;
    writeln!(
        doc,
        "Written by `benches/src/bin/compare.rs` (issue 6); regenerate with `make bench`, do not edit by hand. \
         Every figure below comes from one process run on one data set, so the ratios compare like with like.\n"
    )?;
    writeln!(doc, "- Date: {} UTC", h.started.format("%Y-%m-%d %H:%M"))?;
    match &h.command {
        Some(c) => writeln!(doc, "- Command: `{c}`, which ran `{}`", h.argv.join(" "))?,
        None => writeln!(doc, "- Command: `{}`", h.argv.join(" "))?,
    }
    let machine = h.machine;
    let pageout = machine.pageout_after.map_or(String::new(), |after| {
        format!(
            "; the kernel's DAMON pages out memory idle for {} s, the page cache included, so a store \
             read before its queries can be read from disk again",
            after.as_secs()
        )
    });
    writeln!(
        doc,
        "- Machine: {} × {}, {:.1} GiB memory, Linux {}; shared with other work while measured{pageout}",
        machine.cpus, machine.model, machine.memory_gib, machine.kernel
    )?;
    writeln!(
        doc,
        "- Build: {}, release profile; SQLite {} (bundled, the same for the core and the floor); {}",
        machine.rustc, machine.sqlite, machine.core
    )?;
    writeln!(
        doc,
        "- Data: seed {}; 100 clients, 10 metrics, one year of timestamps with up to an hour of lateness, \
         about 10% exact retries in mixed spellings (benches/src/gen.rs); every contender's answers are checked \
         against the number of distinct events\n",
        h.seed
    )?;
    doc.push_str(md);
    Ok(doc)
}

pub fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Full => "full",
        Durability::Normal => "normal",
    }
}

/// `1234567.8` as `1 234 568`: wide numbers stay readable in a table.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A ratio: two decimals below 10, whole above.
pub fn ratio(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else {
        thousands(x)
    }
}

/// Microseconds: one decimal below 100, whole above.
pub fn us(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        thousands(x)
    }
}

/// The name of the section the `prune` program keeps in BENCHMARKS.md.
pub const PRUNE: &str = "prune";

/// The name of the section the HTTP benchmark (`benches/http/bench.py`,
/// `make bench-http`) keeps in BENCHMARKS.md, with these same markers.
pub const HTTP: &str = "http";

/// The sections other programs write into BENCHMARKS.md, in the order they
/// follow `compare`'s own part of it.
pub const KEPT: [&str; 2] = [PRUNE, HTTP];

/// The markers around a section that another program of the harness keeps
/// in the same document (`prune`'s and the HTTP benchmark's in BENCHMARKS.md).
fn markers(name: &str) -> (String, String) {
    (format!("<!-- {name}: begin -->"), format!("<!-- {name}: end -->"))
}

/// The section `name` of `doc`, markers included, if it has one.
pub fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let (begin, end) = markers(name);
    let from = doc.find(&begin)?;
    let to = doc[from..].find(&end)? + from + end.len();
    Some(&doc[from..to])
}

/// `doc` with its section `name` replaced by `body` between markers, or
/// with that section added at the end when it has none.
pub fn with_section(doc: &str, name: &str, body: &str) -> String {
    let (begin, end) = markers(name);
    let new = format!("{begin}\n{}\n{end}", body.trim_end());
    match section(doc, name) {
        Some(old) => doc.replacen(old, &new, 1),
        None if doc.is_empty() => format!("{new}\n"),
        None => format!("{}\n\n{new}\n", doc.trim_end()),
    }
}

/// `doc` followed by every section of [`KEPT`] that `old` has, as `old`
/// has it: what `compare` writes over a BENCHMARKS.md whose other sections
/// other programs wrote.
pub fn keep_sections(doc: &str, old: &str) -> String {
    let mut out = doc.to_string();
    for name in KEPT {
        if let Some(kept) = section(old, name) {
            out = format!("{}\n\n{kept}\n", out.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_added_then_replaced_and_the_rest_kept() {
        let doc = with_section("# Bench\n\ntable\n", "prune", "## Prune\n\nold");
        assert_eq!(
            section(&doc, "prune"),
            Some("<!-- prune: begin -->\n## Prune\n\nold\n<!-- prune: end -->")
        );
        let doc = with_section(&doc, "prune", "## Prune\n\nnew\n");
        assert!(doc.starts_with("# Bench\n\ntable\n\n<!-- prune: begin -->"), "{doc}");
        assert!(doc.contains("new") && !doc.contains("old"), "{doc}");
        assert_eq!(
            with_section("", "prune", "x"),
            "<!-- prune: begin -->\nx\n<!-- prune: end -->\n"
        );
    }

    #[test]
    fn compare_keeps_every_kept_section() {
        let old = with_section(&with_section("# old\n", HTTP, "http figures"), PRUNE, "prune figures");
        let doc = keep_sections("# new\n", &old);
        assert!(doc.starts_with("# new\n"), "{doc}");
        assert!(!doc.contains("# old"), "{doc}");
        for name in KEPT {
            assert_eq!(section(&doc, name), section(&old, name), "{doc}");
        }
        assert_eq!(keep_sections("# new\n", "# old, no sections\n"), "# new\n");
    }
}
