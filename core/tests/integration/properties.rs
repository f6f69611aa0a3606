//! Property tests: spelling independence, aggregates equal brute force (in
//! UTC and in local time zones), batches store each key once, and `check`
//! answers what `submit` answers.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Utc};
use ingest_core::{dedup_key, normalize, Bucket, Durability, Ingestor, Outcome, Query, Rules, Timestamp, Tz};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use num_bigint::BigInt;
use num_traits::Zero;

use crate::common::{all_events, backends, exact, local_time, Sqlite, TestStore};

// ---------------------------------------------------------------------------
// Spelling independence

/// Every accepted way of writing the instant `ms` (which is >= 1e11, so the
/// epoch-milliseconds forms are read as milliseconds).
fn time_spellings(ms: i64) -> Vec<Value> {
    let dt: DateTime<Utc> = DateTime::from_timestamp_millis(ms).unwrap();
    let plus = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
    let minus = FixedOffset::west_opt(8 * 3600).unwrap();
    let mut forms = vec![
        json!(dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        json!(dt.with_timezone(&plus).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()),
        json!(dt.with_timezone(&minus).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()),
        json!(dt.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
        json!(ms),
        json!(ms.to_string()),
        json!(format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))),
    ];
    if ms % 1000 == 0 {
        forms.push(json!(ms / 1000));
        forms.push(json!(dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
    }
    if ms % 86_400_000 == 0 {
        forms.push(json!(dt.format("%Y-%m-%d").to_string()));
    }
    forms
}

fn amount_spellings(a: f64) -> Vec<Value> {
    let mut forms = vec![
        json!(a),
        json!(a.to_string()),
        json!(format!("  {a} ")),
        json!(format!("{a:e}")),
    ];
    if a.fract() == 0.0 && a.abs() < 1e15 {
        forms.push(json!(a as i64));
        forms.push(json!((a as i64).to_string()));
    }
    forms
}

fn spelled(
    client: &str,
    metric: &str,
    amount: &Value,
    time: &Value,
    names: (usize, usize, usize, usize),
    envelope: bool,
) -> Value {
    const CLIENT: [&str; 5] = ["source", "client", "clientId", "client_id", "clientID"];
    const METRIC: [&str; 4] = ["metric", "name", "event", "type"];
    const AMOUNT: [&str; 6] = ["value", "amount", "amt", "val", "count", "qty"];
    const TIME: [&str; 6] = ["timestamp", "ts", "time", "date", "datetime", "occurred_at"];
    let mut body = Map::new();
    body.insert(METRIC[names.1].into(), json!(metric));
    body.insert(AMOUNT[names.2].into(), amount.clone());
    body.insert(TIME[names.3].into(), time.clone());
    if envelope {
        json!({"source": client, "payload": body})
    } else {
        body.insert(CLIENT[names.0].into(), json!(client));
        Value::Object(body)
    }
}

fn amount_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64),
        (-1_000_000_000i64..1_000_000_000).prop_map(|n| n as f64 / 1000.0),
        // Any amount accepted: finite, and within MAX_AMOUNT.
        any::<f64>().prop_filter("accepted", |f| f.is_finite()
            && f.abs() <= ingest_core::normalize::MAX_AMOUNT),
    ]
}

proptest! {
    #[test]
    fn every_spelling_of_one_event_has_one_key(
        ms in 100_000_000_000i64..4_000_000_000_000,
        whole_day in any::<bool>(),
        amount in amount_strategy(),
        client in "[a-zA-Z0-9_-]{1,12}",
        metric in "[a-z]{1,10}",
        picks in proptest::collection::vec((0usize..5, 0usize..4, 0usize..6, 0usize..6, any::<bool>(), any::<usize>(), any::<usize>(), 0u8..3), 1..8),
    ) {
        let ms = if whole_day { ms - ms.rem_euclid(86_400_000) } else { ms };
        let rules = Rules::builtin();
        let times = time_spellings(ms);
        let amounts = amount_spellings(amount);
        let mut keys = Vec::new();
        for (c, m, a, t, envelope, ti, ai, case) in picks {
            let metric_spelling = match case {
                0 => metric.clone(),
                1 => metric.to_uppercase(),
                _ => format!(" {metric}\t"),
            };
            let raw = spelled(&client, &metric_spelling, &amounts[ai % amounts.len()], &times[ti % times.len()], (c, m, a, t), envelope);
            let event = normalize(&raw, &rules).map_err(|r| TestCaseError::fail(format!("{raw}: {r:?}")))?;
            prop_assert_eq!(event.timestamp.millis(), ms, "{}", raw);
            prop_assert_eq!(event.amount, if amount == 0.0 { 0.0 } else { amount });
            prop_assert_eq!(&event.metric, &metric);
            // Deterministic: the same input twice gives the same event.
            prop_assert_eq!(&normalize(&raw, &rules).unwrap(), &event);
            keys.push(dedup_key(&event, &rules));
        }
        keys.dedup();
        prop_assert_eq!(keys.len(), 1);
    }
}

