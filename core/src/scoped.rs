//! The store as one client sees it: a caller holding a client's API key
//! ([`crate::keys`]) writes only as that client and reads only its own
//! events, aggregates and dead letters. The rules are the store's own; only who an event
//! is from is decided here: an event naming no client (under any alias, at
//! any level of an envelope) is the caller's, and one naming another client
//! makes the whole call [`Error::Forbidden`], with nothing stored.

use crate::aggregate::Aggregate;
use crate::error::{Error, Result};
use crate::event::{Outcome, RejectedEvent, StoredEvent};
use crate::identity::identity;
use crate::ingestor::{ClientStats, Ingestor, Input};
use crate::limits::shorten;
use crate::normalize::{is_other_client, other_client};
use crate::options::{EventFilter, Page, Query};
use crate::rules::{Field, Rules, PAYLOAD};
use crate::storage::WriteItem;
use crate::window::Window;
use serde_json::{Map, Value};

/// An [`Ingestor`] as one client sees it ([`Ingestor::scoped`]).
#[derive(Clone, Copy)]
pub struct Scoped<'a> {
    ing: &'a Ingestor,
    client: &'a str,
}

impl std::fmt::Debug for Scoped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Ingestor {
    /// This store as `client_id` sees it (in the one form of names, as
    /// [`crate::KeyScope::client`] keeps it): a name an event could not
    /// have given (empty, too long, a NUL) is an `InvalidArgument`.
    pub fn scoped<'a>(&'a self, client_id: &'a str) -> Result<Scoped<'a>> {
        self.client_name(client_id)?;
        Ok(Scoped {
            ing: self,
            client: client_id,
        })
    }
}

impl Scoped<'_> {
    /// The client.
    pub fn client_id(&self) -> &str {
        self.client
    }

    /// The window this client writes in. Writing as one client is refused
    /// when the rules' `dedup_key` has no `client_id`: one client's event
    /// would then be the same event as another client's with the same key,
    /// so a client could learn of another's event (a conflict answers with
    /// the stored event) and take its key first. With `client_id` in the
    /// key, no two clients' events ever meet.
    fn window(&self) -> Result<Window> {
        let key = self.ing.rules().dedup_key();
        if !key.contains(&Field::ClientId) {
            let names: Vec<&str> = key.iter().map(|f| f.as_str()).collect();
            return Err(Error::Forbidden(format!(
                "these rules deduplicate events across clients (dedup_key {names:?} has no client_id), \
                 so one client's event could meet another's: writing as one client is refused; \
                 put client_id in dedup_key"
            )));
        }
        Ok(self.ing.window().for_client(self.client))
    }

    /// [`Ingestor::submit_inputs`] as this client.
    pub fn submit_inputs(&self, inputs: &[Input]) -> Result<Vec<Outcome>> {
        let window = self.window()?;
        self.ing
            .answer(|| own(self.ing.decide_inputs(inputs, &window)?, self.client, self.ing.rules()))
    }

    /// [`Ingestor::submit_batch_json`] as this client.
    pub fn submit_batch_json(&self, text: &str) -> Result<Vec<Outcome>> {
        let window = self.window()?;
        self.ing.answer(|| {
            own(
                self.ing.decide_batch_text(text, &window)?,
                self.client,
                self.ing.rules(),
            )
        })
    }

    /// [`Ingestor::submit_json`] as this client.
    pub fn submit_json(&self, text: &str) -> Result<Outcome> {
        let window = self.window()?;
        let outcomes = self.ing.answer(|| {
            own(
                vec![self.ing.decide_text(text, &window)?],
                self.client,
                self.ing.rules(),
            )
        })?;
        Ok(outcomes.into_iter().next().expect("one outcome for one item"))
    }

    /// [`Ingestor::submit_inputs`] of one input as this client.
    pub fn submit_input(&self, input: &Input) -> Result<Outcome> {
        let outcomes = self.submit_inputs(std::slice::from_ref(input))?;
        Ok(outcomes.into_iter().next().expect("one outcome for one item"))
    }

    /// [`Ingestor::events`] of this client only; a filter naming another
    /// client is [`Error::Forbidden`].
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let mut f = filter.clone();
        f.client_id = Some(self.own_filter(filter.client_id.as_deref())?);
        self.ing.events(&f)
    }

    /// [`Ingestor::aggregate`] of this client's events only; a query naming
    /// another client is [`Error::Forbidden`].
    pub fn aggregate(&self, query: &Query) -> Result<Aggregate> {
        let mut q = query.clone();
        q.client_id = Some(self.own_filter(query.client_id.as_deref())?);
        self.ing.aggregate(&q)
    }

    /// This client's dead letters, newest first, paged as
    /// [`Ingestor::rejected`]: those it sent through a scoped caller, and
    /// those sent unscoped that name it (under any alias). Dead letters of
    /// no known client, among them every one stored before clients were
    /// recorded, are listed by [`Ingestor::rejected`] only.
    pub fn rejected(&self, page: Page) -> Result<Vec<RejectedEvent>> {
        self.ing.client_rejected(self.client, page)
    }

    /// What this client has in the store, and nothing of other clients
    /// ([`Ingestor::stats`] is the whole store's).
    pub fn stats(&self) -> Result<ClientStats> {
        self.ing.client_stats(self.client)
    }

    fn own_filter(&self, named: Option<&str>) -> Result<String> {
        match named.map(identity) {
            Some(c) if c != self.client => Err(Error::Forbidden(format!(
                "this key reads client {:?} only, not {c:?}",
                self.client
            ))),
            _ => Ok(self.client.to_string()),
        }
    }
}

