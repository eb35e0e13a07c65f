//! ISO 9660 and squashfs oracles: xorriso's El Torito and system-area reports, genisoimage's
//! `isoinfo` (volume descriptor and Rock Ridge listing), and extraction of the whole tree by
//! xorriso (libisofs) or `unsquashfs` (squashfs-tools) into a [`Tree`] to compare with the
//! source.

use std::collections::BTreeMap;
use std::path::Path;

use crate::tools::{ISOINFO, UNSQUASHFS, XORRISO};
use crate::tree::Tree;
use crate::{Error, ErrorKind, Result, run};

/// One El Torito boot image as `xorriso -report_el_torito plain` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImage {
    /// `BIOS` or `UEFI`.
    pub platform: String,
    /// The emulation (`none` for no-emulation images).
    pub emulation: String,
    /// The load size in 512-byte sectors.
    pub load_size: u64,
    /// The first 2048-byte block.
    pub lba: u64,
    /// The file in the ISO tree that holds the image, when xorriso found one.
    pub path: Option<String>,
    /// Options (`boot-info-table`, `isohybrid-suitable`).
    pub options: String,
}

/// What xorriso reports about an image's boot set-up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootReport {
    /// The boot catalog's path in the ISO tree.
    pub catalog_path: Option<String>,
    /// The boot images in catalog order.
    pub images: Vec<BootImage>,
    /// `System area summary:` (e.g. `MBR isohybrid cyl-align-on GPT`).
    pub system_area: String,
    /// MBR partitions: `(number, status, type, start, blocks)` in 512-byte sectors.
    pub mbr: Vec<(u32, String, String, u64, u64)>,
    /// GPT partitions: `(number, local name, start, size)` in 512-byte sectors.
    pub gpt: Vec<(u32, String, u64, u64)>,
    /// The whole report.
    pub text: String,
}

fn words(l: &str) -> Vec<&str> {
    l.split_whitespace().collect()
}

/// `xorriso -indev ISO -report_el_torito plain -report_system_area plain`, parsed.
///
/// # Errors
/// `ToolMissing`; `ToolFailed` when xorriso cannot read the image; `Parse` for a report line
/// that is not as expected.
pub fn boot_report(iso: &Path) -> Result<BootReport> {
    let out = run(
        XORRISO,
        &[
            "-abort_on".as_ref(),
            "FAILURE".as_ref(),
            "-indev".as_ref(),
            iso.as_os_str(),
            "-report_el_torito".as_ref(),
            "plain".as_ref(),
            "-report_system_area".as_ref(),
            "plain".as_ref(),
        ],
        &[],
    )?;
    if !out.status.success() {
        return Err(out.failed("xorriso could not read the image"));
    }
    let mut r = BootReport {
        text: out.stdout.clone(),
        ..BootReport::default()
    };
    let num = |s: &str, l: &str| {
        s.parse::<u64>()
            .map_err(|_| Error::new(ErrorKind::Parse, "xorriso", format!("bad number in {l:?}")))
    };
    let mut gpt: BTreeMap<u32, (String, u64, u64)> = BTreeMap::new();
    for l in out.stdout.lines() {
        let Some((key, val)) = l.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let val = val.trim();
        let w = words(val);
        match key {
            "El Torito cat path" => r.catalog_path = Some(val.to_string()),
            "El Torito boot img" if w.len() >= 8 => r.images.push(BootImage {
                platform: w[1].to_string(),
                emulation: w[3].to_string(),
                load_size: num(w[6], l)?,
                lba: num(w[7], l)?,
                path: None,
                options: String::new(),
            }),
            "El Torito img path" if w.len() >= 2 => {
                let i = num(w[0], l)? as usize;
                if let Some(img) = r.images.get_mut(i.wrapping_sub(1)) {
                    img.path = Some(w[1..].join(" "));
                }
            }
            "El Torito img opts" if w.len() >= 2 => {
                let i = num(w[0], l)? as usize;
                if let Some(img) = r.images.get_mut(i.wrapping_sub(1)) {
                    img.options = w[1..].join(" ");
                }
            }
            "System area summary" => r.system_area = val.to_string(),
            "MBR partition" if w.len() == 5 => r.mbr.push((
                num(w[0], l)? as u32,
                w[1].to_string(),
                w[2].to_string(),
                num(w[3], l)?,
                num(w[4], l)?,
            )),
            "GPT partname local" if w.len() >= 2 => {
                gpt.entry(num(w[0], l)? as u32).or_default().0 = w[1..].join(" ");
            }
            "GPT start and size" if w.len() == 3 => {
                let e = gpt.entry(num(w[0], l)? as u32).or_default();
                e.1 = num(w[1], l)?;
                e.2 = num(w[2], l)?;
            }
            _ => {}
        }
    }
    r.gpt = gpt
        .into_iter()
        .map(|(n, (name, s, z))| (n, name, s, z))
        .collect();
    Ok(r)
}

