//! A store path read with NAR semantics: the single source of truth for what an image's store
//! holds, and the parallel hash of its NAR serialisation.
//!
//! [`scan`] lists a store path in NAR order (pre-order, entries sorted by name bytes) as what a
//! NAR can hold: directories, regular files with or without the executable bit, symbolic links.
//! A device node, FIFO or socket anywhere in it is an [`ErrorKind::Unsupported`] error naming
//! it. Every entry carries a [`Stamp`] of its host file (device, inode, size, mode, mtime,
//! ctime), so a build can later prove that nothing it read changed ([`Snapshot::check`]).
//!
//! [`nar_hash`] hashes the NAR of a scanned path with its file contents read in parallel:
//! worker threads read batches of files (or chunks of large files) while one thread feeds the
//! bytes, in NAR order, to sha256. A store path of 300,000 small files keeps every core busy
//! on the `open`/`read` system calls, which dominate its cost.
//!
//! ```
//! # fn main() -> imagetool_nix::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("hello"), b"hi").unwrap();
//! let entries = imagetool_nix::scan::scan(dir.path())?;
//! assert_eq!(
//!     imagetool_nix::scan::nar_hash(&entries)?,
//!     imagetool_nix::nar::hash_path(dir.path())?
//! );
//! # Ok(()) }
//! ```

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::nar::{NAR_MAGIC, write_padding, write_str};
use crate::{Error, ErrorKind, Result};

mod witness;
pub use witness::{AHEAD_LIMIT, READY_LIMIT, Witness, WitnessReport};

/// The largest piece of a file read as one unit.
const CHUNK: u64 = 1 << 20;
/// The bytes of file contents read ahead of the hasher, per batch.
const BATCH_BYTES: u64 = 8 << 20;
/// The most files (chunks) in one batch.
const BATCH_CHUNKS: usize = 2048;

/// A host file's state when it was read. [`Stamp::same_content`] decides what counts as a
/// change: type, mode, size and mtime (a write moves the mtime); see there for why the inode and
/// ctime are recorded but not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mode` (type and permissions).
    pub mode: u32,
    /// `st_mtime` and its nanoseconds.
    pub mtime: (i64, i64),
    /// `st_ctime` and its nanoseconds.
    pub ctime: (i64, i64),
}

impl Stamp {
    /// Whether `self` and `other` describe the same content as a NAR sees it: type and mode,
    /// size and mtime. The inode, device and ctime are left out on purpose: a live Nix store
    /// changes them without changing content (`auto-optimise-store` hard-links new outputs to
    /// existing files, which moves their link count and ctime; `nix-store --optimise` replaces
    /// a file by an identical one), and a build must not fail on a busy builder for that.
    #[must_use]
    pub fn same_content(&self, other: &Self) -> bool {
        self.mode == other.mode && self.size == other.size && self.mtime == other.mtime
    }

    /// The stamp of `meta`.
    #[must_use]
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mode: meta.mode(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What an entry of a store path is, as a NAR records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory; its entries follow it.
    Dir,
    /// A regular file of `size` bytes.
    File {
        /// The owner-execute bit is set.
        executable: bool,
        /// Its length.
        size: u64,
    },
    /// A symbolic link.
    Symlink(Vec<u8>),
}

/// One entry of a scanned store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 0 for the store path itself, 1 for its entries, and so on.
    pub depth: u32,
    /// The path below the store path (`a/b`), empty for the store path itself.
    pub rel: Vec<u8>,
    /// The host file.
    pub host: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Its state when scanned.
    pub stamp: Stamp,
}

impl Entry {
    /// The length of a regular file, 0 for anything else.
    #[must_use]
    pub fn file_size(&self) -> u64 {
        match self.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        }
    }

    /// The last component of [`Entry::rel`] (empty for the store path itself).
    #[must_use]
    pub fn name(&self) -> &[u8] {
        self.rel.rsplit(|&b| b == b'/').next().unwrap_or(&[])
    }
}

