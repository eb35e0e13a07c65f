//! The oracle kit: judges disk images with independent, conventional tools.
//!
//! imagetool writes ext4, FAT, partition tables and container formats itself; its tests must not
//! trust its own readers. Every runner here hands an image (or one partition's byte range of it)
//! to the reference implementation of the format and fails with that tool's full output on any
//! finding:
//!
//! | module | oracle | clean when |
//! |---|---|---|
//! | [`ext4`] | `e2fsck -fn`, `dumpe2fs -h`, `debugfs` (tree read-back) | exit 0, no "Fix?" |
//! | [`fat`] | `fsck.fat -n`, mtools (`mdir`, `mcopy`) | exit 0, no message |
//! | [`ptable`] | `sfdisk --json` / `--dump`, `sgdisk -v` | "No problems found" |
//! | [`qemu_img`] | `qemu-img check` / `info` / `compare` | exit 0 / identical |
//! | [`squashfs`] | `unsquashfs -s`, `-lln`, `-d` (listing and extraction cross-checked); a read-only loop mount (the kernel) | valid superblock, no complaint |
//! | [`nix`] | Debian's `nix-store --verify --check-contents` on an extracted root | no complaint |
//! | [`boot`] | QEMU (direct kernel, SeaBIOS, OVMF), serial log, hard timeout | marker + manifest hash |
//!
//! [`tree::Tree`] is the common description of a file tree (types, modes, owners, contents,
//! symlink targets, hard-link groups, xattrs): read from a host directory, from an ext4 image
//! through `debugfs`, or written by hand, and compared with a precise list of differences.
//!
//! Tools may be missing on a developer's machine. Tests start with [`require_tools!`]: locally a
//! missing tool prints `skipped: <tool> missing (apt-get install <pkg>)` and the test returns; with
//! `IMAGETOOL_REQUIRE_TOOLS=1` (set by `cargo xtask test` in CI) it fails with the same hint.
//!
//! Library functions return [`Result`]; the `assert_*` helpers used by tests panic with the
//! error, which carries the tool's whole output. Nothing here mounts a filesystem or uses a loop
//! device; temporary files live in [`tempfile`] directories.
#![deny(missing_docs)]

pub mod boot;
pub mod ext4;
pub mod fat;
pub mod grub;
mod helpers;
pub mod hostile;
pub mod iso;
pub mod nix;
pub mod ptable;
pub mod qemu_img;
mod run;
pub mod squashfs;
mod target;
pub mod tools;
pub mod tree;

pub use helpers::{Imagetool, Xorshift64, is_root, noise, same_bytes};
pub use run::{Output, command_ok, run, run_ok, run_text};
pub use target::{Materialized, Target};
pub use tools::{Tool, require, require_with};

use std::fmt;
use std::path::Path;

/// What went wrong, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing a host file failed.
    Io,
    /// A tool needed by the oracle is not installed.
    ToolMissing,
    /// A tool could not run as asked (bad usage, unreadable image): not a verdict on the image.
    ToolFailed,
    /// The oracle judged the image and found a problem (fsck finding, bad checksum, ...).
    Finding,
    /// What was read back differs from what was expected.
    Mismatch,
    /// A tool's output could not be parsed.
    Parse,
    /// A boot did not finish within its time limit.
    Timeout,
    /// The caller asked for something impossible (range outside the image, ...).
    InvalidInput,
}

/// The error of every oracle: a kind, what was being judged, and the full details (tool output).
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct Error {
    kind: ErrorKind,
    context: String,
    message: String,
    #[source]
    source: Option<std::io::Error>,
}

impl Error {
    /// A new error of `kind` about `context` (a tool, a path) with a message.
    pub fn new(kind: ErrorKind, context: impl fmt::Display, message: impl Into<String>) -> Self {
        Self {
            kind,
            context: context.to_string(),
            message: message.into(),
            source: None,
        }
    }

    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io,
            context: path.display().to_string(),
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// The kind, for matching.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The details: for findings and mismatches, the tool's output or the list of differences.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The kit's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns from the calling test (after printing a skip message) when a tool is missing, or
/// fails it when `IMAGETOOL_REQUIRE_TOOLS=1`.
///
/// ```no_run
/// use imagetool_testutil::{require_tools, tools};
/// fn my_test() {
///     require_tools!(tools::E2FSCK, tools::DEBUGFS);
///     // ... the tools are there
/// }
/// ```
#[macro_export]
macro_rules! require_tools {
    ($($tool:expr),+ $(,)?) => {
        if !$crate::require(&[$($tool),+]) {
            return;
        }
    };
}

/// Lowercase hex of bytes.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The last `n` lines of `text`, for error messages.
#[must_use]
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}
