//! The `i386-pc` core image: `diskboot.img` (its blocklist length patched), the LZMA
//! decompressor (its compressed and uncompressed sizes patched) and the compressed kernel
//! and modules; for El Torito, `cdboot.img` in front.

use std::path::Path;

use super::{lzma, read};
use crate::error::{Error, ErrorKind, Result};

/// `GRUB_KERNEL_I386_PC_LINK_ADDR`.
pub(crate) const LINK_ADDR: u64 = 0x9000;
/// Offsets in `lzma_decompress.img` of the compressed and uncompressed sizes.
const COMPRESSED_SIZE: usize = 0x08;
const UNCOMPRESSED_SIZE: usize = 0x0c;
/// The largest decompressor (it runs at 0x8200 and must end below the kernel at 0x9000).
const MAX_DECOMPRESSOR: usize = 0x9000 - 0x8200;

fn too_big(what: String) -> Error {
    Error::new(ErrorKind::InvalidInput, what)
}

pub(crate) fn assemble(
    dir: &Path,
    core: &[u8],
    kernel_size: u64,
    bss_size: u64,
    eltorito: bool,
) -> Result<Vec<u8>> {
    let packed = lzma::compress(core)?;
    let dpath = dir.join("lzma_decompress.img");
    let mut decomp = read(&dpath, "LZMA decompressor")?;
    if decomp.len() > MAX_DECOMPRESSOR || decomp.len() < UNCOMPRESSED_SIZE + 4 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: {} bytes, not a decompressor of at most {MAX_DECOMPRESSOR} bytes",
                dpath.display(),
                decomp.len()
            ),
        )
        .with_path(&dpath));
    }
    decomp[COMPRESSED_SIZE..COMPRESSED_SIZE + 4]
        .copy_from_slice(&(packed.len() as u32).to_le_bytes());
    decomp[UNCOMPRESSED_SIZE..UNCOMPRESSED_SIZE + 4]
        .copy_from_slice(&(core.len() as u32).to_le_bytes());
    let core_size = (decomp.len() + packed.len()) as u64;
    if LINK_ADDR + core_size > 0x78000 || core_size > 0xffff << 9 {
        return Err(too_big(format!(
            "GRUB core image is too big ({:#x} > 0x78000)",
            LINK_ADDR + core_size
        )));
    }
    if kernel_size + bss_size + LINK_ADDR > 0x68000 {
        return Err(too_big(format!(
            "GRUB kernel image is too big ({:#x} > 0x68000)",
            kernel_size + bss_size + LINK_ADDR
        )));
    }
    let bpath = dir.join("diskboot.img");
    let mut boot = read(&bpath, "diskboot.img")?;
    if boot.len() != 512 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{}: {} bytes, must be 512", bpath.display(), boot.len()),
        )
        .with_path(&bpath));
    }
    if boot[510..512] != [0x20, 0x08] {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{}: the blocklist segment is not 0x820", bpath.display()),
        )
        .with_path(&bpath));
    }
    let sectors = core_size.div_ceil(512) as u16;
    boot[508..510].copy_from_slice(&sectors.to_le_bytes());
    let mut out = Vec::new();
    if eltorito {
        out = read(&dir.join("cdboot.img"), "cdboot.img")?;
    }
    out.extend_from_slice(&boot);
    out.extend_from_slice(&decomp);
    out.extend_from_slice(&packed);
    Ok(out)
}
