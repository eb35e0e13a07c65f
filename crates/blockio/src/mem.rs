//! A sparse image in memory.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::Mutex;

use crate::{Extents, ReadAt, WriteAt, check_range};

const CHUNK: u64 = 64 * 1024;

/// A sparse in-memory image of a fixed size, stored in 64 KiB chunks allocated on first write.
///
/// Unwritten bytes read as zero. [`Extents::data_extents`] reports the allocated chunks, the
/// way `SEEK_DATA` reports a host file's allocated blocks.
#[derive(Debug)]
pub struct MemImage {
    size: u64,
    chunks: Mutex<BTreeMap<u64, Box<[u8]>>>,
}

impl MemImage {
    /// A zero-filled image of `size` bytes that allocates nothing yet.
    #[must_use]
    pub fn new(size: u64) -> Self {
        Self {
            size,
            chunks: Mutex::new(BTreeMap::new()),
        }
    }

    /// The whole image as one vector (for small test images).
    ///
    /// # Errors
    /// `OutOfMemory` when the size does not fit in memory on this host.
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.size).map_err(|_| io::ErrorKind::OutOfMemory)?;
        let mut out = vec![0u8; len];
        self.read_exact_at(&mut out, 0)?;
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Box<[u8]>>> {
        // A panic in another thread cannot leave a chunk half-updated in a way that matters
        // for an in-memory test image, so a poisoned lock is still usable.
        self.chunks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ReadAt for MemImage {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)
            .map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))?;
        let chunks = self.lock();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let base = pos - pos % CHUNK;
            let within = (pos - base) as usize;
            let n = (CHUNK as usize - within).min(buf.len() - done);
            match chunks.get(&base) {
                Some(c) => buf[done..done + n].copy_from_slice(&c[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl WriteAt for MemImage {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        let mut chunks = self.lock();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let base = pos - pos % CHUNK;
            let within = (pos - base) as usize;
            let n = (CHUNK as usize - within).min(buf.len() - done);
            let chunk = chunks
                .entry(base)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            chunk[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn capacity(&self) -> u64 {
        self.size
    }
}

impl Extents for MemImage {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for &base in self.lock().keys() {
            let end = (base + CHUNK).min(self.size);
            match out.last_mut() {
                Some(last) if last.end == base => last.end = end,
                _ => out.push(base..end),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mem_image_round_trip_across_chunks() {
        let img = MemImage::new(300_000);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        img.write_all_at(&data, 50_000).unwrap();
        let mut back = vec![0u8; 200_000];
        img.read_exact_at(&mut back, 50_000).unwrap();
        assert_eq!(back, data);
        assert_eq!(img.data_extents().unwrap(), vec![0..262_144]);
    }

    #[test]
    fn test_mem_image_rejects_out_of_range() {
        let img = MemImage::new(100);
        assert!(img.write_all_at(&[1; 10], 95).is_err());
        let mut b = [0u8; 10];
        assert_eq!(
            img.read_exact_at(&mut b, 95).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
