//! A Python event dict read straight into the core's event reader
//! ([`Ingestor::read_input`]), without the `serde_json::Value` that
//! [`to_input`](crate::convert::to_input) builds: a serde `Deserializer`
//! over the Python objects.
//!
//! Why: building the `Value` (a `String` for every key, text and number)
//! and then normalising it on the `Value` path was most of what a batch of
//! dicts cost over the same batch as JSON text.
//!
//! It reads only what has one plain JSON form, the form `to_input` gives
//! it: None, bool, an int within 64 bits, a finite float, a str that is
//! Unicode, a dict with str keys and a list or tuple, nested less deep than
//! the core's limit. Anything else (a NaN, a lone surrogate, a big int, a
//! date, a key the JSON library reserves...) makes it step aside, and
//! `to_input` answers it, with its reasons where it has any. So an event
//! is decided the same whichever way it was read; `python/tests` checks
//! that sameness.

use std::fmt;

use ingest_core::limits::{is_reserved, MAX_DEPTH};
use ingest_core::{Ingestor, Input};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::value::StrDeserializer;
use serde::de::{DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

/// `obj`, a dict, read as one event; `None` where the reading steps aside.
pub fn read_dict(ing: &Ingestor, obj: &Bound<'_, PyDict>) -> Option<Input> {
    ing.read_input(Strict {
        obj: obj.as_any(),
        depth: 1,
    })
    .ok()
}

/// Why the reading stepped aside: `to_input` answers the event.
#[derive(Debug)]
pub struct StepAside;

impl fmt::Display for StepAside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the Value path")
    }
}

impl std::error::Error for StepAside {}

impl serde::de::Error for StepAside {
    fn custom<T: fmt::Display>(_: T) -> Self {
        StepAside
    }
}

/// One Python value at `depth` (the outermost is 1, as the core counts).
struct Strict<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    depth: usize,
}

impl Strict<'_, '_> {
    /// A list or dict here would be at the depth the core refuses, or past it.
    fn too_deep(&self) -> bool {
        self.depth >= MAX_DEPTH
    }
}

/// The text of a str, where it is Unicode.
fn unicode<'a>(s: &'a Bound<'_, PyString>) -> Result<std::borrow::Cow<'a, str>, StepAside> {
    s.to_cow().map_err(|_| StepAside)
}

impl<'de> serde::Deserializer<'de> for Strict<'_, '_> {
    type Error = StepAside;

    // The same order of checks as `to_input`'s reader: bool before int (a
    // subclass of it in Python), subclasses of each type read as the type.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StepAside> {
        let obj = self.obj;
        if obj.is_none() {
            return visitor.visit_unit();
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return visitor.visit_bool(b.is_true());
        }
        if let Ok(i) = obj.cast::<PyInt>() {
            if let Ok(v) = i.extract::<i64>() {
                return visitor.visit_i64(v);
            }
            return match i.extract::<u64>() {
                Ok(v) => visitor.visit_u64(v),
                Err(_) => Err(StepAside),
            };
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let v = f.value();
            return match v.is_finite() {
                true => visitor.visit_f64(v),
                false => Err(StepAside),
            };
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return visitor.visit_str(&unicode(s)?);
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            if self.too_deep() {
                return Err(StepAside);
            }
            return visitor.visit_map(Entries {
                items: d.iter(),
                value: None,
                depth: self.depth + 1,
            });
        }
        if let Ok(l) = obj.cast::<PyList>() {
            if self.too_deep() {
                return Err(StepAside);
            }
            return visitor.visit_seq(Items {
                items: l.iter(),
                depth: self.depth + 1,
            });
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            if self.too_deep() {
                return Err(StepAside);
            }
            return visitor.visit_seq(Items {
                items: t.iter(),
                depth: self.depth + 1,
            });
        }
        Err(StepAside)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A dict's entries, each value read at `depth`.
struct Entries<'py, I: Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    items: I,
    /// The value of the key just read.
    value: Option<Bound<'py, PyAny>>,
    depth: usize,
}

impl<'de, 'py, I> MapAccess<'de> for Entries<'py, I>
where
    I: Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
{
    type Error = StepAside;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, StepAside> {
        let Some((key, value)) = self.items.next() else {
            return Ok(None);
        };
        let key = key.cast::<PyString>().map_err(|_| StepAside)?;
        let text = unicode(key)?;
        // The JSON library reads a map under its private key as a number:
        // `to_input` keeps it as a map, which the core then refuses.
        if is_reserved(&text) {
            return Err(StepAside);
        }
        self.value = Some(value);
        let de: StrDeserializer<'_, StepAside> = text.as_ref().into_deserializer();
        seed.deserialize(de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, StepAside> {
        let value = self.value.take().ok_or(StepAside)?;
        seed.deserialize(Strict {
            obj: &value,
            depth: self.depth,
        })
    }
}

/// A list's or tuple's items, each read at `depth`.
struct Items<I> {
    items: I,
    depth: usize,
}

impl<'de, 'py, I: Iterator<Item = Bound<'py, PyAny>>> SeqAccess<'de> for Items<I> {
    type Error = StepAside;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, StepAside> {
        match self.items.next() {
            None => Ok(None),
            Some(item) => seed
                .deserialize(Strict {
                    obj: &item,
                    depth: self.depth,
                })
                .map(Some),
        }
    }
}
