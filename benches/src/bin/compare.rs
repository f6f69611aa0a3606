//! Every contender of issue 6 on the same data in one process run, so that
//! a machine that drifts between runs cannot fake a ratio. Prints the table
//! and, unless `--smoke`, writes it with the machine and command to
//! BENCHMARKS.md. Fails (exit 1) when any contender errors or any answer
//! disagrees with the data or with a full scan; never on a timing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use ingest_benches::aggregates::{self, ShapeResult, BUILD_BATCH};
use ingest_benches::gen::{Spec, DEFAULT_SEED};
use ingest_benches::machine::Machine;
use ingest_benches::measure::{peak_rss_kib, reset_peak_rss, Latencies, Rate, Res};
use ingest_benches::postgres::{self as pg, PgJob};
use ingest_benches::python::{self, PyJob, PyRates};
use ingest_benches::report::{
    self, durability_name, thousands, Aggregates, Header, IngestRates, Postgres, Report, Row, Rss,
};
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
    let py = py.map(|(rates, rust, rust_lat)| report::Python {
        rates,
        rust,
        rust_lat,
        build: python_build(&py_bin),
    });
    let report = Report {
        rows,
        rss,
        ingest: IngestRates {
            floor: floor_rate,
            batches: batch_rates,
            one_normal,
            one_full,
            threads_full,
            threads: t,
        },
        one_n,
        original: original_rate,
        original_n,
        aggregates: Aggregates {
            events: agg_events,
            unique: agg_unique,
            built: agg_built,
            recorded: agg_recorded,
            shapes,
        },
        python: py,
        postgres: Postgres {
            url: pg_url,
            rates: pg_rates,
        },
    };
    let md = report.markdown()?;
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
    let doc = report::document(
        &Header {
            started,
            command,
            argv,
            machine: &machine,
            seed: args.seed,
        },
        &md,
    )?;
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
