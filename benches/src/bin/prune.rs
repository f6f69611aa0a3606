//! `cargo run --release -p ingest-benches --bin prune -- [--events N] [--postgres URL]`:
//! the time a prune of a whole year of generated events takes (with and
//! without an archive), and the space it gives back, on a SQLite file (and
//! PostgreSQL when a URL is given). Prints a Markdown report, and writes it
//! as the prune section of `--out` (`make bench-prune`: of BENCHMARKS.md,
//! whose other sections `compare` writes), leaving the rest of it as it is.

use std::time::Instant;

use clap::Parser;
use ingest_benches::gen::{batch_text, Events, Spec};
use ingest_core::{Durability, Ingestor, Rules, Timestamp};

#[derive(Parser)]
struct Args {
    /// Generated events stored before the prune (retries included).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Also measure PostgreSQL at this URL (a schema of its own is made).
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// Also write the report as this document's prune section.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn fill(location: &str, spec: Spec) -> u64 {
    let ing = Ingestor::builder(location)
        .durability(Durability::Normal)
        .open()
        .unwrap();
    let all: Vec<_> = Events::new(spec).collect();
    for chunk in all.chunks(1000) {
        ing.submit_batch_json(&batch_text(chunk)).unwrap();
    }
    ing.stats().unwrap().stored_events
}

fn measure(location: &str, archive: Option<&std::path::Path>) -> (u64, f64, u64, u64) {
    let ing = Ingestor::builder(location)
        .rules(Rules::from_json(r#"{"max_age": "90d"}"#).unwrap())
        .open()
        .unwrap();
    // The generator's year is 2025: everything before 2026 goes.
    let before = Timestamp::parse("2026-01-01").unwrap();
    let t = Instant::now();
    let r = ing.prune(before, archive).unwrap();
    (r.events, t.elapsed().as_secs_f64(), r.bytes_before, r.bytes_after)
}

fn main() {
    let args = Args::parse();
    let spec = Spec {
        events: args.events,
        seed: args.seed,
    };
    let dir = tempfile::tempdir().unwrap();
    let m = ingest_benches::machine::Machine::probe();
    let mut report = format!(
        "## Prune\n\nWritten by `benches/src/bin/prune.rs`; regenerate with `make bench-prune` (part of \
         `make bench`). \
         A store of {} generated events (seed {}, one year of 2025, about 10% retries) is filled, then \
         `prune(before=2026-01-01)` removes every event under rules with `max_age` 90d; the time is the \
         prune call alone, the bytes are the store's tables and indexes before and after it.\n\n\
         - Date: {}\n- Machine: {} x {}, {:.1} GiB; shared with other work while measured\n- Build: {}; {}\n\n\
         | store | archive | events removed | seconds | events/s | bytes before | bytes after |\n|---|---|---|---|---|---|---|\n",
        args.events,
        args.seed,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        m.cpus,
        m.model,
        m.memory_gib,
        m.rustc,
        m.core,
    );
    let mut row = |store: &str, archive: &str, (n, s, b, a): (u64, f64, u64, u64)| {
        report.push_str(&format!(
            "| {store} | {archive} | {n} | {s:.2} | {:.0} | {b} | {a} ({:.1}%) |\n",
            n as f64 / s,
            a as f64 * 100.0 / b.max(1) as f64
        ));
    };
    for (i, archive) in [None, Some("archive.ndjson.gz")].into_iter().enumerate() {
        let path = dir.path().join(format!("prune{i}.db"));
        let location = path.to_str().unwrap().to_string();
        fill(&location, spec);
        let file = archive.map(|a| dir.path().join(a));
        row(
            "SQLite file",
            archive.unwrap_or("none"),
            measure(&location, file.as_deref()),
        );
    }
    if let Some(url) = args.postgres {
        let schema = format!("prune_bench_{}", std::process::id());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let location = format!("{url}{sep}schema={schema}");
        fill(&location, spec);
        row("PostgreSQL", "none", measure(&location, None));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }
    report.push_str(
        "\nSQLite gives the pages back to the file system (incremental vacuum); PostgreSQL's plain VACUUM \
         frees them for new rows and shrinks the files only where their ends are free. What remains is \
         the rollups, which a prune never touches.\n",
    );
    print!("{report}");
    if let Some(out) = args.out {
        let doc = std::fs::read_to_string(&out).unwrap_or_default();
        let doc = ingest_benches::report::with_section(&doc, ingest_benches::report::PRUNE, &report);
        std::fs::write(out, doc).unwrap();
    }
}
