//! A disk image synthesised from the writes made to it: metadata in memory, file data as
//! references to the host files it comes from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::{Extents, ReadAt, WriteAt, ZERO_BLOCK, check_range, is_zero};

/// How many host files an [`Overlay`] keeps open while it is read.
const OPEN_FILES: usize = 64;

/// A disk image that exists only as the record of what was written to it.
///
/// Filesystem and partition-table writers write into an `Overlay` exactly as into a
/// [`SparseFile`](crate::SparseFile); a container writer then reads it back through
/// [`ReadAt`] and [`Extents`]. Nothing of the image's size is ever allocated:
///
/// * [`WriteAt::write_all_at`] keeps the non-zero 4 KiB runs of the buffer in memory (metadata:
///   superblocks, inode tables, directories, partition tables); all-zero runs are recorded as
///   zero ranges and take no memory.
/// * [`WriteAt::copy_from_path`] and [`WriteAt::copy_from_file`] record a reference (the host
///   path, or a duplicate of the open file's descriptor) and an offset; the bytes are read from
///   the host only when that range of the image is read.
///
/// A later write replaces an earlier one byte for byte, wherever the two overlap, whatever the
/// kinds of the writes (a boot sector written over a partition table, a zero range over a file
/// reference), so reading an `Overlay` gives the bytes a [`SparseFile`](crate::SparseFile)
/// given the same writes would hold. Unwritten bytes read as zero.
///
/// A host file that is shorter, when read, than when its copy was recorded is an
/// `UnexpectedEof` error naming the file.
///
/// ```
/// use imagetool_blockio::{Extents, Overlay, ReadAt, WriteAt};
///
/// let disk = Overlay::new(1 << 30);
/// disk.write_all_at(b"metadata", 4096).unwrap();
/// disk.write_all_at(&[0u8; 8192], 1 << 20).unwrap(); // zeros: nothing stored
/// disk.write_all_at(b"META", 4096).unwrap(); // a later write wins
/// let mut buf = [0u8; 8];
/// disk.read_exact_at(&mut buf, 4096).unwrap();
/// assert_eq!(&buf, b"METAdata");
/// assert_eq!(disk.data_extents().unwrap(), vec![4096..4104]);
/// assert_eq!(disk.stats().memory, 8);
/// ```
#[derive(Debug)]
pub struct Overlay {
    size: u64,
    /// Start offset → segment; segments never overlap.
    segs: RwLock<BTreeMap<u64, Seg>>,
    open: Mutex<OpenFiles>,
    next_id: AtomicU64,
    tap: Option<Tap>,
}

/// Told of every range of a host file an [`Overlay`] reads, with its bytes: a caller that
/// must see the bytes an image is made of (a checksum over its sources, say) gets them from
/// the one read the image writer makes, instead of reading the sources a second time.
///
/// It is called from the reading threads, in whatever order they read (disk order within a
/// thread), once per host range each time a range is read; `offset` is the offset in the host
/// file. It must not block for long: the image writer waits for it.
pub trait HostReadTap: Send + Sync {
    /// `bytes` were read from the host file `path` at `offset`.
    fn host_read(&self, path: &Path, offset: u64, bytes: &[u8]);
}

#[derive(Clone)]
struct Tap(Arc<dyn HostReadTap>);

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

/// What an [`Overlay`] holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverlayStats {
    /// Bytes of written data held in memory.
    pub memory: u64,
    /// Bytes that refer to host files.
    pub referenced: u64,
    /// Bytes recorded as written zeros.
    pub zeros: u64,
    /// Recorded ranges (each costs a few dozen bytes).
    pub segments: u64,
}

#[derive(Debug, Clone)]
struct Seg {
    len: u64,
    data: Data,
}

#[derive(Debug, Clone)]
enum Data {
    Zero,
    /// `buf[at..at+len]`.
    Mem {
        buf: Arc<[u8]>,
        at: usize,
    },
    /// `src`'s bytes from `at`.
    Host {
        src: Arc<HostSource>,
        at: u64,
    },
}

impl Data {
    /// The same data, `k` bytes further in.
    fn advanced(&self, k: u64) -> Data {
        match self {
            Data::Zero => Data::Zero,
            Data::Mem { buf, at } => Data::Mem {
                buf: Arc::clone(buf),
                // Segment lengths are bounded by the buffer, so this cannot truncate.
                at: at + usize::try_from(k).unwrap_or(usize::MAX),
            },
            Data::Host { src, at } => Data::Host {
                src: Arc::clone(src),
                at: at + k,
            },
        }
    }
}

