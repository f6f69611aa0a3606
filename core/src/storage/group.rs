//! Group commit: concurrent writers share one transaction and one sync.
//!
//! Each caller queues its items. Whoever finds no write in progress becomes
//! the leader: it takes everything queued (its own items among them), writes
//! it all in one transaction, and hands every caller its own slice of the
//! results. A caller answers only after the transaction holding its data has
//! committed, so each caller's data is durable before it hears "accepted".
//! If the group's transaction fails, every caller in it gets the error and
//! nothing of any of them was kept, so all of them can retry.
//!
//! A lone caller leads at once and waits for no one: group commit costs
//! nothing without concurrency.
//!
//! With concurrency, a leader may wait a little for the callers of the last
//! groups to come back. Without that, callers settle into two cohorts: the
//! callers of one group return while the next group, made of those who
//! queued during its sync, is already being written, so each group holds
//! half of them. The wait is bounded by half the last commit's time, made
//! only while groups keep showing several callers, and dropped as soon as
//! one wait finds no one coming (callers that take turns, not race).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::{WriteItem, Written};
use crate::error::{Error, Result, StorageKind};
use crate::failure::FailPoint;

/// The most items one group takes, so one transaction stays bounded.
const MAX_GROUP_ITEMS: usize = 50_000;

/// The longest a leader waits for callers to come back.
const MAX_WAIT: Duration = Duration::from_millis(1);

/// Items handed back with what the database did with each, in order.
pub(crate) type Committed = (Vec<WriteItem>, Vec<Written>);

struct Job {
    ticket: u64,
    caller: ThreadId,
    items: Vec<WriteItem>,
    fail: Option<FailPoint>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    done: HashMap<u64, Result<Committed>>,
    leading: bool,
    next_ticket: u64,
    /// The callers of the last group, and how many distinct callers the
    /// last two groups had: how many a leader may expect back.
    last_callers: HashSet<ThreadId>,
    expected: usize,
    /// How long the last group took to write.
    last_write: Duration,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    changed: Condvar,
    /// A job was queued: wakes a leader waiting for callers.
    arrived: Condvar,
}

impl GroupCommit {
    /// Write `items` as part of a group. `run` writes a whole group in one
    /// transaction, failing at `fail` if given; only one `run` is in
    /// progress at a time.
    pub(crate) fn write(
        &self,
        items: Vec<WriteItem>,
        fail: Option<FailPoint>,
        run: impl Fn(&[WriteItem], Option<FailPoint>) -> Result<Vec<Written>>,
    ) -> Result<Committed> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        let caller = std::thread::current().id();
        st.queue.push_back(Job {
            ticket,
            caller,
            items,
            fail,
        });
        // A leader waiting for callers needs waking once, when all are in.
        if st.leading && st.queue.len() >= st.expected {
            self.arrived.notify_one();
        }
        loop {
            if let Some(result) = st.done.remove(&ticket) {
                return result;
            }
            if st.leading {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leading = true;
            st = self.wait_for_callers(st);
            let jobs = take_group(&mut st.queue);
            let callers: HashSet<ThreadId> = jobs.iter().map(|j| j.caller).collect();
            st.expected = callers.union(&st.last_callers).count();
            st.last_callers = callers;
            drop(st);
            let mut lead = Leading {
                group: self,
                tickets: jobs.iter().map(|j| j.ticket).collect(),
            };
            let started = Instant::now();
            let results = run_group(jobs, &run);
            let took = started.elapsed();
            lead.finish(results, took);
            // The guard takes the lock to step down: let it go first.
            drop(lead);
            st = self.lock();
        }
    }

