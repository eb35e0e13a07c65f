//! The crate's error type: the layers' shared shape ([`imagetool_blockio::error`]).

use std::fmt;
use std::path::Path;

pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error of this crate: a kind, a message naming the path or option, and the source.
    new(kind, message)
);

impl Error {
    pub(crate) fn io(what: impl fmt::Display, path: Option<&Path>, source: std::io::Error) -> Self {
        let message = match path {
            Some(p) => format!("{what} {}", p.display()),
            None => what.to_string(),
        };
        let e = imagetool_blockio::error::Error::io(message, source);
        Self(match path {
            Some(p) => e.with_path(p),
            None => e,
        })
    }

    /// The host path the error is about, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.0.path()
    }
}
