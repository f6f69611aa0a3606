//! Many threads on one Ingestor, several processes on one store, and
//! reopen, on every backend: exactly the distinct set is stored, and
//! rollups agree with the events.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;

use ingest_core::{Durability, Ingestor, Query};
use serde_json::{json, Value};

use crate::common::{all_events, backends, child_test, Sqlite};

/// Event `i` of the shared pool, spelled one of several ways by `spelling`.
fn pool_event(i: u64, spelling: u64) -> Value {
    let client = format!("client{}", i % 7);
    let ts = 1_704_067_200_000 + (i as i64) * 61_000;
    let amount = (i % 13) as f64 + 0.5;
    match spelling % 3 {
        0 => json!({"client_id": client, "metric": "sales", "amount": amount, "timestamp": ts}),
        1 => json!({"source": client, "payload": {"name": "Sales", "value": amount.to_string(), "ts": ts.to_string()}}),
        _ => json!({"clientId": client, "event": " SALES ", "amt": amount, "time": ts / 1000 * 1000 + (ts % 1000)}),
    }
}

fn check_consistent(ing: &Ingestor, distinct: u64) {
    let events = all_events(ing);
    assert_eq!(events.len() as u64, distinct);
    let ids: HashSet<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len());
    let total = ing.aggregate(&Query::default()).unwrap().totals;
    assert_eq!(total.count, distinct, "rollups agree with the events");
    let sum: f64 = events.iter().map(|e| e.event.amount).sum();
    assert!((total.sum - sum).abs() < 1e-6);
}

#[test]
fn eight_threads_with_overlapping_events_store_the_distinct_set() {
    for store in backends(Sqlite::File) {
        let ing = Arc::new(store.builder().durability(Durability::Normal).open().unwrap());
        eight_threads(ing);
    }
}

