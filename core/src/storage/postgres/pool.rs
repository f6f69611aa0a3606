//! A bounded pool of connections, checked by their own failures.
//!
//! Small on purpose: no background threads (a pool's helper threads outlive
//! `ingest_close` and show up as leaks under valgrind in the C programs that
//! embed the library), no idle reaping (connections are few and cheap to
//! keep), and no ping before use: that would be one more round trip on
//! every call. A checkout of a connection idle for 100 ms or more only
//! reads what its socket holds (no round trip, about a millisecond of the
//! client's timer): a server that hung up meanwhile is seen there, and the
//! connection retired before a call is sent on it.
//!
//! Instead a connection whose statement failed at the connection level
//! (lost, the server shutting down, a server that no longer takes writes)
//! is never given back, and the failure retires every connection opened
//! before it: after a restart or a failover those all lead to the old
//! server, and each would otherwise fail one more call. A call whose
//! connection was lost before anything of it could be committed runs once
//! more on a new connection, so that a pooled connection the server closed
//! while it was idle (a restart, `idle_session_timeout`) costs no failed
//! call. One lost during a COMMIT is not repeated here: whether it was kept
//! is unknown, and the caller's retry (safe, as the dedup key makes every
//! retry) answers it.

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
    /// Idle connections, each with the generation it was opened in.
    idle: Vec<(u64, Connection)>,
    /// Connections in use or idle.
    open: usize,
    /// Raised by each connection-level failure: connections of an earlier
    /// generation are closed rather than used again.
    generation: u64,
}

/// A connection out of the pool; given back when dropped.
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    generation: u64,
    conn: Option<Connection>,
}

/// Whether a call may run again after its connection was lost in doubt.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// Reads: running one twice changes nothing.
    Always,
    /// Writes: only when the connection was lost before the commit.
    BeforeCommit,
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
                generation: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only a list and counts: a panic cannot leave them torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `op` on a pooled connection, and once more on a new connection
    /// when the first was lost where `repeat` allows it.
    pub(super) fn run<T>(&self, repeat: Repeat, mut op: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.get()?;
        match op(&mut conn) {
            Err(_) if conn.lost_before_commit() || (repeat == Repeat::Always && !conn.is_fit()) => {
                // Given back first: its failure retires the others, so the
                // second try opens a connection to whichever server is now
                // the primary.
                drop(conn);
                let mut again = self.get()?;
                op(&mut again)
            }
            other => other,
        }
    }

    pub(super) fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some((generation, mut conn)) = state.idle.pop() {
                drop(state);
                if conn.hung_up() {
                    // Retires the rest of its generation, as a failed
                    // call's connection does: they lead to the same server.
                    self.give_back(generation, conn);
                    state = self.lock();
                    continue;
                }
                return Ok(Pooled {
                    pool: self,
                    generation,
                    conn: Some(conn),
                });
            }
            if state.open < self.max {
                state.open += 1;
                let generation = state.generation;
                drop(state);
                return match Connection::connect(&self.config) {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        generation,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.release_slots(1);
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

    fn release_slots(&self, n: usize) {
        self.lock().open -= n;
        self.freed.notify_all();
    }

    fn give_back(&self, generation: u64, mut conn: Connection) {
        let mut state = self.lock();
        let retired: Vec<(u64, Connection)> = if !conn.is_fit() {
            // Only the first failure of a generation retires it: the
            // connections opened since lead to the server now answering.
            if generation == state.generation {
                state.generation += 1;
                std::mem::take(&mut state.idle)
            } else {
                Vec::new()
            }
        } else if generation < state.generation {
            Vec::new()
        } else {
            conn.idle();
            state.idle.push((generation, conn));
            drop(state);
            self.freed.notify_one();
            return;
        };
        drop(state);
        // Closed outside the lock: closing a connection waits for its
        // server to hang up.
        let n = retired.len() + 1;
        drop(retired);
        drop(conn);
        self.release_slots(n);
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
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(self.generation, conn);
        }
    }
}
