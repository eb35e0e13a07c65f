//! A host file used as a sparse image.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::{Extents, ReadAt, WriteAt, check_range};

/// A host file of a fixed size in which only written ranges are allocated.
///
/// Created with [`SparseFile::create`] the file is one hole of the full size; writers leave
/// zero blocks unwritten, and [`Extents::data_extents`] asks the host filesystem
/// (`SEEK_DATA`/`SEEK_HOLE`) which ranges hold data.
#[derive(Debug)]
pub struct SparseFile {
    file: File,
    size: u64,
}

impl SparseFile {
    /// Creates (or truncates) `path` as a hole of `size` bytes.
    ///
    /// # Errors
    /// Any error creating or sizing the file; the message names the path.
    pub fn create(path: &Path, size: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| with_path(e, path))?;
        Self::from_file(file, size).map_err(|e| with_path(e, path))
    }

    /// Uses an open file, setting its length to `size` (existing data below `size` is kept).
    ///
    /// # Errors
    /// Any error setting the length.
    pub fn from_file(file: File, size: u64) -> io::Result<Self> {
        file.set_len(size)?;
        Ok(Self { file, size })
    }

    /// Opens an existing image read-only; its size is the file's length.
    ///
    /// # Errors
    /// Any error opening the file; the message names the path.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path).map_err(|e| with_path(e, path))?;
        let size = file.metadata().map_err(|e| with_path(e, path))?.len();
        Ok(Self { file, size })
    }

    /// Uses a file opened read-only (by the caller's own checks); its size is its length.
    ///
    /// # Errors
    /// Any error reading the file's metadata.
    pub fn from_read_only(file: File) -> io::Result<Self> {
        let size = file.metadata()?.len();
        Ok(Self { file, size })
    }

    /// The underlying file.
    #[must_use]
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Gives the file back.
    #[must_use]
    pub fn into_file(self) -> File {
        self.file
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl ReadAt for SparseFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)
            .map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))?;
        self.file.read_exact_at(buf, offset)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl WriteAt for SparseFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        self.file.write_all_at(buf, offset)
    }

    fn capacity(&self) -> u64 {
        self.size
    }

    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        check_range(offset, len, self.size)?;
        let (mut s_off, mut d_off, mut left) = (src_offset, offset, len);
        while left > 0 {
            let want = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
            match rustix::fs::copy_file_range(
                src,
                Some(&mut s_off),
                &self.file,
                Some(&mut d_off),
                want,
            ) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("source ended {left} bytes early"),
                    ));
                }
                Ok(n) => left -= n as u64,
                Err(Errno::INTR) => {}
                // Across filesystems on old kernels, on special files, or where the syscall is
                // filtered: copy through a buffer instead (offsets have not moved).
                Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM) => {
                    return crate::copy_via_buffer(self, src, s_off, left, d_off);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Extents for SparseFile {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        let mut out = Vec::new();
        let mut pos = 0u64;
        while pos < self.size {
            let start = match rustix::fs::seek(&self.file, SeekFrom::Data(pos)) {
                Ok(s) => s,
                Err(Errno::NXIO) => break,
                // No SEEK_DATA on this filesystem: the whole file counts as data.
                Err(Errno::INVAL | Errno::OPNOTSUPP) if pos == 0 => {
                    return Ok(std::iter::once(0..self.size).collect());
                }
                Err(e) => return Err(e.into()),
            };
            let end = match rustix::fs::seek(&self.file, SeekFrom::Hole(start)) {
                Ok(e) => e.min(self.size),
                Err(Errno::NXIO) => self.size,
                Err(e) => return Err(e.into()),
            };
            if end > start {
                out.push(start..end);
            }
            pos = end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sparse_file_reports_only_written_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let img = SparseFile::create(&dir.path().join("a.img"), 64 << 20).unwrap();
        img.write_all_at(&[7u8; 4096], 8 << 20).unwrap();
        img.write_all_at(&[9u8; 8192], 32 << 20).unwrap();
        let ext = img.data_extents().unwrap();
        // The host filesystem may round to its own block size, but never reports a hole as
        // data far from what was written.
        assert_eq!(ext.len(), 2, "{ext:?}");
        assert!(ext[0].start <= 8 << 20 && ext[0].end >= (8 << 20) + 4096 && ext[0].end <= 9 << 20);
        assert!(ext[1].start <= 32 << 20 && ext[1].end >= (32 << 20) + 8192);
    }

    #[test]
    fn test_copy_from_file_copies_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("src");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        std::fs::write(&src_path, &data).unwrap();
        let src = File::open(&src_path).unwrap();
        let img = SparseFile::create(&dir.path().join("b.img"), 1 << 20).unwrap();
        img.copy_from_file(&src, 1000, 200_000, 4096).unwrap();
        let mut back = vec![0u8; 200_000];
        img.read_exact_at(&mut back, 4096).unwrap();
        assert_eq!(back, data[1000..201_000]);
        assert!(img.copy_from_file(&src, 0, 400_000, 0).is_err());
    }
}