/// The primary volume descriptor and extensions as `isoinfo -d -R` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeInfo {
    /// `Volume id:`.
    pub volume_id: String,
    /// `Volume size is:` in 2048-byte blocks.
    pub blocks: u64,
    /// Rock Ridge signatures found.
    pub rock_ridge: bool,
    /// Joliet found.
    pub joliet: bool,
    /// The boot catalog's sector, when there is an El Torito record.
    pub boot_catalog: Option<u64>,
    /// The whole report.
    pub text: String,
}

/// `isoinfo -d -R -i ISO`, parsed.
///
/// # Errors
/// `ToolMissing`; `ToolFailed` when isoinfo fails.
pub fn volume_info(iso: &Path) -> Result<VolumeInfo> {
    let out = run(
        ISOINFO,
        &["-d".as_ref(), "-R".as_ref(), "-i".as_ref(), iso.as_os_str()],
        &[],
    )?;
    if !out.status.success() {
        return Err(out.failed("isoinfo could not read the image"));
    }
    let mut v = VolumeInfo {
        text: out.stdout.clone(),
        ..VolumeInfo::default()
    };
    for l in out.stdout.lines() {
        if let Some(x) = l.strip_prefix("Volume id: ") {
            v.volume_id = x.trim_end().to_string();
        } else if let Some(x) = l.strip_prefix("Volume size is: ") {
            v.blocks = x.trim().parse().unwrap_or(0);
        } else if l.starts_with("Rock Ridge signatures") {
            v.rock_ridge = true;
        } else if l.starts_with("Joliet with UCS level") {
            v.joliet = true;
        } else if let Some(x) = l.split("boot catalog is in sector ").nth(1) {
            v.boot_catalog = x.trim().parse().ok();
        }
    }
    Ok(v)
}

/// One entry of `isoinfo -R -l`: the mode string, size and symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// `drwxr-xr-x`-style mode.
    pub mode: String,
    /// Size in bytes (of the record's extent).
    pub size: u64,
    /// The symlink target, for links.
    pub target: Option<String>,
    /// The link count (isoinfo: Rock Ridge's PX; unsquashfs: 0, not listed).
    pub nlink: u32,
    /// The first block of the extent (isoinfo only): hard links share it.
    pub extent: Option<u64>,
}

/// `isoinfo -R -l -i ISO` (or `-J` for the Joliet tree): every entry by absolute path.
///
/// # Errors
/// `ToolMissing`; `ToolFailed` when isoinfo fails; `Parse` for a line it cannot read.
pub fn listing(iso: &Path, joliet: bool) -> Result<BTreeMap<String, Listed>> {
    let flag = if joliet { "-J" } else { "-R" };
    let out = run(
        ISOINFO,
        &[flag.as_ref(), "-l".as_ref(), "-i".as_ref(), iso.as_os_str()],
        &[],
    )?;
    if !out.status.success() {
        return Err(out.failed("isoinfo could not list the image"));
    }
    let mut map = BTreeMap::new();
    let mut dir = String::from("/");
    for l in out.stdout.lines() {
        if let Some(d) = l.strip_prefix("Directory listing of ") {
            dir = d.to_string();
            continue;
        }
        if l.len() < 10 || !l.contains(']') {
            continue;
        }
        let (head, name) = l.split_once("]  ").ok_or_else(|| {
            Error::new(
                ErrorKind::Parse,
                "isoinfo",
                format!("unexpected line {l:?}"),
            )
        })?;
        let name = name.strip_suffix(' ').unwrap_or(name);
        let (name, target) = match name.split_once(" -> ") {
            Some((n, t)) => (n.to_string(), Some(t.to_string())),
            None => (name.to_string(), None),
        };
        if name == "." || name == ".." {
            continue;
        }
        let w = words(head);
        let size = w
            .get(4)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::Parse, "isoinfo", format!("no size in {l:?}")))?;
        map.insert(
            format!("{dir}{name}"),
            Listed {
                mode: w[0].to_string(),
                size,
                target,
                nlink: w.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
                extent: head
                    .rsplit_once('[')
                    .and_then(|(_, b)| words(b).first().and_then(|s| s.parse().ok())),
            },
        );
    }
    Ok(map)
}

