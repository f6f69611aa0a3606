//! What a store does once, when opened: bring the schema up to date, and
//! record the rules (re-keying the stored events when the dedup key
//! changed). Written once for both backends over [`Db`]; each backend
//! gives its [`Schema`] in its own SQL types.

use std::collections::HashMap;

use super::db::{query_opt, Arg, Db};
use super::listing::canonical_after;
use super::rollup::{rollup_deltas, RollupTable};
use crate::error::{Error, Result, StorageKind};
use crate::event::Event;
use crate::rules::Rules;
use crate::timestamp::Timestamp;

/// One step of a schema that has shipped. Never edit one: append a new one,
/// and change the current schema to match.
pub(crate) struct Migration {
    pub sql: &'static str,
    /// Recompute every rollup from the events after `sql` (the rollups'
    /// layout changed).
    pub rebuild_rollups: bool,
}

/// A backend's schema: what a new database is created with, and the steps
/// that bring a database of an earlier version to it.
pub(crate) struct Schema {
    /// The whole schema as it is after every migration.
    pub current: &'static str,
    pub migrations: &'static [Migration],
}

/// Migration 13, the same text on both backends: a dead letter's client
/// (NULL: none known), and the indexes that serve one client's view of the
/// store. Rows stored before stay NULL: which of them a scoped caller sent
/// is not recorded anywhere, and a guess could show one client another's
/// input, so they list for unscoped (admin) callers only.
/// `client_days_by_client` lets a client's stored events be summed from its
/// own days; a commit adds to it only for a new (day, client, metric) row,
/// and its columns never change once a row exists (so PostgreSQL's upserts
/// that add to a day stay HOT updates).
pub(crate) const MIGRATION_13: &str = r#"
    ALTER TABLE rejected ADD COLUMN client_id TEXT;
    CREATE INDEX rejected_by_client ON rejected (client_id, id);
    CREATE INDEX client_days_by_client ON client_days (client_id, bucket);
    "#;

/// Rows read and written per statement while re-keying or rebuilding.
const CHUNK: usize = 5_000;

/// Bring the schema of `db` up to date, inside the caller's write
/// transaction: a new database gets the current schema at once, an older
/// one its pending migrations in order.
pub(crate) fn migrate(db: &mut dyn Db, schema: &Schema) -> Result<()> {
    db.lock_schema()?;
    let version = db.schema_version()?;
    let known = schema.migrations.len() as i64;
    if version > known {
        return Err(Error::storage(
            StorageKind::Other,
            format!("the database has schema version {version}; this library knows up to {known}"),
        ));
    }
    if version == known {
        return Ok(());
    }
    if version == 0 {
        db.batch(schema.current)?;
    } else {
        let pending = &schema.migrations[version as usize..];
        for m in pending {
            db.batch(m.sql)?;
        }
        // Once, into the last layout (an earlier one may be gone).
        if pending.iter().any(|m| m.rebuild_rollups) {
            rebuild_rollups(db)?;
        }
    }
    db.set_schema_version(known)
}

/// Recompute `rollups` and `client_days` from the events, with the same
/// sums as the writes that keep them.
fn rebuild_rollups(db: &mut dyn Db) -> Result<()> {
    db.execute("DELETE FROM rollups", &[])?;
    db.execute("DELETE FROM client_days", &[])?;
    for_each_chunk(db, &mut |db, rows| {
        let deltas = rollup_deltas(rows.iter().map(|(_, e)| e));
        db.upsert_rollups(RollupTable::Rollups, &deltas.across)?;
        db.upsert_rollups(RollupTable::ClientDays, &deltas.client_days)
    })
}

/// What a store records of `rules`: the whole document (the same document
/// always gets the same version number) and the dedup key's spec.
fn rules_record(rules: &Rules) -> (String, String) {
    let document = rules.to_value();
    let key_spec = serde_json::to_string(&document["dedup_key"]).unwrap_or_default();
    (document.to_string(), key_spec)
}

/// Record `rules` and return their version number, inside the caller's
/// write transaction. When the dedup key changed since the last open, the
/// stored events are re-keyed with `rekey`.
pub(crate) fn register_rules(db: &mut dyn Db, rules: &Rules, rekey: &dyn Fn(&Event) -> Vec<u8>) -> Result<i64> {
    let (document, key_spec) = rules_record(rules);
    // Under the lock, so that no version number is skipped by two
    // processes registering the same document at once.
    db.lock_schema()?;
    db.execute(
        "INSERT INTO rules (document, created_at)
         SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM rules WHERE document = $1)",
        &[Arg::Text(&document), Arg::Int(Timestamp::now().millis())],
    )?;
    let version = query_opt(
        db,
        "SELECT version FROM rules WHERE document = $1",
        &[Arg::Text(&document)],
        |r| r.int(0),
    )?
    .ok_or_else(|| Error::storage(StorageKind::Other, "the rules just recorded are not there"))?;
    let stored = query_opt(db, "SELECT value FROM meta WHERE key = 'dedup_key'", &[], |r| r.text(0))?;
    if stored.as_deref() != Some(key_spec.as_str()) {
        if stored.is_some() {
            rekey_events(db, rekey, &key_spec)?;
        }
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('dedup_key', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[Arg::Text(&key_spec)],
        )?;
    }
    Ok(version)
}

