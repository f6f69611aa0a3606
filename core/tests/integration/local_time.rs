//! Aggregates grouped in a local time zone (`Query::tz`), by example on
//! every backend: days of 23 and 25 hours, offsets of quarter hours, the
//! labels each group carries, and what a bad zone is. The property test in
//! properties.rs checks random zones, data and ranges against brute force.

use ingest_core::{ErrorKind, Ingestor, Query};
use serde_json::{json, Value};

use crate::common::{backends, Sqlite};

/// One event of `amount` at each time, for client `c`, metric `m`.
fn store_at(ing: &Ingestor, client: &str, times: &[(&str, f64)]) {
    let events: Vec<Value> = times
        .iter()
        .map(|(ts, amount)| json!({"client": client, "metric": "m", "value": amount, "ts": ts}))
        .collect();
    for o in ing.submit_batch(&events).unwrap() {
        assert!(matches!(o, ingest_core::Outcome::Accepted { .. }), "{o:?}");
    }
}

/// (bucket, bucket_local, count, sum) of each group of the JSON query.
fn groups(ing: &Ingestor, query: Value) -> Vec<(String, Option<String>, u64, f64)> {
    let a = ing.aggregate(&Query::from_value(&query).unwrap()).unwrap();
    serde_json::to_value(&a).unwrap()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["bucket"].as_str().unwrap().to_string(),
                g.get("bucket_local").map(|l| l.as_str().unwrap().to_string()),
                g["count"].as_u64().unwrap(),
                g["sum"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The groups of the JSON query are `want`, on `backend`.
fn expect(ing: &Ingestor, backend: &str, query: Value, want: &[(String, Option<String>, u64, f64)]) {
    assert_eq!(groups(ing, query.clone()), want, "{backend}: {query}");
}

fn group(bucket: &str, local: &str, count: u64, sum: f64) -> (String, Option<String>, u64, f64) {
    (bucket.into(), Some(local.into()), count, sum)
}

#[test]
fn berlin_days_of_23_and_25_hours_hold_their_own_events() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        store_at(
            &ing,
            "a",
            &[
                // March 31 (23 hours) from its first to its last millisecond.
                ("2024-03-30T22:59:59.999Z", 1.0),
                ("2024-03-30T23:00:00Z", 2.0),
                ("2024-03-31T21:59:59.999Z", 4.0),
                ("2024-03-31T22:00:00Z", 8.0),
                // October 27 (25 hours): both passes of 02:00 to 03:00.
                ("2024-10-27T00:30:00Z", 16.0),
                ("2024-10-27T01:30:00Z", 32.0),
                ("2024-10-27T22:59:59.999Z", 64.0),
                ("2024-10-27T23:00:00Z", 128.0),
            ],
        );
        let berlin_days = |start: &str, end: &str| json!({"metric": "m", "group_by": "day", "tz": "Europe/Berlin", "start": start, "end": end});
        expect(
            &ing,
            store.backend,
            berlin_days("2024-03-30", "2024-04-02"),
            &[
                group("2024-03-29T23:00:00.000Z", "2024-03-30T00:00:00+01:00", 1, 1.0),
                group("2024-03-30T23:00:00.000Z", "2024-03-31T00:00:00+01:00", 2, 6.0),
                group("2024-03-31T22:00:00.000Z", "2024-04-01T00:00:00+02:00", 1, 8.0),
            ],
        );
        expect(
            &ing,
            store.backend,
            berlin_days("2024-10-26", "2024-10-29"),
            &[
                group("2024-10-26T22:00:00.000Z", "2024-10-27T00:00:00+02:00", 3, 112.0),
                group("2024-10-27T23:00:00.000Z", "2024-10-28T00:00:00+01:00", 1, 128.0),
            ],
        );
        // The same per client (events and client_days), and unbounded.
        let per_client = groups(
            &ing,
            json!({"client_id": "a", "group_by": ["day", "client_id"], "tz": "Europe/Berlin"}),
        );
        let counts: Vec<u64> = per_client.iter().map(|g| g.2).collect();
        assert_eq!(counts, [1, 2, 1, 3, 1], "{}", store.backend);
        // Months: April in Berlin starts on March 31 at 22:00 UTC.
        expect(
            &ing,
            store.backend,
            json!({"group_by": "month", "tz": "Europe/Berlin", "end": "2024-05-01"}),
            &[
                group("2024-02-29T23:00:00.000Z", "2024-03-01T00:00:00+01:00", 3, 7.0),
                group("2024-03-31T22:00:00.000Z", "2024-04-01T00:00:00+02:00", 1, 8.0),
            ],
        );
        // Without a zone: UTC days, and no local label.
        expect(
            &ing,
            store.backend,
            json!({"group_by": "day", "start": "2024-03-31", "end": "2024-04-01"}),
            &[("2024-03-31T00:00:00.000Z".to_string(), None, 2, 12.0)],
        );
    }
}

