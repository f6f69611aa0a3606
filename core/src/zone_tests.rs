use chrono_tz::Tz;

use super::*;
use crate::aggregate::DAY_MS;

const H: i64 = HOUR_MS;
const M: i64 = 60_000;

fn ms(text: &str) -> i64 {
    crate::timestamp::Timestamp::parse(text).unwrap().millis()
}

fn zone(name: &str) -> Tz {
    parse(name).unwrap()
}

/// The starts over `[from, to)` as RFC 3339 local times with offsets.
fn local_starts(tz: &str, bucket: Bucket, from: &str, to: &str) -> Vec<String> {
    let tz = zone(tz);
    LocalBuckets::new(tz, bucket, &[(ms(from), ms(to))])
        .unwrap()
        .starts()
        .iter()
        .map(|&s| local_start(tz, s).unwrap().format("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .collect()
}

/// The lengths of the buckets between the starts over `[from, to)`.
fn lengths(tz: &str, bucket: Bucket, from: &str, to: &str) -> Vec<i64> {
    let b = LocalBuckets::new(zone(tz), bucket, &[(ms(from), ms(to))]).unwrap();
    b.starts().windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn berlin_days_around_daylight_saving_have_23_and_25_hours() {
    let spring = "Europe/Berlin";
    assert_eq!(
        local_starts(spring, Bucket::Day, "2024-03-30T12:00:00Z", "2024-04-01T23:00:00Z"),
        [
            "2024-03-30T00:00:00+01:00",
            "2024-03-31T00:00:00+01:00",
            "2024-04-01T00:00:00+02:00",
            "2024-04-02T00:00:00+02:00"
        ]
    );
    assert_eq!(
        lengths(spring, Bucket::Day, "2024-03-30T12:00:00Z", "2024-04-01T23:00:00Z"),
        [24 * H, 23 * H, 24 * H]
    );
    assert_eq!(
        lengths(spring, Bucket::Day, "2024-10-26T12:00:00Z", "2024-10-28T23:30:00Z"),
        [24 * H, 25 * H, 24 * H]
    );
    // The repeated hour of the fall is one bucket of two hours, from the
    // first 02:00; the skipped one of the spring holds nothing.
    assert_eq!(
        local_starts(spring, Bucket::Hour, "2024-10-27T00:00:00Z", "2024-10-27T03:00:00.001Z"),
        [
            "2024-10-27T02:00:00+02:00",
            "2024-10-27T03:00:00+01:00",
            "2024-10-27T04:00:00+01:00"
        ]
    );
    assert_eq!(
        local_starts(spring, Bucket::Hour, "2024-03-31T00:00:00Z", "2024-03-31T02:00:00Z"),
        ["2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00"]
    );
}

#[test]
fn offsets_of_quarter_and_half_hours_start_buckets_off_the_utc_hour() {
    let kathmandu = LocalBuckets::new(
        zone("Asia/Kathmandu"),
        Bucket::Day,
        &[(ms("2024-01-15T00:00:00Z"), ms("2024-01-16T00:00:00Z"))],
    )
    .unwrap();
    assert_eq!(
        kathmandu.starts(),
        [ms("2024-01-14T18:15:00Z"), ms("2024-01-15T18:15:00Z")]
    );
    assert_eq!(
        local_starts(
            "Asia/Kathmandu",
            Bucket::Hour,
            "2024-01-15T00:00:00Z",
            "2024-01-15T01:00:00Z"
        ),
        ["2024-01-15T05:00:00+05:45", "2024-01-15T06:00:00+05:45"]
    );
    assert_eq!(
        kathmandu.start_of(ms("2024-01-15T18:14:59.999Z")),
        ms("2024-01-14T18:15:00Z")
    );
    assert_eq!(
        kathmandu.start_of(ms("2024-01-15T18:15:00Z")),
        ms("2024-01-15T18:15:00Z")
    );
    assert_eq!(
        local_starts(
            "Pacific/Marquesas",
            Bucket::Day,
            "2024-01-15T00:00:00Z",
            "2024-01-16T00:00:00Z"
        ),
        ["2024-01-14T00:00:00-09:30", "2024-01-15T00:00:00-09:30"]
    );
    assert_eq!(
        LocalBuckets::new(zone("Pacific/Marquesas"), Bucket::Hour, &[(0, 2 * H)])
            .unwrap()
            .starts(),
        [-30 * M, 30 * M, 90 * M]
    );
}

#[test]
fn lord_howe_moves_its_clocks_by_half_an_hour() {
    let lh = "Australia/Lord_Howe";
    // Daylight saving ends on 2024-04-07 (02:00 +11:00 back to 01:30
    // +10:30) and starts on 2024-10-06 (02:00 +10:30 on to 02:30 +11:00).
    assert_eq!(
        local_starts(lh, Bucket::Day, "2024-04-06T14:00:00Z", "2024-04-08T14:00:00Z"),
        [
            "2024-04-07T00:00:00+11:00",
            "2024-04-08T00:00:00+10:30",
            "2024-04-09T00:00:00+10:30"
        ]
    );
    assert_eq!(
        lengths(lh, Bucket::Day, "2024-04-06T14:00:00Z", "2024-04-08T14:00:00Z"),
        [24 * H + 30 * M, 24 * H]
    );
    assert_eq!(
        lengths(lh, Bucket::Day, "2024-10-05T14:00:00Z", "2024-10-07T14:00:00Z"),
        [23 * H + 30 * M, 24 * H]
    );
    // The local hour 02:00 of the spring lasts half an hour, from the jump.
    assert_eq!(
        local_starts(lh, Bucket::Hour, "2024-10-05T14:30:00Z", "2024-10-05T16:30:00Z"),
        [
            "2024-10-06T01:00:00+10:30",
            "2024-10-06T02:30:00+11:00",
            "2024-10-06T03:00:00+11:00"
        ]
    );
}

#[test]
fn midnights_that_do_not_exist_or_come_twice() {
    // Havana springs forward at midnight: 2024-03-10 starts at 01:00.
    assert_eq!(
        local_starts(
            "America/Havana",
            Bucket::Day,
            "2024-03-10T12:00:00Z",
            "2024-03-11T12:00:00Z"
        ),
        ["2024-03-10T01:00:00-04:00", "2024-03-11T00:00:00-04:00"]
    );
    assert_eq!(
        lengths(
            "America/Havana",
            Bucket::Day,
            "2024-03-09T12:00:00Z",
            "2024-03-11T12:00:00Z"
        ),
        [24 * H, 23 * H]
    );
    // Santiago falls back from 2024-04-07 00:00 -03:00 to 2024-04-06
    // 23:00 -04:00: April 6 has 25 hours, its last hour shown twice, and
    // springs forward from 2024-09-08 00:00 -04:00 to 01:00 -03:00.
    let santiago = LocalBuckets::new(
        zone("America/Santiago"),
        Bucket::Day,
        &[(ms("2024-04-06T12:00:00Z"), ms("2024-04-08T12:00:00Z"))],
    )
    .unwrap();
    assert_eq!(
        santiago.starts(),
        [
            ms("2024-04-06T03:00:00Z"),
            ms("2024-04-07T04:00:00Z"),
            ms("2024-04-08T04:00:00Z")
        ]
    );
    assert_eq!(
        santiago.start_of(ms("2024-04-07T03:30:00Z")),
        ms("2024-04-06T03:00:00Z")
    );
    assert_eq!(
        local_starts(
            "America/Santiago",
            Bucket::Day,
            "2024-09-08T12:00:00Z",
            "2024-09-09T12:00:00Z"
        ),
        ["2024-09-08T01:00:00-03:00", "2024-09-09T00:00:00-03:00"]
    );
    // Samoa skipped 2011-12-30: that day has no bucket.
    assert_eq!(
        local_starts(
            "Pacific/Apia",
            Bucket::Day,
            "2011-12-29T12:00:00Z",
            "2011-12-31T12:00:00Z"
        ),
        [
            "2011-12-29T00:00:00-10:00",
            "2011-12-31T00:00:00+14:00",
            "2012-01-01T00:00:00+14:00"
        ]
    );
}

#[test]
fn months_start_at_local_midnight_on_the_first() {
    assert_eq!(
        local_starts(
            "Europe/Berlin",
            Bucket::Month,
            "2024-02-15T00:00:00Z",
            "2024-04-15T00:00:00Z"
        ),
        [
            "2024-02-01T00:00:00+01:00",
            "2024-03-01T00:00:00+01:00",
            "2024-04-01T00:00:00+02:00"
        ]
    );
    assert_eq!(
        lengths(
            "Europe/Berlin",
            Bucket::Month,
            "2024-02-15T00:00:00Z",
            "2024-04-15T00:00:00Z"
        ),
        [29 * DAY_MS, 31 * DAY_MS - H]
    );
    // The last hours of December UTC are January in Kathmandu.
    let k = LocalBuckets::new(
        zone("Asia/Kathmandu"),
        Bucket::Month,
        &[(ms("2023-12-31T20:00:00Z"), ms("2024-01-02T00:00:00Z"))],
    )
    .unwrap();
    assert_eq!(k.starts(), [ms("2023-12-31T18:15:00Z")]);
}

#[test]
fn utc_buckets_are_the_plain_ones() {
    for bucket in Bucket::LEVELS {
        let (s, e) = (-40 * DAY_MS - 7, 70 * DAY_MS + 11);
        let b = LocalBuckets::new(Tz::UTC, bucket, &[(s, e)]).unwrap();
        let mut want = vec![bucket.floor(s)];
        while bucket.ceil(want[want.len() - 1] + 1) < e {
            want.push(bucket.ceil(want[want.len() - 1] + 1));
        }
        assert_eq!(b.starts(), want, "{bucket}");
    }
}

#[test]
fn unknown_or_empty_zones_are_invalid_arguments() {
    for bad in ["", "  ", "Europe/Atlantis", "europe/berlin", "+05:45"] {
        let e = parse(bad).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad:?}");
        assert!(e.to_string().contains("Europe/Berlin"), "{e}");
    }
    assert!(parse("Europe/Atlantis")
        .unwrap_err()
        .to_string()
        .contains("\"Europe/Atlantis\""));
    assert_eq!(parse(" Asia/Kathmandu\n").unwrap(), Tz::Asia__Kathmandu);
}

#[test]
fn whole_hour_zones_plan_days_from_hour_rollups_alone() {
    use Source::{Events, Rollup};
    let (s, e) = (ms("2024-03-30T23:00:00Z"), ms("2024-04-02T22:00:00Z"));
    let b = LocalBuckets::new(zone("Europe/Berlin"), Bucket::Day, &[(s, e)]).unwrap();
    let levels = [Bucket::Hour, Bucket::Day];
    assert_eq!(
        b.plan(&[(s, e)], &levels),
        vec![(
            Rollup(Bucket::Hour),
            vec![Span {
                start: Some(s),
                end: Some(e)
            }]
        )]
    );
    // +05:45: the hour each midnight cuts comes from the events, in one
    // span per cut hour; the hours between from the rollups.
    let (s, e) = (ms("2024-01-14T18:15:00Z"), ms("2024-01-16T18:15:00Z"));
    let k = LocalBuckets::new(zone("Asia/Kathmandu"), Bucket::Day, &[(s, e)]).unwrap();
    let span = |a: &str, b: &str| Span {
        start: Some(ms(a)),
        end: Some(ms(b)),
    };
    assert_eq!(
        k.plan(&[(s, e)], &levels),
        vec![
            (
                Events,
                vec![
                    span("2024-01-14T18:15:00Z", "2024-01-14T19:00:00Z"),
                    span("2024-01-15T18:00:00Z", "2024-01-15T19:00:00Z"),
                    span("2024-01-16T18:00:00Z", "2024-01-16T18:15:00Z"),
                ]
            ),
            (
                Rollup(Bucket::Hour),
                vec![
                    span("2024-01-14T19:00:00Z", "2024-01-15T18:00:00Z"),
                    span("2024-01-15T19:00:00Z", "2024-01-16T18:00:00Z"),
                ]
            ),
        ]
    );
    // Months in Berlin: whole UTC days from the day rollups.
    let (s, e) = (ms("2024-01-31T23:00:00Z"), ms("2024-02-29T23:00:00Z"));
    let m = LocalBuckets::new(zone("Europe/Berlin"), Bucket::Month, &[(s, e)]).unwrap();
    assert_eq!(
        m.plan(&[(s, e)], &Bucket::LEVELS),
        vec![
            (
                Rollup(Bucket::Hour),
                vec![
                    span("2024-01-31T23:00:00Z", "2024-02-01T00:00:00Z"),
                    span("2024-02-29T00:00:00Z", "2024-02-29T23:00:00Z")
                ]
            ),
            (
                Rollup(Bucket::Day),
                vec![span("2024-02-01T00:00:00Z", "2024-02-29T00:00:00Z")]
            ),
        ]
    );
}

#[test]
fn windows_apart_get_their_own_buckets() {
    let (jan, feb) = (ms("2024-01-01T00:00:00Z"), ms("2024-02-01T00:00:00Z"));
    let (mar, apr) = (ms("2024-03-01T00:00:00Z"), ms("2024-04-01T00:00:00Z"));
    let b = LocalBuckets::new(zone("Europe/Berlin"), Bucket::Month, &[(jan, feb), (mar, apr)]).unwrap();
    assert_eq!(
        b.starts(),
        [
            ms("2023-12-31T23:00:00Z"),
            ms("2024-01-31T23:00:00Z"),
            ms("2024-02-29T23:00:00Z"),
            ms("2024-03-31T22:00:00Z")
        ]
    );
    // Each window peeled alone: the UTC days and hours of each, never
    // the month between them.
    let span = |a: i64, b: i64| Span {
        start: Some(a),
        end: Some(b),
    };
    let mar31 = ms("2024-03-31T00:00:00Z");
    assert_eq!(
        b.plan(&[(jan, feb), (mar, apr)], &Bucket::LEVELS),
        vec![
            (
                Source::Rollup(Bucket::Hour),
                vec![span(feb - DAY_MS, feb), span(mar31, apr)]
            ),
            (
                Source::Rollup(Bucket::Day),
                vec![span(jan, feb - DAY_MS), span(mar, mar31)]
            ),
        ]
    );
}

#[test]
fn days_cut_once_by_a_local_start_are_borrowed_whole() {
    // Berlin's days from 2024-03-30: each UTC day is 23 (or 22) hours of
    // one local day and one or two hours of the next.
    let (s, e) = (ms("2024-03-29T23:00:00Z"), ms("2024-04-02T22:00:00Z"));
    let b = LocalBuckets::new(zone("Europe/Berlin"), Bucket::Day, &[(s, e)]).unwrap();
    let mut hours = vec![Span {
        start: Some(s),
        end: Some(e),
    }];
    let borrows = b.borrow_days(&mut hours);
    let span = |a: &str, b: &str| Span {
        start: Some(ms(a)),
        end: Some(ms(b)),
    };
    assert_eq!(
        borrows,
        [
            Borrow {
                day: ms("2024-03-30T00:00:00Z"),
                kept: span("2024-03-30T00:00:00Z", "2024-03-30T23:00:00Z"),
                excess: span("2024-03-30T23:00:00Z", "2024-03-31T00:00:00Z"),
            },
            Borrow {
                day: ms("2024-03-31T00:00:00Z"),
                kept: span("2024-03-31T00:00:00Z", "2024-03-31T22:00:00Z"),
                excess: span("2024-03-31T22:00:00Z", "2024-04-01T00:00:00Z"),
            },
            Borrow {
                day: ms("2024-04-01T00:00:00Z"),
                kept: span("2024-04-01T00:00:00Z", "2024-04-01T22:00:00Z"),
                excess: span("2024-04-01T22:00:00Z", "2024-04-02T00:00:00Z"),
            },
        ]
    );
    // The hours left: those of the excesses, and the last day's, which
    // the range cuts before its end.
    assert_eq!(
        hours,
        [
            span("2024-03-29T23:00:00Z", "2024-03-30T00:00:00Z"),
            span("2024-03-30T23:00:00Z", "2024-03-31T00:00:00Z"),
            span("2024-03-31T22:00:00Z", "2024-04-01T00:00:00Z"),
            span("2024-04-01T22:00:00Z", "2024-04-02T22:00:00Z"),
        ]
    );
    // Hours grouped by hour: every day is cut 24 times, none is borrowed.
    let h = LocalBuckets::new(zone("Europe/Berlin"), Bucket::Hour, &[(s, e)]).unwrap();
    let mut hours = vec![Span {
        start: Some(s),
        end: Some(e),
    }];
    assert_eq!(h.borrow_days(&mut hours), []);
    assert_eq!(
        hours,
        [Span {
            start: Some(s),
            end: Some(e)
        }]
    );
}
