//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// What went wrong, for callers that react differently to different failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Input or output failed (the source is the `io::Error`).
    Io,
    /// An argument is malformed: a bad store path, name, or base32 string.
    InvalidInput,
    /// The input is of a kind Nix cannot represent (a device node, a socket in a NAR).
    Unsupported,
    /// A file that should be in a known format (a `registration`) is not.
    Corrupt,
    /// A size or count does not fit.
    Overflow,
}

/// An error with its kind, the path or file it concerns, and its source.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", context_prefix(.path.as_ref(), *.line))]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    line: Option<u64>,
    #[source]
    source: Option<io::Error>,
}

fn context_prefix(path: Option<&PathBuf>, line: Option<u64>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("{}:{l}: ", p.display()),
        (Some(p), None) => format!("{}: ", p.display()),
        (None, Some(l)) => format!("line {l}: "),
        (None, None) => String::new(),
    }
}

impl Error {
    /// A new error of `kind` with a message.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            path: None,
            line: None,
            source: None,
        }
    }

    /// An I/O error concerning `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            kind: ErrorKind::Io,
            message: source.to_string(),
            path: Some(path.into()),
            line: None,
            source: Some(source),
        }
    }

    /// Adds the path the error concerns (kept if one is already set).
    #[must_use]
    pub(crate) fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }

    /// Adds the 1-based line number of the input the error concerns.
    #[must_use]
    pub(crate) fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file or store path the error concerns, when known.
    #[must_use]
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// The 1-based line of the input the error concerns, when known.
    #[must_use]
    pub fn line(&self) -> Option<u64> {
        self.line
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
