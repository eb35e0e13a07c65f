//! Planning a FAT filesystem (every cluster and directory entry decided up front) and writing
//! it: metadata once, then file data in parallel at known offsets.

use std::collections::{BTreeMap, HashSet};

use imagetool_blockio::{WriteAt, write_skipping_zeros};
use imagetool_fstree::Timestamp;
use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::name;
use crate::params::{FatType, Params, SECTOR};
use crate::tree::{Node, Source, Tree};

/// The OEM name in the boot sector (the value Microsoft recommends for compatibility).
const OEM_NAME: &[u8; 8] = b"MSWIN4.1";
/// Boot code for a non-bootable volume: `int 18h` (the BIOS tries the next boot device), then
/// `hlt` in a loop.
const BOOT_CODE: [u8; 5] = [0xcd, 0x18, 0xf4, 0xeb, 0xfd];
const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
/// Sector of the FAT32 backup boot sector.
const BACKUP_BOOT: u32 = 6;
/// The label stored when none is given.
const NO_NAME: [u8; 11] = *b"NO NAME    ";

/// Options of the formatter.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// Volume label (up to 11 ASCII characters; `None` for "NO NAME" and no label entry).
    pub label: Option<String>,
    /// Volume ID (serial number).
    pub volume_id: u32,
    /// Sectors before the filesystem on its disk: the partition's start LBA.
    pub hidden_sectors: u32,
    /// Every timestamp (seconds since the Unix epoch, UTC; [`plan`] refuses one outside
    /// 1980–2107, [`DOS_MIN`]..=[`DOS_MAX`]; whole seconds).
    pub timestamp: Timestamp,
    /// Force FAT12/16/32 instead of mkfs.fat's choice.
    pub fat_type: Option<FatType>,
    /// Force a cluster size in sectors instead of mkfs.fat's choice.
    pub cluster_sectors: Option<u32>,
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self {
            label: None,
            volume_id: 0x1234_5678,
            hidden_sectors: 0,
            timestamp: Timestamp::from_secs(315_532_800), // 1980-01-01T00:00:00Z, the FAT epoch
            fat_type: None,
            cluster_sectors: None,
        }
    }
}

/// A volume ID derived from arbitrary bytes (FNV-1a), for callers without a seed of their own.
#[must_use]
pub fn derive_volume_id(seed: &[u8]) -> u32 {
    seed.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// One file's data: `len` bytes from `source` at byte `offset` of the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJob {
    /// Byte offset in the filesystem (the start of the file's cluster run).
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Where the bytes come from.
    pub source: Source,
    /// The path in the tree (for error messages).
    pub path: String,
}

/// A fully planned FAT filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    params: Params,
    metadata: Vec<(u64, Vec<u8>)>,
    files: Vec<FileJob>,
    used_clusters: u32,
}

struct PEntry {
    name: String,
    short: [u8; 11],
    lfn: bool,
    first_cluster: u32,
    kind: PKind,
}

enum PKind {
    File { len: u64, source: Source },
    Dir(PDir),
}

struct PDir {
    path: String,
    entries: Vec<PEntry>,
    first_cluster: u32,
    clusters: u32,
}

struct Alloc {
    next: u32,
    total: u32,
    cluster_bytes: u64,
    runs: Vec<(u32, u32)>,
}

impl Alloc {
    fn take(&mut self, bytes: u64) -> Result<(u32, u32)> {
        let n = bytes.div_ceil(self.cluster_bytes);
        if n == 0 {
            return Ok((0, 0));
        }
        let n = u32::try_from(n).map_err(|_| Error::new(ErrorKind::Overflow, "cluster count"))?;
        let first = self.next;
        // Keep counting past the end so the error can say how much is needed.
        self.next = self.next.saturating_add(n);
        if self.next - 2 <= self.total {
            self.runs.push((first, n));
        }
        Ok((first, n))
    }
}

impl Plan {
    /// The chosen parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Data clusters in use (directories and files).
    #[must_use]
    pub fn used_clusters(&self) -> u32 {
        self.used_clusters
    }