/// A key no real key equals (real keys start with a tag letter, dedup.rs),
/// unique per event.
fn parked_key(id: i64) -> Vec<u8> {
    let mut key = vec![0];
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Give every stored event its key under `spec`. Two passes: park every key
/// first, so that a new key never meets a not-yet-updated old one; then
/// write the new keys chunk by chunk. A new key already taken belongs to an
/// event re-keyed before: a collision, found before the write so that the
/// error can name both events (the caller's transaction then rolls back).
fn rekey_events(db: &mut dyn Db, rekey: &dyn Fn(&Event) -> Vec<u8>, spec: &str) -> Result<()> {
    for_each_chunk(db, &mut |db, rows| {
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        let keys: Vec<Vec<u8>> = ids.iter().map(|&id| parked_key(id)).collect();
        db.set_keys(&ids, &keys)
    })?;
    for_each_chunk(db, &mut |db, rows| {
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        let keys: Vec<Vec<u8>> = rows.iter().map(|(_, e)| rekey(e)).collect();
        let mut seen: HashMap<&[u8], i64> = HashMap::with_capacity(keys.len());
        for (key, &id) in keys.iter().zip(&ids) {
            if let Some(other) = seen.insert(key, id) {
                return Err(key_collision(spec, other, id));
            }
        }
        let lookups: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        for (found, &id) in db.find_keys(&lookups)?.into_iter().zip(&ids) {
            if let Some(other) = found {
                return Err(key_collision(spec, other, id));
            }
        }
        db.set_keys(&ids, &keys)
    })
}

/// What [`for_each_chunk`] calls: the connection, and (id, event) rows.
type EachChunk<'a> = dyn FnMut(&mut dyn Db, &[(i64, Event)]) -> Result<()> + 'a;

/// Call `f` on every stored event, [`CHUNK`] at a time, in id order.
fn for_each_chunk(db: &mut dyn Db, f: &mut EachChunk<'_>) -> Result<()> {
    let mut after = 0;
    loop {
        let rows = canonical_after(db, after, CHUNK)?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(());
        };
        after = last;
        f(db, &rows)?;
    }
}

/// Re-keying under `spec` would make stored events `a` and `b` one event.
fn key_collision(spec: &str, a: i64, b: i64) -> Error {
    Error::rules(format!(
        "dedup_key {spec} would make stored events {a} and {b} the same event; \
         keep the old key or remove one of them first"
    ))
}

/// What both backends' migration tests check of dead letters stored before
/// migration 13 (each writes them as version 12 did: [`LEGACY_LETTERS`],
/// digests of the raw text, no client).
#[cfg(test)]
pub(crate) mod legacy_tests {
    use sha2::{Digest, Sha256};

    use crate::{Ingestor, Outcome, Page};

    /// Compact JSON with its keys in order, as the engine writes a copy.
    pub(crate) const LEGACY_LETTERS: [&str; 2] = [
        r#"{"amount":"x","timestamp":1}"#,
        r#"{"amount":"x","client_id":"acme","timestamp":2}"#,
    ];

    pub(crate) fn digest(raw: &str) -> Vec<u8> {
        Sha256::digest(raw.as_bytes()).to_vec()
    }

    /// `ing`, a store migrated from version 12 with [`LEGACY_LETTERS`]:
    /// they list for unscoped callers only, and keep counting retries.
    pub(crate) fn check(ing: &Ingestor) {
        let page = Page { limit: 10, offset: 0 };
        let all = ing.rejected(page).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|r| r.client_id.is_none()), "{all:?}");
        let acme = ing.scoped("acme").unwrap();
        assert!(acme.rejected(page).unwrap().is_empty(), "not guessed from raw");
        // The retry of an input naming nobody counts on its old row.
        let again = ing.submit_json(LEGACY_LETTERS[0]).unwrap();
        assert!(matches!(again, Outcome::Rejected { .. }));
        let all = ing.rejected(page).unwrap();
        assert_eq!((all.len(), all[1].attempts), (2, 2), "{all:?}");
        // The same input from acme is acme's own dead letter.
        assert!(matches!(
            acme.submit_json(LEGACY_LETTERS[0]).unwrap(),
            Outcome::Rejected { .. }
        ));
        let mine = acme.rejected(page).unwrap();
        assert_eq!((mine.len(), mine[0].attempts), (1, 1), "{mine:?}");
        assert_eq!(acme.stats().unwrap().stored_rejected, 1);
    }
}
