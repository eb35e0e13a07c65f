//! The store verified from the bytes the image writer reads: one read of the closure, not two.
//!
//! An image writer reads every store file once, to copy it into the image (through blockio's
//! `Overlay`, whose reads are reported to a tap). A [`Witness`] is that tap: it is told each
//! host range read, with its bytes, and feeds them to each store path's NAR hash in NAR order.
//! The writer reads in disk order, in parallel grains; ext4 lays a store path's files out in
//! NAR order (depth first, names in byte order), so the pieces arrive nearly in order:
//!
//! * a piece that continues what the path received in order is hashed by the reader itself
//!   when nobody hashes that path, from the reader's buffer (no copy); otherwise it is queued
//!   for the hashing threads, and the reader goes on at once. The hashing threads run at the
//!   writer's priority: the writer waits for them when they fall behind, so a lower one would
//!   let any other load on the machine stall the build;
//! * a piece ahead of that (another thread's grain) waits in memory until the gap is filled;
//!   a piece behind it (a second output reading the disk again) is dropped;
//! * memory is bounded: pieces ahead of their cursor may hold [`AHEAD_LIMIT`] bytes in all
//!   (past it the path is given up), queued pieces [`READY_LIMIT`] (past it the reader waits
//!   for the hashing threads, which can always consume them).
//!
//! [`Witness::finish`] waits for the queue, then hashes with a read of its own
//! ([`Snapshot::rehash`]) every path the writer did not read whole and in order (a sparse file,
//! whose holes are never read; a path given up for memory), and compares every hash with the
//! registration. The result is stronger than a separate read: what is hashed is exactly what
//! went into the image.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{Hasher, NarCursor, Snapshot};
use crate::{Error, ErrorKind, Result};

/// The most bytes held for pieces that arrived ahead of their path's cursor.
pub const AHEAD_LIMIT: u64 = 128 << 20;
/// The most bytes queued for the hashing threads before a reader waits.
pub const READY_LIMIT: u64 = 64 << 20;

/// Which budget a held piece is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    Ready,
    Ahead,
}

/// A piece of a file, held until it is hashed.
#[derive(Debug)]
struct Piece {
    bytes: Vec<u8>,
    charge: Charge,
}

/// One store path's NAR hash in progress.
struct PathState {
    /// `None` while a hashing thread has it.
    hasher: Option<Hasher>,
    nar: NarCursor,
    /// The file being fed (an index into the path's entries) and how many of its bytes were;
    /// `None` once the NAR is complete.
    cur: Option<(usize, u64)>,
    /// The end of what was received in order (`cur` or past it); `None` once all was.
    frontier: Option<(usize, u64)>,
    /// Pieces not yet hashed, by (entry, offset).
    pending: BTreeMap<(usize, u64), Piece>,
    /// In the queue or with a hashing thread.
    queued: bool,
    /// Given up (memory): [`Witness::finish`] reads it again.
    abandoned: bool,
    /// The NAR's hash and size, once complete.
    result: Option<([u8; 32], u64)>,
}

/// What [`Witness::finish`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WitnessReport {
    /// Store paths hashed from the writer's reads.
    pub witnessed: usize,
    /// Store paths hashed by a read of their own (not read whole and in order by the writer).
    pub reread: usize,
}

#[derive(Debug, Default)]
struct Budget {
    ready: u64,
    ahead: u64,
}

#[derive(Debug, Default)]
struct Queue {
    paths: VecDeque<usize>,
    /// Hashing threads at work on a path.
    busy: usize,
    closing: bool,
}

