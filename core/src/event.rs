//! The canonical event, the outcome of a submission, and rejection reasons.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::timestamp::Timestamp;

/// One event in canonical form: what normalisation produces and storage keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The client that sent it, in the one form of names
    /// ([`identity`](mod@crate::identity)); never empty.
    pub client_id: String,
    /// What it measures, cased by the rules (lower case by default) and in
    /// the one form of names; the rules' default (`unknown` in the built-in
    /// rules) when the input has none.
    pub metric: String,
    /// Finite; `-0.0` is stored as `0.0`.
    pub amount: f64,
    /// When it happened: an instant in UTC, to the millisecond.
    pub timestamp: Timestamp,
    /// Every input field that fed no canonical field. Never part of the key.
    pub attributes: Map<String, Value>,
    /// The client's own id for the event, in the one form of names; `None`
    /// when the input has none (it is never defaulted).
    pub event_id: Option<String>,
}

impl Event {
    /// Whether `other` has the same canonical fields: the same event, sent
    /// again (attributes may differ between retries).
    pub fn same_event(&self, other: &Event) -> bool {
        self.client_id == other.client_id
            && self.metric == other.metric
            && self.amount.to_bits() == other.amount.to_bits()
            && self.timestamp == other.timestamp
            && self.event_id == other.event_id
    }
}

/// An event as stored, with its id and when it arrived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// The id the store gave it, unique in the store: the `id` of its outcomes.
    pub id: i64,
    /// The event itself, in canonical form.
    #[serde(flatten)]
    pub event: Event,
    /// When this store received it (for a copy, when it was copied).
    pub received_at: Timestamp,
    /// The version of the rules it was stored under
    /// ([`Ingestor::rules_version`](crate::Ingestor::rules_version)).
    pub rules_version: i64,
}

/// The answer to one submitted event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The event was stored. `id` is `None` only in an answer from
    /// [`Ingestor::check`](crate::Ingestor::check), which stores nothing.
    Accepted {
        /// The stored event's id; `None` from a dry run.
        id: Option<i64>,
        /// The event as normalised and stored.
        event: Event,
    },
    /// The same event is already stored under `id`; nothing changed.
    /// `event` is the stored event.
    Duplicate {
        /// The stored event's id.
        id: i64,
        /// The stored event.
        event: Event,
    },
    /// The event's key matches the event stored under `id`, but their
    /// canonical fields differ: one `conflict` reason per differing field,
    /// with the stored and the sent value. Nothing changed; `event` is the
    /// stored event.
    Conflict {
        /// The id of the stored event whose key it matches.
        id: i64,
        /// The stored event.
        event: Event,
        /// One [`ReasonCode::Conflict`] reason per canonical field that differs.
        reasons: Vec<Reason>,
    },
    /// The event failed the rules; every reason is listed.
    Rejected {
        /// Every reason it was rejected.
        reasons: Vec<Reason>,
    },
}

