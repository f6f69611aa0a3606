//! The fast path from JSON text to a normalised event, for
//! [`Ingestor::submit_json`](crate::Ingestor::submit_json) and
//! [`Ingestor::submit_batch_json`](crate::Ingestor::submit_batch_json).
//!
//! Why: parsing each event into a `serde_json::Value`, merging its envelope
//! into a map, looking every alias up in it, cloning what is left into the
//! attributes and dropping the tree was about a third of the CPU time of a
//! batch (issue #6), with many small allocations. Here one pass of serde_json's parser reads each event straight into
//! a [`RawEvent`]: a value under one of the rules' input names is kept as a
//! scalar (its text borrowed from the input when it has no escapes); every
//! other field is parsed as the `Value` it becomes in the attributes anyway,
//! and moved there, not cloned.
//!
//! One answer whatever the path: the per-field checks are those of
//! [`normalize`](crate::normalize) (through [`Scalar`]), the size limit is
//! counted as [`check_shape`](crate::limits::check_shape) counts it, and
//! anything unusual makes the fast path step aside ([`None`]) so the caller
//! takes the `Value` path, which also gives every parse error its exact
//! message. Rejected events go the `Value` path too, rebuilt with
//! [`RawEvent::into_value`], so their kept raw text is the same as before.
//! `tests/fast_path.rs` and the fuzz target `fast_path` check the sameness.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer as _, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::event::{Event, Reason};
use crate::limits::{
    approx_bytes, has_reserved_key, is_reserved, key_bytes, text_bytes, NUMBER_BYTES, OBJECT_BYTES, SCALAR_BYTES,
};
use crate::normalize::{amount_field, assemble, text_field, timestamp_field, Scalar};
use crate::rules::{Field, Rules, PAYLOAD};

/// The rules' input names, for finding a key's canonical field without a
/// map: grouped by length, so most keys are compared with one or two names.
#[derive(Debug, Clone)]
pub(crate) struct InputNames {
    by_len: Vec<Vec<(Box<str>, Slot)>>,
}

/// Which canonical field an input name feeds, and its place in that field's
/// list of aliases (the first one present wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    field: Field,
    rank: usize,
}

impl InputNames {
    pub(crate) fn new(rules: &Rules) -> Self {
        let mut by_len: Vec<Vec<(Box<str>, Slot)>> = Vec::new();
        for field in Field::ALL {
            for (rank, name) in rules.aliases(field).iter().enumerate() {
                if by_len.len() <= name.len() {
                    by_len.resize_with(name.len() + 1, Vec::new);
                }
                let same_len = &mut by_len[name.len()];
                // A name listed twice for a field is found at its first place.
                if !same_len.iter().any(|(n, _)| **n == **name) {
                    same_len.push((name.as_str().into(), Slot { field, rank }));
                }
            }
        }
        InputNames { by_len }
    }

    fn slot(&self, key: &str) -> Option<Slot> {
        let same_len = self.by_len.get(key.len())?;
        // The first byte first: most candidates differ there, without a call to memcmp.
        let first = key.as_bytes().first();
        same_len
            .iter()
            .find(|(n, _)| n.as_bytes().first() == first && **n == *key)
            .map(|&(_, slot)| slot)
    }
}

/// One event object as read from its text: what normalisation needs, and
/// enough to rebuild the exact `Value` for the rare event that is rejected.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawEvent<'de> {
    /// Values under the rules' input names: the last of each name at each
    /// level, as serde_json keeps the last of duplicate keys.
    aliased: Vec<Aliased<'de>>,
    /// Every other top-level field.
    top: Map<String, Value>,
    /// Every other field of the payload, when the event is an envelope
    /// (`Some` even when the payload object is empty).
    payload: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
struct Aliased<'de> {
    slot: Slot,
    in_payload: bool,
    value: FieldValue<'de>,
}

/// A value under an input name: [`Scalar`]'s owner.
#[derive(Debug, Clone)]
enum FieldValue<'de> {
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

    /// What `check_shape` counts for this value as a `Value`.
    fn bytes(&self) -> usize {
        match self {
            FieldValue::Null | FieldValue::Bool(_) => SCALAR_BYTES,
            FieldValue::Number(_) => NUMBER_BYTES,
            FieldValue::Text(s) => text_bytes(s),
            FieldValue::Compound(v) => approx_bytes(v),
        }
    }
}

impl<'de> RawEvent<'de> {
    fn add_alias(&mut self, slot: Slot, in_payload: bool, value: FieldValue<'de>) {
        let same = self
            .aliased
            .iter_mut()
            .find(|a| a.slot == slot && a.in_payload == in_payload);
        match same {
            Some(a) => a.value = value,
            None => self.aliased.push(Aliased {
                slot,
                in_payload,
                value,
            }),
        }
    }

