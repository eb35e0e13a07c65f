//! qcow2 version 3 (docs/interop/qcow2.txt): 64 KiB clusters, 16-bit refcounts.
//!
//! File layout as written: the header cluster; the data clusters (or the packed compressed
//! clusters) in guest order; the L2 tables that are needed, in guest order; the L1 table; the
//! refcount blocks; the refcount table. The header is written last, once every offset is known.

pub(crate) mod read;

use std::cell::RefCell;
use std::fs::File;

use flate2::{Compress, FlushCompress, Status};
use imagetool_blockio::{Extents, ReadAt};

use crate::out::{Appender, put_at};
use crate::scan::scan;
use crate::{Compression, Ctx, Error, ErrorKind, Format, Report, Result};

const CLUSTER_BITS: u32 = 16;
const CS: u64 = 1 << CLUSTER_BITS;
/// Entries per L2 table (8 bytes each).
const L2_ENTRIES: u64 = CS / 8;
/// Entries per refcount block (16-bit refcounts).
const RB_ENTRIES: u64 = CS / 2;
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
/// Compressed descriptor: the sector count starts at bit 62 - (cluster_bits - 8).
const CSIZE_SHIFT: u32 = 62 - (CLUSTER_BITS - 8);
const HEADER_LEN: u32 = 112;
/// qemu's limits: L1 ≤ 32 MiB.
const MAX_L1_BYTES: u64 = 32 << 20;

enum Packed {
    /// Stored as is.
    Raw,
    /// The compressed bytes (shorter than a cluster).
    Compressed(Vec<u8>),
}

/// Writes `src` as qcow2, compressing clusters when `compression` is given.
pub(crate) fn write<S>(
    src: &S,
    file: &File,
    ctx: &Ctx,
    compression: Option<Compression>,
) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let size = src.size();
    let l1_size = size.div_ceil(CS).div_ceil(L2_ENTRIES);
    if l1_size * 8 > MAX_L1_BYTES {
        return Err(Error::new(
            ErrorKind::Unsupported,
            ctx.name(),
            format!("a {size}-byte disk needs an L1 table larger than qemu's 32 MiB limit"),
        ));
    }
    let mut app = Appender::new(file, ctx.name(), CS);
    // 1. The data clusters, in guest order.
    let data = write_data(src, file, ctx, compression, &mut app)?;
    // 2. The metadata's place after the data.
    let meta = MetaLayout::new(&data, l1_size);
    // 3. The L2 tables and the L1 table.
    write_tables(&mut app, &data.entries, &meta, l1_size)?;
    // 4. The refcount blocks and the refcount table.
    write_refcounts(&mut app, &data, &meta, ctx)?;
    let file_size = app.finish()?;
    debug_assert_eq!(file_size, meta.total * CS);
    // 5. The header, now that every offset is known.
    let header = header(
        size,
        l1_size,
        meta.l1_start * CS,
        meta.rt_start * CS,
        meta.n_rt,
        compression,
    );
    put_at(file, &ctx.name(), &header, 0)?;
    Ok(Report {
        format: if compression.is_some() {
            Format::Qcow2Compressed
        } else {
            Format::Qcow2
        },
        virtual_size: size,
        file_size,
        data_grains: data.grains,
    })
}

/// The data clusters as written.
struct Data {
    /// Guest cluster → L2 entry, for the clusters that hold data (ascending).
    entries: Vec<(u64, u64)>,
    /// Host-cluster refcount increments from compressed data: (first, last) cluster,
    /// inclusive.
    shared: Vec<(u64, u64)>,
    /// The first host cluster after the data.
    end: u64,
    /// The grains the scan found holding data.
    grains: u64,
}

