//! VMDK hosted sparse extents (VMware "Virtual Disk Format 1.1"): monolithicSparse (header,
//! embedded descriptor, redundant and primary grain directories and tables, 64 KiB grains) and
//! streamOptimized (header with the directory "at end", deflate grains each behind a marker,
//! then grain tables, grain directory, footer and end-of-stream marker). Little-endian.

use std::cell::RefCell;
use std::fs::File;

use flate2::{Compress, FlushCompress, Status};
use imagetool_blockio::{Extents, ReadAt};

use crate::ids::uuid;
use crate::out::{Appender, put_at};
use crate::scan::scan;
use crate::{Ctx, Error, ErrorKind, Format, Report, Result};

const SECTOR: u64 = 512;
/// Grain size in sectors (64 KiB, qemu's default).
const GRAIN_SECTORS: u64 = 128;
const GRAIN: u64 = GRAIN_SECTORS * SECTOR;
const GTES: u64 = 512;
/// Sectors of one grain table (512 four-byte entries).
const GT_SECTORS: u64 = GTES * 4 / SECTOR;
const DESC_OFFSET: u64 = 1;
const DESC_SECTORS: u64 = 20;
const FLAG_NL_DETECT: u32 = 1;
const FLAG_RGD: u32 = 1 << 1;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
const GD_AT_END: u64 = u64::MAX;
const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

struct Header {
    version: u32,
    flags: u32,
    capacity: u64,
    rgd: u64,
    gd: u64,
    grain_offset: u64,
    compressed: bool,
}

impl Header {
    fn bytes(&self) -> [u8; 512] {
        let mut h = [0u8; 512];
        let mut put = |at: usize, v: &[u8]| h[at..at + v.len()].copy_from_slice(v);
        put(0, b"KDMV");
        put(4, &self.version.to_le_bytes());
        put(8, &self.flags.to_le_bytes());
        put(12, &self.capacity.to_le_bytes());
        put(20, &GRAIN_SECTORS.to_le_bytes());
        put(28, &DESC_OFFSET.to_le_bytes());
        put(36, &DESC_SECTORS.to_le_bytes());
        put(44, &(GTES as u32).to_le_bytes());
        put(48, &self.rgd.to_le_bytes());
        put(56, &self.gd.to_le_bytes());
        put(64, &self.grain_offset.to_le_bytes());
        put(73, b"\n \r\n");
        put(77, &u16::from(self.compressed).to_le_bytes());
        h
    }
}

/// The embedded text descriptor, as qemu writes it.
fn descriptor(ctx: &Ctx, cid: u32, create_type: &str, capacity: u64) -> Result<Vec<u8>> {
    let fname = ctx
        .dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cyl = (capacity / (16 * 63)).min(16383);
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n\
         createType=\"{create_type}\"\n\n# Extent description\nRW {capacity} SPARSE \"{fname}\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cyl}\"\nddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n"
    );
    if text.len() as u64 > DESC_SECTORS * SECTOR {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            ctx.name(),
            "output file name too long for the VMDK descriptor",
        ));
    }
    let mut d = text.into_bytes();
    d.resize((DESC_SECTORS * SECTOR) as usize, 0);
    Ok(d)
}

fn cid(seed: &crate::Seed) -> u32 {
    let u = uuid(seed, "vmdk cid");
    // 0xffffffff means "no parent"; keep clear of it.
    u32::from_le_bytes([u[0], u[1], u[2], u[3]]) & 0x7fff_ffff
}

fn sectors32(offset_bytes: u64, ctx: &Ctx) -> Result<u32> {
    u32::try_from(offset_bytes / SECTOR).map_err(|_| {
        Error::new(
            ErrorKind::Unsupported,
            ctx.at("grain", offset_bytes),
            "VMDK sector offsets are 32-bit: the output would exceed 2 TiB",
        )
    })
}

/// A 32-bit table entry in [`crate::out::put_table`]'s form.
fn entry(v: u32) -> [u8; 8] {
    let mut e = [0u8; 8];
    e[..4].copy_from_slice(&v.to_le_bytes());
    e
}

fn table_bytes(t: &[u32]) -> Vec<u8> {
    t.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn write_sparse<S>(src: &S, file: &File, ctx: &Ctx) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let size = src.size();
    let capacity = size / SECTOR;
    let grains = size.div_ceil(GRAIN);
    let gt_count = grains.div_ceil(GTES);
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    let rgd = DESC_OFFSET + DESC_SECTORS;
    let gd = rgd + gd_sectors + gt_count * GT_SECTORS;
    let grain_offset =
        (gd + gd_sectors + gt_count * GT_SECTORS).div_ceil(GRAIN_SECTORS) * GRAIN_SECTORS;
    // Only the allocated grains' entries are kept (memory follows the content).
    let mut gt: Vec<(u64, [u8; 8])> = Vec::new();
    let mut app = Appender::new(file, ctx.name(), grain_offset * SECTOR);
    let s = scan(
        ctx,
        src,
        GRAIN,
        |_, _| Ok(()),
        |i, (), data| {
            gt.push((i, entry(sectors32(app.pos(), ctx)?)));
            app.write(data)
        },
    )?;
    let file_size = app.finish()?;
    let seed = ctx.seed_or(s.fingerprint);
    let name = ctx.name();
    let header = Header {
        version: 1,
        flags: FLAG_NL_DETECT | FLAG_RGD,
        capacity,
        rgd,
        gd,
        grain_offset,
        compressed: false,
    };
    put_at(file, &name, &header.bytes(), 0)?;
    put_at(
        file,
        &name,
        &descriptor(ctx, cid(&seed), "monolithicSparse", capacity)?,
        DESC_OFFSET * SECTOR,
    )?;
    for dir in [rgd, gd] {
        let tables = dir + gd_sectors;
        let d: Vec<(u64, [u8; 8])> = (0..gt_count)
            .map(|k| {
                Ok((
                    k,
                    entry(sectors32((tables + k * GT_SECTORS) * SECTOR, ctx)?),
                ))
            })
            .collect::<Result<_>>()?;
        crate::out::put_table(file, &name, dir * SECTOR, gt_count, 4, 0, &d)?;
        crate::out::put_table(file, &name, tables * SECTOR, gt_count * GTES, 4, 0, &gt)?;
    }
    Ok(Report {
        format: Format::Vmdk,
        virtual_size: size,
        file_size,
        data_grains: s.grains,
    })
}

