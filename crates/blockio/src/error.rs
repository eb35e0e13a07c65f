//! The one error shape of the layer crates (fstree, ext4, fat, squashfs, iso9660, ptable, vdisk,
//! archive, nix, boot): a kind every layer shares, the context the error is about (a path in
//! the tree, an option key, a host path, a byte offset, a line), a message, and the cause.
//!
//! Each layer crate wraps [`Error`] in a newtype of its own
//! ([`layer_error!`](crate::layer_error)) so that its callers can tell the layers apart (the
//! facade converts each with `From`), keeps its own constructors, and re-exports
//! [`ErrorKind`]: the facade maps one kind to its own, not one kind per crate.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, for callers that match on it (the CLI maps these to exit statuses).
///
/// Not `non_exhaustive`: the facade maps every kind by name, so a new kind is a compile
/// error there until it has its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Reading an input or writing the output failed.
    Io,
    /// An input or an option is not valid (the message names it).
    InvalidInput,
    /// A valid input this format or writer cannot represent.
    Unsupported,
    /// The contents do not fit the size given.
    NoSpace,
    /// A size or count overflowed a computation or a format's field.
    Overflow,
    /// Data read back is malformed (bad magic, checksum, or out-of-range entries).
    Corrupt,
    /// A file the operation needs is not available.
    Missing,
    /// An external tool ran and failed.
    Tool,
}

/// A layer's error: its kind, the context it is about, a message and the cause.
///
/// `Display` is `context: message` (either alone when the other is absent or empty); the cause
/// is reached through `source()`.
#[derive(Debug)]
pub struct Error(Box<Shape>);

/// [`Error`]'s fields, boxed so that a `Result` stays small.
#[derive(Debug)]
struct Shape {
    kind: ErrorKind,
    context: Option<String>,
    message: String,
    path: Option<PathBuf>,
    offset: Option<u64>,
    line: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with `message` and nothing else.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self(Box::new(Shape {
            kind,
            context: None,
            message: message.to_string(),
            path: None,
            offset: None,
            line: None,
            source: None,
        }))
    }

    /// An I/O error with the `io::Error` as its cause (and the message given).
    pub fn io(message: impl fmt::Display, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, message).with_source(source)
    }

    /// Sets what the error is about, printed before the message (a path in the tree, an
    /// option key, a table).
    #[must_use]
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.0.context = Some(context.into());
        self
    }

    /// Sets the host path the error concerns (not printed: put it in the context or the
    /// message where it must be).
    #[must_use]
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.0.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Sets the byte offset the error concerns (not printed).
    #[must_use]
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.0.offset = Some(offset);
        self
    }

    /// Sets the 1-based line of the input the error concerns (not printed).
    #[must_use]
    pub fn with_line(mut self, line: u64) -> Self {
        self.0.line = Some(line);
        self
    }

    /// Sets the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// What the error is about, when set.
    #[must_use]
    pub fn context(&self) -> Option<&str> {
        self.0.context.as_deref()
    }

    /// The message, without the context.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The host path the error concerns, when known.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.0.path.as_deref()
    }

    /// The byte offset the error concerns, when known.
    #[must_use]
    pub fn offset(&self) -> Option<u64> {
        self.0.offset
    }

    /// The 1-based input line the error concerns, when known.
    #[must_use]
    pub fn line(&self) -> Option<u64> {
        self.0.line
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.context {
            Some(c) if self.0.message.is_empty() => f.write_str(c),
            Some(c) => write!(f, "{c}: {}", self.0.message),
            None => f.write_str(&self.0.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Declares a layer crate's error type: a newtype of [`Error`] named `Error` with the same
/// `Display` and `source()`, `kind()`, access to the shared shape (`shape()`), a conversion
/// from and into it, and the crate's `Result`. The crate adds its own constructors.
///
/// `new(kind, context, message)` or `new(kind, message)` after the doc comment says which
/// constructor `new` the crate gets (`context: message`, or the message alone); every crate
/// also gets `with_source`.
#[macro_export]
macro_rules! layer_error {
    ($(#[$meta:meta])* new(kind, context, message)) => {
        $crate::layer_error!(@shape $(#[$meta])*);

        impl Error {
            /// An error of `kind` about `context` (a path, key or table).
            pub(crate) fn new(
                kind: $crate::error::ErrorKind,
                context: impl Into<String>,
                message: impl Into<String>,
            ) -> Self {
                Self($crate::error::Error::new(kind, message.into()).with_context(context))
            }
        }
    };
    ($(#[$meta:meta])* new(kind, message)) => {
        $crate::layer_error!(@shape $(#[$meta])*);

        impl Error {
            /// An error of `kind` whose message names what it is about.
            pub(crate) fn new(kind: $crate::error::ErrorKind, message: impl ::std::fmt::Display) -> Self {
                Self($crate::error::Error::new(kind, message))
            }
        }
    };
    (@shape $(#[$meta:meta])*) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct Error($crate::error::Error);

        impl Error {
            /// Attaches the cause.
            #[allow(dead_code, reason = "not every layer has causes other than its own")]
            #[must_use]
            pub(crate) fn with_source(
                self,
                source: impl ::std::error::Error + Send + Sync + 'static,
            ) -> Self {
                Self(self.0.with_source(source))
            }

            /// What went wrong.
            #[must_use]
            pub fn kind(&self) -> $crate::error::ErrorKind {
                self.0.kind()
            }

            /// The error's kind, context, message, path, offset and line.
            #[must_use]
            pub fn shape(&self) -> &$crate::error::Error {
                &self.0
            }
        }

        impl ::std::fmt::Display for Error {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::error::Error for Error {
            fn source(&self) -> Option<&(dyn ::std::error::Error + 'static)> {
                ::std::error::Error::source(&self.0)
            }
        }

        impl From<$crate::error::Error> for Error {
            fn from(e: $crate::error::Error) -> Self {
                Self(e)
            }
        }

        impl From<Error> for $crate::error::Error {
            fn from(e: Error) -> Self {
                e.0
            }
        }

        /// This crate's result type.
        pub type Result<T, E = Error> = ::std::result::Result<T, E>;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_display_joins_context_and_message() {
        let e = Error::new(ErrorKind::InvalidInput, "too long").with_context("label");
        assert_eq!(e.to_string(), "label: too long");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = Error::new(ErrorKind::NoSpace, "no room");
        assert_eq!(e.to_string(), "no room");
        let e = Error::io("", std::io::Error::other("x")).with_context("disk.img");
        assert_eq!(e.to_string(), "disk.img");
        assert!(std::error::Error::source(&e).is_some());
        let e = Error::new(ErrorKind::Corrupt, "bad")
            .with_offset(512)
            .with_path("/x")
            .with_line(3);
        assert_eq!(
            (e.offset(), e.path(), e.line()),
            (Some(512), Some(Path::new("/x")), Some(3))
        );
    }
}
