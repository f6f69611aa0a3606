//! The normalisation rules: a JSON document merged over the built-in rules,
//! key by key, and checked as a whole before any event sees it.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::timestamp::Timestamp;
use crate::window::{Age, Window};

/// A field of the canonical event that rules can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `client_id`: who sent the event.
    ClientId,
    /// `metric`: what the event measures.
    Metric,
    /// `amount`: the number that aggregates add up.
    Amount,
    /// `timestamp`: when the event happened.
    Timestamp,
    /// `event_id`: the client's own id for the event.
    EventId,
}

impl Field {
    /// Every field, in the order of the canonical event.
    pub const ALL: [Field; 5] = [
        Field::ClientId,
        Field::Metric,
        Field::Amount,
        Field::Timestamp,
        Field::EventId,
    ];

    /// The canonical name, as in events, reasons and rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::ClientId => "client_id",
            Field::Metric => "metric",
            Field::Amount => "amount",
            Field::Timestamp => "timestamp",
            Field::EventId => "event_id",
        }
    }

    fn parse(name: &str, at: &str) -> Result<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == name).ok_or_else(|| {
            Error::rules(format!(
                "{at}: unknown field {name:?}; expected one of client_id, metric, amount, timestamp, event_id"
            ))
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How metric names are cased after trimming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricCase {
    /// Lower-cased (Unicode lower case): `Sales` and `sales` are one
    /// metric. The default.
    Lower,
    /// Cased as sent: `Sales` and `sales` are two metrics.
    Preserve,
}

/// Effective rules: the built-in rules with a document merged over them.
///
/// ```
/// use ingest_core::Rules;
/// let rules = Rules::from_json(r#"{"aliases": {"amount": ["price"]}, "metric_case": "preserve"}"#).unwrap();
/// assert_eq!(rules.aliases(ingest_core::Field::Amount), ["price"]);
/// let err = Rules::from_json(r#"{"amount_rnage": [0, 1]}"#).unwrap_err();
/// assert!(err.to_string().contains("amount_rnage"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    aliases: [Vec<String>; 5],
    required: Vec<Field>,
    default_client_id: Option<String>,
    default_metric: Option<String>,
    default_amount: Option<f64>,
    metric_case: MetricCase,
    allowed_metrics: Option<BTreeSet<String>>,
    amount_range: Option<(f64, f64)>,
    max_text_len: usize,
    dedup_key: Vec<Field>,
    max_age: Option<Age>,
    max_future: Option<Age>,
}

/// The keys a rules document may have.
const KEYS: [&str; 10] = [
    "aliases",
    "required",
    "defaults",
    "metric_case",
    "allowed_metrics",
    "amount_range",
    "max_text_len",
    "dedup_key",
    "max_age",
    "max_future",
];

/// The envelope's own key: it can never be an alias.
pub(crate) const PAYLOAD: &str = "payload";

impl Default for Rules {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Rules {
    /// The built-in rules of the design document.
    pub fn builtin() -> Self {
        let names = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Rules {
            aliases: [
                names(&["source", "client", "clientId", "client_id", "clientID"]),
                names(&["metric", "name", "event", "type"]),
                names(&["value", "amount", "amt", "val", "count", "qty"]),
                names(&["timestamp", "ts", "time", "date", "datetime", "occurred_at"]),
                names(&["event_id", "eventId", "id", "idempotency_key"]),
            ],
            required: vec![Field::ClientId, Field::Amount, Field::Timestamp],
            default_client_id: None,
            default_metric: Some("unknown".into()),
            default_amount: None,
            metric_case: MetricCase::Lower,
            allowed_metrics: None,
            amount_range: None,
            max_text_len: 256,
            dedup_key: vec![Field::ClientId, Field::Metric, Field::Timestamp, Field::Amount],
            // No window: the design's own examples are from 2024.
            max_age: None,
            max_future: None,
        }
    }

    /// The built-in rules with the JSON document `text` merged over them.
    pub fn from_json(text: &str) -> Result<Self> {
        let doc: Value = serde_json::from_str(text).map_err(|e| Error::rules(format!("not valid JSON: {e}")))?;
        Self::from_value(&doc)
    }

    /// The built-in rules with `doc` merged over them, key by key: a key that
    /// is given replaces the built-in value, except `aliases` and `defaults`,
    /// which are merged per field (a `null` default removes it).
    pub fn from_value(doc: &Value) -> Result<Self> {
        let mut rules = Self::builtin();
        let obj = doc
            .as_object()
            .ok_or_else(|| Error::rules("the rules document must be a JSON object"))?;
        if let Some(key) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(Error::rules(format!(
                "unknown key {key:?}; expected one of {}",
                KEYS.join(", ")
            )));
        }
        if let Some(v) = obj.get("aliases") {
            rules.merge_aliases(v)?;
        }
        if let Some(v) = obj.get("required") {
            rules.required = field_list(v, "required")?;
        }
        if let Some(v) = obj.get("defaults") {
            rules.merge_defaults(v)?;
        }
        if let Some(v) = obj.get("metric_case") {
            rules.metric_case = match v.as_str() {
                Some("lower") => MetricCase::Lower,
                Some("preserve") => MetricCase::Preserve,
                _ => return Err(Error::rules(r#"metric_case: expected "lower" or "preserve""#)),
            };
        }
        if let Some(v) = obj.get("max_text_len") {
            rules.max_text_len = v
                .as_u64()
                .filter(|n| (1..=1_048_576).contains(n))
                .ok_or_else(|| Error::rules("max_text_len: expected an integer from 1 to 1048576"))?
                as usize;
        }
        if let Some(v) = obj.get("allowed_metrics") {
            rules.allowed_metrics = match v {
                Value::Null => None,
                _ => Some(allowed_metrics(v)?),
            };
        }
        if let Some(v) = obj.get("amount_range") {
            rules.amount_range = match v {
                Value::Null => None,
                _ => Some(amount_range(v)?),
            };
        }
        if let Some(v) = obj.get("dedup_key") {
            rules.dedup_key = field_list(v, "dedup_key")?;
            if rules.dedup_key.is_empty() {
                return Err(Error::rules("dedup_key: must name at least one field"));
            }
        }
        if let Some(v) = obj.get("max_age") {
            rules.max_age = Age::from_rules(v, "max_age")?;
        }
        if let Some(v) = obj.get("max_future") {
            rules.max_future = Age::from_rules(v, "max_future")?;
        }
        // Metrics are compared and stored cased: case the default and the
        // allowed names as events' metrics are, then check the limits.
        rules.default_metric = rules.default_metric.as_deref().map(|m| rules.normalize_metric(m));
        rules.default_client_id = rules
            .default_client_id
            .as_deref()
            .map(|c| crate::identity::identity(c).into_owned());
        if let Some(set) = &rules.allowed_metrics {
            rules.allowed_metrics = Some(set.iter().map(|m| rules.normalize_metric(m)).collect());
        }
        rules.check_text_limits()?;
        Ok(rules)
    }

    fn merge_aliases(&mut self, v: &Value) -> Result<()> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::rules("aliases: expected an object of field -> list of input names"))?;
        for (name, list) in obj {
            let at = format!("aliases.{name}");
            let field = Field::parse(name, &at)?;
            let names = string_list(list, &at)?;
            if names.is_empty() {
                return Err(Error::rules(format!("{at}: must list at least one input name")));
            }
            if names.iter().any(|n| n == PAYLOAD) {
                return Err(Error::rules(format!(
                    "{at}: \"payload\" is the envelope's key and cannot be an alias"
                )));
            }
            if let Some(n) = names.iter().find(|n| crate::limits::is_reserved(n)) {
                return Err(Error::rules(format!(
                    "{at}: {n:?} is reserved by the JSON library (events holding it are refused) and cannot be an alias"
                )));
            }
            self.aliases[field.index()] = names;
        }
        // One input name feeding two fields would make the event ambiguous.
        let mut seen: Vec<(&str, Field)> = Vec::new();
        for field in Field::ALL {
            for name in &self.aliases[field.index()] {
                if let Some((_, other)) = seen.iter().find(|(n, _)| n == name) {
                    if *other != field {
                        return Err(Error::rules(format!(
                            "aliases: input name {name:?} is listed for both {other} and {field}"
                        )));
                    }
                }
                seen.push((name, field));
            }
        }
        Ok(())
    }

    fn merge_defaults(&mut self, v: &Value) -> Result<()> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::rules("defaults: expected an object of field -> value"))?;
        for (name, value) in obj {
            let at = format!("defaults.{name}");
            match Field::parse(name, &at)? {
                Field::ClientId => self.default_client_id = default_text(value, &at)?,
                Field::Metric => self.default_metric = default_text(value, &at)?,
                Field::Amount => {
                    self.default_amount = match value {
                        Value::Null => None,
                        _ => Some(
                            value
                                .as_f64()
                                .filter(|f| f.is_finite())
                                .ok_or_else(|| Error::rules(format!("{at}: expected a finite number or null")))?,
                        ),
                    }
                }
                Field::Timestamp => {
                    return Err(Error::rules(format!(
                        "{at}: a timestamp is never defaulted; an invented time would make every retry a new event"
                    )))
                }
                Field::EventId => {
                    return Err(Error::rules(format!(
                        "{at}: an event_id is never defaulted; it would make distinct events duplicates"
                    )))
                }
            }
        }
        Ok(())
    }

    fn check_text_limits(&self) -> Result<()> {
        let texts = [
            ("defaults.client_id", self.default_client_id.as_deref()),
            ("defaults.metric", self.default_metric.as_deref()),
        ];
        for (at, text) in texts {
            if let Some(t) = text {
                if t.chars().count() > self.max_text_len {
                    return Err(Error::rules(format!("{at}: longer than max_text_len")));
                }
            }
        }
        Ok(())
    }

    /// The input names tried, in order, for `field`.
    pub fn aliases(&self, field: Field) -> &[String] {
        &self.aliases[field.index()]
    }

    /// True when `field` must come from the input (a default never fills it).
    pub fn is_required(&self, field: Field) -> bool {
        self.required.contains(&field)
    }

    /// The default text for `client_id` or `metric` when the input has none.
    pub fn default_text(&self, field: Field) -> Option<&str> {
        match field {
            Field::ClientId => self.default_client_id.as_deref(),
            Field::Metric => self.default_metric.as_deref(),
            _ => None,
        }
    }

    /// The amount an input without one gets when `amount` is not required;
    /// `None` for no default (as in the built-in rules).
    pub fn default_amount(&self) -> Option<f64> {
        self.default_amount
    }

    /// How metric names are cased (default [`MetricCase::Lower`]).
    pub fn metric_case(&self) -> MetricCase {
        self.metric_case
    }

    /// The allowed metric names (already cased), or `None` for any.
    pub fn allowed_metrics(&self) -> Option<&BTreeSet<String>> {
        self.allowed_metrics.as_ref()
    }

    /// Inclusive `[min, max]` for amounts, or `None` for any finite amount.
    pub fn amount_range(&self) -> Option<(f64, f64)> {
        self.amount_range
    }

    /// The longest `client_id`, `metric` or `event_id`, in characters.
    pub fn max_text_len(&self) -> usize {
        self.max_text_len
    }

    /// The fields whose values make an event's identity.
    pub fn dedup_key(&self) -> &[Field] {
        &self.dedup_key
    }

    /// How old an event may be (`max_age`); `None` for no bound.
    pub fn max_age(&self) -> Option<Age> {
        self.max_age
    }

    /// How far ahead of now an event may be (`max_future`); `None` for no bound.
    pub fn max_future(&self) -> Option<Age> {
        self.max_future
    }

    /// The acceptance window at `now`, for a store pruned up to `pruned`
    /// (milliseconds), if it was.
    pub(crate) fn window(&self, now: Timestamp, pruned: Option<i64>) -> Window {
        Window::at(now, self.max_age, self.max_future, pruned)
    }

    /// Case a metric name and put it in the one form of names
    /// ([`identity`](crate::identity::identity)) as these rules store it:
    /// events, queries and filters all go through here.
    pub fn normalize_metric(&self, metric: &str) -> String {
        // Cased first: lower-casing can change what NFC makes of the text.
        match self.metric_case {
            MetricCase::Lower => {
                let lower = metric.to_lowercase();
                match crate::identity::identity(&lower) {
                    // Already in its form: no second copy.
                    std::borrow::Cow::Borrowed(same) if same.len() == lower.len() => lower,
                    other => other.into_owned(),
                }
            }
            MetricCase::Preserve => crate::identity::identity(metric).into_owned(),
        }
    }

    /// The complete effective rules as a JSON document with every key, the
    /// form stored to version them and shown to operators.
    pub fn to_value(&self) -> Value {
        let mut aliases = Map::new();
        let mut defaults = Map::new();
        for f in Field::ALL {
            aliases.insert(f.as_str().into(), json!(self.aliases[f.index()]));
        }
        // Every default field, null where there is none: a default the
        // built-in rules have and these do not must stay removed.
        defaults.insert("client_id".into(), json!(self.default_client_id));
        defaults.insert("metric".into(), json!(self.default_metric));
        defaults.insert("amount".into(), json!(self.default_amount));
        let names = |fs: &[Field]| fs.iter().map(|f| f.as_str()).collect::<Vec<_>>();
        json!({
            "aliases": aliases,
            "required": names(&self.required),
            "defaults": defaults,
            "metric_case": match self.metric_case { MetricCase::Lower => "lower", MetricCase::Preserve => "preserve" },
            "allowed_metrics": self.allowed_metrics,
            "amount_range": self.amount_range.map(|(a, b)| [a, b]),
            "max_text_len": self.max_text_len,
            "dedup_key": names(&self.dedup_key),
            "max_age": self.max_age.map(|a| a.to_string()),
            "max_future": self.max_future.map(|a| a.to_string()),
        })
    }
}