/// Lists the file, symlink or directory tree at `host` in NAR order.
///
/// # Errors
/// [`ErrorKind::Unsupported`] naming a device node, FIFO or socket; [`ErrorKind::Io`] naming
/// what cannot be read.
pub fn scan(host: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let root = std::fs::symlink_metadata(host).map_err(|e| Error::io(host, e))?;
    // An explicit stack: a deep tree cannot overflow the thread's stack. Each entry carries its
    // metadata, taken while its directory was listed (`fstatat` relative to the directory: one
    // name looked up, not the whole path again, which on a closure of 100,000 files was most
    // of the listing's time).
    let mut stack = vec![(host.to_path_buf(), Vec::new(), 0u32, root)];
    while let Some((path, rel, depth, meta)) = stack.pop() {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            let mut children = Vec::new();
            for entry in std::fs::read_dir(&path).map_err(|e| Error::io(&path, e))? {
                let entry = entry.map_err(|e| Error::io(&path, e))?;
                let name = entry.file_name();
                let child = path.join(&name);
                let meta = entry.metadata().map_err(|e| Error::io(&child, e))?;
                children.push((name, child, meta));
            }
            children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (name, child, meta) in children.into_iter().rev() {
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(name.as_bytes());
                stack.push((child, r, depth + 1, meta));
            }
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File {
                executable: meta.mode() & 0o100 != 0,
                size: meta.size(),
            }
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
            EntryKind::Symlink(t.as_os_str().as_bytes().to_vec())
        } else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "a store path can hold only directories, regular files and symlinks (what \
                     a NAR holds), not this {}",
                    special_kind(&meta)
                ),
            )
            .with_path(&path));
        };
        out.push(Entry {
            depth,
            rel,
            host: path,
            kind,
            stamp: Stamp::of(&meta),
        });
    }
    Ok(out)
}

/// "FIFO", "socket", "character device" or "block device".
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "file of unknown type"
    }
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// One piece of a file's contents to read.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    entry: usize,
    offset: u64,
    len: u64,
}

/// The sha256 and size of the NAR serialisation of `entries` (a [`scan`] result), the file
/// contents read in parallel.
///
/// # Errors
/// [`ErrorKind::Io`] naming a file that cannot be read or is shorter than when it was scanned.
pub fn nar_hash(entries: &[Entry]) -> Result<([u8; 32], u64)> {
    let mut chunks = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let EntryKind::File { size, .. } = e.kind {
            let mut offset = 0;
            while offset < size {
                let len = (size - offset).min(CHUNK);
                chunks.push(Chunk {
                    entry: i,
                    offset,
                    len,
                });
                offset += len;
            }
        }
    }
    let mut batches: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, c) in chunks.iter().enumerate() {
        if i > start && (bytes + c.len > BATCH_BYTES || i - start >= BATCH_CHUNKS) {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += c.len;
    }
    if start < chunks.len() {
        batches.push(start..chunks.len());
    }

    let mut sink = Hasher::default();
    if batches.len() <= 1 {
        let mut buf = Vec::new();
        if let Some(b) = batches.first() {
            read_parallel(entries, &chunks[b.clone()], &mut buf)?;
        }
        emit(
            entries,
            &mut sink,
            &mut Stream::new(std::iter::once(Ok(buf)), |_| {}),
        )?;
        return Ok(sink.finish());
    }
    // Read ahead on another thread while this one hashes; at most three batch buffers exist
    // (one read, one waiting, one hashed) and they are reused, so memory stays bounded whatever
    // the path's size and no page is faulted in twice. The readers are plain threads, not the
    // rayon pool: this function runs inside rayon tasks that block on the channel, and
    // borrowing the pool from them could leave no worker to read.
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(1);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let chunks = &chunks;
        let batches = &batches;
        s.spawn(move || {
            for b in batches {
                let mut buf = free_rx.try_recv().unwrap_or_default();
                let r = read_parallel(entries, &chunks[b.clone()], &mut buf).map(|()| buf);
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    return;
                }
            }
        });
        emit(
            entries,
            &mut sink,
            &mut Stream::new(rx.into_iter(), move |b| {
                let _ = free_tx.send(b);
            }),
        )
    })?;
    Ok(sink.finish())
}

