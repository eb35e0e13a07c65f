//! Why a build failed: [`BuildError`].

use std::path::{Path, PathBuf};

use imagetool_boot as boot;
use imagetool_ext4 as ext4;
use imagetool_fat as fat;
use imagetool_nix as nix;
use imagetool_ptable as ptable;
use imagetool_vdisk as vdisk;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An option is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// Reading the closure or building the root tree failed.
    #[error("closure")]
    Nix(#[from] nix::Error),
    /// The root filesystem could not be planned or written.
    #[error("root filesystem")]
    Ext4(#[from] ext4::Error),
    /// The partition layout could not be planned or written.
    #[error("partition layout")]
    Layout(#[from] ptable::Error),
    /// A FAT filesystem could not be planned or written.
    #[error("{what} filesystem")]
    Fat {
        /// `ESP` or `BOOT`.
        what: &'static str,
        /// The cause.
        #[source]
        source: fat::Error,
    },
    /// The bootloader could not be installed.
    #[error("bootloader")]
    Boot(#[from] boot::Error),
    /// The container format could not be written.
    #[error("image format")]
    Format(#[from] vdisk::Error),
    /// The build was cancelled ([`Cancel`](imagetool_blockio::Cancel), or a panicking
    /// [`Progress`](super::Progress)); nothing was
    /// committed.
    #[error("cancelled: nothing was written")]
    Cancelled,
    /// An I/O error on the output.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}
