//! A new database has the schema every migration leads to.

use std::time::Duration;

use super::schema::MIGRATIONS;
use super::*;
use crate::storage::Engine;

fn server_url() -> String {
    std::env::var("INGEST_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A client of the test server. Unreachable is a failure under CI
/// (`CI=true`), and elsewhere `None` with a notice.
fn client() -> Option<postgres::Client> {
    match postgres::Client::connect(&server_url(), postgres::NoTls) {
        Ok(c) => Some(c),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {} is unreachable under CI: {e}", server_url())
        }
        Err(e) => {
            eprintln!(
                "NOTE: PostgreSQL at {} is unreachable ({e}); schema test not run",
                server_url()
            );
            None
        }
    }
}

fn open(schema: &str) -> Engine {
    let url = server_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let opts = StoreOptions {
        durability: Durability::Normal,
        busy_timeout: Duration::from_secs(5),
    };
    let backend = PostgresBackend::open(&format!("{url}{sep}schema={schema}"), opts).unwrap();
    Engine::open(Box::new(backend)).unwrap()
}

/// Every column and index of `schema`, without the schema's name.
fn layout(c: &mut postgres::Client, schema: &str) -> Vec<String> {
    let columns = c
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' ||
                    is_generated || ' ' || coalesce(generation_expression, '') || ' ' || ordinal_position
             FROM information_schema.columns WHERE table_schema = $1",
            &[&schema],
        )
        .unwrap();
    let indexes = c
        .query("SELECT indexdef FROM pg_indexes WHERE schemaname = $1", &[&schema])
        .unwrap();
    let mut out: Vec<String> = columns
        .iter()
        .chain(&indexes)
        .map(|r| r.get::<_, String>(0).replace(&format!("{schema}."), ""))
        .collect();
    out.sort();
    out
}

#[test]
fn a_new_database_has_the_schema_every_migration_leads_to() {
    let Some(mut c) = client() else { return };
    let (new, old) = (
        format!("s_new_{}", std::process::id()),
        format!("s_old_{}", std::process::id()),
    );
    for s in [&new, &old] {
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE")).unwrap();
    }
    drop(open(&new));
    // A database as version 1 left it, with an event whose rollups the
    // migrations must rebuild.
    c.batch_execute(&format!(
        "CREATE SCHEMA {old}; SET search_path = {old};
         {}
         CREATE TABLE ingest_schema (
             one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
             version BIGINT NOT NULL
         );
         INSERT INTO ingest_schema (version) VALUES (1);
         INSERT INTO events (dedup_key, client_id, metric, ts, amount, attributes, received_at, rules_version)
             VALUES ('\\x4b'::BYTEA, 'a', 'm', 7200001, 2.5, '{{}}', 0, 1);
         SET search_path = public;",
        MIGRATIONS[0].sql
    ))
    .unwrap();
    let migrated = open(&old);
    let totals = migrated.aggregate(&Default::default(), None).map(|a| a.totals);
    drop(migrated);
    let (new_layout, old_layout) = (layout(&mut c, &new), layout(&mut c, &old));
    for s in [&new, &old] {
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE")).unwrap();
    }
    assert_eq!(new_layout, old_layout);
    assert!(new_layout.len() > 30, "{new_layout:?}");
    let totals = totals.unwrap();
    assert_eq!((totals.count, totals.sum), (1, 2.5), "rollups rebuilt from the events");
}

#[test]
fn dead_letters_stored_before_migration_13_list_for_unscoped_callers_only() {
    use crate::storage::migrate::legacy_tests::{check, digest, LEGACY_LETTERS};
    let Some(mut c) = client() else { return };
    let schema = format!("s_v12_{}", std::process::id());
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"
    ))
    .unwrap();
    for m in &MIGRATIONS[..12] {
        c.batch_execute(m.sql).unwrap();
    }
    c.batch_execute(
        "CREATE TABLE ingest_schema (
             one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
             version BIGINT NOT NULL
         );
         INSERT INTO ingest_schema (version) VALUES (12);",
    )
    .unwrap();
    for raw in LEGACY_LETTERS {
        c.execute(
            "INSERT INTO rejected (digest, raw, reasons, rules_version, received_at, attempts, raw_bytes, raw_exact)
             VALUES ($1, $2, '[]', 1, 0, 1, $3, 1)",
            &[&digest(raw), &raw, &(raw.len() as i64)],
        )
        .unwrap();
    }
    c.batch_execute("SET search_path = public").unwrap();
    let url = server_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let ing = crate::Ingestor::open(format!("{url}{sep}schema={schema}"));
    let result = ing.map(|ing| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&ing))));
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    result.unwrap().unwrap();
}
