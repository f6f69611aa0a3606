//! The one error type of the core, with stable kinds the bindings map to
//! status codes and exception classes.

use std::fmt;

use crate::failure::FailPoint;

/// Why a storage operation failed, as far as the database can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// Another connection held a lock past the busy timeout. Retry later.
    Busy,
    /// The operating system reported an I/O error, or the file cannot be opened.
    Io,
    /// The file is not a database, or its contents are damaged.
    Corrupt,
    /// The disk or the database's size limit is full.
    Full,
    /// The database (or its directory) cannot be written.
    ReadOnly,
    /// Any other failure reported by the database.
    Other,
    /// The database server cannot be reached, or is not the primary any
    /// more: a restart or a failover is under way. The call may have been
    /// committed just before the connection was lost; retrying it is safe
    /// (a stored event answers `duplicate`). Retry later.
    Unavailable,
}

impl StorageKind {
    /// The stable lower-case name used in messages and by the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Busy => "busy",
            StorageKind::Io => "io",
            StorageKind::Corrupt => "corrupt",
            StorageKind::Full => "full",
            StorageKind::ReadOnly => "read_only",
            StorageKind::Other => "other",
            StorageKind::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every kind of error, flat, for bindings that need one code per kind.
///
/// The order and meaning of these never change; new kinds are only appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// [`Error::InvalidRules`]: the rules document is malformed.
    InvalidRules,
    /// [`Error::InvalidArgument`]: an argument is malformed.
    InvalidArgument,
    /// [`Error::Injected`]: a failure armed with
    /// [`Ingestor::simulate_failure`](crate::Ingestor::simulate_failure).
    Injected,
    /// A storage error of kind [`StorageKind::Busy`]: a lock was held past
    /// the busy timeout. Retry later.
    Busy,
    /// A storage error of kind [`StorageKind::Io`]: an I/O error, or a store
    /// that cannot be opened or reached.
    Io,
    /// A storage error of kind [`StorageKind::Corrupt`]: not a database, or
    /// a damaged one.
    Corrupt,
    /// A storage error of kind [`StorageKind::Full`]: the disk or the
    /// database's size limit is full.
    Full,
    /// A storage error of kind [`StorageKind::ReadOnly`]: the database
    /// cannot be written.
    ReadOnly,
    /// A storage error of kind [`StorageKind::Other`]: any other failure of
    /// the database.
    Storage,
    /// [`Error::Forbidden`]: the caller may not do this (a client's key
    /// writing or reading as another client).
    Forbidden,
    /// A storage error of kind [`StorageKind::Unavailable`]: the database
    /// server cannot be reached or is not the primary (a restart or a
    /// failover). Retry later; a retry of a write is safe.
    Unavailable,
}

impl ErrorKind {
    /// The stable snake_case name (`"read_only"`), shown by the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRules => "invalid_rules",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Injected => "injected",
            ErrorKind::Busy => "busy",
            ErrorKind::Io => "io",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Full => "full",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::Storage => "storage",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors returned by the core. Rejected events are not errors: they are
/// [`Outcome::Rejected`](crate::Outcome::Rejected).
///
/// A call that returns an error kept nothing of what it was asked to write
/// (except after [`FailPoint::AfterCommit`], whose whole point is that the
/// data is stored and the answer is lost, and [`StorageKind::Unavailable`],
/// where the connection may have been lost after the commit); the same call
/// can be retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules document is malformed; the message names the key.
    #[error("invalid rules: {0}")]
    InvalidRules(String),
    /// An argument is malformed: JSON that does not parse, a bad query,
    /// an unknown failure point, input nested too deep or too large.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A failure armed with [`Ingestor::simulate_failure`](crate::Ingestor::simulate_failure).
    #[error("injected failure at {0}")]
    Injected(FailPoint),
    /// The caller may not do this: a caller that writes and reads as one
    /// client (an API key's) named another. Nothing was kept.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The database failed.
    #[error("storage error ({kind}): {message}")]
    Storage {
        /// What kind of failure, as far as the database can tell.
        kind: StorageKind,
        /// What failed, for people.
        message: String,
        /// The database client's own error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRules(_) => ErrorKind::InvalidRules,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Injected(_) => ErrorKind::Injected,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Storage { kind, .. } => match kind {
                StorageKind::Busy => ErrorKind::Busy,
                StorageKind::Io => ErrorKind::Io,
                StorageKind::Corrupt => ErrorKind::Corrupt,
                StorageKind::Full => ErrorKind::Full,
                StorageKind::ReadOnly => ErrorKind::ReadOnly,
                StorageKind::Other => ErrorKind::Storage,
                StorageKind::Unavailable => ErrorKind::Unavailable,
            },
        }
    }

    /// True for every error that came from the database (including an
    /// injected failure, which stands in for one).
    pub fn is_storage(&self) -> bool {
        matches!(self, Error::Storage { .. } | Error::Injected(_))
    }

    /// The same error for another caller of a failed group commit: same
    /// kind and message (the source stays with the first).
    pub(crate) fn shared_copy(&self) -> Self {
        match self {
            Error::InvalidRules(m) => Error::InvalidRules(m.clone()),
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Injected(p) => Error::Injected(*p),
            Error::Forbidden(m) => Error::Forbidden(m.clone()),
            Error::Storage { kind, message, .. } => Error::storage(*kind, message.clone()),
        }
    }

    pub(crate) fn rules(msg: impl Into<String>) -> Self {
        Error::InvalidRules(msg.into())
    }

    pub(crate) fn arg(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub(crate) fn storage(kind: StorageKind, message: impl Into<String>) -> Self {
        Error::Storage {
            kind,
            message: message.into(),
            source: None,
        }
    }
}

/// Result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