#[derive(Debug)]
struct HostSource {
    id: u64,
    path: Option<PathBuf>,
    /// A descriptor of its own (from `copy_from_file`), or `None`: open `path` when read.
    file: Option<Arc<File>>,
}

impl HostSource {
    fn name(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "a host file".to_string(),
        }
    }
}

/// The host files most recently opened for reading, oldest first.
#[derive(Debug, Default)]
struct OpenFiles {
    map: HashMap<u64, Arc<File>>,
    order: VecDeque<u64>,
}

impl Overlay {
    /// An image of `size` bytes, all zero, holding nothing yet.
    #[must_use]
    pub fn new(size: u64) -> Self {
        Self {
            size,
            segs: RwLock::new(BTreeMap::new()),
            open: Mutex::new(OpenFiles::default()),
            next_id: AtomicU64::new(0),
            tap: None,
        }
    }

    /// An image of `size` bytes like [`Overlay::new`], whose reads of host files (by path,
    /// from [`WriteAt::copy_from_path`]) are reported to `tap`.
    #[must_use]
    pub fn with_tap(size: u64, tap: Arc<dyn HostReadTap>) -> Self {
        Self {
            tap: Some(Tap(tap)),
            ..Self::new(size)
        }
    }

    /// What the image holds: bytes in memory, bytes referring to host files, written zeros.
    #[must_use]
    pub fn stats(&self) -> OverlayStats {
        let segs = self.read_segs();
        let mut s = OverlayStats {
            segments: segs.len() as u64,
            ..OverlayStats::default()
        };
        for seg in segs.values() {
            match seg.data {
                Data::Zero => s.zeros += seg.len,
                Data::Mem { .. } => s.memory += seg.len,
                Data::Host { .. } => s.referenced += seg.len,
            }
        }
        s
    }