/// Step 1: the clusters of `src` that hold data, appended in guest order (uncompressed), or
/// packed: compressed clusters at byte granularity, incompressible ones in whole free
/// clusters while the partial one keeps filling, as qemu packs them.
fn write_data<S>(
    src: &S,
    file: &File,
    ctx: &Ctx,
    compression: Option<Compression>,
    app: &mut Appender<'_>,
) -> Result<Data>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let mut entries: Vec<(u64, u64)> = Vec::new();
    let mut shared: Vec<(u64, u64)> = Vec::new();
    let mut packer = Packer {
        file,
        name: ctx.name(),
        cur: None,
        next_free: 1,
    };
    let scan_res = scan(
        ctx,
        src,
        CS,
        |_, data| match compression {
            None => Ok(Packed::Raw),
            Some(c) => compress(c, ctx.level, data),
        },
        |i, packed, data| match (compression, packed) {
            (None, _) => {
                entries.push((i, app.pos() | COPIED));
                app.write(data)
            }
            (Some(_), Packed::Raw) => {
                let host = packer.raw(data)?;
                entries.push((i, host | COPIED));
                Ok(())
            }
            (Some(_), Packed::Compressed(bytes)) => {
                let off = packer.compressed(&bytes)?;
                let len = bytes.len() as u64;
                let first_sector = off >> 9;
                let last_sector = (off + len - 1) >> 9;
                let extra = last_sector - first_sector;
                entries.push((i, COMPRESSED | off | (extra << CSIZE_SHIFT)));
                shared.push((off / CS, (off + len - 1) / CS));
                Ok(())
            }
        },
    )?;
    let end = if compression.is_some() {
        let end = packer.finish()?;
        app.skip_to(end * CS)?;
        end
    } else {
        app.pos() / CS
    };
    Ok(Data {
        entries,
        shared,
        end,
        grains: scan_res.grains,
    })
}

/// Where the metadata goes (in clusters): the L2 tables, the L1 table, the refcount blocks
/// and the refcount table, in that order after the data.
struct MetaLayout {
    /// The L2 tables needed (L1 indexes, ascending).
    l2_indexes: Vec<u64>,
    l2_start: u64,
    l1_start: u64,
    n_l1: u64,
    rb_start: u64,
    n_rb: u64,
    rt_start: u64,
    n_rt: u64,
    /// The file's size in clusters.
    total: u64,
}

impl MetaLayout {
    /// Step 2: the metadata after `data`; the refcount blocks and table are sized to cover
    /// themselves (a fixed point).
    fn new(data: &Data, l1_size: u64) -> Self {
        let mut l2_indexes: Vec<u64> = data.entries.iter().map(|&(i, _)| i / L2_ENTRIES).collect();
        l2_indexes.dedup();
        let n_l2 = l2_indexes.len() as u64;
        let n_l1 = (l1_size * 8).div_ceil(CS).max(1);
        let l2_start = data.end;
        let l1_start = l2_start + n_l2;
        let rb_start = l1_start + n_l1;
        let (mut n_rb, mut n_rt) = (1u64, 1u64);
        loop {
            let total = rb_start + n_rb + n_rt;
            let (rb, rt) = (
                total.div_ceil(RB_ENTRIES),
                (total.div_ceil(RB_ENTRIES) * 8).div_ceil(CS),
            );
            if (rb, rt) == (n_rb, n_rt) {
                break;
            }
            (n_rb, n_rt) = (rb.max(n_rb), rt.max(n_rt));
        }
        let rt_start = rb_start + n_rb;
        Self {
            l2_indexes,
            l2_start,
            l1_start,
            n_l1,
            rb_start,
            n_rb,
            rt_start,
            n_rt,
            total: rt_start + n_rt,
        }
    }
}

/// Step 3: the L2 tables (each filled from `entries`), then the L1 table pointing at them.
fn write_tables(
    app: &mut Appender<'_>,
    entries: &[(u64, u64)],
    meta: &MetaLayout,
    l1_size: u64,
) -> Result<()> {
    let mut l1 = vec![0u64; l1_size as usize];
    let mut k = 0usize;
    for (n, &l2i) in meta.l2_indexes.iter().enumerate() {
        let mut table = vec![0u8; CS as usize];
        while k < entries.len() && entries[k].0 / L2_ENTRIES == l2i {
            let (i, e) = entries[k];
            let at = ((i % L2_ENTRIES) * 8) as usize;
            table[at..at + 8].copy_from_slice(&e.to_be_bytes());
            k += 1;
        }
        let host = (meta.l2_start + n as u64) * CS;
        l1[l2i as usize] = host | COPIED;
        app.write(&table)?;
    }
    let mut l1_bytes = vec![0u8; (meta.n_l1 * CS) as usize];
    for (i, e) in l1.iter().enumerate() {
        l1_bytes[i * 8..i * 8 + 8].copy_from_slice(&e.to_be_bytes());
    }
    app.write(&l1_bytes)
}

