//! The crate's error type: the layers' shared shape ([`imagetool_blockio::error`]).

use std::path::Path;

use imagetool_blockio::error::Error as Shape;
pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error planning or writing an ISO image: `what: message` (the key or path, then what
    /// is wrong).
    new(kind, context, message)
);

impl Error {
    pub(crate) fn io(path: Option<&Path>, what: &str, source: std::io::Error) -> Self {
        let e = Shape::io(format!("{what}: {source}"), source);
        Self(match path {
            Some(p) => e.with_context(p.display().to_string()).with_path(p),
            None => e,
        })
    }

    /// The host file concerned, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.0.path()
    }
}
