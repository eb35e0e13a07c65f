//! ext4 oracles: `e2fsck -fn`, `dumpe2fs -h`, and a tree read back with `debugfs`.
//!
//! A partition range is passed to e2fsprogs as `image?offset=N` (the unix I/O manager's option,
//! supported by e2fsck, dumpe2fs and debugfs). That device has no end, so [`fsck`] also checks
//! that the superblock's size fits inside the range, the check e2fsck itself makes against a
//! real device's size.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::tools::{DEBUGFS, DUMPE2FS, E2FSCK};
use crate::tree::{CompareOptions, Entry, Kind, Tree, hash_file, join};
use crate::{Error, ErrorKind, Materialized, Output, Result, Target, run};

/// The device name e2fsprogs should open, and the temporary copy behind it if one was needed.
fn device(t: &Target<'_>) -> Result<(String, Option<Materialized>)> {
    if let Some(spec) = t.e2fs_spec() {
        t.len()?;
        return Ok((spec, None));
    }
    let m = t.materialize()?;
    let p = m.path().to_string_lossy().into_owned();
    Ok((p, Some(m)))
}

/// One file's contents, dumped by `debugfs -R "dump <path> <tmp>"`.
///
/// # Errors
/// `Finding` when debugfs cannot dump it (no such file); `ToolMissing`; `Io`.
pub fn dump_file(t: &Target<'_>, path: &str) -> Result<Vec<u8>> {
    let (dev, _keep) = device(t)?;
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let out_path = tmp.path().join("dumped");
    let req = format!("dump {path} {}", out_path.display());
    let out = run(DEBUGFS, &["-R", req.as_str(), dev.as_str()], &[])?;
    match std::fs::read(&out_path) {
        Ok(b) if out.status.success() => Ok(b),
        _ => Err(out.finding(&format!("debugfs could not dump {path}"))),
    }
}

/// Runs `e2fsck -fn` and succeeds only when it exits 0, asks no "Fix?"-style question and
/// prints nothing but its banner, the five `Pass N:` lines and the closing summary (`… files
/// (… non-contiguous), … blocks`): any other line is a finding, even with exit 0. For a range,
/// also checks that the filesystem's size fits inside it.
///
/// # Errors
/// `Finding` with e2fsck's whole output; `ToolMissing`; `Io`/`InvalidInput` for the target.
pub fn fsck(t: &Target<'_>) -> Result<Output> {
    let (dev, _keep) = device(t)?;
    let out = run(E2FSCK, &["-fn", dev.as_str()], &[])?;
    let text = format!("{}{}", out.stdout, out.stderr);
    let question = text
        .lines()
        .find(|l| l.contains("? no") || l.contains("Fix?") || l.contains("Clear?"));
    if out.code() != Some(0) {
        return Err(out.finding("e2fsck found problems (non-zero exit)"));
    }
    if let Some(q) = question {
        return Err(out.finding(&format!("e2fsck asked {q:?}")));
    }
    if let Some(line) = text.lines().find(|l| {
        !(l.is_empty()
            || l.starts_with("Pass ")
            || l.starts_with("e2fsck ")
            || l.contains(" files ("))
    }) {
        return Err(out.finding(&format!("e2fsck reported {line:?}")));
    }
    if t.range.is_some() {
        let sb = dumpe2fs(t)?;
        let fs_bytes = sb
            .block_count()?
            .checked_mul(sb.block_size()?)
            .ok_or_else(|| Error::new(ErrorKind::Parse, t, "filesystem size overflows"))?;
        let len = t.len()?;
        if fs_bytes > len {
            return Err(Error::new(
                ErrorKind::Finding,
                t,
                format!("filesystem of {fs_bytes} bytes does not fit in its {len}-byte range"),
            ));
        }
    }
    Ok(out)
}

/// Panics with e2fsck's output unless [`fsck`] is clean.
///
/// # Panics
/// On any finding or error.
pub fn assert_clean(t: &Target<'_>) {
    if let Err(e) = fsck(t) {
        panic!("{e}");
    }
}

/// The superblock as `dumpe2fs -h` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Superblock {
    /// Every `Name: value` line, keyed by name.
    pub fields: BTreeMap<String, String>,
}

