//! Crash harness: writer processes submit overlapping events (single and
//! batch, in varying spellings, retrying on error) while a supervisor
//! SIGKILLs a random writer at random moments and restarts it. Afterwards:
//! every event a writer was told is accepted or duplicate is stored exactly
//! once, no key is stored twice, rollups equal a recomputation from the
//! events, and SQLite's integrity check is ok. It runs on each backend:
//! on PostgreSQL a killed writer is a client that dies mid-transaction (the
//! server rolls its transaction back); the server's own crash safety is
//! PostgreSQL's.
//!
//! `cargo test -p ingest-core --features postgres --test integration crash::`
//! runs a short round (20 kills per backend). The long run:
//! `INGEST_CRASH_KILLS=1000 cargo test --release -p ingest-core --features postgres --test integration crash:: -- --nocapture`.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ingest_core::{Bucket, Durability, Ingestor, Query};
use serde_json::{json, Value};

use crate::common::{all_events, backends, child_test, close, Sqlite};

const WRITERS: usize = 4;
const ROLE: &str = "INGEST_CRASH_WRITER";

/// Event `i` of the pool, spelled one of several ways.
fn event(i: u64, spelling: u64) -> Value {
    let client = format!("c{}", i % 11);
    let metric = ["sales", "views", "clicks"][(i % 3) as usize];
    // Spread over ~70 days so that day and month rollups both take part.
    let ts = 1_706_000_000_000 + (i as i64) * 2_017_000;
    let amount = (i % 97) as f64 * 1.25;
    match spelling % 3 {
        0 => json!({"client_id": client, "metric": metric, "amount": amount, "timestamp": ts}),
        1 => {
            json!({"source": client, "payload": {"name": metric.to_uppercase(), "value": amount.to_string(), "ts": ts.to_string()}})
        }
        _ => json!({"clientId": client, "event": format!(" {metric} "), "amt": amount, "time": ts}),
    }
}

