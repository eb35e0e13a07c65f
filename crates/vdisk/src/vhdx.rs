//! VHDX, dynamic (MS-VHDX): file identifier, two headers, two region tables, an empty 1 MiB
//! log, the metadata region, the BAT, then 2 MiB payload blocks in guest order. Little-endian;
//! GUIDs in Microsoft byte order; CRC-32C checksums.

use std::fs::File;

use imagetool_blockio::{Extents, ReadAt};

use crate::ids::{Seed, guid_le, uuid};
use crate::out::{Appender, put_at};
use crate::scan::scan;
use crate::{Ctx, Format, Report, Result};

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 2 * MIB;
const LOG_OFFSET: u64 = MIB;
const LOG_LEN: u64 = MIB;
const META_OFFSET: u64 = 2 * MIB;
const META_LEN: u64 = MIB;
const BAT_OFFSET: u64 = 3 * MIB;
const LOGICAL_SECTOR: u64 = 512;
const PHYSICAL_SECTOR: u32 = 4096;
const PAYLOAD_FULLY_PRESENT: u64 = 6;

/// A GUID written as text (e.g. "2DC27766-F623-4200-9D64-115E9BFD4A08") in on-disk order.
pub(crate) fn guid(text: &str) -> [u8; 16] {
    let hex: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
        .collect();
    let mut u = [0u8; 16];
    for (i, b) in u.iter_mut().enumerate() {
        *b = (hex[2 * i] << 4) | hex[2 * i + 1];
    }
    guid_le(u)
}

const BAT_GUID: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const META_GUID: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const FILE_PARAMS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const VIRTUAL_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const DISK_ID: &str = "BECA12AB-B2E6-4523-93EF-C309E000C746";
const LOGICAL: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const PHYSICAL: &str = "CDA348C7-445D-4471-9CC9-E9885251C556";

/// Sets the CRC-32C of `buf` (computed with the field zeroed) at `at`.
fn seal(buf: &mut [u8], at: usize) {
    buf[at..at + 4].fill(0);
    let c = crc32c::crc32c(buf);
    buf[at..at + 4].copy_from_slice(&c.to_le_bytes());
}

/// Writes `src` as a dynamic VHDX: the data blocks after the BAT, then the headers, region
/// tables, metadata and BAT.
pub(crate) fn write<S>(src: &S, file: &File, ctx: &Ctx) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let size = src.size();
    let blocks = size.div_ceil(BLOCK);
    // One sector-bitmap entry follows every `chunk_ratio` payload entries.
    let chunk_ratio = (1u64 << 23) * LOGICAL_SECTOR / BLOCK;
    let bat_entries = if blocks == 0 {
        0
    } else {
        blocks + (blocks - 1) / chunk_ratio
    };
    let bat_len = crate::round_up((bat_entries * 8).max(1), MIB, "vhdx BAT size")?;
    // Only the present entries are kept (memory follows the content, not the disk size).
    let mut bat: Vec<(u64, [u8; 8])> = Vec::new();
    let data_start = BAT_OFFSET + bat_len;
    let mut app = Appender::new(file, ctx.name(), data_start);
    let s = scan(
        ctx,
        src,
        BLOCK,
        |_, _| Ok(()),
        |i, (), data| {
            let e = i + i / chunk_ratio;
            let v = app.pos() | PAYLOAD_FULLY_PRESENT;
            bat.push((e, v.to_le_bytes()));
            app.write(data)
        },
    )?;
    let file_size = app.finish()?;
    let seed = ctx.seed_or(s.fingerprint);
    let name = ctx.name();

    // The file type identifier, two headers (the one with the higher sequence number is
    // current), two identical region tables, the metadata region, the BAT.
    put_at(file, &name, &identifier(), 0)?;
    for (n, at) in [(1u64, 64 * 1024u64), (2, 128 * 1024)] {
        put_at(file, &name, &header(n, &seed), at)?;
    }
    let rt = region_table(bat_len);
    put_at(file, &name, &rt, 192 * 1024)?;
    put_at(file, &name, &rt, 256 * 1024)?;
    put_at(file, &name, &metadata(size, &seed), META_OFFSET)?;
    crate::out::put_table(file, &name, BAT_OFFSET, bat_len / 8, 8, 0, &bat)?;
    Ok(Report {
        format: Format::Vhdx,
        virtual_size: size,
        file_size,
        data_grains: s.grains,
    })
}

