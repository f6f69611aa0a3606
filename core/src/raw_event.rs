//! The fast path from JSON text to a normalised event, for
//! [`Ingestor::submit_json`](crate::Ingestor::submit_json) and
//! [`Ingestor::submit_batch_json`](crate::Ingestor::submit_batch_json).
//!
//! Why: parsing each event into a `serde_json::Value`, merging its envelope
//! into a map, looking every alias up in it, cloning what is left into the
//! attributes and dropping the tree was about a third of the CPU time of a
//! batch (issue #6), with many small allocations. Here one pass of
//! serde_json's parser reads each event straight into a [`RawEvent`]: a
//! value under one of the rules' input names is kept as a scalar (its text
//! borrowed from the input when it has no escapes); every other field is
//! parsed as the `Value` it becomes in the attributes anyway, and moved
//! there, not cloned.
//!
//! One answer whatever the path: each level of a [`RawEvent`] is read through
//! [`Entries`] by the same [`resolve`] as a `Value`'s maps (the envelope
//! merge, the alias order, the attributes, the per-field checks), the size
//! limit is counted from the counts of [`limits`](crate::limits), and
//! anything unusual makes the fast path step aside ([`None`]) so the caller
//! takes the `Value` path, which also gives every parse error its exact
//! message. Rejected events go the `Value` path too, rebuilt with
//! [`RawEvent::into_value`], so their kept raw text is the same as before.
//! `tests/fast_path.rs` and the fuzz target `fast_path` check the sameness.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer as _, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::event::{Event, Reason};
use crate::limits::{entry_bytes, has_reserved_key, is_reserved, measure, value_bytes, Measure, OBJECT_BYTES};
use crate::normalize::{resolve, Alias, Entries, Keep, Scalar};
use crate::rules::{Field, Rules, PAYLOAD};
use crate::window::Window;

/// The rules' input names, for finding a key's canonical field without a
/// map: grouped by length, so most keys are compared with one or two names.
#[derive(Debug, Clone)]
pub(crate) struct InputNames {
    by_len: Vec<Vec<(Box<str>, Alias)>>,
}

impl InputNames {
    pub(crate) fn new(rules: &Rules) -> Self {
        let mut by_len: Vec<Vec<(Box<str>, Alias)>> = Vec::new();
        for field in Field::ALL {
            for (rank, name) in rules.aliases(field).iter().enumerate() {
                if by_len.len() <= name.len() {
                    by_len.resize_with(name.len() + 1, Vec::new);
                }
                let same_len = &mut by_len[name.len()];
                // A name listed twice for a field is found at its first place.
                if !same_len.iter().any(|(n, _)| **n == **name) {
                    same_len.push((name.as_str().into(), Alias { field, rank }));
                }
            }
        }
        InputNames { by_len }
    }

    fn alias(&self, key: &str) -> Option<Alias> {
        let same_len = self.by_len.get(key.len())?;
        // The first byte first: most candidates differ there, without a call to memcmp.
        let first = key.as_bytes().first();
        same_len
            .iter()
            .find(|(n, _)| n.as_bytes().first() == first && **n == *key)
            .map(|&(_, alias)| alias)
    }
}

/// One event object as read from its text: what normalisation needs, and
/// enough to rebuild the exact `Value` for the rare event that is rejected.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawEvent<'de> {
    /// Values under the rules' input names, at both levels (one list: one
    /// allocation): the last of each name at each level, as serde_json keeps
    /// the last of duplicate keys.
    aliased: Vec<Aliased<'de>>,
    /// Every other top-level field.
    top: Map<String, Value>,
    /// Every other field of the payload, when the event is an envelope
    /// (`Some` even when the payload object is empty).
    payload: Option<Map<String, Value>>,
    /// For the top level and the payload, a bit for each alias in `aliased`
    /// (see [`bit`]): most input names are absent, and are known absent
    /// without a search.
    present: [u64; 2],
}

#[derive(Debug, Clone)]
struct Aliased<'de> {
    in_payload: bool,
    alias: Alias,
    value: FieldValue<'de>,
}