/// Step 4: the refcount blocks (the header, each data cluster once per use, each metadata
/// cluster once) and the refcount table pointing at them.
fn write_refcounts(
    app: &mut Appender<'_>,
    data: &Data,
    meta: &MetaLayout,
    ctx: &Ctx,
) -> Result<()> {
    let mut rc = vec![0u16; (meta.n_rb * RB_ENTRIES) as usize];
    rc[0] = 1;
    let bump = |rc: &mut Vec<u16>, c: u64| -> Result<()> {
        let slot = &mut rc[c as usize];
        *slot = slot.checked_add(1).ok_or_else(|| {
            Error::overflow(format!("{} (qcow2 refcount of cluster {c})", ctx.name()))
        })?;
        Ok(())
    };
    for &(_, e) in &data.entries {
        if e & COMPRESSED == 0 {
            bump(&mut rc, (e & !COPIED) / CS)?;
        }
    }
    for &(a, b) in &data.shared {
        for c in a..=b {
            bump(&mut rc, c)?;
        }
    }
    for c in meta.l2_start..meta.total {
        bump(&mut rc, c)?;
    }
    let mut rb_bytes = vec![0u8; (meta.n_rb * CS) as usize];
    for (i, r) in rc.iter().enumerate() {
        rb_bytes[i * 2..i * 2 + 2].copy_from_slice(&r.to_be_bytes());
    }
    app.write(&rb_bytes)?;
    let mut rt_bytes = vec![0u8; (meta.n_rt * CS) as usize];
    for b in 0..meta.n_rb {
        let at = (b * 8) as usize;
        rt_bytes[at..at + 8].copy_from_slice(&((meta.rb_start + b) * CS).to_be_bytes());
    }
    app.write(&rt_bytes)
}

/// Places compressed clusters at byte granularity and incompressible ones in whole clusters.
struct Packer<'a> {
    file: &'a File,
    name: String,
    cur: Option<(u64, Vec<u8>)>,
    next_free: u64,
}

impl Packer<'_> {
    fn raw(&mut self, data: &[u8]) -> Result<u64> {
        let host = self.next_free * CS;
        self.next_free += 1;
        put_at(self.file, &self.name, data, host)?;
        Ok(host)
    }

    /// Appends `bytes` (shorter than a cluster); returns their host offset.
    fn compressed(&mut self, bytes: &[u8]) -> Result<u64> {
        let (idx, mut buf) = match self.cur.take() {
            Some((idx, buf))
                if buf.len() + bytes.len() <= CS as usize || idx + 1 == self.next_free =>
            {
                (idx, buf)
            }
            Some((idx, buf)) => {
                // Not contiguous with a free cluster: close this one, start a fresh one.
                put_at(self.file, &self.name, &buf, idx * CS)?;
                self.next_free += 1;
                (self.next_free - 1, Vec::with_capacity(CS as usize))
            }
            None => {
                self.next_free += 1;
                (self.next_free - 1, Vec::with_capacity(CS as usize))
            }
        };
        let off = idx * CS + buf.len() as u64;
        buf.extend_from_slice(bytes);
        let (mut idx, mut buf) = (idx, buf);
        if buf.len() >= CS as usize {
            // Spans into the next (free, contiguous) cluster.
            put_at(self.file, &self.name, &buf[..CS as usize], idx * CS)?;
            buf.drain(..CS as usize);
            idx += 1;
            self.next_free = idx + 1;
        }
        self.cur = Some((idx, buf));
        Ok(off)
    }

    /// Writes the partial cluster; returns the first cluster after the data.
    fn finish(&mut self) -> Result<u64> {
        if let Some((idx, buf)) = self.cur.take() {
            put_at(self.file, &self.name, &buf, idx * CS)?;
        }
        Ok(self.next_free)
    }
}

