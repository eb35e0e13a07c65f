//! Deterministic `newc` cpio archives (the format the Linux kernel unpacks as an initramfs,
//! `Documentation/driver-api/early-userspace/buffer-format.rst`), streamed: a member's data is
//! copied from its reader, never held in memory.
//!
//! Each member: the magic `070701`, 13 fields of 8 hex digits (ino, mode, uid, gid, nlink,
//! mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check), the
//! NUL-terminated name padded to 4 bytes, the data padded to 4 bytes; the archive ends with
//! `TRAILER!!!`. Inode numbers count from 1 in member order; owners, modes and times are the
//! caller's.

use std::io::{self, Read, Write};

use crate::tar::Meta;
use crate::{Error, Result};

/// Writes a newc archive to `W`.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    inner: W,
    written: u64,
    next_ino: u32,
}

/// The largest number a newc field holds.
const FIELD_MAX: u64 = 0xffff_ffff;

impl<W: Write> CpioWriter<W> {
    /// An archive writing to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            written: 0,
            next_ino: 1,
        }
    }

    fn put(&mut self, buf: &[u8], what: &str) -> Result<()> {
        self.inner
            .write_all(buf)
            .map_err(|e| Error::io(format!("cpio member {what}"), e))?;
        self.written += buf.len() as u64;
        Ok(())
    }

    fn pad(&mut self, what: &str) -> Result<()> {
        let pad = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..pad as usize], what)
    }

    fn header(&mut self, path: &str, type_bits: u32, meta: &Meta, size: u64) -> Result<()> {
        if path.is_empty() || path.starts_with('/') || path.contains('\0') {
            return Err(Error::invalid(
                format!("cpio member {path:?}"),
                "must be a relative path without NUL",
            ));
        }
        let too_big = |what: &str, v: u64| {
            Error::invalid(
                format!("cpio member {path}"),
                format!("{what} {v} does not fit newc's 32-bit field"),
            )
        };
        for (what, v) in [
            ("size", size),
            ("uid", meta.uid),
            ("gid", meta.gid),
            ("mtime", meta.mtime),
        ] {
            if v > FIELD_MAX {
                return Err(too_big(what, v));
            }
        }
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1);
        let fields = [
            u64::from(ino),
            u64::from(type_bits | (meta.mode & 0o7777)),
            meta.uid,
            meta.gid,
            if type_bits == 0o040_000 { 2 } else { 1 },
            meta.mtime,
            size,
            0,
            0,
            0,
            0,
            path.len() as u64 + 1,
            0,
        ];
        let mut h = String::with_capacity(110);
        h.push_str("070701");
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        self.put(h.as_bytes(), path)?;
        self.put(path.as_bytes(), path)?;
        self.put(&[0], path)?;
        self.pad(path)
    }

    /// Appends a directory.
    ///
    /// # Errors
    /// `InvalidInput` for a bad path or a value newc cannot hold; `Io` when writing fails.
    pub fn append_dir(&mut self, path: &str, meta: &Meta) -> Result<()> {
        self.header(path, 0o040_000, meta, 0)
    }

    /// Appends a regular file of exactly `size` bytes read from `data`.
    ///
    /// # Errors
    /// As [`CpioWriter::append_dir`]; `Io` when `data` has fewer or more than `size` bytes.
    pub fn append_file(
        &mut self,
        path: &str,
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<()> {
        self.header(path, 0o100_000, meta, size)?;
        let mut limited = data.take(size);
        let n = io::copy(&mut limited, &mut self.inner)
            .map_err(|e| Error::io(format!("cpio member {path}"), e))?;
        if n != size {
            return Err(Error::io(
                format!("cpio member {path}"),
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{n} bytes read, {size} expected: the file shrank while read"),
                ),
            ));
        }
        let mut probe = [0u8; 1];
        if limited.into_inner().read(&mut probe).map_err(|e| Error::io(path, e))? != 0 {
            return Err(Error::invalid(
                format!("cpio member {path}"),
                "the file grew while read",
            ));
        }
        self.written += size;
        self.pad(path)
    }

    /// Writes the trailer and returns the inner writer.
    ///
    /// # Errors
    /// `Io` when writing fails.
    pub fn finish(mut self) -> Result<W> {
        self.header("TRAILER!!!", 0, &Meta::file(0), 0)?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagetool_testutil::tools;

    fn archive() -> Vec<u8> {
        let m = |mode| Meta {
            mtime: 1_700_000_000,
            ..Meta::file(mode)
        };
        let mut c = CpioWriter::new(Vec::new());
        c.append_dir("d", &m(0o755)).unwrap();
        let body = vec![7u8; 5000];
        c.append_file("d/big", &m(0o444), 5000, &mut &body[..])
            .unwrap();
        c.append_file("top", &m(0o600), 3, &mut &b"abc"[..]).unwrap();
        c.finish().unwrap()
    }

    #[test]
    fn test_gnu_cpio_lists_and_extracts_it() {
        let bytes = archive();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(archive(), bytes, "deterministic");
        if !tools::require(&[tools::CPIO]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.cpio");
        std::fs::write(&f, &bytes).unwrap();
        let out = imagetool_testutil::command_ok(
            std::process::Command::new("cpio")
                .args(["-idv", "--no-absolute-filenames", "-F"])
                .arg(&f)
                .current_dir(dir.path()),
        );
        let listed = String::from_utf8_lossy(&out.stderr);
        assert!(listed.contains("d/big") && listed.contains("top"), "{listed}");
        assert_eq!(std::fs::read(dir.path().join("d/big")).unwrap(), vec![7u8; 5000]);
        assert_eq!(std::fs::read(dir.path().join("top")).unwrap(), b"abc");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("top")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600);
    }

    #[test]
    fn test_short_data_and_bad_paths_are_errors() {
        let mut c = CpioWriter::new(Vec::new());
        let e = c
            .append_file("x", &Meta::file(0o644), 10, &mut &b"abc"[..])
            .unwrap_err();
        assert!(e.to_string().contains("shrank"), "{e}");
        let mut c = CpioWriter::new(Vec::new());
        let e = c
            .append_file("x", &Meta::file(0o644), 1, &mut &b"abc"[..])
            .unwrap_err();
        assert!(e.to_string().contains("grew"), "{e}");
        let e = c.append_dir("/abs", &Meta::file(0o755)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
    }
}
