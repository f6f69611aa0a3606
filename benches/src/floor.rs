//! Contender (a), the floor: what SQLite itself can do with rows that are
//! already normalised. Raw rusqlite on the same bundled SQLite as the core,
//! the core's own events table and UNIQUE key, one prepared
//! `INSERT ... ON CONFLICT DO NOTHING`, one transaction for every row.

use std::path::Path;
use std::time::Instant;

use ingest_core::{Durability, Ingestor, Rules};
use rusqlite::{params, Connection};

use crate::gen::{normalised, Events, Row, Spec};
use crate::measure::{fail, Rate, Res};

/// The PRAGMAs the core sets on every connection (core/src/storage/sqlite.rs,
/// `new_connection`) with durability `normal`, besides WAL. Copied, since the
/// core does not export them: keep in step when the core changes them.
pub const CORE_PRAGMAS_NORMAL: &str = "PRAGMA synchronous = NORMAL;
     PRAGMA foreign_keys = ON;
     PRAGMA temp_store = MEMORY;
     PRAGMA cache_size = -32768;
     PRAGMA wal_autocheckpoint = 10000;";

/// Rows normalised between two stretches of timed inserts: enough to keep
/// the timer's own cost invisible, few enough to stay small in memory.
const CHUNK: usize = 10_000;

/// The `CREATE TABLE events` and its indexes exactly as the current core
/// creates them: read back from a fresh store, so the floor can never drift
/// from the schema the core migrates to.
pub fn core_events_schema(dir: &Path) -> Res<String> {
    let path = dir.join("schema-probe.db");
    drop(Ingestor::builder(&path).durability(Durability::Normal).open()?);
    let conn = Connection::open(&path)?;
    let mut stmt = conn.prepare(
        "SELECT sql FROM sqlite_master
         WHERE tbl_name = 'events' AND sql IS NOT NULL
         ORDER BY type = 'table' DESC, name",
    )?;
    let ddl: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    drop(stmt);
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("schema-probe.db{suffix}")));
    }
    if ddl.is_empty() {
        return fail("the core's store has no events table");
    }
    Ok(ddl.join(";\n") + ";")
}

/// Insert the first `n` events of `spec`, normalised beforehand (untimed),
/// into a new database at `path`. Returns the insert rate and the rows the
/// UNIQUE key let in, which must equal the distinct events.
pub fn run(spec: Spec, n: u64, path: &Path, schema: &str) -> Res<(Rate, u64)> {
    let mut conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return fail(format!("floor: could not switch to WAL (got {mode})"));
    }
    conn.execute_batch(CORE_PRAGMAS_NORMAL)?;
    conn.execute_batch(schema)?;

    let rules = Rules::builtin();
    let received_at = ingest_core::Timestamp::now().millis();
    let mut gen = Events::new(spec);
    let mut rows: Vec<Row> = Vec::with_capacity(CHUNK);
    let mut rate = Rate::default();
    let mut inserted = 0u64;

    let started = Instant::now();
    let tx = conn.transaction()?;
    let mut busy = started.elapsed();
    {
        let mut insert = tx.prepare(
            "INSERT INTO events (dedup_key, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)
             ON CONFLICT DO NOTHING",
        )?;
        let mut left = n;
        while left > 0 {
            rows.clear();
            rows.extend(
                gen.by_ref()
                    .take(CHUNK.min(left as usize))
                    .map(|g| normalised(&g.raw, &rules)),
            );
            left -= rows.len() as u64;
            let t = Instant::now();
            for r in &rows {
                let e = &r.event;
                inserted += insert.execute(params![
                    r.key,
                    e.client_id,
                    e.metric,
                    e.timestamp.millis(),
                    e.amount,
                    e.event_id,
                    r.attributes,
                    received_at
                ])? as u64;
            }
            busy += t.elapsed();
            rate.events += rows.len() as u64;
        }
    }
    let t = Instant::now();
    tx.commit()?;
    busy += t.elapsed();
    rate.busy = busy;
    if inserted != gen.unique() {
        return fail(format!(
            "floor: the UNIQUE key let in {inserted} rows of {} distinct events",
            gen.unique()
        ));
    }
    Ok((rate, inserted))
}
