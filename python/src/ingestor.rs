//! `ingest.Ingestor`: arguments are converted to owned Rust values first,
//! then the core call runs with the GIL released, so other Python threads
//! run while SQLite works or waits for a lock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ingest_core::{
    DeadLetterBound, Durability, EventFilter, FailPoint, Ingestor, Input, KeyScope, Page, PruneRequest, Query, Rules,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

use crate::convert::{serialize_to_py, to_input, to_value, typed_to_py};
use crate::errors::{self, invalid_argument, IntoPyResult};
use crate::outcome::PyOutcome;

/// Normalises, deduplicates, stores and aggregates events in one SQLite file
/// (or ":memory:"). Safe to share between threads; several processes may
/// open the same file. Never use one across fork: open it in the child.
#[pyclass(module = "ingest", name = "Ingestor", frozen)]
pub struct PyIngestor {
    /// `None` once closed. Each call clones the `Arc` and lets the lock go
    /// before the core call, so `close()` never waits for a running call:
    /// the store closes when the last call using it returns.
    inner: Mutex<Option<Arc<Ingestor>>>,
    /// The process that opened the store, to refuse use in a forked child.
    pid: u32,
    path: String,
}

/// An event as given: JSON text is parsed by the core, anything else is
/// converted here.
enum Raw {
    Text(String),
    Value(Value),
}

impl Raw {
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        match obj.cast::<PyString>() {
            Ok(s) => Ok(Raw::Text(crate::convert::text(s)?)),
            Err(_) => Ok(Raw::Value(to_value(obj)?)),
        }
    }
}

impl PyIngestor {
    fn handle(&self) -> PyResult<Arc<Ingestor>> {
        let now = std::process::id();
        if now != self.pid {
            // Checked before the lock: a lock held by another thread at the
            // moment of fork stays held forever in the child.
            return Err(errors::forked(self.pid, now));
        }
        self.lock().clone().ok_or_else(errors::closed)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Ingestor>>> {
        // The guarded value is replaced whole, never left half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for PyIngestor {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // Closing a SQLite connection inherited through fork can damage
            // the parent's locks and WAL; the child leaks it instead.
            let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
            std::mem::forget(inner.take());
        }
    }
}