impl Superblock {
    /// Parses `dumpe2fs -h` output (lines `Name:   value`; the journal part is skipped).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut fields = BTreeMap::new();
        // The first occurrence wins: the journal block after the superblock repeats names.
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if !k.is_empty() {
                    fields.entry(k.to_string()).or_insert_with(|| v.to_string());
                }
            }
        }
        Self { fields }
    }

    /// A field's value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn need(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| Error::new(ErrorKind::Parse, "dumpe2fs", format!("no {name:?} field")))
    }

    fn number(&self, name: &str) -> Result<u64> {
        let v = self.need(name)?;
        v.parse()
            .map_err(|_| Error::new(ErrorKind::Parse, "dumpe2fs", format!("{name}: {v:?}")))
    }

    /// The feature list (`Filesystem features`).
    #[must_use]
    pub fn features(&self) -> Vec<String> {
        self.get("Filesystem features")
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// True when `feature` is on.
    #[must_use]
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features().iter().any(|f| f == feature)
    }

    /// `Filesystem UUID`.
    ///
    /// # Errors
    /// `Parse` when missing.
    pub fn uuid(&self) -> Result<&str> {
        self.need("Filesystem UUID")
    }

    /// `Filesystem volume name` (`None` for `<none>`).
    #[must_use]
    pub fn label(&self) -> Option<&str> {
        self.get("Filesystem volume name")
            .filter(|l| *l != "<none>")
    }

    /// `Directory Hash Seed`.
    ///
    /// # Errors
    /// `Parse` when missing.
    pub fn hash_seed(&self) -> Result<&str> {
        self.need("Directory Hash Seed")
    }

    /// `Block count`.
    ///
    /// # Errors
    /// `Parse` when missing or not a number.
    pub fn block_count(&self) -> Result<u64> {
        self.number("Block count")
    }

    /// `Block size`.
    ///
    /// # Errors
    /// `Parse` when missing or not a number.
    pub fn block_size(&self) -> Result<u64> {
        self.number("Block size")
    }

    /// `Inode count`.
    ///
    /// # Errors
    /// `Parse` when missing or not a number.
    pub fn inode_count(&self) -> Result<u64> {
        self.number("Inode count")
    }

    /// `Free blocks`.
    ///
    /// # Errors
    /// `Parse` when missing or not a number.
    pub fn free_blocks(&self) -> Result<u64> {
        self.number("Free blocks")
    }

    /// `Free inodes`.
    ///
    /// # Errors
    /// `Parse` when missing or not a number.
    pub fn free_inodes(&self) -> Result<u64> {
        self.number("Free inodes")
    }

    /// `Inode size`.
    ///
    /// # Errors
    /// `Parse` when missing or not a number.
    pub fn inode_size(&self) -> Result<u64> {
        self.number("Inode size")
    }
}

/// Runs `dumpe2fs -h` and parses the superblock.
///
/// # Errors
/// `Finding` when dumpe2fs fails (bad magic, checksum errors); `ToolMissing`.
pub fn dumpe2fs(t: &Target<'_>) -> Result<Superblock> {
    let (dev, _keep) = device(t)?;
    let out = run(DUMPE2FS, &["-h", dev.as_str()], &[])?;
    if out.code() != Some(0) {
        return Err(out.finding("dumpe2fs failed"));
    }
    let sb = Superblock::parse(&out.stdout);
    if sb.get("Filesystem magic number") != Some("0xEF53") {
        return Err(out.finding("no ext2/3/4 superblock magic"));
    }
    Ok(sb)
}

/// Runs `debugfs -f <commands>` and splits stdout into one section per command (debugfs echoes
/// each command as `debugfs: <cmd>`). Fails on any stderr line but the version banner.
fn debugfs_script(dev: &str, commands: &[String], dir: &Path) -> Result<Vec<String>> {
    let script = dir.join("debugfs.cmds");
    std::fs::write(&script, commands.join("\n") + "\n").map_err(|e| Error::io(&script, e))?;
    let script_s = script.to_string_lossy().into_owned();
    let out = run(DEBUGFS, &["-f", script_s.as_str(), dev], &[])?;
    let complaints: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    if out.code() != Some(0) || !complaints.is_empty() {
        return Err(out.finding("debugfs reported errors"));
    }
    let mut sections: Vec<String> = Vec::new();
    for line in out.stdout.lines() {
        if line.starts_with("debugfs: ") {
            sections.push(String::new());
        } else if let Some(s) = sections.last_mut() {
            s.push_str(line);
            s.push('\n');
        }
    }
    if sections.len() != commands.len() {
        return Err(out.failed(&format!(
            "expected {} command outputs, found {}",
            commands.len(),
            sections.len()
        )));
    }
    Ok(sections)
}