/// A value under an input name: [`Scalar`]'s owner.
#[derive(Debug, Clone, Default)]
enum FieldValue<'de> {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    Text(Cow<'de, str>),
    Compound(Value),
}

impl FieldValue<'_> {
    fn view(&self) -> Scalar<'_> {
        match self {
            FieldValue::Null => Scalar::Null,
            FieldValue::Bool(b) => Scalar::Bool(*b),
            FieldValue::Number(n) => Scalar::Number(n),
            FieldValue::Text(s) => Scalar::Text(s),
            FieldValue::Compound(v) => Scalar::Compound(v),
        }
    }

    fn into_value(self) -> Value {
        match self {
            FieldValue::Null => Value::Null,
            FieldValue::Bool(b) => Value::Bool(b),
            FieldValue::Number(n) => Value::Number(n),
            FieldValue::Text(s) => Value::String(s.into_owned()),
            FieldValue::Compound(v) => v,
        }
    }
}

/// `alias`'s bit in [`RawEvent::present`]: twelve bits by field, the last
/// one for every rank from 11 on.
fn bit(alias: Alias) -> u64 {
    1 << (alias.field as usize * 12 + alias.rank.min(11))
}

impl<'de> RawEvent<'de> {
    fn add_alias(&mut self, alias: Alias, in_payload: bool, value: FieldValue<'de>) {
        let present = &mut self.present[usize::from(in_payload)];
        let seen = *present & bit(alias) != 0;
        *present |= bit(alias);
        // Only a key given twice (or a rank past the bits) needs the search.
        if seen {
            let same = self
                .aliased
                .iter_mut()
                .find(|a| a.alias == alias && a.in_payload == in_payload);
            if let Some(a) = same {
                a.value = value;
                return;
            }
        }
        self.aliased.push(Aliased {
            in_payload,
            alias,
            value,
        });
    }

    /// What `check_shape` counts for this event as a `Value`, and whether
    /// every number in it is finite; it compares that with the byte limit.
    /// (Its depth limit cannot strike anything serde_json parsed: see
    /// `limits`.)
    pub(crate) fn measure(&self, rules: &Rules) -> Measure {
        let entries = |m: &Map<String, Value>| {
            m.iter().fold(Measure::default(), |sum, (k, v)| {
                let value = measure(v);
                sum + Measure {
                    bytes: entry_bytes(k, value.bytes),
                    finite: value.finite,
                }
            })
        };
        let object = Measure {
            bytes: OBJECT_BYTES,
            finite: true,
        };
        let mut top = object + entries(&self.top);
        let mut payload = self.payload.as_ref().map(|p| object + entries(p));
        for a in &self.aliased {
            let value = value_bytes(a.value.view());
            let entry = Measure {
                bytes: entry_bytes(a.alias.name(rules), value.bytes),
                finite: value.finite,
            };
            match (&mut payload, a.in_payload) {
                (Some(p), true) => *p = *p + entry,
                _ => top = top + entry,
            }
        }
        match payload {
            Some(p) => {
                top + Measure {
                    bytes: entry_bytes(PAYLOAD, p.bytes),
                    finite: p.finite,
                }
            }
            None => top,
        }
    }

    /// Normalise under `rules`, as [`normalize`](crate::normalize()) would the
    /// event's `Value`; a rejected event comes back with its reasons.
    pub(crate) fn normalize(mut self, rules: &Rules, window: &Window) -> Result<Event, (Vec<Reason>, Self)> {
        // The top level's values first, then the payload's: a slice for each.
        self.aliased.sort_unstable_by_key(|a| a.in_payload);
        let split = self.aliased.partition_point(|a| !a.in_payload);
        let (top, payload) = self.aliased.split_at_mut(split);
        let mut top = Level {
            aliased: top,
            others: &mut self.top,
            present: self.present[0],
        };
        let mut payload = self.payload.as_mut().map(|others| Level {
            aliased: payload,
            others,
            present: self.present[1],
        });
        resolve(&mut top, payload.as_mut(), rules, window).map_err(|reasons| (reasons, self))
    }

