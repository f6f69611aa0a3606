//! Migrations of files written by earlier versions, the schema of a new
//! file, and the query plans of the aggregate pieces.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection};

use super::*;
use crate::aggregate::{Bucket, Span, Totals};
use crate::options::Query;
use crate::storage::db::Param;
use crate::storage::pieces::{pieces, zoned_statements};
use crate::storage::schema::MIGRATIONS;
use crate::storage::Engine;
use crate::timestamp::Timestamp;

fn opts() -> StoreOptions {
    StoreOptions {
        durability: Durability::Normal,
        busy_timeout: Duration::from_secs(5),
    }
}

/// A store on the file at `path`, its schema brought up to date.
fn open(path: &Path) -> Engine {
    Engine::open(Box::new(SqliteBackend::open(Some(path), opts()).unwrap())).unwrap()
}

const DAY: i64 = 86_400_000;
/// 2024-01-30T00:00:00Z: the events cross a month boundary.
const BASE: i64 = 1_706_572_800_000;

/// A file as version 1 left it: its events, and rollups that version 2
/// lays out differently (here deliberately wrong, to show they are rebuilt).
fn version_1_file(path: &Path, events: &[(&str, &str, i64, f64)]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(MIGRATIONS[0].sql).unwrap();
    for (i, (client, metric, ts, amount)) in events.iter().enumerate() {
        conn.execute(
            "INSERT INTO events (dedup_key, client_id, metric, ts, amount, attributes, received_at, rules_version)
             VALUES (?1, ?2, ?3, ?4, ?5, '{}', 0, 1)",
            params![format!("k{i}").into_bytes(), client, metric, ts, amount],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO rollups VALUES (2, 'a', 'm', 0, 99, 99.0, 1.0, 1.0), (3, '', 'm', 0, 99, 99.0, 1.0, 1.0)",
        [],
    )
    .unwrap();
    conn.execute_batch("PRAGMA user_version = 1").unwrap();
}

#[test]
fn a_version_1_file_migrates_and_its_rollups_are_rebuilt_from_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.db");
    let events = [
        ("a", "m", BASE + 5, 1.5),
        ("a", "m", BASE + 3 * DAY + 7_000_000, -2.0),
        ("b", "m", BASE + 2 * DAY, 4.0),
        ("a", "n", BASE - 1, 8.0),
        ("b", "m", -1, 16.0),
    ];
    version_1_file(&db, &events);
    let store = open(&db);
    assert_eq!(store.counts().unwrap().events, events.len() as u64);
    let queries = [
        Query::default(),
        Query {
            client_id: Some("a".into()),
            metric: Some("m".into()),
            ..Query::default()
        },
        Query {
            client_id: Some("a".into()),
            start: Timestamp::from_millis(BASE + 1),
            end: Timestamp::from_millis(BASE + 4 * DAY),
            bucket: Some(Bucket::Day),
            ..Query::default()
        },
        Query {
            by_client: true,
            bucket: Some(Bucket::Month),
            ..Query::default()
        },
    ];
    for q in queries {
        let got = store.aggregate(&q, None).unwrap();
        let mut want = Totals::default();
        for (client, metric, ts, amount) in events {
            let inside = q.client_id.as_deref().is_none_or(|c| c == client)
                && q.metric.as_deref().is_none_or(|m| m == metric)
                && q.start.is_none_or(|s| ts >= s.millis())
                && q.end.is_none_or(|e| ts < e.millis());
            if inside {
                want.add(amount);
            }
        }
        assert_eq!(got.totals, want.stats().unwrap(), "{q:?}");
    }
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
    let client_days: i64 = conn
        .query_row("SELECT COUNT(*) FROM client_days", [], |r| r.get(0))
        .unwrap();
    assert_eq!(client_days, 5, "one row per (day, client, metric)");
}

