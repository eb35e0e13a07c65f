//! Deterministic tar archives in GNU format: files (from bytes, a host file or a range of a
//! positional reader), directories, symlinks and hard links with the mode, owner and time the
//! caller gives, and GNU sparse members (`tar -S --format=oldgnu`) for disk images.
//!
//! Long names use GNU `L`/`K` records (the `tar` crate writes those). Sparse members use the
//! old GNU sparse header (type `S`: four map entries in the header, 21 more per extension
//! block, `realsize` holding the file's length); the map lists the 4 KiB blocks of the source
//! that hold a non-zero byte, so it depends on the content alone, not on the host filesystem's
//! allocation.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use imagetool_blockio::{Extents, ReadAt, ZERO_BLOCK, is_zero};
use tar::{EntryType, Header};

use crate::{Error, Result};

/// An entry's mode, owner and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (and set-id/sticky bits).
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Owner name (empty: none).
    pub uname: String,
    /// Group name (empty: none).
    pub gname: String,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

impl Meta {
    /// A root-owned (`root:root`, 0:0) entry with `mode`, at time 0.
    #[must_use]
    pub fn file(mode: u32) -> Self {
        Self {
            mode,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: 0,
        }
    }
}

/// Where a file's bytes come from.
pub enum Data<'a> {
    /// In memory.
    Bytes(&'a [u8]),
    /// A host file (its length must not change while it is read).
    Host(PathBuf),
    /// `len` bytes of `src` from `offset`.
    Range {
        /// The reader.
        src: &'a dyn ReadAt,
        /// Where the bytes start.
        offset: u64,
        /// How many.
        len: u64,
    },
}

impl std::fmt::Debug for Data<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Data::Host(p) => write!(f, "Host({})", p.display()),
            Data::Range { offset, len, .. } => write!(f, "Range({offset}+{len})"),
        }
    }
}

/// What an entry is.
#[derive(Debug)]
pub enum Kind<'a> {
    /// A regular file.
    File(Data<'a>),
    /// A directory.
    Dir,
    /// A symbolic link to the target.
    Symlink(String),
    /// A hard link to an earlier entry's path.
    HardLink(String),
}

/// One archive member.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The path in the archive (relative, `/`-separated).
    pub path: String,
    /// What it is.
    pub kind: Kind<'a>,
    /// Its mode, owner and time.
    pub meta: Meta,
}

impl<'a> Entry<'a> {
    /// A regular file holding `data`.
    #[must_use]
    pub fn bytes(path: impl Into<String>, meta: Meta, data: &'a [u8]) -> Self {
        Self {
            path: path.into(),
            kind: Kind::File(Data::Bytes(data)),
            meta,
        }
    }
}

/// Writes a tar archive to `W`.
pub struct TarWriter<W: Write> {
    inner: tar::Builder<W>,
    ustar: bool,
}

impl<W: Write> std::fmt::Debug for TarWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TarWriter")
    }
}

/// A `Read` over a range of a positional reader.
struct RangeReader<'a> {
    src: &'a dyn ReadAt,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.src.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads exactly `len` bytes from `r`, failing if it ends early or has more.
struct Exact<R> {
    inner: R,
    left: u64,
    name: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!("{} grew while read", self.name)));
            }
            return Ok(0);
        }
        let want = (self.left).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while read", self.name),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn header(kind: EntryType, meta: &Meta, path: &str, ustar: bool) -> Result<Header> {
    let mut h = if ustar {
        Header::new_ustar()
    } else {
        Header::new_gnu()
    };
    h.set_entry_type(kind);
    h.set_mode(meta.mode);
    h.set_uid(meta.uid);
    h.set_gid(meta.gid);
    h.set_mtime(meta.mtime);
    h.set_username(&meta.uname)
        .map_err(|e| Error::invalid(format!("{path}: owner name"), e.to_string()))?;
    h.set_groupname(&meta.gname)
        .map_err(|e| Error::invalid(format!("{path}: group name"), e.to_string()))?;
    h.set_size(0);
    Ok(h)
}

fn check_path(path: &str) -> Result<()> {
    if path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|c| c == "..")
        || path.contains('\0')
    {
        return Err(Error::invalid(
            format!("tar entry {path:?}"),
            "must be a relative path without `..` or NUL",
        ));
    }
    Ok(())
}