/// A rayon pool of one thread per core whose threads (and the reader threads they start,
/// which inherit it) run 10 nice levels below the thread that builds it: work that should use
/// the cores the rest of the build leaves idle. `None` when no thread can be started (the
/// caller then runs on the current pool).
fn background_pool() -> Option<rayon::ThreadPool> {
    use rustix::process::{getpriority_process, setpriority_process};
    // On Linux the nice value is per thread (PRIO_PROCESS with pid 0 names the calling
    // thread), and a new thread starts with its creator's.
    let base = getpriority_process(None).unwrap_or(0);
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("imagetool-verify-{i}"))
        .start_handler(move |_| {
            // Failing to lower it only costs speed.
            let _ = setpriority_process(None, (base + 10).min(19));
        })
        .build()
        .ok()
}

/// Reads a batch's chunks back to back into `buf` (resized to their total; its earlier
/// capacity is reused), with one thread per core, each a contiguous share of the chunks.
fn read_parallel(entries: &[Entry], chunks: &[Chunk], buf: &mut Vec<u8>) -> Result<()> {
    let total: u64 = chunks.iter().map(|c| c.len).sum();
    let total = usize::try_from(total)
        .map_err(|_| Error::new(ErrorKind::Overflow, "a batch does not fit in memory"))?;
    buf.resize(total, 0);
    let cores = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    let per = chunks.len().div_ceil(cores).max(64);
    if chunks.len() <= per {
        return read_batch(entries, chunks, buf);
    }
    // Each share's chunks and the slice of the buffer they fill.
    let mut shares = Vec::new();
    let mut rest: &mut [u8] = buf;
    for part in chunks.chunks(per) {
        let len: u64 = part.iter().map(|c| c.len).sum();
        let (mine, tail) = rest.split_at_mut(usize::try_from(len).unwrap_or(usize::MAX));
        shares.push((part, mine));
        rest = tail;
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|(part, out)| s.spawn(move || read_batch(entries, part, out)))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::new(ErrorKind::Io, "a reading thread panicked")))
        })
    })
}

/// Reads `chunks` back to back into `out` (exactly their total length), opening each file
/// once for its consecutive chunks.
fn read_batch(entries: &[Entry], chunks: &[Chunk], out: &mut [u8]) -> Result<()> {
    let mut open: Option<(usize, File)> = None;
    let mut at = 0usize;
    for c in chunks {
        let path = &entries[c.entry].host;
        let file = match &open {
            Some((i, f)) if *i == c.entry => f,
            _ => {
                let f = imagetool_blockio::open_regular(path).map_err(|e| Error::io(path, e))?;
                &open.insert((c.entry, f)).1
            }
        };
        let len = usize::try_from(c.len).map_err(|_| {
            Error::new(ErrorKind::Overflow, "chunk does not fit in memory").with_path(path)
        })?;
        let buf = &mut out[at..at + len];
        let mut done = 0;
        while done < len {
            let n = file
                .read_at(&mut buf[done..], c.offset + done as u64)
                .map_err(|e| Error::io(path, e))?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Io,
                    "the file shrank after it was listed (it changed during the build)",
                )
                .with_path(path));
            }
            done += n;
        }
        at += len;
    }
    Ok(())
}

/// The file contents of a store path in NAR order, as a stream over batch buffers; each
/// buffer, once consumed, goes back to the reader through `recycle`.
struct Stream<I, R> {
    batches: I,
    recycle: R,
    current: Vec<u8>,
    pos: usize,
}

impl<I: Iterator<Item = Result<Vec<u8>>>, R: FnMut(Vec<u8>)> Stream<I, R> {
    fn new(batches: I, recycle: R) -> Self {
        Self {
            batches,
            recycle,
            current: Vec::new(),
            pos: 0,
        }
    }

