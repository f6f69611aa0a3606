//! Real storage faults, made with the operating system rather than
//! simulated: a full filesystem (a size-limited tmpfs), a file that cannot be
//! written (the immutable attribute, which binds root too), and a directory
//! that vanishes under an open store. Each gives its documented error kind,
//! keeps nothing partial, and recovers once the fault is gone.
//!
//! Mounting and `chattr` need root, which the test machines and CI have; run
//! elsewhere, these tests fail saying so rather than pass without testing.

use std::path::{Path, PathBuf};
use std::process::Command;

use ingest_core::{Durability, ErrorKind, Ingestor, Query};
use serde_json::{json, Value};

use crate::common::all_events;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed (these tests need root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.path().to_str().unwrap(),
            ],
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn grow(&self, size: &str) {
        run(
            "mount",
            &["-o", &format!("remount,size={size}"), self.path().to_str().unwrap()],
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn batch(from: u64, n: u64) -> Vec<Value> {
    (from..from + n)
        .map(|i| json!({"client": format!("c{}", i % 50), "metric": "m", "value": i, "ts": 1_700_000_000_000u64 + i * 1000, "note": "x".repeat(200)}))
        .collect()
}

fn consistent(ing: &Ingestor) -> u64 {
    let events = all_events(ing).len() as u64;
    assert_eq!(
        ing.aggregate(&Query::default()).unwrap().totals.count,
        events,
        "rollups agree with events"
    );
    events
}

#[test]
fn a_full_disk_is_a_full_error_keeps_nothing_partial_and_recovers() {
    let disk = SmallDisk::new("512k");
    let db = disk.path().join("full.db");
    let ing = Ingestor::builder(&db).durability(Durability::Full).open().unwrap();
    let mut next = 0;
    let err = loop {
        match ing.submit_batch(&batch(next, 200)) {
            Ok(_) => next += 200,
            Err(e) => break e,
        }
        assert!(next < 1_000_000, "the disk never filled");
    };
    assert_eq!(err.kind(), ErrorKind::Full, "{err}");
    let stored = consistent(&ing);
    assert_eq!(stored, next, "the failed batch left nothing");
    disk.grow("64m");
    let outcomes = ing.submit_batch(&batch(next, 200)).unwrap();
    assert!(outcomes.iter().all(|o| o.status() == "accepted"));
    assert_eq!(consistent(&ing), next + 200);
    drop(ing);
    assert_eq!(
        consistent(&Ingestor::open(&db).unwrap()),
        next + 200,
        "and it is on disk"
    );
}

/// Sets the immutable attribute on `path` until dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Self {
        run("chattr", &["+i", path.to_str().unwrap()]);
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").args(["-i", self.0.to_str().unwrap()]).status();
    }
}

#[test]
fn a_file_that_cannot_be_written_is_read_only_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.db");
    {
        let ing = Ingestor::open(&db).unwrap();
        ing.submit_batch(&batch(0, 10)).unwrap();
    }
    // Closed cleanly: the WAL is checkpointed and gone, so the file is all.
    let lock = Immutable::set(&db);
    let ing = Ingestor::open(&db);
    let err = match ing {
        Err(e) => e,
        Ok(ing) => ing.submit_batch(&batch(10, 10)).unwrap_err(),
    };
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    drop(lock);
    let ing = Ingestor::open(&db).unwrap();
    assert_eq!(consistent(&ing), 10, "nothing partial");
    ing.submit_batch(&batch(10, 10)).unwrap();
    assert_eq!(consistent(&ing), 20);
}

#[test]
fn a_vanished_directory_is_an_error_not_a_silent_write() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("gone.db");
    let ing = Ingestor::open(&db).unwrap();
    ing.submit_batch(&batch(0, 10)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // Writing on would go to an unlinked file no one can ever read.
    let err = ing.submit_batch(&batch(10, 10)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("removed or replaced"));
    // Recovery: the directory is back, a new store opens there.
    std::fs::create_dir(&dir).unwrap();
    let again = Ingestor::open(&db).unwrap();
    again.submit_batch(&batch(10, 10)).unwrap();
    assert_eq!(consistent(&again), 10);
}