/// The 12-byte numeric field GNU tar writes: octal, or base-256 when too large.
fn num12(field: &mut [u8; 12], v: u64) {
    if v < 0o777_7777_7777 {
        let s = format!("{v:011o}");
        field[..11].copy_from_slice(s.as_bytes());
        field[11] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        field[4..].copy_from_slice(&v.to_be_bytes());
    }
}

/// The data map of a sparse member: `(offset, len)` of the non-zero 4 KiB blocks, merged.
fn sparse_map<S: ReadAt + Extents + ?Sized>(src: &S, name: &str) -> Result<Vec<(u64, u64)>> {
    let size = src.size();
    let extents = src
        .data_extents()
        .map_err(|e| Error::io(format!("{name}: extents"), e))?;
    let zb = ZERO_BLOCK as u64;
    let mut map: Vec<(u64, u64)> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for ext in extents {
        let mut pos = ext.start / zb * zb;
        let end = ext.end.min(size);
        while pos < end {
            let n = (end.div_ceil(zb) * zb)
                .min(size)
                .min(pos + buf.len() as u64)
                - pos;
            let chunk = &mut buf[..n as usize];
            src.read_exact_at(chunk, pos)
                .map_err(|e| Error::io(format!("{name} (reading at byte {pos})"), e))?;
            for (i, block) in chunk.chunks(ZERO_BLOCK).enumerate() {
                if is_zero(block) {
                    continue;
                }
                let off = pos + (i * ZERO_BLOCK) as u64;
                let len = block.len() as u64;
                match map.last_mut() {
                    Some(last) if last.0 + last.1 == off => last.1 += len,
                    Some(last) if last.0 + last.1 > off => {}
                    _ => map.push((off, len)),
                }
            }
            pos += n;
        }
    }
    // GNU tar ends the map with the file's end when it ends in a hole.
    if map.last().is_none_or(|(o, l)| o + l < size) {
        map.push((size, 0));
    }
    Ok(map)
}

impl<W: Write> TarWriter<W> {
    /// A GNU-format archive writing to `inner`.
    pub fn new(inner: W) -> Self {
        let mut b = tar::Builder::new(inner);
        b.mode(tar::HeaderMode::Deterministic);
        b.follow_symlinks(false);
        Self {
            inner: b,
            ustar: false,
        }
    }

    /// A POSIX ustar archive (what OVF requires of an OVA) writing to `inner`. Names longer
    /// than ustar holds still get GNU long-name records; sparse members are GNU.
    pub fn ustar(inner: W) -> Self {
        Self {
            ustar: true,
            ..Self::new(inner)
        }
    }

    /// Appends one entry.
    ///
    /// # Errors
    /// `InvalidInput` for a path that is absolute or has `..`, or names tar cannot hold; `Io`
    /// naming the entry for read or write failures.
    pub fn append(&mut self, entry: &Entry<'_>) -> Result<()> {
        let path = entry.path.as_str();
        check_path(path)?;
        let io_err = |e: io::Error| Error::io(format!("tar entry {path}"), e);
        match &entry.kind {
            Kind::Dir => {
                let mut h = header(EntryType::Directory, &entry.meta, path, self.ustar)?;
                self.inner
                    .append_data(&mut h, path, io::empty())
                    .map_err(io_err)
            }
            Kind::Symlink(target) | Kind::HardLink(target) => {
                let t = if matches!(entry.kind, Kind::Symlink(_)) {
                    EntryType::Symlink
                } else {
                    EntryType::Link
                };
                let mut h = header(t, &entry.meta, path, self.ustar)?;
                self.inner.append_link(&mut h, path, target).map_err(io_err)
            }
            Kind::File(data) => {
                let mut h = header(EntryType::Regular, &entry.meta, path, self.ustar)?;
                match data {
                    Data::Bytes(b) => {
                        h.set_size(b.len() as u64);
                        self.inner.append_data(&mut h, path, *b).map_err(io_err)
                    }
                    Data::Host(p) => {
                        let f =
                            imagetool_blockio::open_regular(p).map_err(|e| Error::at_path(p, e))?;
                        let len = f.metadata().map_err(|e| Error::at_path(p, e))?.len();
                        h.set_size(len);
                        let r = Exact {
                            inner: f,
                            left: len,
                            name: p.display().to_string(),
                        };
                        self.inner.append_data(&mut h, path, r).map_err(io_err)
                    }
                    Data::Range { src, offset, len } => {
                        let end = offset.checked_add(*len).filter(|e| *e <= src.size());
                        let Some(end) = end else {
                            return Err(Error::invalid(
                                format!("tar entry {path}"),
                                format!("range {offset}+{len} outside the source"),
                            ));
                        };
                        h.set_size(*len);
                        let r = RangeReader {
                            src: *src,
                            pos: *offset,
                            end,
                        };
                        self.inner.append_data(&mut h, path, r).map_err(io_err)
                    }
                }
            }
        }
    }