    /// The event as the `Value` serde_json would have parsed from its text.
    pub(crate) fn into_value(self, rules: &Rules) -> Value {
        let mut top = self.top;
        let mut payload = self.payload;
        for a in self.aliased {
            let target = match (&mut payload, a.in_payload) {
                (Some(p), true) => p,
                _ => &mut top,
            };
            target.insert(a.alias.name(rules).to_string(), a.value.into_value());
        }
        if let Some(p) = payload {
            top.insert(PAYLOAD.to_string(), Value::Object(p));
        }
        Value::Object(top)
    }
}

/// One level of a [`RawEvent`], the fast path's [`Entries`].
struct Level<'e, 'de> {
    aliased: &'e mut [Aliased<'de>],
    others: &'e mut Map<String, Value>,
    present: u64,
}

impl Entries for Level<'_, '_> {
    fn get(&self, alias: Alias, _: &str) -> Option<Scalar<'_>> {
        if self.present & bit(alias) == 0 {
            return None;
        }
        self.aliased.iter().find(|a| a.alias == alias).map(|a| a.value.view())
    }

    fn attributes_into(&mut self, keep: &Keep<'_, '_>, rules: &Rules, out: &mut Map<String, Value>) {
        // `others` holds no input name and no envelope key: all of it is kept.
        let others = std::mem::take(self.others);
        if out.is_empty() {
            *out = others;
        } else {
            out.extend(others);
        }
        for a in self.aliased.iter_mut() {
            if keep.keeps_alias(a.alias) {
                let value = std::mem::take(&mut a.value).into_value();
                out.insert(a.alias.name(rules).to_string(), value);
            }
        }
    }
}

/// Read one event object from `text`, or `None` when the fast path steps
/// aside: text that is not JSON (the `Value` path says why), not an object,
/// or unusual (see [`Unusual`]).
pub(crate) fn read_event<'de>(text: &'de str, names: &InputNames) -> Option<RawEvent<'de>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let event = EventSeed(names).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(event)
}

/// Read a batch (a JSON array of event objects) from `text`, or `None` as
/// for [`read_event`], also when any item is not an object. One pass over the
/// whole text, in the same parser state as a `Value` parse of the array, so
/// its nesting limit strikes the same inputs.
pub(crate) fn read_batch<'de>(text: &'de str, names: &InputNames) -> Option<Vec<RawEvent<'de>>> {
    let mut de = serde_json::Deserializer::from_str(text);
    // Sized for events of about 100 bytes (a guess: it saves the copies of
    // growing a large batch), within a bound whatever the text.
    let expected = (text.len() / 100).min(100_000);
    let events = (&mut de).deserialize_seq(BatchVisitor { names, expected }).ok()?;
    de.end().ok()?;
    Some(events)
}

/// Read one event object through `de`, a deserializer over a binding's own
/// values (see [`Ingestor::read_input`](crate::Ingestor::read_input)); an
/// error where it steps aside, as [`read_event`] does.
pub(crate) fn read_with<D: serde::Deserializer<'static>>(
    de: D,
    names: &InputNames,
) -> Result<RawEvent<'static>, D::Error> {
    EventSeed(names).deserialize(de)
}

/// An event a binding read from its own values (see
/// [`Ingestor::read_input`](crate::Ingestor::read_input)), with the rules
/// whose input names it was read under.
#[derive(Clone)]
pub struct ReadEvent {
    pub(crate) event: RawEvent<'static>,
    pub(crate) rules: Arc<Rules>,
}

impl ReadEvent {
    /// The event as the `Value` it was read from.
    pub fn to_value(&self) -> Value {
        self.event.clone().into_value(&self.rules)
    }
}

impl fmt::Debug for ReadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadEvent").field(&self.to_value()).finish()
    }
}