/// A JSON object of the arguments that were given (None means not given),
/// for the core's own query and filter parsers.
fn object(args: &[(&str, Option<&Bound<'_, PyAny>>)]) -> PyResult<Value> {
    let mut map = Map::new();
    for (key, value) in args {
        if let Some(v) = value {
            map.insert((*key).to_string(), to_value(v)?);
        }
    }
    Ok(Value::Object(map))
}

#[pymethods]
impl PyIngestor {
    /// Open (creating and migrating as needed) the store at `path`.
    /// `rules`: a dict or JSON text merged over the built-in rules.
    /// `durability`: "full" (the default) or "normal". `busy_timeout`:
    /// seconds a write waits for another connection's lock (default 5).
    /// `max_event_bytes`: the largest event accepted (default 1 MiB).
    /// `max_dead_letters`, `max_dead_letter_bytes`: how many rejected inputs
    /// are kept (default 10 000, the oldest evicted first) and how much of
    /// each (default 64 KiB).
    #[new]
    #[pyo3(
        signature = (path=None, *, rules=None, durability=None, busy_timeout=None, max_event_bytes=None, max_dead_letters=None, max_dead_letter_bytes=None),
        text_signature = "(path=':memory:', *, rules=None, durability=None, busy_timeout=None, max_event_bytes=None, max_dead_letters=None, max_dead_letter_bytes=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        rules: Option<&Bound<'_, PyAny>>,
        durability: Option<&str>,
        busy_timeout: Option<f64>,
        max_event_bytes: Option<usize>,
        max_dead_letters: Option<u64>,
        max_dead_letter_bytes: Option<usize>,
    ) -> PyResult<Self> {
        let path = path.unwrap_or_else(|| PathBuf::from(":memory:"));
        let mut builder = Ingestor::builder(&path);
        if let Some(rules) = rules {
            let rules = match Raw::from_py(rules)? {
                Raw::Text(text) => Rules::from_json(&text),
                Raw::Value(doc) => Rules::from_value(&doc),
            };
            builder = builder.rules(rules.py()?);
        }
        if let Some(d) = durability {
            builder = builder.durability(d.parse::<Durability>().py()?);
        }
        if let Some(secs) = busy_timeout {
            let timeout = Duration::try_from_secs_f64(secs)
                .map_err(|_| invalid_argument(format!("busy_timeout must be a number of seconds >= 0, not {secs}")))?;
            builder = builder.busy_timeout(timeout);
        }
        if let Some(bytes) = max_event_bytes {
            builder = builder.max_event_bytes(bytes);
        }
        let defaults = DeadLetterBound::default();
        builder = builder.dead_letters(DeadLetterBound {
            max_rows: max_dead_letters.unwrap_or(defaults.max_rows),
            max_copy_bytes: max_dead_letter_bytes.unwrap_or(defaults.max_copy_bytes),
        });
        let ingestor = py.detach(move || builder.open()).py()?;
        Ok(PyIngestor {
            path: ingestor.location().to_string(),
            inner: Mutex::new(Some(Arc::new(ingestor))),
            pid: std::process::id(),
        })
    }

    /// Submit one event (a dict, or JSON text). Rejections are outcomes;
    /// storage failures raise, and nothing of the call is kept.
    /// `as_client`: write as that client only (an API key's): an event
    /// naming no client is its, one naming another raises Forbidden.
    #[pyo3(signature = (event, *, as_client=None))]
    fn submit<'py>(
        &self,
        py: Python<'py>,
        event: &Bound<'py, PyAny>,
        as_client: Option<&str>,
    ) -> PyResult<Bound<'py, PyOutcome>> {
        let ing = self.handle()?;
        let input = to_input(&ing, event)?;
        let outcome = py.detach(|| match as_client {
            Some(c) => ing.scoped(c)?.submit_input(&input),
            None => ing.submit_input(&input),
        });
        PyOutcome::untracked(py, outcome.py()?)
    }

    /// Submit many events in one transaction (JSON text of an array, or an
    /// iterable of dicts or JSON texts): one outcome per event, in order.
    /// `as_client` as for `submit`, for every event of the batch.
    #[pyo3(signature = (events, *, as_client=None))]
    fn submit_batch<'py>(
        &self,
        py: Python<'py>,
        events: &Bound<'py, PyAny>,
        as_client: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let ing = self.handle()?;
        let outcomes = if let Ok(text) = events.cast::<PyString>() {
            // Not Unicode (a lone surrogate): no item of it can be read.
            let text = crate::convert::text(text)?;
            py.detach(|| match as_client {
                Some(c) => ing.scoped(c)?.submit_batch_json(&text),
                None => ing.submit_batch_json(&text),
            })
        } else if events.cast::<PyDict>().is_ok() {
            // Iterating a dict would walk its keys: surely a mistaken call.
            return Err(PyTypeError::new_err(
                "submit_batch takes a list of events (or the JSON text of one); use submit for a single event",
            ));
        } else {
            let inputs = events
                .try_iter()?
                .map(|item| to_input(&ing, &item?))
                .collect::<PyResult<Vec<Input>>>()?;
            py.detach(|| match as_client {
                Some(c) => ing.scoped(c)?.submit_inputs(&inputs),
                None => ing.submit_inputs(&inputs),
            })
        };
        PyOutcome::list(py, outcomes.py()?)
    }

    /// What `submit(event)` would answer, storing nothing (an accepted
    /// answer has no id).
    fn check<'py>(&self, py: Python<'py>, event: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyOutcome>> {
        let ing = self.handle()?;
        let input = to_input(&ing, event)?;
        PyOutcome::untracked(py, py.detach(|| ing.check_input(&input)).py()?)
    }

    /// count, sum, avg, min, max (and groups when grouped) of the stored
    /// events in `[start, end)`. `start`/`end`: RFC 3339 or date text,
    /// epoch seconds/milliseconds, date or datetime (naive means UTC).
    /// `group_by`: "hour", "day", "month", "client_id", "metric", or a list.
    /// `tz`: an IANA time zone name ("Europe/Berlin") whose local hours,
    /// days and months the time buckets are; each group then has
    /// `bucket_local`. `as_client`: only that client's events (an API
    /// key's); another `client_id` raises Forbidden.
    #[pyo3(signature = (*, client_id=None, metric=None, start=None, end=None, group_by=None, tz=None, as_client=None))]
    #[allow(clippy::too_many_arguments)]
    fn aggregate<'py>(
        &self,
        py: Python<'py>,
        client_id: Option<&Bound<'py, PyAny>>,
        metric: Option<&Bound<'py, PyAny>>,
        start: Option<&Bound<'py, PyAny>>,
        end: Option<&Bound<'py, PyAny>>,
        group_by: Option<&Bound<'py, PyAny>>,
        tz: Option<&Bound<'py, PyAny>>,
        as_client: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        let query = object(&[
            ("client_id", client_id),
            ("metric", metric),
            ("start", start),
            ("end", end),
            ("group_by", group_by),
            ("tz", tz),
        ])?;
        let query = Query::from_value(&query).py()?;
        let result = py
            .detach(|| match as_client {
                Some(c) => ing.scoped(c)?.aggregate(&query),
                None => ing.aggregate(&query),
            })
            .py()?;
        typed_to_py(py, &result)
    }

    /// Stored events, newest first, filtered like `aggregate` (`as_client`
    /// too).
    // None for limit and offset leaves the default to the core; the text
    // signature shows what that default is.
    #[pyo3(
        signature = (*, client_id=None, metric=None, start=None, end=None, limit=None, offset=None, as_client=None),
        text_signature = "($self, *, client_id=None, metric=None, start=None, end=None, limit=100, offset=0, as_client=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn events<'py>(
        &self,
        py: Python<'py>,
        client_id: Option<&Bound<'py, PyAny>>,
        metric: Option<&Bound<'py, PyAny>>,
        start: Option<&Bound<'py, PyAny>>,
        end: Option<&Bound<'py, PyAny>>,
        limit: Option<&Bound<'py, PyAny>>,
        offset: Option<&Bound<'py, PyAny>>,
        as_client: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        let filter = object(&[
            ("client_id", client_id),
            ("metric", metric),
            ("start", start),
            ("end", end),
            ("limit", limit),
            ("offset", offset),
        ])?;
        let filter = EventFilter::from_value(&filter).py()?;
        let events = py
            .detach(|| match as_client {
                Some(c) => ing.scoped(c)?.events(&filter),
                None => ing.events(&filter),
            })
            .py()?;
        serialize_to_py(py, &events)
    }

    /// Stored rejections (dead letters), newest first. `as_client`: only
    /// that client's (an API key's); without it, every client's and those
    /// of no known client.
    #[pyo3(
        signature = (*, limit=None, offset=None, as_client=None),
        text_signature = "($self, *, limit=100, offset=0, as_client=None)"
    )]
    fn rejected<'py>(
        &self,
        py: Python<'py>,
        limit: Option<&Bound<'py, PyAny>>,
        offset: Option<&Bound<'py, PyAny>>,
        as_client: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        let page = Page::from_value(&object(&[("limit", limit), ("offset", offset)])?).py()?;
        let rejected = py
            .detach(|| match as_client {
                Some(c) => ing.scoped(c)?.rejected(page),
                None => ing.rejected(page),
            })
            .py()?;
        serialize_to_py(py, &rejected)
    }

    /// Normalise every stored rejection again under the current rules.
    fn reprocess_rejected<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        let report = py.detach(|| ing.reprocess_rejected()).py()?;
        serialize_to_py(py, &report)
    }

    /// Remove the events before `before` (and dead letters received before
    /// it), keeping every rollup; refused unless the rules set `max_age`
    /// and `before` is at or before now minus it. `archive`: a file the
    /// removed rows are written to first, as NDJSON (gzip for `.gz`). See
    /// the README's "Data lifecycle".
    #[pyo3(signature = (*, before, archive=None))]
    fn prune<'py>(
        &self,
        py: Python<'py>,
        before: &Bound<'py, PyAny>,
        archive: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        // A path-like archive is its text (os.fspath), as open() takes it.
        let archive = match archive {
            Some(a) if !a.is_none() => Some(py.import("os")?.call_method1("fspath", (a,))?),
            _ => None,
        };
        let request =
            PruneRequest::from_value(&object(&[("before", Some(before)), ("archive", archive.as_ref())])?).py()?;
        let report = py
            .detach(|| ing.prune(request.before, request.archive.as_deref()))
            .py()?;
        serialize_to_py(py, &report)
    }

    /// Copy every stored event and dead letter into `target` (another
    /// store, on any backend): see the README's "Moving to PostgreSQL".
    /// Safe to run again; what the target holds is never copied twice.
    fn copy_to<'py>(&self, py: Python<'py>, target: &PyIngestor) -> PyResult<Bound<'py, PyAny>> {
        let (source, target) = (self.handle()?, target.handle()?);
        let report = py.detach(|| source.copy_to(&target)).py()?;
        serialize_to_py(py, &report)
    }

    /// Make an API key for one client (`client_id`) or an admin key
    /// (`admin=NAME`), stored in this store: {"id", "token", "scope"}. The
    /// token is shown here only (the store keeps its digest).
    #[pyo3(signature = (client_id=None, *, admin=None))]
    fn add_key<'py>(
        &self,
        py: Python<'py>,
        client_id: Option<&str>,
        admin: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        let scope = KeyScope::named(client_id, admin).py()?;
        let key = py.detach(|| ing.add_key(scope)).py()?;
        serialize_to_py(py, &key)
    }

    /// Every API key, oldest first, revoked ones too (never a secret).
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        let keys = py.detach(|| ing.keys()).py()?;
        serialize_to_py(py, &keys)
    }

    /// Revoke the key with this id; whether a valid key was revoked.
    fn revoke_key(&self, py: Python<'_>, id: &str) -> PyResult<bool> {
        let ing = self.handle()?;
        py.detach(|| ing.revoke_key(id)).py()
    }

    /// Whose bearer `token` is ({"key_id", "scope"}), or None when it is
    /// not the token of a valid key.
    fn authenticate<'py>(&self, py: Python<'py>, token: &str) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        let who = py.detach(|| ing.authenticate(token)).py()?;
        typed_to_py(py, &who)
    }

    /// Outcome counts since open, and what the database holds. `as_client`:
    /// what that client has in the store only (`client_id`,
    /// `stored_events`, `stored_rejected`), never the store's counters.
    #[pyo3(signature = (*, as_client=None))]
    fn stats<'py>(&self, py: Python<'py>, as_client: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let ing = self.handle()?;
        match as_client {
            Some(c) => {
                let stats = py.detach(|| ing.scoped(c)?.stats()).py()?;
                typed_to_py(py, &stats)
            }
            None => {
                let stats = py.detach(|| ing.stats()).py()?;
                typed_to_py(py, &stats)
            }
        }
    }

    /// Make the next `times` calls that reach `point` fail there:
    /// "before_insert", "after_insert", "after_commit" or "aggregate".
    #[pyo3(signature = (point="after_insert", times=1))]
    fn simulate_failure(&self, point: &str, times: u32) -> PyResult<()> {
        let ing = self.handle()?;
        ing.simulate_failure(point.parse::<FailPoint>().py()?, times);
        Ok(())
    }

    /// The armed failure as (point, calls it still strikes), or None.
    fn armed_failure(&self) -> PyResult<Option<(&'static str, u32)>> {
        Ok(self.handle()?.armed_failure().map(|(p, n)| (p.as_str(), n)))
    }

    /// Disarm any simulated failure.
    fn clear_failure(&self) -> PyResult<()> {
        self.handle()?.clear_failure();
        Ok(())
    }

    /// Close the store. Idempotent; any later call raises IngestError.
    fn close(&self, py: Python<'_>) {
        if std::process::id() != self.pid {
            // Nothing to close in a forked child: the connection is the
            // parent's, every use here already raises, and Drop leaks it.
            return;
        }
        let taken = self.lock().take();
        // The last reference closes the connection, which may checkpoint
        // the WAL: storage work, so without the GIL.
        py.detach(move || drop(taken));
    }

    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// The path or URL given at open (":memory:" for a private in-memory
    /// store), with a URL's password hidden.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The rules in force: the built-in rules merged with those given.
    #[getter]
    fn rules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::to_py(py, &self.handle()?.rules().to_value())
    }

    /// The version number the store gave these rules; rejections record it.
    #[getter]
    fn rules_version(&self) -> PyResult<i64> {
        Ok(self.handle()?.rules_version())
    }

    /// "full" or "normal".
    #[getter]
    fn durability(&self) -> PyResult<&'static str> {
        Ok(self.handle()?.durability().as_str())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().handle()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<ingest.Ingestor {:?}{state}>", self.path)
    }
}
