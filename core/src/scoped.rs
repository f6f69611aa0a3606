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
use crate::normalize::is_other_client;
use crate::options::{EventFilter, Page, Query};
use crate::storage::WriteItem;
use crate::window::Window;

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

    fn window(&self) -> Window {
        self.ing.window().for_client(self.client)
    }

    /// [`Ingestor::submit_inputs`] as this client.
    pub fn submit_inputs(&self, inputs: &[Input]) -> Result<Vec<Outcome>> {
        self.ing.answer(|| own(self.ing.decide_inputs(inputs, &self.window())?))
    }

    /// [`Ingestor::submit_batch_json`] as this client.
    pub fn submit_batch_json(&self, text: &str) -> Result<Vec<Outcome>> {
        self.ing
            .answer(|| own(self.ing.decide_batch_text(text, &self.window())?))
    }

    /// [`Ingestor::submit_json`] as this client.
    pub fn submit_json(&self, text: &str) -> Result<Outcome> {
        let outcomes = self
            .ing
            .answer(|| own(vec![self.ing.decide_text(text, &self.window())?]))?;
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

/// `items` when none names another client than the caller's.
fn own(items: Vec<WriteItem>) -> Result<Vec<WriteItem>> {
    for (i, item) in items.iter().enumerate() {
        if let WriteItem::Rejected { reasons, .. } = item {
            if let Some(r) = reasons.iter().find(|r| is_other_client(r)) {
                return Err(Error::Forbidden(format!(
                    "item {i}: {}; nothing of this call was stored",
                    r.message
                )));
            }
        }
    }
    Ok(items)
}
