//! GRUB for a NixOS generation: bootspec → grub.cfg in install-grub.pl's format, module files,
//! the EFI removable image and the BIOS stage, through [`crate::grub`]'s plain-data API.

use imagetool_blockio::WriteAt;

use crate::bootspec::Generation;
use crate::install::{BiosSite, Plan, Request};
use crate::{Error, ErrorKind, Result};

/// GRUB's BIOS stage, written into the disk after the partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiosStage {
    /// Where the core image goes.
    pub site: BiosSite,
}

impl BiosStage {
    /// Writes boot.img into the MBR and core.img at `core_lba` (`room` sectors available).
    ///
    /// # Errors
    /// `NoSpace` when core.img does not fit; `Io`.
    pub fn write(&self, _disk: &impl WriteAt, _core_lba: u64, _room: u64) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "GRUB BIOS installation is not available yet",
        ))
    }
}

pub(crate) fn install(_req: &Request<'_>, _generation: &Generation, _out: &mut Plan) -> Result<()> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "GRUB installation is not available yet",
    ))
}
