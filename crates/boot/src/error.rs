//! The crate's error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, for callers that match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading an input or writing the disk failed.
    Io,
    /// An input is invalid (a malformed bootspec, a kernel outside the closure, a bad option).
    InvalidInput,
    /// A file the installation needs is not available (no GRUB modules for the platform, no
    /// systemd-boot in the closure).
    Missing,
    /// The bootloader does not fit where it must go (core.img larger than the MBR gap or the
    /// BIOS boot partition).
    NoSpace,
    /// An external tool ran and failed.
    Tool,
    /// A valid but unsupported combination (an architecture or table type).
    Unsupported,
}

/// An error of this crate: a kind, a message naming the file, option or offset, and the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with `message`.
    pub(crate) fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
            path: None,
            source: None,
        }
    }

    /// An I/O error on `path`: the message names the path and what was being done.
    pub(crate) fn io(path: &Path, doing: &str, source: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io,
            message: format!("{}: {doing}", path.display()),
            path: Some(path.to_path_buf()),
            source: Some(Box::new(source)),
        }
    }

    /// Attaches the file the error is about.
    #[must_use]
    pub(crate) fn with_path(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }

    /// Attaches the cause.
    #[must_use]
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

    /// The file the error is about, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_io_error_names_path_and_keeps_source() {
        let e = Error::io(
            Path::new("/x/boot.json"),
            "read",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.to_string(), "/x/boot.json: read");
        assert_eq!(e.path(), Some(Path::new("/x/boot.json")));
        assert!(std::error::Error::source(&e).is_some());
        let e = Error::new(ErrorKind::Missing, "no GRUB modules")
            .with_path(Path::new("/p"))
            .with_source(std::fmt::Error);
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(e.path().is_some());
    }
}
