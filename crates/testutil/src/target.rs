//! What an oracle judges: a whole image file, or one byte range (a partition) of it.

use std::path::{Path, PathBuf};

use imagetool_blockio::{Extents, ReadAt, SparseFile, WriteAt};

use crate::{Error, ErrorKind, Result};

/// An image file, optionally narrowed to the byte range `offset..offset+len` (a partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The image file.
    pub image: &'a Path,
    /// `(offset, len)` in bytes, or `None` for the whole file.
    pub range: Option<(u64, u64)>,
}

impl<'a> Target<'a> {
    /// The whole image.
    #[must_use]
    pub fn whole(image: &'a Path) -> Self {
        Self { image, range: None }
    }

    /// `len` bytes of `image` starting at `offset`.
    #[must_use]
    pub fn range(image: &'a Path, offset: u64, len: u64) -> Self {
        Self {
            image,
            range: Some((offset, len)),
        }
    }

    /// The byte offset of the range (0 for the whole image).
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.range.map_or(0, |(o, _)| o)
    }

    /// The length of the range, or of the whole file.
    ///
    /// # Errors
    /// `Io` when the file cannot be read; `InvalidInput` when the range lies outside the file.
    pub fn len(&self) -> Result<u64> {
        let size = std::fs::metadata(self.image)
            .map_err(|e| Error::io(self.image, e))?
            .len();
        match self.range {
            None => Ok(size),
            Some((o, l)) => match o.checked_add(l) {
                Some(end) if end <= size => Ok(l),
                _ => Err(Error::new(
                    ErrorKind::InvalidInput,
                    self,
                    format!("range {o}+{l} lies outside the image of {size} bytes"),
                )),
            },
        }
    }

    /// True for an empty range.
    ///
    /// # Errors
    /// As [`Target::len`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The e2fsprogs device name: `image?offset=N` (e2fsprogs' unix I/O manager option) for a
    /// range, else the path. `None` when the path itself holds a `?` (then the range has to
    /// be extracted).
    #[must_use]
    pub fn e2fs_spec(&self) -> Option<String> {
        let p = self.image.to_str()?;
        match self.range {
            None => Some(p.to_string()),
            Some(_) if p.contains('?') => None,
            Some((o, _)) => Some(format!("{p}?offset={o}")),
        }
    }

    /// A file that holds exactly the target's bytes: the image itself, or the range copied
    /// into a sparse temporary file (only the data extents are copied, holes stay holes).
    ///
    /// # Errors
    /// `Io` on any read or write error; `InvalidInput` for a range outside the image.
    pub fn materialize(&self) -> Result<Materialized> {
        let Some((offset, len)) = self.range else {
            self.len()?;
            return Ok(Materialized {
                path: self.image.to_path_buf(),
                _dir: None,
            });
        };
        self.len()?;
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
        let path = dir.path().join("range.img");
        let src = SparseFile::open(self.image).map_err(|e| Error::io(self.image, e))?;
        let dst = SparseFile::create(&path, len).map_err(|e| Error::io(&path, e))?;
        let end = offset + len;
        for ext in src.data_extents().map_err(|e| Error::io(self.image, e))? {
            let (s, e) = (ext.start.max(offset), ext.end.min(end));
            if s < e {
                dst.copy_from_file(src.file(), s, e - s, s - offset)
                    .map_err(|e| Error::io(&path, e))?;
            }
        }
        debug_assert_eq!(dst.size(), len);
        Ok(Materialized {
            path,
            _dir: Some(dir),
        })
    }
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.range {
            None => write!(f, "{}", self.image.display()),
            Some((o, l)) => write!(f, "{} [bytes {o}+{l}]", self.image.display()),
        }
    }
}

/// A file holding a target's bytes; a temporary copy is removed on drop.
#[derive(Debug)]
pub struct Materialized {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Materialized {
    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn range_is_copied_exactly_and_sparsely() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"before", (1 << 20) - 3).unwrap();
        f.write_all_at(b"inside", 5 << 20).unwrap();
        f.write_all_at(b"after", 33 << 20).unwrap();
        drop(f);
        let t = Target::range(&img, 1 << 20, 32 << 20);
        let m = t.materialize().unwrap();
        let data = std::fs::read(m.path()).unwrap();
        assert_eq!(data.len(), 32 << 20);
        assert_eq!(&data[..3], b"ore");
        assert_eq!(&data[(4 << 20)..(4 << 20) + 6], b"inside");
        assert!(data[(4 << 20) + 6..].iter().all(|&b| b == 0));
        let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(m.path()).unwrap());
        assert!(
            blocks * 512 < 4 << 20,
            "copy is not sparse: {blocks} blocks"
        );
        assert_eq!(
            t.e2fs_spec().unwrap(),
            format!("{}?offset=1048576", img.display())
        );
    }

    #[test]
    fn range_outside_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("small.img");
        std::fs::write(&img, [0u8; 4096]).unwrap();
        let err = Target::range(&img, 4000, 200).materialize().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(Target::whole(&img).materialize().is_ok());
    }
}
