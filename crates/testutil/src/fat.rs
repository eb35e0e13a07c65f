//! FAT oracles: `fsck.fat -n` and the mtools (`mdir`, `mcopy`).
//!
//! mtools take a partition offset directly (`-i image@@offset`); `fsck.fat` cannot, so a range
//! is first copied into a sparse temporary file ([`Target::materialize`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::tools::{FSCK_FAT, MCOPY, MDIR};
use crate::{Error, ErrorKind, Output, Result, Target, run};

/// A FAT tree as mtools sees it: path (`/EFI/BOOT/BOOTX64.EFI`) → `None` for a directory,
/// `Some(contents)` for a file. The root itself is not listed.
pub type FatTree = BTreeMap<String, Option<Vec<u8>>>;

const MTOOLS_ENV: &[(&str, &str)] = &[("MTOOLS_SKIP_CHECK", "1"), ("MTOOLSRC", "/dev/null")];

/// Runs `fsck.fat -n` and succeeds only when it exits 0 and prints nothing but its version
/// line and the summary (`<file>: N files, M/K clusters`).
///
/// # Errors
/// `Finding` with the whole output; `ToolMissing`; `Io`.
pub fn fsck(t: &Target<'_>) -> Result<Output> {
    let m = t.materialize()?;
    let file = m.path().to_string_lossy().into_owned();
    let out = run(FSCK_FAT, &["-n", file.as_str()], &[])?;
    if out.code() != Some(0) {
        return Err(out.finding("fsck.fat found problems (non-zero exit)"));
    }
    let summary = format!("{file}: ");
    let noise: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| {
            !(l.trim().is_empty()
                || l.starts_with("fsck.fat ")
                || (l.starts_with(&summary) && l.contains(" files, ") && l.contains(" clusters")))
        })
        .collect();
    if !noise.is_empty() {
        return Err(out.finding(&format!("fsck.fat reported {noise:?}")));
    }
    Ok(out)
}

/// Panics with fsck.fat's output unless [`fsck`] is clean.
///
/// # Panics
/// On any finding or error.
pub fn assert_clean(t: &Target<'_>) {
    if let Err(e) = fsck(t) {
        panic!("{e}");
    }
}

/// The mtools drive spec `image@@offset`.
fn spec(t: &Target<'_>) -> Result<String> {
    t.len()?;
    let p = t
        .image
        .to_str()
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, t, "image path is not UTF-8"))?;
    Ok(match t.range {
        None => p.to_string(),
        Some((o, _)) => format!("{p}@@{o}"),
    })
}

/// Lists every file and directory with `mdir -/ -b`: path → is-directory.
///
/// # Errors
/// `Finding` when mdir cannot read the filesystem; `ToolMissing`.
pub fn list(t: &Target<'_>) -> Result<BTreeMap<String, bool>> {
    let img = spec(t)?;
    let out = run(MDIR, &["-/", "-b", "-i", img.as_str(), "::/"], MTOOLS_ENV)?;
    if out.code() != Some(0) {
        // An empty root makes mdir say "No files" / "File not found" and exit 1.
        if out.stdout.trim().is_empty() && out.stderr.contains("not found") {
            return Ok(BTreeMap::new());
        }
        return Err(out.finding("mdir failed"));
    }
    let mut entries = BTreeMap::new();
    for line in out.stdout.lines().filter(|l| !l.is_empty()) {
        let p = line
            .strip_prefix("::")
            .ok_or_else(|| out.failed(&format!("unexpected mdir line {line:?}")))?;
        match p.strip_suffix('/') {
            Some(d) => entries.insert(d.to_string(), true),
            None => entries.insert(p.to_string(), false),
        };
    }
    Ok(entries)
}