/// `items` when none names another client than the caller's: not the
/// client the normaliser read (its reason), nor any other client alias at
/// the top or in the payload (a later alias the normaliser keeps as an
/// attribute), nor one inside an item rejected before its client was read
/// (whose dead letter would be the caller's while holding another client's
/// name). Text that is not a JSON value (a lone surrogate, 1e400, nesting
/// too deep) is searched for alias keys at any depth.
fn own(items: Vec<WriteItem>, client: &str, rules: &Rules) -> Result<Vec<WriteItem>> {
    let aliases = rules.aliases(Field::ClientId);
    for (i, item) in items.iter().enumerate() {
        let other = match item {
            WriteItem::Rejected { reasons, copy, .. } => match reasons.iter().find(|r| is_other_client(r)) {
                Some(r) => Some(r.message.clone()),
                None => match serde_json::from_str::<Value>(&copy.text) {
                    // What JSON cannot hold (1e400) is kept as its text, in a string.
                    Ok(Value::String(text)) => other_in_text(&text, aliases, client),
                    Ok(raw) => other_in_value(&raw, aliases, client),
                    Err(_) => other_in_text(&copy.text, aliases, client),
                },
            },
            WriteItem::Event { event, .. } => other_in_map(&event.attributes, aliases, client),
        };
        if let Some(why) = other {
            return Err(Error::Forbidden(format!(
                "item {i}: {why}; nothing of this call was stored"
            )));
        }
    }
    Ok(items)
}

/// The normaliser's own words for another client (`other_client`), when
/// `named` is not `own`.
fn other_name(named: &str, own: &str) -> Option<String> {
    let name = identity(named);
    (name != own).then(|| other_client(&format!("{:?}", shorten(&name, 60)), own).message)
}

/// An alias at the top of `raw`, or in its payload, naming another client.
fn other_in_value(raw: &Value, aliases: &[String], own: &str) -> Option<String> {
    other_in_map(raw.as_object()?, aliases, own)
}

