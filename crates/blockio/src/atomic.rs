//! Outputs that appear only when complete, and that nobody else can redirect.
//!
//! An output is written into an *unnamed* file (`O_TMPFILE`) in the target directory where the
//! filesystem allows it: it has no name until [`AtomicFile::commit`] links it into place, so a
//! crash, a `SIGKILL` or a failed build leaves nothing at all, and there is no name for anyone
//! to plant a symlink on. Where the filesystem has no `O_TMPFILE` (some network and FUSE
//! filesystems), the temporary is created under a random hidden name with `O_EXCL |
//! O_NOFOLLOW` (never through a symlink, never an existing file) and renamed into place.
//!
//! Every name is resolved relative to the target directory opened once, so the directory cannot
//! be swapped between creation and commit.
//!
//! An existing output that is not a regular file (a device, a FIFO, a socket, a directory, or a
//! symlink to one of those) is refused: imagetool never deletes a device node or a pipe to put a
//! file in its place. [`OutputMode::Device`] is the explicit opt-in to write an existing block
//! or character device in place (no temporary, no rename).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

/// How an output is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputMode {
    /// A new regular file, linked into place on commit; an existing regular file (or a symlink
    /// to one: the link itself is replaced, never its target) is replaced; anything else is
    /// refused.
    #[default]
    Replace,
    /// The output must be an existing block or character device, written in place: there is
    /// no temporary and no rename, so a failed or cancelled write leaves the device partly
    /// written (its previous contents are lost either way).
    Device,
}

/// Where the data goes until commit.
#[derive(Debug)]
enum Temp {
    /// An `O_TMPFILE`: no name at all.
    Unnamed,
    /// A hidden name in the target directory (the fallback, or an unnamed file linked under a
    /// temporary name during [`AtomicFile::commit_all`]).
    Named(OsString),
    /// The device itself.
    Device,
}

/// An output file that appears at its final path only on [`AtomicFile::commit`]. Dropped
/// without a commit it leaves nothing behind.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    /// The target directory, opened once.
    dir: Option<OwnedFd>,
    /// The final name in `dir`.
    name: OsString,
    temp: Temp,
    dest: PathBuf,
}

fn named(e: impl Into<io::Error>, dest: &Path) -> io::Error {
    let e = e.into();
    io::Error::new(e.kind(), format!("{}: {e}", dest.display()))
}

fn refuse(dest: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {why}", dest.display()),
    )
}

/// What a file type is called in messages.
fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::BlockDevice => "a block device",
        FileType::CharacterDevice => "a character device",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::RegularFile => "a regular file",
        _ => "a special file",
    }
}

/// A fresh hidden name for a temporary beside `name`: random, so it cannot be predicted.
fn temp_name(name: &OsStr) -> OsString {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let mut s = OsString::from(".");
    // Keep the name short enough for NAME_MAX with the suffix.
    let bytes = name.as_bytes();
    s.push(OsStr::from_bytes(&bytes[..bytes.len().min(200)]));
    s.push(format!(".imagetool-{:016x}.tmp", h.finish()));
    s
}

/// The permission bits of a new output (the umask applies).
fn new_mode() -> Mode {
    Mode::from_bits_truncate(0o666)
}

impl AtomicFile {
    /// Creates the output for `dest` with [`OutputMode::Replace`].
    ///
    /// # Errors
    /// As [`AtomicFile::create_with`].
    pub fn create(dest: &Path) -> io::Result<Self> {
        Self::create_with(dest, OutputMode::Replace)
    }

