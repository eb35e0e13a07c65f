//! Reading VirtualBox VDI (dynamic and static, version 1.1) into an [`ImageReader`].
//!
//! Limits, as qemu's `vdi_open`: sector size 512, block size 1 MiB with no extra data, the
//! block map and data offsets sector-aligned, the map covering the disk size; the map is read
//! only after its size is checked against the table limit and the file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::read::{Codec, ImageReader, MapBuilder, check_virtual_size, stream_table};
use crate::{Error, ErrorKind, Result};

const SIGNATURE: u32 = 0xbeda_107f;
const BLOCK: u64 = 1 << 20;
const UNALLOCATED: u32 = 0xffff_ffff;
/// "Discarded": reads as zeros.
const ZERO: u32 = 0xffff_fffe;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn open(file: File, name: &str, flen: u64) -> Result<ImageReader> {
    let bad = |what: String| Error::new(ErrorKind::Corrupt, name, what);
    let mut h = [0u8; 512];
    file.read_exact_at(&mut h, 0)
        .map_err(|e| Error::io(format!("{name} (VDI header)"), e))?;
    if le32(&h, 0x40) != SIGNATURE {
        return Err(bad("not a VDI image".into()));
    }
    let version = le32(&h, 0x44);
    if version != 0x0001_0001 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            name,
            format!("VDI version {version:#x} (only 1.1 is read)"),
        ));
    }
    let image_type = le32(&h, 0x4c);
    if !(1..=2).contains(&image_type) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            name,
            format!("VDI image type {image_type} (only dynamic and static are read)"),
        ));
    }
    let bmap_off = u64::from(le32(&h, 0x154));
    let data_off = u64::from(le32(&h, 0x158));
    let sector = le32(&h, 0x168);
    let size = le64(&h, 0x170);
    let block = u64::from(le32(&h, 0x178));
    let extra = le32(&h, 0x17c);
    let blocks = u64::from(le32(&h, 0x180));
    if sector != 512 {
        return Err(bad(format!(
            "header field sector size (byte 0x168) is {sector}, not 512"
        )));
    }
    if block != BLOCK || extra != 0 {
        return Err(bad(format!(
            "header field block size (byte 0x178) is {block} with {extra} extra bytes; only \
             1 MiB blocks are read"
        )));
    }
    if !bmap_off.is_multiple_of(512) || !data_off.is_multiple_of(512) || bmap_off == 0 {
        return Err(bad(format!(
            "block map offset {bmap_off} or data offset {data_off} is not sector-aligned"
        )));
    }
    check_virtual_size(name, size)?;
    if blocks.checked_mul(BLOCK).is_none_or(|cap| cap < size) {
        return Err(bad(format!(
            "header field blocks in image (byte 0x180) is {blocks}, too few for the disk size \
             {size}"
        )));
    }
    // Only the entries the disk size needs are read.
    let needed = size.div_ceil(BLOCK);
    let mut b = MapBuilder::new(name, flen, BLOCK);
    b.claim(0, 512, "VDI header")?;
    stream_table(
        &file,
        &mut b,
        bmap_off,
        needed * 4,
        "VDI block map",
        |b, at, piece| {
            for (k, e) in piece.chunks_exact(4).enumerate() {
                let g = at / 4 + k as u64;
                match le32(e, 0) {
                    UNALLOCATED | ZERO => {}
                    n => {
                        let off = u64::from(n)
                            .checked_mul(BLOCK)
                            .and_then(|o| o.checked_add(data_off))
                            .ok_or_else(|| {
                                b.corrupt(format!("block map entry {g} ({n}) overflows"))
                            })?;
                        b.data(g, off)?;
                    }
                }
            }
            Ok(())
        },
    )?;
    b.finish(file, size, Codec::RawDeflate)
}