    /// As leader: wait, within bounds, until as many callers are queued as
    /// the last two groups had (see the module documentation).
    fn wait_for_callers<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.expected < 2 || st.queue.len() >= st.expected {
            return st;
        }
        let until = Instant::now() + (st.last_write / 2).min(MAX_WAIT);
        while st.queue.len() < st.expected {
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                // No one came in time: they take turns rather than race, so
                // stop waiting until a group shows several callers again.
                st.expected = 1;
                break;
            };
            st = self.arrived.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        st
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only queues and flags; a panic cannot leave it torn
        // (the Leading guard below repairs the flag).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn take_group(queue: &mut VecDeque<Job>) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut items = 0;
    while let Some(job) = queue.front() {
        if !jobs.is_empty() && items + job.items.len() > MAX_GROUP_ITEMS {
            break;
        }
        items += job.items.len();
        jobs.extend(queue.pop_front());
    }
    jobs
}

fn run_group(
    jobs: Vec<Job>,
    run: &impl Fn(&[WriteItem], Option<FailPoint>) -> Result<Vec<Written>>,
) -> Vec<(u64, Result<Committed>)> {
    // One armed failure strikes the whole group: it is one transaction.
    let fail = jobs.iter().find_map(|j| j.fail);
    let lens: Vec<(u64, usize)> = jobs.iter().map(|j| (j.ticket, j.items.len())).collect();
    let all: Vec<WriteItem> = jobs.into_iter().flat_map(|j| j.items).collect();
    match run(&all, fail) {
        Ok(written) if written.len() == all.len() => {
            let mut items = all.into_iter();
            let mut written = written.into_iter();
            lens.into_iter()
                .map(|(t, n)| {
                    (
                        t,
                        Ok((items.by_ref().take(n).collect(), written.by_ref().take(n).collect())),
                    )
                })
                .collect()
        }
        Ok(_) => lens
            .into_iter()
            .map(|(t, _)| {
                (
                    t,
                    Err(Error::storage(StorageKind::Other, "the store answered out of order")),
                )
            })
            .collect(),
        Err(e) => lens.into_iter().map(|(t, _)| (t, Err(e.shared_copy()))).collect(),
    }
}

/// Held by the leader while it writes: whatever happens, even a panic, the
/// leadership is given up and every caller of the group gets an answer.
struct Leading<'a> {
    group: &'a GroupCommit,
    tickets: Vec<u64>,
}

impl Leading<'_> {
    fn finish(&mut self, results: Vec<(u64, Result<Committed>)>, took: Duration) {
        let mut st = self.group.lock();
        st.done.extend(results);
        st.last_write = took;
        self.tickets.clear();
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut st = self.group.lock();
        for t in self.tickets.drain(..) {
            st.done.insert(
                t,
                Err(Error::storage(
                    StorageKind::Other,
                    "the group's writer panicked; nothing was kept",
                )),
            );
        }
        st.leading = false;
        self.group.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;

    fn rejected(n: usize) -> Vec<WriteItem> {
        (0..n)
            .map(|i| WriteItem::Rejected {
                raw: i.to_string(),
                digest: [0; 32],
                reasons: vec![],
                new_attempt: true,
            })
            .collect()
    }

    #[test]
    fn concurrent_callers_share_transactions_and_get_their_own_results() {
        let group = Arc::new(GroupCommit::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (1..=8)
            .map(|n| {
                let (group, runs, start) = (group.clone(), runs.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let (items, written) = group
                        .write(rejected(n), None, |all, _| {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok(vec![Written::Rejected; all.len()])
                        })
                        .unwrap();
                    assert_eq!((items.len(), written.len()), (n, n));
                    assert!(matches!(&items[n - 1], WriteItem::Rejected { raw, .. } if *raw == (n - 1).to_string()));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(runs.load(Ordering::SeqCst) < 8, "some callers shared a transaction");
    }

    #[test]
    fn a_failed_group_fails_every_caller_and_a_panic_hangs_no_one() {
        let group = GroupCommit::default();
        let err = group
            .write(rejected(2), Some(FailPoint::AfterInsert), |_, fail| {
                Err(Error::Injected(fail.unwrap()))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Injected(FailPoint::AfterInsert)));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.write(rejected(1), None, |_, _| panic!("boom"))
        }));
        assert!(panicked.is_err());
        let ok = group.write(rejected(1), None, |all, _| Ok(vec![Written::Rejected; all.len()]));
        assert!(ok.is_ok(), "the next caller leads again");
    }
}