    /// Feeds the next `n` bytes of the stream to `sink`.
    fn feed(&mut self, sink: &mut Hasher, mut n: u64) -> Result<()> {
        while n > 0 {
            if self.pos == self.current.len() {
                let next = match self.batches.next() {
                    Some(b) => b?,
                    None => {
                        return Err(Error::new(
                            ErrorKind::Io,
                            "internal: fewer file bytes than the listing",
                        ));
                    }
                };
                let used = std::mem::replace(&mut self.current, next);
                (self.recycle)(used);
                self.pos = 0;
                continue;
            }
            let take =
                (self.current.len() - self.pos).min(usize::try_from(n).unwrap_or(usize::MAX));
            sink.raw(&self.current[self.pos..self.pos + take]);
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }
}

/// Feeds the NAR of `entries` to `sink`, file contents from `stream` (the chunks in order).
fn emit<I: Iterator<Item = Result<Vec<u8>>>, R: FnMut(Vec<u8>)>(
    entries: &[Entry],
    sink: &mut Hasher,
    stream: &mut Stream<I, R>,
) -> Result<()> {
    let mut nar = NarCursor::start(sink);
    while let Some(i) = nar.next_file(entries, sink) {
        stream.feed(sink, entries[i].file_size())?;
        NarCursor::end_file(&entries[i], sink);
    }
    Ok(())
}

/// Where the serialisation of a NAR stands: the next entry to emit and the directories still
/// open. It emits the structure (names, types, flags, symlink targets) itself and stops where
/// a file's contents go, so the contents can come from anywhere: a read of their own
/// ([`nar_hash`]) or the bytes an image writer reads ([`Witness`]).
#[derive(Debug, Default)]
struct NarCursor {
    next: usize,
    /// The depths of the open directories.
    open: Vec<u32>,
}

impl NarCursor {
    /// Starts a NAR: its magic.
    fn start(sink: &mut Hasher) -> Self {
        sink.str(NAR_MAGIC.as_bytes());
        Self::default()
    }

    /// Emits everything up to the contents of the next non-empty regular file and returns that
    /// file's index in `entries`; at the end, closes the open directories and returns `None`.
    fn next_file(&mut self, entries: &[Entry], sink: &mut Hasher) -> Option<usize> {
        while let Some(e) = entries.get(self.next) {
            let i = self.next;
            self.next += 1;
            while self.open.last().is_some_and(|&d| d >= e.depth) {
                close_dir(sink, self.open.pop().unwrap_or(0));
            }
            if e.depth > 0 {
                sink.str(b"entry");
                sink.str(b"(");
                sink.str(b"name");
                sink.str(e.name());
                sink.str(b"node");
            }
            sink.str(b"(");
            sink.str(b"type");
            match &e.kind {
                EntryKind::Dir => {
                    sink.str(b"directory");
                    self.open.push(e.depth);
                    continue;
                }
                EntryKind::File { executable, size } => {
                    sink.str(b"regular");
                    if *executable {
                        sink.str(b"executable");
                        sink.str(b"");
                    }
                    sink.str(b"contents");
                    sink.raw(&size.to_le_bytes());
                    if *size > 0 {
                        return Some(i);
                    }
                }
                EntryKind::Symlink(target) => {
                    sink.str(b"symlink");
                    sink.str(b"target");
                    sink.str(target);
                }
            }
            Self::close_entry(e, sink);
        }
        while let Some(d) = self.open.pop() {
            close_dir(sink, d);
        }
        None
    }

    /// Ends the file [`NarCursor::next_file`] returned, once its contents were fed.
    fn end_file(e: &Entry, sink: &mut Hasher) {
        sink.pad(e.file_size());
        Self::close_entry(e, sink);
    }