// ---------------------------------------------------------------------------
// Aggregates against brute force

const HOUR: i64 = 3_600_000;
/// 2024-01-20T00:00:00Z: ranges from here cross two month boundaries.
const BASE: i64 = 1_705_708_800_000;

/// Amounts across the whole f64 range: prices in cents, any finite bit
/// pattern (subnormals to the largest), values that cancel far above the
/// others, and values beyond MAX_AMOUNT, which are rejected.
fn whole_range_amount() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-50_000i64..50_000).prop_map(|cents| cents as f64 / 100.0),
        2 => any::<u64>().prop_map(f64::from_bits).prop_filter("finite", |x| x.is_finite()),
        1 => prop::sample::select(vec![0.1, 1e16, -1e16, 1e289, -1e289, 1e308, -5e-324, 1e-300]),
    ]
}

fn event_strategy() -> impl Strategy<Value = (u8, u8, i64, f64)> {
    // (client, metric, ms, amount); some events just before the epoch,
    // where floor division must round down, not toward zero.
    (
        0u8..3,
        0u8..3,
        prop_oneof![
            4 => 0i64..45 * 24 * HOUR,
            1 => -(BASE + 2 * HOUR)..-(BASE - 2 * HOUR),
        ],
        whole_range_amount(),
    )
}

/// The time as RFC 3339 text: a number of magnitude below 1e11 would be
/// read as epoch seconds, and times near the epoch must stay there.
fn raw_event((c, m, offset, amount): (u8, u8, i64, f64)) -> Value {
    let ts = Timestamp::from_millis(BASE + offset).unwrap().to_string();
    json!({"client": format!("c{c}"), "metric": format!("m{m}"), "value": amount, "ts": ts})
}