    /// True when `aliased[i]` is the merged event's value under its name:
    /// the payload wins over the top level.
    fn merged(&self, i: usize) -> bool {
        let a = &self.aliased[i];
        a.in_payload || !self.aliased.iter().any(|b| b.in_payload && b.slot == a.slot)
    }

    /// The entry `field` is read from: its first input name whose merged
    /// value is present and not null.
    fn found(&self, field: Field) -> Option<usize> {
        (0..self.aliased.len())
            .filter(|&i| {
                let a = &self.aliased[i];
                a.slot.field == field && !matches!(a.value, FieldValue::Null) && self.merged(i)
            })
            .min_by_key(|&i| self.aliased[i].slot.rank)
    }

    /// What `check_shape` counts for this event as a `Value`; it compares
    /// that with the byte limit. (Its depth limit cannot strike anything
    /// serde_json parsed: see `limits`.)
    pub(crate) fn approx_bytes(&self, rules: &Rules) -> usize {
        let fields = |m: &Map<String, Value>| m.iter().map(|(k, v)| key_bytes(k) + approx_bytes(v)).sum::<usize>();
        let mut top = OBJECT_BYTES + fields(&self.top);
        let mut payload = self.payload.as_ref().map(|p| OBJECT_BYTES + fields(p));
        for a in &self.aliased {
            let bytes = key_bytes(name(rules, a.slot)) + a.value.bytes();
            match (&mut payload, a.in_payload) {
                (Some(p), true) => *p += bytes,
                _ => top += bytes,
            }
        }
        top + payload.map_or(0, |p| key_bytes(PAYLOAD) + p)
    }

    /// Normalise under `rules`, as [`normalize`](crate::normalize) would the
    /// event's `Value`; a rejected event comes back with its reasons.
    pub(crate) fn normalize(mut self, rules: &Rules) -> Result<Event, (Vec<Reason>, Self)> {
        let used = Field::ALL.map(|field| self.found(field));
        let at = |field: Field| {
            used[field as usize].map(|i| {
                let a = &self.aliased[i];
                (name(rules, a.slot), a.value.view())
            })
        };
        let mut reasons = Vec::new();
        let client_id = text_field(Field::ClientId, at(Field::ClientId), rules, &mut reasons);
        let metric = text_field(Field::Metric, at(Field::Metric), rules, &mut reasons);
        let amount = amount_field(at(Field::Amount), rules, &mut reasons);
        let timestamp = timestamp_field(at(Field::Timestamp), rules, &mut reasons);
        let event_id = text_field(Field::EventId, at(Field::EventId), rules, &mut reasons);
        let parts = (client_id, metric, amount, timestamp, event_id);
        assemble(parts, || self.take_attributes(&used, rules), rules, reasons).map_err(|reasons| (reasons, self))
    }

    /// The attributes of the merged event: every field that fed no canonical
    /// field, the payload's winning over the top level's of the same name.
    fn take_attributes(&mut self, used: &[Option<usize>; 5], rules: &Rules) -> Map<String, Value> {
        let mut attributes = std::mem::take(&mut self.top);
        if let Some(payload) = self.payload.take() {
            if attributes.is_empty() {
                attributes = payload;
            } else {
                attributes.extend(payload);
            }
        }
        for i in 0..self.aliased.len() {
            if used.contains(&Some(i)) || !self.merged(i) {
                continue;
            }
            let a = &mut self.aliased[i];
            let value = std::mem::replace(&mut a.value, FieldValue::Null).into_value();
            attributes.insert(name(rules, a.slot).to_string(), value);
        }
        attributes
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
            target.insert(name(rules, a.slot).to_string(), a.value.into_value());
        }
        if let Some(p) = payload {
            top.insert(PAYLOAD.to_string(), Value::Object(p));
        }
        Value::Object(top)
    }
}

fn name(rules: &Rules, slot: Slot) -> &str {
    &rules.aliases(slot.field)[slot.rank]
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
            if let Some(slot) = names.slot(&key) {
                let value = map.next_value_seed(FieldValueSeed)?;
                event.add_alias(slot, in_payload, value);
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
        let bytes = event.approx_bytes(rules);
        let value = event.clone().into_value(rules);
        FastRead {
            normalized: event.normalize(rules).map_err(|(reasons, _)| reasons),
            value,
            bytes,
        }
    }
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
    let answer = |e: RawEvent<'_>| {
        (
            e.approx_bytes(rules),
            e.normalize(rules).map_err(|(reasons, _)| reasons),
        )
    };
    Some(events.into_iter().map(answer).collect())
}