struct Shared {
    snap: Arc<Snapshot>,
    /// A store file's host path, as bytes → (store path, entry). Bytes, not `Path`s: a `Path`
    /// hashes and compares component by component, and this is looked up for every piece
    /// read. The writer names a file exactly as the scan recorded it, so byte equality finds
    /// it (a file named otherwise would only be hashed again by a read of its own).
    by_host: HashMap<Vec<u8>, (usize, usize)>,
    states: Vec<Mutex<PathState>>,
    budget: Mutex<Budget>,
    /// Signalled when the ready budget shrinks.
    budget_cv: Condvar,
    queue: Mutex<Queue>,
    /// Signalled when a path is queued, a thread goes idle, or the witness closes.
    queue_cv: Condvar,
    /// [`AHEAD_LIMIT`] and [`READY_LIMIT`] (smaller in tests).
    limits: (u64, u64),
}

/// Hashes the store from the image writer's reads (see the module documentation).
pub struct Witness {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("store_paths", &self.shared.states.len())
            .field("files", &self.shared.by_host.len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Witness {
    /// A witness of `snap`'s deferred store paths, with its hashing threads started.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] when no hashing thread can be started.
    pub fn start(snap: Arc<Snapshot>) -> Result<Self> {
        Self::with_limits(snap, (AHEAD_LIMIT, READY_LIMIT))
    }

    /// [`Witness::start`] with other memory limits (ahead, ready).
    fn with_limits(snap: Arc<Snapshot>, limits: (u64, u64)) -> Result<Self> {
        let mut by_host = HashMap::new();
        let mut states = Vec::with_capacity(snap.deferred.len());
        for (p, d) in snap.deferred.iter().enumerate() {
            for (e, entry) in d.entries.iter().enumerate() {
                if entry.file_size() > 0 {
                    by_host.insert(entry.host.as_os_str().as_bytes().to_vec(), (p, e));
                }
            }
            let mut hasher = Hasher::default();
            let mut nar = NarCursor::start(&mut hasher);
            let cur = nar.next_file(&d.entries, &mut hasher).map(|i| (i, 0));
            let (hasher, result) = match cur {
                Some(_) => (Some(hasher), None),
                None => (None, Some(hasher.finish())),
            };
            states.push(Mutex::new(PathState {
                hasher,
                nar,
                cur,
                frontier: cur,
                pending: BTreeMap::new(),
                queued: false,
                abandoned: false,
                result,
            }));
        }
        let shared = Arc::new(Shared {
            snap,
            by_host,
            states,
            budget: Mutex::default(),
            budget_cv: Condvar::new(),
            queue: Mutex::default(),
            queue_cv: Condvar::new(),
            limits,
        });
        let n = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(8);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let s = Arc::clone(&shared);
            let t = std::thread::Builder::new()
                .name(format!("imagetool-witness-{i}"))
                .spawn(move || s.work());
            match t {
                Ok(t) => threads.push(t),
                Err(e) if threads.is_empty() => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!("starting the store verification: {e}"),
                    ));
                }
                Err(_) => break,
            }
        }
        Ok(Self {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// Takes the bytes `bytes` the image writer read from the host file `host` at `offset`.
    /// A file that is not a store file of the snapshot is ignored.
    pub fn observe(&self, host: &Path, offset: u64, bytes: &[u8]) {
        if let Some(&(p, e)) = self.shared.by_host.get(host.as_os_str().as_bytes()) {
            self.shared.offer(p, e, offset, bytes);
        }
    }

    /// Waits for the hashing threads, hashes by a read of their own the paths the writer did
    /// not read whole and in order, and compares every store path with its registration.
    /// `stop` ends the re-reading early (`Ok`): the caller has given up the build.
    ///
    /// # Errors
    /// As [`Snapshot::verify_hashes`].
    pub fn finish(&self, stop: &AtomicBool) -> Result<WitnessReport> {
        self.close();
        let s = &self.shared;
        let done: Vec<Option<([u8; 32], u64)>> = s
            .states
            .iter()
            .map(|st| {
                let st = lock(st);
                st.result.filter(|_| !st.abandoned)
            })
            .collect();
        let witnessed = done.iter().filter(|r| r.is_some()).count();
        // The first mismatch in path order, whichever way each path was hashed.
        // The build waits for this: the re-reads run at its priority, on the current pool (the
        // image writers are done with it).
        s.snap.verify_with(|i| done[i], stop, false)?;
        Ok(WitnessReport {
            witnessed,
            reread: done.len() - witnessed,
        })
    }

    /// Lets the hashing threads finish what is queued, then joins them.
    fn close(&self) {
        lock(&self.shared.queue).closing = true;
        self.shared.queue_cv.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        // No thread outlives the build, whether it finished or failed.
        self.close();
    }
}

impl Shared {
    /// Takes a piece of entry `e` of store path `p`.
    fn offer(&self, p: usize, e: usize, offset: u64, bytes: &[u8]) {
        let entries = &self.snap.deferred[p].entries;
        let mut st = lock(&self.states[p]);
        // The frontier never lags the cursor.
        let (Some(c), Some(f)) = (st.cur, st.frontier) else {
            return;
        };
        let (fe, fo) = c.max(f);
        if st.abandoned || bytes.is_empty() {
            return;
        }
        let end = offset + bytes.len() as u64;
        // Behind the frontier: already received (a second output reads the disk again).
        if e < fe || (e == fe && end <= fo) {
            return;
        }
        let (offset, bytes) = if e == fe && offset < fo {
            (fo, &bytes[usize::try_from(fo - offset).unwrap_or(0)..])
        } else {
            (offset, bytes)
        };
        if st.pending.contains_key(&(e, offset)) {
            return;
        }
        let len = bytes.len() as u64;
        let ready = (e, offset) == (fe, fo);
        if ready && st.pending.is_empty() && !st.queued && (fe, fo) == c {
            // In order, and nobody hashes this path: hash it here, from the reader's buffer.
            if let Some(mut hasher) = st.hasher.take() {
                st.queued = true;
                let mut nar = std::mem::take(&mut st.nar);
                st.frontier = advance(entries, (e, offset + len), &st.pending);
                drop(st);
                let cur = feed(entries, &mut hasher, &mut nar, (e, offset), bytes, offset);
                self.put_back(p, hasher, nar, cur);
                return;
            }
        }
        {
            let mut b = lock(&self.budget);
            if ready {
                b.ready += len;
            } else if b.ahead + len > self.limits.0 {
                drop(b);
                self.abandon(&mut st);
                return;
            } else {
                b.ahead += len;
            }
        }
        let charge = if ready { Charge::Ready } else { Charge::Ahead };
        st.pending.insert(
            (e, offset),
            Piece {
                bytes: bytes.to_vec(),
                charge,
            },
        );
        if ready {
            st.frontier = advance(entries, (e, offset + len), &st.pending);
        }
        // Queued when the piece can be hashed now (whether it continued the frontier or filled
        // the cursor's gap).
        if (e, offset) <= c && !st.queued && st.hasher.is_some() {
            st.queued = true;
            drop(st);
            lock(&self.queue).paths.push_back(p);
            self.queue_cv.notify_one();
        } else {
            drop(st);
        }
        if ready {
            // Back-pressure: queued pieces can always be hashed, so this wait ends.
            let mut b = lock(&self.budget);
            while b.ready > self.limits.1 {
                b = self
                    .budget_cv
                    .wait(b)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }

    /// Returns path `p`'s hash state after a reader hashed a piece itself; queues the path
    /// when pieces it can hash came in meanwhile.
    fn put_back(&self, p: usize, hasher: Hasher, nar: NarCursor, cur: Option<(usize, u64)>) {
        let mut st = lock(&self.states[p]);
        let Some(c) = self.settle(&mut st, hasher, nar, cur) else {
            return;
        };
        if st.pending.first_key_value().is_some_and(|(k, _)| *k <= c) {
            drop(st);
            lock(&self.queue).paths.push_back(p);
            self.queue_cv.notify_one();
        } else {
            st.queued = false;
        }
    }

    /// Publishes the progress of whoever hashed `st`'s path: its cursor, and the NAR's hash
    /// once complete. Returns the cursor when there is more to hash (the hash state is back in
    /// `st`); `None` when the path is complete or was given up (`st` is then no longer queued).
    fn settle(
        &self,
        st: &mut PathState,
        hasher: Hasher,
        nar: NarCursor,
        cur: Option<(usize, u64)>,
    ) -> Option<(usize, u64)> {
        st.nar = nar;
        st.cur = cur;
        if st.abandoned || cur.is_none() {
            if !st.abandoned {
                st.result = Some(hasher.finish());
            }
            let rest = std::mem::take(&mut st.pending);
            self.release(rest.values());
            st.queued = false;
            return None;
        }
        st.hasher = Some(hasher);
        cur
    }

    /// Gives `st`'s path up: its pieces are dropped, and [`Witness::finish`] reads it again.
    fn abandon(&self, st: &mut PathState) {
        st.abandoned = true;
        let pieces = std::mem::take(&mut st.pending);
        self.release(pieces.values());
    }

    /// Returns the pieces' bytes to the budget.
    fn release<'a>(&self, pieces: impl Iterator<Item = &'a Piece>) {
        let mut b = lock(&self.budget);
        for piece in pieces {
            let n = piece.bytes.len() as u64;
            match piece.charge {
                Charge::Ready => b.ready -= n,
                Charge::Ahead => b.ahead -= n,
            }
        }
        drop(b);
        self.budget_cv.notify_all();
    }

    /// A hashing thread: takes queued paths until the witness closes and nothing is queued.
    fn work(&self) {
        loop {
            let p = {
                let mut q = lock(&self.queue);
                loop {
                    if let Some(p) = q.paths.pop_front() {
                        q.busy += 1;
                        break Some(p);
                    }
                    if q.closing && q.busy == 0 {
                        break None;
                    }
                    q = self
                        .queue_cv
                        .wait(q)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            let Some(p) = p else {
                self.queue_cv.notify_all();
                return;
            };
            // A panic must not leave `busy` raised (close would wait forever): the path is
            // then given up, and read again by `finish`.
            let hashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.hash_path(p);
            }));
            if hashed.is_err() {
                let mut st = lock(&self.states[p]);
                self.abandon(&mut st);
                st.queued = false;
            }
            lock(&self.queue).busy -= 1;
            self.queue_cv.notify_all();
        }
    }

    /// Hashes path `p`'s pieces from its cursor on, for as long as they are in order. Each
    /// piece is taken under the lock and hashed outside it; the cursor is published after
    /// each, so a reader always judges its piece against the path's real progress.
    fn hash_path(&self, p: usize) {
        let entries = &self.snap.deferred[p].entries;
        let mut st = lock(&self.states[p]);
        loop {
            let (Some(hasher), Some(c)) = (st.hasher.take(), st.cur) else {
                st.queued = false;
                return;
            };
            let ((e, off), piece) = match st.pending.first_entry() {
                Some(entry) if *entry.key() <= c => entry.remove_entry(),
                _ => {
                    st.hasher = Some(hasher);
                    st.queued = false;
                    return;
                }
            };
            let mut nar = std::mem::take(&mut st.nar);
            drop(st);
            // Hashed outside the lock; a reader meanwhile judges its piece by the cursor
            // published before, which is at most this piece behind.
            let mut hasher = hasher;
            let cur = if e == c.0 && off + piece.bytes.len() as u64 > c.1 {
                feed(entries, &mut hasher, &mut nar, c, &piece.bytes, off)
            } else {
                Some(c)
            };
            self.release(std::iter::once(&piece));
            st = lock(&self.states[p]);
            if self.settle(&mut st, hasher, nar, cur).is_none() {
                return;
            }
        }
    }
}

/// Feeds `bytes` (of entry `e` from byte `off`, which is at or before the cursor `(e, co)` and
/// ends after it) to `hasher`; returns the new cursor, past the file's end when it is complete.
fn feed(
    entries: &[super::Entry],
    hasher: &mut Hasher,
    nar: &mut NarCursor,
    (e, co): (usize, u64),
    bytes: &[u8],
    off: u64,
) -> Option<(usize, u64)> {
    let skip = usize::try_from(co - off).unwrap_or(0);
    hasher.raw(&bytes[skip..]);
    let fed = off + bytes.len() as u64;
    if fed >= entries[e].file_size() {
        NarCursor::end_file(&entries[e], hasher);
        nar.next_file(entries, hasher).map(|i| (i, 0))
    } else {
        Some((e, fed))
    }
}

/// The end of what was received of a path in order: `at`, moved past the file's end to the
/// next file with contents, and past the pieces held in `pending` that continue it.
fn advance(
    entries: &[super::Entry],
    mut at: (usize, u64),
    pending: &BTreeMap<(usize, u64), Piece>,
) -> Option<(usize, u64)> {
    loop {
        if at.1 >= entries[at.0].file_size() {
            let next = (at.0 + 1..entries.len()).find(|&i| entries[i].file_size() > 0)?;
            at = (next, 0);
            continue;
        }
        match pending.range(..=at).next_back() {
            Some((&(e, off), piece)) if e == at.0 && off + piece.bytes.len() as u64 > at.1 => {
                at.1 = off + piece.bytes.len() as u64;
            }
            _ => return Some(at),
        }
    }
}

impl imagetool_blockio::HostReadTap for Witness {
    fn host_read(&self, path: &Path, offset: u64, bytes: &[u8]) {
        self.observe(path, offset, bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::nar::hash_path;
    use crate::scan::{Entry, EntryKind, scan};
    use std::path::PathBuf;

    /// A store of three paths of every shape: a tree, a single executable file, a symlink.
    fn store() -> (tempfile::TempDir, Vec<(PathBuf, Vec<Entry>)>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("aaa-tree");
        std::fs::create_dir_all(p.join("bin")).unwrap();
        std::fs::create_dir_all(p.join("share/doc/empty dir")).unwrap();
        std::fs::write(p.join("bin/empty"), b"").unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(p.join("bin/big"), &big).unwrap();
        for i in 0..2000 {
            let d = p.join(format!("share/doc/d{}", i % 7));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join(format!("f{i}")),
                format!("file {i} ").repeat(i % 300),
            )
            .unwrap();
        }
        std::fs::write(p.join("zz"), b"last").unwrap();
        std::os::unix::fs::symlink("bin/big", p.join("share/link")).unwrap();
        let exe = d.path().join("bbb-script");
        std::fs::write(&exe, b"#!/bin/sh\necho hi\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o555)).unwrap();
        let link = d.path().join("ccc-link");
        std::os::unix::fs::symlink("bbb-script", &link).unwrap();
        let paths = [p, exe, link]
            .into_iter()
            .map(|h| {
                let e = scan(&h).unwrap();
                (h, e)
            })
            .collect();
        (d, paths)
    }

    fn snapshot(paths: &[(PathBuf, Vec<Entry>)], corrupt: Option<usize>) -> Arc<Snapshot> {
        let mut s = Snapshot::default();
        for (i, (h, e)) in paths.iter().enumerate() {
            let (mut hash, size) = hash_path(h).unwrap();
            if corrupt == Some(i) {
                hash[0] ^= 1;
            }
            s.defer_hash(&h.display().to_string(), h, hash, size, e.clone());
        }
        Arc::new(s)
    }

    /// Every file's contents as pieces of at most `grain` bytes: (host, offset, bytes).
    fn pieces(paths: &[(PathBuf, Vec<Entry>)], grain: usize) -> Vec<(PathBuf, u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (_, entries) in paths {
            for e in entries {
                if let EntryKind::File { .. } = e.kind {
                    let data = std::fs::read(&e.host).unwrap();
                    for (k, c) in data.chunks(grain).enumerate() {
                        out.push((e.host.clone(), (k * grain) as u64, c.to_vec()));
                    }
                }
            }
        }
        out
    }

    /// A deterministic shuffle within windows of `w` pieces (as parallel grains arrive).
    fn shuffle_windows<T>(v: &mut [T], w: usize, seed: u64) {
        let mut x = seed | 1;
        for chunk in v.chunks_mut(w) {
            for i in (1..chunk.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.swap(i, (x % (i as u64 + 1)) as usize);
            }
        }
    }

    #[test]
    fn test_out_of_order_and_repeated_reads_are_hashed_as_one_read() {
        let (_d, paths) = store();
        for (grain, window, seed) in [
            (4096, 1, 1),
            (1000, 8, 2),
            (65536, 64, 3),
            (7, 500, 4),
            (512, 16, 5),
            (100, 4, 6),
        ] {
            let w = Witness::start(snapshot(&paths, None)).unwrap();
            let mut p = pieces(&paths, grain);
            shuffle_windows(&mut p, window, seed);
            // Four readers at once, each taking every fourth piece (as grains are shared out),
            // then a second output reading everything again.
            std::thread::scope(|s| {
                for k in 0..4 {
                    let (w, p) = (&w, &p);
                    s.spawn(move || {
                        p.iter()
                            .skip(k)
                            .step_by(4)
                            .for_each(|(h, o, b)| w.observe(h, *o, b));
                    });
                }
            });
            p.iter().for_each(|(h, o, b)| w.observe(h, *o, b));
            let r = w.finish(&AtomicBool::new(false)).unwrap();
            assert_eq!(
                (r.witnessed, r.reread),
                (3, 0),
                "grain {grain} window {window}"
            );
        }
    }

    #[test]
    fn test_unread_ranges_and_memory_limits_fall_back_to_a_read_of_their_own() {
        let (_d, paths) = store();
        // A hole: the first piece of the big file is never read.
        let w = Witness::start(snapshot(&paths, None)).unwrap();
        for (h, o, b) in pieces(&paths, 4096) {
            if !(h.ends_with("bin/big") && o == 0) {
                w.observe(&h, o, &b);
            }
        }
        let r = w.finish(&AtomicBool::new(false)).unwrap();
        // The tree is read again; the script and the symlink are witnessed.
        assert_eq!((r.witnessed, r.reread), (2, 1));
        // Everything backwards past a 64 KiB allowance for pieces read ahead.
        let w = Witness::with_limits(snapshot(&paths, None), (64 << 10, 64 << 10)).unwrap();
        let mut p = pieces(&paths, 4096);
        p.reverse();
        p.iter().for_each(|(h, o, b)| w.observe(h, *o, b));
        let r = w.finish(&AtomicBool::new(false)).unwrap();
        assert_eq!(r.reread, 1, "the tree's pieces exceed the allowance");
        assert_eq!(
            lock(&w.shared.budget).ahead,
            0,
            "every held byte is released"
        );
        // No pieces at all: nothing is witnessed but the symlink, whose NAR has no contents.
        let w = Witness::start(snapshot(&paths, None)).unwrap();
        let r = w.finish(&AtomicBool::new(false)).unwrap();
        assert_eq!((r.witnessed, r.reread), (1, 2));
    }

    #[test]
    fn test_a_mismatch_is_named_whichever_way_the_path_was_hashed() {
        let (_d, paths) = store();
        for read in [true, false] {
            let w = Witness::start(snapshot(&paths, Some(1))).unwrap();
            if read {
                pieces(&paths, 4096)
                    .iter()
                    .for_each(|(h, o, b)| w.observe(h, *o, b));
            }
            let e = w.finish(&AtomicBool::new(false)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt);
            assert!(e.to_string().contains("bbb-script"), "{e}");
        }
        // Bytes that differ from the files (what the image would hold) are caught too.
        let w = Witness::start(snapshot(&paths, None)).unwrap();
        for (h, o, mut b) in pieces(&paths, 4096) {
            if h.ends_with("zz") {
                b[0] ^= 0x20;
            }
            w.observe(&h, o, &b);
        }
        let e = w.finish(&AtomicBool::new(false)).unwrap_err();
        assert!(e.to_string().contains("aaa-tree"), "{e}");
    }
}
