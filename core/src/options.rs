//! What a caller passes besides events: the durability of writes, aggregate
//! queries, event filters and pages, each read strictly from the JSON the C
//! ABI and the server pass. Storage and the aggregate planner take these
//! types; they know nothing of the [`crate::Ingestor`] above them.

use serde_json::Value;

use crate::aggregate::Bucket;
use crate::error::{Error, Result};
use crate::timestamp::Timestamp;

/// How hard a commit works to survive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// Every commit is synced to disk before the call returns: an accepted
    /// event survives a power loss. The default, because "accepted" must mean
    /// kept.
    #[default]
    Full,
    /// Commits reach the operating system before the call returns: an
    /// accepted event survives a crash of the process, but the last commits
    /// may be lost on a power loss or kernel crash.
    Normal,
}

impl Durability {
    /// `"full"` or `"normal"`, as [`str::parse`] takes them.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(Error::arg(format!(
                "unknown durability {other:?}; expected \"full\" or \"normal\""
            ))),
        }
    }
}

/// What to aggregate: filters, a half-open time range, and grouping.
///
/// ```
/// use ingest_core::{Bucket, Query};
/// let q = Query::from_json(r#"{"metric": "sales", "start": "2024-01-01", "group_by": ["day", "client_id"]}"#).unwrap();
/// assert_eq!((q.bucket, q.by_client, q.by_metric), (Some(Bucket::Day), true, false));
/// let q = Query::from_json(r#"{"group_by": "day", "tz": "Asia/Kathmandu"}"#).unwrap();
/// assert_eq!(q.tz.map(|z| z.name()), Some("Asia/Kathmandu"));
/// assert!(Query::from_json(r#"{"tz": "Mars/Olympus_Mons"}"#).is_err());
/// assert!(Query::from_json(r#"{"group_by": "week"}"#).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Query {
    /// Only this client's events (put in the one form of names before
    /// matching); `None` for every client.
    pub client_id: Option<String>,
    /// Cased by the rules before matching, like the events' metrics.
    pub metric: Option<String>,
    /// Inclusive.
    pub start: Option<Timestamp>,
    /// Exclusive.
    pub end: Option<Timestamp>,
    /// Group by this time bucket; `None` for no grouping by time.
    pub bucket: Option<Bucket>,
    /// Group by client.
    pub by_client: bool,
    /// Group by metric.
    pub by_metric: bool,
    /// The IANA time zone whose local hours, days and months the time
    /// buckets are (`group_by` hour, day or month): each bucket starts at a
    /// local midnight (month start, hour), so days of 23 and 25 hours
    /// around daylight saving changes and offsets such as +05:45 are exact,
    /// and each group says its local start in [`GroupKey::bucket_local`].
    /// `None` for UTC buckets, without local starts. No effect without a
    /// time bucket.
    ///
    /// [`GroupKey::bucket_local`]: crate::GroupKey::bucket_local
    pub tz: Option<chrono_tz::Tz>,
}

impl Query {
    /// Parse the JSON query shared by the C ABI and the server:
    /// `{"client_id", "metric", "start", "end", "group_by", "tz"}`, where
    /// `start` and `end` take any accepted timestamp text, `group_by` is one
    /// of `hour`, `day`, `month`, `client_id`, `metric`, or a list of them
    /// (at most one time bucket), and `tz` an IANA time zone name such as
    /// `Europe/Berlin` (see [`Query::tz`]). Unknown keys and bad values,
    /// unknown zones among them, are errors.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value(&parse_object(text, "query")?)
    }

    /// As [`Query::from_json`], from a parsed value.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = object(v, "query", &["client_id", "metric", "start", "end", "group_by", "tz"])?;
        let mut q = Query {
            client_id: opt_text(obj.get("client_id"), "client_id")?,
            metric: opt_text(obj.get("metric"), "metric")?,
            start: opt_time(obj.get("start"), "start")?,
            end: opt_time(obj.get("end"), "end")?,
            tz: match obj.get("tz") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(crate::zone::parse(s)?),
                Some(_) => {
                    return Err(Error::arg(
                        "query: tz must be text, an IANA time zone name such as Europe/Berlin",
                    ))
                }
            },
            ..Query::default()
        };
        match obj.get("group_by") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => q.group_by(s)?,
            Some(Value::Array(items)) => {
                for item in items {
                    let s = item
                        .as_str()
                        .ok_or_else(|| Error::arg("query: group_by items must be text"))?;
                    q.group_by(s)?;
                }
            }
            Some(_) => return Err(Error::arg("query: group_by must be text or a list of text")),
        }
        Ok(q)
    }

    /// Add one grouping by name: `hour`, `day`, `month`, `client_id` (or
    /// `client`), `metric`.
    pub fn group_by(&mut self, name: &str) -> Result<()> {
        let bucket = match name {
            "hour" => Bucket::Hour,
            "day" => Bucket::Day,
            "month" => Bucket::Month,
            "client_id" | "client" => {
                self.by_client = true;
                return Ok(());
            }
            "metric" => {
                self.by_metric = true;
                return Ok(());
            }
            other => {
                return Err(Error::arg(format!(
                    "query: cannot group by {other:?}; expected hour, day, month, client_id or metric"
                )))
            }
        };
        match self.bucket {
            Some(b) if b != bucket => Err(Error::arg(format!("query: group by {b} or {bucket}, not both"))),
            _ => {
                self.bucket = Some(bucket);
                Ok(())
            }
        }
    }

    pub(crate) fn is_grouped(&self) -> bool {
        self.bucket.is_some() || self.by_client || self.by_metric
    }

    pub(crate) fn check_range(&self) -> Result<()> {
        match (self.start, self.end) {
            (Some(s), Some(e)) if s > e => Err(Error::arg(format!("query: start {s} is after end {e}"))),
            _ => Ok(()),
        }
    }
}

