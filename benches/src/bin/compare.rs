//! Every contender of issue 6 on the same data in one process run, so that
//! a machine that drifts between runs cannot fake a ratio. Prints the table
//! and, unless `--smoke`, writes it with the machine and command to
//! BENCHMARKS.md. Fails (exit 1) when any contender errors or any answer
//! disagrees with the data or with a full scan; never on a timing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use ingest_benches::aggregates::{self, ShapeResult, BUILD_BATCH};
use ingest_benches::gen::{Spec, DEFAULT_SEED};
use ingest_benches::machine::Machine;
use ingest_benches::measure::{peak_rss_kib, reset_peak_rss, Latencies, Rate, Res};
use ingest_benches::postgres::{self as pg, PgJob};
use ingest_benches::python::{self, PyJob, PyRates};
use ingest_benches::report::{durability_name, ratio, thousands, us, Row, Rss, Target};
use ingest_benches::runs::{self, Call};
use ingest_benches::{floor, original};
use ingest_core::Durability;

#[derive(Parser, Debug)]
#[command(about = "Run every contender of issue 6 on the same data and compare them")]
struct Args {
    /// Events for the floor and the submit_batch contenders (the target is 1M).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events in the store the aggregate queries run on (the target is 10M).
    #[arg(long, default_value_t = 10_000_000)]
    aggregate_events: u64,
    /// Events submitted one by one with durability normal [default: min(events, 200000)].
    #[arg(long)]
    one_events: Option<u64>,
    /// Events submitted one by one with durability full, by 1 and by --threads threads taking turns
    /// [default: min(events, 8000)].
    #[arg(long)]
    full_events: Option<u64>,
    /// Events for the original design, which is slow [default: min(events, 20000)].
    #[arg(long)]
    original_events: Option<u64>,
    /// Events for the Python batch contenders; 0 skips Python [default: min(events, 100000)].
    #[arg(long)]
    python_events: Option<u64>,
    /// Events for Python's and Rust's one-by-one submit; 0 skips Python [default: min(events, 20000)].
    #[arg(long)]
    python_submit_events: Option<u64>,
    /// Threads for the group-commit contender.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Timed runs of each aggregate query shape.
    #[arg(long, default_value_t = 200)]
    agg_runs: usize,
    /// Full scans per shape (timed, and compared with ingest's answer).
    #[arg(long, default_value_t = 3)]
    scan_runs: usize,
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Where to write the report (not written with --smoke).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// A quick run that checks every contender and writes nothing.
    #[arg(long)]
    smoke: bool,
    /// Fail when the Python contender cannot run, instead of skipping it.
    #[arg(long)]
    require_python: bool,
    /// The interpreter for the Python contender [default: .venv/bin/python].
    #[arg(long)]
    python: Option<PathBuf>,
    /// The PostgreSQL server for the (f) rows, each in a new schema
    /// [default: $INGEST_BENCH_POSTGRES, else postgres://postgres@127.0.0.1:5432/test].
    #[arg(long)]
    postgres: Option<String>,
    /// Events for the PostgreSQL batch and one-by-one-normal rows; 0 skips PostgreSQL
    /// [default: min(events, 200000)].
    #[arg(long)]
    postgres_events: Option<u64>,
    /// Fail when the PostgreSQL rows cannot run, instead of skipping them.
    #[arg(long)]
    require_postgres: bool,
    /// Where the aggregate stores are kept between runs, and temporary
    /// stores live [default: target/bench-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(msg: &str) {
    eprintln!("compare: {msg}");
}

