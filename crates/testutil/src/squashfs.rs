//! squashfs oracles: squashfs-tools' `unsquashfs` (superblock facts with `-s`, the listing
//! with `-lln`, the extraction with `-d`) and the Linux kernel's reader through a read-only
//! loop mount.
//!
//! [`read_tree`] extracts an image and describes it as a [`Tree`]: contents, symlink targets,
//! hard-link groups and xattrs from the extraction, types, modes, owners and sizes from the
//! listing, which it cross-checks against the extraction entry by entry (so owners are right
//! even when the extraction could not set them).

use std::collections::BTreeMap;
use std::path::Path;

use crate::tools::{MOUNT, UMOUNT, UNSQUASHFS};
use crate::tree::{Kind, Tree};
use crate::{Error, ErrorKind, Result, run};

/// What `unsquashfs -s` says about a superblock.
#[derive(Debug, Clone)]
pub struct Stat {
    /// The whole output.
    pub text: String,
    /// The superblock's creation time (`unsquashfs -mkfs-time`).
    pub mkfs_time: u64,
}

impl Stat {
    fn value(&self, prefix: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    }

    fn number(&self, prefix: &str) -> Result<u64> {
        self.value(prefix)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::Parse, "unsquashfs -s", format!("no {prefix:?}")))
    }

    /// The compressor's name (`gzip`, `xz`, `lz4`, `zstd`, ...).
    #[must_use]
    pub fn compression(&self) -> Option<&str> {
        self.value("Compression ")
    }

    /// The data block size.
    ///
    /// # Errors
    /// `Parse` when the line is missing.
    pub fn block_size(&self) -> Result<u64> {
        self.number("Block size ")
    }

    /// `bytes_used`.
    ///
    /// # Errors
    /// `Parse` when the line is missing.
    pub fn bytes_used(&self) -> Result<u64> {
        self.number("Filesystem size ")
    }

    /// The inode count.
    ///
    /// # Errors
    /// `Parse` when the line is missing.
    pub fn inodes(&self) -> Result<u64> {
        self.number("Number of inodes ")
    }

    /// The fragment count.
    ///
    /// # Errors
    /// `Parse` when the line is missing.
    pub fn fragments(&self) -> Result<u64> {
        self.number("Number of fragments ")
    }

    /// The number of distinct owner ids.
    ///
    /// # Errors
    /// `Parse` when the line is missing.
    pub fn ids(&self) -> Result<u64> {
        self.number("Number of ids ")
    }

    /// True when the line `line` is in the output (`Filesystem is exportable via NFS`,
    /// `Duplicates are removed`, `Xattrs are not stored`, ...).
    #[must_use]
    pub fn says(&self, line: &str) -> bool {
        self.text.lines().any(|l| l.trim() == line)
    }
}

/// Runs `unsquashfs -s` and `unsquashfs -mkfs-time` on `image`.
///
/// # Errors
/// `Finding` when unsquashfs finds no valid superblock; `ToolMissing`; `Parse`.
pub fn stat(image: &Path) -> Result<Stat> {
    let out = run(UNSQUASHFS, &["-s".as_ref(), image.as_os_str()], &[])?;
    if out.code() != Some(0) || !out.stdout.contains("Found a valid SQUASHFS 4:0 superblock") {
        return Err(out.finding("unsquashfs -s rejected the superblock"));
    }
    let t = run(UNSQUASHFS, &["-mkfs-time".as_ref(), image.as_os_str()], &[])?;
    if t.code() != Some(0) {
        return Err(t.failed("unsquashfs -mkfs-time failed"));
    }
    let mkfs_time = t
        .stdout
        .trim()
        .parse()
        .map_err(|_| t.failed("unsquashfs -mkfs-time printed no number"))?;
    Ok(Stat {
        text: out.stdout,
        mkfs_time,
    })
}

/// One line of `unsquashfs -lln`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The type letter (`-`, `d`, `l`, `c`, `b`, `p`, `s`).
    pub kind: char,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// The size column (file and symlink sizes; 0 for devices).
    pub size: u64,
    /// A symlink's target.
    pub target: Option<String>,
    /// A device's (major, minor).
    pub device: Option<(u32, u32)>,
}

