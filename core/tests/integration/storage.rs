//! The store over time: dead letters, reprocessing under new rules, a
//! changed dedup key, locks held by another connection, a newer schema, a
//! store that cannot be reached: each test on every backend, from one body.
//! Damaged files (not a database, cut in half) are SQLite's own: a
//! PostgreSQL server keeps its files to itself.

use std::time::Duration;

use ingest_core::{Durability, Error, ErrorKind, Ingestor, Page, Rules};
use serde_json::json;

use crate::common::{all_events, backends, Sqlite};

#[test]
fn the_same_bad_input_is_kept_once_with_its_reasons_and_rules_version() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let raw = json!({"source": "clientC", "payload": {"metric": "views"}});
        for _ in 0..3 {
            ing.submit(&raw).unwrap();
        }
        ing.submit(&json!({"source": "clientC", "value": "x", "ts": 0}))
            .unwrap();
        let rejected = ing.rejected(Page::default()).unwrap();
        assert_eq!(rejected.len(), 2, "{}", store.backend);
        let first = rejected.iter().find(|r| r.raw == raw).unwrap();
        assert_eq!(first.attempts, 3, "{}", store.backend);
        assert_eq!(first.rules_version, ing.rules_version());
        assert_eq!(first.reasons.len(), 2);
        assert_eq!(ing.rejected(Page { limit: 1, offset: 1 }).unwrap().len(), 1);
        assert!(ing.rejected(Page { limit: 0, offset: 0 }).is_err());
    }
}

/// Each try of one bad input counts on its one row: repeats within one
/// batch, batches and single calls after it, calls after a reopen. A
/// reprocessing that rejects it again is no new attempt.
#[test]
fn every_attempt_of_a_bad_input_counts_on_its_one_row_within_a_batch_and_across_calls() {
    for store in backends(Sqlite::File) {
        let on = store.backend;
        let bad = json!({"source": "clientC", "payload": {"metric": "views"}});
        let other = json!({"source": "clientC", "value": "x", "ts": 0});
        let good = json!({"source": "clientC", "metric": "views", "value": 1, "ts": 0});
        let attempts = |ing: &Ingestor| {
            let rows = ing.rejected(Page::default()).unwrap();
            let mut counts: Vec<(String, i64)> = rows.iter().map(|r| (r.raw.to_string(), r.attempts)).collect();
            counts.sort();
            counts
        };
        let want = |b: i64, o: i64| {
            let mut w = vec![(bad.to_string(), b), (other.to_string(), o)];
            w.retain(|(_, n)| *n > 0);
            w.sort();
            w
        };
        {
            let ing = store.open();
            let outcomes = ing
                .submit_batch(&[bad.clone(), good.clone(), bad.clone(), other.clone(), bad.clone()])
                .unwrap();
            let statuses: Vec<&str> = outcomes.iter().map(|o| o.status()).collect();
            assert_eq!(
                statuses,
                ["rejected", "accepted", "rejected", "rejected", "rejected"],
                "{on}"
            );
            assert_eq!(attempts(&ing), want(3, 1), "{on}: one batch");
            ing.submit_batch(&[bad.clone(), bad.clone()]).unwrap();
            assert_eq!(attempts(&ing), want(5, 1), "{on}: a second batch");
            ing.submit(&bad).unwrap();
            ing.submit(&other).unwrap();
            assert_eq!(attempts(&ing), want(6, 2), "{on}: single calls");
        }
        let ing = store.open();
        ing.submit(&bad).unwrap();
        assert_eq!(attempts(&ing), want(7, 2), "{on}: after a reopen");
        assert_eq!(ing.stats().unwrap().stored_rejected, 2, "{on}");
        let report = ing.reprocess_rejected().unwrap();
        assert_eq!(report.rejected, 2, "{on}");
        assert_eq!(attempts(&ing), want(7, 2), "{on}: reprocessing is no attempt");
        assert_eq!(all_events(&ing).len(), 1, "{on}");
    }
}

#[test]
fn reprocessing_under_new_rules_moves_what_now_passes() {
    for store in backends(Sqlite::File) {
        reprocess_under_new_rules(store.location());
    }
}

