//! The store over time: dead letters, reprocessing under new rules, a
//! changed dedup key, locks held by another process, damaged files.

use std::time::Duration;

use ingest_core::{Durability, Error, ErrorKind, Ingestor, Page, Rules};
use serde_json::json;

use crate::common::all_events;

#[test]
fn the_same_bad_input_is_kept_once_with_its_reasons_and_rules_version() {
    let ing = Ingestor::in_memory().unwrap();
    let raw = json!({"source": "clientC", "payload": {"metric": "views"}});
    for _ in 0..3 {
        ing.submit(&raw).unwrap();
    }
    ing.submit(&json!({"source": "clientC", "value": "x", "ts": 0}))
        .unwrap();
    let rejected = ing.rejected(Page::default()).unwrap();
    assert_eq!(rejected.len(), 2);
    let first = rejected.iter().find(|r| r.raw == raw).unwrap();
    assert_eq!(first.attempts, 3);
    assert_eq!(first.rules_version, ing.rules_version());
    assert_eq!(first.reasons.len(), 2);
    assert_eq!(ing.rejected(Page { limit: 1, offset: 1 }).unwrap().len(), 1);
    assert!(ing.rejected(Page { limit: 0, offset: 0 }).is_err());
}

#[test]
fn reprocessing_under_new_rules_moves_what_now_passes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    {
        let ing = Ingestor::open(&db).unwrap();
        ing.submit(&json!({"client": "a", "price": 3, "ts": 0})).unwrap();
        ing.submit(&json!({"client": "a", "price": 4, "ts": 0})).unwrap();
        ing.submit(&json!({"client": "a", "value": 4, "ts": 0})).unwrap();
        ing.submit(&json!({"client": "a", "ts": 0})).unwrap();
        assert_eq!(ing.stats().unwrap().stored_rejected, 3);
    }
    let rules = Rules::from_value(&json!({"aliases": {"amount": ["value", "price"]}})).unwrap();
    let ing = Ingestor::builder(&db).rules(rules).open().unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    {
        let ing = Ingestor::open(&db).unwrap();
        ing.submit(&json!({"client": "a", "value": 1, "ts": 0, "id": "e1"}))
            .unwrap();
        ing.submit(&json!({"client": "a", "value": 2, "ts": 0, "id": "e2"}))
            .unwrap();
    }
    let by_id = Rules::from_value(&json!({"dedup_key": ["client_id", "event_id"]})).unwrap();
    let ing = Ingestor::builder(&db).rules(by_id.clone()).open().unwrap();
    let o = ing
        .submit(&json!({"client": "a", "value": 99, "ts": 5, "id": "e1"}))
        .unwrap();
    assert_eq!(o.status(), "duplicate", "matched by event id after the rekey");
    drop(ing);
    // A key under which two stored events would merge is refused, naming them.
    let by_client = Rules::from_value(&json!({"dedup_key": ["client_id"]})).unwrap();
    let err = Ingestor::builder(&db).rules(by_client).open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRules, "{err}");
    assert!(err.to_string().contains("same event"));
    // Nothing changed: the old key still holds.
    let ing = Ingestor::builder(&db).rules(by_id).open().unwrap();
    assert_eq!(
        ing.submit(&json!({"client": "a", "value": 7, "ts": 9, "id": "e2"}))
            .unwrap()
            .status(),
        "duplicate"
    );
}

#[test]
fn a_lock_held_past_the_busy_timeout_is_a_busy_error_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let ing = Ingestor::builder(&db)
        .busy_timeout(Duration::from_millis(100))
        .durability(Durability::Normal)
        .open()
        .unwrap();
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let event = json!({"client": "a", "value": 1, "ts": 0});
    let err = ing.submit(&event).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert!(err.to_string().contains("busy timeout"));
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(ing.submit(&event).unwrap().status(), "accepted");
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

#[test]
fn a_missing_directory_is_an_io_error() {
    let err = Ingestor::open("/nonexistent-dir/for/ingest.db").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.is_storage());
    assert!(matches!(err, Error::Storage { .. }));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    drop(Ingestor::open(&db).unwrap());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let err = Ingestor::open(&db).unwrap_err();
    assert!(err.to_string().contains("schema version 999"), "{err}");
}
