//! Views of a backing: a byte window (one partition) and a write recorder.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use crate::{Extents, RangeSet, ReadAt, WriteAt, check_range};

/// The byte range `base..base+len` of another backing, addressed from 0.
///
/// A filesystem writer given a `Window` never learns where its partition sits in the disk.
#[derive(Debug, Clone, Copy)]
pub struct Window<B> {
    inner: B,
    base: u64,
    len: u64,
}

impl<B> Window<B> {
    /// A window of `len` bytes starting at `base` of `inner`.
    ///
    /// # Errors
    /// `InvalidInput` when `base + len` overflows.
    pub fn new(inner: B, base: u64, len: u64) -> io::Result<Self> {
        check_range(base, len, u64::MAX)?;
        Ok(Self { inner, base, len })
    }

    /// Where the window starts in the inner backing.
    #[must_use]
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The window's length.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a zero-length window.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<B: ReadAt> ReadAt for Window<B> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.len)
            .map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))?;
        self.inner.read_exact_at(buf, self.base + offset)
    }
    fn size(&self) -> u64 {
        self.len
    }
}

impl<B: WriteAt> WriteAt for Window<B> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.len)?;
        self.inner.write_all_at(buf, self.base + offset)
    }
    fn write_shared_at(&self, buf: &std::sync::Arc<[u8]>, offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.len)?;
        self.inner.write_shared_at(buf, self.base + offset)
    }
    fn capacity(&self) -> u64 {
        self.len
    }
    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        check_range(offset, len, self.len)?;
        self.inner
            .copy_from_file(src, src_offset, len, self.base + offset)
    }
    fn copy_from_path(&self, src: &Path, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        check_range(offset, len, self.len)?;
        self.inner
            .copy_from_path(src, src_offset, len, self.base + offset)
    }
}

impl<B: Extents> Extents for Window<B> {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        let (lo, hi) = (self.base, self.base + self.len);
        Ok(self
            .inner
            .data_extents()?
            .into_iter()
            .filter(|r| r.end > lo && r.start < hi)
            .map(|r| r.start.max(lo) - lo..r.end.min(hi) - lo)
            .collect())
    }
}

/// A backing plus an exact record of every range written through it.
///
/// Container writers use the record as the image's allocated extents even on host filesystems
/// without `SEEK_DATA`; tests use it to check what a writer touched.
#[derive(Debug)]
pub struct Tracked<B> {
    inner: B,
    written: Mutex<RangeSet>,
}

impl<B> Tracked<B> {
    /// Starts recording writes to `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            written: Mutex::new(RangeSet::new()),
        }
    }

    /// The ranges written so far, sorted and coalesced.
    #[must_use]
    pub fn written(&self) -> Vec<Range<u64>> {
        self.record().to_vec()
    }

    /// The inner backing.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Gives back the inner backing and the record.
    pub fn into_parts(self) -> (B, RangeSet) {
        let set = self
            .written
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.inner, set)
    }

    fn record(&self) -> std::sync::MutexGuard<'_, RangeSet> {
        // The set is updated with one call; a panicking writer cannot leave it inconsistent.
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<B: ReadAt> ReadAt for Tracked<B> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

impl<B: WriteAt> WriteAt for Tracked<B> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)?;
        self.record().insert(offset..offset + buf.len() as u64);
        Ok(())
    }
    fn write_shared_at(&self, buf: &std::sync::Arc<[u8]>, offset: u64) -> io::Result<()> {
        self.inner.write_shared_at(buf, offset)?;
        self.record().insert(offset..offset + buf.len() as u64);
        Ok(())
    }
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.inner.copy_from_file(src, src_offset, len, offset)?;
        self.record().insert(offset..offset + len);
        Ok(())
    }
    fn copy_from_path(&self, src: &Path, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.inner.copy_from_path(src, src_offset, len, offset)?;
        self.record().insert(offset..offset + len);
        Ok(())
    }
}

impl<B> Extents for Tracked<B> {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        Ok(self.written())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemImage;

    #[test]
    fn test_window_translates_and_bounds_offsets() {
        let img = MemImage::new(1 << 20);
        let w = Window::new(&img, 4096, 8192).unwrap();
        w.write_all_at(&[1; 10], 8182).unwrap();
        assert!(w.write_all_at(&[1; 11], 8182).is_err());
        let mut b = [0u8; 10];
        img.read_exact_at(&mut b, 4096 + 8182).unwrap();
        assert_eq!(b, [1; 10]);
    }

    #[test]
    fn test_window_extents_are_clipped_and_rebased() {
        let img = Tracked::new(MemImage::new(1 << 20));
        img.write_all_at(&[1; 100], 0).unwrap();
        img.write_all_at(&[1; 100], 5000).unwrap();
        let w = Window::new(&img, 4096, 4096).unwrap();
        assert_eq!(w.data_extents().unwrap(), vec![904..1004]);
    }
}
