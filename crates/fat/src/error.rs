//! The crate's error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, for callers that match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading a source or writing the backing failed.
    Io,
    /// An option or a name is invalid (a label with illegal characters, a name FAT cannot store).
    InvalidInput,
    /// The contents do not fit.
    NoSpace,
    /// A size does not fit the format.
    Overflow,
    /// A source is not a regular file or directory (FAT stores neither symlinks nor devices).
    Unsupported,
}

/// An error of this crate: a kind, a message naming the path or option, and the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    #[source]
    source: Option<std::io::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
            path: None,
            source: None,
        }
    }

    pub(crate) fn io(what: impl fmt::Display, path: Option<&Path>, source: std::io::Error) -> Self {
        let message = match path {
            Some(p) => format!("{what} {}", p.display()),
            None => what.to_string(),
        };
        Self {
            kind: ErrorKind::Io,
            message,
            path: path.map(Path::to_path_buf),
            source: Some(source),
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The host path the error is about, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
