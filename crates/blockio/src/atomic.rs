//! Outputs that appear only when complete.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// An output file written under a temporary name in the target directory and renamed to its
/// final name by [`AtomicFile::commit`]. Dropped without a commit, the temporary file is
/// removed, so a failed build leaves nothing behind.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file beside `dest`.
    ///
    /// # Errors
    /// Any error creating it (a missing or read-only directory); the message names `dest`.
    pub fn create(dest: &Path) -> io::Result<Self> {
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: output path has no file name", dest.display()),
            )
        })?;
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".imagetool-{}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dest.display())))?;
        Ok(Self {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The open temporary file.
    ///
    /// # Panics
    /// Never: the file is only taken by [`AtomicFile::commit`], which consumes `self`.
    #[must_use]
    pub fn file(&self) -> &File {
        // `file` is only taken by `commit`, which consumes `self`.
        self.file.as_ref().expect("file present until commit")
    }

    /// A second handle to the temporary file (for a backing that owns its file).
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

    /// Renames the temporary file to its final name.
    ///
    /// # Errors
    /// Any error of the rename; the temporary file is then removed.
    pub fn commit(mut self) -> io::Result<()> {
        drop(self.file.take());
        std::fs::rename(&self.tmp, &self.dest)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.dest.display())))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() || self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
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
}