/// One line of `ls -p`: `/ino/mode/uid/gid/name/size/`.
fn parse_ls_line(line: &str) -> Option<(u64, u32, u32, u32, String)> {
    let rest = line.strip_prefix('/')?;
    let mut it = rest.splitn(5, '/');
    let ino = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    // debugfs prints owners with `%d`: ids of 2^31 and above come out negative.
    let id = |t: &str| -> Option<u32> {
        let v: i64 = t.parse().ok()?;
        u32::try_from(v.rem_euclid(1 << 32)).ok()
    };
    let uid = id(it.next()?)?;
    let gid = id(it.next()?)?;
    let tail = it.next()?.strip_suffix('/')?;
    let (name, _size) = tail.rsplit_once('/')?;
    Some((ino, mode, uid, gid, name.to_string()))
}

/// What `stat <ino>` says that `ls -p` does not.
#[derive(Debug, Default)]
struct Stat {
    links: u32,
    size: u64,
    device: Option<(u32, u32)>,
    fast_link: Option<Vec<u8>>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn parse_stat(text: &str) -> Option<Stat> {
    let mut st = Stat::default();
    let mut in_xattrs = false;
    for line in text.lines() {
        if in_xattrs {
            if let Some(x) = line.strip_prefix("  ") {
                let (name, value) = parse_xattr(x)?;
                st.xattrs.insert(name, value);
                continue;
            }
            in_xattrs = false;
        }
        if line.starts_with("Extended attributes:") {
            in_xattrs = true;
        } else if let Some(r) = line.strip_prefix("Links: ") {
            st.links = r.split_whitespace().next()?.parse().ok()?;
        } else if line.starts_with("User: ") {
            let size = line.split("Size: ").nth(1)?;
            st.size = size.trim().parse().ok()?;
        } else if let Some(r) = line
            .strip_prefix("(New-style) ")
            .unwrap_or(line)
            .strip_prefix("Device major/minor number: ")
        {
            let (maj, min) = r.split_whitespace().next()?.split_once(':')?;
            st.device = Some((maj.parse().ok()?, min.parse().ok()?));
        } else if let Some(r) = line.strip_prefix("Fast link dest: ") {
            let inner = r.strip_prefix('"')?.strip_suffix('"')?;
            st.fast_link = Some(inner.as_bytes().to_vec());
        }
    }
    Some(st)
}

/// `name (len) = "text"` or `name (len) = 00 01 7a`.
fn parse_xattr(line: &str) -> Option<(String, Vec<u8>)> {
    let (lhs, value) = line.split_once(" = ")?;
    let (name, len) = lhs.rsplit_once(" (")?;
    let len: usize = len.strip_suffix(')')?.parse().ok()?;
    let value = value.trim_end();
    let bytes = if let Some(q) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        q.as_bytes().to_vec()
    } else {
        value
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).ok())
            .collect::<Option<Vec<u8>>>()?
    };
    (bytes.len() == len).then(|| (name.to_string(), bytes))
}

