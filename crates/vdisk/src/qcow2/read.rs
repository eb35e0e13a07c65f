//! Reading qcow2 (v2/v3, no backing file, no encryption, no external data file, no extended
//! L2 entries) into an [`ImageReader`].
//!
//! Limits, as qemu's `qcow2_do_open` applies them: cluster bits 9–21; a v3 header length of at
//! least 104 bytes and at most one cluster; an L1 table of at most 32 MiB that covers the
//! virtual size; the L1 table and every L2 table cluster-aligned and inside the file. Beyond
//! qemu (which reads lazily and so never walks a hostile table in full): only the L1 entries
//! the virtual size needs are followed, no L2 table is referenced twice (a shared L2 would
//! multiply the map), and no data cluster overlaps the header, a table or another data
//! cluster.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::read::{Codec, ImageReader, MapBuilder, check_virtual_size, open_regular, read_table};
use crate::{Error, ErrorKind, Result};

const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Incompatible features this reader understands: dirty (0) and compression type (3).
const KNOWN_INCOMPATIBLE: u64 = (1 << 0) | (1 << 3);
/// qemu's `QCOW_MAX_L1_SIZE`.
const MAX_L1_BYTES: u64 = 32 << 20;

/// A qcow2 image opened for reading (the name is kept for callers of earlier versions; every
/// container reads through [`ImageReader`]).
pub type Qcow2Reader = ImageReader;

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

/// True when the file is a regular file that starts with the qcow2 magic.
///
/// # Errors
/// `Io` when the file cannot be read; `InvalidInput` when it is not a regular file.
pub fn is_qcow2(path: &Path) -> Result<bool> {
    let f = open_regular(path)?;
    let mut m = [0u8; 4];
    match f.read_exact_at(&mut m, 0) {
        Ok(()) => Ok(&m == b"QFI\xfb"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(path.display().to_string(), e)),
    }
}