    /// The file data to copy, each a contiguous run at a known offset: they may be written in
    /// any order or in parallel.
    #[must_use]
    pub fn files(&self) -> &[FileJob] {
        &self.files
    }

    /// The metadata writes (boot sectors, FSInfo, FATs, directories) as (offset, bytes).
    #[must_use]
    pub fn metadata(&self) -> &[(u64, Vec<u8>)] {
        &self.metadata
    }

    /// Writes the filesystem into `dst` (a fresh, zeroed backing of at least the planned
    /// size): metadata first, then file data in parallel. All-zero blocks are not written, so
    /// a sparse backing stays sparse.
    ///
    /// # Errors
    /// `Io` naming the source file or the offset; `InvalidInput` when a host file changed
    /// length since it was planned or `dst` is too small.
    pub fn write(&self, dst: &impl WriteAt) -> Result<()> {
        let size = u64::from(self.params.sectors) * u64::from(SECTOR);
        if dst.capacity() < size {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the backing has {} bytes, the filesystem {size}",
                    dst.capacity()
                ),
            ));
        }
        for (off, bytes) in &self.metadata {
            write_skipping_zeros(dst, bytes, *off).map_err(|e| {
                Error::io(format!("cannot write FAT metadata at byte {off}"), None, e)
            })?;
        }
        self.files
            .par_iter()
            .try_for_each(|job| write_job(dst, job))
    }
}

fn write_job(dst: &impl WriteAt, job: &FileJob) -> Result<()> {
    match &job.source {
        Source::Bytes(b) => write_skipping_zeros(dst, b, job.offset)
            .map_err(|e| Error::io(format!("cannot write {}", job.path), None, e)),
        Source::File(p) => {
            let len = std::fs::metadata(p)
                .map_err(|e| Error::io("cannot read", Some(p), e))?
                .len();
            if len != job.len {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{} changed size while the image was built", p.display()),
                ));
            }
            // By path: an Overlay target records a reference instead of holding the file open.
            dst.copy_from_path(p, 0, job.len, job.offset)
                .map_err(|e| Error::io("cannot copy", Some(p), e))
        }
    }
}

