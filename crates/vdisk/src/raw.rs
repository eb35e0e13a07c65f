//! A sparse raw copy (and the data part of a fixed VHD).

use std::fs::File;

use imagetool_blockio::{Extents, ReadAt};

use crate::out::Appender;
use crate::scan::{Scan, scan};
use crate::{Ctx, Format, Report, Result};

const GRAIN: u64 = 64 << 10;

/// Copies the source's non-zero 64 KiB grains to the same offsets; returns the appender (at
/// the source's size) so a footer can follow.
pub(crate) fn copy<'a, S>(src: &S, file: &'a File, ctx: &Ctx) -> Result<(Appender<'a>, Scan)>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let size = src.size();
    let mut app = Appender::new(file, ctx.name(), 0);
    let s = scan(
        ctx,
        src,
        GRAIN,
        |_, _| Ok(()),
        |i, (), data| {
            let off = i * GRAIN;
            app.skip_to(off)?;
            let len = GRAIN.min(size - off) as usize;
            app.write(&data[..len])
        },
    )?;
    app.skip_to(size)?;
    Ok((app, s))
}

pub(crate) fn write<S>(src: &S, file: &File, ctx: &Ctx) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let (app, s) = copy(src, file, ctx)?;
    let file_size = app.finish()?;
    Ok(Report {
        format: Format::Raw,
        virtual_size: src.size(),
        file_size,
        data_grains: s.grains,
    })
}
