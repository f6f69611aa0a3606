//! Group commit: concurrent writers share one transaction and one sync.
//!
//! Each caller queues its items. Whoever finds no write in progress becomes
//! the leader: it takes everything queued (its own items among them), writes
//! it all in one transaction, and hands every caller its own slice of the
//! results. A caller answers only after the transaction holding its data has
//! committed, so each caller's data is durable before it hears "accepted".
//! If the group's transaction fails for a reason that one caller's items
//! may have caused, each caller is written again alone, so that only that
//! caller gets the error; other failures (busy, I/O, a full disk) reach
//! every caller in it, with nothing of any of them kept, so all of them can
//! retry. A caller with a failure armed is always written alone.
//!
//! A lone caller leads at once and waits for no one: group commit costs
//! nothing without concurrency.
//!
//! With concurrency, a leader may gather the callers of the last groups as
//! they come back, writing each one's items as it arrives, inside the open
//! transaction. Without that, callers settle into two cohorts: the callers
//! of one group return while the next group, made of those who queued
//! during its sync, is already being written, so each group holds half of
//! them. Gathering is bounded by half the last write's time, made only
//! while groups show several callers, and given up after a wait in which
//! a lone leader found no one coming (callers that take turns, not race).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::{WriteItem, Written};
use crate::error::{Error, Result, StorageKind};
use crate::failure::FailPoint;

/// The most items one group takes, so one transaction stays bounded.
const MAX_GROUP_ITEMS: usize = 50_000;

/// The longest a leader gathers callers.
const MAX_WAIT: Duration = Duration::from_millis(1);

/// Items handed back with what the database did with each, in order.
pub(crate) type Committed = (Vec<WriteItem>, Vec<Written>);

struct Job {
    caller: ThreadId,
    items: Vec<WriteItem>,
    fail: Option<FailPoint>,
    slot: Arc<Slot>,
}

/// What a queued caller is told.
enum Answer {
    /// Its group was written: its own share of the outcome.
    Done(Result<Committed>),
    /// The last leader finished with this caller first in the queue: it
    /// leads the next group.
    Lead,
}

/// Where one queued caller waits for its answer. Each waits on its own, so
/// that handing out a group's answers wakes its callers all at once. When
/// they shared one lock and condition they woke one after another, each
/// behind the previous one's unlock, which took longer than the group's
/// inserts.
#[derive(Default)]
struct Slot {
    answer: Mutex<Option<Answer>>,
    ready: Condvar,
}

impl Slot {
    fn tell(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
        self.ready.notify_one();
    }

