//! Positional block I/O for imagetool.
//!
//! Every filesystem and container writer in imagetool writes through the small traits of this
//! crate instead of `std::io::{Write, Seek}`: positions are explicit, nothing has a cursor, and a
//! writer takes `&self`, so the data-copy threads of one build share one backing.
//!
//! ```text
//!   ReadAt / WriteAt / Extents          (traits)
//!        │
//!        ├── SparseFile   a host file, holes where nothing was written
//!        ├── MemImage     a sparse in-memory image (tests, doctests, fuzzing)
//!        ├── Window       a byte range of another backing (one partition)
//!        ├── Tracked      any backing plus an exact record of the ranges written
//!        └── Overlay      an image that exists only as its writes: metadata in memory, file
//!                         data as references to host files, read when the image is read
//! ```
//!
//! [`Overlay`] is how `imagetool build` writes a container format with no raw intermediate:
//! the filesystem writers write into it, and the container writer reads from it.
//!
//! [`AtomicFile`] writes every output as an unnamed file in the target directory (`O_TMPFILE`;
//! else an exclusive random name, never through a symlink) and links it into place only when
//! the build has succeeded, so a failed, cancelled or killed build never leaves a half-written
//! image, and nobody can redirect the output. [`Cancel`] stops every reader and writer of a
//! [`Cancellable`] backing.
//!
//! ```
//! use imagetool_blockio::{Extents, MemImage, ReadAt, Window, WriteAt};
//!
//! let disk = MemImage::new(8 << 20);
//! let part = Window::new(&disk, 1 << 20, 4 << 20).unwrap();
//! part.write_all_at(b"hello", 0).unwrap();
//! let mut buf = [0u8; 5];
//! disk.read_exact_at(&mut buf, 1 << 20).unwrap();
//! assert_eq!(&buf, b"hello");
//! assert_eq!(disk.data_extents().unwrap(), vec![(1 << 20)..((1 << 20) + 65536)]);
//! ```
#![deny(missing_docs)]

mod atomic;
mod cancel;
pub mod error;
mod mem;
mod overlay;
mod range_set;
mod sparse;
mod window;

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;

pub use atomic::{AtomicFile, OutputMode};
pub use cancel::{Cancel, Cancellable};
pub use mem::MemImage;
pub use overlay::{HostReadTap, Overlay, OverlayStats};
pub use range_set::RangeSet;
pub use sparse::SparseFile;
pub use window::{Tracked, Window};

/// Reads at explicit byte offsets.
pub trait ReadAt {
    /// Fills `buf` from the bytes at `offset`.
    ///
    /// # Errors
    /// `UnexpectedEof` when the range runs past [`ReadAt::size`]; any I/O error of the backing.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// The size of the backing in bytes.
    fn size(&self) -> u64;
}

/// Writes at explicit byte offsets, from any number of threads at once.
pub trait WriteAt: Sync {
    /// Writes all of `buf` at `offset`.
    ///
    /// # Errors
    /// `InvalidInput` when the range runs past [`WriteAt::capacity`]; any I/O error of the
    /// backing.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// The number of bytes that may be written, starting at offset 0.
    fn capacity(&self) -> u64;

    /// Writes all of `buf` at `offset`, where `buf` may be written again elsewhere (a
    /// filesystem's backup metadata). The default is [`WriteAt::write_all_at`]; an [`Overlay`]
    /// keeps one shared copy instead of one per place.
    ///
    /// # Errors
    /// As [`WriteAt::write_all_at`].
    fn write_shared_at(&self, buf: &std::sync::Arc<[u8]>, offset: u64) -> io::Result<()> {
        self.write_all_at(buf, offset)
    }

    /// Copies `len` bytes of the host file `src`, starting at `src_offset`, to `offset`.
    ///
    /// The default reads and writes through a buffer and leaves all-zero blocks unwritten (the
    /// backing is assumed fresh, so they stay holes); [`SparseFile`] overrides it with
    /// `copy_file_range`.
    ///
    /// # Errors
    /// Any I/O error reading `src` or writing the backing; `UnexpectedEof` when `src` is shorter
    /// than asked.
    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        copy_via_buffer(self, src, src_offset, len, offset)
    }

    /// Copies `len` bytes of the host file at `src`, starting at `src_offset`, to `offset`.
    ///
    /// The default opens the file and calls [`WriteAt::copy_from_file`]; an [`Overlay`] only
    /// records the path and reads the file when the image is read, so writers should prefer
    /// this method when they know the path.
    ///
    /// # Errors
    /// As [`WriteAt::copy_from_file`], and any error opening `src`; messages name the path.
    fn copy_from_path(&self, src: &Path, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        let f = open_regular(src)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
        self.copy_from_file(&f, src_offset, len, offset)
    }
}

