//! Contender (g), PostgreSQL's floors: the writes of the (f) rows without
//! the library, on the same tables (a schema the core created).
//!
//! - One by one: a `pgbench` run of one event's writes as separate
//!   prepared statements in one transaction (BEGIN, the insert, one upsert
//!   per rollup table, COMMIT), one client, `synchronous_commit` as the
//!   library's durability normal sets it. Its values are pgbench's random
//!   ones: the same statements and tables, not the same events.
//! - Batches: `COPY ... FROM STDIN (FORMAT binary)` of the distinct events,
//!   normalised and keyed beforehand (untimed), one COPY per batch, each
//!   its own transaction. COPY cannot skip a stored key, so the retries are
//!   left out; the rate counts the rows copied.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use crate::gen::{normalised, Events, Spec};
use crate::measure::{fail, Latencies, Rate, Res};

/// One event's writes as the library makes them, in one transaction.
const PGBENCH_SCRIPT: &str = r#"\set n random(1, 9000000000000000000)
\set c random(0, 99)
\set t random(1704067200000, 1735689599999)
\set h :t - :t % 3600000
\set d :t - :t % 86400000
\set m :t - :t % 2592000000
\set cents random(-100000, 100000)
BEGIN;
INSERT INTO events (dedup_key, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version)
  VALUES (sha256(int8send(:n::BIGINT)), 'client-' || :c, 'cpu', :t::BIGINT, :cents / 100.0, NULL, '{}', :t::BIGINT, 1)
  ON CONFLICT (dedup_key) DO NOTHING;
INSERT INTO rollups (level, bucket, metric, n, total, lo, hi, n_lo, n_hi)
  VALUES (1, :h::BIGINT, 'cpu', 1, :cents / 100.0, :cents / 100.0, :cents / 100.0, 1, 1),
         (2, :d::BIGINT, 'cpu', 1, :cents / 100.0, :cents / 100.0, :cents / 100.0, 1, 1),
         (3, :m::BIGINT, 'cpu', 1, :cents / 100.0, :cents / 100.0, :cents / 100.0, 1, 1)
  ON CONFLICT (level, bucket, metric) DO UPDATE SET
    n = rollups.n + excluded.n, total = rollups.total + excluded.total,
    lo = LEAST(rollups.lo, excluded.lo), hi = GREATEST(rollups.hi, excluded.hi);
INSERT INTO client_days (bucket, client_id, metric, n, total, lo, hi, n_lo, n_hi)
  VALUES (:d::BIGINT, 'client-' || :c, 'cpu', 1, :cents / 100.0, :cents / 100.0, :cents / 100.0, 1, 1)
  ON CONFLICT (bucket, client_id, metric) DO UPDATE SET
    n = client_days.n + excluded.n, total = client_days.total + excluded.total,
    lo = LEAST(client_days.lo, excluded.lo), hi = GREATEST(client_days.hi, excluded.hi);
COMMIT;
"#;

/// The pgbench of this machine's PostgreSQL: on `PATH`, or where Debian
/// installs the server's programs.
fn pgbench() -> Res<PathBuf> {
    let on_path = Command::new("pgbench").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return Ok(PathBuf::from("pgbench"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("bin/pgbench"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "pgbench is not installed (Debian: postgresql-contrib or the server package)".into())
}

/// `pgbench` of [`PGBENCH_SCRIPT`], `n` transactions, on the tables of
/// `schema` in the database at `url`.
pub fn pgbench_singles(url: &str, schema: &str, n: u64, dir: &Path) -> Res<Rate> {
    let config = postgres::Config::from_str(url)?;
    let script = dir.join("pgbench-singles.sql");
    std::fs::write(&script, PGBENCH_SCRIPT)?;
    let mut cmd = Command::new(pgbench()?);
    if let Some(postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
        cmd.arg("-h").arg(host);
    }
    if let Some(port) = config.get_ports().first() {
        cmd.arg("-p").arg(port.to_string());
    }
    if let Some(user) = config.get_user() {
        cmd.arg("-U").arg(user);
    }
    cmd.args(["-n", "-M", "prepared", "-c", "1", "-t"])
        .arg(n.to_string())
        .arg("-f")
        .arg(&script)
        .arg(config.get_dbname().unwrap_or("postgres"))
        .env(
            "PGOPTIONS",
            format!("-c search_path={schema} -c synchronous_commit=off"),
        );
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return fail(format!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // "tps = 1806.091762 (without initial connection time)"
    let tps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("pgbench printed no tps: {stdout}"))?;
    Ok(Rate {
        events: n,
        busy: Duration::from_secs_f64(n as f64 / tps),
    })
}

/// COPY the distinct events among the first `n` of `spec`, `batch` rows
/// per COPY, into the events table of `location` (a URL with its
/// `search_path` set). The rows copied must be the distinct events.
pub fn copy_batches(client: &mut postgres::Client, spec: Spec, n: u64, batch: usize) -> Res<(Rate, Latencies)> {
    let rules = ingest_core::Rules::builtin();
    let received_at = ingest_core::Timestamp::now().millis();
    let mut gen = Events::new(spec);
    let rows: Vec<_> = gen
        .by_ref()
        .take(n as usize)
        .filter(|g| !g.retry)
        .map(|g| normalised(&g.raw, &rules))
        .collect();
    let types = [
        Type::BYTEA,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::FLOAT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
    ];
    let mut rate = Rate::default();
    let mut lat = Latencies::with_capacity(rows.len() / batch + 1);
    for chunk in rows.chunks(batch) {
        let t = Instant::now();
        let sink = client.copy_in(
            "COPY events (dedup_key, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version)
             FROM STDIN (FORMAT binary)",
        )?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        for r in chunk {
            let e = &r.event;
            writer.write(&[
                &r.key,
                &e.client_id,
                &e.metric,
                &e.timestamp.millis(),
                &e.amount,
                &e.event_id,
                &r.attributes,
                &received_at,
                &1i64,
            ])?;
        }
        writer.finish()?;
        let took = t.elapsed();
        lat.push(took);
        rate.busy += took;
        rate.events += chunk.len() as u64;
    }
    let stored: i64 = client.query_one("SELECT count(*) FROM events", &[])?.get(0);
    if stored as u64 != gen.unique() {
        return fail(format!("COPY stored {stored} rows of {} distinct events", gen.unique()));
    }
    Ok((rate, lat))
}
