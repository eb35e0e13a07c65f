//! One error kind for the facade's errors, so a caller (or the CLI's exit code) can tell a bad
//! input from a full disk or a failing disk without matching every layer's error type.

use crate::build::BuildError;
use crate::disk::DiskError;
use crate::mkfs::MkfsError;

/// What went wrong, whichever layer it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading an input or writing the output failed.
    Io,
    /// An option, spec key or input file is invalid (the message names it).
    InvalidInput,
    /// A valid request imagetool does not support.
    Unsupported,
    /// The contents do not fit the size asked for.
    NoSpace,
    /// A size or offset overflows what the format can hold.
    Overflow,
    /// An input image or file is malformed.
    Corrupt,
    /// A tool or file the build needs is not available (GRUB modules, systemd-boot).
    Missing,
    /// An external tool ran and failed.
    Tool,
    /// The work was cancelled (a [`Cancel`](crate::blockio::Cancel) handle, or SIGINT/SIGTERM
    /// in the CLI) and committed nothing.
    Interrupted,
}

impl ErrorKind {
    /// The CLI's exit status for this kind, the same for every subcommand:
    ///
    /// | status | kinds |
    /// |---|---|
    /// | 1 | [`Io`](Self::Io), [`Tool`](Self::Tool): reading, writing or a tool failed |
    /// | 2 | [`InvalidInput`](Self::InvalidInput), [`Corrupt`](Self::Corrupt), [`Unsupported`](Self::Unsupported), [`Missing`](Self::Missing), [`NoSpace`](Self::NoSpace), [`Overflow`](Self::Overflow): the request cannot be honoured as given |
    /// | 130 | [`Interrupted`](Self::Interrupted): cancelled, nothing committed (as a shell reports SIGINT) |
    ///
    /// A malformed input file (`Corrupt`) is an invalid input; contents that do not fit the
    /// size asked for (`NoSpace`, `Overflow`) are an invalid request. A full disk while
    /// writing is an I/O error (1).
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            Self::InvalidInput
            | Self::Corrupt
            | Self::Unsupported
            | Self::Missing
            | Self::NoSpace
            | Self::Overflow => 2,
            Self::Interrupted => 130,
            Self::Io | Self::Tool => 1,
        }
    }
}

/// Every layer crate's kind (they share one, [`imagetool_blockio::error::ErrorKind`]) is the
/// facade's kind of the same name: one mapping, no fallback.
impl From<imagetool_blockio::error::ErrorKind> for ErrorKind {
    fn from(k: imagetool_blockio::error::ErrorKind) -> Self {
        use imagetool_blockio::error::ErrorKind as K;
        match k {
            K::Io => Self::Io,
            K::InvalidInput => Self::InvalidInput,
            K::Unsupported => Self::Unsupported,
            K::NoSpace => Self::NoSpace,
            K::Overflow => Self::Overflow,
            K::Corrupt => Self::Corrupt,
            K::Missing => Self::Missing,
            K::Tool => Self::Tool,
        }
    }
}

impl From<crate::spec::ErrorKind> for ErrorKind {
    fn from(k: crate::spec::ErrorKind) -> Self {
        match k {
            crate::spec::ErrorKind::Unsupported => Self::Unsupported,
            crate::spec::ErrorKind::Io => Self::Io,
            _ => Self::InvalidInput,
        }
    }
}

impl BuildError {
    /// What went wrong, whichever layer it came from.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput(_) => ErrorKind::InvalidInput,
            Self::Nix(e) => e.kind().into(),
            Self::Ext4(e) => e.kind().into(),
            Self::Layout(e) => e.kind().into(),
            Self::Fat { source, .. } => source.kind().into(),
            Self::Boot(e) => e.kind().into(),
            Self::Format(e) => e.kind().into(),
            Self::Io { source, .. } => io_kind(source),
            Self::Cancelled => ErrorKind::Interrupted,
        }
    }
}

/// An I/O error's kind: `InvalidInput` for the checks on inputs and outputs (not a regular
/// file, too large, a device where a file is expected), else `Io`.
pub(crate) fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
        // `Cancel::check`: a cancelled reader or writer.
        std::io::ErrorKind::Interrupted => ErrorKind::Interrupted,
        _ => ErrorKind::Io,
    }
}

impl crate::probe::InspectError {
    /// What went wrong: [`ErrorKind::Corrupt`] for a damaged container or table, as its
    /// layer says; [`ErrorKind::Io`] when the file cannot be read.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } => io_kind(source),
            Self::Container { source, .. } => source.kind().into(),
            Self::Table { source, .. } => source.kind().into(),
        }
    }
}

impl DiskError {
    /// What went wrong, whichever layer it came from.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Layout(e) => e.kind().into(),
            Self::Fat { source, .. } => source.kind().into(),
            Self::Io { source, .. } => io_kind(source),
            Self::NoSuchPartition { .. } => ErrorKind::InvalidInput,
            Self::RootTooBig { .. } => ErrorKind::NoSpace,
            Self::Cancelled => ErrorKind::Interrupted,
        }
    }
}

impl MkfsError {
    /// What went wrong, whichever layer it came from.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Source { source, .. } => source.kind().into(),
            Self::Ext4(e) => e.kind().into(),
            Self::Squashfs(e) => e.kind().into(),
            Self::Io { source, .. } => io_kind(source),
            Self::NoRoom { .. } => ErrorKind::NoSpace,
            Self::Cancelled => ErrorKind::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ext4, fstree};

    #[test]
    fn test_kinds_pass_through_the_layers() {
        let e = BuildError::InvalidInput("x".into());
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.kind().exit_code(), 2);
        let e = BuildError::Io {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.kind().exit_code(), 1);
        let e = MkfsError::NoRoom {
            path: "/x".into(),
            offset: 0,
            needed: 1,
        };
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        // A layer's own kind comes through: an ext4 tree too large for a fixed size.
        let mut tree = fstree::Tree::new(fstree::Meta::dir(0o755));
        tree.add_file(
            b"/big",
            fstree::Source::Bytes(vec![1u8; 1 << 20].into()),
            fstree::Meta::file(0o644),
        )
        .unwrap();
        let mut opts = ext4::Options::default();
        opts.size = ext4::Size::Fixed(256 << 10);
        let e = BuildError::from(ext4::plan(&tree, &opts).unwrap_err());
        assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    }
}