/// Opens the source file `path` for reading, refusing anything but a regular file, without
/// blocking: a source was a regular file when a writer looked at it, and something put in its
/// place since (a FIFO, whose plain open waits for a writer forever; a device) must be an
/// error, not a hang. The open passes `O_NONBLOCK` (which reads of a regular file ignore) and
/// `O_NOCTTY`, and the type is checked on the descriptor.
///
/// # Errors
/// Any error opening `path`; `InvalidInput` when it is not a regular file. Messages do not
/// name the path: callers add it.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(
            (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY)
                .bits()
                .cast_signed(),
        )
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (any more: it was one when it was first looked at)",
        ));
    }
    Ok(f)
}

/// Lists the byte ranges of a backing that hold data (were written), sorted and coalesced.
pub trait Extents {
    /// The allocated ranges, sorted by offset, non-overlapping and non-adjacent.
    ///
    /// # Errors
    /// Any I/O error of the backing while looking for data and holes.
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>>;
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
}

impl<T: WriteAt + ?Sized> WriteAt for &T {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_all_at(buf, offset)
    }
    fn write_shared_at(&self, buf: &std::sync::Arc<[u8]>, offset: u64) -> io::Result<()> {
        (**self).write_shared_at(buf, offset)
    }
    fn capacity(&self) -> u64 {
        (**self).capacity()
    }
    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        (**self).copy_from_file(src, src_offset, len, offset)
    }
    fn copy_from_path(&self, src: &Path, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        (**self).copy_from_path(src, src_offset, len, offset)
    }
}

impl<T: Extents + ?Sized> Extents for &T {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        (**self).data_extents()
    }
}

/// The block size used when scanning for zeros and copying through a buffer.
pub const COPY_CHUNK: usize = 1 << 20;

/// The granularity of zero detection: a 4 KiB block of zeros is not written.
pub const ZERO_BLOCK: usize = 4096;

/// True when every byte of `buf` is zero.
#[must_use]
pub fn is_zero(buf: &[u8]) -> bool {
    // Compare 16 bytes at a time: this is the hot loop of sparse copying.
    let (head, body) = buf.split_at(buf.len() % 16);
    head.iter().all(|&b| b == 0)
        && body
            .chunks_exact(16)
            .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Checks that `offset..offset+len` lies within `0..limit`.
///
/// # Errors
/// `InvalidInput` naming the range and the limit.
pub fn check_range(offset: u64, len: u64, limit: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("range {offset}+{len} is outside the backing of {limit} bytes"),
        )),
    }
}

/// Writes `buf` at `offset`, skipping every [`ZERO_BLOCK`]-aligned (relative to `offset`) block
/// that is all zeros, so a fresh sparse backing keeps its holes.
///
/// # Errors
/// Any error of [`WriteAt::write_all_at`].
pub fn write_skipping_zeros<W: WriteAt + ?Sized>(
    dst: &W,
    buf: &[u8],
    offset: u64,
) -> io::Result<()> {
    let mut run_start: Option<usize> = None;
    let mut pos = 0;
    while pos < buf.len() {
        let end = (pos + ZERO_BLOCK).min(buf.len());
        let zero = is_zero(&buf[pos..end]);
        match (zero, run_start) {
            (false, None) => run_start = Some(pos),
            (true, Some(s)) => {
                dst.write_all_at(&buf[s..pos], offset + s as u64)?;
                run_start = None;
            }
            _ => {}
        }
        pos = end;
    }
    if let Some(s) = run_start {
        dst.write_all_at(&buf[s..], offset + s as u64)?;
    }
    Ok(())
}

fn copy_via_buffer<W: WriteAt + ?Sized>(
    dst: &W,
    src: &File,
    src_offset: u64,
    len: u64,
    offset: u64,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    check_range(offset, len, dst.capacity())?;
    let mut buf = vec![0u8; COPY_CHUNK.min(usize::try_from(len).unwrap_or(COPY_CHUNK))];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], src_offset + done)?;
        write_skipping_zeros(dst, &buf[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_is_zero_detects_any_nonzero_byte() {
        let mut buf = vec![0u8; 4099];
        assert!(is_zero(&buf));
        for i in [0, 1, 15, 16, 4095, 4098] {
            buf[i] = 1;
            assert!(!is_zero(&buf), "byte {i}");
            buf[i] = 0;
        }
    }

    #[test]
    fn test_write_skipping_zeros_leaves_holes() {
        let img = MemImage::new(1 << 20);
        let mut buf = vec![0u8; 3 * ZERO_BLOCK];
        buf[ZERO_BLOCK + 7] = 9;
        let t = Tracked::new(&img);
        write_skipping_zeros(&t, &buf, 4096).unwrap();
        assert_eq!(t.written(), vec![8192..12288]);
    }

    #[test]
    fn test_check_range_rejects_overflow() {
        assert!(check_range(u64::MAX, 1, u64::MAX).is_err());
        assert!(check_range(10, 5, 14).is_err());
        assert!(check_range(10, 4, 14).is_ok());
    }
}
