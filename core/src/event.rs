//! The canonical event, the outcome of a submission, and rejection reasons.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::timestamp::Timestamp;

/// One event in canonical form: what normalisation produces and storage keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub client_id: String,
    pub metric: String,
    /// Finite; `-0.0` is stored as `0.0`.
    pub amount: f64,
    pub timestamp: Timestamp,
    /// Every input field that fed no canonical field. Never part of the key.
    pub attributes: Map<String, Value>,
    pub event_id: Option<String>,
}

/// An event as stored, with its id and when it arrived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: Event,
    pub received_at: Timestamp,
    pub rules_version: i64,
}

/// The answer to one submitted event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The event was stored. `id` is `None` only in an answer from
    /// [`Ingestor::check`](crate::Ingestor::check), which stores nothing.
    Accepted { id: Option<i64>, event: Event },
    /// An event with the same key is already stored under `id`; nothing changed.
    /// `event` is the submitted event, normalised.
    Duplicate { id: i64, event: Event },
    /// The event failed the rules; every reason is listed.
    Rejected { reasons: Vec<Reason> },
}

impl Outcome {
    /// `"accepted"`, `"duplicate"` or `"rejected"`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Rejected { .. } => "rejected",
        }
    }

    /// The stored event's id, for accepted (when stored) and duplicate.
    pub fn id(&self) -> Option<i64> {
        match self {
            Outcome::Accepted { id, .. } => *id,
            Outcome::Duplicate { id, .. } => Some(*id),
            Outcome::Rejected { .. } => None,
        }
    }

    /// The normalised event, unless rejected.
    pub fn event(&self) -> Option<&Event> {
        match self {
            Outcome::Accepted { event, .. } | Outcome::Duplicate { event, .. } => Some(event),
            Outcome::Rejected { .. } => None,
        }
    }

    /// The reasons of a rejection; empty otherwise.
    pub fn reasons(&self) -> &[Reason] {
        match self {
            Outcome::Rejected { reasons } => reasons,
            _ => &[],
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

/// Why an event was rejected: a stable code, the canonical field it concerns
/// (empty for the event as a whole), and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub field: String,
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
    /// A value outside its allowed range (`amount_range`, years 0001 to 9999).
    OutOfRange,
    /// Text longer than `max_text_len`.
    TooLong,
    /// A metric not in `allowed_metrics`.
    NotAllowed,
}

impl ReasonCode {
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
    pub id: i64,
    pub raw: Value,
    pub reasons: Vec<Reason>,
    /// The version of the rules that last rejected it.
    pub rules_version: i64,
    /// When it was first received.
    pub received_at: Timestamp,
    /// How many times this same input was submitted and rejected.
    pub attempts: i64,
}