/// The plan of every piece, as SQLite's EXPLAIN QUERY PLAN details.
fn plans(conn: &Connection, q: &Query) -> Vec<(String, Vec<String>)> {
    pieces(q)
        .into_iter()
        .map(|p| {
            let args = p.args.iter().map(|a| match a {
                Param::Int(n) => SqlValue::Integer(*n),
                Param::Text(t) => SqlValue::Text(t.clone()),
            });
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", p.sql)).unwrap();
            let details = stmt
                .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            (p.sql, details)
        })
        .collect()
}

#[test]
fn every_piece_seeks_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plans.db");
    drop(open(&db));
    let conn = Connection::open(&db).unwrap();
    let at = Timestamp::from_millis;
    let queries = [
        (Some("c"), Some("m"), None),
        (Some("c"), None, None),
        (None, Some("m"), None),
        (None, Some("m"), Some(Bucket::Day)),
        (None, None, None),
    ];
    for (client, metric, bucket) in queries {
        let q = Query {
            client_id: client.map(Into::into),
            metric: metric.map(Into::into),
            start: at(BASE + 7_777_777),
            end: at(BASE + 40 * DAY + 7_777_777),
            bucket,
            ..Query::default()
        };
        for (sql, details) in plans(&conn, &q) {
            for d in &details {
                let scans_a_table = d.starts_with("SCAN") && !d.starts_with("SCAN m");
                assert!(!scans_a_table, "{q:?}: {sql}: {details:?}");
            }
            if sql.contains("FROM events e") || sql.contains("CROSS JOIN events e") {
                assert!(
                    details.iter().any(|d| d.contains("events_by_hour")),
                    "{sql}: {details:?}"
                );
            }
        }
    }
}

/// Every table's columns and every index's columns, as the file holds them.
fn layout(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare(
            "SELECT m.type || ' ' || m.name || ' on ' || m.tbl_name || ': ' ||
                    (SELECT group_concat(c.name || ' ' || c.type || ' ' || c.\"notnull\" || ' ' || c.pk || ' ' || c.hidden, ', ')
                     FROM pragma_table_xinfo(m.name) c)
             FROM sqlite_schema m WHERE m.type = 'table'
             UNION ALL
             SELECT m.type || ' ' || m.name || ' on ' || m.tbl_name || ': ' ||
                    (SELECT group_concat(coalesce(c.name, '?') || ' ' || c.\"desc\" || ' ' || c.key, ', ')
                     FROM pragma_index_xinfo(m.name) c)
             FROM sqlite_schema m WHERE m.type = 'index'
             ORDER BY 1",
        )
        .unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<rusqlite::Result<Vec<String>>>().unwrap()
}

#[test]
fn a_new_file_has_the_schema_every_migration_leads_to() {
    let dir = tempfile::tempdir().unwrap();
    let (new, old) = (dir.path().join("new.db"), dir.path().join("old.db"));
    drop(open(&new));
    version_1_file(&old, &[("a", "m", BASE, 1.0)]);
    drop(open(&old));
    let (new, old) = (Connection::open(&new).unwrap(), Connection::open(&old).unwrap());
    assert_eq!(layout(&new), layout(&old));
    assert!(layout(&new).len() >= 8, "{:?}", layout(&new));
    let version = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        (version(&new), version(&old)),
        (MIGRATIONS.len() as i64, MIGRATIONS.len() as i64)
    );
}

/// A query grouped by day in a zone runs the same few statements whatever
/// its metric and range, and SQLite compiles each once: a bare parameter
/// compared for equality beside a table of VALUES made it compile the
/// statement again at every new value, which cost more than the run. The
/// hours of one metric are read from rollup_hours_by_metric, not from
/// every metric's rows of those hours.
#[test]
fn zoned_statements_are_compiled_once_and_read_one_metrics_hours() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zoned.db");
    drop(open(&db));
    let conn = Connection::open(&db).unwrap();
    // Month rollups say where events are: the planner reads only those.
    for metric in ["m", "n"] {
        let mut month = Bucket::Month.floor(BASE);
        for _ in 0..6 {
            conn.execute(
                "INSERT INTO rollups (level, bucket, metric, n, total, lo, hi) VALUES (3, $1, $2, 1, X'0000', 0, 0)",
                params![month, metric],
            )
            .unwrap();
            month = Bucket::Month.ceil(month + 1);
        }
    }
    let at = Timestamp::from_millis;
    let query = |metric: &str, start: i64| Query {
        metric: Some(metric.into()),
        start: at(start),
        end: at(start + 30 * DAY),
        bucket: Some(Bucket::Day),
        tz: Some(chrono_tz::Tz::Europe__Berlin),
        ..Query::default()
    };
    let kept = |start: i64| {
        [Span {
            start: Some(start),
            end: Some(start + 23 * 3_600_000),
        }]
    };
    let run = |q: &Query, kept: &[Span]| {
        let statements = zoned_statements(&mut Conn(&conn), q, kept).unwrap();
        for (sql, args) in &statements {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let args = args.iter().map(|a| match a {
                Param::Int(n) => SqlValue::Integer(*n),
                Param::Text(t) => SqlValue::Text(t.clone()),
            });
            let mut rows = stmt.query(params_from_iter(args)).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        statements
    };
    let first = run(&query("m", BASE + 10 * DAY + 12_345), &kept(BASE + 11 * DAY));
    let second = run(&query("n", BASE + 50 * DAY + 777), &kept(BASE + 51 * DAY));
    let texts = |s: &[(String, Vec<Param>)]| s.iter().map(|(sql, _)| sql.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&first), texts(&second), "the same statements");
    for (sql, args) in &second {
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "compiled again for new values: {sql}"
        );
        if sql.contains("r.level = 1") {
            let args = args.iter().map(|a| match a {
                Param::Int(n) => SqlValue::Integer(*n),
                Param::Text(t) => SqlValue::Text(t.clone()),
            });
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_from_iter(args), |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().any(|d| d.contains("COVERING INDEX rollup_hours_by_metric")),
                "{sql}: {plan:?}"
            );
        }
    }
    assert!(second.iter().any(|(sql, _)| sql.contains("r.level = 1")), "{second:?}");
}

