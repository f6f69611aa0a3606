//! The `api_keys` table, as both backends keep it: a row per key with the
//! digest of its secret, never the secret itself (keys.rs has the rules).

use super::db::{query_all, query_opt, Arg, Db, Row};
use super::listing::stored_time;
use crate::error::Result;
use crate::keys::{KeyInfo, KeyScope};

const COLUMNS: &str = "id, client_id, name, created_at, revoked_at";

fn key_info(r: &dyn Row) -> Result<KeyInfo> {
    let scope = match r.opt_text(1)? {
        Some(client_id) => KeyScope::Client { client_id },
        None => KeyScope::Admin { name: r.text(2)? },
    };
    Ok(KeyInfo {
        id: r.text(0)?,
        scope,
        created_at: stored_time(r.int(3)?)?,
        revoked_at: r.opt_int(4)?.map(stored_time).transpose()?,
    })
}

pub(crate) fn insert(db: &mut dyn Db, id: &str, scope: &KeyScope, digest: &[u8], now: i64) -> Result<()> {
    let (client, name) = match scope {
        KeyScope::Client { client_id } => (Some(client_id.as_str()), client_id.as_str()),
        KeyScope::Admin { name } => (None, name.as_str()),
    };
    db.execute(
        "INSERT INTO api_keys (id, client_id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            Arg::Text(id),
            Arg::OptText(client),
            Arg::Text(name),
            Arg::Blob(digest),
            Arg::Int(now),
        ],
    )?;
    Ok(())
}

/// Every key, oldest first.
pub(crate) fn list(db: &mut dyn Db) -> Result<Vec<KeyInfo>> {
    query_all(
        db,
        &format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"),
        &[],
        key_info,
    )
}

/// Revoke key `id` (from now on no token of it is valid): whether a valid
/// key was revoked.
pub(crate) fn revoke(db: &mut dyn Db, id: &str, now: i64) -> Result<bool> {
    Ok(db.execute(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        &[Arg::Int(now), Arg::Text(id)],
    )? == 1)
}

/// Key `id` while it is valid, with its secret's digest.
pub(crate) fn valid(db: &mut dyn Db, id: &str) -> Result<Option<(KeyInfo, Vec<u8>)>> {
    query_opt(
        db,
        &format!("SELECT {COLUMNS}, secret_sha256 FROM api_keys WHERE id = $1 AND revoked_at IS NULL"),
        &[Arg::Text(id)],
        |r| Ok((key_info(r)?, r.blob(5)?)),
    )
}