fn marker(val: u64, kind: u32) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[0..8].copy_from_slice(&val.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

thread_local! {
    static ZLIB: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
}

/// zlib-format deflate of one grain (what VMware and qemu's `uncompress` read).
fn deflate(level: u32, data: &[u8]) -> Result<Vec<u8>> {
    ZLIB.with(|cell| {
        let mut slot = cell.borrow_mut();
        let z = match &mut *slot {
            Some((l, z)) if *l == level => {
                z.reset();
                z
            }
            _ => {
                &mut slot
                    .insert((level, Compress::new(flate2::Compression::new(level), true)))
                    .1
            }
        };
        let mut out = Vec::with_capacity(data.len() + data.len() / 100 + 64);
        loop {
            match z.compress_vec(
                &data[z.total_in() as usize..],
                &mut out,
                FlushCompress::Finish,
            ) {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => out.reserve(out.capacity().max(4096)),
                Err(e) => return Err(Error::new(ErrorKind::Io, "deflate", e.to_string())),
            }
        }
    })
}

pub(crate) fn write_stream<S>(src: &S, file: &File, ctx: &Ctx) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let size = src.size();
    let capacity = size / SECTOR;
    let grains = size.div_ceil(GRAIN);
    let gt_count = grains.div_ceil(GTES);
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    // Header, descriptor, then grains from 64 KiB on (as VMware writes them).
    let grain_offset = GRAIN_SECTORS;
    // Only the allocated grains' entries are kept (memory follows the content).
    let mut gt: Vec<(u64, u32)> = Vec::new();
    let mut app = Appender::new(file, ctx.name(), grain_offset * SECTOR);
    let s = scan(
        ctx,
        src,
        GRAIN,
        |_, data| deflate(ctx.level, data),
        |i, z, _| {
            gt.push((i, sectors32(app.pos(), ctx)?));
            let mut m = Vec::with_capacity(12 + z.len());
            m.extend_from_slice(&(i * GRAIN_SECTORS).to_le_bytes());
            m.extend_from_slice(&(z.len() as u32).to_le_bytes());
            m.extend_from_slice(&z);
            app.write(&m)?;
            app.pad_to(SECTOR)
        },
    )?;
    // Grain tables that hold something, each behind a marker; then the directory.
    let mut gd: Vec<(u64, [u8; 8])> = Vec::new();
    for t in gt.chunk_by(|a, b| a.0 / GTES == b.0 / GTES) {
        let k = t[0].0 / GTES;
        let mut table = [0u32; GTES as usize];
        for &(i, e) in t {
            table[(i % GTES) as usize] = e;
        }
        app.write(&marker(GT_SECTORS, MARKER_GT))?;
        gd.push((k, entry(sectors32(app.pos(), ctx)?)));
        app.write(&table_bytes(&table))?;
    }
    app.write(&marker(gd_sectors, MARKER_GD))?;
    let gd_at = app.pos() / SECTOR;
    // The directory goes through the appender (it must precede the footer): zero runs
    // between its entries stay holes.
    let mut k = 0usize;
    for chunk in 0..(gd_sectors * SECTOR).div_ceil(64 << 10) {
        let start = chunk * (16 << 10);
        let len = ((gd_sectors * SECTOR) - chunk * (64 << 10)).min(64 << 10) as usize;
        let mut buf = vec![0u8; len];
        while let Some(&(idx, e)) = gd.get(k) {
            if idx >= start + (len as u64) / 4 {
                break;
            }
            let o = ((idx - start) * 4) as usize;
            buf[o..o + 4].copy_from_slice(&e[..4]);
            k += 1;
        }
        app.write(&buf)?;
    }
    let seed = ctx.seed_or(s.fingerprint);
    let mut header = Header {
        version: 3,
        flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
        capacity,
        rgd: 0,
        gd: gd_at,
        grain_offset,
        compressed: true,
    };
    app.write(&marker(1, MARKER_FOOTER))?;
    app.write(&header.bytes())?;
    app.write(&marker(0, MARKER_EOS))?;
    let file_size = app.finish()?;
    header.gd = GD_AT_END;
    let name = ctx.name();
    put_at(file, &name, &header.bytes(), 0)?;
    put_at(
        file,
        &name,
        &descriptor(ctx, cid(&seed), "streamOptimized", capacity)?,
        DESC_OFFSET * SECTOR,
    )?;
    Ok(Report {
        format: Format::VmdkStream,
        virtual_size: size,
        file_size,
        data_grains: s.grains,
    })
}