/// Validates a volume label and pads it to 11 bytes.
///
/// # Errors
/// `InvalidInput` for more than 11 characters, non-ASCII, control characters, a leading space,
/// or any of `*?.,;:/\|+=<>[]"`.
pub fn label_bytes(label: &str) -> Result<[u8; 11]> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid FAT label {label:?}: {why}"),
        ))
    };
    if label.len() > 11 || !label.is_ascii() {
        return bad("at most 11 ASCII characters");
    }
    if label.starts_with(' ') {
        return bad("starts with a space");
    }
    if label
        .bytes()
        .any(|c| c < 0x20 || c == 0x7f || b"*?.,;:/\\|+=<>[]\"".contains(&c))
    {
        return bad("holds a character FAT labels cannot");
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// Plans a filesystem of `size` bytes holding `tree`.
///
/// # Errors
/// `NoSpace` ("contents need N bytes, the filesystem holds M") when the tree does not fit,
/// including a FAT12/16 root directory with too many entries; `InvalidInput` for names FAT
/// cannot store, case-insensitive name clashes, a bad label, or a size no FAT fits.
pub fn plan(tree: &Tree, size: u64, opts: &FormatOptions) -> Result<Plan> {
    let params = Params::choose(size, opts.fat_type, opts.cluster_sectors)?;
    let label = match &opts.label {
        Some(l) => label_bytes(l)?,
        None => NO_NAME,
    };
    let has_label = label != NO_NAME;
    if !opts.timestamp.within(DOS_MIN..=DOS_MAX) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "timestamp {} is outside what FAT stores ({DOS_MIN} to {DOS_MAX}: \
                 1980-01-01 to 2107-12-31)",
                opts.timestamp.secs
            ),
        ));
    }
    let (date, time) = dos_datetime(opts.timestamp.secs);
    let mut alloc = Alloc {
        next: 2,
        total: params.clusters,
        cluster_bytes: params.cluster_bytes(),
        runs: Vec::new(),
    };
    let mut root = build_dir(&tree.root, String::new(), true)?;
    let root_entries = root_slot_count(&root, has_label);
    if params.fat_type == FatType::Fat32 {
        let (first, n) = alloc.take(root_entries as u64 * 32)?;
        root.first_cluster = first;
        root.clusters = n;
    } else if root_entries > params.root_entries as usize {
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "the root directory needs {root_entries} entries, a FAT{} root holds {}",
                params.fat_type.bits(),
                params.root_entries
            ),
        ));
    }
    let mut files = Vec::new();
    allocate(&mut root, &mut alloc, &params, &mut files)?;
    let used = alloc.next - 2;
    if used > params.clusters {
        let cb = params.cluster_bytes();
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "FAT filesystem too small: the contents need {} bytes in {}-byte clusters, the {size}-byte filesystem holds {}",
                u64::from(used) * cb,
                cb,
                u64::from(params.clusters) * cb
            ),
        ));
    }
    let mut metadata = Vec::new();
    encode_dirs(
        &root,
        0,
        true,
        &params,
        &label,
        has_label,
        date,
        time,
        &mut metadata,
    )?;
    let fat = encode_fat(&params, &alloc.runs)?;
    let reserved_bytes = u64::from(params.reserved) * u64::from(SECTOR);
    let fat_bytes = u64::from(params.fat_sectors) * u64::from(SECTOR);
    metadata.push((reserved_bytes, fat.clone()));
    metadata.push((reserved_bytes + fat_bytes, fat));
    let boot = boot_sector(&params, &label, opts);
    if params.fat_type == FatType::Fat32 {
        let free = params.clusters - used;
        metadata.push((u64::from(SECTOR), fsinfo(free, alloc.next)));
        metadata.push((u64::from(BACKUP_BOOT) * u64::from(SECTOR), boot.clone()));
    }
    metadata.push((0, boot));
    metadata.sort_by_key(|(o, _)| *o);
    Ok(Plan {
        params,
        metadata,
        files,
        used_clusters: used,
    })
}

/// Plans and writes `tree` into `dst`, using all of its capacity.
///
/// # Errors
/// As for [`plan`] and [`Plan::write`].
pub fn format(tree: &Tree, dst: &impl WriteAt, opts: &FormatOptions) -> Result<Plan> {
    let p = plan(tree, dst.capacity(), opts)?;
    p.write(dst)?;
    Ok(p)
}

fn build_dir(map: &BTreeMap<String, Node>, path: String, is_root: bool) -> Result<PDir> {
    let mut taken: HashSet<[u8; 11]> = HashSet::new();
    let mut folded: BTreeMap<String, &str> = BTreeMap::new();
    for name in map.keys() {
        let full = format!("{path}/{name}");
        name::validate(name, &full)?;
        if let Some(other) = folded.insert(name.to_uppercase(), name) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{path}/{other:?} and {name:?} clash on FAT, whose names ignore case"),
            ));
        }
        if let Some(s) = name::exact_short(name) {
            taken.insert(s);
        }
    }
    // "." and ".." are reserved short names in every directory but the root.
    if !is_root {
        taken.insert(*b".          ");
        taken.insert(*b"..         ");
    }
    let mut entries = Vec::with_capacity(map.len());
    for (name, node) in map {
        let (short, lfn) = match name::exact_short(name) {
            Some(s) => (s, false),
            None => (name::alias(name, &mut taken)?, true),
        };
        let kind = match node {
            Node::File { len, source } => {
                if *len > u64::from(u32::MAX) {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("{path}/{name}: FAT files hold at most 4 GiB - 1"),
                    ));
                }
                PKind::File {
                    len: *len,
                    source: source.clone(),
                }
            }
            Node::Dir(d) => PKind::Dir(build_dir(d, format!("{path}/{name}"), false)?),
        };
        entries.push(PEntry {
            name: name.clone(),
            short,
            lfn,
            first_cluster: 0,
            kind,
        });
    }
    Ok(PDir {
        path,
        entries,
        first_cluster: 0,
        clusters: 0,
    })
}