    /// Creates the output for `dest`.
    ///
    /// # Errors
    /// `InvalidInput` when `dest` exists and is not what `mode` writes (a device, FIFO, socket
    /// or directory for [`OutputMode::Replace`]; anything but a device for
    /// [`OutputMode::Device`]) or has no file name; any error opening the directory or
    /// creating the file (a missing or read-only directory). Messages name `dest`.
    pub fn create_with(dest: &Path, mode: OutputMode) -> io::Result<Self> {
        if mode == OutputMode::Device {
            return Self::open_device(dest);
        }
        let name = dest
            .file_name()
            .ok_or_else(|| refuse(dest, "output path has no file name"))?
            .to_os_string();
        let dir_path = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = rustix::fs::open(
            dir_path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| named(e, dest))?;
        check_replaceable(&dir, &name, dest)?;
        let rw = OFlags::RDWR | OFlags::CLOEXEC;
        let (fd, temp) = match rustix::fs::openat(&dir, ".", rw | OFlags::TMPFILE, new_mode()) {
            Ok(fd) => (fd, Temp::Unnamed),
            // No O_TMPFILE here (old kernel, FUSE, NFS, overlay on some kernels).
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {
                create_named(&dir, &name, dest)?
            }
            Err(e) => return Err(named(e, dest)),
        };
        Ok(Self {
            file: Some(File::from(fd)),
            dir: Some(dir),
            name,
            temp,
            dest: dest.to_path_buf(),
        })
    }

    fn open_device(dest: &Path) -> io::Result<Self> {
        // No O_CREAT: a missing device is an error, never a new regular file. Symlinks are
        // followed (/dev/disk/by-id/…): naming a device is the caller's explicit choice.
        let fd = rustix::fs::open(dest, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| named(e, dest))?;
        let t =
            FileType::from_raw_mode(rustix::fs::fstat(&fd).map_err(|e| named(e, dest))?.st_mode);
        if !matches!(t, FileType::BlockDevice | FileType::CharacterDevice) {
            return Err(refuse(
                dest,
                &format!(
                    "is {}, not a device (writing a device in place was asked for)",
                    type_name(t)
                ),
            ));
        }
        Ok(Self {
            file: Some(File::from(fd)),
            dir: None,
            name: OsString::new(),
            temp: Temp::Device,
            dest: dest.to_path_buf(),
        })
    }

    /// The open output (the unnamed or temporary file, or the device).
    ///
    /// # Panics
    /// Never: the file is only taken by [`AtomicFile::commit`], which consumes `self`.
    #[must_use]
    pub fn file(&self) -> &File {
        // `file` is only taken by `commit`, which consumes `self`.
        self.file.as_ref().expect("file present until commit")
    }

