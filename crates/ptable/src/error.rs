//! The crate's error type: the layers' shared shape ([`imagetool_blockio::error`]).

use std::fmt;

use imagetool_blockio::error::Error as Shape;
pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error of this crate: a kind, a message naming the option or offset, and the source.
    new(kind, message)
);

impl Error {
    pub(crate) fn io(what: impl fmt::Display, offset: u64, source: std::io::Error) -> Self {
        Self(Shape::io(format!("{what} at byte {offset}"), source).with_offset(offset))
    }

    pub(crate) fn corrupt(what: impl fmt::Display, offset: u64) -> Self {
        Self(
            Shape::new(ErrorKind::Corrupt, format!("{what} (at byte {offset})"))
                .with_offset(offset),
        )
    }

    /// The byte offset in the disk the error is about, when there is one.
    #[must_use]
    pub fn offset(&self) -> Option<u64> {
        self.0.offset()
    }
}

pub(crate) fn overflow(what: &str) -> Error {
    Error::new(ErrorKind::Overflow, format!("{what} overflows"))
}
