//! The dedup key: the bytes that make two events the same event.
//!
//! The key is stored in a UNIQUE column and written with an insert that does
//! nothing on conflict, so "is it new?" and "store it" are one atomic step
//! in the database, across threads and processes.
//!
//! Encoding: a tag byte, then the key's fields in a fixed order with the
//! timestamp first, so that events arriving roughly in time order land on
//! neighbouring index pages. Each field is self-delimiting (fixed width or
//! length-prefixed), so distinct values never encode alike.

use crate::event::Event;
use crate::rules::{Field, Rules};

/// The key of an event under the configured `dedup_key`.
const TAG_CONFIGURED: u8 = b'K';
/// The key of an event that lacks the `event_id` the configured key names:
/// it falls back to the built-in content key.
const TAG_CONTENT: u8 = b'C';

/// Fields in encoding order: timestamp first for index locality.
const ORDER: [Field; 5] = [
    Field::Timestamp,
    Field::ClientId,
    Field::Metric,
    Field::Amount,
    Field::EventId,
];

const CONTENT_KEY: [Field; 4] = [Field::ClientId, Field::Metric, Field::Timestamp, Field::Amount];

/// The dedup key of `event` under `rules`.
///
/// When the configured key names `event_id` and the event has none, the
/// built-in key `(client_id, metric, timestamp, amount)` is used instead, so
/// such events are still deduplicated by content.
pub fn dedup_key(event: &Event, rules: &Rules) -> Vec<u8> {
    let configured = rules.dedup_key();
    let (tag, fields): (u8, &[Field]) = if configured.contains(&Field::EventId) && event.event_id.is_none() {
        (TAG_CONTENT, &CONTENT_KEY)
    } else {
        (TAG_CONFIGURED, configured)
    };
    let mut key = Vec::with_capacity(64);
    key.push(tag);
    for field in ORDER.into_iter().filter(|f| fields.contains(f)) {
        match field {
            // Sign bit flipped: big-endian bytes then sort like the numbers.
            Field::Timestamp => key.extend_from_slice(&((event.timestamp.millis() as u64) ^ (1 << 63)).to_be_bytes()),
            Field::Amount => key.extend_from_slice(&event.amount.to_bits().to_be_bytes()),
            Field::ClientId => push_text(&mut key, &event.client_id),
            Field::Metric => push_text(&mut key, &event.metric),
            Field::EventId => push_text(&mut key, event.event_id.as_deref().unwrap_or_default()),
        }
    }
    key
}

fn push_text(key: &mut Vec<u8>, text: &str) {
    // Text is at most max_text_len (<= 1 MiB) characters: u32 holds its length.
    key.extend_from_slice(&(text.len() as u32).to_be_bytes());
    key.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map};

    use super::*;
    use crate::timestamp::Timestamp;

    fn ev(client: &str, metric: &str, amount: f64, ms: i64, id: Option<&str>) -> Event {
        Event {
            client_id: client.into(),
            metric: metric.into(),
            amount,
            timestamp: Timestamp::from_millis(ms).unwrap(),
            attributes: Map::new(),
            event_id: id.map(Into::into),
        }
    }

    #[test]
    fn attributes_never_change_the_key() {
        let r = Rules::builtin();
        let a = ev("a", "m", 1.0, 5, None);
        let mut b = a.clone();
        b.attributes.insert("x".into(), json!(1));
        assert_eq!(dedup_key(&a, &r), dedup_key(&b, &r));
    }

    #[test]
    fn every_key_field_matters_and_text_boundaries_are_unambiguous() {
        let r = Rules::builtin();
        let base = dedup_key(&ev("ab", "c", 1.0, 5, None), &r);
        assert_ne!(base, dedup_key(&ev("a", "bc", 1.0, 5, None), &r));
        assert_ne!(base, dedup_key(&ev("ab", "c", 2.0, 5, None), &r));
        assert_ne!(base, dedup_key(&ev("ab", "c", 1.0, 6, None), &r));
        assert_eq!(base, dedup_key(&ev("ab", "c", 1.0, 5, Some("x")), &r));
    }

    #[test]
    fn event_id_key_falls_back_to_content_without_an_id() {
        let r = Rules::from_value(&json!({"dedup_key": ["client_id", "event_id"]})).unwrap();
        let with_id = |amount, ms| dedup_key(&ev("a", "m", amount, ms, Some("e1")), &r);
        assert_eq!(with_id(1.0, 5), with_id(2.0, 9));
        let no_id = |amount| dedup_key(&ev("a", "m", amount, 5, None), &r);
        assert_ne!(no_id(1.0), no_id(2.0));
        assert_ne!(no_id(1.0), with_id(1.0, 5));
    }

    #[test]
    fn keys_sort_by_time_first() {
        let r = Rules::builtin();
        let early = dedup_key(&ev("z", "m", 1.0, -5, None), &r);
        let late = dedup_key(&ev("a", "m", 1.0, 7, None), &r);
        assert!(early < late);
    }
}
