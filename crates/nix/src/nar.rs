//! NAR ("Nix ARchive") serialisation of a host directory tree, streaming into any `io::Write`.
//!
//! The format (Eelco Dolstra's thesis, fig. 5.2; `src/libutil/archive.cc` in Nix): every token is
//! a string written as its length (u64, little-endian) and its bytes padded with zeros to a
//! multiple of 8.
//!
//! ```text
//! nar       = "nix-archive-1" node
//! node      = "(" "type" ( "regular" ["executable" ""] "contents" bytes
//!                        | "symlink" "target" bytes
//!                        | "directory" { "entry" "(" "name" bytes "node" node ")" } ) ")"
//! ```
//! Directory entries come in byte order of their names. A regular file is executable when its
//! owner-execute bit is set; nothing else of its metadata is recorded.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, ErrorKind, Result};

/// The NAR magic, the first string of every archive.
pub const NAR_MAGIC: &str = "nix-archive-1";

/// Size of the buffer file contents are copied through.
const COPY_BUF: usize = 256 * 1024;

/// Writes the NAR serialisation of the file, symlink or directory at `path` into `out`.
///
/// File contents are streamed through a fixed buffer, so memory use does not grow with file
/// size. A file whose length changes while it is read is an error.
///
/// # Errors
/// [`ErrorKind::Io`] on any read or write error (naming the path),
/// [`ErrorKind::Unsupported`] for device nodes, FIFOs and sockets.
pub fn dump_path<W: Write + ?Sized>(path: &Path, out: &mut W) -> Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    write_str(out, NAR_MAGIC.as_bytes()).map_err(|e| Error::io(path, e))?;
    dump_node(path, out, &mut buf)
}

/// Returns the sha256 and size of the NAR serialisation of `path`, without keeping it.
///
/// # Errors
/// As [`dump_path`].
pub fn hash_path(path: &Path) -> Result<([u8; 32], u64)> {
    let mut sink = HashSink::new();
    dump_path(path, &mut sink)?;
    Ok(sink.finish())
}

fn dump_node<W: Write + ?Sized>(path: &Path, out: &mut W, buf: &mut [u8]) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    let ft = meta.file_type();
    let io_err = |e| Error::io(path, e);
    write_str(out, b"(").map_err(io_err)?;
    write_str(out, b"type").map_err(io_err)?;
    if ft.is_file() {
        write_str(out, b"regular").map_err(io_err)?;
        if meta.permissions().mode() & 0o100 != 0 {
            write_str(out, b"executable").map_err(io_err)?;
            write_str(out, b"").map_err(io_err)?;
        }
        write_str(out, b"contents").map_err(io_err)?;
        let len = meta.len();
        out.write_all(&len.to_le_bytes()).map_err(io_err)?;
        let mut file = imagetool_blockio::open_regular(path).map_err(io_err)?;
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = file.read(&mut buf[..want]).map_err(io_err)?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("file shrank while it was read ({left} bytes missing)"),
                )
                .with_path(path));
            }
            out.write_all(&buf[..n]).map_err(io_err)?;
            left -= n as u64;
        }
        if file.read(&mut buf[..1]).map_err(io_err)? != 0 {
            return Err(Error::new(ErrorKind::Io, "file grew while it was read").with_path(path));
        }
        write_padding(out, len).map_err(io_err)?;
    } else if ft.is_symlink() {
        write_str(out, b"symlink").map_err(io_err)?;
        write_str(out, b"target").map_err(io_err)?;
        let target = fs::read_link(path).map_err(io_err)?;
        write_str(out, target.as_os_str().as_bytes()).map_err(io_err)?;
    } else if ft.is_dir() {
        write_str(out, b"directory").map_err(io_err)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(io_err)? {
            names.push(entry.map_err(io_err)?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            write_str(out, b"entry").map_err(io_err)?;
            write_str(out, b"(").map_err(io_err)?;
            write_str(out, b"name").map_err(io_err)?;
            write_str(out, name.as_bytes()).map_err(io_err)?;
            write_str(out, b"node").map_err(io_err)?;
            dump_node(&path.join(&name), out, buf)?;
            write_str(out, b")").map_err(io_err)?;
        }
    } else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "NAR cannot hold device nodes, FIFOs or sockets",
        )
        .with_path(path));
    }
    write_str(out, b")").map_err(io_err)
}

pub(crate) fn write_str<W: Write + ?Sized>(out: &mut W, s: &[u8]) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s)?;
    write_padding(out, s.len() as u64)
}

pub(crate) fn write_padding<W: Write + ?Sized>(out: &mut W, len: u64) -> io::Result<()> {
    let pad = ((8 - len % 8) % 8) as usize;
    out.write_all(&[0u8; 8][..pad])
}

/// An `io::Write` that only hashes (sha256) and counts what is written to it.
#[derive(Debug, Clone, Default)]
pub struct HashSink {
    hasher: Sha256,
    len: u64,
}

impl HashSink {
    /// A fresh sink.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The sha256 and the number of bytes written.
    #[must_use]
    pub fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.len)
    }
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes everything to two sinks (for hashing and scanning a NAR in one pass).
#[derive(Debug)]
pub struct TeeSink<A, B> {
    /// The first sink.
    pub a: A,
    /// The second sink.
    pub b: B,
}

impl<A: Write, B: Write> Write for TeeSink<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.a.write_all(buf)?;
        self.b.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
}

