//! Reading VHDX (dynamic and fixed; no parent, no pending log) into an [`ImageReader`].
//!
//! Limits, as qemu's `vhdx_open`: header and region-table CRC-32C checksums; at most 2047
//! region and metadata entries; every required region and metadata item known; a
//! power-of-two block of 1 to 256 MiB; logical sectors of 512 or 4096 bytes; a virtual size
//! of at most 64 TiB; the BAT inside the file, within the table limit and large enough.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::read::{Codec, ImageReader, MapBuilder, check_virtual_size, read_table, stream_table};
use crate::vhdx::guid;
use crate::{Error, ErrorKind, Result};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const BAT_GUID: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const META_GUID: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const FILE_PARAMS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const VIRTUAL_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const LOGICAL: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const PHYSICAL: &str = "CDA348C7-445D-4471-9CC9-E9885251C556";
const PAGE83: &str = "BECA12AB-B2E6-4523-93EF-C309E000C746";
const MAX_ENTRIES: u64 = 2047;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// True when the CRC-32C of `b` (with the field at 4 zeroed) matches the field.
fn crc_ok(b: &[u8]) -> bool {
    let stored = le32(b, 4);
    let mut c = crc32c::crc32c(&b[..4]);
    c = crc32c::crc32c_append(c, &[0; 4]);
    c = crc32c::crc32c_append(c, &b[8..]);
    c == stored
}

