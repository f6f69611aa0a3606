//! Pruning, as both backends do it: the horizon raised first, then the
//! events and dead letters before it read and removed in bounded chunks,
//! one short transaction each, with the archive's progress recorded in the
//! same transaction as each chunk's removal. Rollups are never touched.

use super::db::{query_all, query_opt, Arg, Db};
use super::listing::{rejected_event, stored_event, EVENT_COLUMNS, REJECTED_COLUMNS};
use crate::aggregate::HOUR_MS;
use crate::error::{Error, Result, StorageKind};
use crate::event::{RejectedEvent, StoredEvent};

/// The rows one chunk reads and removes: small enough that a transaction
/// holds its locks briefly, large enough that a million events take a
/// hundred commits.
pub(crate) const CHUNK_ROWS: usize = 10_000;

/// What the store records of pruning (the `lifecycle` row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    /// Nothing before this instant (ms) is accepted again.
    pub pruned_before: Option<i64>,
    pub pruned_events: u64,
    pub pruned_rejected: u64,
    /// The archive the last chunk went to, and its length then.
    pub archive: Option<(String, u64)>,
}

pub(crate) fn lifecycle(db: &mut dyn Db) -> Result<Lifecycle> {
    query_opt(
        db,
        "SELECT pruned_before, pruned_events, pruned_rejected, archive_path, archive_bytes FROM lifecycle WHERE id = 1",
        &[],
        |r| {
            Ok(Lifecycle {
                pruned_before: r.opt_int(0)?,
                pruned_events: r.int(1)?.max(0) as u64,
                pruned_rejected: r.int(2)?.max(0) as u64,
                archive: match (r.opt_text(3)?, r.opt_int(4)?) {
                    (Some(path), Some(bytes)) => Some((path, bytes.max(0) as u64)),
                    _ => None,
                },
            })
        },
    )?
    .ok_or_else(|| Error::storage(StorageKind::Corrupt, "the lifecycle row is missing"))
}

/// Raise the horizon to `before` (never lower it): from this commit on no
/// writer stores an event before it, so the rows removed next cannot come
/// back in the meantime.
pub(crate) fn raise_horizon(db: &mut dyn Db, before: i64) -> Result<()> {
    db.execute(
        "UPDATE lifecycle SET pruned_before = $1 WHERE id = 1 AND (pruned_before IS NULL OR pruned_before < $1)",
        &[Arg::Int(before)],
    )?;
    Ok(())
}

/// The horizon as a write transaction sees it, locked against a raise
/// until that transaction ends (see [`Db::share_lock`]).
pub(crate) fn horizon_for_write(db: &mut dyn Db) -> Result<Option<i64>> {
    let sql = format!("SELECT pruned_before FROM lifecycle WHERE id = 1{}", db.share_lock());
    Ok(query_opt(db, &sql, &[], |r| r.opt_int(0))?.flatten())
}

/// The next chunk to prune: events before `before`, oldest hours first
/// (through `events_by_hour`), then, once none are left, dead letters
/// received before it.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub events: Vec<StoredEvent>,
    pub rejected: Vec<RejectedEvent>,
}

impl Chunk {
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.rejected.is_empty()
    }
}

pub(crate) fn next_chunk(db: &mut dyn Db, before: i64) -> Result<Chunk> {
    let last_hour = before - before.rem_euclid(HOUR_MS);
    let mut events = query_all(
        db,
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE ts_hour <= $1 AND ts < $2 ORDER BY ts_hour LIMIT $3"),
        &[Arg::Int(last_hour), Arg::Int(before), Arg::Int(CHUNK_ROWS as i64)],
        stored_event,
    )?;
    if !events.is_empty() {
        // In time order within the chunk: the archive reads as a log.
        events.sort_unstable_by_key(|e| (e.event.timestamp, e.id));
        return Ok(Chunk {
            events,
            rejected: Vec::new(),
        });
    }
    let rejected = query_all(
        db,
        &format!("SELECT {REJECTED_COLUMNS} FROM rejected WHERE received_at < $1 ORDER BY id LIMIT $2"),
        &[Arg::Int(before), Arg::Int(CHUNK_ROWS as i64)],
        rejected_event,
    )?;
    Ok(Chunk {
        events: Vec::new(),
        rejected,
    })
}

/// Remove `chunk`, count it, and record the archive's new length, in the
/// transaction of `db`. The archive record must still be `was` (what the
/// prune read before it wrote the chunk), and every row must still be
/// there: otherwise another prune got in between, and this one rolls back
/// (its chunk, already in the archive file, is cut off by the next run).
pub(crate) fn remove_chunk(
    db: &mut dyn Db,
    chunk: &Chunk,
    was: &Option<(String, u64)>,
    now: &Option<(String, u64)>,
) -> Result<()> {
    if lifecycle(db)?.archive != *was {
        return Err(interrupted());
    }
    let (table, ids, column): (_, Vec<i64>, _) = if chunk.events.is_empty() {
        (
            "rejected",
            chunk.rejected.iter().map(|r| r.id).collect(),
            "pruned_rejected",
        )
    } else {
        ("events", chunk.events.iter().map(|e| e.id).collect(), "pruned_events")
    };
    if db.delete_ids(table, &ids)? != ids.len() as u64 {
        return Err(interrupted());
    }
    db.execute(
        &format!("UPDATE lifecycle SET {column} = {column} + $1 WHERE id = 1"),
        &[Arg::Int(ids.len() as i64)],
    )?;
    if let Some((path, bytes)) = now {
        db.execute(
            "UPDATE lifecycle SET archive_path = $1, archive_bytes = $2 WHERE id = 1",
            &[Arg::Text(path), Arg::Int(*bytes as i64)],
        )?;
    }
    Ok(())
}

fn interrupted() -> Error {
    Error::storage(
        StorageKind::Other,
        "another prune changed the store while this one ran; run prune again (it goes on where they left off)",
    )
}