/// Equal when they stand for the same value.
impl PartialEq for ReadEvent {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

/// Why the fast path stepped aside from well-formed JSON; the `Value` path
/// answers these:
/// - a key serde_json gives a private meaning, anywhere (with its
///   `arbitrary_precision` feature, `{"$serde_json::private::Number": "1"}`
///   parses as the number 1; elsewhere the `Value` path refuses it, see
///   [`RESERVED_KEY_PREFIX`](crate::limits::RESERVED_KEY_PREFIX));
/// - a `payload` that is not an object (a rejection), or given twice.
#[derive(Debug)]
struct Unusual;

impl fmt::Display for Unusual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the Value path")
    }
}

struct BatchVisitor<'n> {
    names: &'n InputNames,
    expected: usize,
}

impl<'de> Visitor<'de> for BatchVisitor<'_> {
    type Value = Vec<RawEvent<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::with_capacity(self.expected);
        while let Some(event) = seq.next_element_seed(EventSeed(self.names))? {
            events.push(event);
        }
        Ok(events)
    }
}

struct EventSeed<'n>(&'n InputNames);

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = RawEvent<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        let mut event = RawEvent {
            // Room for every canonical field and a spare, in one allocation.
            aliased: Vec::with_capacity(8),
            ..RawEvent::default()
        };
        de.deserialize_map(FieldsVisitor {
            names: self.0,
            event: &mut event,
            in_payload: false,
        })?;
        Ok(event)
    }
}

/// The fields of the event object, or of its payload object, read into `event`.
struct FieldsVisitor<'n, 'e, 'de> {
    names: &'n InputNames,
    event: &'e mut RawEvent<'de>,
    in_payload: bool,
}

impl<'de> DeserializeSeed<'de> for FieldsVisitor<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let FieldsVisitor {
            names,
            event,
            in_payload,
        } = self;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if is_reserved(&key) {
                return Err(A::Error::custom(Unusual));
            }
            if let Some(alias) = names.alias(&key) {
                let value = map.next_value_seed(FieldValueSeed)?;
                event.add_alias(alias, in_payload, value);
            } else if key == PAYLOAD && !in_payload {
                if event.payload.is_some() {
                    return Err(A::Error::custom(Unusual));
                }
                event.payload = Some(Map::new());
                map.next_value_seed(FieldsVisitor {
                    names,
                    event: &mut *event,
                    in_payload: true,
                })?;
            } else {
                let value: Value = map.next_value()?;
                if has_reserved_key(&value) {
                    return Err(A::Error::custom(Unusual));
                }
                let fields = match (&mut event.payload, in_payload) {
                    (Some(p), true) => p,
                    _ => &mut event.top,
                };
                fields.insert(key.into_owned(), value);
            }
        }
        Ok(())
    }
}

/// A key, borrowed from the input unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

/// A value under an input name, read as `Value`'s own visitor reads it
/// (lists, objects and, with `arbitrary_precision`, most numbers through it).
struct FieldValueSeed;

impl<'de> DeserializeSeed<'de> for FieldValueSeed {
    type Value = FieldValue<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(FieldValueSeed)
    }
}