    fn read_segs(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Seg>> {
        // Every update is one `insert` that leaves the map consistent before it can panic.
        self.segs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `data` for `start..start+len`, replacing whatever overlapped it.
    fn put(&self, start: u64, len: u64, data: Data) {
        if len == 0 {
            return;
        }
        let end = start + len;
        let mut segs = self
            .segs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A segment starting before `start` and reaching into it: keep its head (and its tail
        // if it reaches past `end`).
        if let Some((&ps, seg)) = segs.range_mut(..start).next_back() {
            let pe = ps + seg.len;
            if pe > start {
                seg.len = start - ps;
                if pe > end {
                    let tail = Seg {
                        len: pe - end,
                        data: seg.data.advanced(end - ps),
                    };
                    segs.insert(end, tail);
                }
            }
        }
        // Segments starting inside: drop them, keeping a tail that reaches past `end`.
        let inside: Vec<u64> = segs.range(start..end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some(seg) = segs.remove(&s) {
                let se = s + seg.len;
                if se > end {
                    let tail = Seg {
                        len: se - end,
                        data: seg.data.advanced(end - s),
                    };
                    segs.insert(end, tail);
                }
            }
        }
        segs.insert(start, Seg { len, data });
    }

    fn host(&self, path: Option<PathBuf>, file: Option<Arc<File>>) -> Arc<HostSource> {
        Arc::new(HostSource {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            path,
            file,
        })
    }

    /// An open descriptor of `src`.
    fn file_of(&self, src: &HostSource) -> io::Result<Arc<File>> {
        if let Some(f) = &src.file {
            return Ok(Arc::clone(f));
        }
        let lock = || {
            self.open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(f) = lock().map.get(&src.id) {
            return Ok(Arc::clone(f));
        }
        let path = src.path.as_deref().unwrap_or(Path::new(""));
        let f = Arc::new(crate::open_regular(path).map_err(|e| named(e, &src.name()))?);
        let mut open = lock();
        if open.map.insert(src.id, Arc::clone(&f)).is_none() {
            open.order.push_back(src.id);
        }
        while open.order.len() > OPEN_FILES {
            if let Some(old) = open.order.pop_front() {
                open.map.remove(&old);
            }
        }
        Ok(f)
    }

    /// Checks that `src` holds `src_offset + len` bytes now.
    fn check_source_len(len_now: u64, src_offset: u64, len: u64, name: &str) -> io::Result<()> {
        match src_offset.checked_add(len) {
            Some(need) if need <= len_now => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: {len_now} bytes, {len} wanted from byte {src_offset}"),
            )),
        }
    }
}

fn named(e: io::Error, name: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{name}: {e}"))
}

impl ReadAt for Overlay {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)
            .map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))?;
        let end = offset + buf.len() as u64;
        // Take the overlapping segments (cheap clones), then read without the lock.
        let parts: Vec<(u64, Seg)> = {
            let segs = self.read_segs();
            let before = segs
                .range(..offset)
                .next_back()
                .filter(|(s, seg)| *s + seg.len > offset);
            before
                .into_iter()
                .chain(segs.range(offset..end))
                .map(|(&s, seg)| (s, seg.clone()))
                .collect()
        };
        let mut pos = offset;
        for (s, seg) in parts {
            let from = s.max(offset);
            let to = (s + seg.len).min(end);
            buf[(pos - offset) as usize..(from - offset) as usize].fill(0);
            let dst = &mut buf[(from - offset) as usize..(to - offset) as usize];
            match seg.data.advanced(from - s) {
                Data::Zero => dst.fill(0),
                Data::Mem { buf: b, at } => dst.copy_from_slice(&b[at..at + dst.len()]),
                Data::Host { src, at } => {
                    let f = self.file_of(&src)?;
                    f.read_exact_at(dst, at).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            io::Error::new(
                                e.kind(),
                                format!(
                                    "{}: shorter than when it was copied into the image \
                                     (reading byte {at})",
                                    src.name()
                                ),
                            )
                        } else {
                            named(e, &src.name())
                        }
                    })?;
                    if let (Some(Tap(tap)), Some(p)) = (&self.tap, &src.path) {
                        tap.host_read(p, at, dst);
                    }
                }
            }
            pos = to;
        }
        buf[(pos - offset) as usize..].fill(0);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl WriteAt for Overlay {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        // Runs of whole zero blocks are recorded as zeros; everything else is kept.
        let mut pos = 0;
        while pos < buf.len() {
            let block = |p: usize| (p + ZERO_BLOCK).min(buf.len());
            let zero = is_zero(&buf[pos..block(pos)]);
            let mut end = block(pos);
            while end < buf.len() && is_zero(&buf[end..block(end)]) == zero {
                end = block(end);
            }
            let len = (end - pos) as u64;
            let data = if zero {
                Data::Zero
            } else {
                Data::Mem {
                    buf: Arc::from(&buf[pos..end]),
                    at: 0,
                }
            };
            self.put(offset + pos as u64, len, data);
            pos = end;
        }
        Ok(())
    }

    fn write_shared_at(&self, buf: &Arc<[u8]>, offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        if buf.is_empty() {
            return Ok(());
        }
        if is_zero(buf) {
            self.put(offset, buf.len() as u64, Data::Zero);
        } else {
            self.put(
                offset,
                buf.len() as u64,
                Data::Mem {
                    buf: buf.clone(),
                    at: 0,
                },
            );
        }
        Ok(())
    }

    fn capacity(&self) -> u64 {
        self.size
    }

    fn copy_from_file(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        check_range(offset, len, self.size)?;
        if len == 0 {
            return Ok(());
        }
        let now = src.metadata()?.len();
        Self::check_source_len(now, src_offset, len, "source file")?;
        let host = self.host(None, Some(Arc::new(src.try_clone()?)));
        self.put(
            offset,
            len,
            Data::Host {
                src: host,
                at: src_offset,
            },
        );
        Ok(())
    }

    fn copy_from_path(&self, src: &Path, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        check_range(offset, len, self.size)?;
        if len == 0 {
            return Ok(());
        }
        let name = src.display().to_string();
        let md = std::fs::metadata(src).map_err(|e| named(e, &name))?;
        if !md.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: not a regular file"),
            ));
        }
        Self::check_source_len(md.len(), src_offset, len, &name)?;
        let host = self.host(Some(src.to_path_buf()), None);
        self.put(
            offset,
            len,
            Data::Host {
                src: host,
                at: src_offset,
            },
        );
        Ok(())
    }
}

