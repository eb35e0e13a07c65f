//! Cancellation: a flag any thread may raise, checked by every read and write of a backing.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Extents, ReadAt, WriteAt};

/// A cancel handle: clones share one flag. Raising it makes every [`Cancellable`] backing fail
/// its next read or write with [`io::ErrorKind::Interrupted`], so every worker thread of a
/// build (ext4 data copies, container writers) stops within one chunk.
///
/// The flag is an `Arc<AtomicBool>`, so a signal handler can raise it
/// (`signal_hook::flag::register(SIGINT, cancel.flag())`).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A handle that has not been cancelled.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: every holder of a clone sees it.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called (or the flag raised).
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The shared flag (for a signal handler).
    #[must_use]
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// `Err(Interrupted)` once cancelled.
    ///
    /// # Errors
    /// [`io::ErrorKind::Interrupted`], "cancelled", once cancelled.
    pub fn check(&self) -> io::Result<()> {
        if self.is_cancelled() {
            Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"))
        } else {
            Ok(())
        }
    }
}

/// A backing whose every read and write first checks a [`Cancel`].
#[derive(Debug)]
pub struct Cancellable<'a, T: ?Sized> {
    inner: &'a T,
    cancel: &'a Cancel,
}

impl<'a, T: ?Sized> Cancellable<'a, T> {
    /// Wraps `inner`.
    pub fn new(inner: &'a T, cancel: &'a Cancel) -> Self {
        Self { inner, cancel }
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Cancellable<'_, T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.cancel.check()?;
        self.inner.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

impl<T: WriteAt + ?Sized> WriteAt for Cancellable<'_, T> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.cancel.check()?;
        self.inner.write_all_at(buf, offset)
    }
    fn write_shared_at(&self, buf: &std::sync::Arc<[u8]>, offset: u64) -> io::Result<()> {
        self.cancel.check()?;
        self.inner.write_shared_at(buf, offset)
    }
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.cancel.check()?;
        self.inner.copy_from_file(src, src_offset, len, offset)
    }
    fn copy_from_path(&self, src: &Path, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.cancel.check()?;
        self.inner.copy_from_path(src, src_offset, len, offset)
    }
}

impl<T: Extents + ?Sized> Extents for Cancellable<'_, T> {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        self.cancel.check()?;
        self.inner.data_extents()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemImage;

    #[test]
    fn test_a_cancelled_backing_refuses_reads_and_writes() {
        let img = MemImage::new(1 << 20);
        let cancel = Cancel::new();
        let c = Cancellable::new(&img, &cancel);
        c.write_all_at(b"x", 0).unwrap();
        cancel.clone().cancel();
        let e = c.write_all_at(b"y", 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        let mut b = [0u8; 1];
        assert!(c.read_exact_at(&mut b, 0).is_err());
        img.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"x");
    }
}