#[test]
fn dead_letters_stored_before_migration_13_list_for_unscoped_callers_only() {
    use crate::storage::migrate::legacy_tests::{check, digest, LEGACY_LETTERS};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v12.db");
    let conn = Connection::open(&db).unwrap();
    for m in &MIGRATIONS[..12] {
        conn.execute_batch(m.sql).unwrap();
    }
    for raw in LEGACY_LETTERS {
        conn.execute(
            "INSERT INTO rejected (digest, raw, reasons, rules_version, received_at, attempts, raw_bytes, raw_exact)
             VALUES (?1, ?2, '[]', 1, 0, 1, ?3, 1)",
            params![digest(raw), raw, raw.len() as i64],
        )
        .unwrap();
    }
    conn.execute_batch("PRAGMA user_version = 12").unwrap();
    drop(conn);
    check(&crate::Ingestor::open(&db).unwrap());
}

/// One client's dead letters are read newest first from their index, with
/// no sort, and its days from theirs: a client's view costs its own rows.
#[test]
fn a_clients_dead_letters_and_days_are_read_through_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    drop(open(&db));
    let conn = Connection::open(&db).unwrap();
    let plan = |sql: &str| -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params!["acme", 10, 0], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let listing = plan(&format!(
        "SELECT {} FROM rejected WHERE client_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        crate::storage::listing::REJECTED_COLUMNS
    ));
    assert!(
        listing.iter().any(|d| d.contains("INDEX rejected_by_client")),
        "{listing:?}"
    );
    assert!(!listing.iter().any(|d| d.contains("TEMP B-TREE")), "{listing:?}");
    let days = plan("SELECT SUM(n) FROM client_days WHERE client_id = $1 AND bucket >= $2 AND $3 = 0");
    assert!(
        days.iter().any(|d| d.contains("INDEX client_days_by_client")),
        "{days:?}"
    );
}
