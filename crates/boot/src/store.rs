//! The closure as the installers see it: its store paths and where their contents are on the
//! host (`<store root>/nix/store/…`). Symlinks are resolved inside the store root, never on the
//! host's own `/nix/store`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::bootspec::store_path_of;
use crate::{Error, ErrorKind, Result};

/// A closure: store paths and the directory holding their `nix/store`.
#[derive(Debug, Clone)]
pub struct Closure {
    store_root: PathBuf,
    paths: BTreeSet<String>,
}

const MAX_LINKS: usize = 40;

impl Closure {
    /// A closure of `paths` (`/nix/store/<hash>-<name>`) whose contents are under
    /// `store_root` (`/` for the host's own store).
    #[must_use]
    pub fn new(store_root: &Path, paths: impl IntoIterator<Item = String>) -> Self {
        Self {
            store_root: store_root.to_path_buf(),
            paths: paths.into_iter().collect(),
        }
    }

    /// The store paths, sorted.
    #[must_use]
    pub fn paths(&self) -> &BTreeSet<String> {
        &self.paths
    }

    /// Whether the store path `path` (not a file inside one) is in the closure.
    #[must_use]
    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    /// Where the logical path `path` (`/nix/store/…`) is on the host.
    #[must_use]
    pub fn host(&self, path: &str) -> PathBuf {
        self.store_root.join(path.trim_start_matches('/'))
    }

    /// Resolves every symlink in the logical path `path` (targets read from the store root),
    /// as `os.path.realpath` would inside the image. The result must lie in the closure.
    ///
    /// # Errors
    /// `InvalidInput` when a link leads outside the closure or loops; `Io` on read errors.
    pub fn realpath(&self, path: &str) -> Result<String> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(c);
            let logical = format!("/{}", done.join("/"));
            if store_path_of(&logical).is_none() {
                // Still above a store path (`/nix`, `/nix/store`): nothing to resolve there.
                continue;
            }
            let host = self.host(&logical);
            let meta = match std::fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{path}: {logical} does not exist (looked for {})",
                            host.display()
                        ),
                    )
                    .with_path(&host));
                }
                Err(e) => return Err(Error::io(&host, "cannot stat", e)),
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{path}: too many levels of symbolic links"),
                ));
            }
            let target =
                std::fs::read_link(&host).map_err(|e| Error::io(&host, "cannot read link", e))?;
            let target = target.to_str().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("{logical}: link target is not UTF-8"),
                )
            })?;
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            pending.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(String::from),
            );
        }
        let out = format!("/{}", done.join("/"));
        match store_path_of(&out) {
            Some(sp) if self.contains(sp) => Ok(out),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{path} resolves to {out}, which is not in the closure"),
            )),
        }
    }

    /// [`Closure::realpath`] that must be a regular file; returns the logical and host paths.
    ///
    /// # Errors
    /// As [`Closure::realpath`]; `InvalidInput` when it is not a regular file.
    pub fn file(&self, path: &str) -> Result<(String, PathBuf)> {
        let real = self.realpath(path)?;
        let host = self.host(&real);
        match std::fs::metadata(&host) {
            Ok(m) if m.is_file() => Ok((real, host)),
            Ok(_) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{path} is not a regular file"),
            )
            .with_path(&host)),
            Err(e) => Err(Error::io(&host, "cannot stat", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn test_realpath_follows_links_inside_the_store_root() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("nix/store");
        std::fs::create_dir_all(s.join("aa-linux")).unwrap();
        std::fs::create_dir_all(s.join("bb-top")).unwrap();
        std::fs::write(s.join("aa-linux/bzImage"), b"k").unwrap();
        symlink("/nix/store/aa-linux/bzImage", s.join("bb-top/kernel")).unwrap();
        symlink("../aa-linux", s.join("bb-top/rel")).unwrap();
        symlink("/etc/passwd", s.join("bb-top/out")).unwrap();
        symlink("loop", s.join("bb-top/loop")).unwrap();
        let c = Closure::new(
            d.path(),
            [
                "/nix/store/aa-linux".to_string(),
                "/nix/store/bb-top".into(),
            ],
        );
        assert_eq!(
            c.realpath("/nix/store/bb-top/kernel").unwrap(),
            "/nix/store/aa-linux/bzImage"
        );
        assert_eq!(
            c.realpath("/nix/store/bb-top/rel/bzImage").unwrap(),
            "/nix/store/aa-linux/bzImage"
        );
        let (l, h) = c.file("/nix/store/bb-top/kernel").unwrap();
        assert_eq!(l, "/nix/store/aa-linux/bzImage");
        assert_eq!(std::fs::read(h).unwrap(), b"k");
        assert!(c.realpath("/nix/store/bb-top/out").is_err());
        assert!(c.realpath("/nix/store/bb-top/loop").is_err());
        assert!(c.realpath("/nix/store/bb-top/nothing").is_err());
        assert!(c.file("/nix/store/aa-linux").is_err());
        let small = Closure::new(d.path(), ["/nix/store/bb-top".to_string()]);
        let e = small.realpath("/nix/store/bb-top/kernel").unwrap_err();
        assert!(e.to_string().contains("not in the closure"), "{e}");
    }
}
