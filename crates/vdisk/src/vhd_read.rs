//! Reading VHD (qemu's `vpc`), fixed and dynamic, into an [`ImageReader`].
//!
//! The size is qemu's: the CHS geometry for images Virtual PC and old qemu made (creator
//! `vpc ` or `qemu`) unless the geometry is the maximum, else the footer's current size.
//! Limits: footer and dynamic-header checksums; a power-of-two block size of 512 bytes to
//! 256 MiB; the BAT covering the disk size, inside the file and within the table limit;
//! differencing disks refused.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::read::{Codec, ImageReader, MapBuilder, check_virtual_size, read_table};
use crate::{Error, ErrorKind, Result};

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn checksum(b: &[u8], at: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + 4).contains(i))
        .fold(0u32, |a, (_, &x)| a.wrapping_add(u32::from(x)));
    !sum
}

/// The disk size qemu gives this footer.
fn disk_size(f: &[u8]) -> u64 {
    let chs = u64::from(be16(f, 56)) * u64::from(f[58]) * u64::from(f[59]);
    let app = &f[28..32];
    let chs_app = app == b"vpc " || app == b"qemu";
    if chs_app && chs != 65535 * 16 * 255 {
        chs * 512
    } else {
        be64(f, 48)
    }
}

pub(crate) fn open(file: File, name: &str, flen: u64) -> Result<ImageReader> {
    let bad = |what: String| Error::new(ErrorKind::Corrupt, name, what);
    if flen < 512 {
        return Err(bad("too short for a VHD footer".into()));
    }
    // The footer is the file's last 512 bytes; dynamic disks keep a copy at 0 (used when the
    // end is damaged, as qemu does).
    let mut f = [0u8; 512];
    let rd = |buf: &mut [u8], off: u64, what: &str| {
        file.read_exact_at(buf, off)
            .map_err(|e| Error::io(format!("{name} ({what} at byte {off})"), e))
    };
    rd(&mut f, flen - 512, "VHD footer")?;
    let mut footer_at = flen - 512;
    if &f[..8] != b"conectix" {
        rd(&mut f, 0, "VHD footer copy")?;
        footer_at = 0;
        if &f[..8] != b"conectix" {
            return Err(bad(
                "no VHD footer (\"conectix\") at the end or the start".into()
            ));
        }
    }
    if checksum(&f, 64) != be32(&f, 64) {
        return Err(bad(format!(
            "VHD footer checksum (byte {}) does not match",
            footer_at + 64
        )));
    }
    let size = disk_size(&f);
    check_virtual_size(name, size)?;
    if !size.is_multiple_of(512) {
        return Err(bad(format!(
            "VHD disk size {size} is not a whole number of sectors"
        )));
    }
    let disk_type = be32(&f, 60);
    match disk_type {
        2 => {
            // Fixed: the data precedes the footer.
            if footer_at != flen - 512 || size > flen - 512 {
                return Err(bad(format!(
                    "fixed VHD of {size} bytes but only {} bytes of data",
                    flen.saturating_sub(512)
                )));
            }
            // One mapped block of the whole size: a fixed VHD is raw data.
            let mut b = MapBuilder::new(name, flen, size.max(1));
            b.claim(flen - 512, 512, "VHD footer")?;
            if size > 0 {
                b.data(0, 0)?;
            }
            b.finish(file, size, Codec::RawDeflate)
        }
        3 => {
            let dyn_off = be64(&f, 16);
            let mut dh = [0u8; 1024];
            if dyn_off.checked_add(1024).is_none_or(|e| e > flen) {
                return Err(bad(format!(
                    "VHD dynamic header offset (footer byte 16) {dyn_off} lies outside the file"
                )));
            }
            rd(&mut dh, dyn_off, "VHD dynamic header")?;
            if &dh[..8] != b"cxsparse" {
                return Err(bad(format!("no VHD dynamic header at byte {dyn_off}")));
            }
            if checksum(&dh, 36) != be32(&dh, 36) {
                return Err(bad(format!(
                    "VHD dynamic header checksum (byte {}) does not match",
                    dyn_off + 36
                )));
            }
            let bat_off = be64(&dh, 16);
            let entries = u64::from(be32(&dh, 28));
            let block = u64::from(be32(&dh, 32));
            if !block.is_power_of_two() || !(512..=256 << 20).contains(&block) {
                return Err(bad(format!(
                    "VHD block size (dynamic header byte 32) is {block}, not a power of two \
                     from 512 bytes to 256 MiB"
                )));
            }
            let needed = size.div_ceil(block);
            if entries < needed {
                return Err(bad(format!(
                    "VHD BAT of {entries} entries is too small for {size} bytes"
                )));
            }
            let bitmap = (block / 512).div_ceil(8).div_ceil(512) * 512;
            let mut b = MapBuilder::new(name, flen, block);
            if footer_at == flen - 512 {
                b.claim(flen - 512, 512, "VHD footer")?;
            }
            b.claim(0, 512, "VHD footer copy")?;
            b.claim(dyn_off, 1024, "VHD dynamic header")?;
            let bat = read_table(&file, &mut b, bat_off, needed * 4, "VHD BAT")?;
            for g in 0..needed {
                let e = be32(&bat, (g * 4) as usize);
                if e == u32::MAX {
                    continue;
                }
                let off = u64::from(e) * 512;
                b.claim(off, bitmap, "VHD sector bitmap")?;
                b.data(g, off + bitmap)?;
            }
            b.finish(file, size, Codec::RawDeflate)
        }
        4 => Err(Error::new(
            ErrorKind::Unsupported,
            name,
            "differencing VHD (it needs its parent)",
        )),
        t => Err(bad(format!("VHD disk type (footer byte 60) is {t}"))),
    }
}
