//! Finds the non-zero grains of a source and processes them in parallel, in guest order.

use std::ops::Range;

use imagetool_blockio::{Extents, ReadAt, is_zero};
use rayon::prelude::*;

use crate::ids::{Fingerprint, Seed};
use crate::{Ctx, Error, Result};

/// Bytes of source handled per parallel batch.
const BATCH_BYTES: u64 = 32 << 20;

/// The grain-index runs the extents touch, sorted and merged.
pub(crate) fn candidates(extents: &[Range<u64>], grain: u64, size: u64) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for e in extents {
        let end = e.end.min(size);
        if e.start >= end {
            continue;
        }
        let r = (e.start / grain)..end.div_ceil(grain);
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// What the scan found.
pub(crate) struct Scan {
    /// The content fingerprint (see [`Fingerprint`]).
    pub fingerprint: Seed,
    /// Non-zero grains.
    pub grains: u64,
}

/// Reads every grain the source's extents touch (the last one zero-padded), drops all-zero
/// ones, runs `map` on the rest in parallel, and hands the results to `sink` in ascending grain
/// order together with the grain's bytes.
pub(crate) fn scan<S, T, M, K>(ctx: &Ctx, src: &S, grain: u64, map: M, mut sink: K) -> Result<Scan>
where
    S: ReadAt + Extents + Sync + ?Sized,
    T: Send,
    M: Fn(u64, &[u8]) -> Result<T> + Sync,
    K: FnMut(u64, T, &[u8]) -> Result<()>,
{
    let size = src.size();
    let extents = src
        .data_extents()
        .map_err(|e| Error::io("source image (listing allocated extents)", e))?;
    let runs = candidates(&extents, grain, size);
    let mut fp = Fingerprint::new(size, grain);
    let per_batch = usize::try_from((BATCH_BYTES / grain).max(1))
        .map_err(|_| Error::overflow("grains per batch"))?;
    let g = usize::try_from(grain).map_err(|_| Error::overflow("grain size"))?;
    let mut grains = 0u64;
    let mut indexes = runs.into_iter().flatten().peekable();
    let mut take = || -> Vec<u64> { indexes.by_ref().take(per_batch).collect() };
    // Reading (on the pool) and sinking (on this thread) overlap: batch k+1 is read into one
    // buffer while batch k is handed to `sink` from the other. A writer's output calls then
    // run beside the source reads and whatever the reads cost (a checksum over the bytes,
    // say), instead of after them.
    let (mut cur_buf, mut next_buf) = (vec![0u8; per_batch * g], vec![0u8; per_batch * g]);
    let mut cur = take();
    let mut done = read_batch(ctx, src, grain, size, &cur, &mut cur_buf[..], &map)?;
    while !cur.is_empty() {
        let next = take();
        let (read, sunk) = std::thread::scope(|s| {
            let reader = (!next.is_empty()).then(|| {
                let (buf, next, map) = (&mut next_buf[..], &next, &map);
                std::thread::Builder::new()
                    .name("imagetool-read".into())
                    .spawn_scoped(s, move || read_batch(ctx, src, grain, size, next, buf, map))
            });
            let mut sunk = Ok(());
            for ((k, &i), r) in cur.iter().enumerate().zip(done.drain(..)) {
                if let Some((crc, v)) = r {
                    fp.add(i, crc);
                    grains += 1;
                    sunk = sink(i, v, &cur_buf[k * g..(k + 1) * g]);
                    if sunk.is_err() {
                        break;
                    }
                }
            }
            // `None`: no thread could be started, so the batch is read below, in turn.
            let read = match reader {
                None => Some(Ok(Vec::new())),
                Some(Ok(h)) => Some(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
                Some(Err(_)) => None,
            };
            (read, sunk)
        });
        sunk?;
        done = match read {
            Some(read) => read?,
            None => read_batch(ctx, src, grain, size, &next, &mut next_buf[..], &map)?,
        };
        cur = next;
        std::mem::swap(&mut cur_buf, &mut next_buf);
    }
    Ok(Scan {
        fingerprint: fp.finish(),
        grains,
    })
}

/// A non-zero grain's checksum (0 when none is wanted) and what `map` made of it.
type Mapped<T> = Option<(u32, T)>;

/// Reads the grains `batch` names into `buf` (one grain-sized slice each) in parallel on the
/// pool; all-zero grains map to `None`, the rest to their CRC and `map`'s result.
fn read_batch<S, T, M>(
    ctx: &Ctx,
    src: &S,
    grain: u64,
    size: u64,
    batch: &[u64],
    buf: &mut [u8],
    map: &M,
) -> Result<Vec<Mapped<T>>>
where
    S: ReadAt + Sync + ?Sized,
    T: Send,
    M: Fn(u64, &[u8]) -> Result<T> + Sync,
{
    // `grain` fits a usize: the caller sized its buffers by it.
    let g = grain as usize;
    let region = &mut buf[..batch.len() * g];
    ctx.pool.install(|| {
        region
            .par_chunks_mut(g)
            .zip(batch.par_iter())
            .map(|(chunk, &i)| {
                read_grain(src, i, grain, size, chunk)?;
                if is_zero(chunk) {
                    return Ok(None);
                }
                let crc = if ctx.wants_fingerprint() {
                    crc32c::crc32c(chunk)
                } else {
                    0
                };
                let v = map(i, chunk)?;
                Ok(Some((crc, v)))
            })
            .collect::<Result<Vec<_>>>()
    })
}

fn read_grain<S: ReadAt + ?Sized>(
    src: &S,
    index: u64,
    grain: u64,
    size: u64,
    buf: &mut [u8],
) -> Result<()> {
    let off = index
        .checked_mul(grain)
        .ok_or_else(|| Error::overflow("source grain offset"))?;
    let len = grain.min(size.saturating_sub(off)) as usize;
    src.read_exact_at(&mut buf[..len], off)
        .map_err(|e| Error::io(format!("source image (reading at byte {off})"), e))?;
    buf[len..].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_scan_sinks_every_batch_in_order_and_stops_at_a_sink_error() {
        use imagetool_blockio::{MemImage, WriteAt};
        let grain = 64u64 << 10;
        let per_batch = BATCH_BYTES / grain;
        // Four batches (the reads of one overlap the sinking of the one before), the last short.
        let count = 3 * per_batch + 5;
        let img = MemImage::new(count * grain);
        let marked: Vec<u64> = (0..count).filter(|i| i % 3 != 1).collect();
        for &i in &marked {
            img.write_all_at(&(i + 1).to_le_bytes(), i * grain + 100)
                .unwrap();
        }
        let ctx = Ctx::new(
            std::path::Path::new("scan-test.raw"),
            crate::Format::Raw,
            &crate::Options::default(),
        )
        .unwrap();
        let marker = |d: &[u8]| u64::from_le_bytes(d[100..108].try_into().unwrap());
        let mut seen = Vec::new();
        let s = scan(
            &ctx,
            &img,
            grain,
            |i, d| Ok((i, marker(d))),
            |i, v, d| {
                assert_eq!(v, (i, i + 1));
                assert_eq!(d.len() as u64, grain);
                assert_eq!(marker(d), i + 1);
                seen.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, marked);
        assert_eq!(s.grains, marked.len() as u64);
        // A sink error ends the scan with that error; nothing after it is sunk.
        let mut sunk = Vec::new();
        let err = scan(
            &ctx,
            &img,
            grain,
            |_, _| Ok(()),
            |i, (), _| {
                if i >= per_batch + 7 {
                    return Err(Error::overflow("the test's sink"));
                }
                sunk.push(i);
                Ok(())
            },
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("the test's sink"), "{err}");
        assert_eq!(
            sunk,
            marked
                .iter()
                .copied()
                .filter(|&i| i < per_batch + 7)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn test_candidates_round_out_and_merge() {
        let ex = vec![100..200, 4000..5000, 70_000..70_001, 200_000..300_000];
        assert_eq!(candidates(&ex, 4096, 250_000), vec![0..2, 17..18, 48..62]);
        assert!(candidates(&[], 4096, 10).is_empty());
    }
}