/// The file type identifier: the signature and the creator.
fn identifier() -> Vec<u8> {
    let mut ident = vec![0u8; 512];
    ident[0..8].copy_from_slice(b"vhdxfile");
    let creator = concat!("imagetool ", env!("CARGO_PKG_VERSION"));
    for (i, u) in creator.encode_utf16().enumerate() {
        ident[8 + 2 * i..10 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    ident
}

/// Header number `n` (its sequence number): write GUIDs from `seed`, no log to replay.
fn header(n: u64, seed: &Seed) -> Vec<u8> {
    let mut h = vec![0u8; 4096];
    h[0..4].copy_from_slice(b"head");
    h[8..16].copy_from_slice(&n.to_le_bytes());
    h[16..32].copy_from_slice(&guid_le(uuid(seed, "vhdx file write guid")));
    h[32..48].copy_from_slice(&guid_le(uuid(seed, "vhdx data write guid")));
    // Log GUID all zero: there is no log to replay.
    h[66..68].copy_from_slice(&1u16.to_le_bytes());
    h[68..72].copy_from_slice(&(LOG_LEN as u32).to_le_bytes());
    h[72..80].copy_from_slice(&LOG_OFFSET.to_le_bytes());
    seal(&mut h, 4);
    h
}

/// The region table: the BAT (`bat_len` bytes) and the metadata region.
fn region_table(bat_len: u64) -> Vec<u8> {
    let mut rt = vec![0u8; 64 * 1024];
    rt[0..4].copy_from_slice(b"regi");
    rt[8..12].copy_from_slice(&2u32.to_le_bytes());
    for (k, (g, off, len)) in [
        (BAT_GUID, BAT_OFFSET, bat_len),
        (META_GUID, META_OFFSET, META_LEN),
    ]
    .into_iter()
    .enumerate()
    {
        let e = 16 + 32 * k;
        rt[e..e + 16].copy_from_slice(&guid(g));
        rt[e + 16..e + 24].copy_from_slice(&off.to_le_bytes());
        rt[e + 24..e + 28].copy_from_slice(&(len as u32).to_le_bytes());
        rt[e + 28..e + 32].copy_from_slice(&1u32.to_le_bytes());
    }
    seal(&mut rt, 4);
    rt
}

/// The metadata region: the table, then the items from 64 KiB on (file parameters, the
/// virtual size, the disk id from `seed`, the sector sizes).
fn metadata(size: u64, seed: &Seed) -> Vec<u8> {
    const IS_VIRTUAL_DISK: u32 = 2;
    const IS_REQUIRED: u32 = 4;
    let items: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            FILE_PARAMS,
            [(BLOCK as u32).to_le_bytes(), 0u32.to_le_bytes()].concat(),
            IS_REQUIRED,
        ),
        (
            VIRTUAL_SIZE,
            size.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            DISK_ID,
            guid_le(uuid(seed, "vhdx virtual disk id")).to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            LOGICAL,
            (LOGICAL_SECTOR as u32).to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            PHYSICAL,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
    ];
    let mut meta = vec![0u8; 128 * 1024];
    meta[0..8].copy_from_slice(b"metadata");
    meta[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    let mut data_at = 64 * 1024usize;
    for (k, (g, data, flags)) in items.into_iter().enumerate() {
        let e = 32 + 32 * k;
        meta[e..e + 16].copy_from_slice(&guid(g));
        meta[e + 16..e + 20].copy_from_slice(&(data_at as u32).to_le_bytes());
        meta[e + 20..e + 24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        meta[e + 24..e + 28].copy_from_slice(&flags.to_le_bytes());
        meta[data_at..data_at + data.len()].copy_from_slice(&data);
        data_at += data.len().div_ceil(8) * 8;
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_guid_text_to_disk_order() {
        let g = guid(BAT_GUID);
        assert_eq!(&g[..4], &[0x66, 0x77, 0xc2, 0x2d]);
        assert_eq!(&g[8..], &[0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08]);
    }
}
