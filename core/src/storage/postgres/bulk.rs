//! The set-based statements of the write path: a group's rows travel as
//! one array per column and are unnested on the server, so a statement
//! costs one round trip whatever the group's size. (A binary COPY into a
//! temporary table and one insert-select from it was tried for batches: it
//! took longer than the unnest for the same rows, and two statements.)
//!
//! [`WITH_ROLLUPS`] is the whole write of a group of new events in one
//! statement: the prune horizon read under its share lock, the insert, and
//! (only when every event was new, as the engine assumed when it summed
//! them) the rollups. A single event submitted alone is then one round
//! trip, committed on its own.

use std::sync::LazyLock;

use postgres::types::ToSql;

use super::numeric::Numeric;
use crate::storage::db::NewEvent;
use crate::storage::listing::STORED_ROW_COLUMNS;
use crate::storage::rollup::{RollupDelta, RollupKey, RollupTable};

/// The insert of a group's events ($1 to $9), before its conflict clause.
const INSERT_EVENTS: &str =
    "INSERT INTO events (dedup_key, client_id, metric, ts, amount, event_id, attributes, received_at, rules_version)
     SELECT k, c, m, t, a, e, at, $8, $9
     FROM unnest($1::BYTEA[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::FLOAT8[], $6::TEXT[], $7::TEXT[])
          AS u(k, c, m, t, a, e, at)";

/// Each new event's id and key; a stored key is left alone.
pub(super) static EVENTS: LazyLock<String> =
    LazyLock::new(|| format!("{INSERT_EVENTS} ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"));

/// The events as [`EVENTS`] takes them, with $10 the oldest event's time
/// and $11 their number; the rollups across clients from $12 and per
/// client from $21 ([`RollupArrays`]). Rows, by their last column: `new`,
/// an inserted event's id and key; `horizon`, the horizon when one is set;
/// `stored`, a row stored before under one of the keys (listing's
/// `STORED_ROW_COLUMNS`, then its key), so that a retry is answered
/// without another round trip.
///
/// Nothing is inserted when the horizon passed the oldest event (the engine
/// refuses the group, as a prune removed what the window let through), and
/// the rollups are added only when every event was new; otherwise the
/// engine adds those of the new ones itself, in the same transaction. The
/// stored rows are looked up only then, and as the statement's snapshot
/// has them: the main query does not see what its own CTEs inserted.
///
/// The CTEs that no query reads run in an order PostgreSQL leaves open (in
/// practice the last first), and every writer must lock rollup rows in one
/// order, `rollups` then `client_days`, as the engine's separate upserts do:
/// two writers locking them in opposite orders deadlock, which PostgreSQL
/// settles only after `deadlock_timeout` by failing one. So `per_client`
/// reads `across` first (its count, always at least 0), which runs it to
/// its end before any `client_days` row is touched.
pub(super) static WITH_ROLLUPS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH horizon AS (SELECT pruned_before FROM lifecycle WHERE id = 1 FOR SHARE),
         new AS ({INSERT_EVENTS}
                 WHERE NOT EXISTS (SELECT 1 FROM horizon WHERE pruned_before > $10)
                 ON CONFLICT (dedup_key) DO NOTHING
                 RETURNING id, dedup_key),
         all_new AS (SELECT count(*) = $11 AS yes FROM new),
         across AS ({} RETURNING 1),
         per_client AS ({})
         SELECT id, NULL::TEXT, NULL::TEXT, NULL::BIGINT, NULL::FLOAT8, NULL::TEXT, NULL::TEXT, dedup_key, NULL::BIGINT, 'new' FROM new
         UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, pruned_before, 'horizon' FROM horizon
         UNION ALL SELECT {STORED_ROW_COLUMNS}, dedup_key, NULL, 'stored' FROM events
             WHERE dedup_key = ANY($1) AND NOT (SELECT yes FROM all_new)",
        RollupArrays::insert(RollupTable::Rollups, 12, "WHERE (SELECT yes FROM all_new)"),
        RollupArrays::insert(
            RollupTable::ClientDays,
            21,
            "WHERE (SELECT yes FROM all_new) AND (SELECT count(*) FROM across) >= 0"
        ),
    )
});

/// A group's events, one array per column of [`EVENTS`] ($1 to $7), in key
/// order: the order every writer takes the key's index entries in.
pub(super) struct EventArrays<'a> {
    keys: Vec<&'a [u8]>,
    clients: Vec<&'a str>,
    metrics: Vec<&'a str>,
    times: Vec<i64>,
    amounts: Vec<f64>,
    event_ids: Vec<Option<&'a str>>,
    attributes: Vec<&'a str>,
}

