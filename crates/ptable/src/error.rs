//! The crate's error type.

use std::fmt;

/// What went wrong, for callers that match on it (the CLI maps these to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing the backing failed.
    Io,
    /// An option is invalid (unknown table type, a size of zero, a malformed GUID).
    InvalidInput,
    /// The disk is too small for the layout or the filesystems.
    NoSpace,
    /// A size or offset does not fit the format (an MBR beyond 2 TiB, an overflow).
    Overflow,
    /// Data read back is malformed (bad signature, checksum, or out-of-range entries).
    Corrupt,
    /// A valid but unsupported feature (a sector size other than 512).
    Unsupported,
}

/// An error of this crate: a kind, a message naming the option or offset, and the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    offset: Option<u64>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
            offset: None,
            source: None,
        }
    }

    pub(crate) fn io(what: impl fmt::Display, offset: u64, source: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io,
            message: format!("{what} at byte {offset}"),
            offset: Some(offset),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn corrupt(what: impl fmt::Display, offset: u64) -> Self {
        Self {
            kind: ErrorKind::Corrupt,
            message: format!("{what} (at byte {offset})"),
            offset: Some(offset),
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The byte offset in the disk the error is about, when there is one.
    #[must_use]
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn overflow(what: &str) -> Error {
    Error::new(ErrorKind::Overflow, format!("{what} overflows"))
}