pub(crate) fn open(file: File, name: &str, flen: u64) -> Result<ImageReader> {
    let bad = |what: String| Error::new(ErrorKind::Corrupt, name, what);
    let unsupported = |what: String| Error::new(ErrorKind::Unsupported, name, what);
    let mut h = [0u8; 105];
    file.read_exact_at(&mut h[..104], 0)
        .map_err(|e| Error::io(format!("{name} (qcow2 header)"), e))?;
    if &h[0..4] != b"QFI\xfb" {
        return Err(bad("not a qcow2 image".into()));
    }
    let version = be32(&h, 4);
    if !(2..=3).contains(&version) {
        return Err(unsupported(format!("qcow2 version {version}")));
    }
    if be64(&h, 8) != 0 {
        return Err(unsupported("qcow2 with a backing file".into()));
    }
    if be32(&h, 32) != 0 {
        return Err(unsupported("encrypted qcow2".into()));
    }
    let cluster_bits = be32(&h, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(bad(format!(
            "header field cluster_bits (byte 20) is {cluster_bits}, not 9..=21"
        )));
    }
    let cluster = 1u64 << cluster_bits;
    let size = be64(&h, 24);
    check_virtual_size(name, size)?;
    let l1_size = u64::from(be32(&h, 36));
    let l1_off = be64(&h, 40);
    let mut codec = Codec::RawDeflate;
    if version == 3 {
        let incompatible = be64(&h, 72);
        if incompatible & !KNOWN_INCOMPATIBLE != 0 {
            return Err(unsupported(format!(
                "qcow2 incompatible features {incompatible:#x} (this reader knows dirty and \
                 compression type)"
            )));
        }
        let header_len = u64::from(be32(&h, 100));
        if header_len < 104 || header_len > cluster {
            return Err(bad(format!(
                "header field header_length (byte 100) is {header_len}, not 104..={cluster}"
            )));
        }
        if header_len > 104 {
            file.read_exact_at(&mut h[104..105], 104)
                .map_err(|e| Error::io(format!("{name} (qcow2 header)"), e))?;
            codec = match h[104] {
                0 => Codec::RawDeflate,
                1 if cfg!(feature = "zstd") => Codec::Zstd,
                1 => return Err(unsupported(crate::NO_ZSTD.into())),
                t => return Err(unsupported(format!("qcow2 compression type {t}"))),
            };
        }
        if incompatible & (1 << 3) != 0 && codec == Codec::RawDeflate {
            return Err(bad(
                "compression-type feature set but the type is zlib".into()
            ));
        }
    }
    let l2_entries = cluster / 8;
    let needed_l1 = size.div_ceil(cluster).div_ceil(l2_entries);
    if l1_size * 8 > MAX_L1_BYTES {
        return Err(bad(format!(
            "header field l1_size (byte 36) is {l1_size}: the L1 table would exceed qemu's \
             {MAX_L1_BYTES}-byte limit"
        )));
    }
    if l1_size < needed_l1 {
        return Err(bad(format!(
            "header field l1_size (byte 36) is {l1_size}, too small for the virtual size \
             {size} (needs {needed_l1})"
        )));
    }
    if !l1_off.is_multiple_of(cluster) || l1_off == 0 {
        return Err(bad(format!(
            "header field l1_table_offset (byte 40) is {l1_off}: not a cluster past the header"
        )));
    }
    let mut b = MapBuilder::new(name, flen, cluster);
    b.claim(0, cluster.min(flen), "qcow2 header")?;
    // Only the entries the virtual size needs are read and followed.
    let l1 = read_table(&file, &mut b, l1_off, needed_l1 * 8, "qcow2 L1 table")?;
    let csize_shift = 62 - (cluster_bits - 8);
    let csize_mask = (1u64 << (cluster_bits - 8)) - 1;
    let coffset_mask = (1u64 << csize_shift) - 1;
    let mut l2 = vec![0u8; cluster as usize];
    for i in 0..needed_l1 {
        let l1e = be64(&l1, (i * 8) as usize);
        let l2_off = l1e & OFFSET_MASK;
        if l2_off == 0 {
            continue;
        }
        if !l2_off.is_multiple_of(cluster) {
            return Err(bad(format!(
                "L1 entry {i} (byte {}) points at {l2_off}, not cluster-aligned",
                l1_off + i * 8
            )));
        }
        // Claimed, so an L2 table referenced twice is an overlap (refused at the end); checked
        // here too, so a hostile L1 cannot make us read the same table millions of times.
        b.claim(l2_off, cluster, "qcow2 L2 table")?;
        if !b.first_use(l2_off) {
            return Err(bad(format!(
                "L1 entry {i} (byte {}) points at the L2 table at byte {l2_off}, which another \
                 L1 entry uses too",
                l1_off + i * 8
            )));
        }
        file.read_exact_at(&mut l2, l2_off)
            .map_err(|e| Error::io(format!("{name} (qcow2 L2 table at byte {l2_off})"), e))?;
        if imagetool_blockio::is_zero(&l2) {
            continue;
        }
        let first = i * l2_entries;
        let n = l2_entries.min(size.div_ceil(cluster) - first);
        for j in 0..n {
            let e = be64(&l2, (j * 8) as usize);
            let guest = first + j;
            if e & COMPRESSED != 0 {
                let offset = e & coffset_mask;
                let sectors = ((e >> csize_shift) & csize_mask) + 1;
                let len = (sectors * 512).saturating_sub(offset & 511);
                b.compressed(guest, offset, len)?;
            } else if e & ZERO != 0 {
                continue;
            } else {
                match e & !COPIED & OFFSET_MASK {
                    0 => continue,
                    o if !o.is_multiple_of(cluster) => {
                        return Err(bad(format!(
                            "L2 entry {j} of the table at byte {l2_off} points at {o}, not \
                             cluster-aligned"
                        )));
                    }
                    o => b.data(guest, o)?,
                }
            }
        }
    }
    b.finish(file, size, codec)
}
