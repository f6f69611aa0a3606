//! Normalisation: raw input to canonical [`Event`], or every reason it fails.
//!
//! Pure functions of the input and the rules: no I/O, no clock, so the same
//! input under the same rules always gives the same answer (which is what
//! makes retries safe to deduplicate).

use serde_json::{Map, Number, Value};

use crate::event::{Event, Reason, ReasonCode};
use crate::rules::{Field, Rules, PAYLOAD};
use crate::timestamp::{Timestamp, TimestampError};
use crate::window::Window;

mod resolve;

use resolve::named_client;
pub use resolve::ENVELOPE_ATTRIBUTE;
pub(crate) use resolve::{resolve, Alias, Entries, Keep};

/// Normalise one raw event under `rules`.
///
/// The input is either a flat object or the envelope
/// `{"source": ..., "payload": {...}}`. A canonical field given at both
/// levels must have one value once normalised (else `conflicting_fields`);
/// other fields of both levels are the attributes, the payload's under
/// their names and a top-level one the payload gives another value under
/// [`ENVELOPE_ATTRIBUTE`].
///
/// ```
/// use ingest_core::{normalize, Rules};
/// use serde_json::json;
/// let rules = Rules::builtin();
/// let e = normalize(&json!({"source": "a", "payload": {"amt": " 12.5 ", "ts": "2024-01-02"}}), &rules).unwrap();
/// assert_eq!((e.client_id.as_str(), e.metric.as_str(), e.amount), ("a", "unknown", 12.5));
/// let reasons = normalize(&json!({"source": "a", "value": true}), &rules).unwrap_err();
/// assert_eq!(reasons.len(), 2); // amount has a bad type, timestamp is missing
/// ```
pub fn normalize(raw: &Value, rules: &Rules) -> Result<Event, Vec<Reason>> {
    normalize_within(raw, rules, &rules.window(Timestamp::now(), None))
}

/// [`normalize`] with the acceptance window decided by the caller (once for
/// a whole call, with the store's prune horizon).
pub(crate) fn normalize_within(raw: &Value, rules: &Rules, window: &Window) -> Result<Event, Vec<Reason>> {
    let Some(top) = raw.as_object() else {
        return Err(vec![Reason::new(
            ReasonCode::NotAnObject,
            "",
            format!("an event must be a JSON object, not {}", type_name(raw)),
        )]);
    };
    let mut payload = match top.get(PAYLOAD) {
        None => None,
        Some(Value::Object(payload)) => Some(payload),
        Some(other) => {
            return Err(vec![Reason::new(
                ReasonCode::NotAnObject,
                PAYLOAD,
                format!("payload must be a JSON object, not {}", type_name(other)),
            )])
        }
    };
    resolve(&mut { top }, payload.as_mut(), rules, window)
}

/// Typed input for callers that already hold the canonical fields, such as
/// the C fast path: no JSON, same rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields<'a> {
    /// The client, as the JSON field `client_id` would give it.
    pub client_id: &'a str,
    /// The metric; `None` is read as an absent field: the rules' default,
    /// or `missing_field` when there is none or the metric is required.
    pub metric: Option<&'a str>,
    /// The amount; a NaN or infinity is rejected (`bad_value`).
    pub amount: f64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The client's own id for the event; `None` when it has none.
    pub event_id: Option<&'a str>,
}

impl Fields<'_> {
    /// The same event as a raw JSON object under the canonical names: what is
    /// kept when it is rejected, and what [`normalize`] is equivalent on.
    pub fn to_raw(&self) -> Value {
        let mut m = Map::new();
        m.insert("client_id".into(), Value::from(self.client_id));
        if let Some(metric) = self.metric {
            m.insert("metric".into(), Value::from(metric));
        }
        // serde_json has no NaN: a non-finite amount is kept as null, and is
        // rejected as missing, which is what the JSON path would say of it too.
        m.insert(
            "amount".into(),
            serde_json::Number::from_f64(self.amount).map_or(Value::Null, Value::Number),
        );
        m.insert("timestamp".into(), Value::from(self.timestamp_ms));
        if let Some(id) = self.event_id {
            m.insert("event_id".into(), Value::from(id));
        }
        Value::Object(m)
    }
}

/// Normalise typed fields: the same checks as [`normalize`] on [`Fields::to_raw`],
/// except that the timestamp is always milliseconds (no seconds guess).
pub fn normalize_fields(f: &Fields<'_>, rules: &Rules) -> Result<Event, Vec<Reason>> {
    normalize_fields_within(f, rules, &rules.window(Timestamp::now(), None))
}

