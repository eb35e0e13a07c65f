//! The crate's one error type: the layers' shared shape ([`imagetool_blockio::error`]).

use std::io;
use std::path::{Path, PathBuf};

use imagetool_blockio::error::Error as Shape;
pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error with its kind, the path or file it concerns (and the line), and its source:
    /// `path:line: message`.
    new(kind, message)
);

impl Error {
    /// A new error of `kind` with a message.
    /// An I/O error concerning `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        Self(
            Shape::io(source.to_string(), source)
                .with_context(path.display().to_string())
                .with_path(path),
        )
    }

    /// Adds the path the error concerns (kept if one is already set).
    #[must_use]
    pub(crate) fn with_path(self, path: impl Into<PathBuf>) -> Self {
        if self.0.path().is_some() {
            return self;
        }
        Self(self.0.with_path(path.into())).with_prefix()
    }

    /// Adds the 1-based line number of the input the error concerns.
    #[must_use]
    pub(crate) fn at_line(self, line: u64) -> Self {
        Self(self.0.with_line(line)).with_prefix()
    }

    /// The context printed before the message: `path:line`, `path` or `line N`.
    fn with_prefix(self) -> Self {
        let prefix = match (self.0.path(), self.0.line()) {
            (Some(p), Some(l)) => format!("{}:{l}", p.display()),
            (Some(p), None) => p.display().to_string(),
            (None, Some(l)) => format!("line {l}"),
            (None, None) => return self,
        };
        Self(self.0.with_context(prefix))
    }

    /// The file or store path the error concerns, when known.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.0.path()
    }

    /// The 1-based line of the input the error concerns, when known.
    #[must_use]
    pub fn line(&self) -> Option<u64> {
        self.0.line()
    }
}