impl Extents for Overlay {
    /// The ranges holding data or host references (written zeros are not data).
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for (&s, seg) in self.read_segs().iter() {
            if matches!(seg.data, Data::Zero) {
                continue;
            }
            let e = s + seg.len;
            match out.last_mut() {
                Some(last) if last.end == s => last.end = e,
                _ => out.push(s..e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemImage;

    fn read(o: &impl ReadAt, off: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        o.read_exact_at(&mut b, off).unwrap();
        b
    }

    #[test]
    fn test_shared_writes_read_back_everywhere_and_can_be_overwritten_in_part() {
        let o = Overlay::new(1 << 20);
        let gdt: Arc<[u8]> = (0..8192u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        for off in [4096u64, 65536, 200_000] {
            o.write_shared_at(&gdt, off).unwrap();
        }
        o.write_all_at(&[9; 10], 65536 + 100).unwrap();
        for off in [4096u64, 200_000] {
            assert_eq!(read(&o, off, gdt.len()), gdt.to_vec());
        }
        let mid = read(&o, 65536, gdt.len());
        assert_eq!(&mid[..100], &gdt[..100]);
        assert!(mid[100..110].iter().all(|&x| x == 9));
        assert_eq!(&mid[110..], &gdt[110..]);
        // The shared buffer itself is never written through.
        assert_eq!(gdt[100], 100);
        o.write_shared_at(&Arc::from(vec![0u8; 4096]), 4096)
            .unwrap();
        assert!(read(&o, 4096, 4096).iter().all(|&x| x == 0));
    }

    #[test]
    fn test_later_writes_replace_earlier_ones_byte_exactly() {
        let o = Overlay::new(1 << 20);
        o.write_all_at(&[1; 512], 0).unwrap();
        o.write_all_at(&[2; 440], 0).unwrap(); // boot code over an MBR
        o.write_all_at(&[3; 10], 100).unwrap(); // inside both
        o.write_all_at(&[0; 20], 500).unwrap(); // zeros over the tail and beyond
        let b = read(&o, 0, 600);
        assert!(b[..100].iter().all(|&x| x == 2));
        assert!(b[100..110].iter().all(|&x| x == 3));
        assert!(b[110..440].iter().all(|&x| x == 2));
        assert!(b[440..500].iter().all(|&x| x == 1));
        assert!(b[500..].iter().all(|&x| x == 0));
        assert_eq!(o.data_extents().unwrap(), vec![0..500]);
        assert_eq!(o.stats().zeros, 20);
    }

    /// Records what a tap is told.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(PathBuf, u64, Vec<u8>)>>);

    impl HostReadTap for Recorder {
        fn host_read(&self, path: &Path, offset: u64, bytes: &[u8]) {
            self.0
                .lock()
                .unwrap()
                .push((path.to_owned(), offset, bytes.to_vec()));
        }
    }

    #[test]
    fn test_a_tap_is_told_each_host_range_read_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let rec = Arc::new(Recorder::default());
        let o = Overlay::with_tap(1 << 20, rec.clone());
        o.copy_from_path(&p, 1000, 50_000, 8192).unwrap();
        // A descriptor has no path to report; metadata is not the host's.
        let f = File::open(&p).unwrap();
        o.copy_from_file(&f, 0, 100, 4096).unwrap();
        o.write_all_at(b"xyz", 8192 + 10).unwrap();
        // Read in two pieces that split the copy, as parallel grains do.
        let _ = read(&o, 0, 20_000);
        let _ = read(&o, 20_000, 60_000);
        let got = rec.0.lock().unwrap().clone();
        let ranges: Vec<(u64, usize)> = got.iter().map(|(_, off, b)| (*off, b.len())).collect();
        // The copy minus the three bytes written over it: [1000, 1010) and [1013, 51000), the
        // second cut where the two reads meet (image offset 20,000 is host offset 12,808).
        assert_eq!(ranges, vec![(1000, 10), (1013, 11_795), (12_808, 38_192)]);
        for (path, off, bytes) in &got {
            assert_eq!(path, &p);
            let off = usize::try_from(*off).unwrap();
            assert_eq!(bytes, &data[off..off + bytes.len()]);
        }
    }

    #[test]
    fn test_copies_are_read_lazily_from_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8 + 1).collect();
        std::fs::write(&p, &data).unwrap();
        let o = Overlay::new(1 << 20);
        o.copy_from_path(&p, 1000, 50_000, 8192).unwrap();
        let f = File::open(&p).unwrap();
        o.copy_from_file(&f, 0, 100, 4096).unwrap();
        drop(f);
        // Metadata over the middle of the copied range.
        o.write_all_at(b"xyz", 8192 + 10).unwrap();
        let st = o.stats();
        assert_eq!((st.memory, st.referenced), (3, 50_097));
        let b = read(&o, 4000, 60_000);
        assert_eq!(&b[96..196], &data[..100]);
        assert!(b[196..4192].iter().all(|&x| x == 0));
        assert_eq!(&b[4192..4202], &data[1000..1010]);
        assert_eq!(&b[4202..4205], b"xyz");
        assert_eq!(&b[4205..54192], &data[1013..51000]);
        assert!(b[54192..].iter().all(|&x| x == 0));
        assert_eq!(o.data_extents().unwrap(), vec![4096..4196, 8192..58192]);
    }

    #[test]
    fn test_a_source_that_shrank_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shrinks");
        std::fs::write(&p, vec![7u8; 10_000]).unwrap();
        let o = Overlay::new(1 << 20);
        assert!(o.copy_from_path(&p, 5000, 6000, 0).is_err());
        assert!(
            o.copy_from_path(&dir.path().join("missing"), 0, 1, 0)
                .is_err()
        );
        assert!(o.copy_from_path(dir.path(), 0, 1, 0).is_err());
        o.copy_from_path(&p, 0, 10_000, 0).unwrap();
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        let mut b = vec![0u8; 4096];
        let e = o.read_exact_at(&mut b, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("shrinks"), "{e}");
        // Out of range, either way.
        assert!(o.write_all_at(&[1], 1 << 20).is_err());
        assert!(o.copy_from_path(&p, 0, 2, (1 << 20) - 1).is_err());
        assert!(o.read_exact_at(&mut b, (1 << 20) - 100).is_err());
    }