/// Lists the filesystem and extracts every file with `mcopy -s`.
///
/// # Errors
/// `Finding` when mtools fail; `Io`.
pub fn read_tree(t: &Target<'_>) -> Result<FatTree> {
    let listing = list(t)?;
    let mut tree = FatTree::new();
    if listing.is_empty() {
        return Ok(tree);
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let img = spec(t)?;
    let dst = format!("{}/", tmp.path().display());
    let out = run(
        MCOPY,
        &["-s", "-n", "-i", img.as_str(), "::/*", dst.as_str()],
        MTOOLS_ENV,
    )?;
    if out.code() != Some(0) {
        return Err(out.finding("mcopy failed"));
    }
    for (path, is_dir) in listing {
        if is_dir {
            tree.insert(path, None);
        } else {
            let host = tmp.path().join(path.trim_start_matches('/'));
            let data = std::fs::read(&host).map_err(|e| Error::io(&host, e))?;
            tree.insert(path, Some(data));
        }
    }
    Ok(tree)
}

/// Every difference between `expected` and `actual`, one line each.
#[must_use]
pub fn diff(expected: &FatTree, actual: &FatTree) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    let show = |v: &Option<Vec<u8>>| match v {
        None => "directory".to_string(),
        Some(d) => format!("file of {} bytes", d.len()),
    };
    for p in paths {
        match (expected.get(p), actual.get(p)) {
            (Some(e), None) => out.push(format!("{p}: missing (expected {})", show(e))),
            (None, Some(a)) => out.push(format!("{p}: unexpected {}", show(a))),
            (Some(Some(e)), Some(Some(a))) if e != a => {
                let at = e
                    .iter()
                    .zip(a)
                    .position(|(x, y)| x != y)
                    .unwrap_or(e.len().min(a.len()));
                out.push(format!(
                    "{p}: contents differ ({} vs {} bytes, first difference at byte {at})",
                    e.len(),
                    a.len()
                ));
            }
            (Some(e), Some(a)) if e.is_some() != a.is_some() => {
                out.push(format!("{p}: expected {}, found {}", show(e), show(a)));
            }
            _ => {}
        }
    }
    out
}

/// Reads the filesystem and compares it with `expected`.
///
/// # Errors
/// `Mismatch` listing every difference; any error of [`read_tree`].
pub fn compare(t: &Target<'_>, expected: &FatTree) -> Result<()> {
    let actual = read_tree(t)?;
    let d = diff(expected, &actual);
    if d.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Mismatch,
            format!("FAT tree of {t}"),
            format!("{} difference(s):\n  {}", d.len(), d.join("\n  ")),
        ))
    }
}

/// The [`FatTree`] of a host directory (regular files and directories only).
///
/// # Errors
/// `Io` naming the path; `InvalidInput` for other file types (FAT cannot hold them).
pub fn tree_from_dir(dir: &Path) -> Result<FatTree> {
    fn walk(host: &Path, path: &str, out: &mut FatTree) -> Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(host)
            .map_err(|e| Error::io(host, e))?
            .map(|d| d.map(|d| d.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(host, e))?;
        names.sort();
        for n in names {
            let h = host.join(&n);
            let p = format!("{path}/{}", n.to_string_lossy());
            let ft = std::fs::symlink_metadata(&h)
                .map_err(|e| Error::io(&h, e))?
                .file_type();
            if ft.is_dir() {
                out.insert(p.clone(), None);
                walk(&h, &p, out)?;
            } else if ft.is_file() {
                out.insert(p, Some(std::fs::read(&h).map_err(|e| Error::io(&h, e))?));
            } else {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    h.display(),
                    "FAT holds only files and directories",
                ));
            }
        }
        Ok(())
    }
    let mut out = FatTree::new();
    walk(dir, "", &mut out)?;
    Ok(out)
}

/// Panics with the differences unless the filesystem holds exactly `expected`.
///
/// # Panics
/// On any difference or error.
pub fn assert_tree_eq(t: &Target<'_>, expected: &FatTree) {
    if let Err(e) = compare(t, expected) {
        panic!("{e}");
    }
}

/// Checks an EFI image's ESP (`esp`: byte offset and length in `img`): fsck.fat finds it
/// clean, every one of `files` is on it, and none whose name ends with one of `foreign` (an
/// other architecture's loader).
///
/// # Panics
/// When a check fails: this is a test's assertion.
pub fn assert_esp(img: &Path, esp: (u64, u64), files: &[&str], foreign: &[&str]) {
    let esp = Target::range(img, esp.0, esp.1);
    assert_clean(&esp);
    let list = list(&esp).unwrap_or_else(|e| panic!("{e}"));
    for f in files {
        assert!(
            list.keys().any(|k| k.trim_start_matches('/') == *f),
            "{f} missing from the ESP: {:?}",
            list.keys()
        );
    }
    assert!(
        !list.keys().any(|k| foreign.iter().any(|l| k.ends_with(l))),
        "another architecture's loader ({foreign:?}) on the ESP: {:?}",
        list.keys()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_each_difference() {
        let mut e = FatTree::new();
        e.insert("/EFI".into(), None);
        e.insert("/EFI/a".into(), Some(b"abc".to_vec()));
        e.insert("/gone".into(), Some(vec![]));
        let mut a = e.clone();
        a.remove("/gone");
        a.insert("/EFI/a".into(), Some(b"abd".to_vec()));
        a.insert("/new".into(), None);
        let d = diff(&e, &a).join("\n");
        assert!(
            d.contains("/EFI/a: contents differ (3 vs 3 bytes, first difference at byte 2)"),
            "{d}"
        );
        assert!(d.contains("/gone: missing"), "{d}");
        assert!(d.contains("/new: unexpected directory"), "{d}");
        assert!(diff(&e, &e).is_empty());
    }
}
