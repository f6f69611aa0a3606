//! Every failure point: nothing partial is left, and a retry answers as
//! DESIGN.md's table says. Checked on every backend, on a store opened
//! again, so "nothing left" is what the database holds, not what a cache
//! remembers.

use ingest_core::{Error, FailPoint, Ingestor, Query};
use serde_json::{json, Value};

use crate::common::{all_events, backends, Sqlite};

fn good(n: i64) -> Value {
    json!({"source": "clientD", "payload": {"metric": "sales", "value": 50 + n, "timestamp": 1_704_276_000_000i64 + n}})
}

fn bad() -> Value {
    json!({"source": "clientC", "payload": {"metric": "views"}})
}

/// (events, rejected, rollup count, rollup sum) as the database holds them.
fn snapshot(db: &str) -> (usize, u64, u64, f64) {
    let ing = Ingestor::open(db).unwrap();
    let t = ing.aggregate(&Query::default()).unwrap().totals;
    (
        all_events(&ing).len(),
        ing.stats().unwrap().stored_rejected,
        t.count,
        t.sum,
    )
}

#[test]
fn write_points_leave_nothing_partial_and_retries_answer_as_designed() {
    for point in [FailPoint::BeforeInsert, FailPoint::AfterInsert, FailPoint::AfterCommit] {
        for (batch, store) in [false, true]
            .into_iter()
            .flat_map(|b| backends(Sqlite::File).into_iter().map(move |s| (b, s)))
        {
            let db = store.location();
            let ing = store.open();
            ing.submit(&good(0)).unwrap();
            let before = snapshot(db);
            let items = vec![good(1), good(2), good(1), bad()];
            ing.simulate_failure(point, 1);
            let err = if batch {
                ing.submit_batch(&items).unwrap_err()
            } else {
                ing.submit(&items[0]).unwrap_err()
            };
            let on = format!("{point} on {}", store.backend);
            assert!(matches!(err, Error::Injected(p) if p == point), "{on}: {err}");
            assert_eq!(ing.armed_failure(), None, "one strike used");

            let after = snapshot(db);
            let retry_status = if point == FailPoint::AfterCommit {
                assert!(after.0 > before.0, "{on}: committed before the error");
                "duplicate"
            } else {
                assert_eq!(after, before, "{on}: nothing partial");
                "accepted"
            };
            if batch {
                let statuses: Vec<_> = ing.submit_batch(&items).unwrap().iter().map(|o| o.status()).collect();
                assert_eq!(statuses, [retry_status, retry_status, "duplicate", "rejected"], "{on}");
            } else {
                assert_eq!(ing.submit(&items[0]).unwrap().status(), retry_status, "{on}");
                assert_eq!(ing.submit(&items[0]).unwrap().status(), "duplicate");
            }
            let (events, _, count, _) = snapshot(db);
            assert_eq!(events as u64, count, "{on}: rollups agree with events");
            assert_eq!(events, if batch { 3 } else { 2 });
        }
    }
}

#[test]
fn a_failure_strikes_the_next_n_calls() {
    for store in backends(Sqlite::Memory) {
        failures_strike_the_next_n_calls(&store.open());
    }
}

fn failures_strike_the_next_n_calls(ing: &Ingestor) {
    ing.simulate_failure(FailPoint::BeforeInsert, 2);
    assert!(ing.submit(&good(1)).is_err());
    assert!(ing.submit(&bad()).is_err(), "rejections are writes too");
    assert_eq!(ing.submit(&good(1)).unwrap().status(), "accepted");
    assert_eq!(ing.stats().unwrap().failed, 2);
    ing.simulate_failure(FailPoint::AfterInsert, 5);
    // Dry runs and reads never consume a write failure.
    ing.check(&good(2)).unwrap();
    ing.aggregate(&Query::default()).unwrap();
    assert_eq!(ing.armed_failure(), Some((FailPoint::AfterInsert, 5)));
    ing.clear_failure();
    assert_eq!(ing.submit(&good(2)).unwrap().status(), "accepted");
}

#[test]
fn aggregate_failure_serves_the_stale_result_or_an_error() {
    for store in backends(Sqlite::Memory) {
        stale_result_or_error(&store.open());
    }
}

fn stale_result_or_error(ing: &Ingestor) {
    ing.submit(&good(1)).unwrap();
    let q = Query {
        metric: Some("SALES".into()),
        ..Query::default()
    };
    ing.simulate_failure(FailPoint::Aggregate, 1);
    assert!(
        matches!(ing.aggregate(&q), Err(Error::Injected(FailPoint::Aggregate))),
        "no cached result yet"
    );

    let fresh = ing.aggregate(&q).unwrap();
    assert!(!fresh.stale);
    ing.submit(&good(2)).unwrap();
    ing.simulate_failure(FailPoint::Aggregate, 1);
    let stale = ing.aggregate(&q).unwrap();
    assert!(stale.stale);
    assert_eq!((stale.totals, stale.computed_at), (fresh.totals, fresh.computed_at));
    // The same query spelled with another metric case shares the cache entry.
    let now = ing
        .aggregate(&Query {
            metric: Some("sales".into()),
            ..Query::default()
        })
        .unwrap();
    assert!(!now.stale);
    assert_eq!(now.totals.count, 2);
}

#[test]
fn reprocessing_fails_whole_and_can_be_retried() {
    for store in backends(Sqlite::File) {
        let db = store.location();
        store
            .open()
            .submit(&json!({"client": "a", "price": 3, "ts": 0}))
            .unwrap();
        let rules = ingest_core::Rules::from_value(&json!({"aliases": {"amount": ["value", "price"]}})).unwrap();
        let ing = store.builder().rules(rules).open().unwrap();
        ing.simulate_failure(FailPoint::AfterInsert, 1);
        assert!(ing.reprocess_rejected().is_err());
        assert_eq!(snapshot(db).0, 0);
        assert_eq!(snapshot(db).1, 1);
        let report = ing.reprocess_rejected().unwrap();
        assert_eq!((report.accepted, report.duplicate, report.rejected), (1, 0, 0));
    }
}
