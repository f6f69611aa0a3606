//! A bounded pool of connections, checked before each use.
//!
//! Small on purpose: no background threads (a pool's helper threads outlive
//! `ingest_close` and show up as leaks under valgrind in the C programs that
//! embed the library), no idle reaping (connections are few and cheap to
//! keep). A connection that fails its check, or is found closed when given
//! back, is dropped and its place freed.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::session::Connection;
use crate::error::{Error, Result, StorageKind};

pub(super) struct Pool {
    config: postgres::Config,
    max: usize,
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Connection>,
    /// Connections in use or idle.
    open: usize,
}

/// A connection out of the pool; given back when dropped.
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Pool {
    /// Up to `max` connections; a caller waits at most `wait` for one.
    pub(super) fn new(config: postgres::Config, max: usize, wait: Duration) -> Self {
        Pool {
            config,
            max,
            wait,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only a list and a count: a panic cannot leave them torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(mut conn) = state.idle.pop() {
                drop(state);
                // The server may have closed it while idle (a restart, an
                // idle timeout): found here, not by the caller's statement.
                if conn.is_usable() {
                    return Ok(self.pooled(conn));
                }
                state = self.lock();
                state.open -= 1;
                continue;
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match Connection::connect(&self.config) {
                    Ok(conn) => Ok(self.pooled(conn)),
                    Err(e) => {
                        self.release_slot();
                        Err(e.into())
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::storage(
                    StorageKind::Busy,
                    format!(
                        "all {} PostgreSQL connections stayed in use for {:?}",
                        self.max, self.wait
                    ),
                ));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn pooled(&self, conn: Connection) -> Pooled<'_> {
        Pooled {
            pool: self,
            conn: Some(conn),
        }
    }

    fn release_slot(&self) {
        self.lock().open -= 1;
        self.freed.notify_one();
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if conn.is_closed() {
            self.pool.release_slot();
            return;
        }
        self.pool.lock().idle.push(conn);
        self.pool.freed.notify_one();
    }
}
