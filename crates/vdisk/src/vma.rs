//! Proxmox's Virtual Machine Archive (VMA), as `vma create` writes it (Proxmox's
//! `vma_spec.txt`): a header holding the configuration files as blobs and the device list,
//! then the disk's 64 KiB clusters in extents of up to 59 clusters, each extent with a 512-byte
//! header (magic `VMAE`, the archive's UUID, an MD5 of the header, a block-info entry per
//! cluster: a 16-bit mask of the non-zero 4 KiB blocks, the device id and the cluster number)
//! followed by the cluster's non-zero blocks only.
//!
//! Every number is big-endian, except the 2-byte length in front of each blob (little-endian,
//! as `vma create` and every reader take it). Blob offset 0 means "none", so the blob buffer
//! starts at 1. The writer streams (`impl Write`), so the archive can go straight into zstd.
//! Every cluster of the device is listed, zero clusters with an empty mask, so a restore (or
//! `vma verify`) sees the whole disk.

use std::io::Write;

use imagetool_blockio::{Extents, ReadAt, is_zero};
use md5::{Digest, Md5};

use crate::{Error, ErrorKind, Result};

/// The cluster size.
pub const CLUSTER: u64 = 65536;
/// The block size of the zero mask.
pub const BLOCK: usize = 4096;
/// Clusters per extent.
pub const CLUSTERS_PER_EXTENT: usize = 59;
/// Size of the fixed part of the header (before the blob buffer).
pub const HEADER_FIXED: usize = 12288;
/// The header magic.
pub const MAGIC: &[u8; 4] = b"VMA\0";
/// The extent magic.
pub const EXTENT_MAGIC: &[u8; 4] = b"VMAE";

/// One archive: its identity, configuration files and the single device.
#[derive(Debug, Clone)]
pub struct VmaOptions {
    /// The archive's UUID (marks every extent).
    pub uuid: imagetool_fstree::Uuid,
    /// The backup time stamp (seconds since the epoch).
    pub ctime: u64,
    /// Configuration files: name (e.g. `qemu-server.conf`) and contents.
    pub configs: Vec<(String, Vec<u8>)>,
    /// The device name (e.g. `drive-virtio0`).
    pub device: String,
}

/// What a VMA write produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmaReport {
    /// Bytes written.
    pub bytes: u64,
    /// Clusters listed.
    pub clusters: u64,
    /// Non-zero 4 KiB blocks stored.
    pub blocks: u64,
}

struct Blobs {
    buf: Vec<u8>,
}

impl Blobs {
    fn add(&mut self, data: &[u8], what: &str) -> Result<u32> {
        let len = u16::try_from(data.len()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("VMA {what}"),
                format!("{} bytes: a VMA blob holds at most 65535", data.len()),
            )
        })?;
        let at = u32::try_from(self.buf.len())
            .map_err(|_| Error::overflow("VMA blob buffer".to_string()))?;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(data);
        Ok(at)
    }

    fn string(&mut self, s: &str, what: &str) -> Result<u32> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.add(&v, what)
    }
}

/// The header: fixed part and blob buffer.
fn header(size: u64, opts: &VmaOptions) -> Result<Vec<u8>> {
    if opts.configs.len() > 256 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "VMA configs",
            "at most 256 configuration files",
        ));
    }
    if opts.device.is_empty() || opts.device == "vmstate" || opts.device.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("VMA device {:?}", opts.device),
            "must be a non-empty name other than `vmstate`",
        ));
    }
    let mut blobs = Blobs { buf: vec![0] };
    let mut h = vec![0u8; HEADER_FIXED];
    for (i, (name, data)) in opts.configs.iter().enumerate() {
        let n = blobs.string(name, "config name")?;
        let d = blobs.add(data, &format!("config {name}"))?;
        h[2044 + 4 * i..2048 + 4 * i].copy_from_slice(&n.to_be_bytes());
        h[3068 + 4 * i..3072 + 4 * i].copy_from_slice(&d.to_be_bytes());
    }
    let dev = blobs.string(&opts.device, "device name")?;
    // dev_id 0 is unused: the device is number 1.
    let di = 4096 + 32;
    h[di..di + 4].copy_from_slice(&dev.to_be_bytes());
    h[di + 8..di + 16].copy_from_slice(&size.to_be_bytes());
    let blob_size = blobs.buf.len().div_ceil(512) * 512;
    blobs.buf.resize(blob_size, 0);
    let header_size = HEADER_FIXED + blob_size;
    h[0..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&1u32.to_be_bytes());
    h[8..24].copy_from_slice(opts.uuid.as_bytes());
    h[24..32].copy_from_slice(&opts.ctime.to_be_bytes());
    h[48..52].copy_from_slice(&(HEADER_FIXED as u32).to_be_bytes());
    h[52..56].copy_from_slice(&(blob_size as u32).to_be_bytes());
    h[56..60].copy_from_slice(&(header_size as u32).to_be_bytes());
    h.extend_from_slice(&blobs.buf);
    let sum = Md5::digest(&h);
    h[32..48].copy_from_slice(&sum);
    Ok(h)
}

