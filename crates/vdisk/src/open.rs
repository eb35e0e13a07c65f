//! Opening a container for reading: [`ImageReader::open`] detects it by its magic and hands
//! it to its format's reader (`qcow2::read`, `vdi_read`, `vhd_read`, `vhdx_read`,
//! `vmdk_read`), each built on the shared kit in `read`.

use std::fs::File;
use std::path::Path;

use crate::read::{Container, ImageReader, detect, open_regular};
use crate::{Error, ErrorKind, Result};

impl ImageReader {
    /// Opens any container [`detect`] recognises except raw.
    ///
    /// # Errors
    /// `InvalidInput` for a file that is not regular, or raw; `Unsupported` for formats or
    /// features not read; `Corrupt` for damaged headers or tables; `Io` on read errors.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = open_regular(path)?;
        match detect(&file, &name)? {
            Container::Raw => Err(Error::new(
                ErrorKind::InvalidInput,
                name,
                "not a disk image container (no known magic)",
            )),
            c => Self::open_as(file, &name, c),
        }
    }

    /// Reads `file` as container `c` whatever its magic says (the fuzz targets use this to
    /// reach one reader); `name` is used in errors.
    ///
    /// # Errors
    /// As [`ImageReader::open`].
    pub fn open_as(file: File, name: &str, c: Container) -> Result<Self> {
        let flen = file.metadata().map_err(|e| Error::io(name, e))?.len();
        match c {
            Container::Qcow2 => crate::qcow2::read::open(file, name, flen),
            Container::Vdi => crate::vdi_read::open(file, name, flen),
            Container::Vhd | Container::VhdFixed => crate::vhd_read::open(file, name, flen),
            Container::Vhdx => crate::vhdx_read::open(file, name, flen),
            Container::Vmdk => crate::vmdk_read::open(file, name, flen),
            Container::Raw => Err(Error::new(ErrorKind::InvalidInput, name, "raw image")),
        }
    }
}