/// Runs `unsquashfs -lln` and parses every line: tree path (`/`, `/a`, ...) → entry.
///
/// # Errors
/// `Finding` when unsquashfs fails or complains; `Parse` on a line it cannot read.
pub fn listing(image: &Path) -> Result<BTreeMap<String, Listed>> {
    let out = run(
        UNSQUASHFS,
        &["-no-progress".as_ref(), "-lln".as_ref(), image.as_os_str()],
        &[],
    )?;
    if out.code() != Some(0) || !out.stderr.trim().is_empty() {
        return Err(out.finding("unsquashfs -lln failed or complained"));
    }
    let mut map = BTreeMap::new();
    for line in out.stdout.lines().filter(|l| !l.is_empty()) {
        let (path, e) = parse_line(line).ok_or_else(|| {
            Error::new(
                ErrorKind::Parse,
                "unsquashfs -lln",
                format!("cannot read {line:?}"),
            )
        })?;
        map.insert(path, e);
    }
    Ok(map)
}

fn parse_mode(p: &str) -> Option<(char, u32)> {
    let c: Vec<char> = p.chars().collect();
    if c.len() != 10 {
        return None;
    }
    let mut mode = 0;
    for (i, ch) in c[1..].iter().enumerate() {
        let bit = 1 << (8 - i);
        let special = match i {
            2 => 0o4000,
            5 => 0o2000,
            8 => 0o1000,
            _ => 0,
        };
        match ch {
            '-' => {}
            'r' | 'w' | 'x' => mode |= bit,
            's' | 't' => mode |= bit | special,
            'S' | 'T' => mode |= special,
            _ => return None,
        }
    }
    Some((c[0], mode))
}

/// Splits off the next whitespace-separated token.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    let end = s.find(' ').unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

fn parse_line(line: &str) -> Option<(String, Listed)> {
    let (perm, rest) = token(line)?;
    let (kind, mode) = parse_mode(perm)?;
    let (owner, rest) = token(rest)?;
    let (uid, gid) = owner.split_once('/')?;
    let (size_tok, mut rest) = token(rest)?;
    let mut size = 0;
    let mut device = None;
    if kind == 'c' || kind == 'b' {
        // "major, minor" (or "major,minor")
        let major: u32 = size_tok.trim_end_matches(',').parse().ok()?;
        let minor_tok = if size_tok.ends_with(',') {
            let (m, r) = token(rest)?;
            rest = r;
            m
        } else {
            size_tok.split_once(',')?.1
        };
        let minor: u32 = minor_tok.parse().ok()?;
        // unsquashfs 4.5 lists `rdev >> 8, rdev & 0xff` of the stored 32-bit number, which is
        // Linux' new_encode_dev; decode it as the kernel (and unsquashfs' extraction) does.
        let raw: u32 = (major << 8) | (minor & 0xff);
        device = Some(((raw >> 8) & 0xfff, (raw & 0xff) | ((raw >> 12) & 0xfff00)));
    } else {
        size = size_tok.parse().ok()?;
    }
    let (_date, rest) = token(rest)?;
    let (_time, rest) = token(rest)?;
    let name = rest.strip_prefix(' ')?;
    let (name, target) = if kind == 'l' {
        let (n, t) = name.split_once(" -> ")?;
        (n, Some(t.to_string()))
    } else {
        (name, None)
    };
    let rel = name.strip_prefix("squashfs-root")?;
    let path = if rel.is_empty() {
        "/".to_string()
    } else {
        rel.to_string()
    };
    Some((
        path,
        Listed {
            kind,
            mode,
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            size,
            target,
            device,
        },
    ))
}

/// Extracts `image` with `unsquashfs -d` into `dest` (which must not exist).
///
/// # Errors
/// `Finding` with unsquashfs' output when it fails or reports an error.
pub fn extract(image: &Path, dest: &Path) -> Result<()> {
    let out = run(
        UNSQUASHFS,
        &[
            "-no-progress".as_ref(),
            "-d".as_ref(),
            dest.as_os_str(),
            image.as_os_str(),
        ],
        &[],
    )?;
    let complaint = out
        .stderr
        .lines()
        .chain(out.stdout.lines())
        .find(|l| l.contains("rror") || l.contains("failed") || l.contains("FATAL"));
    if out.code() != Some(0) || complaint.is_some() {
        return Err(out.finding("unsquashfs -d failed or complained"));
    }
    Ok(())
}

fn kind_letter(k: &Kind) -> char {
    match k {
        Kind::Dir => 'd',
        Kind::File { .. } => '-',
        Kind::Symlink(_) => 'l',
        Kind::CharDev { .. } => 'c',
        Kind::BlockDev { .. } => 'b',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
    }
}