impl Outcome {
    /// `"accepted"`, `"duplicate"`, `"conflict"` or `"rejected"`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Conflict { .. } => "conflict",
            Outcome::Rejected { .. } => "rejected",
        }
    }

    /// The stored event's id, unless rejected (or accepted by a dry run).
    pub fn id(&self) -> Option<i64> {
        match self {
            Outcome::Accepted { id, .. } => *id,
            Outcome::Duplicate { id, .. } | Outcome::Conflict { id, .. } => Some(*id),
            Outcome::Rejected { .. } => None,
        }
    }

    /// The event: the one stored by this call when accepted, the one stored
    /// before when a duplicate or a conflict; none when rejected.
    pub fn event(&self) -> Option<&Event> {
        match self {
            Outcome::Accepted { event, .. } | Outcome::Duplicate { event, .. } | Outcome::Conflict { event, .. } => {
                Some(event)
            }
            Outcome::Rejected { .. } => None,
        }
    }

    /// The reasons of a rejection or a conflict; empty otherwise.
    pub fn reasons(&self) -> &[Reason] {
        match self {
            Outcome::Rejected { reasons } | Outcome::Conflict { reasons, .. } => reasons,
            _ => &[],
        }
    }

    /// What storing `sent` answers when its key is already stored as
    /// `stored` under `id`: a duplicate when their canonical fields agree,
    /// else a conflict naming each field that differs.
    pub(crate) fn repeat(id: i64, stored: Event, sent: &Event) -> Outcome {
        // Retries are most repeats: answered without building any text.
        if stored.same_event(sent) {
            return Outcome::Duplicate { id, event: stored };
        }
        let mut reasons = Vec::new();
        let mut differ = |field: &str, a: String, b: String| {
            if a != b {
                reasons.push(Reason::new(
                    ReasonCode::Conflict,
                    field,
                    format!("{field} differs from the stored event {id}: stored {a}, sent {b}"),
                ));
            }
        };
        let text = |s: &str| format!("{s:?}");
        let id_text = |s: &Option<String>| s.as_deref().map_or_else(|| "none".to_string(), text);
        differ("client_id", text(&stored.client_id), text(&sent.client_id));
        differ("metric", text(&stored.metric), text(&sent.metric));
        differ("amount", stored.amount.to_string(), sent.amount.to_string());
        differ("timestamp", stored.timestamp.to_string(), sent.timestamp.to_string());
        differ("event_id", id_text(&stored.event_id), id_text(&sent.event_id));
        debug_assert!(!reasons.is_empty(), "events that differ differ in a field");
        Outcome::Conflict {
            id,
            event: stored,
            reasons,
        }
    }
}

/// Outcomes serialise with the same four fields whatever the status:
/// `{"status", "id", "event", "reasons"}`, the shape every binding shows.
impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Outcome", 4)?;
        st.serialize_field("status", self.status())?;
        st.serialize_field("id", &self.id())?;
        st.serialize_field("event", &self.event())?;
        st.serialize_field("reasons", self.reasons())?;
        st.end()
    }
}

/// Why an event was rejected, or a field a conflict differs in: a stable
/// code, the canonical field it concerns (`payload` for an envelope whose
/// payload is not an object, empty for the event as a whole), and a message
/// for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// What is wrong, as a stable code.
    pub code: ReasonCode,
    /// The canonical field concerned (`"amount"`), `"payload"` for a
    /// payload that is not an object, or empty for the event as a whole.
    pub field: String,
    /// What is wrong, in words for people; programs should match on `code`.
    pub message: String,
}

