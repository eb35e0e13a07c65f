//! Nix oracle: Debian's `nix-store --verify --check-contents` on an extracted root.
//!
//! A root is a directory holding `nix/store` and `nix/var/nix/db` (what an image's root
//! filesystem carries). `nix-store --store <root>` treats it as a chroot store: store paths are
//! `/nix/store/...` inside it. The oracle re-hashes every valid path's NAR and compares it with
//! the registered `narHash`; any complaint fails it.

use std::path::Path;

use crate::tools::NIX_STORE;
use crate::{Error, ErrorKind, Output, Result, run};

/// A Nix command (`nix-store`, `nix-hash`, `sh -c "nix-store ..."`) with a configuration that
/// works on a plain Debian machine: Debian's nix.conf names a `build-users-group` that does not
/// exist there, and no sandbox.
#[must_use]
pub fn command(program: &str) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.env("NIX_CONFIG", "build-users-group =\nsandbox = false");
    c
}

/// Progress and environment lines of `nix-store --verify` that are not complaints.
fn is_noise(line: &str) -> bool {
    let l = line.trim();
    l.is_empty()
        || l == "reading the Nix store..."
        || l == "checking path existence..."
        || l == "checking link hashes..."
        || l == "checking store hashes..."
        || (l.starts_with("warning: the group '") && l.ends_with("' does not exist"))
}

fn store_arg(root: &Path) -> Result<String> {
    let abs = std::path::absolute(root).map_err(|e| Error::io(root, e))?;
    let s = abs
        .to_str()
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, root.display(), "path is not UTF-8"))?;
    Ok(s.to_string())
}

/// Runs `nix-store --store <root> --verify --check-contents`; clean only on exit 0 with no
/// output but progress lines.
///
/// # Errors
/// `Finding` with the whole output ("path ... was modified!", missing paths, ...);
/// `InvalidInput` when `root` has no Nix database; `ToolMissing`.
pub fn verify(root: &Path) -> Result<Output> {
    let db = root.join("nix/var/nix/db/db.sqlite");
    if !db.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            root.display(),
            "no nix/var/nix/db/db.sqlite under the root",
        ));
    }
    let store = store_arg(root)?;
    let out = run(
        NIX_STORE,
        &["--store", store.as_str(), "--verify", "--check-contents"],
        &[("NIX_REMOTE", "")],
    )?;
    let complaints: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| !is_noise(l))
        .collect();
    if out.code() != Some(0) || !complaints.is_empty() {
        return Err(out.finding("nix-store --verify --check-contents complained"));
    }
    Ok(out)
}

/// Panics with nix-store's output unless [`verify`] is clean.
///
/// # Panics
/// On any complaint or error.
pub fn assert_verified(root: &Path) {
    if let Err(e) = verify(root) {
        panic!("{e}");
    }
}

/// Registers paths already present under `root/nix/store` from `registration` (nixpkgs
/// `closureInfo` format) with `nix-store --load-db`, creating the database.
///
/// # Errors
/// `Finding` with nix-store's output when it refuses the registration; `Io`.
pub fn load_db(root: &Path, registration: &Path) -> Result<Output> {
    let store = store_arg(root)?;
    let input = std::fs::File::open(registration).map_err(|e| Error::io(registration, e))?;
    let path = NIX_STORE.path()?;
    let out = std::process::Command::new(&path)
        .args(["--store", store.as_str(), "--load-db"])
        .env("NIX_REMOTE", "")
        .stdin(input)
        .output()
        .map_err(|e| Error::new(ErrorKind::ToolFailed, path.display(), e.to_string()))?;
    let out = Output {
        command: format!(
            "nix-store --store {store} --load-db < {}",
            registration.display()
        ),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if out.code() != Some(0) {
        return Err(out.finding("nix-store --load-db failed"));
    }
    Ok(out)
}

/// `nix-store --store <root> --dump-db`: the registration of every valid path in the root's
/// database (the closureInfo `registration` format).
///
/// # Errors
/// `Finding` with nix-store's output when it fails; `ToolMissing`.
pub fn dump_db(root: &Path) -> Result<String> {
    let store = store_arg(root)?;
    let out = run(
        NIX_STORE,
        &["--store", store.as_str(), "--dump-db"],
        &[("NIX_REMOTE", "")],
    )?;
    if out.code() != Some(0) {
        return Err(out.finding("nix-store --dump-db failed"));
    }
    Ok(out.stdout)
}

/// `nix-store --store <root> -q <what> <path>` (`--references`, `--requisites`, ...): the
/// store paths it prints, sorted.
///
/// # Errors
/// `Finding` with nix-store's output when it fails; `ToolMissing`.
pub fn query(root: &Path, what: &str, path: &str) -> Result<std::collections::BTreeSet<String>> {
    let store = store_arg(root)?;
    let out = run(
        NIX_STORE,
        &["--store", store.as_str(), "-q", what, path],
        &[("NIX_REMOTE", "")],
    )?;
    if out.code() != Some(0) {
        return Err(out.finding(&format!("nix-store -q {what} failed")));
    }
    Ok(out.stdout.lines().map(String::from).collect())
}

/// Adds host paths to the store under `root` with `nix-store --add` (creates the store and
/// its database); returns the store paths.
///
/// # Errors
/// `Finding` with nix-store's output when it fails.
pub fn add(root: &Path, paths: &[&Path]) -> Result<Vec<String>> {
    let store = store_arg(root)?;
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["--store".as_ref(), store.as_ref(), "--add".as_ref()];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let out = run(NIX_STORE, &args, &[("NIX_REMOTE", "")])?;
    if out.code() != Some(0) {
        return Err(out.finding("nix-store --add failed"));
    }
    Ok(out.stdout.lines().map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_not_complaints() {
        assert!(is_noise("checking store hashes..."));
        assert!(is_noise(
            "warning: the group 'nixbld' specified in 'build-users-group' does not exist"
        ));
        assert!(!is_noise(
            "path '/nix/store/abc-x' was modified! expected hash 'sha256:0', got 'sha256:1'"
        ));
    }

    #[test]
    fn root_without_db_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            verify(dir.path()).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