    /// Appends `src` as a GNU sparse file (`tar -S --format=oldgnu`): only its non-zero 4 KiB
    /// blocks are stored. `path` must fit the 100-byte name field.
    ///
    /// # Errors
    /// `InvalidInput` for a bad or too long path; `Io` for read or write failures.
    pub fn append_sparse<S: ReadAt + Extents + ?Sized>(
        &mut self,
        path: &str,
        meta: &Meta,
        src: &S,
    ) -> Result<()> {
        check_path(path)?;
        if path.len() > 99 {
            return Err(Error::invalid(
                format!("tar entry {path:?}"),
                "a sparse member's name must be shorter than 100 bytes",
            ));
        }
        let map = sparse_map(src, path)?;
        let stored: u64 = map.iter().map(|(_, l)| l).sum();
        let mut h = header(EntryType::GNUSparse, meta, path, false)?;
        h.set_size(stored);
        {
            let g = h
                .as_gnu_mut()
                .ok_or_else(|| Error::invalid(path, "not a GNU header"))?;
            g.name[..path.len()].copy_from_slice(path.as_bytes());
            for (slot, (off, len)) in g.sparse.iter_mut().zip(&map) {
                num12(&mut slot.offset, *off);
                num12(&mut slot.numbytes, *len);
            }
            g.isextended[0] = u8::from(map.len() > 4);
            num12(&mut g.realsize, src.size());
        }
        h.set_cksum();
        let io_err = |e: io::Error| Error::io(format!("tar entry {path}"), e);
        let w = self.inner.get_mut();
        w.write_all(h.as_bytes()).map_err(io_err)?;
        // Extension blocks: 21 entries each, the last byte-504 flag says whether another follows.
        let rest: Vec<_> = map.iter().skip(4).collect();
        let chunks: Vec<_> = rest.chunks(21).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut block = [0u8; 512];
            for (j, (off, len)) in chunk.iter().enumerate() {
                let base = j * 24;
                let mut f = [0u8; 12];
                num12(&mut f, *off);
                block[base..base + 12].copy_from_slice(&f);
                num12(&mut f, *len);
                block[base + 12..base + 24].copy_from_slice(&f);
            }
            block[504] = u8::from(i + 1 < chunks.len());
            w.write_all(&block).map_err(io_err)?;
        }
        let mut buf = vec![0u8; 1 << 20];
        for (off, len) in &map {
            let mut pos = *off;
            let end = off + len;
            while pos < end {
                let n = (end - pos).min(buf.len() as u64) as usize;
                src.read_exact_at(&mut buf[..n], pos)
                    .map_err(|e| Error::io(format!("{path} (reading at byte {pos})"), e))?;
                w.write_all(&buf[..n]).map_err(io_err)?;
                pos += n as u64;
            }
        }
        let pad = (512 - stored % 512) % 512;
        w.write_all(&vec![0u8; pad as usize]).map_err(io_err)?;
        Ok(())
    }

    /// Writes the end-of-archive blocks and returns the inner writer.
    ///
    /// # Errors
    /// `Io` when writing fails.
    pub fn finish(self) -> Result<W> {
        self.inner
            .into_inner()
            .map_err(|e| Error::io("tar end of archive", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagetool_blockio::MemImage;
    use imagetool_testutil::tools;

    fn disk() -> MemImage {
        let size = 3 * (1 << 20) + 8192;
        let m = MemImage::new(size);
        let mut data = vec![0u8; size as usize];
        // Many scattered blocks: more than 4 + 21 map entries, and a hole at the end.
        for i in 0..60u64 {
            let off = (i * 40_960 + 512) as usize;
            data[off..off + 700].fill((i + 1) as u8);
        }
        imagetool_blockio::WriteAt::write_all_at(&m, &data, 0).unwrap();
        m
    }

    #[test]
    fn test_sparse_member_unpacks_with_gnu_tar() {
        if !tools::require(&[tools::TAR]) {
            return;
        }
        let src = disk();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        let mut t = TarWriter::new(std::fs::File::create(&archive).unwrap());
        let meta = Meta {
            mtime: 1_700_000_000,
            ..Meta::file(0o644)
        };
        t.append_sparse("disk.raw", &meta, &src).unwrap();
        t.append(&Entry::bytes("note.txt", meta.clone(), b"hi\n"))
            .unwrap();
        t.finish().unwrap();
        let list = imagetool_testutil::run_ok(tools::TAR, &["-tvf".as_ref(), archive.as_os_str()]);
        assert!(list.stdout.contains("disk.raw"), "{list}");
        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        imagetool_testutil::run_ok(
            tools::TAR,
            &[
                "-xSf".as_ref(),
                archive.as_os_str(),
                "-C".as_ref(),
                out.as_os_str(),
            ],
        );
        let back = std::fs::read(out.join("disk.raw")).unwrap();
        let mut want = vec![0u8; src.size() as usize];
        src.read_exact_at(&mut want, 0).unwrap();
        assert!(back == want);
        assert_eq!(std::fs::read(out.join("note.txt")).unwrap(), b"hi\n");
    }

    #[test]
    fn test_entries_of_every_kind_round_trip_through_gnu_tar() {
        if !tools::require(&[tools::TAR]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        std::fs::write(&host, b"from the host").unwrap();
        let src = disk();
        let archive = dir.path().join("b.tar");
        let mut t = TarWriter::new(std::fs::File::create(&archive).unwrap());
        let m = |mode| Meta {
            mtime: 42,
            uid: 1000,
            gid: 100,
            uname: "u".into(),
            gname: "users".into(),
            mode,
        };
        let long = format!("d/{}", "n".repeat(150));
        for e in [
            Entry {
                path: "d".into(),
                kind: Kind::Dir,
                meta: m(0o755),
            },
            Entry {
                path: long.clone(),
                kind: Kind::File(Data::Host(host.clone())),
                meta: m(0o600),
            },
            Entry {
                path: "d/range".into(),
                kind: Kind::File(Data::Range {
                    src: &src,
                    offset: 512,
                    len: 700,
                }),
                meta: m(0o644),
            },
            Entry {
                path: "d/link".into(),
                kind: Kind::Symlink("range".into()),
                meta: m(0o777),
            },
            Entry {
                path: "d/hard".into(),
                kind: Kind::HardLink("d/range".into()),
                meta: m(0o644),
            },
        ] {
            t.append(&e).unwrap();
        }
        t.finish().unwrap();
        let list = imagetool_testutil::run_ok(
            tools::TAR,
            &[
                "--numeric-owner".as_ref(),
                "-tvf".as_ref(),
                archive.as_os_str(),
            ],
        );
        for want in [
            "drwxr-xr-x 1000/100",
            "-rw------- 1000/100",
            "lrwxrwxrwx 1000/100",
            "d/link -> range",
            "d/hard link to d/range",
            "1970-01-01 00:00",
        ] {
            assert!(list.stdout.contains(want), "{want}: {list}");
        }
        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        imagetool_testutil::run_ok(
            tools::TAR,
            &[
                "-xf".as_ref(),
                archive.as_os_str(),
                "-C".as_ref(),
                out.as_os_str(),
            ],
        );
        assert_eq!(std::fs::read(out.join(&long)).unwrap(), b"from the host");
        assert_eq!(std::fs::read(out.join("d/range")).unwrap(), vec![1u8; 700]);
        // Two archives of the same entries are identical.
        let again = dir.path().join("c.tar");
        let mut t = TarWriter::new(std::fs::File::create(&again).unwrap());
        t.append_sparse("disk.raw", &m(0o644), &src).unwrap();
        t.finish().unwrap();
        let mut t = TarWriter::new(Vec::new());
        t.append_sparse("disk.raw", &m(0o644), &src).unwrap();
        assert_eq!(t.finish().unwrap(), std::fs::read(&again).unwrap());
    }

    #[test]
    fn test_bad_paths_are_refused() {
        let mut t = TarWriter::new(Vec::new());
        for p in ["/etc/x", "a/../b", ""] {
            let e = t
                .append(&Entry::bytes(p, Meta::file(0o644), b""))
                .unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{p}");
        }
        let e = t
            .append_sparse(&"x".repeat(120), &Meta::file(0o644), &disk())
            .unwrap_err();
        assert!(e.to_string().contains("shorter than 100"), "{e}");
    }
}