fn run(args: &Args) -> Res<()> {
    let root = workspace();
    let data_dir = args.data_dir.clone().unwrap_or_else(|| root.join("target/bench-data"));
    std::fs::create_dir_all(&data_dir)?;
    let tmp = tempfile::Builder::new().prefix("run-").tempdir_in(&data_dir)?;
    let dir = tmp.path();
    let spec = Spec {
        events: args.events,
        seed: args.seed,
    };
    let small = |given: Option<u64>, default: u64| given.unwrap_or(default).min(args.events).max(1);
    let one_n = small(args.one_events, 200_000);
    let full_n = small(args.full_events, 8_000);
    let original_n = small(args.original_events, 20_000);
    // Zero skips the Python contender.
    let py_n = args.python_events.unwrap_or(100_000).min(args.events);
    let py_submit_n = args.python_submit_events.unwrap_or(20_000).min(args.events);

    let machine = Machine::probe();
    let started = chrono::Utc::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut rss: Vec<Rss> = Vec::new();

    progress(&format!("(a) floor, {} events", args.events));
    let schema = floor::core_events_schema(dir)?;
    let (floor_rate, _) = floor::run(spec, args.events, &dir.join("floor.db"), &schema)?;
    rows.push(Row {
        contender: "(a) floor: raw rusqlite, rows already normalised".into(),
        n: args.events,
        setting: "one transaction for all rows; WAL, synchronous NORMAL".into(),
        rate: floor_rate,
        per_call: None,
    });

    let mut batch_rates = Vec::new();
    for (batch, durability) in [
        (1_000, Durability::Normal),
        (1_000, Durability::Full),
        (10_000, Durability::Normal),
        (10_000, Durability::Full),
    ] {
        let d = durability_name(durability);
        progress(&format!("(c) submit_batch_json({batch}), {d}, {} events", args.events));
        let scoped = reset_peak_rss();
        let path = dir.join(format!("batch-{batch}-{d}.db"));
        let (rate, lat) = runs::batches(spec, args.events, batch, durability, &path)?;
        rss.push(Rss {
            what: format!("submit_batch_json({batch}), {d}"),
            events: args.events,
            kib: peak_rss_kib(),
            scoped,
        });
        remove_db(&path);
        batch_rates.push((batch, durability, rate));
        rows.push(Row {
            contender: format!("(c) ingest submit_batch_json, batches of {}", thousands(batch as f64)),
            n: args.events,
            setting: format!("durability {d}; one transaction per batch"),
            rate,
            per_call: Some(lat),
        });
    }

    progress(&format!("(c) submit one by one, normal, {one_n} events"));
    let (one_normal, lat) = runs::one_by_one(spec, one_n, Durability::Normal, Call::Json, &dir.join("one-normal.db"))?;
    rows.push(Row {
        contender: "(c) ingest submit_json one by one".into(),
        n: one_n,
        setting: "durability normal; one transaction per event".into(),
        rate: one_normal,
        per_call: Some(lat),
    });

    let t = args.threads;
    progress(&format!(
        "(c) submit one by one, full, 1 and {t} threads taking turns, {full_n} events"
    ));
    let (one_path, many_path) = (dir.join("one-full.db"), dir.join("threads-full.db"));
    let mut sides = runs::side_by_side(
        spec,
        full_n,
        &[1, t],
        runs::ROUNDS,
        Durability::Full,
        &[&one_path, &many_path],
    )?
    .into_iter();
    let (Some((one_full, one_lat)), Some((threads_full, threads_lat))) = (sides.next(), sides.next()) else {
        return Err("side_by_side answered for fewer sides than it was given".into());
    };
    rows.push(Row {
        contender: "(c) ingest submit_json one by one, 1 thread".into(),
        n: full_n,
        setting: "durability full; fsync per commit".into(),
        rate: one_full,
        per_call: Some(one_lat),
    });
    rows.push(Row {
        contender: format!("(c) ingest submit_json one by one, {t} threads"),
        n: full_n,
        setting: "durability full; concurrent calls share a commit (group commit)".into(),
        rate: threads_full,
        per_call: Some(threads_lat),
    });

    let pg_url = args.postgres.clone().unwrap_or_else(|| {
        std::env::var("INGEST_BENCH_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    });
    let pg_n = args.postgres_events.unwrap_or(200_000).min(args.events);
    let pg_usable = if pg_n == 0 {
        Err("skipped with --postgres-events 0".to_string())
    } else {
        pg::usable(&pg_url)
    };
    // (label, events/s) of the PostgreSQL rows, for the ratios below.
    let mut pg_rates: Vec<(String, f64)> = Vec::new();
    match pg_usable {
        Err(why) if args.require_postgres => return Err(format!("the PostgreSQL rows cannot run: {why}").into()),
        Err(why) => progress(&format!("(f) skipped: {why}")),
        Ok(()) => {
            let job = PgJob {
                url: &pg_url,
                spec,
                events: pg_n,
                one_events: pg_n.min(one_n).min(20_000),
                full_events: full_n,
                threads: t,
            };
            for r in pg::run(&job, &progress)? {
                pg_rates.push((r.contender.clone(), r.rate.per_sec()));
                rows.push(Row {
                    contender: r.contender,
                    n: r.n,
                    setting: r.setting,
                    rate: r.rate,
                    per_call: Some(r.per_call),
                });
            }
        }
    }

    progress(&format!("(b) original design, {original_n} events"));
    let (original_rate, lat) = original::ingest(spec, original_n, &dir.join("original.db"))?;
    rows.push(Row {
        contender: "(b) original design: SELECT then INSERT per event".into(),
        n: original_n,
        setting: "autocommit; journal DELETE, synchronous FULL (SQLite defaults)".into(),
        rate: original_rate,
        per_call: Some(lat),
    });

    let agg_spec = Spec {
        events: args.aggregate_events,
        seed: args.seed,
    };
    progress(&format!(
        "(d) aggregate store of {} events (cached under {})",
        args.aggregate_events,
        data_dir.display()
    ));
    // The writes of the runs above (gigabytes of stores, PostgreSQL's
    // WAL) must not be flushed to disk while the queries are timed.
    if !pg_rates.is_empty() {
        pg::checkpoint(&pg_url)?;
    }
    std::process::Command::new("sync").status()?;
    let store = aggregates::store(agg_spec, &data_dir)?;
    if let Some(b) = &store.built {
        rows.push(Row {
            contender: format!(
                "(c) ingest submit_batch_json, batches of {} (aggregate store)",
                thousands(BUILD_BATCH as f64)
            ),
            n: store.events,
            setting: "durability normal; one transaction per batch".into(),
            rate: b.rate,
            per_call: Some(b.batches.clone()),
        });
        rss.push(Rss {
            what: format!("submit_batch_json({BUILD_BATCH}), normal, building the aggregate store"),
            events: store.events,
            kib: b.peak_rss_kib,
            scoped: b.peak_is_build_only,
        });
    }
    let mut shapes: Vec<ShapeResult> = Vec::new();
    for shape in aggregates::Shape::ALL {
        progress(&format!("(d) {}", shape.label()));
        shapes.push(aggregates::run_shape(
            &store,
            shape,
            args.agg_runs,
            args.scan_runs,
            args.seed,
        )?);
    }
    let agg_events = store.events;
    let agg_unique = store.unique;
    let agg_built = store.built.is_some();
    let agg_recorded = store.recorded.clone();
    drop(store);

    let py_bin = args.python.clone().unwrap_or_else(|| root.join(".venv/bin/python"));
    let usable = if py_n == 0 || py_submit_n == 0 {
        Err("skipped with --python-events 0 or --python-submit-events 0".to_string())
    } else {
        python::usable(&py_bin)
    };
    let py: Result<(PyRates, Rate, Latencies), String> = match usable {
        Err(why) if args.require_python => return Err(format!("the Python contender cannot run: {why}").into()),
        Err(why) => {
            progress(&format!("(e) skipped: {why}"));
            Err(why)
        }
        Ok(()) => {
            progress(&format!(
                "(e) Python: batches of 1 000 on {py_n} events, submit on {py_submit_n}"
            ));
            let rates = python::run(&PyJob {
                python: &py_bin,
                script: &root.join("benches/python_compare.py"),
                dir,
                spec,
                batch_events: py_n,
                submit_events: py_submit_n,
                batch: 1_000,
            })?;
            progress(&format!(
                "(e) Rust submit(&Value) one by one, normal, {py_submit_n} events"
            ));
            let (rust, lat) = runs::one_by_one(
                spec,
                py_submit_n,
                Durability::Normal,
                Call::Value,
                &dir.join("rust-value.db"),
            )?;
            Ok((rates, rust, lat))
        }
    };

    // Targets, from this run's figures only.
    let mut targets = Vec::new();
    let floor_ps = floor_rate.per_sec();
    for (batch, durability, rate) in &batch_rates {
        let r = rate.per_sec() / floor_ps;
        targets.push(Target {
            what: format!(
                "submit_batch_json({}) {} / floor (a)",
                thousands(*batch as f64),
                durability_name(*durability)
            ),
            value: format!("{r:.2}x"),
            goal: ">= 0.5x".into(),
            met: r >= 0.5,
        });
    }
    let r = one_normal.per_sec() / original_rate.per_sec();
    targets.push(Target {
        what: "submit one by one, normal / original design (b)".into(),
        value: format!("{r:.1}x"),
        goal: ">= 10x".into(),
        met: r >= 10.0,
    });
    let r = threads_full.per_sec() / one_full.per_sec();
    targets.push(Target {
        what: format!("{t} threads full / 1 thread full (group commit)"),
        value: format!("{r:.2}x"),
        goal: ">= 5x".into(),
        met: r >= 5.0,
    });
    let at = if agg_events >= 10_000_000 {
        String::new()
    } else {
        format!(" (at {}, not 10M)", thousands(agg_events as f64))
    };
    for s in &shapes {
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
    if let Ok((p, rust, _)) = &py {
        let r = p.batch_per_sec / p.pure_per_sec;
        targets.push(Target {
            what: "Python submit_batch / pure-Python sqlite3".into(),
            value: format!("{r:.1}x"),
            goal: ">= 20x".into(),
            met: r >= 20.0,
        });
        let r = rust.per_sec() / p.submit_per_sec;
        targets.push(Target {
            what: "Rust submit / Python submit, one by one, normal".into(),
            value: format!("{r:.2}x"),
            goal: "<= 2x".into(),
            met: r <= 2.0,
        });
    }
    // A cached store's build ran in an earlier process: its peak is shown,
    // marked as such, only when this run ingested less.
    if let Some(rec) = &agg_recorded {
        if rss.iter().all(|r| r.events < agg_events) {
            rss.push(Rss {
                what: format!(
                    "submit_batch_json({BUILD_BATCH}), normal, building the aggregate store (in the run of {}, not this one)",
                    rec.built_at
                ),
                events: agg_events,
                kib: rec.peak_rss_kib,
                scoped: rec.peak_is_build_only,
            });
        }
    }
    let largest = rss.iter().max_by_key(|r| r.events);
    if let Some(r) = largest {
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

    // The report.
    let mut md = String::new();
    writeln!(
        md,
        "## Ingest (events/s; each row a new store; only calls into the contender timed)\n"
    )?;
    writeln!(
        md,
        "| contender | N | setting | events/s | per call median µs | per call p99 µs |"
    )?;
    writeln!(md, "| --- | ---: | --- | ---: | ---: | ---: |")?;
    for r in &rows {
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
    writeln!(
        md,
        "\n## Aggregates on a store of {} events ({} distinct; {})\n",
        thousands(agg_events as f64),
        thousands(agg_unique as f64),
        if agg_built {
            "built in this run"
        } else {
            "cached from an earlier run of the same core schema"
        }
    )?;
    if let (false, Some(rec)) = (agg_built, &agg_recorded) {
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
    for s in &shapes {
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
    writeln!(md, "\n## From Python (durability normal)\n")?;
    match &py {
        Ok((p, rust, rust_lat)) => {
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
            writeln!(
                md,
                "\nPython {}; the `ingest` extension: {}.",
                p.python,
                python_build(&py_bin)
            )?;
        }
        Err(why) => writeln!(md, "Not run: {why}.")?,
    }
    writeln!(md, "\n## PostgreSQL beside SQLite (ratios from this run)\n")?;
    if pg_rates.is_empty() {
        writeln!(md, "Not run: PostgreSQL was skipped.")?;
    } else {
        let rate = |label: &str| pg_rates.iter().find(|(l, _)| l.contains(label)).map(|(_, r)| *r);
        let sqlite_batch = batch_rates
            .iter()
            .find(|(b, d, _)| *b == 1_000 && *d == Durability::Normal)
            .map(|(_, _, r)| r.per_sec());
        writeln!(
            md,
            "PostgreSQL {} on 127.0.0.1, default settings; the same library, data and checks as the SQLite rows.\n",
            pg::server_version(&pg_url).unwrap_or_else(|e| format!("(version unknown: {e})"))
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
                p / one_normal.per_sec()
            )?;
        }
        if let (Some(one), Some(many)) = (rate("1 thread(s)"), rate(&format!("{t} thread(s)"))) {
            writeln!(
                md,
                "| {t} threads full / 1 thread full, PostgreSQL (group commit) | {:.2}x |",
                many / one
            )?;
        }
    }
    writeln!(md, "\n## Targets (ratios from this run)\n")?;
    writeln!(md, "| target | measured | goal | met |")?;
    writeln!(md, "| --- | ---: | --- | --- |")?;
    for t in &targets {
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.what,
            t.value,
            t.goal,
            if t.met { "yes" } else { "**no**" }
        )?;
    }
    writeln!(
        md,
        "\nRates are per event, so rows with different N compare: each row runs on the first N events of the same \
         stream. The original design (b) runs on {original_n} events because it is slow; ingest one by one runs on \
         {one_n}, and a bigger store only slows it, so that ratio errs against ingest. The floor (a) writes rows \
         normalised beforehand; ingest starts from JSON text and normalises, deduplicates, keeps rollups at three \
         levels and commits, all timed. Per call: per batch for the batch rows, per event otherwise."
    )?;
    if let Some(r) = largest {
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
    println!("{md}");

    if args.smoke {
        progress("smoke run: every contender ran and agreed; nothing written");
        return Ok(());
    }
    let command = std::env::var("INGEST_BENCH_COMMAND").ok();
    let argv: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                // Relative to the workspace, so the file does not name a home directory.
                Path::new(&a)
                    .strip_prefix(&root)
                    .map_or(a.clone(), |p| p.display().to_string())
            } else {
                a
            }
        })
        .collect();
    let mut doc = String::new();
    writeln!(doc, "# Benchmarks\n")?;
    writeln!(
        doc,
        "Written by `benches/src/bin/compare.rs` (issue 6); regenerate with `make bench`, do not edit by hand. \
         Every figure below comes from one process run on one data set, so the ratios compare like with like.\n"
    )?;
    writeln!(doc, "- Date: {} UTC", started.format("%Y-%m-%d %H:%M"))?;
    match &command {
        Some(c) => writeln!(doc, "- Command: `{c}`, which ran `{}`", argv.join(" "))?,
        None => writeln!(doc, "- Command: `{}`", argv.join(" "))?,
    }
    writeln!(
        doc,
        "- Machine: {} × {}, {:.1} GiB memory, Linux {}; shared with other work while measured",
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
        args.seed
    )?;
    doc.push_str(&md);
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        std::env::current_dir()?.join(&args.out)
    };
    std::fs::write(&out, doc)?;
    progress(&format!("wrote {}", out.display()));
    Ok(())
}

/// Which build of the extension the venv holds, from the stamps mk/python.mk
/// and mk/bench.mk leave: a debug build makes the Python figures meaningless.
fn python_build(py_bin: &Path) -> &'static str {
    let Some(venv) = py_bin.parent().and_then(Path::parent) else {
        return "build unknown";
    };
    if venv.join(".ingest-python-release").exists() {
        "release build"
    } else if venv.join(".ingest-python-dev").exists() {
        "**debug build**: its figures say little; `make bench` uses a release build in a venv of its own"
    } else {
        "build unknown"
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}
