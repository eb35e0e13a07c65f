//! From any error to its [`ErrorKind`]: the one place that knows every error type of the
//! facade and its layers. Kept apart from `error` (which the modules it lists depend on) so
//! that module dependencies stay one-way.

use crate::build::BuildError;
use crate::disk::DiskError;
use crate::error::{ErrorKind, io_kind};
use crate::mkfs::MkfsError;
use crate::{boot, ext4, fat, fstree, nix, ptable, vdisk};

impl ErrorKind {
    /// The kind of the outermost error in `err`'s chain (`err`, then its `source()`s) that is
    /// one of imagetool's errors (the facade's, a layer crate's, or a [`std::io::Error`]);
    /// `None` when no error in the chain is. The one place an error becomes a kind: the CLI's
    /// exit status is `ErrorKind::of(e).map_or(1, ErrorKind::exit_code)`.
    #[must_use]
    pub fn of(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(k) = Self::direct(e) {
                return Some(k);
            }
            cur = e.source();
        }
        None
    }

    /// The kind of `e` itself, when it is one of the error types this crate knows.
    fn direct(e: &(dyn std::error::Error + 'static)) -> Option<Self> {
        macro_rules! try_kind {
            ($($t:ty),* $(,)?) => {
                $(if let Some(x) = e.downcast_ref::<$t>() {
                    return Some(x.kind().into());
                })*
            };
        }
        try_kind!(
            BuildError,
            DiskError,
            MkfsError,
            crate::iso::IsoError,
            crate::tree_variant::TreeError,
            crate::probe::InspectError,
            crate::spec::Error,
            vdisk::Error,
            fat::Error,
            ext4::Error,
            crate::squashfs::Error,
            ptable::Error,
            nix::Error,
            boot::Error,
            fstree::Error,
            crate::iso9660::Error,
            crate::archive::Error,
            imagetool_blockio::error::Error,
        );
        e.downcast_ref::<std::io::Error>().map(io_kind)
    }
}
