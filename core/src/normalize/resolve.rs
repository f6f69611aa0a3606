//! Field resolution, written once for both JSON paths: which entry of an
//! event feeds each canonical field, and what is left as its attributes.
//!
//! The `Value` path ([`normalize`](super::normalize)) reads serde_json's
//! `Map`; the fast path ([`raw_event`](crate::raw_event)) reads what its one
//! pass over the text kept of an object. Both are [`Entries`], and
//! [`resolve`] alone decides the envelope merge, the alias order and the
//! attributes, so the two paths agree by construction; `tests/fast_path.rs`
//! stays as a guard. (The size limit's counts are `limits`'s, for both.)

use serde_json::{Map, Value};

use super::{amount_field, assemble, missing, preview, text_field, timestamp_field, Scalar};
use crate::event::{Event, Reason, ReasonCode};
use crate::rules::{Field, Rules, PAYLOAD};
use crate::window::Window;

/// An input name of the rules: the `rank`th name listed for `field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Alias {
    pub(crate) field: Field,
    pub(crate) rank: usize,
}

impl Alias {
    pub(crate) fn name(self, rules: &Rules) -> &str {
        &rules.aliases(self.field)[self.rank]
    }
}

/// One level of an event object (the top level, or the envelope's payload)
/// as resolution reads it.
pub(crate) trait Entries {
    /// The value under `name`, which is `alias`; a null is present, not
    /// absent (a null in the payload still hides the top level's value).
    ///
    /// A name listed twice for one field may answer `None` at its later
    /// place: its first place was asked first, with the same value.
    fn get(&self, alias: Alias, name: &str) -> Option<Scalar<'_>>;

    /// This level's entries that `keep` keeps, moved or copied into `out`
    /// over any entry of the same name there.
    fn attributes_into(&mut self, keep: &Keep<'_, '_>, rules: &Rules, out: &mut Map<String, Value>);
}

/// Which entries of one level are attributes of the merged event: all but
/// those under the input names that fed a canonical field at that level
/// and, at the top of an envelope, the payload.
pub(crate) struct Keep<'u, 'r> {
    used: &'u [Option<(Alias, &'r str)>; 5],
    payload: bool,
}

impl Keep<'_, '_> {
    /// Whether the entry under `key` is kept.
    pub(crate) fn keeps(&self, key: &str) -> bool {
        let envelope = self.payload && key == PAYLOAD;
        !envelope && !self.used.iter().any(|u| matches!(u, Some((_, n)) if *n == key))
    }

    /// [`Keep::keeps`] for an entry known by its alias (never the payload),
    /// without comparing text. The same answer as for its name, as long as
    /// the entry of a name listed twice for a field is known by its first
    /// place: [`resolve`] asks that place first, so that is the one used.
    pub(crate) fn keeps_alias(&self, alias: Alias) -> bool {
        !self.used.iter().any(|u| matches!(u, Some((a, _)) if *a == alias))
    }
}

/// The attribute that keeps the top level's entries of an envelope that
/// its payload gives other values under the same names.
pub const ENVELOPE_ATTRIBUTE: &str = "envelope";

/// Normalise the event whose top level is `top` and whose envelope payload,
/// if it is one, is `payload`.
///
/// Each canonical field takes, at each level, its first input name present
/// and not null. Given at one level, that is its value; given at both, the
/// two must agree once normalised, or the event is rejected
/// (`conflicting_fields`): a gateway that wraps an untrusted payload with
/// an authenticated `source` cannot be overridden from inside the payload.
/// Other entries are attributes, the payload's under their names; a top
/// level entry whose name the payload also has, with another value, is
/// kept under [`ENVELOPE_ATTRIBUTE`], never dropped. An accepted event's
/// attributes are taken from the entries only then.
pub(crate) fn resolve<E: Entries>(
    top: &mut E,
    mut payload: Option<&mut E>,
    rules: &Rules,
    window: &Window,
) -> Result<Event, Vec<Reason>> {
    let mut used_top: [Option<(Alias, &str)>; 5] = [None; 5];
    let mut used_payload: [Option<(Alias, &str)>; 5] = [None; 5];
    let parts = {
        let (top, payload) = (&*top, payload.as_deref());
        let mut found = |field: Field| {
            let inner = payload.and_then(|p| first(p, field, rules));
            let outer = first(top, field, rules);
            used_payload[field as usize] = inner.map(|(alias, name, _)| (alias, name));
            used_top[field as usize] = outer.map(|(alias, name, _)| (alias, name));
            Found {
                inner: inner.map(|(_, name, v)| (name, v)),
                outer: outer.map(|(_, name, v)| (name, v)),
            }
        };
        let mut reasons = Vec::new();
        let client = found(Field::ClientId);
        let client_id = if window.client().is_some() && client.inner.is_none() && client.outer.is_none() {
            // Named nowhere by a caller that writes as one client: the
            // caller's (assemble fills it in), never the rules' default,
            // which would be another client's name.
            reasons.push(missing(Field::ClientId, rules));
            None
        } else {
            client.read(Field::ClientId, &mut reasons, |f, r| {
                text_field(Field::ClientId, f, rules, r)
            })
        };
        let metric = found(Field::Metric).read(Field::Metric, &mut reasons, |f, r| {
            text_field(Field::Metric, f, rules, r)
        });
        let amount = found(Field::Amount).read(Field::Amount, &mut reasons, |f, r| amount_field(f, rules, r));
        let timestamp =
            found(Field::Timestamp).read(Field::Timestamp, &mut reasons, |f, r| timestamp_field(f, rules, r));
        let event_id = found(Field::EventId).read(Field::EventId, &mut reasons, |f, r| {
            text_field(Field::EventId, f, rules, r)
        });
        ((client_id, metric, amount, timestamp, event_id), reasons)
    };
    let attributes = || {
        let mut out = Map::new();
        let Some(p) = payload.as_deref_mut() else {
            top.attributes_into(
                &Keep {
                    used: &used_top,
                    payload: false,
                },
                rules,
                &mut out,
            );
            return Ok(out);
        };
        p.attributes_into(
            &Keep {
                used: &used_payload,
                payload: false,
            },
            rules,
            &mut out,
        );
        let mut outer = Map::new();
        top.attributes_into(
            &Keep {
                used: &used_top,
                payload: true,
            },
            rules,
            &mut outer,
        );
        let mut shadowed = Map::new();
        for (name, value) in outer {
            match out.get(&name) {
                None => {
                    out.insert(name, value);
                }
                Some(inner) if *inner == value => {}
                Some(_) => {
                    shadowed.insert(name, value);
                }
            }
        }
        if shadowed.is_empty() {
            return Ok(out);
        }
        if out.contains_key(ENVELOPE_ATTRIBUTE) {
            return Err(Reason::new(
                ReasonCode::ConflictingFields,
                "",
                format!(
                    "the envelope and its payload give {} different values, and the attribute {ENVELOPE_ATTRIBUTE:?} that keeps the envelope's is already taken",
                    names(&shadowed)
                ),
            ));
        }
        out.insert(ENVELOPE_ATTRIBUTE.to_string(), Value::Object(shadowed));
        Ok(out)
    };
    assemble(parts.0, attributes, rules, window, parts.1)
}

