//! Connections of the PostgreSQL backend, and a session that prepares each
//! statement once per connection.
//!
//! A statement sent as text is parsed and planned on every call, one more
//! round trip each time; the backend's statements are a few dozen fixed
//! texts, so each connection keeps its prepared ones.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement, Transaction};

use crate::error::Result;

/// Statements one connection keeps at most. The texts are a bounded set of
/// shapes; the bound only stops a misuse from growing without end.
const STATEMENTS: usize = 256;

/// A connection and the statements prepared on it.
pub(super) struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Statements run through a client (autocommit) or a transaction, each
/// prepared once per connection.
pub(super) struct Session<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<String, Statement>,
}

/// A session inside a transaction.
pub(super) type Tx<'a, 'b> = Session<'a, Transaction<'b>>;

pub(super) type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl Connection {
    pub(super) fn connect(config: &postgres::Config) -> std::result::Result<Self, postgres::Error> {
        Ok(Connection {
            client: config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    /// Whether the connection still answers (one round trip).
    pub(super) fn is_usable(&mut self) -> bool {
        self.client.simple_query("").is_ok()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Run `f` in a transaction: commit on `Ok`, roll back on `Err`.
    pub(super) fn transaction<T>(&mut self, f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T>) -> Result<T> {
        let mut tx = self.client.transaction()?;
        let out = f(&mut Session {
            client: &mut tx,
            statements: &mut self.statements,
        })?;
        tx.commit()?;
        Ok(out)
    }

    /// Statements outside a transaction, each committed on its own.
    pub(super) fn session(&mut self) -> Session<'_, Client> {
        Session {
            client: &mut self.client,
            statements: &mut self.statements,
        }
    }
}

impl<C: GenericClient> Session<'_, C> {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(sql)?;
        if self.statements.len() >= STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    pub(super) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let statement = self.prepared(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    /// Statements without parameters, sent as they are (DDL, settings).
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql)?)
    }
}
