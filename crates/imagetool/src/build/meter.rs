//! Byte counts of the long phases for a [`Progress`]: a counting wrapper around a backing, and a
//! runner that does the work on a scoped thread while the calling thread reports the count.
//!
//! The work's own threads only bump an atomic counter; every [`Progress`] call happens on the
//! thread that called [`build`](crate::build::build), so a `Progress` need not be `Sync`.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use imagetool_blockio::{Cancel, Extents, ReadAt, WriteAt};

use super::error::BuildError;
use super::progress::{Phase, Progress};

/// How often the count is reported.
const TICK: Duration = Duration::from_millis(200);

/// Counts the bytes written to or read from `inner`.
pub(crate) struct Counted<'a, T: ?Sized> {
    inner: &'a T,
    count: &'a AtomicU64,
}

impl<'a, T: ?Sized> Counted<'a, T> {
    pub(crate) fn new(inner: &'a T, count: &'a AtomicU64) -> Self {
        Self { inner, count }
    }

    fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
    }
}

impl<T: WriteAt + ?Sized> WriteAt for Counted<'_, T> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)?;
        self.add(buf.len() as u64);
        Ok(())
    }
    fn write_shared_at(&self, buf: &std::sync::Arc<[u8]>, offset: u64) -> io::Result<()> {
        self.inner.write_shared_at(buf, offset)?;
        self.add(buf.len() as u64);
        Ok(())
    }
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.inner.copy_from_file(src, src_offset, len, offset)?;
        self.add(len);
        Ok(())
    }
    // Forwarded, not left to the default (open + copy_from_file): an Overlay records the path
    // and reads the file later, instead of holding a descriptor per file.
    fn copy_from_path(&self, src: &Path, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.inner.copy_from_path(src, src_offset, len, offset)?;
        self.add(len);
        Ok(())
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Counted<'_, T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        self.add(buf.len() as u64);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

impl<T: Extents + ?Sized> Extents for Counted<'_, T> {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        self.inner.data_extents()
    }
}

/// Runs `work` on a scoped thread with a fresh counter and reports `min(count, total)` of
/// `total` to `progress` every [`TICK`] until it ends, then `total` of `total` if it succeeded.
///
/// A `progress` that panics cancels `cancel` (so `work`, which must check it, stops within a
/// chunk instead of running to the end), and the panic continues once `work` has returned.
pub(crate) fn run<T: Send, E: Send>(
    progress: &mut dyn Progress,
    phase: Phase,
    total: u64,
    cancel: &Cancel,
    work: impl FnOnce(&AtomicU64) -> Result<T, E> + Send,
) -> Result<T, E> {
    let count = AtomicU64::new(0);
    progress.bytes(phase, 0, total);
    // Each count is reported once: a tick with no progress says nothing.
    let mut last = 0;
    let caller = std::thread::current();
    let mut panicked = None;
    let result = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let r = work(&count);
            caller.unpark();
            r
        });
        while !handle.is_finished() {
            std::thread::park_timeout(TICK);
            let done = count.load(Ordering::Relaxed).min(total);
            if !handle.is_finished() && panicked.is_none() && done != last {
                last = done;
                let call = std::panic::AssertUnwindSafe(|| progress.bytes(phase, done, total));
                if let Err(p) = std::panic::catch_unwind(call) {
                    cancel.cancel();
                    panicked = Some(p);
                }
            }
        }
        handle.join()
    });
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
    match result {
        Ok(r) => {
            if r.is_ok() && last != total {
                progress.bytes(phase, total, total);
            }
            r
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

pub(super) fn timed<T>(
    progress: &mut dyn Progress,
    timings: &mut Vec<(Phase, Duration)>,
    phase: Phase,
    f: impl FnOnce() -> Result<(T, String), BuildError>,
) -> Result<T, BuildError> {
    progress.started(phase);
    let t0 = Instant::now();
    let (v, detail) = f()?;
    let dt = t0.elapsed();
    timings.push((phase, dt));
    progress.finished(phase, dt, &detail);
    Ok(v)
}

/// [`timed`] for a long phase whose `work` counts its bytes for [`Progress::bytes`].
pub(super) fn timed_bytes<T: Send>(
    progress: &mut dyn Progress,
    timings: &mut Vec<(Phase, Duration)>,
    phase: Phase,
    total: u64,
    cancel: &Cancel,
    work: impl FnOnce(&AtomicU64) -> Result<(T, String), BuildError> + Send,
) -> Result<T, BuildError> {
    progress.started(phase);
    let t0 = Instant::now();
    let (v, detail) = run(progress, phase, total, cancel, work)?;
    let dt = t0.elapsed();
    timings.push((phase, dt));
    progress.finished(phase, dt, &detail);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagetool_blockio::MemImage;

    #[derive(Default)]
    struct Record(Vec<(Phase, u64, u64)>);

    impl Progress for Record {
        fn bytes(&mut self, phase: Phase, done: u64, total: u64) {
            self.0.push((phase, done, total));
        }
    }

    #[test]
    fn test_counts_writes_and_reports_monotonically() {
        let img = MemImage::new(1 << 20);
        let mut rec = Record::default();
        let r: Result<u64, io::Error> =
            run(&mut rec, Phase::Write, 4096, &Cancel::new(), |count| {
                let c = Counted::new(&img, count);
                for i in 0..8u64 {
                    c.write_all_at(&[1u8; 512], i * 512)?;
                    std::thread::sleep(Duration::from_millis(60));
                }
                Ok(count.load(Ordering::Relaxed))
            });
        assert_eq!(r.unwrap(), 4096);
        assert_eq!(rec.0.first(), Some(&(Phase::Write, 0, 4096)));
        assert_eq!(rec.0.last(), Some(&(Phase::Write, 4096, 4096)));
        assert!(rec.0.len() >= 3, "{:?}", rec.0);
        // Strictly increasing: no count is reported twice.
        assert!(rec.0.windows(2).all(|w| w[0].1 < w[1].1), "{:?}", rec.0);
    }

    #[test]
    fn test_failure_reports_no_completion() {
        let mut rec = Record::default();
        let r: Result<(), &str> = run(&mut rec, Phase::Convert, 10, &Cancel::new(), |_| {
            Err("boom")
        });
        assert_eq!(r, Err("boom"));
        assert!(rec.0.iter().all(|e| e.1 < 10), "{:?}", rec.0);
    }
}
