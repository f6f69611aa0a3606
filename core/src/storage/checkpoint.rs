//! WAL checkpoints on a thread of their own.
//!
//! A checkpoint copies the pages of the write-ahead log back into the
//! database file and syncs it. SQLite's automatic checkpoint does that
//! inside the commit that crosses the threshold, so one caller in every few
//! dozen batches waited for it: about a tenth of the time of a stream of
//! 1 000-event batches. Here the writer's commit only wakes this thread,
//! which checkpoints on its own connection while the writer goes on (a
//! passive checkpoint never blocks writers or readers).
//!
//! Nothing about durability changes: a commit is durable in the log before
//! its caller hears of it, checkpointed or not. If the thread falls far
//! behind (a burst of commits, a starved thread), the committing writer
//! checkpoints itself at [`Thresholds::backstop`] pages, as SQLite would,
//! so the log stays bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, MAIN_DB};

/// When to checkpoint, in pages of the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thresholds {
    /// Wake the thread once this many pages were written to the log since
    /// it was last woken (or since the log restarted).
    pub wake: u32,
    /// The writer checkpoints itself from this many pages on.
    pub backstop: u32,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Checkpoints the thread ran; for tests and curiosity.
    done: AtomicU64,
}

#[derive(Default)]
struct State {
    due: bool,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The checkpoint thread of one store; stopped and joined on drop, so no
/// thread outlives the store (a C caller's `ingest_close` ends them all).
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the database of `writer` on `own`, a second
    /// connection to the same file, and hand `writer`'s commits to it.
    /// `None` when no thread can be started: `writer` then keeps SQLite's
    /// automatic checkpoint at `at.wake`.
    pub(crate) fn start(writer: &mut Connection, own: Connection, at: Thresholds) -> Option<Self> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ingest-checkpoint".into())
                .spawn(move || run(&own, &shared))
                .ok()?
        };
        let hook = Arc::clone(&shared);
        // The log's length when the thread was last woken. The log keeps
        // growing while commits land during a checkpoint (it restarts only
        // once wholly copied back, and no reader is behind), so the thread
        // is woken for pages written since then, not for the log's length:
        // else every small commit would wake it for a checkpoint and a sync.
        let mut woken_at = 0;
        let installed = writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
            let pages = u32::try_from(pages).unwrap_or(0);
            if pages < woken_at {
                woken_at = 0; // the log restarted from its beginning
            }
            if pages >= at.backstop {
                // The commit has happened; an error here would make it look
                // failed, so a busy checkpoint is left to the next commit.
                let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
            } else if pages - woken_at >= at.wake {
                woken_at = pages;
                hook.lock().due = true;
                hook.wake.notify_one();
            }
            Ok(())
        }));
        let me = Checkpointer {
            shared,
            thread: Some(thread),
        };
        installed.ok().map(|()| me)
    }

    /// Checkpoints the thread has run.
    #[cfg(test)]
    pub(crate) fn done(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let mut state = shared.lock();
            while !state.due && !state.stop {
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.stop {
                return;
            }
            state.due = false;
        }
        // Busy (another process checkpointing) or failing: the next wake
        // tries again, and the writer's backstop bounds the log meanwhile.
        if conn.wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::PASSIVE).is_ok() {
            shared.done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn wal_file(dir: &std::path::Path) -> (Connection, Connection, std::path::PathBuf) {
        let path = dir.join("c.db");
        let writer = Connection::open(&path).unwrap();
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        (writer, Connection::open(&path).unwrap(), dir.join("c.db-wal"))
    }

    fn commit_pages(writer: &Connection, commits: usize) {
        for _ in 0..commits {
            writer.execute("INSERT INTO t VALUES (randomblob(6000))", []).unwrap();
        }
    }

    #[test]
    fn the_thread_checkpoints_once_the_log_is_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, own, _) = wal_file(dir.path());
        let at = Thresholds {
            wake: 20,
            backstop: u32::MAX,
        };
        let cp = Checkpointer::start(&mut writer, own, at).unwrap();
        commit_pages(&writer, 3);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(cp.done(), 0, "woken before the log reached {} pages", at.wake);
        commit_pages(&writer, 30);
        let until = Instant::now() + Duration::from_secs(10);
        while cp.done() == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(cp.done() > 0, "the thread never checkpointed");
        drop(cp);
        // Every commit stayed whole whatever the thread did meanwhile.
        let rows: i64 = writer.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 33);
    }

    #[test]
    fn small_commits_after_a_checkpoint_do_not_each_wake_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, own, wal) = wal_file(dir.path());
        // A reader in an old snapshot: the log cannot restart, so it stays
        // longer than `wake` however often the thread is woken.
        let reader = Connection::open(dir.path().join("c.db")).unwrap();
        reader.execute_batch("BEGIN; SELECT COUNT(*) FROM t;").unwrap();
        let at = Thresholds {
            wake: 20,
            backstop: u32::MAX,
        };
        let cp = Checkpointer::start(&mut writer, own, at).unwrap();
        for _ in 0..60 {
            commit_pages(&writer, 1);
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(100));
        let frames = (std::fs::metadata(&wal).unwrap().len() - 32) / (4096 + 24);
        let most = frames / u64::from(at.wake) + 1;
        assert!(cp.done() >= 1, "the thread never checkpointed");
        assert!(cp.done() <= most, "{} checkpoints for {frames} pages of log", cp.done());
        reader.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn the_writer_checkpoints_itself_past_the_backstop() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, own, wal) = wal_file(dir.path());
        // A thread that is never woken: only the backstop keeps the log short.
        let at = Thresholds {
            wake: u32::MAX,
            backstop: 12,
        };
        let cp = Checkpointer::start(&mut writer, own, at).unwrap();
        commit_pages(&writer, 200);
        assert_eq!(cp.done(), 0);
        // 200 commits of two pages or more, with the log restarted after
        // each checkpoint: a few backstops' worth of pages, not 400.
        let pages = std::fs::metadata(&wal).unwrap().len() / 4096;
        assert!(pages < 40, "the log grew to {pages} pages");
    }
}