impl<'a> EventArrays<'a> {
    pub(super) fn new(rows: &[NewEvent<'a>]) -> Self {
        let mut sorted: Vec<&NewEvent<'a>> = rows.iter().collect();
        sorted.sort_unstable_by_key(|r| r.key);
        EventArrays {
            keys: sorted.iter().map(|r| r.key).collect(),
            clients: sorted.iter().map(|r| r.event.client_id.as_str()).collect(),
            metrics: sorted.iter().map(|r| r.event.metric.as_str()).collect(),
            times: sorted.iter().map(|r| r.event.timestamp.millis()).collect(),
            amounts: sorted.iter().map(|r| r.event.amount).collect(),
            event_ids: sorted.iter().map(|r| r.event.event_id.as_deref()).collect(),
            attributes: sorted.iter().map(|r| r.attributes).collect(),
        }
    }

    pub(super) fn values(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.keys,
            &self.clients,
            &self.metrics,
            &self.times,
            &self.amounts,
            &self.event_ids,
            &self.attributes,
        ]
    }
}

/// One table's rollup deltas, one array per column in the order of
/// [`RollupTable::columns`].
pub(super) struct RollupArrays<'a> {
    table: RollupTable,
    first: Vec<i64>,
    second: Vec<i64>,
    texts: Vec<&'a str>,
    metrics: Vec<&'a str>,
    counts: Vec<i64>,
    sums: Vec<Numeric<'a>>,
    mins: Vec<Option<f64>>,
    maxes: Vec<Option<f64>>,
    min_times: Vec<i64>,
    max_times: Vec<i64>,
}

impl<'a> RollupArrays<'a> {
    pub(super) fn new(table: RollupTable, deltas: &'a [RollupDelta<'a>]) -> Self {
        let mut a = RollupArrays {
            table,
            first: Vec::with_capacity(deltas.len()),
            second: Vec::new(),
            texts: Vec::new(),
            metrics: Vec::with_capacity(deltas.len()),
            counts: deltas.iter().map(|d| d.stats.count as i64).collect(),
            sums: deltas.iter().map(|d| Numeric(&d.stats.sum)).collect(),
            mins: deltas.iter().map(|d| d.stats.min).collect(),
            maxes: deltas.iter().map(|d| d.stats.max).collect(),
            min_times: deltas.iter().map(|d| d.stats.min_times as i64).collect(),
            max_times: deltas.iter().map(|d| d.stats.max_times as i64).collect(),
        };
        for d in deltas {
            match d.key {
                RollupKey::Across { level, bucket, metric } => {
                    a.first.push(level);
                    a.second.push(bucket);
                    a.metrics.push(metric);
                }
                RollupKey::ClientDay {
                    bucket,
                    client_id,
                    metric,
                } => {
                    a.first.push(bucket);
                    a.texts.push(client_id);
                    a.metrics.push(metric);
                }
            }
        }
        a
    }

    /// The element type of each column, in binding order.
    fn types(table: RollupTable) -> [&'static str; 9] {
        let key = match table {
            RollupTable::Rollups => ["BIGINT", "BIGINT", "TEXT"],
            RollupTable::ClientDays => ["BIGINT", "TEXT", "TEXT"],
        };
        [
            key[0], key[1], key[2], "BIGINT", "NUMERIC", "FLOAT8", "FLOAT8", "BIGINT", "BIGINT",
        ]
    }

    pub(super) fn values(&self) -> [&(dyn ToSql + Sync); 9] {
        let key: [&(dyn ToSql + Sync); 3] = match self.table {
            RollupTable::Rollups => [&self.first, &self.second, &self.metrics],
            RollupTable::ClientDays => [&self.first, &self.texts, &self.metrics],
        };
        [
            key[0],
            key[1],
            key[2],
            &self.counts,
            &self.sums,
            &self.mins,
            &self.maxes,
            &self.min_times,
            &self.max_times,
        ]
    }

    /// The upsert of `table`'s arrays bound from `$first`, its rows kept
    /// where `filter` holds.
    pub(super) fn insert(table: RollupTable, first: usize, filter: &str) -> String {
        let arrays: Vec<String> = Self::types(table)
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("${}::{ty}[]", first + i))
            .collect();
        format!(
            "INSERT INTO {} ({}) SELECT * FROM unnest({}) AS u {filter} {}",
            table.name(),
            table.columns(),
            arrays.join(", "),
            table.add_on_conflict()
        )
    }
}