fn month_start(ms: i64) -> i64 {
    let dt = DateTime::from_timestamp_millis(ms).unwrap();
    Utc.with_ymd_and_hms(dt.year(), dt.month(), 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis()
}

fn bucket_of(q: &Query, b: Bucket, ms: i64) -> i64 {
    if let Some(tz) = q.tz {
        return local_time::zone(tz).bucket_start(b, ms);
    }
    match b {
        Bucket::Hour => ms - ms.rem_euclid(HOUR),
        Bucket::Day => ms - ms.rem_euclid(24 * HOUR),
        Bucket::Month => month_start(ms),
    }
}

type Key = (Option<i64>, Option<String>, Option<String>);

/// Per group: count, exact sum (in units of 2^-1074), min, max.
type Brute = (u64, BigInt, f64, f64);

fn brute_force(events: &[ingest_core::StoredEvent], q: &Query) -> BTreeMap<Key, Brute> {
    let mut groups: BTreeMap<Key, Brute> = BTreeMap::new();
    for se in events {
        let e = &se.event;
        let t = e.timestamp;
        if q.client_id.as_ref().is_some_and(|c| *c != e.client_id)
            || q.metric.as_ref().is_some_and(|m| *m != e.metric)
            || q.start.is_some_and(|s| t < s)
            || q.end.is_some_and(|end| t >= end)
        {
            continue;
        }
        let key = (
            q.bucket.map(|b| bucket_of(q, b, t.millis())),
            q.by_client.then(|| e.client_id.clone()),
            q.by_metric.then(|| e.metric.clone()),
        );
        let g = groups
            .entry(key)
            .or_insert((0, BigInt::zero(), f64::INFINITY, f64::NEG_INFINITY));
        g.0 += 1;
        g.1 += exact::units(e.amount);
        g.2 = g.2.min(e.amount);
        g.3 = g.3.max(e.amount);
    }
    groups
}

fn query_strategy() -> impl Strategy<Value = Query> {
    let time = prop_oneof![
        1 => Just(None),
        3 => (-HOUR..46 * 24 * HOUR).prop_map(|o| Some(BASE + o)),
        1 => (-(BASE + 3 * HOUR)..-(BASE - 3 * HOUR)).prop_map(|o| Some(BASE + o)),
        1 => (0i64..45 * 24).prop_map(|h| Some(BASE + h * HOUR)),
    ];
    queries(time, proptest::option::of(bucket_strategy()), Just(None))
}

fn bucket_strategy() -> impl Strategy<Value = Bucket> {
    prop_oneof![Just(Bucket::Hour), Just(Bucket::Day), Just(Bucket::Month)]
}

/// Queries of any filters and groupings, their bounds from `time` (in
/// order), their time bucket from `bucket` and their zone from `tz`.
fn queries(
    time: impl Strategy<Value = Option<i64>> + Clone,
    bucket: impl Strategy<Value = Option<Bucket>>,
    tz: impl Strategy<Value = Option<Tz>>,
) -> impl Strategy<Value = Query> {
    (
        proptest::option::of(0u8..3),
        proptest::option::of(0u8..3),
        time.clone(),
        time,
        bucket,
        any::<bool>(),
        any::<bool>(),
        tz,
    )
        .prop_map(|(c, m, a, b, bucket, by_client, by_metric, tz)| {
            let (start, end) = match (a, b) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                other => other,
            };
            Query {
                client_id: c.map(|c| format!("c{c}")),
                metric: m.map(|m| format!("m{m}")),
                start: start.map(|s| Timestamp::from_millis(s).unwrap()),
                end: end.map(|e| Timestamp::from_millis(e).unwrap()),
                bucket,
                by_client,
                by_metric,
                tz,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn aggregate_equals_brute_force(
        events in proptest::collection::vec(event_strategy(), 0..150),
        queries in proptest::collection::vec(query_strategy(), 1..12),
        batch in 1usize..40,
    ) {
        for store in backends(Sqlite::Memory) {
            aggregates_match(&quick(&store), &events, &queries, batch)?;
        }
    }
}

/// Events dense over four days (a minute apart at most), their amounts
/// from a few values (ties at the extremes) or any cents.
fn dense_event() -> impl Strategy<Value = (u8, u8, i64, f64)> {
    (
        0u8..2,
        0u8..2,
        (0i64..4 * 24 * 60).prop_map(|minute| minute * 60_000 + 7),
        prop_oneof![
            2 => prop::sample::select(vec![1.0, 2.0, 5.0, -3.0]),
            1 => (-50_000i64..50_000).prop_map(|cents| cents as f64 / 100.0),
        ],
    )
}

/// Queries for one client or by client, whose edges cut the four days
/// anywhere: where the part of a cut day outside the range is the
/// shorter, it is read and taken out of the day's rollup (pieces.rs).
fn client_query() -> impl Strategy<Value = Query> {
    let at = (0i64..4 * 24 * 60 * 60).prop_map(|s| Some(BASE + s * 1_000 + 3));
    (
        queries(
            prop_oneof![4 => at, 1 => Just(None)],
            proptest::option::of(prop_oneof![Just(Bucket::Day), Just(Bucket::Month)]),
            Just(None),
        ),
        any::<bool>(),
    )
        .prop_map(|(mut q, one)| {
            if one || q.client_id.is_none() && !q.by_client {
                q.client_id = Some(q.client_id.unwrap_or_else(|| "c0".into()));
            }
            q
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn client_aggregate_across_cut_days_equals_brute_force(
        events in proptest::collection::vec(dense_event(), 0..200),
        queries in proptest::collection::vec(client_query(), 1..12),
        batch in 1usize..60,
    ) {
        for store in backends(Sqlite::Memory) {
            aggregates_match(&quick(&store), &events, &queries, batch)?;
        }
    }
}

/// A store for the properties: what they test is answers, not syncing,
/// so commits skip the disk sync (the failure and crash suites test that).
fn quick(store: &TestStore) -> Ingestor {
    store.builder().durability(Durability::Normal).open().unwrap()
}

/// Every query's answer equals a brute-force computation over the stored events.
fn aggregates_match(
    ing: &Ingestor,
    events: &[(u8, u8, i64, f64)],
    queries: &[Query],
    batch: usize,
) -> Result<(), TestCaseError> {
    let raws: Vec<Value> = events.iter().copied().map(raw_event).collect();
    for chunk in raws.chunks(batch) {
        ing.submit_batch(chunk).unwrap();
    }
    let stored = all_events(ing);
    for q in queries {
        let got = ing.aggregate(q).unwrap();
        let want = brute_force(&stored, q);
        let total: u64 = want.values().map(|g| g.0).sum();
        prop_assert_eq!(got.totals.count, total, "{:?}", q);
        match &got.groups {
            None => prop_assert!(!(q.bucket.is_some() || q.by_client || q.by_metric)),
            Some(groups) => {
                prop_assert_eq!(groups.len(), want.len(), "{:?}", q);
                for (g, (k, w)) in groups.iter().zip(&want) {
                    let gk = (
                        g.key.bucket.map(|b| b.millis()),
                        g.key.client_id.clone(),
                        g.key.metric.clone(),
                    );
                    prop_assert_eq!(&gk, k);
                    // In a zone, each group says its start as local time
                    // with the zone's offset there; in UTC, nothing more.
                    match (q.tz, gk.0) {
                        (Some(tz), Some(b)) => {
                            let local = g
                                .key
                                .bucket_local
                                .ok_or_else(|| TestCaseError::fail("no bucket_local"))?;
                            prop_assert_eq!(local.timestamp_millis(), b);
                            prop_assert_eq!(local.offset().local_minus_utc(), local_time::zone(tz).offset_secs(b));
                            let json = serde_json::to_value(g).unwrap();
                            let text = json["bucket_local"].as_str().unwrap_or_default();
                            let read = DateTime::parse_from_rfc3339(text)
                                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                            prop_assert_eq!((read, read.offset()), (local, local.offset()));
                        }
                        _ => {
                            prop_assert_eq!(g.key.bucket_local, None);
                            prop_assert!(serde_json::to_value(g).unwrap().get("bucket_local").is_none());
                        }
                    }
                    prop_assert_eq!(g.stats.count, w.0);
                    prop_assert_eq!(g.stats.sum, exact::nearest(&w.1), "{:?}", q);
                    prop_assert!(exact::is_nearest_quotient(&w.1, w.0, g.stats.avg().unwrap()));
                    prop_assert_eq!(g.stats.min, Some(w.2));
                    prop_assert_eq!(g.stats.max, Some(w.3));
                }
            }
        }
        // Exact: the same sum from rollups, scans and any mix of them, in
        // any grouping, rounded once.
        let sum: BigInt = want.values().map(|g| &g.1).sum();
        prop_assert_eq!(got.totals.sum, exact::nearest(&sum), "{:?}", q);
        if total > 0 {
            prop_assert!(exact::is_nearest_quotient(&sum, total, got.totals.avg().unwrap()));
        }
        let min = want.values().map(|g| g.2).fold(f64::INFINITY, f64::min);
        prop_assert_eq!(got.totals.min, (total > 0).then_some(min));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Aggregates in local time zones against brute force

/// Zones with daylight saving changes of an hour (Berlin, New York), at
/// midnight (Havana, Santiago), of half an hour (Lord Howe), offsets of
/// quarter and half hours (Kathmandu, Marquesas, Chatham, Kolkata), and
/// zones whose days are the UTC days for part of the year (London, UTC),
/// where whole UTC days and months come from their rollups.
const ZONES: [Tz; 11] = [
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::America__Havana,
    Tz::America__Santiago,
    Tz::Australia__Lord_Howe,
    Tz::Asia__Kathmandu,
    Tz::Pacific__Marquesas,
    Tz::Pacific__Chatham,
    Tz::Asia__Kolkata,
    Tz::Europe__London,
    Tz::UTC,
];

/// 2024-03-01T00:00:00Z: from here to mid April, New York and Havana
/// (March 10), Berlin and London (March 31), Santiago, Lord Howe and
/// Chatham (April 6 and 7) change their clocks, and months begin.
const SPRING: i64 = 1_709_251_200_000;
/// 2024-10-01T00:00:00Z: Lord Howe (October 6), Berlin and London (October
/// 27), New York and Havana (November 3).
const FALL: i64 = 1_727_740_800_000;
const DAY: i64 = 24 * HOUR;

/// A time at a random millisecond: in spring or fall 2024, around the
/// epoch (negative times), or within hours of a change of clocks.
fn zoned_time() -> impl Strategy<Value = i64> {
    let changes = vec![
        1_711_846_800_000, // Berlin, 2024-03-31T01:00Z
        1_729_990_800_000, // Berlin, 2024-10-27T01:00Z
        1_710_046_800_000, // Havana, 2024-03-10T05:00Z
        1_730_610_000_000, // Havana, 2024-11-03T05:00Z
        1_712_415_600_000, // Lord Howe, 2024-04-06T15:00Z
        1_728_142_200_000, // Lord Howe, 2024-10-05T15:30Z
        1_712_458_800_000, // Santiago, 2024-04-07T03:00Z
    ];
    prop_oneof![
        3 => SPRING..SPRING + 46 * DAY,
        2 => FALL..FALL + 38 * DAY,
        1 => -3 * DAY..3 * DAY,
        3 => (prop::sample::select(changes), -6 * HOUR..6 * HOUR).prop_map(|(c, d)| c + d),
    ]
}

fn zoned_event() -> impl Strategy<Value = (u8, u8, i64, f64)> {
    // Amounts that repeat half the time: ties at a day's min and max, which
    // the rollups count so that a borrowed day's rest keeps them known.
    let amount = prop_oneof![whole_range_amount(), prop::sample::select(vec![1.0, 2.0, 3.0])];
    (0u8..3, 0u8..3, zoned_time(), amount)
}

/// `raw_event` takes its time from BASE.
fn zoned_raw((c, m, ms, amount): (u8, u8, i64, f64)) -> (u8, u8, i64, f64) {
    (c, m, ms - BASE, amount)
}

fn zoned_query() -> impl Strategy<Value = Query> {
    let time = prop_oneof![1 => Just(None), 4 => zoned_time().prop_map(Some)];
    queries(
        time,
        bucket_strategy().prop_map(Some),
        prop::sample::select(ZONES.to_vec()).prop_map(Some),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn local_time_aggregate_equals_brute_force(
        events in proptest::collection::vec(zoned_event(), 0..150),
        queries in proptest::collection::vec(zoned_query(), 1..10),
        batch in 1usize..40,
    ) {
        let events: Vec<_> = events.into_iter().map(zoned_raw).collect();
        for store in backends(Sqlite::Memory) {
            aggregates_match(&quick(&store), &events, &queries, batch)?;
        }
    }
}

// ---------------------------------------------------------------------------
// Batches, and check against submit

fn pool_event(i: u8) -> Value {
    match i % 8 {
        // Invalid ones: a rejection must also answer alike every time.
        6 => json!({"client": "c", "value": "lots", "ts": i as i64}),
        7 => json!({"client": "c", "metric": "m"}),
        _ => {
            json!({"client": format!("c{}", i % 3), "metric": "m", "value": (i % 5) as f64, "ts": 1_700_000_000_000i64 + (i as i64 % 4) * 1000})
        }
    }
}

proptest! {
    #[test]
    fn a_batch_with_repeats_stores_each_key_once(picks in proptest::collection::vec(0u8..40, 1..120)) {
        for store in backends(Sqlite::Memory) {
            batch_stores_each_key_once(&quick(&store), &picks)?;
        }
    }

    #[test]
    fn check_answers_what_submit_then_answers(picks in proptest::collection::vec(0u8..40, 1..60)) {
        for store in backends(Sqlite::Memory) {
            check_predicts_submit(&quick(&store), &picks)?;
        }
    }
}

fn batch_stores_each_key_once(ing: &Ingestor, picks: &[u8]) -> Result<(), TestCaseError> {
    let raws: Vec<Value> = picks.iter().map(|&i| pool_event(i)).collect();
    let outcomes = ing.submit_batch(&raws).unwrap();
    let rules = Rules::builtin();
    let mut first: HashMap<Vec<u8>, i64> = HashMap::new();
    for (raw, o) in raws.iter().zip(&outcomes) {
        match normalize(raw, &rules) {
            Err(_) => prop_assert_eq!(o.status(), "rejected"),
            Ok(e) => {
                let key = dedup_key(&e, &rules);
                match first.get(&key) {
                    None => {
                        prop_assert_eq!(o.status(), "accepted");
                        first.insert(key, o.id().unwrap());
                    }
                    Some(&id) => {
                        prop_assert_eq!(o.status(), "duplicate");
                        prop_assert_eq!(o.id(), Some(id));
                    }
                }
            }
        }
    }
    prop_assert_eq!(all_events(ing).len(), first.len());
    Ok(())
}

fn check_predicts_submit(ing: &Ingestor, picks: &[u8]) -> Result<(), TestCaseError> {
    for &i in picks {
        let raw = pool_event(i);
        let stored_before = (all_events(ing).len(), ing.stats().unwrap().stored_rejected);
        let checked = ing.check(&raw).unwrap();
        // A dry run stores nothing, not even the rejection.
        prop_assert_eq!(
            (all_events(ing).len(), ing.stats().unwrap().stored_rejected),
            stored_before
        );
        let submitted = ing.submit(&raw).unwrap();
        prop_assert_eq!(checked.status(), submitted.status());
        match (&checked, &submitted) {
            (Outcome::Duplicate { id: a, .. }, Outcome::Duplicate { id: b, .. }) => prop_assert_eq!(a, b),
            (Outcome::Rejected { reasons: a }, Outcome::Rejected { reasons: b }) => prop_assert_eq!(a, b),
            (Outcome::Accepted { id, event: a }, Outcome::Accepted { event: b, .. }) => {
                prop_assert_eq!(*id, None);
                prop_assert_eq!(a, b);
            }
            _ => prop_assert!(false, "{:?} vs {:?}", checked, submitted),
        }
    }
    Ok(())
}