/// Hashes a stream "modulo" a self-reference, as Nix's `HashModuloSink` does for
/// content-addressed paths that refer to themselves: every occurrence of `modulus` (the
/// temporary hash part the content was built under) is replaced by as many NUL bytes before
/// hashing, and the stream offsets of the occurrences are appended as `|<offset>` (decimal)
/// after the data.
#[derive(Debug)]
pub struct HashModuloSink {
    modulus: Vec<u8>,
    hasher: Sha256,
    /// Bytes not yet hashed: fewer than `modulus.len()`, since they may begin an occurrence.
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    pos: u64,
    matches: Vec<u64>,
}

impl HashModuloSink {
    /// A sink hashing modulo `modulus` (must not be empty).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty modulus.
    pub fn new(modulus: &[u8]) -> Result<Self> {
        if modulus.is_empty() {
            return Err(Error::new(ErrorKind::InvalidInput, "empty hash modulus"));
        }
        Ok(Self {
            modulus: modulus.to_vec(),
            hasher: Sha256::new(),
            pending: Vec::new(),
            pos: 0,
            matches: Vec::new(),
        })
    }

    /// The hash and the stream offsets at which the modulus occurred.
    #[must_use]
    pub fn finish(mut self) -> ([u8; 32], Vec<u64>) {
        self.hasher.update(&self.pending);
        for m in &self.matches {
            self.hasher.update(format!("|{m}").as_bytes());
        }
        (self.hasher.finalize().into(), self.matches)
    }
}

impl Write for HashModuloSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let m = self.modulus.len();
        let mut j = 0;
        while let Some(at) = find(&self.pending[j..], &self.modulus) {
            let start = j + at;
            self.matches.push(self.pos + start as u64);
            self.pending[start..start + m].fill(0);
            j = start + m;
        }
        let keep = (m - 1).min(self.pending.len());
        let consumed = self.pending.len() - keep;
        self.hasher.update(&self.pending[..consumed]);
        self.pending.drain(..consumed);
        self.pos += consumed as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A NAR string: its length (u64 LE), the bytes, zero padding to 8 (the format's spec,
    /// written out independently of the writer under test).
    fn str_token(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s);
        v.resize(v.len() + (8 - s.len() % 8) % 8, 0);
        v
    }

    /// The concatenated string tokens.
    fn tokens(ts: &[&[u8]]) -> Vec<u8> {
        ts.iter().flat_map(|t| str_token(t)).collect()
    }

    /// The NAR of a one-file tree holding `contents` with permission bits `mode`.
    fn nar_of_file(contents: &[u8], mode: u32) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, contents).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        let mut nar = Vec::new();
        dump_path(&f, &mut nar).unwrap();
        nar
    }

    #[test]
    fn test_dump_regular_file_golden_tokens() {
        let want = tokens(&[
            b"nix-archive-1",
            b"(",
            b"type",
            b"regular",
            b"contents",
            b"hello",
            b")",
        ]);
        assert_eq!(nar_of_file(b"hello", 0o644), want);
    }

    #[test]
    fn test_dump_executable_flag_from_owner_exec_bit() {
        let want = tokens(&[
            b"nix-archive-1",
            b"(",
            b"type",
            b"regular",
            b"executable",
            b"",
            b"contents",
            b"",
            b")",
        ]);
        assert_eq!(nar_of_file(b"", 0o100), want);
    }

    #[test]
    fn test_dump_directory_entries_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        fs::create_dir(&d).unwrap();
        symlink("target", d.join("b")).unwrap();
        symlink("t2", d.join("B")).unwrap();
        let mut nar = Vec::new();
        dump_path(&d, &mut nar).unwrap();
        let mut want = tokens(&[b"nix-archive-1", b"(", b"type", b"directory"]);
        for (name, target) in [(&b"B"[..], &b"t2"[..]), (b"b", b"target")] {
            want.extend(tokens(&[
                b"entry", b"(", b"name", name, b"node", b"(", b"type", b"symlink", b"target",
                target, b")", b")",
            ]));
        }
        want.extend(str_token(b")"));
        assert_eq!(nar, want);
        assert_eq!(hash_path(&d).unwrap().1, nar.len() as u64);
    }

    #[test]
    fn test_dump_fifo_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&p).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("skipped: mkfifo not available");
            return;
        }
        let err = hash_path(&p).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(err.path(), Some(p.as_path()));
    }

    #[test]
    fn test_hash_modulo_independent_of_modulus_and_chunking() {
        let a = b"xxAAAAyyAAAAzzAA".to_vec();
        let b = b"xxBBBByyBBBBzzAA".to_vec();
        let mut sa = HashModuloSink::new(b"AAAA").unwrap();
        sa.write_all(&a).unwrap();
        let (ha, ma) = sa.finish();
        let mut sb = HashModuloSink::new(b"BBBB").unwrap();
        for chunk in b.chunks(3) {
            sb.write_all(chunk).unwrap();
        }
        let (hb, mb) = sb.finish();
        assert_eq!(ma, vec![2, 8]);
        assert_eq!(ma, mb);
        assert_eq!(ha, hb);
        let mut want = b"xx\0\0\0\0yy\0\0\0\0zzAA".to_vec();
        want.extend_from_slice(b"|2|8");
        assert_eq!(ha, crate::sha256(&want));
    }
}