/// The client an event names, read as [`resolve`] reads it: the first of
/// its input names present at each level, both levels agreeing once
/// normalised, and a client id's checks. `None` when it names none (a
/// default of the rules is not a client it names) or none that reads.
pub(crate) fn named_client<E: Entries>(top: &E, payload: Option<&E>, rules: &Rules) -> Option<String> {
    let field = Field::ClientId;
    let found = Found {
        inner: payload
            .and_then(|p| first(p, field, rules))
            .map(|(_, name, v)| (name, v)),
        outer: first(top, field, rules).map(|(_, name, v)| (name, v)),
    };
    if found.inner.is_none() && found.outer.is_none() {
        return None;
    }
    found.read(field, &mut Vec::new(), |f, r| text_field(field, f, rules, r))
}

/// The first of `field`'s input names present at `level` and not null.
fn first<'l, 'r, E: Entries>(level: &'l E, field: Field, rules: &'r Rules) -> Option<(Alias, &'r str, Scalar<'l>)> {
    rules.aliases(field).iter().enumerate().find_map(|(rank, name)| {
        let alias = Alias { field, rank };
        level
            .get(alias, name)
            .filter(|v| !matches!(v, Scalar::Null))
            .map(|v| (alias, name.as_str(), v))
    })
}

fn names(map: &Map<String, Value>) -> String {
    let shown: Vec<String> = map.keys().take(5).map(|k| format!("{k:?}")).collect();
    let more = map.len().saturating_sub(shown.len());
    match more {
        0 => shown.join(", "),
        n => format!("{} and {n} more", shown.join(", ")),
    }
}

/// What one canonical field was given as at each level of an event: in the
/// payload (`inner`) and at the top (`outer`, or the whole of a flat event).
struct Found<'a> {
    inner: Option<(&'a str, Scalar<'a>)>,
    outer: Option<(&'a str, Scalar<'a>)>,
}

impl Found<'_> {
    /// The field's value through `read`: from the one level that gives it,
    /// or from both when they agree.
    fn read<T: PartialEq>(
        self,
        field: Field,
        reasons: &mut Vec<Reason>,
        read: impl Fn(Option<(&str, Scalar)>, &mut Vec<Reason>) -> Option<T>,
    ) -> Option<T> {
        let (Some(inner), Some(outer)) = (self.inner, self.outer) else {
            return read(self.inner.or(self.outer), reasons);
        };
        let mut own = Vec::new();
        let a = read(Some(inner), &mut own);
        let b = read(Some(outer), &mut own);
        match (a, b) {
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(_), Some(_)) => {
                reasons.push(Reason::new(
                    ReasonCode::ConflictingFields,
                    field.as_str(),
                    format!(
                        "{field} is given twice with different values: {} in the payload and {} in the envelope",
                        preview(inner.1),
                        preview(outer.1),
                    ),
                ));
                None
            }
            _ => {
                reasons.extend(own);
                None
            }
        }
    }
}

/// The `Value` path's levels: the event's object and its payload object.
impl Entries for &Map<String, Value> {
    fn get(&self, _: Alias, name: &str) -> Option<Scalar<'_>> {
        Map::get(self, name).map(Scalar::from)
    }

    fn attributes_into(&mut self, keep: &Keep<'_, '_>, _: &Rules, out: &mut Map<String, Value>) {
        let kept = self.iter().filter(|(k, _)| keep.keeps(k));
        out.extend(kept.map(|(k, v)| (k.clone(), v.clone())));
    }
}