/// Whether any of `extents` overlaps `r`.
fn touches(extents: &[std::ops::Range<u64>], r: &std::ops::Range<u64>) -> bool {
    let i = extents.partition_point(|e| e.end <= r.start);
    extents.get(i).is_some_and(|e| e.start < r.end)
}

/// Writes `src` as a one-device VMA archive to `out`.
///
/// # Errors
/// `InvalidInput` for a bad device name, too many or too large configs; `Io` for read or write
/// failures (`name` is the output, for messages).
pub fn write<S, W>(src: &S, out: &mut W, opts: &VmaOptions, name: &str) -> Result<VmaReport>
where
    S: ReadAt + Extents + ?Sized,
    W: Write,
{
    let size = src.size();
    let head = header(size, opts)?;
    let werr = |e| Error::io(format!("{name} (writing the VMA)"), e);
    out.write_all(&head).map_err(werr)?;
    let mut written = head.len() as u64;
    let mut extents = src
        .data_extents()
        .map_err(|e| Error::io(format!("{name}: source extents"), e))?;
    extents.sort_by_key(|e| e.start);
    let clusters = size.div_ceil(CLUSTER);
    let mut blocks_total = 0u64;
    let mut cluster = vec![0u8; CLUSTER as usize];
    let mut first = 0u64;
    while first < clusters {
        let last = (first + CLUSTERS_PER_EXTENT as u64).min(clusters);
        let mut ext = vec![0u8; 512];
        let mut data = Vec::new();
        let mut blocks = 0u16;
        for (slot, c) in (first..last).enumerate() {
            let start = c * CLUSTER;
            let end = (start + CLUSTER).min(size);
            let mut mask = 0u16;
            if touches(&extents, &(start..end)) {
                cluster.fill(0);
                let n = (end - start) as usize;
                src.read_exact_at(&mut cluster[..n], start).map_err(|e| {
                    Error::io(format!("{name} (reading the source at byte {start})"), e)
                })?;
                for (b, block) in cluster.chunks(BLOCK).enumerate() {
                    if !is_zero(block) {
                        mask |= 1 << b;
                        data.extend_from_slice(block);
                        blocks += 1;
                    }
                }
            }
            let info = (u64::from(mask) << 48) | (1u64 << 32) | (c & 0xffff_ffff);
            if c > u64::from(u32::MAX) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    name,
                    "a VMA device holds at most 2^32 clusters (256 TiB)",
                ));
            }
            ext[40 + 8 * slot..48 + 8 * slot].copy_from_slice(&info.to_be_bytes());
        }
        ext[0..4].copy_from_slice(EXTENT_MAGIC);
        ext[6..8].copy_from_slice(&blocks.to_be_bytes());
        ext[8..24].copy_from_slice(opts.uuid.as_bytes());
        let sum = Md5::digest(&ext);
        ext[24..40].copy_from_slice(&sum);
        out.write_all(&ext).map_err(werr)?;
        out.write_all(&data).map_err(werr)?;
        written += 512 + data.len() as u64;
        blocks_total += u64::from(blocks);
        first = last;
    }
    Ok(VmaReport {
        bytes: written,
        clusters,
        blocks: blocks_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagetool_blockio::{MemImage, WriteAt};

    #[test]
    fn test_header_layout_and_checksums() {
        let m = MemImage::new(3 * CLUSTER + 4096);
        m.write_all_at(&[7u8; 10], CLUSTER + 5).unwrap();
        let opts = VmaOptions {
            uuid: [9; 16].into(),
            ctime: 1234,
            configs: vec![("qemu-server.conf".into(), b"memory: 1024\n".to_vec())],
            device: "drive-virtio0".into(),
        };
        let mut out = Vec::new();
        let r = write(&m, &mut out, &opts, "t").unwrap();
        assert_eq!(r.clusters, 4);
        assert_eq!(r.blocks, 1);
        assert_eq!(&out[..4], MAGIC);
        let hs = u32::from_be_bytes(out[56..60].try_into().unwrap()) as usize;
        assert_eq!(hs % 512, 0);
        let mut h = out[..hs].to_vec();
        h[32..48].fill(0);
        assert_eq!(&Md5::digest(&h)[..], &out[32..48]);
        assert_eq!(&out[hs..hs + 4], EXTENT_MAGIC);
        assert_eq!(out.len(), hs + 512 + 4096);
        // The same input gives the same bytes; a bad device name is refused.
        let mut again = Vec::new();
        write(&m, &mut again, &opts, "t").unwrap();
        assert_eq!(out, again);
        let bad = VmaOptions {
            device: "vmstate".into(),
            ..opts
        };
        let e = write(&m, &mut Vec::new(), &bad, "t").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