fn reprocess_under_new_rules(db: &str) {
    {
        let ing = Ingestor::open(db).unwrap();
        ing.submit(&json!({"client": "a", "price": 3, "ts": 0})).unwrap();
        ing.submit(&json!({"client": "a", "price": 4, "ts": 0})).unwrap();
        ing.submit(&json!({"client": "a", "value": 4, "ts": 0})).unwrap();
        ing.submit(&json!({"client": "a", "ts": 0})).unwrap();
        assert_eq!(ing.stats().unwrap().stored_rejected, 3);
    }
    let rules = Rules::from_value(&json!({"aliases": {"amount": ["value", "price"]}})).unwrap();
    let ing = Ingestor::builder(db).rules(rules).open().unwrap();
    assert!(ing.rules_version() > 1);
    let report = ing.reprocess_rejected().unwrap();
    assert_eq!((report.accepted, report.duplicate, report.rejected), (1, 1, 1));
    let left = ing.rejected(Page::default()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].rules_version,
        ing.rules_version(),
        "re-rejected under the new rules"
    );
    assert_eq!(all_events(&ing).len(), 2);
    assert_eq!(ing.reprocess_rejected().unwrap().rejected, 1);
}

#[test]
fn a_changed_dedup_key_rekeys_stored_events() {
    for store in backends(Sqlite::File) {
        rekey(store.location(), store.backend);
    }
}

fn rekey(db: &str, on: &str) {
    let (e1, e2) = {
        let ing = Ingestor::open(db).unwrap();
        let e1 = ing
            .submit(&json!({"client": "a", "value": 1, "ts": 0, "id": "e1"}))
            .unwrap();
        let e2 = ing
            .submit(&json!({"client": "a", "value": 2, "ts": 0, "id": "e2"}))
            .unwrap();
        (e1.id().unwrap(), e2.id().unwrap())
    };
    let by_id = Rules::from_value(&json!({"dedup_key": ["client_id", "event_id"]})).unwrap();
    let ing = Ingestor::builder(db).rules(by_id.clone()).open().unwrap();
    let o = ing
        .submit(&json!({"client": "a", "value": 99, "ts": 5, "id": "e1"}))
        .unwrap();
    // Matched by event id after the rekey; its other fields differ: a conflict.
    assert_eq!(o.status(), "conflict", "{on}: matched by event id after the rekey");
    assert_eq!(o.id(), Some(e1), "{on}");
    let fields: Vec<&str> = o.reasons().iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["amount", "timestamp"], "{on}");
    assert_eq!(o.event().unwrap().amount, 1.0, "{on}: the stored event");
    drop(ing);
    // A key under which two stored events would merge is refused, naming them.
    let by_client = Rules::from_value(&json!({"dedup_key": ["client_id"]})).unwrap();
    let err = Ingestor::builder(db).rules(by_client).open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRules, "{on}: {err}");
    assert!(err.to_string().contains("same event"), "{on}: {err}");
    let named: Vec<i64> = err
        .to_string()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        named.contains(&e1) && named.contains(&e2),
        "{on}: {err} does not name events {e1} and {e2}"
    );
    // Nothing changed: the old key still holds, over the same two events.
    let ing = Ingestor::builder(db).rules(by_id).open().unwrap();
    let mut ids: Vec<i64> = all_events(&ing).iter().map(|e| e.id).collect();
    ids.sort();
    assert_eq!(ids, [e1, e2], "{on}");
    let o = ing
        .submit(&json!({"client": "a", "value": 2, "ts": 0, "id": "e2", "note": "a retry"}))
        .unwrap();
    assert_eq!(o.status(), "duplicate", "{on}");
    assert_eq!(o.id(), Some(e2), "{on}");
}