    /// A second handle to the output (for a backing that owns its file).
    ///
    /// # Errors
    /// Any error duplicating the descriptor.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file().try_clone()
    }

    /// The final path.
    #[must_use]
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Whether this output writes a device in place ([`OutputMode::Device`]).
    #[must_use]
    pub fn is_device(&self) -> bool {
        matches!(self.temp, Temp::Device)
    }

    /// Whether the output has no name until commit (`O_TMPFILE`).
    #[must_use]
    pub fn is_unnamed(&self) -> bool {
        matches!(self.temp, Temp::Unnamed)
    }

    /// For a device output: checks that the device holds `len` bytes and zeroes them, so the
    /// holes a sparse writer leaves read as zeros (`fallocate` `ZERO_RANGE` where the device
    /// supports it, else zeros written). For a file output: nothing (a new file is all holes).
    ///
    /// # Errors
    /// `InvalidInput` when the device is smaller than `len`; any I/O error; messages name the
    /// device.
    pub fn prepare_len(&self, len: u64) -> io::Result<()> {
        if !self.is_device() {
            return Ok(());
        }
        let f = self.file();
        let cap =
            rustix::fs::seek(f, rustix::fs::SeekFrom::End(0)).map_err(|e| named(e, &self.dest))?;
        if cap < len {
            return Err(refuse(
                &self.dest,
                &format!("the device holds {cap} bytes, the image needs {len}"),
            ));
        }
        use rustix::fs::FallocateFlags as F;
        if len == 0 || rustix::fs::fallocate(f, F::ZERO_RANGE | F::KEEP_SIZE, 0, len).is_ok() {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let zeros = vec![0u8; crate::COPY_CHUNK];
        let mut off = 0;
        while off < len {
            let n = (len - off).min(zeros.len() as u64) as usize;
            f.write_all_at(&zeros[..n], off)
                .map_err(|e| named(e, &self.dest))?;
            off += n as u64;
        }
        Ok(())
    }

    /// Gives the unnamed file a temporary name in its directory (the first half of a commit).
    fn link_temp(&mut self) -> io::Result<()> {
        if !matches!(self.temp, Temp::Unnamed) {
            return Ok(());
        }
        let (Some(dir), Some(file)) = (&self.dir, &self.file) else {
            return Ok(());
        };
        for _ in 0..100 {
            let tmp = temp_name(&self.name);
            match link_unnamed(file, dir, &tmp) {
                Ok(()) => {
                    self.temp = Temp::Named(tmp);
                    return Ok(());
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(named(e, &self.dest)),
            }
        }
        Err(named(Errno::EXIST, &self.dest))
    }

    /// Links the output into place, replacing a regular file (or a symlink) at the final path;
    /// for a device, flushes it.
    ///
    /// # Errors
    /// Any error of the link or rename (the output is then discarded), or of the flush.
    pub fn commit(self) -> io::Result<()> {
        Self::commit_all(vec![self])
    }

    /// Commits several outputs all or nothing: every one is first given a temporary name (the
    /// step that can fail for want of space or permission), and only then renamed into place.
    /// When the first step fails for one, none appears.
    ///
    /// # Errors
    /// As [`AtomicFile::commit`].
    pub fn commit_all(mut outputs: Vec<AtomicFile>) -> io::Result<()> {
        for o in &mut outputs {
            if o.is_device() {
                // Flushed to the device; a device that cannot sync (EINVAL) has nothing to flush.
                match rustix::fs::fsync(o.file()) {
                    Ok(()) | Err(Errno::INVAL) => {}
                    Err(e) => return Err(named(e, &o.dest)),
                }
            } else {
                o.link_temp()?;
            }
        }
        for mut o in outputs {
            let Temp::Named(tmp) = &o.temp else {
                continue;
            };
            let Some(dir) = &o.dir else { continue };
            rustix::fs::renameat(dir, tmp.as_os_str(), dir, o.name.as_os_str())
                .map_err(|e| named(e, &o.dest))?;
            // Committed: nothing for Drop to remove.
            o.temp = Temp::Device;
            drop(o.file.take());
        }
        Ok(())
    }
}

/// Refuses an existing `name` in `dir` that is not a regular file or a symlink to one (or a
/// dangling symlink: the rename replaces the link, never its target).
fn check_replaceable(dir: &OwnedFd, name: &OsStr, dest: &Path) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(named(e, dest)),
    };
    let t = FileType::from_raw_mode(st.st_mode);
    let (t, how) = if t == FileType::Symlink {
        match rustix::fs::statat(dir, name, AtFlags::empty()) {
            Ok(st) => (FileType::from_raw_mode(st.st_mode), "is a symlink to"),
            Err(_) => return Ok(()),
        }
    } else {
        (t, "is")
    };
    match t {
        FileType::RegularFile => Ok(()),
        FileType::BlockDevice | FileType::CharacterDevice => Err(refuse(
            dest,
            &format!(
                "{how} {}; imagetool replaces only regular files (ask for writing a device \
                 in place explicitly: --output-device)",
                type_name(t)
            ),
        )),
        _ => Err(refuse(
            dest,
            &format!(
                "{how} {}; imagetool replaces only regular files",
                type_name(t)
            ),
        )),
    }
}