/// [`normalize_fields`] with the caller's acceptance window.
pub(crate) fn normalize_fields_within(f: &Fields<'_>, rules: &Rules, window: &Window) -> Result<Event, Vec<Reason>> {
    let mut reasons = Vec::new();
    let text = |field: Field, v: Option<&str>, reasons: &mut Vec<Reason>| {
        text_field(field, v.map(|v| (field.as_str(), Scalar::Text(v))), rules, reasons)
    };
    let client_id = text(Field::ClientId, Some(f.client_id), &mut reasons);
    let metric = text(Field::Metric, f.metric, &mut reasons);
    let event_id = text(Field::EventId, f.event_id, &mut reasons);
    let amount = if f.amount.is_finite() {
        check_amount(f.amount, rules, &mut reasons)
    } else {
        reasons.push(Reason::new(ReasonCode::BadValue, "amount", "amount must be finite"));
        None
    };
    let timestamp = match Timestamp::from_millis(f.timestamp_ms) {
        Some(t) => Some(t),
        None => {
            reasons.push(out_of_range_time());
            None
        }
    };
    assemble(
        (client_id, metric, amount, timestamp, event_id),
        || Ok(Map::new()),
        rules,
        window,
        reasons,
    )
}

/// A field's value as the checks below read it: a view of a
/// `serde_json::Value`, or of what the fast parser
/// ([`raw_event`](crate::raw_event)) kept of an event's text, so that both
/// paths go through one set of rules and give one answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(&'a Number),
    Text(&'a str),
    /// A list or an object: never a canonical field's value.
    Compound(&'a Value),
}

impl<'a> From<&'a Value> for Scalar<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n),
            Value::String(s) => Scalar::Text(s),
            Value::Array(_) | Value::Object(_) => Scalar::Compound(v),
        }
    }
}

impl Scalar<'_> {
    fn type_name(self) -> &'static str {
        match self {
            Scalar::Compound(v) => type_name(v),
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Number(_) => "a number",
            Scalar::Text(_) => "text",
        }
    }
}

/// The canonical fields as each was read, `None` where it failed.
type Parts = (
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<Timestamp>,
    Option<String>,
);

/// The checks on the event as a whole (the metric against `allowed_metrics`),
/// then the event, or every reason it fails: one place for the JSON paths
/// and the typed path. `attributes` is called only for an accepted event.
fn assemble(
    (client_id, metric, amount, timestamp, event_id): Parts,
    attributes: impl FnOnce() -> Result<Map<String, Value>, Reason>,
    rules: &Rules,
    window: &Window,
    mut reasons: Vec<Reason>,
) -> Result<Event, Vec<Reason>> {
    let client_id = match (window.client(), client_id) {
        (None, read) => read,
        (Some(own), Some(named)) if named != own => {
            reasons.push(other_client(&format!("{named:?}"), own));
            Some(named)
        }
        (Some(own), None) => {
            // Named nowhere: the caller's own. Named twice with two values
            // (an envelope and its payload): one of them is another client.
            // Named but unreadable: its reason stands.
            let on_client = |r: &Reason, code| r.code == code && r.field == Field::ClientId.as_str();
            let before = reasons.len();
            reasons.retain(|r| !on_client(r, ReasonCode::MissingField));
            if reasons.len() < before {
                Some(own.to_string())
            } else {
                if reasons.iter().any(|r| on_client(r, ReasonCode::ConflictingFields)) {
                    reasons.push(other_client("(two different clients)", own));
                }
                None
            }
        }
        (Some(_), read) => read,
    };
    if let Some(outside) = timestamp.and_then(|t| window.check(t)) {
        reasons.push(outside);
    }
    if let (Some(m), Some(allowed)) = (&metric, rules.allowed_metrics()) {
        if !allowed.contains(m) {
            reasons.push(Reason::new(
                ReasonCode::NotAllowed,
                "metric",
                format!("metric {m:?} is not one of the allowed metrics"),
            ));
        }
    }
    match (client_id, metric, amount, timestamp) {
        (Some(client_id), Some(metric), Some(amount), Some(timestamp)) if reasons.is_empty() => Ok(Event {
            client_id,
            metric,
            amount,
            timestamp,
            attributes: attributes().map_err(|r| vec![r])?,
            event_id,
        }),
        _ => Err(reasons),
    }
}