fn entry_slots(e: &PEntry) -> usize {
    1 + if e.lfn {
        e.name.encode_utf16().count().div_ceil(13)
    } else {
        0
    }
}

fn root_slot_count(d: &PDir, has_label: bool) -> usize {
    d.entries.iter().map(entry_slots).sum::<usize>() + usize::from(has_label)
}

fn dir_slot_count(d: &PDir) -> usize {
    2 + d.entries.iter().map(entry_slots).sum::<usize>()
}

/// Depth-first, pre-order, in name order: a directory's own clusters, then its files, then its
/// subdirectories.
fn allocate(
    d: &mut PDir,
    alloc: &mut Alloc,
    params: &Params,
    files: &mut Vec<FileJob>,
) -> Result<()> {
    for e in &mut d.entries {
        if let PKind::Dir(sub) = &mut e.kind {
            let (first, n) = alloc.take(dir_slot_count(sub) as u64 * 32)?;
            sub.first_cluster = first;
            sub.clusters = n;
            e.first_cluster = first;
        }
    }
    for e in &mut d.entries {
        if let PKind::File { len, source } = &e.kind {
            let len = *len;
            let (first, _) = alloc.take(len)?;
            e.first_cluster = first;
            if first != 0 && first - 2 < params.clusters {
                files.push(FileJob {
                    offset: params.cluster_offset(first),
                    len,
                    source: source.clone(),
                    path: format!("{}/{}", d.path, e.name),
                });
            }
        }
    }
    for e in &mut d.entries {
        if let PKind::Dir(sub) = &mut e.kind {
            allocate(sub, alloc, params, files)?;
        }
    }
    Ok(())
}

