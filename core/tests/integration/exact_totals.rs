//! Totals that no order, grouping or client can bend: the hostile cases of
//! issue 15 on every backend, through every view (rollups, edge scans and
//! both), and hostile writers beside honest ones.

use std::sync::Arc;

use ingest_core::{Bucket, Ingestor, Query, ReasonCode, Timestamp};
use serde_json::{json, Value};

use crate::common::{backends, exact, Sqlite};

/// 2024-05-01T10:00:00Z.
const HOUR_START: i64 = 1_714_557_600_000;
const HOUR: i64 = 3_600_000;

fn event(client: &str, amount: f64, ms: i64) -> Value {
    json!({"client": client, "metric": "sales", "value": amount, "ts": ms})
}

fn query(start: i64, end: i64) -> Query {
    Query {
        metric: Some("sales".into()),
        start: Timestamp::from_millis(start),
        end: Timestamp::from_millis(end),
        ..Query::default()
    }
}

/// The sum of every view of the hour: whole (rollups), cut by a
/// millisecond at either edge (scans), grouped by each bucket, and the
/// range of the day and the month around it.
fn views(ing: &Ingestor) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (name, q) in [
        ("whole hour", query(HOUR_START, HOUR_START + HOUR)),
        ("hour less its last ms", query(HOUR_START, HOUR_START + HOUR - 1)),
        ("hour from -1 ms", query(HOUR_START - 1, HOUR_START + HOUR)),
        ("the day", query(HOUR_START - 10 * HOUR, HOUR_START + 14 * HOUR)),
        (
            "all time",
            Query {
                metric: Some("sales".into()),
                ..Query::default()
            },
        ),
    ] {
        out.push((name.to_string(), ing.aggregate(&q).unwrap().totals.sum));
        for bucket in [Bucket::Hour, Bucket::Day, Bucket::Month] {
            let grouped = ing
                .aggregate(&Query {
                    bucket: Some(bucket),
                    ..q.clone()
                })
                .unwrap();
            let total: f64 = grouped.groups.unwrap().iter().map(|g| g.stats.sum).sum();
            out.push((format!("{name} by {bucket}"), total));
        }
    }
    out
}

#[test]
fn one_client_cannot_erase_anothers_amounts() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let t = |i: i64| HOUR_START + 60_000 * i;
        ing.submit(&event("evil", 1e16, t(1))).unwrap();
        for i in 0..4 {
            ing.submit(&event("honest", 1.0, t(2 + i))).unwrap();
        }
        ing.submit(&event("evil", -1e16, t(10))).unwrap();
        for (view, sum) in views(&ing) {
            assert_eq!(sum, 4.0, "{}: {view}", store.backend);
        }
        let by_client = ing
            .aggregate(&Query {
                by_client: true,
                ..query(HOUR_START, HOUR_START + HOUR)
            })
            .unwrap();
        let sums: Vec<(String, f64)> = by_client
            .groups
            .unwrap()
            .into_iter()
            .map(|g| (g.key.client_id.unwrap(), g.stats.sum))
            .collect();
        assert_eq!(
            sums,
            [("evil".to_string(), 0.0), ("honest".to_string(), 4.0)],
            "{}",
            store.backend
        );
    }
}

#[test]
fn every_view_gives_the_exact_sum_rounded_once() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let t = |i: i64| HOUR_START + 60_000 * i;
        let mut batch: Vec<Value> = (0..10).map(|i| event("a", 0.1, t(i))).collect();
        ing.submit_batch(&batch).unwrap();
        let tenths = ing.aggregate(&query(HOUR_START, HOUR_START + HOUR)).unwrap().totals;
        assert_eq!((tenths.sum, tenths.avg()), (1.0, Some(0.1)), "{}", store.backend);
        batch = vec![event("b", 1e16, t(20))];
        batch.extend((0..4).map(|i| event("c", 1.0, t(21 + i))));
        batch.push(event("b", -1e16, t(30)));
        ing.submit_batch(&batch).unwrap();
        for (view, sum) in views(&ing) {
            assert_eq!(sum, 5.0, "{}: {view}", store.backend);
        }
    }
}

#[test]
fn no_amount_makes_a_total_infinite_or_fails_a_write() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        for big in [1e308, -1e308, f64::MAX, 1.0000001e289] {
            let out = ing.submit(&event("evil", big, HOUR_START)).unwrap();
            assert_eq!(
                out.reasons()[0].code,
                ReasonCode::OutOfRange,
                "{}: {big}",
                store.backend
            );
        }
        // The largest amounts accepted, many times over: exact, finite.
        let huge: Vec<Value> = (0..50)
            .map(|i| event("evil", if i % 3 == 2 { -1e289 } else { 1e289 }, HOUR_START + i))
            .collect();
        ing.submit_batch(&huge).unwrap();
        ing.submit(&event("honest", 0.5, HOUR_START + 100)).unwrap();
        let want = exact::sum((0..50).map(|i| if i % 3 == 2 { -1e289 } else { 1e289 }).chain([0.5]));
        for (view, sum) in views(&ing) {
            assert!(sum.is_finite(), "{}: {view}", store.backend);
            assert_eq!(sum, exact::nearest(&want), "{}: {view}", store.backend);
        }
        let json = serde_json::to_value(ing.aggregate(&query(HOUR_START, HOUR_START + HOUR)).unwrap()).unwrap();
        assert!(json["sum"].is_f64() && json["avg"].is_f64(), "{json}");
    }
}

/// Hostile writers send the largest amounts, cancelling and not, and
/// amounts out of range, while honest writers send theirs: every honest
/// write succeeds, and the totals are exact.
#[test]
fn hostile_writers_never_fail_honest_ones() {
    const ROUNDS: i64 = 60;
    for store in backends(Sqlite::File) {
        let ing = Arc::new(store.open());
        let threads: Vec<_> = (0..6)
            .map(|w| {
                let ing = Arc::clone(&ing);
                std::thread::spawn(move || {
                    let mut failures = 0;
                    for r in 0..ROUNDS {
                        let ms = HOUR_START + r * 1_000 + w;
                        let result = if w < 3 {
                            let batch = vec![
                                event("evil", 1e289, ms),
                                event("evil", 1e289, ms + 10),
                                event("evil", 1e308, ms + 20),
                                event("evil", -1e289, ms + 30),
                                json!({"client": "evil", "metric": "sales", "value": "-inf", "ts": ms}),
                            ];
                            ing.submit_batch(&batch).map(drop)
                        } else {
                            ing.submit(&event(&format!("honest{w}"), 0.1, ms)).map(drop)
                        };
                        failures += result.is_err() as u32;
                    }
                    (w, failures)
                })
            })
            .collect();
        for t in threads {
            let (w, failures) = t.join().unwrap();
            assert_eq!(failures, 0, "{}: writer {w}", store.backend);
        }
        let honest = ing
            .aggregate(&Query {
                by_client: true,
                ..Query::default()
            })
            .unwrap();
        for g in honest.groups.unwrap() {
            let client = g.key.client_id.unwrap();
            let want = if client == "evil" {
                exact::sum((0..3 * ROUNDS).flat_map(|_| [1e289, 1e289, -1e289]))
            } else {
                exact::sum((0..ROUNDS).map(|_| 0.1))
            };
            assert_eq!(g.stats.sum, exact::nearest(&want), "{}: {client}", store.backend);
        }
    }
}