/// Extracts the whole ISO with xorriso (Rock Ridge names, modes, owners, symlinks, bytes) and
/// reads the result back as a [`Tree`].
///
/// # Errors
/// `ToolMissing`; `ToolFailed` when the extraction fails; `Io`.
pub fn extract(iso: &Path) -> Result<Tree> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let dest = tmp.path().join("x");
    let out = run(
        XORRISO,
        &[
            "-abort_on".as_ref(),
            "FAILURE".as_ref(),
            "-osirrox".as_ref(),
            "on".as_ref(),
            "-indev".as_ref(),
            iso.as_os_str(),
            "-extract".as_ref(),
            "/".as_ref(),
            dest.as_os_str(),
        ],
        &[],
    )?;
    if !out.status.success() {
        return Err(out.failed("xorriso could not extract the image"));
    }
    let t = Tree::from_dir(&dest);
    make_writable(&dest);
    t
}

/// Extracts a squashfs image with `unsquashfs` and reads it back as a [`Tree`].
///
/// # Errors
/// `ToolMissing`; `Finding` when unsquashfs reports errors; `Io`.
pub fn unsquash(img: &Path) -> Result<Tree> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let dest = tmp.path().join("x");
    let out = run(
        UNSQUASHFS,
        &[
            "-no-progress".as_ref(),
            "-d".as_ref(),
            dest.as_os_str(),
            img.as_os_str(),
        ],
        &[],
    )?;
    if !out.status.success() {
        return Err(out.finding("unsquashfs failed"));
    }
    let t = Tree::from_dir(&dest);
    make_writable(&dest);
    t
}

/// `unsquashfs -lls`: every entry's mode string and (for symlinks) target, by absolute path.
///
/// # Errors
/// `ToolMissing`; `Finding` when unsquashfs fails; `Parse`.
pub fn unsquash_lls(img: &Path) -> Result<BTreeMap<String, Listed>> {
    let out = run(
        UNSQUASHFS,
        &["-lls".as_ref(), "-d".as_ref(), "".as_ref(), img.as_os_str()],
        &[],
    )?;
    if !out.status.success() {
        return Err(out.finding("unsquashfs -lls failed"));
    }
    let mut map = BTreeMap::new();
    for l in out.stdout.lines() {
        let w = words(l);
        if w.len() < 6
            || !matches!(
                l.as_bytes().first(),
                Some(b'd' | b'-' | b'l' | b'c' | b'b' | b'p' | b's')
            )
        {
            continue;
        }
        let rest = w[5..].join(" ");
        let (path, target) = match rest.split_once(" -> ") {
            Some((p, t)) => (p.to_string(), Some(t.to_string())),
            None => (rest, None),
        };
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        map.insert(
            path,
            Listed {
                mode: w[0].to_string(),
                size: w[2].parse().unwrap_or(0),
                target,
                nlink: 0,
                extent: None,
            },
        );
    }
    Ok(map)
}

/// Extracted trees keep read-only directories; make them removable.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            make_writable(&e.path());
        }
    }
}

/// Makes a squashfs image of `sources` (each placed at the image's root under its own name, as
/// `make-squashfs.nix` does with the store paths) with Debian's `mksquashfs`: for tests that
/// need a store image made by the reference tool.
///
/// # Errors
/// `ToolMissing`; `ToolFailed` when mksquashfs fails.
pub fn mksquashfs(sources: &[std::path::PathBuf], out: &Path) -> Result<()> {
    let mut args: Vec<std::ffi::OsString> =
        sources.iter().map(|s| s.clone().into_os_string()).collect();
    args.push(out.as_os_str().to_owned());
    for a in [
        "-noappend",
        "-no-progress",
        "-quiet",
        "-all-root",
        "-no-xattrs",
        "-keep-as-directory",
    ] {
        args.push(a.into());
    }
    let out = run(crate::tools::MKSQUASHFS, &args, &[])?;
    if !out.status.success() {
        return Err(out.failed("mksquashfs failed"));
    }
    Ok(())
}