fn eight_threads(ing: Arc<Ingestor>) {
    const DISTINCT: u64 = 400;
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let ing = Arc::clone(&ing);
            std::thread::spawn(move || {
                // Each thread covers the whole pool from its own start, in
                // singles and batches, so every key is raced by all eight.
                let mut i = t * 50;
                let mut sent = 0;
                while sent < DISTINCT {
                    if sent % 40 < 20 {
                        ing.submit(&pool_event(i % DISTINCT, t + i)).unwrap();
                        i += 1;
                        sent += 1;
                    } else {
                        let batch: Vec<Value> = (0..10).map(|k| pool_event((i + k) % DISTINCT, t + k)).collect();
                        ing.submit_batch(&batch).unwrap();
                        i += 10;
                        sent += 10;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    check_consistent(&ing, DISTINCT);
    let stats = ing.stats().unwrap();
    assert_eq!(stats.accepted, DISTINCT);
    assert_eq!(stats.accepted + stats.duplicate, 8 * DISTINCT);
}

/// Set in a child process: the store to write to and which writer it is.
const CHILD_DB: &str = "INGEST_TEST_CHILD_DB";
const CHILD_ID: &str = "INGEST_TEST_CHILD_ID";
const PROCESS_POOL: u64 = 300;

fn write_all_from(db: &str, writer: u64) {
    let ing = Ingestor::open(db).unwrap();
    for k in 0..PROCESS_POOL {
        let i = (k + writer * 97) % PROCESS_POOL;
        if k % 3 == 0 {
            let batch: Vec<Value> = (0..5).map(|j| pool_event((i + j) % PROCESS_POOL, writer + j)).collect();
            ing.submit_batch(&batch).unwrap();
        } else {
            ing.submit(&pool_event(i, writer + k)).unwrap();
        }
    }
}

/// Run as the parent, this test starts two copies of itself as writer
/// processes on one store and writes too; run as a child (the environment
/// says so), it is one of those writers.
#[test]
fn processes_on_one_file_store_the_distinct_set() {
    if let Ok(db) = std::env::var(CHILD_DB) {
        let id: u64 = std::env::var(CHILD_ID).unwrap().parse().unwrap();
        write_all_from(&db, id);
        return;
    }
    for store in backends(Sqlite::File) {
        processes_on_one_store(store.location());
    }
}

fn processes_on_one_store(db: &str) {
    let children: Vec<_> = (1..=2)
        .map(|id| {
            child_test(module_path!(), "processes_on_one_file_store_the_distinct_set")
                .env(CHILD_DB, db)
                .env(CHILD_ID, id.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    write_all_from(db, 0);
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a writer process failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ing = Ingestor::open(db).unwrap();
    check_consistent(&ing, PROCESS_POOL);
}

#[test]
fn reopen_keeps_data_and_dedup() {
    for store in backends(Sqlite::File) {
        reopen_keeps(store.location());
    }
}

fn reopen_keeps(db: &str) {
    let first = {
        let ing = Ingestor::open(db).unwrap();
        assert_eq!(
            ing.submit(&json!({"source": "a", "value": 1, "ts": "bad"}))
                .unwrap()
                .status(),
            "rejected"
        );
        ing.submit(&pool_event(1, 0)).unwrap().id().unwrap()
    };
    let ing = Ingestor::open(db).unwrap();
    let again = ing.submit(&pool_event(1, 1)).unwrap();
    assert_eq!((again.status(), again.id()), ("duplicate", Some(first)));
    assert_eq!(ing.stats().unwrap().stored_rejected, 1);
    check_consistent(&ing, 1);
}

/// On databases that run every transaction serializable (CockroachDB, say),
/// concurrent writers get serialization failures; the PostgreSQL backend
/// retries the whole transaction. Here PostgreSQL itself is made to run
/// serializable, and four stores (four pools, as four hosts would have)
/// race over the same events and rollup rows.
#[cfg(feature = "postgres")]
#[test]
fn serializable_writers_retry_their_conflicts() {
    for store in backends(Sqlite::Memory).into_iter().filter(|s| s.backend == "postgres") {
        let url = format!(
            "{}&options=-c%20default_transaction_isolation%3Dserializable",
            store.location()
        );
        const DISTINCT: u64 = 120;
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let ing = Ingestor::builder(&url).durability(Durability::Normal).open().unwrap();
                    for k in 0..DISTINCT / 4 {
                        let batch: Vec<Value> = (0..4)
                            .map(|j| pool_event((w * 29 + k * 4 + j) % DISTINCT, w + j))
                            .collect();
                        ing.submit_batch(&batch).unwrap();
                    }
                    for i in 0..DISTINCT {
                        ing.submit(&pool_event((i + w * 31) % DISTINCT, w)).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        check_consistent(&store.open(), DISTINCT);
    }
}

/// Every write takes the rollup rows of a table before those of the next:
/// `rollups` across clients, then `client_days`. Two writers that took them
/// in opposite orders deadlocked, and PostgreSQL settles a deadlock only
/// after `deadlock_timeout` (1 s by default), by failing one of them: under
/// several server processes, all writes stalled for a second every few
/// seconds. Here a transaction holds the across-client rows of a metric; a
/// write of that metric (a single event, which is one statement of
/// data-modifying CTEs, and a batch holding a stored event, whose rollups
/// are separate statements) must then wait there, holding no row of
/// `client_days`.
#[cfg(feature = "postgres")]
#[test]
fn writers_take_rollup_rows_in_one_order() {
    use std::time::{Duration, Instant};

    for store in backends(Sqlite::Memory).into_iter().filter(|s| s.backend == "postgres") {
        let ing = Arc::new(store.open());
        let event = |minute: i64| json!({"client_id": "acme", "metric": "sales", "amount": 2.5, "timestamp": 1_704_067_200_000i64 + minute * 60_000});
        // The rows exist: a write updates them, taking their row locks.
        ing.submit(&event(0)).unwrap();
        let writes: [(&str, Vec<Value>); 2] = [
            ("a single event", vec![event(1)]),
            ("a batch with a stored event", vec![event(0), event(2)]),
        ];
        for (what, items) in writes {
            let mut holder = store.postgres_client();
            let mut tx = holder.transaction().unwrap();
            tx.query("SELECT 1 FROM rollups WHERE metric = 'sales' FOR UPDATE", &[])
                .unwrap();
            let xid: String = tx.query_one("SELECT pg_current_xact_id()::TEXT", &[]).unwrap().get(0);
            let writer = {
                let ing = Arc::clone(&ing);
                std::thread::spawn(move || match items.as_slice() {
                    [one] => vec![ing.submit(one).unwrap().status()],
                    many => ing.submit_batch(many).unwrap().iter().map(|o| o.status()).collect(),
                })
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut watcher = store.postgres_client();
            loop {
                let waiting: i64 = watcher
                    .query_one(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' AND transactionid::TEXT = $1",
                        &[&xid],
                    )
                    .unwrap()
                    .get(0);
                if waiting > 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: the write never waited for the held rollup rows"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            let free = tx.query(
                "SELECT 1 FROM client_days WHERE client_id = 'acme' FOR UPDATE NOWAIT",
                &[],
            );
            assert!(
                free.is_ok(),
                "{what}: the write locked client_days before rollups: {:?}",
                free.unwrap_err()
            );
            tx.rollback().unwrap();
            let statuses = writer.join().unwrap();
            assert_eq!(statuses.last(), Some(&"accepted"), "{what}");
        }
        let total = ing.aggregate(&Query::default()).unwrap().totals;
        assert_eq!((total.count, total.sum), (3, 7.5));
    }
}

/// A write of dead letters takes their lock (the row of
/// `dead_letter_stats`) before any row of `rejected`. Evicting at the
/// bound deletes the oldest dead letters, which another writer may hold
/// (a repeated bad input updates its row), and two writers each holding a
/// row the other deletes deadlocked: 14 deadlocks in 20 s of four
/// processes at a bound of 30, each a second's stall. Here a transaction
/// holds that lock; a repeated bad input must wait for it holding no row of
/// `rejected`.
#[cfg(feature = "postgres")]
#[test]
fn dead_letter_writers_take_their_lock_first() {
    use std::time::{Duration, Instant};

    for store in backends(Sqlite::Memory).into_iter().filter(|s| s.backend == "postgres") {
        let ing = Arc::new(store.open());
        let bad = json!({"client_id": "acme", "metric": "sales", "amount": "oops", "timestamp": 1_704_067_200_000i64});
        // The row exists: a repeat updates it, taking its row lock.
        assert_eq!(ing.submit(&bad).unwrap().status(), "rejected");
        let mut holder = store.postgres_client();
        let mut tx = holder.transaction().unwrap();
        tx.query("SELECT 1 FROM dead_letter_stats FOR UPDATE", &[]).unwrap();
        let xid: String = tx.query_one("SELECT pg_current_xact_id()::TEXT", &[]).unwrap().get(0);
        let writer = {
            let ing = Arc::clone(&ing);
            let bad = bad.clone();
            std::thread::spawn(move || ing.submit(&bad).unwrap().status())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut watcher = store.postgres_client();
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' AND transactionid::TEXT = $1",
                    &[&xid],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the dead letter was written without waiting for the lock"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let free = tx.query("SELECT 1 FROM rejected FOR UPDATE NOWAIT", &[]);
        assert!(
            free.is_ok(),
            "the write locked a dead letter before their lock: {:?}",
            free.unwrap_err()
        );
        tx.rollback().unwrap();
        assert_eq!(writer.join().unwrap(), "rejected");
        let rows = ing.rejected(ingest_core::Page::default()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].attempts, 2);
    }
}
