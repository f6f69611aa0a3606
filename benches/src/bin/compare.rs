//! Every contender of issue 6 on the same data in one process run, so that
//! a machine that drifts between runs cannot fake a ratio. Prints the table
//! and, unless `--smoke`, writes it with the machine and command to
//! BENCHMARKS.md. Fails (exit 1) when any contender errors or any answer
//! disagrees with the data or with a full scan; never on a timing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Parser;
use ingest_benches::aggregates::{self, ShapeResult, BUILD_BATCH};
use ingest_benches::duckdb::{self as duck, DuckJob, DuckRun};
use ingest_benches::gen::{Spec, DEFAULT_SEED};
use ingest_benches::machine::Machine;
use ingest_benches::measure::{peak_rss_kib, reset_peak_rss, Rate, Res};
use ingest_benches::postgres::{self as pg, PgJob};
use ingest_benches::python::{self, PyJob};
use ingest_benches::report::{
    self, durability_name, thousands, Aggregates, Header, IngestRates, Postgres, Report, Row, Rss,
};
use ingest_benches::runs::{self, Call};
use ingest_benches::{floor, original};
use ingest_core::Durability;
use tempfile::TempDir;

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
    /// Fail when a Python contender ((e), or DuckDB (h)) cannot run, instead of skipping it.
    #[arg(long)]
    require_python: bool,
    /// Events for DuckDB's and ingest's write rows from Python (h), at each batch size;
    /// 0 skips DuckDB [default: events].
    #[arg(long)]
    duckdb_events: Option<u64>,
    /// The interpreter for the Python contenders (e) and (h) [default: .venv/bin/python].
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

/// Every contender in turn, each appending its rows to the ingest table in
/// the order they ran, then the report. Any step that errors, or finds an
/// answer that disagrees with the data, ends the run.
fn run(args: &Args) -> Res<()> {
    let setup = Setup::prepare(args)?;
    let machine = Machine::probe();
    let started = Utc::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut rss: Vec<Rss> = Vec::new();

    let floor = floor_row(&setup, &mut rows)?;
    let batches = batch_rows(&setup, &mut rows, &mut rss)?;
    let one_normal = one_by_one_row(&setup, &mut rows)?;
    let (one_full, threads_full) = full_rows(&setup, &mut rows)?;
    let postgres = postgres_rows(&setup, &mut rows)?;
    let original = original_row(&setup, &mut rows)?;
    let (aggregates, agg_store) = aggregate_rows(&setup, &postgres, &mut rows, &mut rss)?;
    let python = python_rows(&setup)?;
    let duckdb = duckdb_rows(&setup, &aggregates, &agg_store, &mut rows)?;

    let report = Report {
        rows,
        rss,
        ingest: IngestRates {
            floor,
            batches,
            one_normal,
            one_full,
            threads_full,
            threads: args.threads,
        },
        one_n: setup.one_n,
        original,
        original_n: setup.original_n,
        aggregates,
        python,
        postgres,
        duckdb,
    };
    let md = report.markdown()?;
    println!("{md}");
    if args.smoke {
        progress("smoke run: every contender ran and agreed; nothing written");
        return Ok(());
    }
    write_benchmarks_md(&setup, &machine, started, &md)
}

/// Where the run keeps its stores, and how many events each contender gets.
struct Setup<'a> {
    args: &'a Args,
    root: PathBuf,
    /// The interpreter of the Python contenders (e) and (h).
    python: PathBuf,
    /// The cached aggregate stores, and `tmp` inside it.
    data_dir: PathBuf,
    /// Every other store of the run, removed when the run ends.
    tmp: TempDir,
    /// The seeded stream; each contender takes its first N events.
    spec: Spec,
    one_n: u64,
    full_n: u64,
    original_n: u64,
    /// Zero skips the Python contender.
    py_n: u64,
    py_submit_n: u64,
    /// Zero skips PostgreSQL.
    pg_n: u64,
    /// Zero skips DuckDB.
    duck_n: u64,
    /// The DuckDB version the interpreter imports, or why it cannot run.
    duck_version: Result<String, String>,
}

