//! Contender (f): the PostgreSQL backend, measured by the very runs of the
//! SQLite rows (c) (`runs.rs`), each in a new schema of the database at
//! `--postgres`, dropped afterwards. Same data, same checks of every answer.

use std::path::Path;

use ingest_core::Durability;

use crate::gen::Spec;
use crate::measure::{Latencies, Rate, Res};
use crate::pg_floor;
use crate::runs::{self, Call};

/// One PostgreSQL row of the report.
pub struct PgRow {
    pub contender: String,
    pub n: u64,
    pub setting: String,
    pub rate: Rate,
    /// None where the contender times no single call (pgbench).
    pub per_call: Option<Latencies>,
}

/// What the PostgreSQL rows run.
pub struct PgJob<'a> {
    pub url: &'a str,
    pub spec: Spec,
    /// Events for the batch rows.
    pub events: u64,
    /// Events for one by one with durability normal.
    pub one_events: u64,
    /// Events for one by one with durability full, by 1 and by `threads` threads.
    pub full_events: u64,
    pub threads: usize,
}

/// Whether the server at `url` answers.
pub fn usable(url: &str) -> Result<(), String> {
    postgres::Client::connect(url, postgres::NoTls)
        .map(drop)
        .map_err(|e| format!("PostgreSQL at {url} is unreachable: {e}"))
}

/// `SHOW server_version` of the server at `url`.
pub fn server_version(url: &str) -> Res<String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    Ok(c.query_one("SHOW server_version", &[])?.get(0))
}

/// Have the server write out what the runs left in its WAL, so that its
/// checkpoint does not land in later timings.
pub fn checkpoint(url: &str) -> Res<()> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    c.batch_execute("CHECKPOINT")?;
    Ok(())
}

/// A new schema for one run, dropped when done.
struct Schema {
    admin: postgres::Client,
    name: String,
    location: String,
}

impl Schema {
    fn new(url: &str, what: &str) -> Res<Self> {
        let admin = postgres::Client::connect(url, postgres::NoTls)?;
        let name = format!("bench_{}_{what}", std::process::id());
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut s = Schema {
            admin,
            location: format!("{url}{sep}schema={name}"),
            name,
        };
        s.drop_it()?;
        Ok(s)
    }

    fn drop_it(&mut self) -> Res<()> {
        Ok(self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))?)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = self.drop_it();
    }
}

pub fn run(job: &PgJob<'_>, progress: &dyn Fn(&str)) -> Res<Vec<PgRow>> {
    let mut rows = Vec::new();
    for (batch, durability) in [
        (1_000, Durability::Normal),
        (1_000, Durability::Full),
        (10_000, Durability::Normal),
    ] {
        let d = durability.as_str();
        progress(&format!(
            "(f) PostgreSQL submit_batch_json({batch}), {d}, {} events",
            job.events
        ));
        let schema = Schema::new(job.url, &format!("batch_{batch}_{d}"))?;
        let (rate, lat) = runs::batches(job.spec, job.events, batch, durability, schema.location.as_ref())?;
        rows.push(PgRow {
            contender: format!("(f) PostgreSQL submit_batch_json, batches of {batch}"),
            n: job.events,
            setting: format!("durability {d}; one transaction per batch"),
            rate,
            per_call: Some(lat),
        });
    }
    progress(&format!(
        "(g) PostgreSQL floor: COPY, batches of 1000, {} events",
        job.events
    ));
    let schema = Schema::new(job.url, "copy_floor")?;
    drop(runs::open(schema.location.as_ref(), Durability::Normal)?);
    let mut client = postgres::Client::connect(job.url, postgres::NoTls)?;
    client.batch_execute(&format!(
        "SET search_path TO {}; SET synchronous_commit = off",
        schema.name
    ))?;
    let (rate, lat) = pg_floor::copy_batches(&mut client, job.spec, job.events, 1_000)?;
    rows.push(PgRow {
        contender: "(g) PostgreSQL floor: COPY of rows already normalised, 1000 rows per COPY".into(),
        n: rate.events,
        setting: "synchronous_commit off (as durability normal); one COPY per batch; the distinct events only".into(),
        rate,
        per_call: Some(lat),
    });
    drop((client, schema));
    progress(&format!(
        "(f) PostgreSQL submit one by one, normal, {} events",
        job.one_events
    ));
    let schema = Schema::new(job.url, "one_normal")?;
    let (rate, lat) = runs::one_by_one(
        job.spec,
        job.one_events,
        Durability::Normal,
        Call::Json,
        schema.location.as_ref(),
    )?;
    rows.push(PgRow {
        contender: "(f) PostgreSQL submit_json one by one".into(),
        n: job.one_events,
        setting: "durability normal (synchronous_commit off); one transaction per event".into(),
        rate,
        per_call: Some(lat),
    });
    drop(schema);
    progress(&format!(
        "(g) PostgreSQL floor: pgbench one by one, {} events",
        job.one_events
    ));
    let schema = Schema::new(job.url, "pgbench_floor")?;
    drop(runs::open(schema.location.as_ref(), Durability::Normal)?);
    let dir = tempfile::tempdir()?;
    let rate = pg_floor::pgbench_singles(job.url, &schema.name, job.one_events, dir.path())?;
    rows.push(PgRow {
        contender: "(g) PostgreSQL floor: pgbench, one event's writes per transaction".into(),
        n: job.one_events,
        setting: "synchronous_commit off; BEGIN, insert, one upsert per rollup table, COMMIT, prepared".into(),
        rate,
        per_call: None,
    });
    drop(schema);
    progress(&format!(
        "(f) PostgreSQL submit one by one, full, 1 and {} threads taking turns, {} events",
        job.threads, job.full_events
    ));
    let sides = [1, job.threads];
    let schemas = sides
        .iter()
        .map(|t| Schema::new(job.url, &format!("threads_{t}")))
        .collect::<Res<Vec<_>>>()?;
    let paths: Vec<&Path> = schemas.iter().map(|s| s.location.as_ref()).collect();
    let runs = runs::side_by_side(
        job.spec,
        job.full_events,
        &sides,
        runs::ROUNDS,
        Durability::Full,
        &paths,
    )?;
    for (threads, (rate, lat)) in sides.into_iter().zip(runs) {
        rows.push(PgRow {
            contender: format!("(f) PostgreSQL submit_json one by one, {threads} thread(s)"),
            n: job.full_events,
            setting: "durability full (WAL flushed per commit); concurrent calls share a commit".into(),
            rate,
            per_call: Some(lat),
        });
    }
    Ok(rows)
}
