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
    let per_batch = (BATCH_BYTES / grain).max(1);
    let g = usize::try_from(grain).map_err(|_| Error::overflow("grain size"))?;
    let mut grains = 0u64;
    let mut batch: Vec<u64> = Vec::with_capacity(per_batch as usize);
    // One buffer for the whole batch, reused: each worker reads its grain into its own slice.
    let mut buf = vec![0u8; per_batch as usize * g];
    let mut indexes = runs.into_iter().flatten().peekable();
    while indexes.peek().is_some() {
        batch.clear();
        batch.extend(indexes.by_ref().take(per_batch as usize));
        let region = &mut buf[..batch.len() * g];
        let done: Vec<Option<(u32, T)>> = ctx.pool.install(|| {
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
        })?;
        for ((k, &i), r) in batch.iter().enumerate().zip(done) {
            if let Some((crc, v)) = r {
                fp.add(i, crc);
                grains += 1;
                sink(i, v, &buf[k * g..(k + 1) * g])?;
            }
        }
    }
    Ok(Scan {
        fingerprint: fp.finish(),
        grains,
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
    fn test_candidates_round_out_and_merge() {
        let ex = vec![100..200, 4000..5000, 70_000..70_001, 200_000..300_000];
        assert_eq!(candidates(&ex, 4096, 250_000), vec![0..2, 17..18, 48..62]);
        assert!(candidates(&[], 4096, 10).is_empty());
    }
}
