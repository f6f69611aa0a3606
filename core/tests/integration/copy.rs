//! Moving a store: `copy_to` between every pair of backends gives a target
//! that holds the same events and dead letters and answers the same
//! aggregates, and a second copy adds nothing.

use std::collections::BTreeSet;

use ingest_core::{Bucket, Ingestor, Query};
use serde_json::{json, Value};

use crate::common::{all_events, backends, close, Sqlite};

const METRICS: [&str; 3] = ["Sales", "views", "clicks"];

fn fill(ing: &Ingestor) -> u64 {
    let mut raws: Vec<Value> = (0..400i64)
        .map(|i| {
            json!({
                "source": format!("client{}", i % 9),
                "payload": {"metric": METRICS[(i % 3) as usize], "value": (i % 17) as f64 * 1.25,
                            "ts": 1_700_000_000_000i64 + i * 3_600_017, "note": format!("n{i}")},
            })
        })
        .collect();
    // Retries in another spelling, and three inputs that cannot be events.
    raws.extend((0..50i64).map(|i| {
        json!({"client_id": format!("client{}", i % 9), "metric": METRICS[(i % 3) as usize].to_lowercase(),
               "amount": (i % 17) as f64 * 1.25, "timestamp": 1_700_000_000_000i64 + i * 3_600_017})
    }));
    raws.extend([
        json!({"source": "x", "payload": {"metric": "views"}}),
        json!({"client": "y", "value": "lots", "ts": 0}),
        json!({"client": "z", "value": 1}),
    ]);
    for chunk in raws.chunks(64) {
        ing.submit_batch(chunk).unwrap();
    }
    400
}

/// What makes two stores hold the same events: everything but ids and
/// arrival times.
fn contents(ing: &Ingestor) -> BTreeSet<String> {
    all_events(ing)
        .into_iter()
        .map(|s| serde_json::to_string(&s.event).unwrap())
        .collect()
}

fn queries() -> Vec<Query> {
    let at = |ms: i64| ingest_core::Timestamp::from_millis(ms);
    vec![
        Query::default(),
        Query {
            client_id: Some("client3".into()),
            start: at(1_700_000_000_000 + 7_777_777),
            end: at(1_700_000_000_000 + 900_000_000),
            ..Query::default()
        },
        Query {
            metric: Some("sales".into()),
            bucket: Some(Bucket::Day),
            ..Query::default()
        },
        Query {
            by_client: true,
            by_metric: true,
            bucket: Some(Bucket::Month),
            ..Query::default()
        },
    ]
}

#[test]
fn a_copy_between_any_two_backends_holds_and_answers_the_same() {
    for source in backends(Sqlite::Memory) {
        let src = source.open();
        let distinct = fill(&src);
        for target in backends(Sqlite::File) {
            let on = format!("{} to {}", source.backend, target.backend);
            let dst = target.open();
            let report = src.copy_to(&dst).unwrap();
            assert_eq!((report.copied, report.already_there), (distinct, 0), "{on}");
            assert_eq!((report.rejected, report.now_accepted), (3, 0), "{on}");
            assert_eq!(contents(&dst), contents(&src), "{on}");
            assert_eq!(dst.stats().unwrap().stored_rejected, 3, "{on}");
            for q in queries() {
                let (a, b) = (src.aggregate(&q).unwrap(), dst.aggregate(&q).unwrap());
                assert_eq!(
                    a.groups.as_ref().map(Vec::len),
                    b.groups.as_ref().map(Vec::len),
                    "{on}: {q:?}"
                );
                assert_eq!(
                    (a.totals.count, a.totals.min, a.totals.max),
                    (b.totals.count, b.totals.min, b.totals.max)
                );
                assert!(close(a.totals.sum, b.totals.sum), "{on}: {q:?}");
            }

            // Run again (an interrupted copy is finished this way): nothing doubles.
            let again = src.copy_to(&dst).unwrap();
            assert_eq!(
                (again.copied, again.already_there, again.rejected),
                (0, distinct, 3),
                "{on}"
            );
            assert_eq!(all_events(&dst).len() as u64, distinct, "{on}");
            assert_eq!(dst.stats().unwrap().stored_rejected, 3, "{on}");
            assert_eq!(dst.aggregate(&Query::default()).unwrap().totals.count, distinct, "{on}");
        }
    }
}

#[test]
fn dead_letters_are_decided_again_by_the_targets_rules() {
    for target in backends(Sqlite::File) {
        let src = Ingestor::in_memory().unwrap();
        src.submit(&json!({"client": "a", "price": 3, "ts": 0})).unwrap();
        let rules = ingest_core::Rules::from_value(&json!({"aliases": {"amount": ["value", "price"]}})).unwrap();
        let dst = target.builder().rules(rules).open().unwrap();
        let report = src.copy_to(&dst).unwrap();
        assert_eq!((report.now_accepted, report.rejected), (1, 0), "{}", target.backend);
        assert_eq!(all_events(&dst)[0].event.amount, 3.0);
    }
}