#[test]
fn quarter_hour_offsets_cut_hours_at_the_right_millisecond() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        for client in ["a", "b"] {
            store_at(
                &ing,
                client,
                &[
                    ("2024-01-15T18:14:59.999Z", 1.0),
                    ("2024-01-15T18:15:00Z", 2.0),
                    ("2024-01-15T18:44:00Z", 4.0),
                    ("2024-01-16T09:29:59.999Z", 8.0),
                    ("2024-01-16T09:30:00Z", 16.0),
                ],
            );
        }
        expect(
            &ing,
            store.backend,
            json!({"group_by": "day", "tz": "Asia/Kathmandu", "start": "2024-01-10", "end": "2024-01-20"}),
            &[
                group("2024-01-14T18:15:00.000Z", "2024-01-15T00:00:00+05:45", 2, 2.0),
                group("2024-01-15T18:15:00.000Z", "2024-01-16T00:00:00+05:45", 8, 60.0),
            ],
        );
        let one_client_hours = groups(
            &ing,
            json!({"client_id": "b", "group_by": "hour", "tz": "Asia/Kathmandu"}),
        );
        assert_eq!(
            one_client_hours
                .iter()
                .map(|g| (g.1.clone().unwrap(), g.2))
                .collect::<Vec<_>>(),
            [
                ("2024-01-15T23:00:00+05:45".to_string(), 1),
                ("2024-01-16T00:00:00+05:45".to_string(), 2),
                ("2024-01-16T15:00:00+05:45".to_string(), 2),
            ],
            "{}",
            store.backend
        );
        expect(
            &ing,
            store.backend,
            json!({"metric": "m", "group_by": "day", "tz": "Pacific/Marquesas"}),
            &[
                group("2024-01-15T09:30:00.000Z", "2024-01-15T00:00:00-09:30", 8, 30.0),
                group("2024-01-16T09:30:00.000Z", "2024-01-16T00:00:00-09:30", 2, 32.0),
            ],
        );
    }
}

#[test]
fn a_zone_needs_a_real_name_and_changes_nothing_without_a_time_bucket() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        store_at(&ing, "a", &[("2024-01-15T18:15:00Z", 2.0)]);
        for bad in [
            json!("Mars/Olympus_Mons"),
            json!(""),
            json!(" "),
            json!(5),
            json!("europe/berlin"),
        ] {
            let e = Query::from_value(&json!({"group_by": "day", "tz": bad})).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains("Europe/Berlin"), "{e}");
        }
        let e = Query::from_json(r#"{"tz": "Europe/Atlantis"}"#).unwrap_err();
        assert!(e.to_string().contains("\"Europe/Atlantis\""), "{e}");
        // Totals alone: the zone has nothing to say.
        let plain = ing.aggregate(&Query::default()).unwrap();
        let zoned = ing
            .aggregate(&Query::from_json(r#"{"tz": " Asia/Kathmandu "}"#).unwrap())
            .unwrap();
        assert_eq!((plain.totals, plain.groups), (zoned.totals, zoned.groups));
        // Nothing stored in range: no groups.
        let empty = groups(&ing, json!({"group_by": "hour", "tz": "UTC", "start": "2030-01-01"}));
        assert!(empty.is_empty());
    }
}
