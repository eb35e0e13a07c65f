//! The spec's errors: [`Error`] with its [`ErrorKind`] and the key at fault.

use std::path::Path;

/// What kind of problem a spec has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A key is unknown, has the wrong type or a value out of range.
    InvalidInput,
    /// A make-disk-image argument imagetool cannot honour (`postVM`, `fsType`, …).
    Unsupported,
    /// The spec file could not be read or the output not written.
    Io,
}

/// A problem with a spec, naming the key (`contents[1].target`) or file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct Error {
    kind: ErrorKind,
    key: Option<String>,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(super) fn new(kind: ErrorKind, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            key: Some(key.into()),
            message: message.into(),
            source: None,
        }
    }

    pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, key, message)
    }

    pub(crate) fn invalid_key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(key, message)
    }

    pub(super) fn io(path: &Path, what: &str, source: std::io::Error) -> Self {
        // The input checks (not a regular file, too large, not UTF-8) are the caller's fault.
        let kind = match source.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                ErrorKind::InvalidInput
            }
            _ => ErrorKind::Io,
        };
        Self {
            kind,
            key: Some(path.display().to_string()),
            message: what.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// What kind of problem this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The key (a path such as `contents[1].target`) or file the error is about.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

pub(super) type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(super) fn in_file(mut self, path: &Path) -> Self {
        self.message = format!("{} (in {})", self.message, path.display());
        self
    }
}

/// Reads a spec or `.attrs.json`: a regular file (a FIFO is refused, not waited on) of at most
/// [`MAX_GRAPH_BYTES`](imagetool_fstree::input::MAX_GRAPH_BYTES) (structured attributes carry
/// the references graph).
pub(super) fn read_spec_text(path: &Path, what: &str) -> Result<String> {
    imagetool_fstree::input::read_limited_string(path, imagetool_fstree::input::MAX_GRAPH_BYTES)
        .map_err(|e| Error::io(path, what, e))
}