fn opt_text(v: Option<&Value>, key: &str) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(Error::arg(format!("{key} must be text"))),
    }
}

fn opt_time(v: Option<&Value>, key: &str) -> Result<Option<Timestamp>> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => Timestamp::parse(s).ok(),
        // Its own digits, as an event's epoch number is read.
        Some(Value::Number(n)) => Timestamp::from_epoch_decimal(n.as_str()).ok(),
        Some(_) => None,
    };
    parsed.map(Some).ok_or_else(|| {
        Error::arg(format!(
            "{key} must be an RFC 3339 time, a date, or epoch seconds/milliseconds"
        ))
    })
}

/// Filter and page for listing events. Newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this client's events (put in the one form of names before
    /// matching); `None` for every client.
    pub client_id: Option<String>,
    /// Cased by the rules before matching.
    pub metric: Option<String>,
    /// Only events at or after this instant (inclusive); `None` for no bound.
    pub start: Option<Timestamp>,
    /// Only events before this instant (exclusive); `None` for no bound.
    pub end: Option<Timestamp>,
    /// The most events returned (default 100); `Ingestor::events` takes 1
    /// to [`MAX_PAGE`] and refuses any other.
    pub limit: usize,
    /// How many matching events to skip first (default 0).
    pub offset: usize,
}

/// The most rows one page may ask for.
pub const MAX_PAGE: usize = 10_000;

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            client_id: None,
            metric: None,
            start: None,
            end: None,
            limit: 100,
            offset: 0,
        }
    }
}

impl EventFilter {
    /// Parse `{"client_id", "metric", "start", "end", "limit", "offset"}`
    /// (every key optional), as the C ABI and the server pass it. Unknown keys
    /// and bad values are errors.
    ///
    /// ```
    /// let f = ingest_core::EventFilter::from_json(r#"{"metric": "sales", "limit": 5}"#).unwrap();
    /// assert_eq!((f.metric.as_deref(), f.limit, f.offset), (Some("sales"), 5, 0));
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value(&parse_object(text, "filter")?)
    }

    /// As [`EventFilter::from_json`], from a parsed value.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = object(v, "filter", &["client_id", "metric", "start", "end", "limit", "offset"])?;
        let page = Page::from_value(&Value::Object(
            obj.iter()
                .filter(|(k, _)| *k == "limit" || *k == "offset")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))?;
        Ok(EventFilter {
            client_id: opt_text(obj.get("client_id"), "client_id")?,
            metric: opt_text(obj.get("metric"), "metric")?,
            start: opt_time(obj.get("start"), "start")?,
            end: opt_time(obj.get("end"), "end")?,
            limit: page.limit,
            offset: page.offset,
        })
    }
}

/// A page of a listing: at most `limit` rows (1 to [`MAX_PAGE`]) after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The most rows returned (default 100); the listings take 1 to
    /// [`MAX_PAGE`] and refuse any other.
    pub limit: usize,
    /// How many rows to skip first (default 0).
    pub offset: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page { limit: 100, offset: 0 }
    }
}

impl Page {
    /// Parse `{"limit", "offset"}` (both optional).
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value(&parse_object(text, "page")?)
    }

    /// As [`Page::from_json`], from a parsed value.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = object(v, "page", &["limit", "offset"])?;
        let count = |key: &str, default: usize| -> Result<usize> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(n) => n
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| Error::arg(format!("{key} must be a whole number >= 0"))),
            }
        };
        Ok(Page {
            limit: count("limit", 100)?,
            offset: count("offset", 0)?,
        })
    }
}

/// What to prune, as the C ABI, the Python binding and the command line
/// pass it: `{"before": <time>, "archive": <path or null>}`.
///
/// ```
/// use ingest_core::PruneRequest;
/// let r = PruneRequest::from_json(r#"{"before": "2024-01-01", "archive": "old.ndjson.gz"}"#).unwrap();
/// assert_eq!(r.before.to_string(), "2024-01-01T00:00:00.000Z");
/// assert!(PruneRequest::from_json(r#"{"archive": "x"}"#).is_err(), "before is required");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneRequest {
    /// Remove what is before this instant (any accepted timestamp form).
    pub before: Timestamp,
    /// The file the removed rows are written to first, if any.
    pub archive: Option<std::path::PathBuf>,
}

impl PruneRequest {
    /// Parse the JSON request.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value(&parse_object(text, "prune")?)
    }

    /// As [`PruneRequest::from_json`], from a parsed value.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = object(v, "prune", &["before", "archive"])?;
        let before = opt_time(obj.get("before"), "before")?.ok_or_else(|| Error::arg("prune: before is required"))?;
        let archive = match opt_text(obj.get("archive"), "archive")? {
            Some(p) if p.is_empty() => return Err(Error::arg("prune: archive must be a file name, not empty text")),
            p => p.map(std::path::PathBuf::from),
        };
        Ok(PruneRequest { before, archive })
    }
}

/// `text` parsed as JSON, for [`object`].
fn parse_object(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::arg(format!("{what} is not valid JSON: {e}")))
}

/// `v` as a JSON object holding none but `keys`: the one strict reading of
/// every parameter object a binding or the server passes (queries, filters,
/// pages), so that a misspelt key is an error, never silently ignored.
fn object<'a>(v: &'a Value, what: &str, keys: &[&str]) -> Result<&'a serde_json::Map<String, Value>> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::arg(format!("{what} must be a JSON object")))?;
    if let Some(k) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(Error::arg(format!(
            "{what}: unknown key {k:?}; expected one of {}",
            keys.join(", ")
        )));
    }
    Ok(obj)
}
