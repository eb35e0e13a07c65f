//! Deterministic packaging: tar archives (GNU format, with GNU sparse members), newc cpio
//! archives (initramfs members) and the gzip,
//! bzip2, zstd and xz compressors, for disk images (GCE's `disk.raw` in a sparse tar, a
//! gzipped qcow2, an OVA) and for file trees (container and netboot tarballs).
//!
//! Every byte comes from the inputs: a [`tar::Meta`] carries the mode, owner and time of each
//! entry (no host `stat` leaks in), gzip headers carry no name and a zero mtime, and zstd always
//! runs in its multi-threaded mode so the thread count never changes the output.
//!
//! ```
//! use imagetool_archive::{Codec, Compression, tar::{Entry, Meta, TarWriter}};
//!
//! let meta = Meta { mtime: 1_700_000_000, ..Meta::file(0o644) };
//! let gz = Compression::new(Codec::Gzip).encoder(Vec::new()).unwrap();
//! let mut tar = TarWriter::new(gz);
//! tar.append(&Entry::bytes("hello.txt", meta, b"hello\n")).unwrap();
//! let bytes = tar.finish().unwrap().finish().unwrap();
//! assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
//! ```
#![deny(missing_docs)]

mod compress;
pub mod cpio;
pub mod tar;

pub use compress::{Codec, Compression, Encoder, compress_file};

use std::io;
use std::path::Path;

/// What kind of problem an archive operation had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading an input or writing the output failed.
    Io,
    /// An entry or option cannot be represented (a bad level, a name tar cannot hold).
    InvalidInput,
}

/// An archive error: its kind, the file or entry it is about, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct Error {
    kind: ErrorKind,
    context: String,
    message: String,
    #[source]
    source: Option<io::Error>,
}

impl Error {
    /// The kind of failure.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file, entry or option the error is about.
    #[must_use]
    pub fn context(&self) -> &str {
        &self.context
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self {
            kind: ErrorKind::Io,
            context: context.into(),
            message: source.to_string(),
            source: Some(source),
        }
    }

    pub(crate) fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            context: context.into(),
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn at_path(path: &Path, source: io::Error) -> Self {
        Self::io(path.display().to_string(), source)
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