/// `client_id`, `metric` or `event_id`: text, or an integer written as text.
fn text_field(field: Field, found: Option<(&str, Scalar)>, rules: &Rules, reasons: &mut Vec<Reason>) -> Option<String> {
    let name = field.as_str();
    let Some((from, value)) = found else {
        return absent_text(field, rules, reasons);
    };
    let text = match value {
        // Cased before the length check: lower-casing can lengthen text
        // ("İ" is two characters in lower case), and the limit is on what is stored.
        Scalar::Text(s) if field == Field::Metric => rules.normalize_metric(s),
        Scalar::Text(s) => crate::identity::identity(s).into_owned(),
        Scalar::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        other => {
            reasons.push(Reason::new(
                ReasonCode::BadType,
                name,
                format!(
                    "{name} (from {from:?}) must be text or an integer, not {}",
                    other.type_name()
                ),
            ));
            return None;
        }
    };
    if text.is_empty() {
        reasons.push(Reason::new(
            ReasonCode::BadValue,
            name,
            format!("{name} (from {from:?}) is empty"),
        ));
        return None;
    }
    // A NUL cannot be stored by every backend (PostgreSQL's text cannot
    // hold it), so it is refused everywhere rather than differently.
    if text.contains('\0') {
        reasons.push(Reason::new(
            ReasonCode::BadValue,
            name,
            format!("{name} (from {from:?}) contains a NUL character (U+0000)"),
        ));
        return None;
    }
    let len = text.chars().count();
    if len > rules.max_text_len() {
        reasons.push(Reason::new(
            ReasonCode::TooLong,
            name,
            format!("{name} is {len} characters long; the limit is {}", rules.max_text_len()),
        ));
        return None;
    }
    Some(text)
}

fn absent_text(field: Field, rules: &Rules, reasons: &mut Vec<Reason>) -> Option<String> {
    if !rules.is_required(field) {
        if let Some(d) = rules.default_text(field) {
            return Some(d.to_string());
        }
        if field == Field::EventId {
            return None;
        }
    }
    reasons.push(missing(field, rules));
    None
}

fn amount_field(found: Option<(&str, Scalar)>, rules: &Rules, reasons: &mut Vec<Reason>) -> Option<f64> {
    let Some((from, value)) = found else {
        match rules.default_amount() {
            Some(d) if !rules.is_required(Field::Amount) => return Some(d),
            _ => {
                reasons.push(missing(Field::Amount, rules));
                return None;
            }
        }
    };
    let parsed = match value {
        Scalar::Number(n) => n.as_f64(),
        Scalar::Text(s) => parse_amount_text(s),
        other => {
            reasons.push(Reason::new(
                ReasonCode::BadType,
                "amount",
                format!(
                    "amount (from {from:?}) must be a number or numeric text, not {}",
                    other.type_name()
                ),
            ));
            return None;
        }
    };
    match parsed {
        Some(a) if a.is_finite() => check_amount(a, rules, reasons),
        _ => {
            reasons.push(Reason::new(
                ReasonCode::BadValue,
                "amount",
                format!("amount (from {from:?}) is not a finite number: {}", preview(value)),
            ));
            None
        }
    }
}

/// Decimal text as JSON writes numbers, with surrounding space allowed:
/// `f64::from_str` alone would also take `inf`, `NaN` and `infinity`.
fn parse_amount_text(s: &str) -> Option<f64> {
    let t = s.trim();
    let ok = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && t.bytes().any(|b| b.is_ascii_digit());
    ok.then(|| t.parse::<f64>().ok()).flatten()
}

/// The largest amount accepted, whatever the rules say: fewer than 2^63
/// such amounts (a store's count is a 64-bit integer) add up to less than
/// the largest f64, so no total, exact as it is kept, is beyond what an
/// answer can show.
pub const MAX_AMOUNT: f64 = 1e289;

fn check_amount(a: f64, rules: &Rules, reasons: &mut Vec<Reason>) -> Option<f64> {
    // -0.0 and 0.0 are one amount: one key, one way to show it.
    let a = if a == 0.0 { 0.0 } else { a };
    if a.abs() > MAX_AMOUNT {
        reasons.push(Reason::new(
            ReasonCode::OutOfRange,
            "amount",
            format!("amount {a:e} is beyond ±{MAX_AMOUNT:e}, the largest whose totals stay exact and finite"),
        ));
        return None;
    }
    if let Some((lo, hi)) = rules.amount_range() {
        if !(lo..=hi).contains(&a) {
            reasons.push(Reason::new(
                ReasonCode::OutOfRange,
                "amount",
                format!("amount {a} is outside the allowed range [{lo}, {hi}]"),
            ));
            return None;
        }
    }
    Some(a)
}