/// Reads `image` back with unsquashfs: extracts it into a temporary directory, lists it, checks
/// that the two agree on every entry (type, mode, size, target, device numbers) and returns
/// the tree with the listing's owners.
///
/// # Errors
/// `Finding` when unsquashfs fails; `Mismatch` when the listing and the extraction disagree.
pub fn read_tree(image: &Path) -> Result<Tree> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let dest = tmp.path().join("root");
    extract(image, &dest)?;
    let mut tree = Tree::from_dir(&dest)?;
    let listed = listing(image)?;
    let mut bad = Vec::new();
    let paths: std::collections::BTreeSet<String> = tree
        .entries()
        .keys()
        .chain(listed.keys())
        .cloned()
        .collect();
    for p in paths {
        let (Some(e), Some(l)) = (tree.get(&p).cloned(), listed.get(&p)) else {
            bad.push(format!(
                "{p}: in only one of the extraction and the listing"
            ));
            continue;
        };
        let size = match &e.kind {
            Kind::File { size, .. } => *size,
            Kind::Symlink(t) => t.len() as u64,
            _ => l.size,
        };
        let device = match e.kind {
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                Some((major, minor))
            }
            _ => None,
        };
        let target = match &e.kind {
            Kind::Symlink(t) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        };
        if kind_letter(&e.kind) != l.kind
            || (e.kind != Kind::Dir && size != l.size)
            || device != l.device
            || target != l.target
            || e.mode != l.mode
        {
            bad.push(format!("{p}: extracted {e:?}, listed {l:?}"));
        }
        let entry = tree.insert(&p, e.kind.clone(), l.mode);
        entry.uid = l.uid;
        entry.gid = l.gid;
        entry.nlink = e.nlink;
        entry.inode = e.inode;
        entry.xattrs = e.xattrs.clone();
    }
    if !bad.is_empty() {
        return Err(Error::new(
            ErrorKind::Mismatch,
            format!("unsquashfs {}", image.display()),
            format!("listing and extraction disagree:\n  {}", bad.join("\n  ")),
        ));
    }
    Ok(tree)
}

/// Mounts `image` read-only through a loop device (the kernel's squashfs driver), runs `f` on
/// the mount point, and unmounts it whatever happens.
///
/// # Errors
/// `ToolMissing` when the kernel refuses the mount (no root, no loop devices, no squashfs
/// driver): the caller decides whether that skips; any error of `f`.
pub fn with_mount<T>(image: &Path, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| Error::io(&mnt, e))?;
    let out = run(
        MOUNT,
        &[
            "-t".as_ref(),
            "squashfs".as_ref(),
            "-o".as_ref(),
            "loop,ro".as_ref(),
            image.as_os_str(),
            mnt.as_os_str(),
        ],
        &[],
    )?;
    if out.code() != Some(0) {
        return Err(Error::new(
            ErrorKind::ToolMissing,
            format!("mount {}", image.display()),
            format!("the kernel refused a loop mount here\n{out}"),
        ));
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = run(UMOUNT, &[self.0.as_os_str()], &[]);
        }
    }
    let guard = Unmount(&mnt);
    let r = f(&mnt);
    drop(guard);
    r
}

/// The kernel's view of `image`: the tree under a read-only loop mount (see [`with_mount`]).
///
/// # Errors
/// As [`with_mount`]; `Io` reading the mounted tree (a kernel read error).
pub fn mount_tree(image: &Path) -> Result<Tree> {
    with_mount(image, Tree::from_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_listing_lines_parse() {
        let (p, e) =
            parse_line("-rwsr-xr-T 1000/100              6 2026-12-03 15:37 squashfs-root/a/f one")
                .unwrap();
        assert_eq!(p, "/a/f one");
        assert_eq!(
            (e.kind, e.mode, e.uid, e.gid, e.size),
            ('-', 0o5754, 1000, 100, 6)
        );
        let (p, e) =
            parse_line("lrwxrwxrwx 0/0 5 2026-12-03 15:37 squashfs-root/a/b/sym -> ../f1").unwrap();
        assert_eq!(
            (p.as_str(), e.target.as_deref()),
            ("/a/b/sym", Some("../f1"))
        );
        let (_, e) =
            parse_line("crw-r--r-- 0/0   1,  3 2026-12-03 15:37 squashfs-root/null").unwrap();
        assert_eq!(e.device, Some((1, 3)));
        let (_, e) =
            parse_line("brw-rw---- 0/0 1192195, 69 2026-12-03 15:37 squashfs-root/d/sda1").unwrap();
        assert_eq!(e.device, Some((259, 0x12345)));
        let (p, _) = parse_line("drwxr-xr-x 0/0 75 2026-12-03 15:37 squashfs-root").unwrap();
        assert_eq!(p, "/");
        assert!(parse_line("garbage").is_none());
    }
}