impl<'a> Setup<'a> {
    fn prepare(args: &'a Args) -> Res<Self> {
        let root = workspace();
        let data_dir = args.data_dir.clone().unwrap_or_else(|| root.join("target/bench-data"));
        std::fs::create_dir_all(&data_dir)?;
        let tmp = tempfile::Builder::new().prefix("run-").tempdir_in(&data_dir)?;
        let small = |given: Option<u64>, default: u64| given.unwrap_or(default).min(args.events).max(1);
        let duck_n = args.duckdb_events.unwrap_or(args.events).min(args.events);
        let python = args.python.clone().unwrap_or_else(|| root.join(".venv/bin/python"));
        // Asked before any contender runs, so a missing DuckDB fails a
        // --require-python run at once rather than after every other row.
        let duck_version = if duck_n == 0 {
            Err("skipped with --duckdb-events 0".to_string())
        } else {
            duck::usable(&python)
        };
        if let (Err(why), true) = (&duck_version, args.require_python) {
            return Err(format!("the DuckDB contender cannot run: {why}").into());
        }
        Ok(Setup {
            args,
            root,
            python,
            data_dir,
            tmp,
            spec: Spec {
                events: args.events,
                seed: args.seed,
            },
            one_n: small(args.one_events, 200_000),
            full_n: small(args.full_events, 8_000),
            original_n: small(args.original_events, 20_000),
            py_n: args.python_events.unwrap_or(100_000).min(args.events),
            py_submit_n: args.python_submit_events.unwrap_or(20_000).min(args.events),
            pg_n: args.postgres_events.unwrap_or(200_000).min(args.events),
            duck_n,
            duck_version,
        })
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// (a) The floor the batch rows are held to: raw rusqlite writing the same
/// rows, normalised beforehand.
fn floor_row(s: &Setup<'_>, rows: &mut Vec<Row>) -> Res<Rate> {
    let events = s.args.events;
    progress(&format!("(a) floor, {events} events"));
    let schema = floor::core_events_schema(s.dir())?;
    let (rate, _) = floor::run(s.spec, events, &s.dir().join("floor.db"), &schema)?;
    rows.push(Row {
        contender: "(a) floor: raw rusqlite, rows already normalised".into(),
        n: events,
        setting: "one transaction for all rows; WAL, synchronous NORMAL".into(),
        rate,
        per_call: None,
    });
    Ok(rate)
}

/// (c) submit_batch_json at two batch sizes and both durabilities, each with
/// its own peak RSS.
fn batch_rows(s: &Setup<'_>, rows: &mut Vec<Row>, rss: &mut Vec<Rss>) -> Res<Vec<(usize, Durability, Rate)>> {
    let events = s.args.events;
    let mut rates = Vec::new();
    for (batch, durability) in [
        (1_000, Durability::Normal),
        (1_000, Durability::Full),
        (10_000, Durability::Normal),
        (10_000, Durability::Full),
    ] {
        let d = durability_name(durability);
        progress(&format!("(c) submit_batch_json({batch}), {d}, {events} events"));
        let scoped = reset_peak_rss();
        let path = s.dir().join(format!("batch-{batch}-{d}.db"));
        let (rate, lat) = runs::batches(s.spec, events, batch, durability, &path)?;
        rss.push(Rss {
            what: format!("submit_batch_json({batch}), {d}"),
            events,
            kib: peak_rss_kib(),
            scoped,
        });
        remove_db(&path);
        rates.push((batch, durability, rate));
        rows.push(Row {
            contender: format!("(c) ingest submit_batch_json, batches of {}", thousands(batch as f64)),
            n: events,
            setting: format!("durability {d}; one transaction per batch"),
            rate,
            per_call: Some(lat),
        });
    }
    Ok(rates)
}

/// (c) submit_json one by one, durability normal.
fn one_by_one_row(s: &Setup<'_>, rows: &mut Vec<Row>) -> Res<Rate> {
    let n = s.one_n;
    progress(&format!("(c) submit one by one, normal, {n} events"));
    let path = s.dir().join("one-normal.db");
    let (rate, lat) = runs::one_by_one(s.spec, n, Durability::Normal, Call::Json, &path)?;
    rows.push(Row {
        contender: "(c) ingest submit_json one by one".into(),
        n,
        setting: "durability normal; one transaction per event".into(),
        rate,
        per_call: Some(lat),
    });
    Ok(rate)
}

/// (c) submit_json one by one, durability full, by 1 thread and by
/// `--threads` threads taking turns: their ratio is group commit's gain.
fn full_rows(s: &Setup<'_>, rows: &mut Vec<Row>) -> Res<(Rate, Rate)> {
    let (n, t) = (s.full_n, s.args.threads);
    progress(&format!(
        "(c) submit one by one, full, 1 and {t} threads taking turns, {n} events"
    ));
    let (one_path, many_path) = (s.dir().join("one-full.db"), s.dir().join("threads-full.db"));
    let mut sides = runs::side_by_side(
        s.spec,
        n,
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
        n,
        setting: "durability full; fsync per commit".into(),
        rate: one_full,
        per_call: Some(one_lat),
    });
    rows.push(Row {
        contender: format!("(c) ingest submit_json one by one, {t} threads"),
        n,
        setting: "durability full; concurrent calls share a commit (group commit)".into(),
        rate: threads_full,
        per_call: Some(threads_lat),
    });
    Ok((one_full, threads_full))
}

/// (f) The PostgreSQL backend on the same events; skipped, unless
/// `--require-postgres`, when no server answers.
fn postgres_rows(s: &Setup<'_>, rows: &mut Vec<Row>) -> Res<Postgres> {
    let args = s.args;
    let url = args.postgres.clone().unwrap_or_else(|| {
        std::env::var("INGEST_BENCH_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    });
    let usable = if s.pg_n == 0 {
        Err("skipped with --postgres-events 0".to_string())
    } else {
        pg::usable(&url)
    };
    let mut rates: Vec<(String, f64)> = Vec::new();
    match usable {
        Err(why) if args.require_postgres => return Err(format!("the PostgreSQL rows cannot run: {why}").into()),
        Err(why) => progress(&format!("(f) skipped: {why}")),
        Ok(()) => {
            let job = PgJob {
                url: &url,
                spec: s.spec,
                events: s.pg_n,
                one_events: s.pg_n.min(s.one_n).min(20_000),
                full_events: s.full_n,
                threads: args.threads,
            };
            for r in pg::run(&job, &progress)? {
                rates.push((r.contender.clone(), r.rate.per_sec()));
                rows.push(Row {
                    contender: r.contender,
                    n: r.n,
                    setting: r.setting,
                    rate: r.rate,
                    per_call: r.per_call,
                });
            }
        }
    }
    Ok(Postgres { url, rates })
}

/// (b) The original design, on fewer events because it is slow.
fn original_row(s: &Setup<'_>, rows: &mut Vec<Row>) -> Res<Rate> {
    let n = s.original_n;
    progress(&format!("(b) original design, {n} events"));
    let (rate, lat) = original::ingest(s.spec, n, &s.dir().join("original.db"))?;
    rows.push(Row {
        contender: "(b) original design: SELECT then INSERT per event".into(),
        n,
        setting: "autocommit; journal DELETE, synchronous FULL (SQLite defaults)".into(),
        rate,
        per_call: Some(lat),
    });
    Ok(rate)
}

/// (d) The aggregate queries, on a store taken from the cache or built now
/// (then its build is a row of the ingest table, with its peak RSS); the
/// store's path, closed, for the Python contenders.
fn aggregate_rows(
    s: &Setup<'_>,
    postgres: &Postgres,
    rows: &mut Vec<Row>,
    rss: &mut Vec<Rss>,
) -> Res<(Aggregates, PathBuf)> {
    let args = s.args;
    let agg_spec = Spec {
        events: args.aggregate_events,
        seed: args.seed,
    };
    progress(&format!(
        "(d) aggregate store of {} events (cached under {})",
        args.aggregate_events,
        s.data_dir.display()
    ));
    // The writes of the runs above (gigabytes of stores, PostgreSQL's
    // WAL) must not be flushed to disk while the queries are timed.
    if !postgres.rates.is_empty() {
        pg::checkpoint(&postgres.url)?;
    }
    std::process::Command::new("sync").status()?;
    let store = aggregates::store(agg_spec, &s.data_dir)?;
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
    // A cached store's build ran in an earlier process: its peak is shown,
    // marked as such, only when this run ingested less.
    if let Some(rec) = &store.recorded {
        if rss.iter().all(|r| r.events < store.events) {
            rss.push(Rss {
                what: format!(
                    "submit_batch_json({BUILD_BATCH}), normal, building the aggregate store (in the run of {}, not this one)",
                    rec.built_at
                ),
                events: store.events,
                kib: rec.peak_rss_kib,
                scoped: rec.peak_is_build_only,
            });
        }
    }
    let aggregates = Aggregates {
        events: store.events,
        unique: store.unique,
        built: store.built.is_some(),
        recorded: store.recorded.clone(),
        shapes,
    };
    Ok((aggregates, store.path.clone()))
}

/// (e) From Python, and the same one-by-one call from Rust beside it;
/// `Ok(Err(why))` when skipped, which `--require-python` makes an error.
fn python_rows(s: &Setup<'_>) -> Res<Result<report::Python, String>> {
    let args = s.args;
    let (py_n, py_submit_n) = (s.py_n, s.py_submit_n);
    let py_bin = &s.python;
    let usable = if py_n == 0 || py_submit_n == 0 {
        Err("skipped with --python-events 0 or --python-submit-events 0".to_string())
    } else {
        python::usable(py_bin)
    };
    match usable {
        Err(why) if args.require_python => Err(format!("the Python contender cannot run: {why}").into()),
        Err(why) => {
            progress(&format!("(e) skipped: {why}"));
            Ok(Err(why))
        }
        Ok(()) => {
            progress(&format!(
                "(e) Python: batches of 1 000 on {py_n} events, submit on {py_submit_n}"
            ));
            let rates = python::run(&PyJob {
                python: py_bin,
                script: &s.root.join("benches/python_compare.py"),
                dir: s.dir(),
                spec: s.spec,
                batch_events: py_n,
                submit_events: py_submit_n,
                batch: 1_000,
            })?;
            progress(&format!(
                "(e) Rust submit(&Value) one by one, normal, {py_submit_n} events"
            ));
            let (rust, rust_lat) = runs::one_by_one(
                s.spec,
                py_submit_n,
                Durability::Normal,
                Call::Value,
                &s.dir().join("rust-value.db"),
            )?;
            Ok(Ok(report::Python {
                rates,
                rust,
                rust_lat,
                build: python_build(py_bin),
            }))
        }
    }
}

/// (h) DuckDB beside ingest from Python: writes at batches of 1 000 and
/// 10 000, and the aggregate shapes on the store of (d); `Ok(Err(why))`
/// when skipped (`--require-python` made that an error before any row ran).
fn duckdb_rows(s: &Setup<'_>, agg: &Aggregates, agg_store: &Path, rows: &mut Vec<Row>) -> Res<Result<DuckRun, String>> {
    let args = s.args;
    let py_bin = &s.python;
    let version = match &s.duck_version {
        Err(why) => {
            progress(&format!("(h) skipped: {why}"));
            return Ok(Err(why.clone()));
        }
        Ok(v) => v.clone(),
    };
    let n = s.duck_n;
    progress(&format!(
        "(h) DuckDB {version} from Python: writes of {n} events, aggregates on {} (DuckDB's copy cached beside it)",
        agg.events
    ));
    let job = DuckJob {
        python: py_bin,
        script: &s.root.join("benches/duckdb_compare.py"),
        dir: s.dir(),
        spec: s.spec,
        events: n,
        batches: &[1_000, 10_000],
        agg_spec: Spec {
            events: args.aggregate_events,
            seed: args.seed,
        },
        agg_store,
        agg_unique: agg.unique,
        runs: args.agg_runs,
        seed: args.seed,
        version: &version,
    };
    let mut run = duck::run(&job)?;
    // The targets are at 1M events as well as 10M: the shapes
    // again on a store a tenth the size (cached like the other), by both.
    let small_spec = Spec {
        events: args.aggregate_events / 10,
        seed: args.seed,
    };
    if small_spec.events >= 1_000 {
        progress(&format!(
            "(h) DuckDB {version} from Python: aggregates on {} events",
            small_spec.events
        ));
        let small = aggregates::store(small_spec, &s.data_dir)?;
        let (small_path, small_unique) = (small.path.clone(), small.unique);
        drop(small);
        let small_run = duck::run(&DuckJob {
            events: 0,
            batches: &[],
            agg_spec: small_spec,
            agg_store: &small_path,
            agg_unique: small_unique,
            ..job
        })?;
        run.aggregates.extend(small_run.aggregates);
    }
    // Beside the floor in the ingest table: DuckDB's writes, timed in Python
    // (the section of (h) sets them against ingest's own from Python).
    for w in &run.writes {
        rows.push(Row {
            contender: format!(
                "(h) DuckDB INSERT OR IGNORE from Python, batches of {}",
                thousands(w.batch as f64)
            ),
            n: w.duckdb.events,
            setting: "rows already normalised, keyed by the dedup key; one transaction per batch; DuckDB defaults"
                .into(),
            rate: w.duckdb,
            per_call: None,
        });
    }
    Ok(Ok(run))
}

/// BENCHMARKS.md (or `--out`): the tables under when, how and on what they
/// were measured.
fn write_benchmarks_md(s: &Setup<'_>, machine: &Machine, started: DateTime<Utc>, md: &str) -> Res<()> {
    let args = s.args;
    let command = std::env::var("INGEST_BENCH_COMMAND").ok();
    let argv: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                // Relative to the workspace, so the file does not name a home directory.
                Path::new(&a)
                    .strip_prefix(&s.root)
                    .map_or(a.clone(), |p| p.display().to_string())
            } else {
                a
            }
        })
        .collect();
    let doc = report::document(
        &Header {
            started,
            command,
            argv,
            machine,
            seed: args.seed,
        },
        md,
    )?;
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        std::env::current_dir()?.join(&args.out)
    };
    // The prune figures (`make bench-prune`) and the HTTP ones (`make
    // bench-http`) live in the same document: kept as they are when this
    // run rewrites the rest.
    let doc = report::keep_sections(&doc, &std::fs::read_to_string(&out).unwrap_or_default());
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