/// Reads the whole tree of an ext4 filesystem back with `debugfs`: one `ls -p` pass per
/// directory depth (addressing directories by inode, so no path quoting), then one pass of
/// `stat` for every inode and `dump` for every regular file and slow symlink; contents are
/// hashed from the dumped copies in a temporary directory.
///
/// # Errors
/// `Finding` when debugfs complains; `Parse` on output it cannot read; `Io`.
pub fn read_tree(t: &Target<'_>) -> Result<Tree> {
    let (dev, _keep) = device(t)?;
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let parse_err =
        |what: &str| Error::new(ErrorKind::Parse, format!("debugfs {dev}"), what.to_string());

    // path → (ino, mode incl. type, uid, gid)
    let mut found: BTreeMap<String, (u64, u32, u32, u32)> = BTreeMap::new();
    let mut level: Vec<(String, u64)> = vec![("/".to_string(), 2)];
    let (uid, gid, mode) = root_attrs(&dev, tmp.path())?;
    found.insert("/".into(), (2, mode, uid, gid));
    while !level.is_empty() {
        let cmds: Vec<String> = level
            .iter()
            .map(|(_, ino)| format!("ls -p <{ino}>"))
            .collect();
        let sections = debugfs_script(&dev, &cmds, tmp.path())?;
        let mut next = Vec::new();
        for ((dir, _), text) in level.iter().zip(sections) {
            for line in text.lines().filter(|l| !l.is_empty()) {
                let (ino, mode, uid, gid, name) =
                    parse_ls_line(line).ok_or_else(|| parse_err(&format!("ls line {line:?}")))?;
                // Unused directory slots (inode 0) and the self/parent links.
                if ino == 0 || name == "." || name == ".." {
                    continue;
                }
                let path = join(dir, &name);
                if mode & 0o170_000 == 0o040_000 {
                    next.push((path.clone(), ino));
                }
                found.insert(path, (ino, mode, uid, gid));
            }
        }
        level = next;
    }

    // One stat per inode, then one dump per regular file and slow symlink (dumping a fast
    // symlink reads its i_block as block numbers and upsets debugfs for later commands).
    let mut inodes: BTreeMap<u64, u32> = BTreeMap::new();
    for (ino, mode, _, _) in found.values() {
        inodes.insert(*ino, *mode);
    }
    let cmds: Vec<String> = inodes.keys().map(|ino| format!("stat <{ino}>")).collect();
    let sections = debugfs_script(&dev, &cmds, tmp.path())?;
    let mut stats: BTreeMap<u64, Stat> = BTreeMap::new();
    for (&ino, text) in inodes.keys().zip(sections) {
        let st = parse_stat(&text).ok_or_else(|| parse_err(&format!("stat <{ino}>:\n{text}")))?;
        stats.insert(ino, st);
    }
    let dumps: Vec<String> = inodes
        .iter()
        .filter(|&(ino, mode)| match mode & 0o170_000 {
            0o100_000 => true,
            0o120_000 => stats.get(ino).is_some_and(|s| s.fast_link.is_none()),
            _ => false,
        })
        .map(|(ino, _)| {
            let dst = tmp.path().join(format!("ino-{ino}"));
            format!("dump <{ino}> \"{}\"", dst.display())
        })
        .collect();
    if !dumps.is_empty() {
        debugfs_script(&dev, &dumps, tmp.path())?;
    }

    let mut tree = Tree::default();
    for (path, (ino, mode, uid, gid)) in found {
        let st = stats
            .get(&ino)
            .ok_or_else(|| parse_err(&format!("no stat for inode {ino}")))?;
        let dumped = tmp.path().join(format!("ino-{ino}"));
        let kind = match mode & 0o170_000 {
            0o040_000 => Kind::Dir,
            0o100_000 => {
                let (size, sha256) = hash_file(&dumped)?;
                if size != st.size {
                    return Err(parse_err(&format!(
                        "{path}: dumped {size} bytes, inode says {}",
                        st.size
                    )));
                }
                Kind::File { size, sha256 }
            }
            0o120_000 => match &st.fast_link {
                Some(t) => Kind::Symlink(t.clone()),
                None => Kind::Symlink(std::fs::read(&dumped).map_err(|e| Error::io(&dumped, e))?),
            },
            0o020_000 | 0o060_000 => {
                let (major, minor) = st
                    .device
                    .ok_or_else(|| parse_err(&format!("{path}: device without numbers")))?;
                if mode & 0o170_000 == 0o020_000 {
                    Kind::CharDev { major, minor }
                } else {
                    Kind::BlockDev { major, minor }
                }
            }
            0o010_000 => Kind::Fifo,
            0o140_000 => Kind::Socket,
            other => return Err(parse_err(&format!("{path}: unknown file type {other:o}"))),
        };
        let e: &mut Entry = tree.insert(&path, kind, mode & 0o7777);
        e.uid = uid;
        e.gid = gid;
        e.nlink = st.links;
        e.inode = ino;
        e.xattrs = st.xattrs.clone();
    }
    Ok(tree)
}