impl<'de> Visitor<'de> for FieldValueSeed {
    type Value = FieldValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(FieldValue::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(FieldValue::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(FieldValue::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(FieldValue::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(n).map_or(FieldValue::Null, FieldValue::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(FieldValue::Text(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(FieldValue::Text(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(FieldValue::Text(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        compound(Value::deserialize(SeqAccessDeserializer::new(seq))?)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        match Value::deserialize(MapAccessDeserializer::new(map))? {
            Value::Number(n) => Ok(FieldValue::Number(n)),
            other => compound(other),
        }
    }
}

/// A list or object under an alias; one holding a reserved key is left to
/// the `Value` path, which refuses it.
fn compound<'de, E: serde::de::Error>(v: Value) -> Result<FieldValue<'de>, E> {
    if has_reserved_key(&v) {
        return Err(E::custom(Unusual));
    }
    Ok(FieldValue::Compound(v))
}

// The test hooks (feature `test-hooks`): the fast path's reading of events,
// for the sameness tests (`tests/fast_path.rs`), the fuzz target (`fuzz/`)
// and benchmarks. Not part of the API.

/// What normalising one event answers.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub type Normalized = Result<Event, Vec<Reason>>;

/// The fast path's reading of one event. Not part of the API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub struct FastRead {
    /// What the fast path's normalisation answers.
    pub normalized: Normalized,
    /// The event rebuilt as a `Value`: what a rejection keeps as raw input.
    pub value: Value,
    /// The size compared with the byte limit.
    pub bytes: usize,
}

#[cfg(feature = "test-hooks")]
impl FastRead {
    fn of(event: RawEvent<'_>, rules: &Rules) -> Self {
        let bytes = event.measure(rules).bytes;
        let value = event.clone().into_value(rules);
        FastRead {
            normalized: event.normalize(rules, &now(rules)).map_err(|(reasons, _)| reasons),
            value,
            bytes,
        }
    }
}

/// The window [`crate::normalize()`] applies: `rules`' at this moment.
#[cfg(feature = "test-hooks")]
fn now(rules: &Rules) -> Window {
    rules.window(crate::Timestamp::now(), None)
}

/// [`read_event`] under `rules`, then everything the fast path does with the
/// event; `None` where it steps aside. Not part of the API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn fast_read_event(text: &str, rules: &Rules) -> Option<FastRead> {
    read_event(text, &InputNames::new(rules)).map(|e| FastRead::of(e, rules))
}

/// [`read_batch`] under `rules`, as [`fast_read_event`]. Not part of the API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn fast_read_batch(text: &str, rules: &Rules) -> Option<Vec<FastRead>> {
    let events = read_batch(text, &InputNames::new(rules))?;
    Some(events.into_iter().map(|e| FastRead::of(e, rules)).collect())
}

/// What `submit_batch_json` does with the batch `text` before keys and
/// storage, for benchmarks: each event's counted size and normalised answer
/// (`None` where the fast path steps aside). Not part of the API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn fast_normalize_batch(text: &str, rules: &Rules) -> Option<Vec<(usize, Normalized)>> {
    let events = read_batch(text, &InputNames::new(rules))?;
    let window = now(rules);
    let answer = |e: RawEvent<'_>| {
        (
            e.measure(rules).bytes,
            e.normalize(rules, &window).map_err(|(reasons, _)| reasons),
        )
    };
    Some(events.into_iter().map(answer).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::limits::check_shape;

    /// The fast path reads `text` as the `Value` path reads its parse.
    fn same(text: &str, rules: &Rules) {
        let value: Value = serde_json::from_str(text).unwrap();
        let event = read_event(text, &InputNames::new(rules)).unwrap();
        assert_eq!(event.clone().into_value(rules), value, "{text}");
        let bytes = event.measure(rules).bytes;
        assert!(check_shape(&value, bytes).is_ok(), "{text}");
        assert!(check_shape(&value, bytes - 1).is_err(), "{text}");
        let fast = event
            .normalize(rules, &Window::default())
            .map_err(|(reasons, _)| reasons);
        assert_eq!(fast, crate::normalize(&value, rules), "{text}");
    }

    #[test]
    fn names_past_the_presence_bits_read_as_the_value_path_reads_them() {
        // Fourteen names for the amount: the last three share one bit, and
        // one of them is also listed earlier.
        let mut names: Vec<String> = (0..13).map(|i| format!("a{i}")).collect();
        names.insert(12, "a5".into());
        let rules = Rules::from_value(&json!({"aliases": {"amount": names}})).unwrap();
        for text in [
            r#"{"source": "s", "ts": 0, "a12": 1}"#,
            r#"{"source": "s", "ts": 0, "a12": 1, "a11": null}"#,
            r#"{"source": "s", "ts": 0, "a12": 1, "a11": 2, "a5": 3}"#,
            r#"{"source": "s", "ts": 0, "a11": 1, "a12": 2, "a11": null}"#,
            r#"{"source": "s", "ts": 0, "a12": 1, "payload": {"a11": null, "a12": 4}}"#,
            r#"{"source": "s", "ts": 0, "a11": 5, "payload": {"a12": 6, "a12": 7, "a11": null}}"#,
            r#"{"source": "s", "ts": 0, "a11": "x", "payload": {"a12": null}}"#,
        ] {
            same(text, &rules);
        }
    }
}