fn header(
    size: u64,
    l1_size: u64,
    l1_off: u64,
    rt_off: u64,
    rt_clusters: u64,
    c: Option<Compression>,
) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN as usize + 8];
    let mut put = |at: usize, v: &[u8]| h[at..at + v.len()].copy_from_slice(v);
    put(0, b"QFI\xfb");
    put(4, &3u32.to_be_bytes());
    put(20, &CLUSTER_BITS.to_be_bytes());
    put(24, &size.to_be_bytes());
    put(36, &(l1_size as u32).to_be_bytes());
    put(40, &l1_off.to_be_bytes());
    put(48, &rt_off.to_be_bytes());
    put(56, &(rt_clusters as u32).to_be_bytes());
    let zstd = c == Some(Compression::Zstd);
    // Incompatible bit 3: a compression type other than zlib.
    put(72, &(if zstd { 1u64 << 3 } else { 0 }).to_be_bytes());
    put(96, &4u32.to_be_bytes());
    put(100, &HEADER_LEN.to_be_bytes());
    h[104] = u8::from(zstd);
    // 112..120: the end-of-extensions marker (type 0, length 0).
    h
}

thread_local! {
    /// One compressor per worker thread, reset between clusters (allocating one per cluster
    /// costs more than compressing a small cluster).
    static DEFLATE: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    #[cfg(feature = "zstd")]
    static ZSTD: RefCell<Option<(u32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

fn compress(c: Compression, level: u32, data: &[u8]) -> Result<Packed> {
    let limit = data.len() - 1;
    let out = match c {
        Compression::Deflate => DEFLATE.with(|cell| {
            let mut slot = cell.borrow_mut();
            let z = match &mut *slot {
                Some((l, z)) if *l == level => {
                    z.reset();
                    z
                }
                _ => {
                    // Raw deflate with a 4 KiB window: QEMU inflates with windowBits -12.
                    let z =
                        Compress::new_with_window_bits(flate2::Compression::new(level), false, 12);
                    &mut slot.insert((level, z)).1
                }
            };
            let mut out = Vec::with_capacity(data.len());
            match z.compress_vec(data, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) if out.len() <= limit => Ok(Some(out)),
                Ok(_) => Ok(None),
                Err(e) => Err(Error::new(ErrorKind::Io, "deflate", e.to_string())),
            }
        })?,
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => {
            return Err(Error::new(ErrorKind::Unsupported, "zstd", crate::NO_ZSTD));
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd => ZSTD.with(|cell| {
            let mut slot = cell.borrow_mut();
            let z = match &mut *slot {
                Some((l, z)) if *l == level => z,
                _ => {
                    let z = zstd::bulk::Compressor::new(level as i32)
                        .map_err(|e| Error::io("zstd", e))?;
                    &mut slot.insert((level, z)).1
                }
            };
            let out = z.compress(data).map_err(|e| Error::io("zstd", e))?;
            Ok::<_, Error>((out.len() <= limit).then_some(out))
        })?,
    };
    Ok(out.map_or(Packed::Raw, Packed::Compressed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn test_deflate_clusters_inflate_with_a_4k_window() {
        let data: Vec<u8> = (0..CS as u32).map(|i| (i / 7 % 251) as u8).collect();
        let Packed::Compressed(bytes) = compress(Compression::Deflate, 9, &data).unwrap() else {
            panic!("compressible data stored raw");
        };
        let mut d = Decompress::new_with_window_bits(false, 12);
        let mut back = Vec::with_capacity(data.len());
        d.decompress_vec(&bytes, &mut back, FlushDecompress::Finish)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn test_incompressible_cluster_is_stored_raw() {
        let data = imagetool_testutil::noise(0x1234_5678, CS as usize);
        assert!(matches!(
            compress(Compression::Deflate, 9, &data).unwrap(),
            Packed::Raw
        ));
        assert!(matches!(
            compress(Compression::Zstd, 3, &data).unwrap(),
            Packed::Raw
        ));
    }

    #[test]
    fn test_header_fields() {
        let h = header(1 << 30, 2, 0x30000, 0x50000, 1, Some(Compression::Zstd));
        assert_eq!(&h[0..4], b"QFI\xfb");
        assert_eq!(u64::from_be_bytes(h[72..80].try_into().unwrap()), 8);
        assert_eq!(h[104], 1);
        assert_eq!(u32::from_be_bytes(h[100..104].try_into().unwrap()), 112);
    }
}
