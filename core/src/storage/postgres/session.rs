//! Connections of the PostgreSQL backend, and a session that prepares each
//! statement once per connection.
//!
//! A statement sent as text is parsed and planned on every call, one more
//! round trip each time; the backend's statements are a few dozen fixed
//! texts, so each connection keeps its prepared ones.
//!
//! A connection is not checked before use (that would be a round trip per
//! call): it learns it is unfit from the failure of its own statements. A
//! connection-level failure (the socket closed, the server shutting down, a
//! server that no longer takes writes) marks it broken, and the pool drops
//! it, with every connection opened before it, instead of keeping it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement, Transaction};

use crate::error::{Error, ErrorKind, Result};

/// Statements one connection keeps at most. The texts are a bounded set of
/// shapes; the bound only stops a misuse from growing without end.
const STATEMENTS: usize = 256;

/// A connection and the statements prepared on it.
pub(super) struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
    health: Health,
    /// When it last went back to the pool.
    idle_since: Instant,
}

/// How long a connection must have sat idle before a checkout looks for a
/// hang-up (see [`Connection::hung_up`]): the look waits for the client's
/// timer, about a millisecond, which a busy pool must not pay per call.
const IDLE_BEFORE_LOOK: Duration = Duration::from_millis(100);

/// What the failures of a connection's statements tell of it.
#[derive(Default)]
struct Health {
    /// A statement failed in a way no later statement on this connection
    /// can recover from: it must not go back to the pool.
    broken: bool,
    /// The failure struck where the server may have committed what was
    /// sent (a COMMIT, or a statement outside a transaction), so whether
    /// it was kept is unknown.
    in_doubt: bool,
}

/// Statements run through a client (autocommit) or a transaction, each
/// prepared once per connection.
pub(super) struct Session<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<String, Statement>,
    health: &'a mut Health,
    /// Outside a transaction each statement commits itself.
    autocommit: bool,
}

/// A session inside a transaction.
pub(super) type Tx<'a, 'b> = Session<'a, Transaction<'b>>;

pub(super) type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The error of a failed statement, noting on `health` what it says of the
/// connection.
fn failed(health: &mut Health, may_have_committed: bool, e: postgres::Error) -> Error {
    let e = Error::from(e);
    if e.kind() == ErrorKind::Unavailable {
        health.broken = true;
        health.in_doubt |= may_have_committed;
    }
    e
}

impl Connection {
    pub(super) fn connect(config: &postgres::Config) -> std::result::Result<Self, postgres::Error> {
        Ok(Connection {
            client: config.connect(NoTls)?,
            statements: HashMap::new(),
            health: Health::default(),
            idle_since: Instant::now(),
        })
    }

    /// Whether the connection may serve another call.
    pub(super) fn is_fit(&self) -> bool {
        !self.health.broken && !self.client.is_closed()
    }

    /// Whether the server hung up while the connection sat idle (a
    /// restart, a failover), for a connection idle since
    /// [`IDLE_BEFORE_LOOK`] or longer: reads what the socket holds, sending
    /// nothing, so no round trip. A call on such a connection could not
    /// tell a statement that never left from one lost after its commit,
    /// and a lone event's statement commits on its own: it would fail
    /// where a new connection succeeds.
    pub(super) fn hung_up(&mut self) -> bool {
        if self.idle_since.elapsed() < IDLE_BEFORE_LOOK {
            return false;
        }
        use postgres::fallible_iterator::FallibleIterator;
        // No LISTEN is ever issued, so nothing is lost by taking a
        // notification off the queue; an error is the connection's end.
        // A zero timeout, not `iter()`: the wait, however short, lets the
        // client's runtime ask the kernel what arrived on the socket, where
        // a bare poll sees only what it was told before.
        let polled = self.client.notifications().timeout_iter(Duration::ZERO).next();
        if polled.is_err() || self.client.is_closed() {
            self.health.broken = true;
        }
        self.health.broken
    }

    /// Note that it goes back to the pool now.
    pub(super) fn idle(&mut self) {
        self.idle_since = Instant::now();
    }

    /// Whether its last call failed because the connection was lost (or
    /// its server stopped taking writes) before anything of the call could
    /// be committed: the call can run again, on another connection, as if
    /// it had never been made.
    pub(super) fn lost_before_commit(&self) -> bool {
        self.health.broken && !self.health.in_doubt
    }

    /// Run `f` in a transaction: commit on `Ok`, roll back on `Err`.
    pub(super) fn transaction<T>(&mut self, f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T>) -> Result<T> {
        let health = &mut self.health;
        let mut tx = self.client.transaction().map_err(|e| failed(health, false, e))?;
        let out = f(&mut Session {
            client: &mut tx,
            statements: &mut self.statements,
            health,
            autocommit: false,
        })?;
        tx.commit().map_err(|e| failed(health, true, e))?;
        Ok(out)
    }

    /// Statements outside a transaction, each committed on its own.
    pub(super) fn session(&mut self) -> Session<'_, Client> {
        Session {
            client: &mut self.client,
            statements: &mut self.statements,
            health: &mut self.health,
            autocommit: true,
        }
    }
}

impl<C: GenericClient> Session<'_, C> {
    fn failed(&mut self, e: postgres::Error) -> Error {
        failed(self.health, self.autocommit, e)
    }

    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        // Preparing commits nothing, even outside a transaction.
        let statement = self.client.prepare(sql).map_err(|e| failed(self.health, false, e))?;
        if self.statements.len() >= STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params).map_err(|e| self.failed(e))
    }

    pub(super) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        let statement = self.prepared(sql)?;
        self.client.query_one(&statement, params).map_err(|e| self.failed(e))
    }

    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params).map_err(|e| self.failed(e))
    }

    /// Statements without parameters, sent as they are (DDL, settings).
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(|e| self.failed(e))
    }
}