    fn close_entry(e: &Entry, sink: &mut Hasher) {
        sink.str(b")");
        if e.depth > 0 {
            sink.str(b")");
        }
    }
}

fn close_dir(sink: &mut Hasher, depth: u32) {
    sink.str(b")");
    if depth > 0 {
        sink.str(b")");
    }
}

#[derive(Default)]
struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    fn raw(&mut self, b: &[u8]) {
        self.sha.update(b);
        self.len += b.len() as u64;
    }
    fn str(&mut self, s: &[u8]) {
        let mut v = Vec::with_capacity(s.len() + 16);
        // Writing into a Vec cannot fail.
        let _ = write_str(&mut v, s);
        self.raw(&v);
    }
    fn pad(&mut self, len: u64) {
        let mut v = Vec::new();
        let _ = write_padding(&mut v, len);
        self.raw(&v);
    }
    fn finish(self) -> ([u8; 32], u64) {
        (self.sha.finalize().into(), self.len)
    }
}

/// [`Snapshot::looks_cached`] probes every this-many-th regular file…
pub const CACHE_PROBE_STRIDE: usize = 64;
/// …and at most this many of them.
pub const CACHE_PROBES: usize = 512;

/// The [`Stamp`]s of every host file a build read, checked again when the output is complete.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    stamps: Vec<(PathBuf, Stamp)>,
    deferred: Vec<Deferred>,
}

/// A scanned store path whose NAR hash is still to be compared with its registration.
#[derive(Debug, Clone)]
struct Deferred {
    path: String,
    host: PathBuf,
    nar_hash: [u8; 32],
    nar_size: u64,
    entries: Vec<Entry>,
}

impl Deferred {
    /// Compares the NAR hash and size found with the registration.
    fn compare(&self, (hash, size): ([u8; 32], u64)) -> Result<()> {
        if (hash, size) == (self.nar_hash, self.nar_size) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "{}: the store contents do not match the registration: narHash sha256:{} ({} \
                 bytes) registered, sha256:{} ({} bytes) found (skip this check with \
                 --no-verify)",
                self.path,
                crate::base32::encode(&self.nar_hash),
                self.nar_size,
                crate::base32::encode(&hash),
                size
            ),
        )
        .with_path(&self.host))
    }
}

impl Snapshot {
    /// Records a scanned store path whose NAR hash [`Snapshot::verify_hashes`] compares with
    /// the registered `nar_hash` and `nar_size` later, while the image is written.
    pub fn defer_hash(
        &mut self,
        path: &str,
        host: &Path,
        nar_hash: [u8; 32],
        nar_size: u64,
        entries: Vec<Entry>,
    ) {
        self.deferred.push(Deferred {
            path: path.to_owned(),
            host: host.to_owned(),
            nar_hash,
            nar_size,
            entries,
        });
    }

    /// How many store paths [`Snapshot::verify_hashes`] will hash.
    #[must_use]
    pub fn deferred_len(&self) -> usize {
        self.deferred.len()
    }

    /// Hashes every deferred store path (in parallel, from the entries recorded when it was
    /// scanned) and compares its NAR hash and size with the registration. `stop` ends it early
    /// (`Ok`): the caller has given up the build.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] naming the first store path (in path order) whose contents do not
    /// match its registration; I/O errors naming the file.
    pub fn verify_hashes(&self, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
        self.verify_with(|_| None, stop, true)
    }

    /// [`Snapshot::verify_hashes`], with the NAR hash and size of the deferred path `i` taken
    /// from `known(i)` where it has them; the others are read on a lower-priority pool of
    /// their own when `background`, else on the current pool (nothing else is waiting for it).
    fn verify_with(
        &self,
        known: impl Fn(usize) -> Option<([u8; 32], u64)> + Sync,
        stop: &std::sync::atomic::AtomicBool,
        background: bool,
    ) -> Result<()> {
        use std::sync::atomic::Ordering;
        let hash_all = || {
            self.deferred
                .par_iter()
                .enumerate()
                .map(|(i, d)| {
                    if let Some(found) = known(i) {
                        return d.compare(found);
                    }
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    d.compare(nar_hash(&d.entries)?)
                })
                .collect::<Vec<Result<()>>>()
        };
        // A pool of its own, at a lower priority: each task blocks while its readers work, so
        // on the global pool it would hold the threads the image writer's tasks need, and at
        // the same priority it would take the cores the writer's critical path needs.
        let bad = match background.then(background_pool).flatten() {
            Some(pool) => pool.install(hash_all),
            None => hash_all(),
        };
        bad.into_iter().collect()
    }