#[test]
fn a_lock_held_past_the_busy_timeout_is_a_busy_error_then_recovers() {
    for store in backends(Sqlite::File) {
        let ing = store
            .builder()
            .busy_timeout(Duration::from_millis(100))
            .durability(Durability::Normal)
            .open()
            .unwrap();
        let other = store.hold_write_lock();
        let event = json!({"client": "a", "value": 1, "ts": 0});
        let err = ing.submit(&event).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Busy, "{}: {err}", store.backend);
        assert!(err.to_string().contains("busy timeout"), "{}: {err}", store.backend);
        drop(other);
        assert_eq!(ing.submit(&event).unwrap().status(), "accepted");
    }
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let err = Ingestor::open(&db).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn a_truncated_file_is_an_error_never_a_panic_and_recovers_once_restored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    {
        let ing = Ingestor::open(&db).unwrap();
        let batch: Vec<_> = (0..3_000)
            .map(|i| json!({"client": format!("c{}", i % 50), "metric": "m", "value": i, "ts": i * 60_000}))
            .collect();
        ing.submit_batch(&batch).unwrap();
    } // closed: the WAL is folded into the file
    let whole = std::fs::read(&db).unwrap();
    std::fs::write(&db, &whole[..whole.len() / 2]).unwrap();
    // Opening may work (the first pages are intact); then the first read or
    // write that needs a lost page fails. Either way: a storage error, of
    // kind Corrupt, and no panic.
    let result = Ingestor::open(&db).and_then(|ing| {
        ing.aggregate(&ingest_core::Query::default())?;
        let page = ing.events(&ingest_core::EventFilter {
            limit: ingest_core::MAX_PAGE,
            ..Default::default()
        })?;
        assert!(page.len() < 3_000, "a truncated file cannot list every event");
        ing.submit(&json!({"client": "late", "value": 1, "ts": 0})).map(|_| ())
    });
    let err = result.expect_err("a file cut in half must fail somewhere");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    // The fault gone (the file restored), the store is whole again.
    std::fs::write(&db, &whole).unwrap();
    let ing = Ingestor::open(&db).unwrap();
    assert_eq!(all_events(&ing).len(), 3_000);
    assert_eq!(
        ing.aggregate(&ingest_core::Query::default()).unwrap().totals.count,
        3_000
    );
}

/// A missing directory on SQLite; on PostgreSQL, a server that is not
/// there.
/// A file that cannot be opened is an I/O error; a server that cannot be
/// reached is unavailable, which a caller retries later.
#[test]
fn a_missing_directory_is_an_io_error() {
    for store in backends(Sqlite::File) {
        let err = Ingestor::open(store.unreachable_location()).unwrap_err();
        let expected = if store.backend == "sqlite" {
            ErrorKind::Io
        } else {
            ErrorKind::Unavailable
        };
        assert_eq!(err.kind(), expected, "{}: {err}", store.backend);
        assert!(err.is_storage());
        assert!(matches!(err, Error::Storage { .. }));
    }
}

#[test]
fn a_newer_schema_is_refused() {
    for mut store in backends(Sqlite::File) {
        drop(store.open());
        store.set_schema_version(999);
        let err = Ingestor::open(store.location()).unwrap_err();
        assert!(
            err.to_string().contains("schema version 999"),
            "{}: {err}",
            store.backend
        );
    }
}

/// A server that hangs up on the pool's idle connections (a restart, a
/// failover, `idle_session_timeout`, an operator's `pg_terminate_backend`)
/// costs no call: a lone event's statement commits on its own, so on a
/// connection lost under it the call could not tell whether it was kept;
/// checkout of a connection idle for 100 ms or more sees the hang-up
/// first and opens a new connection.
#[cfg(feature = "postgres")]
#[test]
fn idle_connections_the_server_hung_up_on_fail_no_call() {
    for store in backends(Sqlite::Memory).into_iter().filter(|s| s.backend == "postgres") {
        let name = format!("hangup_{}_{}", std::process::id(), line!());
        let ing = Ingestor::builder(format!("{}&application_name={name}", store.location()))
            .open()
            .unwrap();
        let event = |n: u32| json!({"client": "c", "metric": "m", "value": 1, "ts": 1_700_000_000_000i64 + n as i64});
        // Several pooled connections, each with the lone event's statement prepared.
        std::thread::scope(|s| {
            for t in 0..4 {
                let ing = &ing;
                s.spawn(move || {
                    for n in 0..20 {
                        ing.submit(&event(t * 100 + n)).unwrap();
                    }
                });
            }
        });
        let mut admin = store.postgres_client();
        let ended: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t",
                &[&name],
            )
            .unwrap()
            .get(0);
        assert!(ended >= 1, "no connection of the store to end");
        // Until the server has closed them all.
        let t0 = std::time::Instant::now();
        while admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
        {
            assert!(t0.elapsed() < Duration::from_secs(10), "connections still open");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The connections sat idle long enough to be looked at (100 ms).
        std::thread::sleep(Duration::from_millis(150));
        for n in 1000..1010 {
            ing.submit(&event(n))
                .unwrap_or_else(|e| panic!("call {n} after the hang-up: {e}"));
        }
        assert_eq!(ing.stats().unwrap().stored_events, 90);
    }
}