impl Reason {
    pub(crate) fn new(code: ReasonCode, field: &str, message: impl Into<String>) -> Self {
        Reason {
            code,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Why a binding could not read part of an item as JSON, for
    /// [`Input::Unreadable`](crate::Input::Unreadable): `what` is found at
    /// `path` (`payload.tags[2]`; empty for the item itself). One wording
    /// for every binding.
    pub fn unreadable(code: ReasonCode, path: &str, what: &str) -> Self {
        // Untrusted input names the place: a message stays short whatever it is.
        let (path, what) = (crate::limits::shorten(path, 200), crate::limits::shorten(what, 200));
        let at = if path.is_empty() {
            String::new()
        } else {
            format!(" at {path}")
        };
        let why = match code {
            ReasonCode::NotFinite => "JSON has no NaN or infinity, and a total cannot hold one",
            ReasonCode::InvalidText => "it is not Unicode text (a lone surrogate?) and cannot be stored",
            ReasonCode::UnsupportedType => "JSON has no form for it",
            ReasonCode::TooDeep => "the event is nested deeper than the limit",
            _ => "it cannot be read as JSON",
        };
        Reason::new(code, "", format!("{what}{at}: {why}"))
    }
}

/// Machine-readable rejection codes. Stable: new codes are only added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The input is not a JSON object (or its `payload` is not one).
    NotAnObject,
    /// A required field is absent (or null).
    MissingField,
    /// A field has a JSON type that cannot be converted (a bool amount, an object metric).
    BadType,
    /// A field has the right type but an unusable value (empty text, a non-numeric or non-finite amount).
    BadValue,
    /// A timestamp in none of the accepted forms.
    BadTimestamp,
    /// A value outside its allowed range (`amount_range`, the fixed bound
    /// ±[`MAX_AMOUNT`](crate::normalize::MAX_AMOUNT), years 0001 to 9999).
    OutOfRange,
    /// Text longer than `max_text_len`.
    TooLong,
    /// A metric not in `allowed_metrics`.
    NotAllowed,
    /// A number that no double can hold (a Python NaN or infinity, the JSON
    /// text `1e400`) anywhere in the event: stored, it would make a listing
    /// invalid JSON or read back as infinity.
    NotFinite,
    /// Text that is not Unicode (a lone surrogate, `"\ud800"`).
    InvalidText,
    /// The event's JSON text is over the byte limit.
    TooLarge,
    /// The event is nested deeper than [`MAX_DEPTH`](crate::limits::MAX_DEPTH).
    TooDeep,
    /// A key that starts with `$serde_json::private::` (see
    /// [`RESERVED_KEY_PREFIX`](crate::limits::RESERVED_KEY_PREFIX)).
    ReservedKey,
    /// A value of a type JSON has no form for (bytes, a set, a dict key that
    /// is not text).
    UnsupportedType,
    /// A canonical field given at the top of an envelope and in its payload
    /// with different values, or an envelope attribute that cannot be kept.
    ConflictingFields,
    /// The event's key matches a stored event whose canonical fields differ:
    /// one reason per differing field, in [`Outcome::Conflict`].
    Conflict,
    /// The event's time is before the acceptance window: older than the
    /// rules' `max_age`, or before the time the store was pruned to.
    TooOld,
    /// The event's time is more than the rules' `max_future` ahead of now.
    InFuture,
}

impl ReasonCode {
    /// The stable snake_case name (`"missing_field"`), as outcomes show it
    /// in JSON and the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NotAnObject => "not_an_object",
            ReasonCode::MissingField => "missing_field",
            ReasonCode::BadType => "bad_type",
            ReasonCode::BadValue => "bad_value",
            ReasonCode::BadTimestamp => "bad_timestamp",
            ReasonCode::OutOfRange => "out_of_range",
            ReasonCode::TooLong => "too_long",
            ReasonCode::NotAllowed => "not_allowed",
            ReasonCode::NotFinite => "not_finite",
            ReasonCode::InvalidText => "invalid_text",
            ReasonCode::TooLarge => "too_large",
            ReasonCode::TooDeep => "too_deep",
            ReasonCode::ReservedKey => "reserved_key",
            ReasonCode::UnsupportedType => "unsupported_type",
            ReasonCode::ConflictingFields => "conflicting_fields",
            ReasonCode::Conflict => "conflict",
            ReasonCode::TooOld => "too_old",
            ReasonCode::InFuture => "in_future",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored rejection (dead letter): the raw input exactly as received,
/// why it was rejected, and under which rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedEvent {
    /// The id the dead-letter store gave it.
    pub id: i64,
    /// The kept copy of the input: the input itself when `raw_exact` is
    /// true, else a stand-in (see `raw_exact`).
    pub raw: Value,
    /// Why it was rejected, under the rules of `rules_version`.
    pub reasons: Vec<Reason>,
    /// The version of the rules that last rejected it.
    pub rules_version: i64,
    /// When it was first received.
    pub received_at: Timestamp,
    /// How many times this same input was submitted and rejected.
    pub attempts: i64,
    /// The size of the input's compact JSON text, whole.
    pub raw_bytes: u64,
    /// True when `raw` is the input exactly. False when it is a JSON string
    /// of the input's text, whole or cut to the copy's cap (the input was
    /// over the cap, or could not be kept as a value that reads back: a
    /// lone surrogate, nesting too deep, a reserved key, a number no double
    /// holds), or the closest JSON to input JSON cannot hold (a Python `nan`
    /// as null).
    /// Such a row is never decided again by `reprocess_rejected`.
    pub raw_exact: bool,
    /// The client it belongs to: a scoped caller's (an API key's client),
    /// or the client the input names when it reads as a client id; `None`
    /// when neither is known, and for every dead letter stored before
    /// clients were recorded (before schema migration 13). Only an
    /// unscoped (admin) caller lists those; [`crate::Scoped::rejected`]
    /// lists its client's only.
    pub client_id: Option<String>,
}