fn root_attrs(dev: &str, tmp: &Path) -> Result<(u32, u32, u32)> {
    let s = debugfs_script(dev, &["ls -p <2>".to_string()], tmp)?;
    for line in s[0].lines() {
        if let Some((2, mode, uid, gid, name)) = parse_ls_line(line)
            && name == "."
        {
            return Ok((uid, gid, mode));
        }
    }
    Err(Error::new(
        ErrorKind::Parse,
        format!("debugfs {dev}"),
        format!("no root directory entry in:\n{}", s[0]),
    ))
}

/// Reads the image's tree and compares it with `expected`.
///
/// # Errors
/// `Mismatch` listing every difference; any error of [`read_tree`].
pub fn compare_tree(t: &Target<'_>, expected: &Tree, opts: &CompareOptions) -> Result<()> {
    let actual = read_tree(t)?;
    expected.compare(&actual, opts, &format!("ext4 tree of {t}"))
}

/// Reads the image's tree and compares it with the host directory `dir` (what `mkfs.ext4 -d`
/// was given).
///
/// # Errors
/// As [`compare_tree`], plus `Io` reading `dir`.
pub fn compare_with_dir(t: &Target<'_>, dir: &Path, opts: &CompareOptions) -> Result<()> {
    compare_tree(t, &Tree::from_dir(dir)?, opts)
}

/// Panics with the list of differences unless the image holds exactly the tree of `dir`
/// (default [`CompareOptions`]: owners, modes, link groups; `/lost+found` ignored).
///
/// # Panics
/// On any difference or error.
pub fn assert_tree_eq_dir(t: &Target<'_>, dir: &Path) {
    if let Err(e) = compare_with_dir(t, dir, &CompareOptions::default()) {
        panic!("{e}");
    }
}

/// A short human summary of a superblock, for logs.
#[must_use]
pub fn summary(sb: &Superblock) -> String {
    let mut s = String::new();
    for k in [
        "Filesystem volume name",
        "Filesystem UUID",
        "Block count",
        "Inode count",
    ] {
        let _ = write!(s, "{k}={} ", sb.get(k).unwrap_or("?"));
    }
    s.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ls_p_lines() {
        assert_eq!(
            parse_ls_line("/15/100644/1000/100/sp ace/6/"),
            Some((15, 0o100_644, 1000, 100, "sp ace".into()))
        );
        assert_eq!(
            parse_ls_line("/12/040755/0/0/d//"),
            Some((12, 0o040_755, 0, 0, "d".into()))
        );
        assert_eq!(parse_ls_line("garbage"), None);
        assert_eq!(
            parse_ls_line("/13/100644/-2094967296/-1/o/1/"),
            Some((13, 0o100_644, 2_200_000_000, u32::MAX, "o".to_string()))
        );
    }

    #[test]
    fn parses_stat_output() {
        let text = "Inode: 15   Type: regular    Mode:  0644   Flags: 0x80000\n\
            User:  1000   Group:   100   Project:     0   Size: 6\n\
            Links: 2   Blockcount: 2\n\
            Extended attributes:\n  user.test (3) = \"val\"\n  user.bin (3) = 00 01 7a \n\
            Inode checksum: 0x48cbc8e7\n\
            Device major/minor number: 01:03 (hex 01:03)\n\
            Fast link dest: \"f\"\n";
        let st = parse_stat(text).unwrap();
        assert_eq!(st.links, 2);
        assert_eq!(st.size, 6);
        assert_eq!(st.device, Some((1, 3)));
        assert_eq!(st.fast_link.as_deref(), Some(&b"f"[..]));
        assert_eq!(st.xattrs["user.test"], b"val");
        assert_eq!(st.xattrs["user.bin"], [0, 1, 0x7a]);
    }

    #[test]
    fn parses_dumpe2fs_header() {
        let sb = Superblock::parse(
            "Filesystem volume name:   nixos\nFilesystem UUID:          44444444-4444-4444-8888-888888888888\n\
             Filesystem magic number:  0xEF53\nFilesystem features:      has_journal ext_attr extent\n\
             Block count:              2048\nBlock size:               4096\nJournal features:         (none)\n\
             Journal size:             4096k\n",
        );
        assert_eq!(sb.label(), Some("nixos"));
        assert!(sb.has_feature("extent"));
        assert!(!sb.has_feature("ext"));
        assert_eq!(
            sb.block_count().unwrap() * sb.block_size().unwrap(),
            8 << 20
        );
        assert!(sb.inode_count().is_err());
    }
}
