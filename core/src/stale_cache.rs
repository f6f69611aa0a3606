//! The last answer of each recent aggregate query, returned marked stale
//! when the database cannot be read. Bounded in bytes as well as in
//! entries: one query grouped by hour over years answers with tens of
//! thousands of groups, and a few hundred distinct ones grew the cache to
//! gigabytes when only the number of entries was bounded.

use std::collections::HashMap;
use std::mem::size_of;

use crate::aggregate::Aggregate;
use crate::options::Query;

/// Distinct queries kept at most.
pub(crate) const MAX_ENTRIES: usize = 256;

/// Bytes of answers (and their queries) kept at most, as [`cost`] counts
/// them.
pub(crate) const MAX_BYTES: usize = 16 << 20;

/// An answer costing more than this is not kept: it would push out dozens
/// of others, and a query that large is one a client can repeat later.
pub(crate) const MAX_ENTRY_BYTES: usize = MAX_BYTES / 8;

#[derive(Debug, Default)]
pub(crate) struct StaleCache {
    entries: HashMap<Query, (Aggregate, usize)>,
    bytes: usize,
}

/// The memory an entry holds: its structures and the text they point to.
fn cost(q: &Query, a: &Aggregate) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let groups = a.groups.as_deref().unwrap_or_default();
    size_of::<Query>()
        + text(&q.client_id)
        + text(&q.metric)
        + size_of::<Aggregate>()
        + std::mem::size_of_val(groups)
        + groups
            .iter()
            .map(|g| text(&g.key.client_id) + text(&g.key.metric))
            .sum::<usize>()
}

impl StaleCache {
    /// Keep `answer` as the last one for `q`, the oldest answers making
    /// room for it; an answer over [`MAX_ENTRY_BYTES`] is not kept (and
    /// the one before it for `q`, now out of date, goes).
    pub(crate) fn put(&mut self, q: Query, answer: &Aggregate) {
        if let Some((_, old)) = self.entries.remove(&q) {
            self.bytes -= old;
        }
        let bytes = cost(&q, answer);
        if bytes > MAX_ENTRY_BYTES {
            return;
        }
        while !self.entries.is_empty() && (self.entries.len() >= MAX_ENTRIES || self.bytes + bytes > MAX_BYTES) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (a, _))| a.computed_at)
                .map(|(k, _)| k.clone());
            if let Some((_, (_, freed))) = oldest.and_then(|k| self.entries.remove_entry(&k)) {
                self.bytes -= freed;
            }
        }
        self.bytes += bytes;
        self.entries.insert(q, (answer.clone(), bytes));
    }

    /// The last answer kept for `q`, marked stale.
    pub(crate) fn stale(&self, q: &Query) -> Option<Aggregate> {
        self.entries.get(q).map(|(a, _)| Aggregate {
            stale: true,
            ..a.clone()
        })
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Group, GroupKey, Stats};
    use crate::timestamp::Timestamp;

    fn answer(groups: usize, at: i64) -> Aggregate {
        Aggregate {
            totals: Stats::default(),
            groups: Some(
                (0..groups)
                    .map(|i| Group {
                        key: GroupKey {
                            bucket: None,
                            bucket_local: None,
                            client_id: Some(format!("client-{i}")),
                            metric: None,
                        },
                        stats: Stats::default(),
                    })
                    .collect(),
            ),
            stale: false,
            computed_at: Timestamp::from_millis(at).unwrap(),
        }
    }

    fn query(i: usize) -> Query {
        Query {
            metric: Some(format!("m{i}")),
            ..Query::default()
        }
    }

    #[test]
    fn answers_stay_within_the_byte_bound_oldest_out_first() {
        let mut cache = StaleCache::default();
        // About half the most one answer may cost.
        let big = MAX_ENTRY_BYTES / 2 / (size_of::<Group>() + 12);
        for i in 0..40 {
            cache.put(query(i), &answer(big, i as i64));
            assert!(cache.bytes() <= MAX_BYTES, "{} after {i}", cache.bytes());
        }
        assert!(cache.stale(&query(39)).is_some_and(|a| a.stale), "the newest is kept");
        assert!(cache.stale(&query(0)).is_none(), "the oldest made room");
        // Far more than the bound in one answer: not kept at all.
        cache.put(query(99), &answer(4 * big, 99));
        assert!(cache.stale(&query(99)).is_none());
        assert!(cache.bytes() <= MAX_BYTES);
    }

    #[test]
    fn entries_stay_within_their_count_and_a_new_answer_replaces_the_old() {
        let mut cache = StaleCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(query(i), &answer(1, i as i64));
        }
        assert_eq!(cache.entries.len(), MAX_ENTRIES);
        let before = cache.bytes();
        cache.put(query(MAX_ENTRIES + 9), &answer(1, 10_000));
        assert_eq!((cache.entries.len(), cache.bytes()), (MAX_ENTRIES, before));
        assert_eq!(
            cache.stale(&query(MAX_ENTRIES + 9)).map(|a| a.computed_at.millis()),
            Some(10_000)
        );
    }
}