fn timestamp_field(found: Option<(&str, Scalar)>, rules: &Rules, reasons: &mut Vec<Reason>) -> Option<Timestamp> {
    let Some((from, value)) = found else {
        reasons.push(missing(Field::Timestamp, rules));
        return None;
    };
    let parsed = match value {
        Scalar::Text(s) => Timestamp::parse(s),
        // The number's own digits (serde_json keeps them as sent).
        Scalar::Number(n) => Timestamp::from_epoch_decimal(n.as_str()),
        other => {
            reasons.push(Reason::new(
                ReasonCode::BadType,
                "timestamp",
                format!(
                    "timestamp (from {from:?}) must be text or an epoch number, not {}",
                    other.type_name()
                ),
            ));
            return None;
        }
    };
    match parsed {
        Ok(t) => Some(t),
        Err(TimestampError::OutOfRange) => {
            reasons.push(out_of_range_time());
            None
        }
        Err(TimestampError::LeapSecond) => {
            reasons.push(Reason::new(
                ReasonCode::BadTimestamp,
                "timestamp",
                format!(
                    "timestamp (from {from:?}) is a leap second (:60), which has no millisecond of its own in UTC: {}; send the instant before or after it",
                    preview(value)
                ),
            ));
            None
        }
        Err(TimestampError::Unparseable) => {
            reasons.push(Reason::new(
                ReasonCode::BadTimestamp,
                "timestamp",
                format!(
                    "timestamp (from {from:?}) is not RFC 3339, a date, or epoch seconds/milliseconds: {}",
                    preview(value)
                ),
            ));
            None
        }
    }
}

fn out_of_range_time() -> Reason {
    Reason::new(
        ReasonCode::OutOfRange,
        "timestamp",
        "timestamp is outside the years 0001 to 9999",
    )
}

/// `client` as a client id the rules accept, in its one form, or the
/// reasons it is not: the check a client named by an event gets, for a
/// client a caller names itself (an API key's).
pub(crate) fn client_id_of(client: &str, rules: &Rules) -> Result<String, Vec<Reason>> {
    let mut reasons = Vec::new();
    let field = Field::ClientId;
    text_field(field, Some((field.as_str(), Scalar::Text(client))), rules, &mut reasons).ok_or(reasons)
}

/// The client a rejected input's dead letter belongs to, which decides who
/// may list it: the caller's, when it writes as one client (an item of its
/// naming another client never gets here: the whole call is refused);
/// else the client `raw` names, when it reads as a client id by the rules
/// an event's client is read by; else none (an admin's to see). `raw` is
/// `None` for input that was never read as a value (text refused unread,
/// or a stand-in for what JSON cannot hold): what it names is not known.
pub(crate) fn dead_letter_client(raw: Option<&Value>, rules: &Rules, window: &Window) -> Option<String> {
    if let Some(own) = window.client() {
        return Some(own.to_string());
    }
    let top = raw?.as_object()?;
    let payload = match top.get(PAYLOAD) {
        None => None,
        Some(Value::Object(payload)) => Some(payload),
        // normalize reads no field of such an event either.
        Some(_) => return None,
    };
    named_client(&top, payload.as_ref(), rules)
}

/// An event of a caller that writes as `own` only, naming another client.
pub(crate) fn other_client(named: &str, own: &str) -> Reason {
    Reason::new(
        ReasonCode::NotAllowed,
        Field::ClientId.as_str(),
        format!("client_id {named} is not this caller's client; it writes as {own:?} only"),
    )
}

/// Whether `r` is [`other_client`]'s reason.
pub(crate) fn is_other_client(r: &Reason) -> bool {
    r.code == ReasonCode::NotAllowed && r.field == Field::ClientId.as_str()
}

fn missing(field: Field, rules: &Rules) -> Reason {
    Reason::new(
        ReasonCode::MissingField,
        field.as_str(),
        format!("{field} is missing (looked for {})", rules.aliases(field).join(", ")),
    )
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of an offending value for a message: untrusted input
/// must not make the message itself huge.
pub(crate) fn preview(v: Scalar) -> String {
    const MAX: usize = 60;
    let (text, quote) = match v {
        Scalar::Text(s) => (std::borrow::Cow::Borrowed(s), true),
        Scalar::Number(n) => (std::borrow::Cow::Owned(n.to_string()), false),
        Scalar::Bool(b) => (std::borrow::Cow::Owned(b.to_string()), false),
        Scalar::Null => (std::borrow::Cow::Borrowed("null"), false),
        Scalar::Compound(v) => (std::borrow::Cow::Owned(v.to_string()), false),
    };
    let cut = crate::limits::shorten(&text, MAX);
    if quote {
        format!("{cut:?}")
    } else {
        cut
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
