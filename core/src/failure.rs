//! Failure injection: a thread-safe switch that makes the next N calls fail
//! at a chosen point, so clients and tests can exercise the real rollback and
//! retry paths.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use crate::error::Error;

/// Where an armed failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailPoint {
    /// The write fails before anything is written; a retry is `accepted`.
    BeforeInsert,
    /// Rows are written, then a real failing statement aborts the transaction
    /// before the commit; a retry is `accepted`.
    AfterInsert,
    /// The data is durably committed, then the call reports an error (the
    /// answer is lost, as with a network timeout); a retry is `duplicate`.
    AfterCommit,
    /// The aggregate read fails; the stale cached result is returned, or an error.
    Aggregate,
}

impl FailPoint {
    /// Every point, in the order of the documentation.
    pub const ALL: [FailPoint; 4] = [
        FailPoint::BeforeInsert,
        FailPoint::AfterInsert,
        FailPoint::AfterCommit,
        FailPoint::Aggregate,
    ];

    /// The stable snake_case name (`"after_insert"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailPoint::BeforeInsert => "before_insert",
            FailPoint::AfterInsert => "after_insert",
            FailPoint::AfterCommit => "after_commit",
            FailPoint::Aggregate => "aggregate",
        }
    }

    /// Points that strike write calls (`submit`, `submit_batch`, `reprocess_rejected`).
    pub(crate) fn is_write(self) -> bool {
        !matches!(self, FailPoint::Aggregate)
    }
}

impl fmt::Display for FailPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailPoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        FailPoint::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            Error::arg(format!(
                "unknown failure point {s:?}; expected one of before_insert, after_insert, after_commit, aggregate"
            ))
        })
    }
}

/// The armed failure, if any: one point and how many more calls it strikes.
#[derive(Debug, Default)]
pub(crate) struct FailureSwitch {
    armed: Mutex<Option<(FailPoint, u32)>>,
}

impl FailureSwitch {
    /// Arm `point` for the next `times` calls that reach it; `times == 0` disarms.
    pub(crate) fn arm(&self, point: FailPoint, times: u32) {
        *self.lock() = (times > 0).then_some((point, times));
    }

    pub(crate) fn clear(&self) {
        *self.lock() = None;
    }

    /// The armed point and remaining count, without consuming it.
    pub(crate) fn armed(&self) -> Option<(FailPoint, u32)> {
        *self.lock()
    }

    /// Consume one strike if a failure of one of `points` is armed, and
    /// return that point. Checked once per call, so one call uses one strike.
    pub(crate) fn take(&self, points: impl Fn(FailPoint) -> bool) -> Option<FailPoint> {
        let mut armed = self.lock();
        let (point, left) = (*armed)?;
        if !points(point) {
            return None;
        }
        *armed = (left > 1).then_some((point, left - 1));
        Some(point)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(FailPoint, u32)>> {
        // The guarded value is plain data, always valid: a panic elsewhere
        // while holding the lock cannot leave it half-written.
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in FailPoint::ALL {
            assert_eq!(p.as_str().parse::<FailPoint>().unwrap(), p);
        }
        let err = "later".parse::<FailPoint>().unwrap_err();
        assert!(err.to_string().contains("\"later\""));
    }

    #[test]
    fn strikes_the_next_n_matching_calls_only() {
        let s = FailureSwitch::default();
        s.arm(FailPoint::AfterInsert, 2);
        assert_eq!(s.take(|p| p == FailPoint::Aggregate), None);
        assert_eq!(s.take(FailPoint::is_write), Some(FailPoint::AfterInsert));
        assert_eq!(s.armed(), Some((FailPoint::AfterInsert, 1)));
        assert_eq!(s.take(FailPoint::is_write), Some(FailPoint::AfterInsert));
        assert_eq!(s.take(FailPoint::is_write), None);
        s.arm(FailPoint::Aggregate, 0);
        assert_eq!(s.armed(), None);
    }
}
