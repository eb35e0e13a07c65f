//! Hidden setup for the crate's doc examples: a scratch directory removed on drop, a small
//! file tree, and a one-path Nix closure (store root plus `closureInfo`) built from nothing,
//! so every example runs as written without the fixture or a Nix store. Not part of the API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::nix::StorePath;
use crate::nix::closure_info::{PathInfo, write_registration, write_store_paths};

/// A fresh directory under the system's temporary directory, removed with its contents on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

/// A one-path closure: `hello`'s store path, the directory holding `nix/store`, and the
/// `closureInfo` directory (`store-paths`, `registration`).
#[derive(Debug)]
pub struct TinyClosure {
    /// The store path (`/nix/store/…-hello`), standing in for a system toplevel.
    pub path: String,
    /// The directory holding `nix/store`.
    pub store_root: PathBuf,
    /// The `closureInfo` output directory.
    pub closure_info: PathBuf,
}

impl Scratch {
    /// Creates the directory.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new() -> std::io::Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "imagetool-doc-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// `name` inside the directory.
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A small tree at `name`: `etc/hostname`, `etc/os-release`, `bin/hello` (mode 755) and a
    /// symlink `etc/localtime`.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn tree(&self, name: &str) -> std::io::Result<PathBuf> {
        let root = self.path(name);
        write_tree(&root)?;
        Ok(root)
    }

    /// A one-path closure whose path holds [`Scratch::tree`]'s files.
    ///
    /// # Errors
    /// When a file cannot be written or hashed.
    pub fn closure(&self) -> Result<TinyClosure, Box<dyn std::error::Error>> {
        let path = "/nix/store/0c5ff9d9xs1mi4vfbqvcrkq3z9qmxl1v-hello";
        let store_root = self.path("store-root");
        let host = store_root.join(path.trim_start_matches('/'));
        write_tree(&host)?;
        let (nar_hash, nar_size) = crate::nix::nar::hash_path(&host)?;
        let info = PathInfo {
            path: StorePath::parse(path)?,
            nar_hash,
            nar_size,
            deriver: None,
            references: Default::default(),
        };
        let closure_info = self.path("closure-info");
        std::fs::create_dir_all(&closure_info)?;
        let infos = [info];
        std::fs::write(closure_info.join("store-paths"), write_store_paths(&infos))?;
        std::fs::write(
            closure_info.join("registration"),
            write_registration(&infos),
        )?;
        Ok(TinyClosure {
            path: path.to_string(),
            store_root,
            closure_info,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_tree(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::write(root.join("etc/hostname"), "nixos\n")?;
    std::fs::write(root.join("etc/os-release"), "ID=nixos\n")?;
    let hello = root.join("bin/hello");
    std::fs::write(&hello, "#!/bin/sh\necho hello\n")?;
    std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o755))?;
    std::os::unix::fs::symlink("/etc/zoneinfo/UTC", root.join("etc/localtime"))
}