#[allow(clippy::too_many_lines)]
pub(crate) fn open(file: File, name: &str, flen: u64) -> Result<ImageReader> {
    let bad = |what: String| Error::new(ErrorKind::Corrupt, name, what);
    let unsupported = |what: String| Error::new(ErrorKind::Unsupported, name, what);
    let rd = |buf: &mut [u8], off: u64, what: &str| {
        file.read_exact_at(buf, off)
            .map_err(|e| Error::io(format!("{name} ({what} at byte {off})"), e))
    };
    if flen < 320 * KIB {
        return Err(bad("too short for VHDX headers and region tables".into()));
    }
    // The current header: the valid one with the higher sequence number.
    let mut current: Option<(u64, Vec<u8>)> = None;
    for at in [64 * KIB, 128 * KIB] {
        let mut h = vec![0u8; 4 * KIB as usize];
        rd(&mut h, at, "VHDX header")?;
        if &h[..4] == b"head" && crc_ok(&h) {
            let seq = le64(&h, 8);
            if current.as_ref().is_none_or(|(s, _)| seq > *s) {
                current = Some((seq, h));
            }
        }
    }
    let Some((_, h)) = current else {
        return Err(bad(
            "neither VHDX header (bytes 65536, 131072) is valid".into()
        ));
    };
    if le16(&h, 66) != 1 {
        return Err(unsupported(format!("VHDX version {}", le16(&h, 66))));
    }
    if h[48..64].iter().any(|&x| x != 0) {
        return Err(unsupported(
            "VHDX with a log to replay (open it once in Hyper-V or qemu to replay it)".into(),
        ));
    }
    // The region table (the backup at 256 KiB when the first is damaged).
    let mut rt = vec![0u8; 64 * KIB as usize];
    rd(&mut rt, 192 * KIB, "VHDX region table")?;
    if &rt[..4] != b"regi" || !crc_ok(&rt) {
        rd(&mut rt, 256 * KIB, "VHDX region table")?;
        if &rt[..4] != b"regi" || !crc_ok(&rt) {
            return Err(bad("neither VHDX region table is valid".into()));
        }
    }
    let count = u64::from(le32(&rt, 8));
    if count > MAX_ENTRIES {
        return Err(bad(format!("VHDX region table has {count} entries")));
    }
    let (mut bat, mut meta) = (None, None);
    for k in 0..count as usize {
        let e = 16 + 32 * k;
        let g = &rt[e..e + 16];
        let region = (le64(&rt, e + 16), u64::from(le32(&rt, e + 24)));
        if g == guid(BAT_GUID) {
            bat = Some(region);
        } else if g == guid(META_GUID) {
            meta = Some(region);
        } else if le32(&rt, e + 28) & 1 != 0 {
            return Err(unsupported("VHDX with an unknown required region".into()));
        }
    }
    let (Some((bat_off, bat_len)), Some((meta_off, meta_len))) = (bat, meta) else {
        return Err(bad(
            "VHDX region table lacks the BAT or the metadata region".into(),
        ));
    };
    let mut b = MapBuilder::new(name, flen, MIB);
    b.claim(0, 320 * KIB, "VHDX headers")?;
    if !(64 * KIB..=MIB).contains(&meta_len) {
        return Err(bad(format!("VHDX metadata region of {meta_len} bytes")));
    }
    let m = read_table(&file, &mut b, meta_off, meta_len, "VHDX metadata region")?;
    if &m[..8] != b"metadata" {
        return Err(bad(format!("no VHDX metadata table at byte {meta_off}")));
    }
    let items = u64::from(le16(&m, 10));
    if items > MAX_ENTRIES || 32 + 32 * items > meta_len {
        return Err(bad(format!("VHDX metadata table has {items} entries")));
    }
    let (mut block, mut size, mut logical) = (None, None, None);
    for k in 0..items as usize {
        let e = 32 + 32 * k;
        let g = &m[e..e + 16];
        let off = u64::from(le32(&m, e + 16));
        let len = u64::from(le32(&m, e + 20));
        let required = le32(&m, e + 24) & 4 != 0;
        let item = off
            .checked_add(len)
            .filter(|&end| off >= 64 * KIB && end <= meta_len)
            .map(|end| &m[off as usize..end as usize])
            .ok_or_else(|| bad(format!("VHDX metadata item {k} lies outside its region")))?;
        if g == guid(FILE_PARAMS) && item.len() >= 8 {
            if le32(item, 4) & 2 != 0 {
                return Err(unsupported(
                    "differencing VHDX (it needs its parent)".into(),
                ));
            }
            block = Some(u64::from(le32(item, 0)));
        } else if g == guid(VIRTUAL_SIZE) && item.len() >= 8 {
            size = Some(le64(item, 0));
        } else if g == guid(LOGICAL) && item.len() >= 4 {
            logical = Some(u64::from(le32(item, 0)));
        } else if g == guid(PHYSICAL) || g == guid(PAGE83) {
        } else if required {
            return Err(unsupported(format!(
                "VHDX with an unknown required metadata item {k}"
            )));
        }
    }
    let (Some(block), Some(size), Some(logical)) = (block, size, logical) else {
        return Err(bad(
            "VHDX metadata lacks the file parameters, virtual size or sector size".into(),
        ));
    };
    if !block.is_power_of_two() || !(MIB..=256 * MIB).contains(&block) {
        return Err(bad(format!(
            "VHDX block size {block}, not a power of two from 1 to 256 MiB"
        )));
    }
    if logical != 512 && logical != 4096 {
        return Err(bad(format!("VHDX logical sector size {logical}")));
    }
    check_virtual_size(name, size)?;
    if !size.is_multiple_of(logical) {
        return Err(bad(format!(
            "VHDX virtual size {size} is not a whole number of {logical}-byte sectors"
        )));
    }
    let chunk_ratio = (1u64 << 23) * logical / block;
    let blocks = size.div_ceil(block);
    let entries = if blocks == 0 {
        0
    } else {
        blocks + (blocks - 1) / chunk_ratio
    };
    if bat_len < entries * 8 {
        return Err(bad(format!(
            "VHDX BAT of {bat_len} bytes is too small for {entries} entries"
        )));
    }
    let mut b = b.rebuild(block);
    stream_table(
        &file,
        &mut b,
        bat_off,
        entries * 8,
        "VHDX BAT",
        |b, at, piece| {
            for (n, e) in piece.chunks_exact(8).enumerate() {
                let k = at / 8 + n as u64;
                // Every chunk_ratio payload entries, one sector-bitmap entry (skipped).
                if (k + 1).is_multiple_of(chunk_ratio + 1) {
                    continue;
                }
                let g = k - k / (chunk_ratio + 1);
                if g >= blocks {
                    break;
                }
                let e = le64(e, 0);
                match e & 7 {
                    0..=3 => {}
                    6 => {
                        let off = e & !(MIB - 1);
                        if off < MIB {
                            return Err(
                                b.corrupt(format!("VHDX BAT entry {k} points into the headers"))
                            );
                        }
                        b.data(g, off)?;
                    }
                    7 => {
                        return Err(Error::new(
                            ErrorKind::Unsupported,
                            b.name(),
                            "VHDX block partially present (a differencing disk)",
                        ));
                    }
                    s => return Err(b.corrupt(format!("VHDX BAT entry {k} has state {s}"))),
                }
            }
            Ok(())
        },
    )?;
    b.finish(file, size, Codec::RawDeflate)
}
