//! VirtualBox VDI, dynamic: 512-byte header, block map, then 1 MiB blocks in guest order.
//! Little-endian.

use std::fs::File;

use imagetool_blockio::{Extents, ReadAt};

use crate::ids::uuid;
use crate::out::{Appender, put_at};
use crate::scan::scan;
use crate::{Ctx, Error, ErrorKind, Format, Report, Result};

const BLOCK: u64 = 1 << 20;
const BMAP_OFFSET: u64 = 0x200;
const UNALLOCATED: u32 = 0xffff_ffff;
const TEXT: &[u8] = b"<<< QEMU VM Virtual Disk Image >>>\n";
/// qemu's limit on the number of blocks (0x3fffffff / 4 MiB of map... keep u32 offsets sane).
const MAX_BLOCKS: u64 = 0x3fff_ffff;

pub(crate) fn write<S>(src: &S, file: &File, ctx: &Ctx) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let size = src.size();
    let blocks = size.div_ceil(BLOCK);
    if blocks > MAX_BLOCKS {
        return Err(Error::new(
            ErrorKind::Unsupported,
            ctx.name(),
            format!("{size} bytes is larger than VDI's limit"),
        ));
    }
    let bmap_bytes = (blocks * 4).div_ceil(512) * 512;
    let data_offset = BMAP_OFFSET + bmap_bytes;
    // Only the allocated entries are kept (memory follows the content, not the disk size).
    let mut bmap: Vec<(u64, [u8; 8])> = Vec::new();
    let mut allocated = 0u32;
    let mut app = Appender::new(file, ctx.name(), data_offset);
    let s = scan(
        ctx,
        src,
        BLOCK,
        |_, _| Ok(()),
        |i, (), data| {
            let mut e = [0u8; 8];
            e[..4].copy_from_slice(&allocated.to_le_bytes());
            bmap.push((i, e));
            allocated += 1;
            app.write(data)
        },
    )?;
    debug_assert!(allocated != UNALLOCATED);
    let file_size = app.finish()?;
    let seed = ctx.seed_or(s.fingerprint);

    let mut h = [0u8; 512];
    let mut put = |at: usize, v: &[u8]| h[at..at + v.len()].copy_from_slice(v);
    put(0, TEXT);
    put(0x40, &0xbeda_107fu32.to_le_bytes());
    put(0x44, &0x0001_0001u32.to_le_bytes());
    put(0x48, &0x180u32.to_le_bytes());
    put(0x4c, &1u32.to_le_bytes());
    put(0x154, &(BMAP_OFFSET as u32).to_le_bytes());
    put(0x158, &(data_offset as u32).to_le_bytes());
    put(0x168, &512u32.to_le_bytes());
    put(0x170, &size.to_le_bytes());
    put(0x178, &(BLOCK as u32).to_le_bytes());
    put(0x180, &(blocks as u32).to_le_bytes());
    put(0x184, &allocated.to_le_bytes());
    put(0x188, &uuid(&seed, "vdi image uuid"));
    put(0x198, &uuid(&seed, "vdi last snapshot uuid"));
    let name = ctx.name();
    put_at(file, &name, &h, 0)?;
    // The map is bmap_bytes long: 0xff (unallocated) past the last block too.
    crate::out::put_table(file, &name, BMAP_OFFSET, bmap_bytes / 4, 4, 0xff, &bmap)?;
    Ok(Report {
        format: Format::Vdi,
        virtual_size: size,
        file_size,
        data_grains: s.grains,
    })
}
