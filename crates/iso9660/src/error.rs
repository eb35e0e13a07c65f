//! The crate's error type.

use std::path::PathBuf;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An option or the tree is not valid for an ISO image (names the key or path).
    InvalidInput,
    /// The tree holds something ISO 9660 cannot represent, or a size exceeds its limits.
    Unsupported,
    /// Reading a source file or writing the image failed.
    Io,
}

/// An error planning or writing an ISO image.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", what.as_ref().map(|w| format!("{w}: ")).unwrap_or_default())]
pub struct Error {
    kind: ErrorKind,
    what: Option<String>,
    message: String,
    path: Option<PathBuf>,
    #[source]
    source: Option<std::io::Error>,
}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        what: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            what: Some(what.into()),
            message: message.into(),
            path: None,
            source: None,
        }
    }

    pub(crate) fn io(path: Option<&std::path::Path>, what: &str, source: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io,
            what: path.map(|p| p.display().to_string()),
            message: format!("{what}: {source}"),
            path: path.map(std::path::Path::to_path_buf),
            source: Some(source),
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The host file concerned, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