    fn wait(&self) -> Answer {
        let mut answer = self.answer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(a) = answer.take() {
                return a;
            }
            answer = self.ready.wait(answer).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct State {
    queue: VecDeque<Job>,
    /// A leader is gathering or writing. Until it steps down, new callers
    /// queue; then the first of them, if any, leads next. So while no one
    /// leads, the queue is empty.
    leading: bool,
    /// The leader sleeps on `arrived` until someone queues.
    asleep: bool,
    /// The callers of the last group, and how many callers a leader may
    /// expect back: as many as the last two groups had between them.
    last_callers: HashSet<ThreadId>,
    expected: usize,
    /// False once a lone leader gathered in vain, until a group again holds
    /// several callers without gathering.
    patient: bool,
    /// How long the last group took to write.
    last_write: Duration,
}

impl Default for State {
    fn default() -> Self {
        State {
            queue: VecDeque::new(),
            leading: false,
            asleep: false,
            last_callers: HashSet::new(),
            expected: 0,
            patient: true,
            last_write: Duration::ZERO,
        }
    }
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// A job was queued while the leader slept.
    arrived: Condvar,
}

impl GroupCommit {
    /// Write `items` as part of a group. `run` writes a whole [`Group`] in
    /// one transaction; only one `run` is in progress at a time.
    pub(crate) fn write(
        &self,
        items: Vec<WriteItem>,
        fail: Option<FailPoint>,
        run: impl Fn(&mut Group<'_>) -> Result<Vec<Written>>,
    ) -> Result<Committed> {
        let own = Arc::new(Slot::default());
        let mut st = self.lock();
        st.queue.push_back(Job {
            caller: std::thread::current().id(),
            items,
            fail,
            slot: own.clone(),
        });
        if st.leading {
            if st.asleep {
                st.asleep = false;
                self.arrived.notify_one();
            }
            drop(st);
            match own.wait() {
                Answer::Done(result) => return result,
                Answer::Lead => st = self.lock(),
            }
        }
        st.leading = true;
        let mut group = Group::lead(self, st);
        let started = Instant::now();
        let result = match run(&mut group) {
            Err(e) if group.jobs.len() > 1 && maybe_one_callers(&e) => Results::PerCaller(group.each_alone(&run)),
            whole => Results::Whole(whole),
        };
        group.answer(result, started.elapsed(), &own)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only a queue and counters; a panic cannot leave it
        // torn (a Group steps down whatever happens).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a group's failure may come from what one caller sent (a
/// constraint, a limit of the database), rather than from the database
/// itself being busy, unreachable, full, read-only or corrupt, which a
/// caller written alone would meet again.
fn maybe_one_callers(e: &Error) -> bool {
    matches!(
        e,
        Error::Storage {
            kind: StorageKind::Other,
            ..
        }
    )
}

/// What a group's write gave: one result for all its callers, or one for
/// each caller written alone.
enum Results {
    Whole(Result<Vec<Written>>),
    PerCaller(Vec<Result<Vec<Written>>>),
}

/// The callers one transaction writes, led by one of them.
///
/// The backend's `run` takes the group's items with [`Group::next`] (each
/// caller's as it comes, to write them while others are still on their
/// way) or all at once with [`Group::gather`]; either way the group holds
/// what was handed out, and [`Group::items`] lists it for the rollups.
pub(crate) struct Group<'a> {
    commit: &'a GroupCommit,
    /// Every job taken, in order: its slot, caller and number of items.
    jobs: Vec<(Arc<Slot>, ThreadId, usize)>,
    /// Their items, one after another.
    items: Vec<WriteItem>,
    /// Jobs whose items `next` has handed out, and how many items they hold.
    handed: usize,
    handed_items: usize,
    /// Until when to gather callers; `None` once the group is closed.
    until: Option<Instant>,
    /// Gathering ended at `until` with fewer callers than expected.
    timed_out: bool,
    expected: usize,
    fail: Option<FailPoint>,
    /// While each caller is written alone: the caller, and whether its
    /// items were handed out.
    alone: Option<(usize, bool)>,
    answered: bool,
    /// How long the write took, once answered; the step down records it.
    took: Option<Duration>,
}

impl<'a> Group<'a> {
    /// Take what is queued, and decide whether to gather more.
    fn lead(commit: &'a GroupCommit, mut st: MutexGuard<'a, State>) -> Self {
        let gather = st.patient && st.expected >= 2 && st.queue.len() < st.expected;
        let mut group = Group {
            commit,
            jobs: Vec::new(),
            items: Vec::new(),
            handed: 0,
            handed_items: 0,
            until: gather.then(|| Instant::now() + (st.last_write / 2).min(MAX_WAIT)),
            timed_out: false,
            expected: st.expected,
            fail: None,
            alone: None,
            answered: false,
            took: None,
        };
        // The leader's own job is first in the queue (it found the queue
        // empty, or was handed the lead at its front), so the group holds it.
        group.take(&mut st, true);
        group
    }

    /// The failure armed for this group's transaction.
    pub(crate) fn fail(&self) -> Option<FailPoint> {
        self.fail
    }

    /// The next caller's items, gathering callers while the group is open;
    /// `None` once every caller of the group was handed out.
    pub(crate) fn next(&mut self) -> Option<&[WriteItem]> {
        if let Some((job, handed)) = &mut self.alone {
            if std::mem::replace(handed, true) {
                return None;
            }
            let job = *job;
            return Some(self.job_items(job));
        }
        if self.handed == self.jobs.len() {
            self.gather_more();
        }
        let &(_, _, len) = self.jobs.get(self.handed)?;
        let start = self.handed_items;
        self.handed += 1;
        self.handed_items += len;
        Some(&self.items[start..start + len])
    }

    /// Every item of the group, gathering callers first while it is open.
    #[cfg_attr(not(any(feature = "postgres", test)), allow(dead_code))]
    pub(crate) fn gather(&mut self) -> &[WriteItem] {
        while self.next().is_some() {}
        self.items()
    }

    /// The items handed out so far, in order.
    pub(crate) fn items(&self) -> &[WriteItem] {
        match self.alone {
            Some((job, true)) => self.job_items(job),
            Some((_, false)) => &[],
            None => &self.items[..self.handed_items],
        }
    }

    fn job_items(&self, job: usize) -> &[WriteItem] {
        let start: usize = self.jobs[..job].iter().map(|&(_, _, n)| n).sum();
        &self.items[start..start + self.jobs[job].2]
    }

    /// Write each caller's items again, alone, each in a transaction of its
    /// own (the group's failed as a whole and kept nothing).
    fn each_alone(&mut self, run: &impl Fn(&mut Group<'_>) -> Result<Vec<Written>>) -> Vec<Result<Vec<Written>>> {
        // The group is closed: no caller joins a transaction written alone.
        self.until = None;
        let out = (0..self.jobs.len())
            .map(|job| {
                self.alone = Some((job, false));
                run(self)
            })
            .collect();
        self.alone = None;
        out
    }

    /// Take queued jobs into the group, as long as it stays within its
    /// bound. A job with a failure armed is taken only alone (the failure
    /// strikes its transaction, and must not strike other callers): it
    /// closes the group it finds open, and a group it leads holds only it.
    /// Returns how many were taken.
    fn take(&mut self, st: &mut State, first: bool) -> usize {
        let mut taken = 0;
        while let Some(job) = st.queue.front() {
            let full = !self.jobs.is_empty() && self.items.len() + job.items.len() > MAX_GROUP_ITEMS;
            let armed = !self.jobs.is_empty() && (job.fail.is_some() || self.fail.is_some());
            if full || armed || (!first && job.fail.is_some()) {
                self.until = None;
                break;
            }
            let Some(job) = st.queue.pop_front() else { break };
            self.fail = job.fail;
            self.jobs.push((job.slot, job.caller, job.items.len()));
            if self.items.is_empty() {
                self.items = job.items;
            } else {
                self.items.extend(job.items);
            }
            taken += 1;
        }
        if self.jobs.len() >= self.expected {
            self.until = None;
        }
        taken
    }

    /// Wait, while the group is open, for at least one more caller.
    fn gather_more(&mut self) {
        let Some(until) = self.until else { return };
        let mut st = self.commit.lock();
        loop {
            if self.take(&mut st, false) > 0 || self.until.is_none() {
                return;
            }
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                self.until = None;
                self.timed_out = true;
                return;
            };
            st.asleep = true;
            st = self
                .commit
                .arrived
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.asleep = false;
        }
    }

    /// Hand every caller its share of `result`, and return the leader's.
    fn answer(mut self, result: Results, took: Duration, own: &Arc<Slot>) -> Result<Committed> {
        let unanswered = || {
            Err(Error::storage(
                StorageKind::Other,
                "the store did not answer every item",
            ))
        };
        let mut items = std::mem::take(&mut self.items).into_iter();
        let outcomes: Vec<Result<Committed>> = match result {
            Results::Whole(Ok(written)) if written.len() == items.len() && self.handed == self.jobs.len() => {
                let mut written = written.into_iter();
                self.jobs
                    .iter()
                    .map(|&(_, _, n)| Ok((items.by_ref().take(n).collect(), written.by_ref().take(n).collect())))
                    .collect()
            }
            Results::Whole(Ok(_)) => self.jobs.iter().map(|_| unanswered()).collect(),
            Results::Whole(Err(e)) => self.jobs.iter().map(|_| Err(e.shared_copy())).collect(),
            Results::PerCaller(results) => self
                .jobs
                .iter()
                .zip(results)
                .map(|(&(_, _, n), result)| {
                    let mine: Vec<WriteItem> = items.by_ref().take(n).collect();
                    match result {
                        Ok(written) if written.len() == n => Ok((mine, written)),
                        Ok(_) => unanswered(),
                        Err(e) => Err(e),
                    }
                })
                .collect(),
        };
        let mut mine = None;
        for ((slot, _, _), outcome) in self.jobs.iter().zip(outcomes) {
            if Arc::ptr_eq(slot, own) {
                mine = Some(outcome);
            } else {
                slot.tell(Answer::Done(outcome));
            }
        }
        self.answered = true;
        self.took = Some(took);
        mine.unwrap_or_else(|| {
            Err(Error::storage(
                StorageKind::Other,
                "the group left out its leader's own items",
            ))
        })
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        if !self.answered {
            for (slot, _, _) in &self.jobs {
                slot.tell(Answer::Done(Err(Error::storage(
                    StorageKind::Other,
                    "the group's writer panicked; nothing was kept",
                ))));
            }
        }
        let mut st = self.commit.lock();
        if let Some(took) = self.took {
            st.last_write = took;
        }
        let callers: HashSet<ThreadId> = self.jobs.iter().map(|(_, c, _)| *c).collect();
        if callers.len() >= 2 {
            st.patient = true;
        } else if self.timed_out {
            st.patient = false;
        }
        st.expected = callers.union(&st.last_callers).count();
        st.last_callers = callers;
        match st.queue.front() {
            Some(next) => next.slot.tell(Answer::Lead),
            None => st.leading = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;

    fn rejected(tag: &str, n: usize) -> Vec<WriteItem> {
        (0..n)
            .map(|i| WriteItem::Rejected {
                copy: crate::limits::RawCopy {
                    text: format!("{tag}{i}"),
                    bytes: 0,
                    digest: [0; 32],
                    exact: true,
                },
                reasons: vec![],
                new_attempt: true,
                client: None,
            })
            .collect()
    }

    fn raws(items: &[WriteItem]) -> Vec<&str> {
        items
            .iter()
            .map(|i| match i {
                WriteItem::Rejected { copy, .. } => copy.text.as_str(),
                WriteItem::Event { .. } => "event",
            })
            .collect()
    }

    fn all_rejected(g: &mut Group<'_>) -> Result<Vec<Written>> {
        Ok(vec![Written::Rejected; g.gather().len()])
    }

    /// A group that will gather a second caller for up to `wait`.
    fn expecting_two(wait: Duration) -> Arc<GroupCommit> {
        let commit = Arc::new(GroupCommit::default());
        {
            let mut st = commit.lock();
            st.expected = 2;
            st.last_write = wait * 2;
        }
        commit
    }

    /// Block until `n` callers are queued behind the leader.
    fn until_queued(commit: &GroupCommit, n: usize) {
        while commit.lock().queue.len() < n {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    #[test]
    fn concurrent_callers_share_transactions_and_get_their_own_results() {
        let commit = Arc::new(GroupCommit::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (1..=8)
            .map(|n| {
                let (commit, runs, start) = (commit.clone(), runs.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let tag = format!("t{n}-");
                    let (items, written) = commit
                        .write(rejected(&tag, n), None, |g| {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            all_rejected(g)
                        })
                        .unwrap();
                    assert_eq!((items.len(), written.len()), (n, n));
                    assert_eq!(raws(&items)[n - 1], format!("{tag}{}", n - 1));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(runs.load(Ordering::SeqCst) < 8, "some callers shared a transaction");
    }

    #[test]
    fn a_caller_arriving_while_the_leader_writes_joins_its_transaction() {
        let commit = expecting_two(Duration::from_millis(500));
        let runs = Arc::new(AtomicUsize::new(0));
        let leader = {
            let (commit, runs) = (commit.clone(), runs.clone());
            std::thread::spawn(move || {
                commit.write(rejected("a", 2), None, |g| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(raws(g.next().unwrap()), ["a0", "a1"]);
                    until_queued(&commit, 1);
                    assert_eq!(raws(g.next().unwrap()), ["b0"]);
                    assert!(g.next().is_none(), "both expected callers are in");
                    assert_eq!(raws(g.items()), ["a0", "a1", "b0"]);
                    Ok(vec![Written::Rejected; g.items().len()])
                })
            })
        };
        while !commit.lock().leading {
            std::thread::sleep(Duration::from_micros(100));
        }
        let (items, written) = commit
            .write(rejected("b", 1), None, |_| panic!("b was to join a's transaction"))
            .unwrap();
        assert_eq!((raws(&items), written), (vec!["b0"], vec![Written::Rejected]));
        let (items, _) = leader.join().unwrap().unwrap();
        assert_eq!(raws(&items), ["a0", "a1"]);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    /// A store that refuses any transaction holding a "poison" item, as a
    /// constraint of the database would.
    fn refusing_poison(g: &mut Group<'_>) -> Result<Vec<Written>> {
        let items = g.gather();
        if raws(items).iter().any(|r| r.starts_with("poison")) {
            return Err(Error::storage(StorageKind::Other, "CHECK constraint failed"));
        }
        Ok(vec![Written::Rejected; items.len()])
    }

    #[test]
    fn one_callers_refused_items_fail_only_that_caller() {
        let commit = expecting_two(Duration::from_millis(500));
        let leader = {
            let commit = commit.clone();
            std::thread::spawn(move || {
                commit.write(rejected("a", 2), None, |g| {
                    if g.alone.is_none() {
                        assert!(g.next().is_some());
                        until_queued(&commit, 1);
                    }
                    refusing_poison(g)
                })
            })
        };
        while !commit.lock().leading {
            std::thread::sleep(Duration::from_micros(100));
        }
        let err = commit
            .write(rejected("poison", 1), None, |_| panic!("was to join a's transaction"))
            .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
        let (items, written) = leader.join().unwrap().unwrap();
        assert_eq!((raws(&items), written.len()), (vec!["a0", "a1"], 2), "written alone");
    }

    #[test]
    fn a_busy_group_fails_every_caller_without_writing_each_again() {
        let commit = expecting_two(Duration::from_millis(500));
        let runs = Arc::new(AtomicUsize::new(0));
        let leader = {
            let (commit, runs) = (commit.clone(), runs.clone());
            std::thread::spawn(move || {
                commit.write(rejected("a", 1), None, |g| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    assert!(g.next().is_some());
                    until_queued(&commit, 1);
                    g.gather();
                    Err(Error::storage(StorageKind::Busy, "locked"))
                })
            })
        };
        while !commit.lock().leading {
            std::thread::sleep(Duration::from_micros(100));
        }
        let err = commit.write(rejected("b", 1), None, |_| panic!("b joins")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Busy);
        assert!(leader.join().unwrap().is_err());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the database, not a caller, was the cause"
        );
    }

    #[test]
    fn a_late_caller_with_a_failure_armed_waits_for_the_next_transaction() {
        let commit = expecting_two(Duration::from_millis(500));
        let leader = {
            let commit = commit.clone();
            std::thread::spawn(move || {
                commit.write(rejected("a", 1), None, |g| {
                    assert!(g.next().is_some());
                    until_queued(&commit, 1);
                    assert!(g.next().is_none(), "the armed caller was kept out");
                    assert_eq!(g.fail(), None);
                    Ok(vec![Written::Rejected])
                })
            })
        };
        while !commit.lock().leading {
            std::thread::sleep(Duration::from_micros(100));
        }
        let err = commit
            .write(rejected("b", 1), Some(FailPoint::AfterInsert), |g| {
                assert_eq!(raws(g.gather()), ["b0"]);
                Err(Error::Injected(g.fail().unwrap()))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Injected(FailPoint::AfterInsert)));
        assert!(
            leader.join().unwrap().is_ok(),
            "a's group was not struck by b's failure"
        );
    }

    #[test]
    fn a_lone_leader_that_gathered_in_vain_stops_gathering() {
        let commit = expecting_two(Duration::from_millis(1));
        let started = Instant::now();
        commit.write(rejected("a", 1), None, all_rejected).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(1), "it gathered first");
        {
            let mut st = commit.lock();
            assert!(!st.patient);
            st.expected = 2;
        }
        commit
            .write(rejected("a", 1), None, |g| {
                assert!(g.until.is_none(), "no gathering after a vain one");
                all_rejected(g)
            })
            .unwrap();
    }

    #[test]
    fn a_failed_group_fails_every_caller_and_a_panic_hangs_no_one() {
        let commit = GroupCommit::default();
        let err = commit
            .write(rejected("a", 2), Some(FailPoint::AfterInsert), |g| {
                Err(Error::Injected(g.fail().unwrap()))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Injected(FailPoint::AfterInsert)));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit.write(rejected("a", 1), None, |_| panic!("boom"))
        }));
        assert!(panicked.is_err());
        let ok = commit.write(rejected("a", 1), None, all_rejected);
        assert!(ok.is_ok(), "the next caller leads again");
    }

    #[test]
    fn a_store_that_leaves_callers_unwritten_fails_them() {
        let commit = GroupCommit::default();
        let err = commit.write(rejected("a", 2), None, |_| Ok(vec![])).unwrap_err();
        assert!(err.to_string().contains("did not answer every item"), "{err}");
    }
}
