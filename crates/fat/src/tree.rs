//! The input: a tree of directories and files whose bytes come from memory or host files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Bytes in memory.
    Bytes(Arc<[u8]>),
    /// A host file, read when the filesystem is written (its length is fixed when added).
    File(PathBuf),
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file of `len` bytes.
    File {
        /// Where the bytes come from.
        source: Source,
        /// Its length.
        len: u64,
    },
    /// A directory; entries in byte order of their names.
    Dir(BTreeMap<String, Node>),
}

/// The contents of a FAT filesystem. Entry order on disk is the byte order of the names, so
/// the same tree always gives the same image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// The root directory.
    pub root: BTreeMap<String, Node>,
}

const MAX_DEPTH: usize = 64;

impl Tree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a host directory recursively. Symlinks are followed (FAT cannot store them);
    /// anything but files and directories is an error.
    ///
    /// # Errors
    /// `Io` naming the path that could not be read; `Unsupported` for sockets, devices and
    /// FIFOs; `InvalidInput` for names that are not UTF-8 or nest deeper than 64 levels.
    pub fn from_dir(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", Some(path), e))?;
        if !meta.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a directory", path.display()),
            ));
        }
        Ok(Self {
            root: read_dir(path, 0)?,
        })
    }

    /// Adds a file with in-memory contents at `path` (`/`-separated), creating parents.
    ///
    /// # Errors
    /// `InvalidInput` when `path` is empty or a parent is a file.
    pub fn add_bytes(&mut self, path: &str, data: impl Into<Arc<[u8]>>) -> Result<()> {
        let data: Arc<[u8]> = data.into();
        let len = data.len() as u64;
        self.insert(
            path,
            Node::File {
                source: Source::Bytes(data),
                len,
            },
        )
    }

    /// Adds a host file at `path`, creating parents.
    ///
    /// # Errors
    /// `Io` when `host` cannot be read; `InvalidInput` as for [`Tree::add_bytes`].
    pub fn add_host_file(&mut self, path: &str, host: &Path) -> Result<()> {
        let meta = std::fs::metadata(host).map_err(|e| Error::io("cannot read", Some(host), e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{} is not a regular file", host.display()),
            ));
        }
        self.insert(
            path,
            Node::File {
                source: Source::File(host.to_path_buf()),
                len: meta.len(),
            },
        )
    }

    /// Adds an empty directory at `path`, creating parents.
    ///
    /// # Errors
    /// As for [`Tree::add_bytes`].
    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        self.insert(path, Node::Dir(BTreeMap::new()))
    }

    fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, parents)) = parts.split_last() else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "empty path in the FAT tree",
            ));
        };
        let mut dir = &mut self.root;
        for p in parents {
            let next = dir
                .entry((*p).to_string())
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            dir = match next {
                Node::Dir(d) => d,
                Node::File { .. } => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("{path:?}: parent {p:?} is a file"),
                    ));
                }
            };
        }
        match (dir.get_mut(*last), node) {
            (Some(Node::Dir(_)), Node::Dir(_)) => {}
            (_, node) => {
                dir.insert((*last).to_string(), node);
            }
        }
        Ok(())
    }
}

fn read_dir(path: &Path, depth: usize) -> Result<BTreeMap<String, Node>> {
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} nests deeper than {MAX_DEPTH} directories (a symlink loop?)",
                path.display()
            ),
        ));
    }
    let mut out = BTreeMap::new();
    let rd =
        std::fs::read_dir(path).map_err(|e| Error::io("cannot read directory", Some(path), e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("cannot read directory", Some(path), e))?;
        let p = entry.path();
        let name = entry.file_name().into_string().map_err(|n| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{}: name {n:?} is not UTF-8", path.display()),
            )
        })?;
        let meta = std::fs::metadata(&p).map_err(|e| Error::io("cannot read", Some(&p), e))?;
        let node = if meta.is_dir() {
            Node::Dir(read_dir(&p, depth + 1)?)
        } else if meta.is_file() {
            Node::File {
                source: Source::File(p),
                len: meta.len(),
            }
        } else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{}: FAT stores only files and directories", p.display()),
            ));
        };
        out.insert(name, node);
    }
    Ok(out)
}