    /// Asks the kernel to read every recorded regular file into the page cache
    /// (`posix_fadvise(POSIX_FADV_WILLNEED)`), in the order they were recorded (the order an
    /// image writer lays them out and reads them), until all are asked for or `stop` is raised.
    /// Nothing is read into this process: the reads the image writer makes afterwards find the
    /// pages cached instead of waiting for the disk one file at a time. Errors are ignored (a
    /// file that cannot be opened now fails the build where it is read).
    ///
    /// It stops after half of the memory the kernel reports available (`MemAvailable`): a
    /// closure larger than that would evict its own first files before they are read.
    ///
    /// A store already in the page cache (the common case on a builder that just built the
    /// closure, or built an image of it before) is left alone: a sample of the files is probed
    /// first ([`Snapshot::looks_cached`]), since opening every file of the store only to learn
    /// that it is cached costs a core a few hundred milliseconds the build can use.
    pub fn prefetch(&self, stop: &std::sync::atomic::AtomicBool) {
        use rustix::fs::{Advice, FileType, fadvise};
        if self.looks_cached() {
            return;
        }
        let mut budget = mem_available().map_or(u64::MAX, |m| m / 2);
        for (path, stamp) in &self.stamps {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            if FileType::from_raw_mode(stamp.mode) != FileType::RegularFile || stamp.size == 0 {
                continue;
            }
            let Some(rest) = budget.checked_sub(stamp.size) else {
                return;
            };
            budget = rest;
            if let Ok(f) = imagetool_blockio::open_regular(path) {
                let _ = fadvise(&f, 0, None, Advice::WillNeed);
            }
        }
    }

    /// Whether the recorded regular files look cached: the first and last byte of every
    /// [`CACHE_PROBE_STRIDE`]th one (at most [`CACHE_PROBES`] files) can be read without
    /// waiting for the disk (`preadv2(RWF_NOWAIT)`). A kernel or filesystem without
    /// `RWF_NOWAIT`, or any file that cannot be probed, reads as not cached.
    #[must_use]
    pub fn looks_cached(&self) -> bool {
        use rustix::fs::FileType;
        use rustix::io::{ReadWriteFlags, preadv2};
        let probe = |path: &Path, size: u64| {
            let Ok(f) = imagetool_blockio::open_regular(path) else {
                return false;
            };
            let mut byte = [0u8; 1];
            [0, size - 1].into_iter().all(|at| {
                matches!(
                    preadv2(
                        &f,
                        &mut [std::io::IoSliceMut::new(&mut byte)],
                        at,
                        ReadWriteFlags::NOWAIT
                    ),
                    Ok(1)
                )
            })
        };
        self.stamps
            .iter()
            .filter(|(_, s)| FileType::from_raw_mode(s.mode) == FileType::RegularFile && s.size > 0)
            .step_by(CACHE_PROBE_STRIDE)
            .take(CACHE_PROBES)
            .all(|(p, s)| probe(p, s.size))
    }

    /// Records the entries of a scanned store path.
    pub fn extend(&mut self, entries: &[Entry]) {
        self.stamps
            .extend(entries.iter().map(|e| (e.host.clone(), e.stamp)));
    }

    /// How many host files it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }

    /// Checks (in parallel) that every recorded file is as it was.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] naming the first file (in path order) that was changed, replaced
    /// or removed.
    pub fn check(&self) -> Result<()> {
        let bad = self
            .stamps
            .par_iter()
            .filter_map(|(p, s)| match std::fs::symlink_metadata(p) {
                Ok(m) if Stamp::of(&m).same_content(s) => None,
                Ok(_) => Some((p, "changed")),
                Err(_) => Some((p, "was removed")),
            })
            .min();
        match bad {
            None => Ok(()),
            Some((p, what)) => Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "{what} while the image was built (its type, mode, size or mtime differ \
                     from when it was read): the image would not match the registration"
                ),
            )
            .with_path(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nar::hash_path;

    #[test]
    fn test_parallel_hash_equals_streaming_dump_on_every_shape() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p");
        std::fs::create_dir_all(p.join("sub dir/ü/empty")).unwrap();
        std::fs::write(p.join("empty"), b"").unwrap();
        std::fs::write(p.join("sub dir/ü/x"), b"1234567").unwrap();
        let big: Vec<u8> = (0..(3 * CHUNK + 5)).map(|i| (i % 251) as u8).collect();
        std::fs::write(p.join("big"), &big).unwrap();
        for i in 0..3000 {
            std::fs::write(p.join(format!("f{i}")), format!("{i}")).unwrap();
        }
        std::os::unix::fs::symlink("big", p.join("link")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.join("big"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let entries = scan(&p).unwrap();
        assert_eq!(nar_hash(&entries).unwrap(), hash_path(&p).unwrap());
        // Single-file and symlink store paths.
        for one in [p.join("big"), p.join("empty"), p.join("link")] {
            assert_eq!(
                nar_hash(&scan(&one).unwrap()).unwrap(),
                hash_path(&one).unwrap()
            );
        }
    }

    #[test]
    fn test_fifo_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("a fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = scan(d.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(
            e.to_string().contains("a fifo") && e.to_string().contains("FIFO"),
            "{e}"
        );
    }

    #[test]
    fn test_snapshot_sees_a_same_size_write_but_not_a_new_hard_link() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"aaaa").unwrap();
        let mut s = Snapshot::default();
        s.extend(&scan(d.path()).unwrap());
        s.check().unwrap();
        // What auto-optimise-store does to a file that is already in the store: another name
        // (its link count and ctime move, its content does not).
        let other = tempfile::tempdir().unwrap();
        std::fs::hard_link(&f, other.path().join("link")).unwrap();
        s.check().unwrap();
        // A same-size write moves the mtime.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, b"bbbb").unwrap();
        let e = s.check().unwrap_err();
        assert!(e.to_string().contains(&f.display().to_string()), "{e}");
    }

    #[test]
    fn test_looks_cached_probes_the_page_cache_without_waiting() {
        use rustix::fs::{Advice, fadvise};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p");
        std::fs::create_dir(&p).unwrap();
        let n = CACHE_PROBE_STRIDE * 3;
        for i in 0..n {
            std::fs::write(p.join(format!("f{i:04}")), vec![i as u8; 3 * 4096 + i]).unwrap();
        }
        let mut s = Snapshot::default();
        s.extend(&scan(&p).unwrap());
        // Just written: in the page cache.
        assert!(s.looks_cached());
        // Written back and dropped from the cache: a probed file must be read from the disk.
        // (tmpfs and some filesystems keep their pages whatever the advice: then there is
        // nothing to tell apart, and only the first half is checked.)
        for i in 0..n {
            let f = File::open(p.join(format!("f{i:04}"))).unwrap();
            f.sync_all().unwrap();
            fadvise(&f, 0, None, Advice::DontNeed).unwrap();
        }
        let f = File::open(p.join("f0000")).unwrap();
        let mut b = [0u8; 1];
        let dropped = rustix::io::preadv2(
            &f,
            &mut [std::io::IoSliceMut::new(&mut b)],
            0,
            rustix::io::ReadWriteFlags::NOWAIT,
        )
        .is_err();
        if dropped {
            assert!(!s.looks_cached());
        } else {
            eprintln!(
                "the filesystem under {} keeps its pages cached",
                p.display()
            );
        }
        // The prefetch reads them back in.
        s.prefetch(&std::sync::atomic::AtomicBool::new(false));
        let start = std::time::Instant::now();
        while !s.looks_cached() {
            assert!(
                start.elapsed().as_secs() < 30,
                "the prefetch read nothing in"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
