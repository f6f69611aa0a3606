//! The data lifecycle on both backends: the acceptance window, pruning that
//! never counts a retry twice, aggregates that stay exact or refuse, the
//! archive, and the space given back.

use std::io::Read;

use ingest_core::{Bucket, ErrorKind, Fields, Ingestor, Outcome, Query, ReasonCode, Rules, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::common::{backends, Sqlite, TestStore};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

fn with_rules(store: &TestStore, rules: Value) -> Ingestor {
    store
        .builder()
        .rules(Rules::from_value(&rules).unwrap())
        .open()
        .unwrap()
}

fn reasons(o: &Outcome) -> Vec<ReasonCode> {
    match o {
        Outcome::Rejected { reasons } => reasons.iter().map(|r| r.code).collect(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn event(client: &str, metric: &str, amount: f64, ts: i64) -> Value {
    json!({"client_id": client, "metric": metric, "amount": amount, "timestamp": ts})
}

#[test]
fn the_window_rejects_too_old_and_in_future_on_every_path() {
    for store in backends(Sqlite::Memory) {
        let ing = with_rules(&store, json!({"max_age": "1d", "max_future": "5m"}));
        let now = now_ms();
        let old = event("a", "m", 1.0, now - DAY - 60_000);
        let ahead = event("a", "m", 1.0, now + 600_000);
        let fine = event("a", "m", 1.0, now - DAY + 60_000);
        assert_eq!(
            reasons(&ing.submit(&old).unwrap()),
            [ReasonCode::TooOld],
            "{}",
            store.backend
        );
        assert_eq!(reasons(&ing.submit(&ahead).unwrap()), [ReasonCode::InFuture]);
        assert_eq!(reasons(&ing.check(&old).unwrap()), [ReasonCode::TooOld]);
        // The fast path reads text: the same answer.
        assert_eq!(
            reasons(&ing.submit_json(&old.to_string()).unwrap()),
            [ReasonCode::TooOld]
        );
        let batch = format!("[{old}, {fine}, {ahead}]");
        let outs = ing.submit_batch_json(&batch).unwrap();
        assert!(matches!(outs[1], Outcome::Accepted { .. }));
        assert_eq!(
            (reasons(&outs[0]), reasons(&outs[2])),
            (vec![ReasonCode::TooOld], vec![ReasonCode::InFuture])
        );
        let fields = Fields {
            client_id: "a",
            metric: Some("m"),
            amount: 1.0,
            timestamp_ms: now - 2 * DAY,
            event_id: None,
        };
        assert_eq!(reasons(&ing.submit_fields(&fields).unwrap()), [ReasonCode::TooOld]);
        // Other reasons come with it.
        let both = json!({"client_id": "a", "amount": "lots", "timestamp": now - 2 * DAY});
        let got = reasons(&ing.submit(&both).unwrap());
        assert!(
            got.contains(&ReasonCode::TooOld) && got.contains(&ReasonCode::BadValue),
            "{got:?}"
        );
        // The built-in rules have no window: the design's 2024 events pass.
        let open = with_rules(&store, json!({}));
        assert!(matches!(
            open.submit(&event("a", "m", 1.0, 1_704_067_200_000)).unwrap(),
            Outcome::Accepted { .. }
        ));
    }
}

#[test]
fn prune_refuses_without_max_age_and_inside_the_window() {
    for store in backends(Sqlite::Memory) {
        let open = with_rules(&store, json!({}));
        let e = open.prune(Timestamp::parse("2000-01-01").unwrap(), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("max_age"), "{e}");
        let ing = with_rules(&store, json!({"max_age": "30d"}));
        let edge = now_ms() - 30 * DAY;
        for inside in [edge + 2_000, edge + DAY, now_ms(), now_ms() + DAY] {
            let e = ing.prune(Timestamp::from_millis(inside).unwrap(), None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", store.backend);
            assert!(e.to_string().contains("inside the acceptance window"), "{e}");
        }
        assert!(
            ing.pruned().unwrap().before.is_none(),
            "a refused prune changes nothing"
        );
        assert!(ing.prune(Timestamp::from_millis(edge - 1000).unwrap(), None).is_ok());
    }
}

/// Events over the last 120 days (every 7 hours, 3 clients, 2 metrics),
/// stored under rules without a window, as a store that was never pruned.
fn fill(ing: &Ingestor, now: i64) -> Vec<Value> {
    let events: Vec<Value> = (0..412i64)
        .map(|i| {
            let ts = now - 120 * DAY + i * 7 * HOUR + (i * 7919) % HOUR;
            let metric = ["sales", "views"][(i % 2) as usize];
            json!({"client_id": format!("c{}", i % 3), "metric": metric,
                   "amount": (i % 13) as f64 * 0.1, "timestamp": ts, "note": i})
        })
        .collect();
    for chunk in events.chunks(100) {
        ing.submit_batch(chunk).unwrap();
    }
    events
}

/// Every aggregate over whole buckets the tests compare before and after.
fn whole_bucket_queries() -> Vec<Query> {
    let mut out = vec![Query::default()];
    for bucket in [Bucket::Hour, Bucket::Day, Bucket::Month] {
        for (by_client, by_metric) in [(false, false), (true, false), (false, true)] {
            // Hours per client are read from the events: gone after a prune.
            if by_client && bucket == Bucket::Hour {
                continue;
            }
            out.push(Query {
                bucket: Some(bucket),
                by_client,
                by_metric,
                ..Query::default()
            });
        }
    }
    out.push(Query {
        client_id: Some("c1".into()),
        metric: Some("sales".into()),
        ..Query::default()
    });
    out
}

fn answers(ing: &Ingestor) -> Vec<String> {
    whole_bucket_queries()
        .iter()
        .map(|q| {
            let mut a = serde_json::to_value(ing.aggregate(q).unwrap()).unwrap();
            a.as_object_mut().unwrap().remove("computed_at");
            a.to_string()
        })
        .collect()
}

#[test]
fn prune_keeps_every_whole_bucket_total_and_a_resend_counts_nothing_twice() {
    for store in backends(Sqlite::File) {
        let now = now_ms();
        let writer = with_rules(&store, json!({}));
        let events = fill(&writer, now);
        let before_totals = answers(&writer);
        let stored = writer.stats().unwrap().stored_events;
        drop(writer);

        let ing = with_rules(&store, json!({"max_age": "60d"}));
        // A day boundary, so that whole days and hours stay answerable.
        let horizon = (now - 61 * DAY).div_euclid(DAY) * DAY;
        let pruned_count = events
            .iter()
            .filter(|e| e["timestamp"].as_i64().unwrap() < horizon)
            .count() as u64;
        let report = ing.prune(Timestamp::from_millis(horizon).unwrap(), None).unwrap();
        assert_eq!(report.events, pruned_count, "{}", store.backend);
        assert_eq!(ing.stats().unwrap().stored_events, stored - pruned_count);
        assert_eq!(
            answers(&ing),
            before_totals,
            "{}: whole buckets unchanged",
            store.backend
        );

        // Every event sent again, under the window and then without one:
        // the pruned are too old, the rest duplicates; no total moves.
        for (rules, floor) in [(json!({"max_age": "60d"}), now - 60 * DAY), (json!({}), horizon)] {
            let again = with_rules(&store, rules);
            let outs = again.submit_batch(&events).unwrap();
            for (e, o) in events.iter().zip(&outs) {
                let ts = e["timestamp"].as_i64().unwrap();
                if ts < floor.min(horizon) || ts < floor - 60_000 {
                    assert_eq!(reasons(o), [ReasonCode::TooOld], "{}", store.backend);
                } else if ts > floor + 60_000 {
                    assert!(matches!(o, Outcome::Duplicate { .. }), "{o:?}");
                }
            }
            assert_eq!(answers(&again), before_totals);
        }
        let p = ing.pruned().unwrap();
        assert_eq!((p.before.map(|t| t.millis()), p.events), (Some(horizon), pruned_count));
        // Run again: nothing more to remove.
        assert_eq!(
            ing.prune(Timestamp::from_millis(horizon).unwrap(), None)
                .unwrap()
                .events,
            0
        );
    }
}

/// A store opened before another one pruned it, under rules with no window,
/// still holds the horizon it read at open: the prune's retries must not
/// pass it. Each write reads the horizon inside its transaction (locked on
/// PostgreSQL), refuses a group holding an event below it, and decides the
/// group again: the pruned event is then too old, the rest is kept.
#[test]
fn a_store_opened_before_a_prune_elsewhere_counts_no_pruned_retry() {
    for store in backends(Sqlite::File) {
        let now = now_ms();
        let loose = with_rules(&store, json!({}));
        let old = event("a", "m", 5.0, now - 100 * DAY);
        assert!(matches!(loose.submit(&old).unwrap(), Outcome::Accepted { .. }));
        let total = Query {
            metric: Some("m".into()),
            ..Query::default()
        };
        let before = loose.aggregate(&total).unwrap().totals;

        let pruner = with_rules(&store, json!({"max_age": "30d"}));
        let horizon = now - 31 * DAY;
        let report = pruner.prune(Timestamp::from_millis(horizon).unwrap(), None).unwrap();
        assert_eq!(report.events, 1, "{}", store.backend);

        // Every write path of the store opened first.
        assert_eq!(
            reasons(&loose.submit(&old).unwrap()),
            [ReasonCode::TooOld],
            "{}",
            store.backend
        );
        assert_eq!(
            reasons(&loose.submit_json(&old.to_string()).unwrap()),
            [ReasonCode::TooOld]
        );
        let fresh = event("a", "m", 1.0, now - DAY);
        let outs = loose.submit_batch(&[old.clone(), fresh.clone()]).unwrap();
        assert_eq!(reasons(&outs[0]), [ReasonCode::TooOld]);
        assert!(matches!(outs[1], Outcome::Accepted { .. }), "{:?}", outs[1]);
        let after = loose.aggregate(&total).unwrap().totals;
        assert_eq!(
            (after.count, after.sum),
            (before.count + 1, before.sum + 1.0),
            "{}: only the fresh event counted",
            store.backend
        );

        // A copy into the pruned store leaves that time out, and says so.
        let source = Ingestor::in_memory().unwrap();
        source.submit(&old).unwrap();
        source.submit(&event("b", "m", 2.0, now - DAY)).unwrap();
        let copied = source.copy_to(&loose).unwrap();
        assert_eq!((copied.copied, copied.pruned), (1, 1), "{}", store.backend);
        assert_eq!(loose.aggregate(&total).unwrap().totals.count, before.count + 2);
    }
}

/// Retries of every event sent, without a window, while another store
/// prunes them: each is a duplicate before its row goes and too old after,
/// never stored again, whichever commits first.
#[test]
fn retries_racing_a_prune_count_nothing_twice() {
    for store in backends(Sqlite::File) {
        let now = now_ms();
        let loose = with_rules(&store, json!({}));
        let events = fill(&loose, now);
        let before = answers(&loose);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let retries = s.spawn(|| {
                // Rounds during the prune, then one after it.
                let mut rounds = 0;
                loop {
                    let last = stop.load(std::sync::atomic::Ordering::Relaxed);
                    for chunk in events.chunks(50) {
                        for o in loose.submit_batch(chunk).unwrap() {
                            assert!(!matches!(o, Outcome::Accepted { .. }), "{}: {o:?}", store.backend);
                        }
                    }
                    rounds += 1;
                    if last {
                        return rounds;
                    }
                }
            });
            let pruner = with_rules(&store, json!({"max_age": "60d"}));
            let horizon = (now - 61 * DAY).div_euclid(DAY) * DAY;
            assert!(
                pruner
                    .prune(Timestamp::from_millis(horizon).unwrap(), None)
                    .unwrap()
                    .events
                    > 0
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(retries.join().unwrap() >= 1);
        });
        assert_eq!(answers(&loose), before, "{}", store.backend);
    }
}

#[test]
fn a_range_that_needs_pruned_events_is_refused_and_one_that_does_not_is_exact() {
    for store in backends(Sqlite::File) {
        let now = now_ms();
        let writer = with_rules(&store, json!({}));
        let events = fill(&writer, now);
        let horizon = (now - 61 * DAY).div_euclid(DAY) * DAY;
        // An hour with events before the horizon, and the exact answers.
        let t = events
            .iter()
            .map(|e| e["timestamp"].as_i64().unwrap())
            .find(|&t| t < horizon - 10 * DAY)
            .unwrap();
        let cut = Query {
            start: Timestamp::from_millis(t - 1),
            end: Timestamp::from_millis(horizon + 5 * DAY),
            ..Query::default()
        };
        let aligned = Query {
            start: Timestamp::from_millis(t - t.rem_euclid(HOUR)),
            ..cut.clone()
        };
        let exact = writer.aggregate(&aligned).unwrap().totals;
        let client_day = Query {
            client_id: Some("c0".into()),
            start: Timestamp::from_millis(t - t.rem_euclid(DAY)),
            end: Timestamp::from_millis(horizon),
            ..Query::default()
        };
        let client_exact = writer.aggregate(&client_day).unwrap().totals;
        let zoned = |zone: &str| Query {
            bucket: Some(Bucket::Day),
            tz: Some(zone.parse().unwrap()),
            ..Query::default()
        };
        let berlin = writer.aggregate(&zoned("Europe/Berlin")).unwrap().groups;
        drop(writer);
        let ing = with_rules(&store, json!({"max_age": "60d"}));
        ing.prune(Timestamp::from_millis(horizon).unwrap(), None).unwrap();
        let e = ing.aggregate(&cut).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", store.backend);
        assert!(e.to_string().contains("were pruned"), "{e}");
        assert_eq!(ing.aggregate(&aligned).unwrap().totals, exact);
        assert_eq!(ing.aggregate(&client_day).unwrap().totals, client_exact);
        // A cut hour that never held events is answered: nothing was removed there.
        let empty = Query {
            start: Timestamp::from_millis(now - 200 * DAY + 5),
            end: Timestamp::from_millis(now - 199 * DAY + 7),
            ..Query::default()
        };
        assert_eq!(ing.aggregate(&empty).unwrap().totals.count, 0);
        let hourly = Query {
            bucket: Some(Bucket::Hour),
            by_client: true,
            ..Query::default()
        };
        let e = ing.aggregate(&hourly).unwrap_err();
        assert!(e.to_string().contains("group by day there"), "{e}");
        // Local days of whole-hour offsets come from hour rollups: exact.
        // At +05:45 each local midnight cuts an hour whose events are gone.
        assert_eq!(ing.aggregate(&zoned("Europe/Berlin")).unwrap().groups, berlin);
        let e = ing.aggregate(&zoned("Asia/Kathmandu")).unwrap_err();
        assert!(e.to_string().contains("were pruned"), "{e}");
    }
}

fn archived(path: &std::path::Path) -> Vec<Value> {
    let mut text = String::new();
    let file = std::fs::File::open(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text).unwrap();
    }
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_archive_holds_each_removed_row_once_even_after_an_interrupted_prune() {
    for name in ["archive.ndjson", "archive.ndjson.gz"] {
        for store in backends(Sqlite::File) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            let now = now_ms();
            let writer = with_rules(&store, json!({}));
            let events = fill(&writer, now);
            writer
                .submit(&json!({"client_id": "x", "amount": "junk", "timestamp": 0}))
                .unwrap();
            drop(writer);
            let ing = with_rules(&store, json!({"max_age": "60d"}));
            let first = now - 100 * DAY;
            let r1 = ing.prune(Timestamp::from_millis(first).unwrap(), Some(&path)).unwrap();
            assert_eq!(r1.rejected, 0, "the dead letter was received now, after the horizon");
            // What a prune that stopped after writing its chunk and before
            // committing it leaves: a tail the store never recorded.
            let mut tail = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            std::io::Write::write_all(&mut tail, b"{\"kind\": \"event\", \"id\": -1}\n").unwrap();
            drop(tail);
            let second = now - 61 * DAY;
            let r2 = ing.prune(Timestamp::from_millis(second).unwrap(), Some(&path)).unwrap();
            assert_eq!(
                r2.archive.as_deref(),
                Some(path.canonicalize().unwrap().to_str().unwrap())
            );
            let lines = archived(&path);
            let mut ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
            let n = ids.len();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), n, "{}: no row twice", store.backend);
            let expected = events
                .iter()
                .filter(|e| e["timestamp"].as_i64().unwrap() < second)
                .count();
            assert_eq!(
                (n, r1.events + r2.events),
                (expected, expected as u64),
                "{}",
                store.backend
            );
            assert!(lines.iter().all(|l| l["kind"] == "event" && l["client_id"].is_string()));
            // Another file that already holds data is refused.
            let other = dir.path().join("other.ndjson");
            std::fs::write(&other, "{}\n").unwrap();
            let e = ing
                .prune(Timestamp::from_millis(second).unwrap(), Some(&other))
                .unwrap_err();
            assert!(e.to_string().contains("already exists"), "{e}");
        }
    }
}

#[test]
fn dead_letters_received_before_the_horizon_go_too() {
    for store in backends(Sqlite::Memory) {
        let ing = with_rules(&store, json!({"max_age": "0s"}));
        ing.submit(&json!({"client_id": "x", "amount": "junk", "timestamp": 0}))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let r = ing.prune(Timestamp::from_millis(now_ms() - 5).unwrap(), None).unwrap();
        assert_eq!((r.events, r.rejected), (0, 1), "{}", store.backend);
        assert_eq!(ing.stats().unwrap().stored_rejected, 0);
    }
}

#[test]
fn a_sqlite_file_gets_its_space_back() {
    let store = backends(Sqlite::File).remove(0);
    let now = now_ms();
    let writer = with_rules(&store, json!({}));
    let blob = "x".repeat(2000);
    let batch: Vec<Value> = (0..3000i64)
        .map(|i| json!({"client_id": "c", "amount": 1, "timestamp": now - 100 * DAY + i * 1000, "pad": blob}))
        .collect();
    writer.submit_batch(&batch).unwrap();
    drop(writer);
    let ing = with_rules(&store, json!({"max_age": "60d"}));
    let r = ing
        .prune(Timestamp::from_millis(now - 61 * DAY).unwrap(), None)
        .unwrap();
    assert_eq!(r.events, 3000);
    assert!(
        r.bytes_after * 4 < r.bytes_before,
        "{} bytes before, {} after",
        r.bytes_before,
        r.bytes_after
    );
    let file = std::fs::metadata(store.location()).unwrap().len();
    assert!(file <= r.bytes_after + 4096, "the file itself shrank: {file}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Any horizon inside the window is refused, on any store.
    #[test]
    fn every_horizon_inside_the_window_is_refused(age_s in 1u64..100_000_000, into in 1i64..1_000_000_000_000) {
        let ing = Ingestor::builder(":memory:")
            .rules(Rules::from_value(&json!({"max_age": age_s})).unwrap())
            .open()
            .unwrap();
        // At least one second inside: the clock moves on while the call runs.
        let edge = now_ms() - age_s as i64 * 1000;
        let before = Timestamp::from_millis(edge + 1000 + into % (age_s as i64 * 1000 + DAY)).unwrap();
        let e = ing.prune(before, None).unwrap_err();
        prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        prop_assert!(ing.pruned().unwrap().before.is_none());
    }

    /// Prune at any horizon, then send everything again: no total over
    /// whole buckets changes.
    #[test]
    fn prune_then_resend_never_changes_a_total(
        days in proptest::collection::vec((0i64..200, 0i64..DAY, 0usize..4, -50i32..50), 1..60),
        horizon_days in 61i64..210,
    ) {
        let now = now_ms();
        let events: Vec<Value> = days
            .iter()
            .map(|&(d, ms, c, a)| event(&format!("c{c}"), "m", f64::from(a) / 4.0, now - d * DAY - ms))
            .collect();
        let horizon = (now - horizon_days * DAY).div_euclid(HOUR) * HOUR;
        // Stored without a window, then pruned under one: a rules change,
        // as an operator makes it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let file = Ingestor::open(&path).unwrap();
        file.submit_batch(&events).unwrap();
        let totals = answers(&file);
        drop(file);
        let windowed = Ingestor::builder(&path)
            .rules(Rules::from_value(&json!({"max_age": "60d"})).unwrap())
            .open()
            .unwrap();
        windowed.prune(Timestamp::from_millis(horizon).unwrap(), None).unwrap();
        windowed.submit_batch(&events).unwrap();
        prop_assert_eq!(answers(&windowed), totals.clone());
        drop(windowed);
        let loose = Ingestor::open(&path).unwrap();
        loose.submit_batch(&events).unwrap();
        prop_assert_eq!(answers(&loose), totals);
    }
}