fn string_list(v: &Value, at: &str) -> Result<Vec<String>> {
    let items = v
        .as_array()
        .ok_or_else(|| Error::rules(format!("{at}: expected a list of strings")))?;
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(Error::rules(format!("{at}: every item must be a non-empty string"))),
        })
        .collect()
}

fn field_list(v: &Value, at: &str) -> Result<Vec<Field>> {
    let mut fields = Vec::new();
    for name in string_list(v, at)? {
        let field = Field::parse(&name, at)?;
        if fields.contains(&field) {
            return Err(Error::rules(format!("{at}: {name:?} is listed twice")));
        }
        fields.push(field);
    }
    Ok(fields)
}

fn default_text(v: &Value, at: &str) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        _ => Err(Error::rules(format!("{at}: expected a non-empty string or null"))),
    }
}

fn allowed_metrics(v: &Value) -> Result<BTreeSet<String>> {
    let names = string_list(v, "allowed_metrics")?;
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(Error::rules("allowed_metrics: every item must be a non-empty string"));
    }
    if names.is_empty() {
        return Err(Error::rules(
            "allowed_metrics: an empty list would reject every event; use null to allow any metric",
        ));
    }
    Ok(names.into_iter().map(|n| n.trim().to_string()).collect())
}

fn amount_range(v: &Value) -> Result<(f64, f64)> {
    let bad = || Error::rules("amount_range: expected [min, max] with finite numbers and min <= max, or null");
    let pair = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let lo = pair[0].as_f64().filter(|f| f.is_finite()).ok_or_else(bad)?;
    let hi = pair[1].as_f64().filter(|f| f.is_finite()).ok_or_else(bad)?;
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(doc: Value) -> String {
        Rules::from_value(&doc).unwrap_err().to_string()
    }

    #[test]
    fn builtin_rules_round_trip_through_their_document() {
        let b = Rules::builtin();
        assert_eq!(Rules::from_value(&b.to_value()).unwrap(), b);
        assert_eq!(Rules::from_json("{}").unwrap(), b);
    }

    #[test]
    fn merges_key_by_key() {
        let r = Rules::from_value(&json!({
            "aliases": {"amount": ["price", "value"]},
            "defaults": {"metric": null, "client_id": "anon"},
            "allowed_metrics": ["Sales", "views"],
            "amount_range": [0, 1e6],
            "dedup_key": ["client_id", "event_id"],
        }))
        .unwrap();
        assert_eq!(r.aliases(Field::Amount), ["price", "value"]);
        assert_eq!(r.aliases(Field::Metric), Rules::builtin().aliases(Field::Metric));
        assert_eq!(r.default_text(Field::Metric), None);
        assert_eq!(r.default_text(Field::ClientId), Some("anon"));
        assert!(r.allowed_metrics().unwrap().contains("sales"));
        assert_eq!(r.amount_range(), Some((0.0, 1e6)));
        assert_eq!(r.dedup_key(), [Field::ClientId, Field::EventId]);
    }

    #[test]
    fn the_window_keys_take_seconds_or_units_and_round_trip() {
        let r = Rules::from_value(&json!({"max_age": "90d", "max_future": 300})).unwrap();
        assert_eq!(r.max_age().map(|a| a.seconds()), Some(90 * 86_400));
        assert_eq!(r.max_future().map(|a| a.seconds()), Some(300));
        assert_eq!(r.to_value()["max_future"], json!("5m"));
        assert_eq!(Rules::from_value(&r.to_value()).unwrap(), r);
        assert_eq!(Rules::builtin().max_age(), None);
        let cleared = Rules::from_value(&json!({"max_age": null})).unwrap();
        assert_eq!(cleared, Rules::builtin());
    }

    #[test]
    fn every_error_names_its_key() {
        assert!(err(json!([])).contains("JSON object"));
        assert!(err(json!({"alias": {}})).contains("\"alias\""));
        assert!(err(json!({"aliases": {"amout": ["x"]}})).contains("aliases.amout"));
        assert!(err(json!({"aliases": {"amount": []}})).contains("aliases.amount"));
        assert!(err(json!({"aliases": {"amount": [1]}})).contains("aliases.amount"));
        assert!(err(json!({"aliases": {"amount": ["payload"]}})).contains("payload"));
        assert!(err(json!({"aliases": {"amount": ["metric"]}})).contains("both"));
        assert!(err(json!({"required": ["amount", "amount"]})).contains("twice"));
        assert!(err(json!({"required": "amount"})).contains("required"));
        assert!(err(json!({"defaults": {"timestamp": "2024-01-01"}})).contains("defaults.timestamp"));
        assert!(err(json!({"defaults": {"amount": "1"}})).contains("defaults.amount"));
        assert!(err(json!({"metric_case": "upper"})).contains("metric_case"));
        assert!(err(json!({"max_text_len": 0})).contains("max_text_len"));
        assert!(err(json!({"max_text_len": 3, "defaults": {"metric": "unknown"}})).contains("defaults.metric"));
        assert!(err(json!({"allowed_metrics": []})).contains("allowed_metrics"));
        assert!(err(json!({"amount_range": [2, 1]})).contains("amount_range"));
        assert!(err(json!({"amount_range": [0]})).contains("amount_range"));
        assert!(err(json!({"dedup_key": []})).contains("dedup_key"));
        assert!(err(json!({"dedup_key": ["client_id", "colour"]})).contains("colour"));
        assert!(err(json!({"max_age": "3 weeks"})).contains("max_age"));
        assert!(err(json!({"max_future": -5})).contains("max_future"));
        assert!(Rules::from_json("{").unwrap_err().to_string().contains("JSON"));
    }
}
