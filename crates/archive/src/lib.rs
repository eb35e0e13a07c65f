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

pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An archive error: its kind, the file or entry it is about, and the cause:
    /// `context: message` (the layers' shared shape, [`imagetool_blockio::error`]).
    new(kind, context, message)
);

impl Error {
    /// The file, entry or option the error is about.
    #[must_use]
    pub fn context(&self) -> &str {
        self.0.context().unwrap_or_default()
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self(imagetool_blockio::error::Error::io(source.to_string(), source).with_context(context))
    }

    pub(crate) fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, context, message)
    }

    pub(crate) fn at_path(path: &Path, source: io::Error) -> Self {
        Self(
            Self::io(path.display().to_string(), source)
                .0
                .with_path(path),
        )
    }
}