fn other_in_map(level: &Map<String, Value>, aliases: &[String], own: &str) -> Option<String> {
    let here = aliases.iter().find_map(|a| match level.get(a) {
        Some(Value::String(s)) => other_name(s, own),
        Some(Value::Number(n)) => other_name(&n.to_string(), own),
        // Not a name: the normaliser refuses it as the caller's own input.
        _ => None,
    });
    here.or_else(|| match level.get(PAYLOAD) {
        Some(Value::Object(payload)) => other_in_map(payload, aliases, own),
        _ => None,
    })
}

/// [`other_in_value`] for text no JSON reader takes: every object key that
/// is an alias, at any depth, and the string or number after it. A string
/// that cannot be read (a lone surrogate) cannot be shown to be the
/// caller's, so it counts as another's.
fn other_in_text(text: &str, aliases: &[String], own: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let skip_blanks = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let (key, end) = string_at(text, i);
        i = end;
        let colon = skip_blanks(end);
        if colon >= bytes.len() || bytes[colon] != b':' || !key.as_ref().is_some_and(|k| aliases.contains(k)) {
            continue;
        }
        let j = skip_blanks(colon + 1);
        if j < bytes.len() && bytes[j] == b'"' {
            let (value, end) = string_at(text, j);
            i = end;
            let why = match value {
                Some(v) => other_name(&v, own),
                // Cut short (a copy kept within its bound): nothing more is known.
                None if bytes[end - 1] != b'"' || end - j < 2 => None,
                None => Some(format!(
                    "a client_id that cannot be read as text; this caller writes as {own:?} only"
                )),
            };
            if why.is_some() {
                return why;
            }
        } else {
            let mut k = j;
            while k < bytes.len() && matches!(bytes[k], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                k += 1;
            }
            if k > j {
                if let Some(why) = other_name(&text[j..k], own) {
                    return Some(why);
                }
            }
        }
    }
    None
}

/// The JSON string starting at byte `at` (a quote): its text when it reads
/// as one, and the byte after its closing quote (or the end).
fn string_at(text: &str, at: usize) -> (Option<String>, usize) {
    let bytes = text.as_bytes();
    let mut j = at + 1;
    while j < bytes.len() && bytes[j] != b'"' {
        j += if bytes[j] == b'\\' { 2 } else { 1 };
    }
    let end = (j + 1).min(bytes.len());
    let read = text.get(at..end).and_then(|s| serde_json::from_str::<String>(s).ok());
    (read, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases() -> Vec<String> {
        ["source", "client", "clientId", "client_id", "clientID"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn text_that_is_not_json_is_searched_for_other_clients() {
        let a = aliases();
        let other = |t: &str| other_in_text(t, &a, "acme").is_some();
        assert!(other(r#"{"client":"evil","value":1e400}"#));
        assert!(other(r#"{"source":"acme","payload":{"clientId" : 42}, "v": 1e999}"#));
        assert!(other(r#"[[[[{"client_id":"\ud800"}]]]]"#));
        assert!(!other(r#"{"client":"acme","value":1e400}"#));
        assert!(!other(
            r#"{"client":" acme\u200b","note":"client","x":"\"client\":\"evil"}"#
        ));
        assert!(!other(r#"{"nothing": "client", "client"#));
        assert!(!other(r#"{"client":"#));
        assert!(!other("{\"client\":\"acme\\"));
    }

    #[test]
    fn a_later_alias_or_the_payload_naming_another_client_is_found() {
        let a = aliases();
        let other = |v: Value| other_in_value(&v, &a, "acme").is_some();
        assert!(other(serde_json::json!({"source": "acme", "client": "evil"})));
        assert!(other(
            serde_json::json!({"source": "acme", "payload": {"client_id": 7}})
        ));
        assert!(!other(
            serde_json::json!({"source": "acme", "payload": {"client": "acme "}})
        ));
        assert!(!other(
            serde_json::json!({"source": null, "client": ["x"], "meta": {"client": "evil"}})
        ));
    }
}
