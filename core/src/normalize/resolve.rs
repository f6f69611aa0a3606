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

use super::{amount_field, assemble, text_field, timestamp_field, Scalar};
use crate::event::{Event, Reason};
use crate::rules::{Field, Rules, PAYLOAD};

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
/// those under the input names that fed a canonical field (at either level:
/// the payload's value hides the top level's) and, at the top of an
/// envelope, the payload.
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

/// Normalise the event whose top level is `top` and whose envelope payload,
/// if it is one, is `payload`. The payload's entries win over the top
/// level's; each field takes its first input name present and not null; an
/// accepted event's attributes are taken from the entries only then.
pub(crate) fn resolve<E: Entries>(
    top: &mut E,
    mut payload: Option<&mut E>,
    rules: &Rules,
) -> Result<Event, Vec<Reason>> {
    let mut used: [Option<(Alias, &str)>; 5] = [None; 5];
    let parts = {
        let (top, payload) = (&*top, payload.as_deref());
        let mut found = |field: Field| {
            let hit = rules.aliases(field).iter().enumerate().find_map(|(rank, name)| {
                let alias = Alias { field, rank };
                payload
                    .and_then(|p| p.get(alias, name))
                    .or_else(|| top.get(alias, name))
                    .filter(|v| !matches!(v, Scalar::Null))
                    .map(|v| (alias, name.as_str(), v))
            });
            used[field as usize] = hit.map(|(alias, name, _)| (alias, name));
            hit.map(|(_, name, v)| (name, v))
        };
        let mut reasons = Vec::new();
        let client_id = text_field(Field::ClientId, found(Field::ClientId), rules, &mut reasons);
        let metric = text_field(Field::Metric, found(Field::Metric), rules, &mut reasons);
        let amount = amount_field(found(Field::Amount), rules, &mut reasons);
        let timestamp = timestamp_field(found(Field::Timestamp), rules, &mut reasons);
        let event_id = text_field(Field::EventId, found(Field::EventId), rules, &mut reasons);
        ((client_id, metric, amount, timestamp, event_id), reasons)
    };
    let attributes = || {
        let mut out = Map::new();
        let envelope = payload.is_some();
        let keep = |payload| Keep { used: &used, payload };
        top.attributes_into(&keep(envelope), rules, &mut out);
        // After the top level's: the payload's entries win.
        if let Some(p) = payload.as_deref_mut() {
            p.attributes_into(&keep(false), rules, &mut out);
        }
        out
    };
    assemble(parts.0, attributes, rules, parts.1)
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