/// The fallback: a random hidden name, created exclusively and never through a symlink.
fn create_named(dir: &OwnedFd, name: &OsStr, dest: &Path) -> io::Result<(OwnedFd, Temp)> {
    let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    for _ in 0..100 {
        let tmp = temp_name(name);
        match rustix::fs::openat(dir, tmp.as_os_str(), flags, new_mode()) {
            Ok(fd) => return Ok((fd, Temp::Named(tmp))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(named(e, dest)),
        }
    }
    Err(named(Errno::EXIST, dest))
}

/// Links an `O_TMPFILE` as `tmp` in `dir`: through `/proc/self/fd` (needs no privilege), else
/// with `AT_EMPTY_PATH` (needs `CAP_DAC_READ_SEARCH`).
fn link_unnamed(file: &File, dir: &OwnedFd, tmp: &OsStr) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, proc.as_str(), dir, tmp, AtFlags::SYMLINK_FOLLOW) {
        Err(Errno::NOENT | Errno::PERM | Errno::ACCESS) => {
            rustix::fs::linkat(file.as_fd(), "", dir, tmp, AtFlags::EMPTY_PATH)
        }
        r => r,
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let (Temp::Named(tmp), Some(dir)) = (&self.temp, &self.dir) {
            let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn test_atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.img");
        let a = AtomicFile::create(&dest).unwrap();
        a.file().write_all(b"x").unwrap();
        assert!(!dest.exists());
        a.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"x");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn test_atomic_file_is_unnamed_and_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.img");
        std::fs::write(&dest, b"old").unwrap();
        let a = AtomicFile::create(&dest).unwrap();
        // tmpfs and ext4 have O_TMPFILE: nothing in the directory but the old file.
        assert!(a.is_unnamed());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        a.file().write_all(b"new").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn test_atomic_file_dropped_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.img");
        drop(AtomicFile::create(&dest).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn test_atomic_file_in_missing_dir_names_path() {
        let err = AtomicFile::create(Path::new("/nonexistent-dir/x.img")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.img"), "{err}");
    }

    #[test]
    fn test_symlinked_output_replaces_the_link_never_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"secret").unwrap();
        let dest = dir.path().join("out.img");
        std::os::unix::fs::symlink(&victim, &dest).unwrap();
        let a = AtomicFile::create(&dest).unwrap();
        a.file().write_all(b"image").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
        assert!(
            !std::fs::symlink_metadata(&dest)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn test_special_outputs_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        let err = AtomicFile::create(&fifo).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let link = dir.path().join("to-null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let err = AtomicFile::create(&link).unwrap_err();
        assert!(
            err.to_string().contains("symlink to a character device"),
            "{err}"
        );
        assert!(err.to_string().contains("--output-device"), "{err}");
        let err = AtomicFile::create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo_like()
        );
        // Device mode refuses a regular file and takes a device.
        let f = dir.path().join("plain");
        std::fs::write(&f, b"x").unwrap();
        let err = AtomicFile::create_with(&f, OutputMode::Device).unwrap_err();
        assert!(err.to_string().contains("not a device"), "{err}");
        let dev = AtomicFile::create_with(Path::new("/dev/null"), OutputMode::Device).unwrap();
        assert!(dev.is_device());
        dev.commit().unwrap();
    }

    #[test]
    fn test_commit_all_commits_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let outs: Vec<AtomicFile> = ["a.img", "b.img"]
            .iter()
            .map(|n| {
                let a = AtomicFile::create(&dir.path().join(n)).unwrap();
                a.file().write_all(n.as_bytes()).unwrap();
                a
            })
            .collect();
        AtomicFile::commit_all(outs).unwrap();
        assert_eq!(std::fs::read(dir.path().join("b.img")).unwrap(), b"b.img");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    trait FifoLike {
        fn is_fifo_like(&self) -> bool;
    }
    impl FifoLike for std::fs::FileType {
        fn is_fifo_like(&self) -> bool {
            use std::os::unix::fs::FileTypeExt;
            self.is_fifo()
        }
    }
}