fn short_entry(
    name: &[u8; 11],
    attr: u8,
    cluster: u32,
    size: u32,
    date: u16,
    time: u16,
) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    e[14..16].copy_from_slice(&time.to_le_bytes());
    e[16..18].copy_from_slice(&date.to_le_bytes());
    e[18..20].copy_from_slice(&date.to_le_bytes());
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[22..24].copy_from_slice(&time.to_le_bytes());
    e[24..26].copy_from_slice(&date.to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

#[allow(clippy::too_many_arguments)]
fn encode_dirs(
    d: &PDir,
    parent_cluster: u32,
    is_root: bool,
    params: &Params,
    label: &[u8; 11],
    has_label: bool,
    date: u16,
    time: u16,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    if is_root {
        if has_label {
            buf.extend(short_entry(label, ATTR_VOLUME, 0, 0, date, time));
        }
    } else {
        buf.extend(short_entry(
            b".          ",
            ATTR_DIR,
            d.first_cluster,
            0,
            date,
            time,
        ));
        buf.extend(short_entry(
            b"..         ",
            ATTR_DIR,
            parent_cluster,
            0,
            date,
            time,
        ));
    }
    for e in &d.entries {
        if e.lfn {
            for l in name::lfn_entries(&e.name, &e.short) {
                buf.extend(l);
            }
        }
        let (attr, size) = match &e.kind {
            PKind::File { len, .. } => (ATTR_ARCHIVE, *len as u32),
            PKind::Dir(_) => (ATTR_DIR, 0),
        };
        buf.extend(short_entry(
            &e.short,
            attr,
            e.first_cluster,
            size,
            date,
            time,
        ));
    }
    let offset = if is_root && params.fat_type != FatType::Fat32 {
        u64::from(params.reserved + 2 * params.fat_sectors) * u64::from(SECTOR)
    } else {
        params.cluster_offset(d.first_cluster)
    };
    out.push((offset, buf));
    for e in &d.entries {
        if let PKind::Dir(sub) = &e.kind {
            // ".." of a first-level directory points at the root as cluster 0, also on FAT32.
            let me = if is_root { 0 } else { d.first_cluster };
            encode_dirs(sub, me, false, params, label, has_label, date, time, out)?;
        }
    }
    Ok(())
}

fn encode_fat(params: &Params, runs: &[(u32, u32)]) -> Result<Vec<u8>> {
    let last = runs.iter().map(|(f, n)| f + n).max().unwrap_or(2);
    let mut entries = vec![0u32; last as usize];
    let (mask, eoc) = match params.fat_type {
        FatType::Fat12 => (0xfff, 0xfff),
        FatType::Fat16 => (0xffff, 0xffff),
        FatType::Fat32 => (0x0fff_ffff, 0x0fff_ffff),
    };
    entries[0] = (0x0fff_ff00 | 0xf8) & mask;
    entries[1] = mask;
    for &(first, n) in runs {
        for c in first..first + n - 1 {
            entries[c as usize] = c + 1;
        }
        entries[(first + n - 1) as usize] = eoc;
    }
    let fat_len = params.fat_sectors as usize * SECTOR as usize;
    let mut out = match params.fat_type {
        FatType::Fat12 => {
            let mut b = vec![0u8; (entries.len() * 3).div_ceil(2)];
            for (i, &v) in entries.iter().enumerate() {
                let at = i * 3 / 2;
                if i % 2 == 0 {
                    b[at] = v as u8;
                    b[at + 1] = (b[at + 1] & 0xf0) | ((v >> 8) as u8 & 0x0f);
                } else {
                    b[at] = (b[at] & 0x0f) | ((v as u8 & 0x0f) << 4);
                    b[at + 1] = (v >> 4) as u8;
                }
            }
            b
        }
        FatType::Fat16 => entries
            .iter()
            .flat_map(|&v| (v as u16).to_le_bytes())
            .collect(),
        FatType::Fat32 => entries.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    };
    if out.len() > fat_len {
        return Err(Error::new(
            ErrorKind::NoSpace,
            "the FAT is too small for the clusters used",
        ));
    }
    out.truncate(fat_len);
    Ok(out)
}

fn boot_sector(p: &Params, label: &[u8; 11], opts: &FormatOptions) -> Vec<u8> {
    let mut b = vec![0u8; SECTOR as usize];
    let fat32 = p.fat_type == FatType::Fat32;
    let code_at = if fat32 { 90 } else { 62 };
    b[0] = 0xeb;
    b[1] = (code_at - 2) as u8;
    b[2] = 0x90;
    b[3..11].copy_from_slice(OEM_NAME);
    b[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
    b[13] = p.cluster_sectors as u8;
    b[14..16].copy_from_slice(&(p.reserved as u16).to_le_bytes());
    b[16] = 2;
    b[17..19].copy_from_slice(&(p.root_entries as u16).to_le_bytes());
    if p.sectors < 65536 {
        b[19..21].copy_from_slice(&(p.sectors as u16).to_le_bytes());
    } else {
        b[32..36].copy_from_slice(&p.sectors.to_le_bytes());
    }
    b[21] = 0xf8;
    if !fat32 {
        b[22..24].copy_from_slice(&(p.fat_sectors as u16).to_le_bytes());
    }
    b[24..26].copy_from_slice(&p.secs_track.to_le_bytes());
    b[26..28].copy_from_slice(&p.heads.to_le_bytes());
    b[28..32].copy_from_slice(&opts.hidden_sectors.to_le_bytes());
    let vi = if fat32 {
        b[36..40].copy_from_slice(&p.fat_sectors.to_le_bytes());
        b[44..48].copy_from_slice(&2u32.to_le_bytes()); // root cluster
        b[48..50].copy_from_slice(&1u16.to_le_bytes()); // FSInfo sector
        b[50..52].copy_from_slice(&(BACKUP_BOOT as u16).to_le_bytes());
        64
    } else {
        36
    };
    b[vi] = 0x80; // drive number: a hard disk
    b[vi + 2] = 0x29; // extended boot signature
    b[vi + 3..vi + 7].copy_from_slice(&opts.volume_id.to_le_bytes());
    b[vi + 7..vi + 18].copy_from_slice(label);
    let fs = match p.fat_type {
        FatType::Fat12 => b"FAT12   ",
        FatType::Fat16 => b"FAT16   ",
        FatType::Fat32 => b"FAT32   ",
    };
    b[vi + 18..vi + 26].copy_from_slice(fs);
    b[code_at..code_at + BOOT_CODE.len()].copy_from_slice(&BOOT_CODE);
    b[510] = 0x55;
    b[511] = 0xaa;
    b
}

fn fsinfo(free: u32, next_free: u32) -> Vec<u8> {
    let mut s = vec![0u8; SECTOR as usize];
    s[..4].copy_from_slice(b"RRaA");
    s[484..488].copy_from_slice(b"rrAa");
    s[488..492].copy_from_slice(&free.to_le_bytes());
    s[492..496].copy_from_slice(&next_free.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// The UTC calendar date `(year, month 1–12, day 1–31)` of a Unix time (Howard Hinnant's
/// `civil_from_days`; any `i64`, before 1970 included).
#[must_use]
pub fn civil_date(unix: i64) -> (i64, i64, i64) {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The earliest time FAT stores (1980-01-01T00:00:00Z).
pub const DOS_MIN: i64 = 315_532_800;
/// The latest time FAT stores (2107-12-31T23:59:59Z).
pub const DOS_MAX: i64 = 4_354_819_199;

/// (date, time) in DOS format for a Unix timestamp (UTC), clamped to 1980-01-01..2107-12-31.
#[must_use]
pub fn dos_datetime(unix: i64) -> (u16, u16) {
    let t = unix.clamp(DOS_MIN, DOS_MAX);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_date(t);
    let date = (((y - 1980) << 9) | (m << 5) | d) as u16;
    let time = (((secs / 3600) << 11) | (((secs / 60) % 60) << 5) | ((secs % 60) / 2)) as u16;
    (date, time)
}

#[cfg(test)]
mod tests {
    use imagetool_blockio::{MemImage, ReadAt};

    use super::*;

    #[test]
    fn test_dos_datetime() {
        assert_eq!(dos_datetime(0), (0x21, 0)); // clamped to 1980-01-01
        // 2024-02-29 13:45:30 UTC
        let (d, t) = dos_datetime(1_709_214_330);
        assert_eq!((d >> 9, (d >> 5) & 15, d & 31), (44, 2, 29));
        assert_eq!((t >> 11, (t >> 5) & 63, (t & 31) * 2), (13, 45, 30));
    }

    #[test]
    fn test_too_much_content_is_no_space() {
        let mut t = Tree::new();
        t.add_bytes("big", vec![1u8; 3 << 20]).unwrap();
        let e = plan(&t, 2 << 20, &FormatOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        assert!(e.to_string().contains("contents need"), "{e}");
    }

    #[test]
    fn test_case_clash_is_rejected() {
        let mut t = Tree::new();
        t.add_bytes("EFI/a", vec![1]).unwrap();
        t.add_bytes("efi/b", vec![1]).unwrap();
        let e = plan(&t, 8 << 20, &FormatOptions::default()).unwrap_err();
        assert!(e.to_string().contains("clash"), "{e}");
    }

    #[test]
    fn test_small_image_layout_and_data_offsets() {
        let mut t = Tree::new();
        t.add_bytes("EFI/BOOT/BOOTX64.EFI", b"MZ-fake".to_vec())
            .unwrap();
        let img = MemImage::new(8 << 20);
        let p = format(&t, &img, &FormatOptions::default()).unwrap();
        assert_eq!(p.params().fat_type, FatType::Fat12);
        let job = &p.files()[0];
        let mut buf = [0u8; 7];
        img.read_exact_at(&mut buf, job.offset).unwrap();
        assert_eq!(&buf, b"MZ-fake");
    }
}