    #[test]
    fn test_a_source_replaced_by_a_fifo_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("becomes a fifo");
        std::fs::write(&p, vec![7u8; 10_000]).unwrap();
        let o = Overlay::new(1 << 20);
        o.copy_from_path(&p, 0, 10_000, 0).unwrap();
        std::fs::remove_file(&p).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // A plain open of a FIFO waits for a writer that never comes: read on a thread, so a
        // hang fails the test instead of stalling it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = vec![0u8; 4096];
            let _ = tx.send(o.read_exact_at(&mut b, 0).map_err(|e| e.to_string()));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("reading a source replaced by a FIFO hung");
        let e = r.unwrap_err();
        assert!(
            e.contains("becomes a fifo") && e.contains("not a regular file"),
            "{e}"
        );
    }

    /// A deterministic generator (xorshift) for the model test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn test_random_writes_and_copies_read_back_as_a_real_image_would() {
        // The model: the same operations applied to a MemImage (and MemImage's own copy).
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut sources = Vec::new();
        for k in 0..4 {
            let p = dir.path().join(format!("src{k}"));
            let len = 20_000 + rng.below(60_000) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            d[100..5000].fill(0); // a zero run inside a file is still file data
            std::fs::write(&p, &d).unwrap();
            sources.push((p, d));
        }
        let size = 256 * 1024;
        let o = Overlay::new(size);
        let model = MemImage::new(size);
        for _ in 0..400 {
            let off = rng.below(size - 1);
            let room = size - off;
            match rng.below(4) {
                0 | 1 => {
                    let len = rng.below(room.min(20_000)) as usize + 1;
                    let fill = rng.below(3);
                    let buf: Vec<u8> = (0..len)
                        .map(|i| match fill {
                            0 => 0,
                            1 => rng.below(256) as u8,
                            _ => u8::from(i % 5000 > 4000),
                        })
                        .collect();
                    o.write_all_at(&buf, off).unwrap();
                    model.write_all_at(&buf, off).unwrap();
                }
                k => {
                    let (p, d) = &sources[rng.below(4) as usize];
                    let s_off = rng.below(d.len() as u64 - 1);
                    let len = rng.below((d.len() as u64 - s_off).min(room)) + 1;
                    if k == 2 {
                        o.copy_from_path(p, s_off, len, off).unwrap();
                    } else {
                        o.copy_from_file(&File::open(p).unwrap(), s_off, len, off)
                            .unwrap();
                    }
                    let s = s_off as usize;
                    model.write_all_at(&d[s..s + len as usize], off).unwrap();
                }
            }
        }
        assert_eq!(read(&o, 0, size as usize), model.to_vec().unwrap());
        for _ in 0..200 {
            let off = rng.below(size);
            let len = rng.below(size - off) as usize;
            assert_eq!(read(&o, off, len), read(&model, off, len), "{off}+{len}");
        }
        // Every non-zero byte lies in a reported extent.
        let all = model.to_vec().unwrap();
        let ext = o.data_extents().unwrap();
        for (i, &b) in all.iter().enumerate() {
            if b != 0 {
                assert!(ext.iter().any(|r| r.contains(&(i as u64))), "byte {i}");
            }
        }
        assert!(ext.windows(2).all(|w| w[0].end < w[1].start));
    }

    #[test]
    fn test_parallel_disjoint_writes_from_many_threads() {
        let o = Overlay::new(64 << 20);
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let o = &o;
                s.spawn(move || {
                    for i in 0..256u64 {
                        let off = (i * 4 + u64::from(t)) * 65536;
                        o.write_all_at(&[t + 1; 1000], off).unwrap();
                    }
                });
            }
        });
        assert_eq!(o.stats().segments, 1024);
        assert_eq!(read(&o, 3 * 65536, 2)[..], [4, 4]);
    }
}