/// A small deterministic generator: no dependency, reproducible per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A writer: submit forever (until killed), retrying each call until it is
/// answered, and log every answered index after the answer.
fn writer(db: &str, log: &Path, seed: u64, pool: u64) {
    let durability = if seed % 2 == 0 {
        Durability::Normal
    } else {
        Durability::Full
    };
    let ing = loop {
        match Ingestor::builder(db).durability(durability).open() {
            Ok(ing) => break ing,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let mut log = OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut rng = Rng(seed | 1);
    loop {
        let n = if rng.below(3) == 0 { 1 + rng.below(40) } else { 1 };
        let picks: Vec<u64> = (0..n).map(|_| rng.below(pool)).collect();
        let raws: Vec<Value> = picks.iter().map(|&i| event(i, rng.next())).collect();
        let answered = loop {
            let result = if n == 1 {
                ing.submit(&raws[0]).map(|o| vec![o])
            } else {
                ing.submit_batch(&raws)
            };
            match result {
                Ok(outcomes) => break outcomes,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        let mut line = String::new();
        for (i, o) in picks.iter().zip(&answered) {
            assert!(matches!(o.status(), "accepted" | "duplicate"), "{o:?}");
            line.push_str(&format!("{i}\n"));
        }
        // One write per answer: a kill lands before it or after it.
        log.write_all(line.as_bytes()).unwrap();
    }
}

fn spawn(db: &str, log: &Path, seed: u64, pool: u64) -> Child {
    child_test(module_path!(), "killed_writers_lose_nothing_and_double_nothing")
        .env(ROLE, format!("{seed}|{pool}|{db}|{}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn killed_writers_lose_nothing_and_double_nothing() {
    if let Ok(role) = std::env::var(ROLE) {
        let mut parts = role.splitn(4, '|');
        let mut next = || parts.next().unwrap();
        let (seed, pool, db, log) = (next(), next(), next(), next());
        writer(db, Path::new(log), seed.parse().unwrap(), pool.parse().unwrap());
        return;
    }
    let kills: u64 = std::env::var("INGEST_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20);
    for store in backends(Sqlite::File) {
        crash_round(store.location(), store.backend, kills);
    }
}

fn crash_round(db: &str, backend: &str, kills: u64) {
    // Large enough that writers keep finding new events, not only duplicates.
    let pool = 2_000 + kills * 40;
    let dir = tempfile::tempdir().unwrap();
    drop(Ingestor::open(db).unwrap());
    let logs: Vec<PathBuf> = (0..WRITERS).map(|w| dir.path().join(format!("w{w}.log"))).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seed = 1;
    let mut children: Vec<Child> = logs
        .iter()
        .map(|log| {
            seed += 1;
            spawn(db, log, seed, pool)
        })
        .collect();
    let started = Instant::now();
    for _ in 0..kills {
        // Mostly mid-write: writers spend nearly all their time in submit.
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(30_000)));
        let w = rng.below(WRITERS as u64) as usize;
        let c = &mut children[w];
        if let Some(status) = c.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("writer {w} died by itself ({status}): {err}");
        }
        c.kill().unwrap();
        c.wait().unwrap();
        seed += 1;
        children[w] = spawn(db, &logs[w], seed, pool);
    }
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let elapsed = started.elapsed();

    let acked: HashSet<u64> = logs
        .iter()
        .flat_map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .lines()
                .map(|x| x.parse().unwrap())
                .collect::<Vec<u64>>()
        })
        .collect();
    let ing = Ingestor::open(db).unwrap();
    let events = all_events(&ing);
    // Each stored event maps back to its pool index through its amount and time.
    let mut stored: BTreeMap<(String, String, i64), u32> = BTreeMap::new();
    for e in &events {
        let key = (
            e.event.client_id.clone(),
            e.event.metric.clone(),
            e.event.timestamp.millis(),
        );
        *stored.entry(key).or_default() += 1;
    }
    assert!(stored.values().all(|&n| n == 1), "a key is stored twice");
    for i in &acked {
        let e = ingest_core::normalize(&event(*i, 0), &ingest_core::Rules::default()).unwrap();
        let key = (e.client_id, e.metric, e.timestamp.millis());
        assert!(stored.contains_key(&key), "acknowledged event {i} is missing");
    }
    check_rollups(&ing, &events);
    if backend == "sqlite" {
        let conn = rusqlite::Connection::open(db).unwrap();
        let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(integrity, "ok");
    }
    println!(
        "crash harness on {backend}: {kills} kills of {WRITERS} writers in {:.1}s; {} acknowledged, {} stored, none lost or doubled",
        elapsed.as_secs_f64(),
        acked.len(),
        events.len()
    );
}

/// (bucket, client when grouped by client, metric)
type GroupKey = (Option<i64>, Option<String>, String);

/// Rollups at every level equal a recomputation from the stored events.
fn check_rollups(ing: &Ingestor, events: &[ingest_core::StoredEvent]) {
    for bucket in [None, Some(Bucket::Hour), Some(Bucket::Day), Some(Bucket::Month)] {
        for by_client in [false, true] {
            let q = Query {
                bucket,
                by_client,
                by_metric: true,
                ..Query::default()
            };
            let got = ing.aggregate(&q).unwrap();
            let mut want: BTreeMap<GroupKey, (u64, f64)> = BTreeMap::new();
            for e in events {
                let b = bucket.map(|b| floor(b, e.event.timestamp.millis()));
                let k = (b, by_client.then(|| e.event.client_id.clone()), e.event.metric.clone());
                let g = want.entry(k).or_default();
                g.0 += 1;
                g.1 += e.event.amount;
            }
            let groups = got.groups.unwrap();
            assert_eq!(groups.len(), want.len(), "{q:?}");
            for (g, ((b, c, m), (n, sum))) in groups.iter().zip(want) {
                assert_eq!(
                    (
                        g.key.bucket.map(|t| t.millis()),
                        &g.key.client_id,
                        g.key.metric.as_ref()
                    ),
                    (b, &c, Some(&m))
                );
                assert_eq!(g.stats.count, n, "{q:?}");
                assert!(close(g.stats.sum, sum), "{q:?}: {} != {sum}", g.stats.sum);
            }
        }
    }
}

fn floor(b: Bucket, ms: i64) -> i64 {
    use chrono::{DateTime, Datelike, TimeZone, Utc};
    match b {
        Bucket::Hour => ms - ms.rem_euclid(3_600_000),
        Bucket::Day => ms - ms.rem_euclid(86_400_000),
        Bucket::Month => {
            let d = DateTime::from_timestamp_millis(ms).unwrap();
            Utc.with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        }
    }
}
