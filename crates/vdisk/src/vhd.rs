//! VHD ("vpc"): dynamic (footer copy, dynamic header, BAT, blocks with sector bitmaps, footer)
//! and fixed (raw data + footer). Big-endian.

use std::fs::File;

use imagetool_blockio::{Extents, ReadAt};

use crate::ids::{Seed, uuid};
use crate::out::{Appender, put_at};
use crate::scan::scan;
use crate::{Ctx, Error, ErrorKind, Format, Report, Result, raw};

const BLOCK: u64 = 2 << 20;
/// One bit per sector of a block, rounded to a sector.
const BITMAP: u64 = 512;
const BAT_OFFSET: u64 = 1536;
/// qemu's limit, about 2040 GiB.
const MAX_SECTORS: u64 = 65535 * 255 * 255;
/// Seconds from the Unix epoch to 2000-01-01 00:00:00 UTC.
pub(crate) const VHD_EPOCH: u64 = 946_684_800;

/// The CHS geometry of the VHD specification (as qemu's `calculate_geometry`).
pub(crate) fn geometry(size: u64) -> (u16, u8, u8) {
    let total = (size / 512).min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        let mut s = 17;
        let mut c = total / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    ((cth / heads) as u16, heads as u8, spt as u8)
}

fn checksum(b: &[u8]) -> u32 {
    !b.iter().fold(0u32, |a, &x| a.wrapping_add(u32::from(x)))
}

fn footer(size: u64, dynamic: bool, seed: &Seed, epoch: u64) -> [u8; 512] {
    let mut f = [0u8; 512];
    let mut put = |at: usize, v: &[u8]| f[at..at + v.len()].copy_from_slice(v);
    put(0, b"conectix");
    put(8, &2u32.to_be_bytes());
    put(12, &0x0001_0000u32.to_be_bytes());
    put(16, &(if dynamic { 512u64 } else { u64::MAX }).to_be_bytes());
    let ts = u32::try_from(epoch.saturating_sub(VHD_EPOCH)).unwrap_or(u32::MAX);
    put(24, &ts.to_be_bytes());
    // "qem2": qemu's creator app with force_size, so qemu (every version) takes the size from
    // current_size instead of the CHS geometry, which usually rounds it down.
    put(28, b"qem2");
    put(32, &0x0005_0003u32.to_be_bytes());
    put(36, b"Wi2k");
    put(40, &size.to_be_bytes());
    put(48, &size.to_be_bytes());
    let (c, h, s) = geometry(size);
    put(56, &c.to_be_bytes());
    put(58, &[h, s]);
    put(60, &(if dynamic { 3u32 } else { 2 }).to_be_bytes());
    put(68, &uuid(seed, "vhd unique id"));
    let sum = checksum(&f);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    f
}

fn check_size(size: u64, ctx: &Ctx) -> Result<()> {
    if size / 512 > MAX_SECTORS {
        return Err(Error::new(
            ErrorKind::Unsupported,
            ctx.name(),
            format!(
                "{size} bytes is larger than VHD's limit of {} bytes",
                MAX_SECTORS * 512
            ),
        ));
    }
    Ok(())
}

pub(crate) fn write_dynamic<S>(src: &S, file: &File, ctx: &Ctx) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let size = src.size();
    check_size(size, ctx)?;
    let blocks = size.div_ceil(BLOCK);
    let bat_bytes = (blocks * 4).div_ceil(512) * 512;
    let data_start = BAT_OFFSET + bat_bytes;
    let mut bat = vec![0xffu8; bat_bytes as usize];
    let mut app = Appender::new(file, ctx.name(), data_start);
    let bitmap = [0xffu8; BITMAP as usize];
    let s = scan(
        ctx,
        src,
        BLOCK,
        |_, _| Ok(()),
        |i, (), data| {
            let sector = u32::try_from(app.pos() / 512)
                .map_err(|_| Error::overflow(ctx.at("block offset", app.pos())))?;
            bat[(i * 4) as usize..(i * 4 + 4) as usize].copy_from_slice(&sector.to_be_bytes());
            app.write(&bitmap)?;
            app.write(data)
        },
    )?;
    let seed = ctx.seed_or(s.fingerprint);
    let foot = footer(size, true, &seed, ctx.epoch);
    app.write(&foot)?;
    let file_size = app.finish()?;

    let mut dh = [0u8; 1024];
    dh[0..8].copy_from_slice(b"cxsparse");
    dh[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    dh[16..24].copy_from_slice(&BAT_OFFSET.to_be_bytes());
    dh[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    dh[28..32].copy_from_slice(&(blocks as u32).to_be_bytes());
    dh[32..36].copy_from_slice(&(BLOCK as u32).to_be_bytes());
    let sum = checksum(&dh);
    dh[36..40].copy_from_slice(&sum.to_be_bytes());
    let name = ctx.name();
    put_at(file, &name, &foot, 0)?;
    put_at(file, &name, &dh, 512)?;
    put_at(file, &name, &bat, BAT_OFFSET)?;
    Ok(Report {
        format: Format::Vpc,
        virtual_size: size,
        file_size,
        data_grains: s.grains,
    })
}

pub(crate) fn write_fixed<S>(src: &S, file: &File, ctx: &Ctx) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    // Azure takes only sizes that are a whole number of MiB: pad with zeros up to one.
    let size = crate::round_up(src.size(), 1 << 20, "vhd-fixed size")?;
    check_size(size, ctx)?;
    let (mut app, s) = raw::copy(src, file, ctx)?;
    app.skip_to(size)?;
    let seed = ctx.seed_or(s.fingerprint);
    app.write(&footer(size, false, &seed, ctx.epoch))?;
    let file_size = app.finish()?;
    Ok(Report {
        format: Format::VhdFixed,
        virtual_size: size,
        file_size,
        data_grains: s.grains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_geometry_matches_known_values() {
        // 524288 sectors: spt 17 → cth 30840, heads 31 > 16 → spt 31, heads 16, cth 16912
        // ≥ 16384 → spt 63, cth 8322, cyl 520 (520·16·63 = 524160 sectors: rounded down).
        assert_eq!(geometry(256 << 20), (520, 16, 63));
        assert_eq!(geometry(u64::MAX), (65535, 16, 255));
    }

    #[test]
    fn test_footer_checksum_and_fields() {
        let f = footer(1 << 30, true, &[7; 16], VHD_EPOCH + 100);
        let mut z = f;
        z[64..68].fill(0);
        assert_eq!(
            u32::from_be_bytes(f[64..68].try_into().unwrap()),
            checksum(&z)
        );
        assert_eq!(u32::from_be_bytes(f[24..28].try_into().unwrap()), 100);
        assert_eq!(&f[28..32], b"qem2");
        assert_eq!(u64::from_be_bytes(f[48..56].try_into().unwrap()), 1 << 30);
    }
}
