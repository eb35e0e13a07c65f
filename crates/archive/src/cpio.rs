//! Deterministic `newc` cpio archives (the format the Linux kernel unpacks as an initramfs,
//! `Documentation/driver-api/early-userspace/buffer-format.rst`), streamed: a member's data is
//! copied from its reader, never held in memory.
//!
//! The headers and padding are the `cpio` crate's (`cpio::newc`); this wrapper numbers the
//! inodes from 1 in member order, takes owners, modes and times from the caller, checks that
//! every value fits newc's 32-bit fields and that a member's reader yields exactly its size
//! (the crate would leave the padding out otherwise), and ends with `TRAILER!!!`.

use std::io::{self, Read, Write};

use cpio::newc::{Builder, ModeFileType};

use crate::tar::Meta;
use crate::{Error, Result};

/// Writes a newc archive to `W`.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    inner: W,
    next_ino: u32,
}

fn field(path: &str, what: &str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::invalid(
            format!("cpio member {path}"),
            format!("{what} {v} does not fit newc's 32-bit field"),
        )
    })
}

impl<W: Write> CpioWriter<W> {
    /// An archive writing to `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, next_ino: 1 }
    }

    fn builder(&mut self, path: &str, meta: &Meta) -> Result<Builder> {
        if path.is_empty() || path.starts_with('/') || path.contains('\0') {
            return Err(Error::invalid(
                format!("cpio member {path:?}"),
                "must be a relative path without NUL",
            ));
        }
        let b = Builder::new(path)
            .ino(self.next_ino)
            .mode(meta.mode & 0o7777)
            .uid(field(path, "uid", meta.uid)?)
            .gid(field(path, "gid", meta.gid)?)
            .mtime(field(path, "mtime", meta.mtime)?);
        self.next_ino = self.next_ino.wrapping_add(1);
        Ok(b)
    }

    /// Appends a directory.
    ///
    /// # Errors
    /// `InvalidInput` for a bad path or a value newc cannot hold; `Io` when writing fails.
    pub fn append_dir(&mut self, path: &str, meta: &Meta) -> Result<()> {
        let b = self
            .builder(path, meta)?
            .nlink(2)
            .set_mode_file_type(ModeFileType::Directory);
        b.write(&mut self.inner, 0)
            .finish()
            .map_err(|e| Error::io(format!("cpio member {path}"), e))?;
        Ok(())
    }

    /// Appends a regular file of exactly `size` bytes read from `data`.
    ///
    /// # Errors
    /// As [`CpioWriter::append_dir`]; `Io` when `data` has fewer bytes than `size`,
    /// `InvalidInput` when it has more.
    pub fn append_file(
        &mut self,
        path: &str,
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<()> {
        let len = field(path, "size", size)?;
        let b = self
            .builder(path, meta)?
            .set_mode_file_type(ModeFileType::Regular);
        let err = |e| Error::io(format!("cpio member {path}"), e);
        let mut w = b.write(&mut self.inner, len);
        let mut limited = data.take(size);
        let n = io::copy(&mut limited, &mut w).map_err(err)?;
        if n != size {
            return Err(err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{n} bytes read, {size} expected: the file shrank while read"),
            )));
        }
        let mut probe = [0u8; 1];
        if limited.into_inner().read(&mut probe).map_err(err)? != 0 {
            return Err(Error::invalid(
                format!("cpio member {path}"),
                "the file grew while read",
            ));
        }
        w.finish().map_err(err)?;
        Ok(())
    }

    /// Writes the trailer and returns the inner writer.
    ///
    /// # Errors
    /// `Io` when writing fails.
    pub fn finish(self) -> Result<W> {
        cpio::newc::trailer(self.inner).map_err(|e| Error::io("cpio trailer", e))
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
        c.append_file("top", &m(0o600), 3, &mut &b"abc"[..])
            .unwrap();
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
        assert!(
            listed.contains("d/big") && listed.contains("top"),
            "{listed}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("d/big")).unwrap(),
            vec![7u8; 5000]
        );
        assert_eq!(std::fs::read(dir.path().join("top")).unwrap(), b"abc");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("top"))
            .unwrap()
            .permissions()
            .mode();
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
