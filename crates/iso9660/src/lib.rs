//! ISO 9660 images for imagetool: Rock Ridge, Joliet, El Torito and isohybrid, written from an
//! [`imagetool_fstree::Tree`] with no temporary copies and deterministically.
//!
//! ```text
//!   Tree (+ Options: volume id, dates, boot files, hybrid MBR code)
//!        │ plan(): names, records, continuation areas, every extent's LBA
//!        ▼
//!   Plan ──write()──▶ any WriteAt: metadata once, then file data in parallel,
//!                     host files copied by reference (copy_from_path), never read whole
//! ```
//!
//! * **Primary tree**: ISO 9660 level 3 names (d-characters, up to 31, `;1` on files), with
//!   Rock Ridge (RRIP 1991A: `PX`, `TF`, `NM`, `SL`, `PN`, continuation areas for long names
//!   and targets; `SP` and `ER` on the root) so Linux sees the real names, modes, owners,
//!   times and symlinks. Files over 4 GiB − 2 KiB are written as multi-extent files.
//! * **Joliet** (optional): a second directory tree with UCS-2 names of up to 64 characters
//!   (directories and regular files only, as xorriso writes it).
//! * **El Torito**: a BIOS no-emulation image (with the boot info table patched in, as
//!   `-boot-info-table`) and an EFI image (platform 0xEF), listed in a visible boot catalog.
//! * **isohybrid**: the MBR and GPT xorriso's `-isohybrid-mbr` and `-isohybrid-gpt-basdat`
//!   write, so the same image boots from a USB stick (see `hybrid`).
//!
//! Every date in the volume descriptors is [`Options::epoch`]; directories are in ECMA-119
//! order; file data is laid out boot files first, then in directory order. Two runs with the
//! same inputs give the same bytes.
//!
//! ```
//! use imagetool_blockio::MemImage;
//! use imagetool_fstree::{Meta, Source, Tree};
//! use imagetool_iso9660::{Options, plan};
//!
//! let mut tree = Tree::new(Meta::dir(0o755));
//! tree.add_file(b"version.txt", Source::Bytes(b"25.11\n".to_vec().into()), Meta::file(0o444)).unwrap();
//! tree.add_symlink(b"latest", b"version.txt", Meta::symlink()).unwrap();
//! let p = plan(&tree, &Options::new("NIXOS_ISO", 1_700_000_000)).unwrap();
//! let img = MemImage::new(p.size());
//! p.write(&img).unwrap();
//! let bytes = img.to_vec().unwrap();
//! assert_eq!(&bytes[16 * 2048 + 1..16 * 2048 + 6], b"CD001");
//! ```
#![deny(missing_docs)]

mod boot;
mod error;
mod hybrid;
mod names;
mod rrip;

use std::collections::HashMap;
use std::sync::Arc;

use imagetool_blockio::WriteAt;
use imagetool_fstree::{Kind, Meta, NodeId, Source, Tree};
use rayon::prelude::*;

pub use error::{Error, ErrorKind, Result};

use rrip::{both16, both32};

/// The logical block size.
pub const BLOCK: u64 = 2048;
/// The largest extent one directory record describes (4 GiB − 2 KiB); larger files are split.
pub const MAX_EXTENT: u64 = 0xFFFF_F800;
/// The largest BIOS boot file read into memory for the boot info table.
const MAX_BOOT_FILE: u64 = 64 << 20;

/// The BIOS El Torito entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiosBoot {
    /// The boot file's path in the tree (`isolinux/isolinux.bin`).
    pub path: Vec<u8>,
    /// 512-byte sectors the BIOS loads (`-boot-load-size`, 4 for isolinux).
    pub load_sectors: u16,
    /// Patch the boot info table into the file (`-boot-info-table`).
    pub info_table: bool,
}

/// isohybrid tables (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hybrid {
    /// The hybrid MBR code (syslinux's `isohdpfx.bin`; its first 432 bytes are used).
    pub mbr_code: Vec<u8>,
    /// Also write a GPT (`-isohybrid-gpt-basdat`).
    pub gpt: bool,
    /// The GPT disk GUID (its text value; GPT stores the first three fields little-endian,
    /// and those first 4 on-disk bytes are also the MBR disk signature).
    pub disk_guid: imagetool_fstree::Uuid,
}

/// What the image looks like beyond its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The volume identifier (at most 32 printable ASCII characters); Linux reports it as the
    /// filesystem label.
    pub volume_id: String,
    /// The system identifier (at most 32 characters).
    pub system_id: String,
    /// The publisher identifier (at most 128 characters).
    pub publisher: String,
    /// The data preparer identifier (at most 128 characters).
    pub preparer: String,
    /// The application identifier (at most 128 characters).
    pub application: String,
    /// `SOURCE_DATE_EPOCH`: the volume's creation and modification dates.
    pub epoch: i64,
    /// Write a Joliet tree too.
    pub joliet: bool,
    /// The BIOS boot entry.
    pub bios: Option<BiosBoot>,
    /// The EFI boot image's path in the tree (a FAT image, `boot/efi.img`).
    pub efi_image: Option<Vec<u8>>,
    /// Where the boot catalog appears in the tree when there is a boot entry.
    pub catalog_path: Vec<u8>,
    /// isohybrid MBR (and GPT).
    pub hybrid: Option<Hybrid>,
}

impl Options {
    /// Options with Joliet, no boot entries and no hybrid tables.
    #[must_use]
    pub fn new(volume_id: &str, epoch: i64) -> Self {
        Self {
            volume_id: volume_id.to_string(),
            system_id: "LINUX".to_string(),
            publisher: String::new(),
            preparer: "IMAGETOOL".to_string(),
            application: String::new(),
            epoch,
            joliet: true,
            bios: None,
            efi_image: None,
            catalog_path: b"boot.catalog".to_vec(),
            hybrid: None,
        }
    }
}

/// Where one file's data goes.
#[derive(Debug, Clone)]
struct Data {
    lba: u32,
    size: u64,
}

/// A child of a directory as both trees name it.
#[derive(Debug, Clone)]
struct Child {
    name: Box<[u8]>,
    node: NodeId,
    iso_id: Vec<u8>,
    joliet_id: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Dir {
    node: NodeId,
    parent: usize,
    /// Children in ECMA-119 order of their ISO identifiers.
    children: Vec<Child>,
    /// Index into `dirs` of each child that is a directory, by node.
    iso_size: u64,
    joliet_size: u64,
    iso_lba: u32,
    joliet_lba: u32,
}

/// System use bytes of one record: the inline part and the continuation chain it points to.
#[derive(Debug, Clone, Default)]
struct Susp {
    inline: Vec<u8>,
    chunk: Option<usize>,
}

#[derive(Debug, Clone)]
struct Chunk {
    bytes: Vec<u8>,
    next: Option<usize>,
    block: u32,
    offset: u32,
}

impl Chunk {
    fn len(&self) -> usize {
        self.bytes.len() + if self.next.is_some() { rrip::CE_LEN } else { 0 }
    }
}

/// A planned image: every byte offset decided; [`Plan::write`] puts it on any [`WriteAt`].
#[derive(Debug, Clone)]
pub struct Plan {
    size: u64,
    meta: Vec<(u64, Vec<u8>)>,
    files: Vec<FileJob>,
}

/// One file's data to copy.
#[derive(Debug, Clone)]
struct FileJob {
    offset: u64,
    source: Source,
    ranges: Vec<std::ops::Range<u64>>,
    path: String,
}

impl Plan {
    /// The image size in bytes.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The number of files whose data the image holds.
    #[must_use]
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Writes the image into `dst` (fresh and at least [`Plan::size`] bytes): metadata first,
    /// then file data in parallel.
    ///
    /// # Errors
    /// `Io` naming the host file or the image range that failed.
    pub fn write(&self, dst: &impl WriteAt) -> Result<()> {
        for (off, bytes) in &self.meta {
            imagetool_blockio::write_skipping_zeros(dst, bytes, *off)
                .map_err(|e| Error::io(None, &format!("writing metadata at byte {off}"), e))?;
        }
        self.files.par_iter().try_for_each(|job| match &job.source {
            Source::Host(p) => {
                for r in &job.ranges {
                    dst.copy_from_path(p, r.start, r.end - r.start, job.offset + r.start)
                        .map_err(|e| Error::io(Some(p), &format!("copying {}", job.path), e))?;
                }
                Ok(())
            }
            Source::Bytes(b) => imagetool_blockio::write_skipping_zeros(dst, b, job.offset)
                .map_err(|e| Error::io(None, &format!("writing {}", job.path), e)),
        })
    }
}

fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, what, msg)
}

fn check_text(key: &str, v: &str, max: usize) -> Result<()> {
    if v.len() > max || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(invalid(
            key,
            format!("{v:?} must be at most {max} printable ASCII characters"),
        ));
    }
    Ok(())
}

fn padded(v: &str, n: usize) -> Vec<u8> {
    let mut b = v.as_bytes().to_vec();
    b.resize(n, b' ');
    b
}

fn ucs2_padded(v: &str, n: usize) -> Vec<u8> {
    let mut b: Vec<u8> = v
        .encode_utf16()
        .take(n / 2)
        .flat_map(u16::to_be_bytes)
        .collect();
    while b.len() < n {
        b.extend_from_slice(&[0, b' ']);
    }
    b.truncate(n);
    b
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn file_size(tree: &Tree, id: NodeId) -> u64 {
    match &tree.node(id).kind {
        Kind::File(f) => f.size,
        _ => 0,
    }
}

fn is_dir(tree: &Tree, id: NodeId) -> bool {
    matches!(tree.node(id).kind, Kind::Dir(_))
}

fn mode_of(tree: &Tree, id: NodeId) -> u32 {
    let n = tree.node(id);
    let t = match n.kind {
        Kind::File(_) => 0o100_000,
        Kind::Dir(_) => 0o040_000,
        Kind::Symlink(_) => 0o120_000,
        Kind::CharDev { .. } => 0o020_000,
        Kind::BlockDev { .. } => 0o060_000,
        Kind::Fifo => 0o010_000,
        Kind::Socket => 0o140_000,
    };
    t | u32::from(n.meta.mode & 0o7777)
}

/// Rock Ridge entries describing node `id` (named `name`, `None` for `.` and `..`).
fn rr_entries(tree: &Tree, id: NodeId, nlink: u32, name: Option<&[u8]>) -> Vec<Vec<u8>> {
    let n = tree.node(id);
    let m: &Meta = &n.meta;
    let mut flags = 1 | 128;
    let mut tail = Vec::new();
    if let Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } = n.kind {
        flags |= 2;
        tail.push(rrip::pn(major, minor));
    }
    if let Some(name) = name {
        flags |= 8;
        tail.extend(rrip::nm(name));
    }
    if let Kind::Symlink(t) = &n.kind {
        flags |= 4;
        tail.extend(rrip::sl(t));
    }
    let mut v = vec![
        rrip::rr(flags),
        rrip::px(mode_of(tree, id), nlink, m.uid, m.gid),
        rrip::tf(m.mtime, m.atime, m.ctime),
    ];
    v.extend(tail);
    v
}

/// Splits `entries` into an inline part of at most `budget` bytes and continuation chunks.
fn place_susp(entries: Vec<Vec<u8>>, budget: usize, chunks: &mut Vec<Chunk>) -> Susp {
    let total: usize = entries.iter().map(Vec::len).sum();
    if total <= budget {
        return Susp {
            inline: entries.concat(),
            chunk: None,
        };
    }
    let mut inline = Vec::new();
    let mut it = entries.into_iter().peekable();
    while let Some(e) = it.peek() {
        if inline.len() + e.len() + rrip::CE_LEN > budget {
            break;
        }
        inline.extend_from_slice(e);
        it.next();
    }
    let first = chunks.len();
    let mut cur = Vec::new();
    for e in it {
        if cur.len() + e.len() + rrip::CE_LEN > BLOCK as usize {
            let idx = chunks.len();
            chunks.push(Chunk {
                bytes: std::mem::take(&mut cur),
                next: Some(idx + 1),
                block: 0,
                offset: 0,
            });
        }
        cur.extend_from_slice(&e);
    }
    chunks.push(Chunk {
        bytes: cur,
        next: None,
        block: 0,
        offset: 0,
    });
    Susp {
        inline,
        chunk: Some(first),
    }
}

fn susp_len(s: &Susp) -> usize {
    s.inline.len() + if s.chunk.is_some() { rrip::CE_LEN } else { 0 }
}

/// Length of a directory record with identifier length `id_len` and system use `su` bytes
/// (padded to an even length).
fn record_len(id_len: usize, su: usize) -> usize {
    let base = 33 + id_len + usize::from(id_len.is_multiple_of(2));
    let l = base + su;
    l + l % 2
}

/// Bytes of a directory of records with these lengths, records never straddling a block.
fn dir_bytes(lens: impl Iterator<Item = usize>) -> u64 {
    let mut off = 0u64;
    for l in lens {
        let l = l as u64;
        if off % BLOCK + l > BLOCK {
            off = off.div_ceil(BLOCK) * BLOCK;
        }
        off += l;
    }
    off.div_ceil(BLOCK).max(1) * BLOCK
}

/// The record extents of a file of `size` bytes starting at `lba`: `(lba, len, last)`.
fn extents(lba: u32, size: u64) -> Vec<(u32, u32, bool)> {
    if size <= MAX_EXTENT {
        return vec![(lba, size as u32, true)];
    }
    let mut v = Vec::new();
    let mut done = 0u64;
    while done < size {
        let len = (size - done).min(MAX_EXTENT);
        let l = lba + (done / BLOCK) as u32;
        done += len;
        v.push((l, len as u32, done == size));
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn record(
    out: &mut Vec<u8>,
    id: &[u8],
    lba: u32,
    len: u32,
    flags: u8,
    mtime: i64,
    su: &[u8],
    ce: Option<&Chunk>,
    ce_lba: u32,
) {
    let mut su = su.to_vec();
    if let Some(c) = ce {
        su.extend(rrip::ce(ce_lba + c.block, c.offset, c.len() as u32));
    }
    let total = record_len(id.len(), su.len());
    let start = out.len();
    out.push(total as u8);
    out.push(0);
    out.extend_from_slice(&both32(lba));
    out.extend_from_slice(&both32(len));
    out.extend_from_slice(&rrip::date7(mtime));
    out.push(flags);
    out.push(0);
    out.push(0);
    out.extend_from_slice(&both16(1));
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    if id.len().is_multiple_of(2) {
        out.push(0);
    }
    out.extend_from_slice(&su);
    out.resize(start + total, 0);
}

/// Appends `rec` to a directory buffer, moving to the next block when it would straddle one.
fn push_record(dir: &mut Vec<u8>, rec: &[u8]) {
    let off = dir.len() as u64;
    if off % BLOCK + rec.len() as u64 > BLOCK {
        dir.resize(off.div_ceil(BLOCK) as usize * BLOCK as usize, 0);
    }
    dir.extend_from_slice(rec);
}

fn path_table(entries: &[(Vec<u8>, u32, u16)], big_endian: bool) -> Vec<u8> {
    let mut t = Vec::new();
    for (id, lba, parent) in entries {
        t.push(id.len() as u8);
        t.push(0);
        if big_endian {
            t.extend_from_slice(&lba.to_be_bytes());
            t.extend_from_slice(&parent.to_be_bytes());
        } else {
            t.extend_from_slice(&lba.to_le_bytes());
            t.extend_from_slice(&parent.to_le_bytes());
        }
        t.extend_from_slice(id);
        if id.len() % 2 == 1 {
            t.push(0);
        }
    }
    t
}

fn blocks(bytes: u64) -> u32 {
    bytes.div_ceil(BLOCK) as u32
}

/// A volume descriptor: the primary (`joliet` false) or Joliet's supplementary one, for a
/// volume of `volume_blocks` blocks whose path table is `pt` (length, L and M table blocks) and
/// whose root directory is `root` (modified at `root_mtime`).
fn volume_descriptor(
    opts: &Options,
    joliet: bool,
    volume_blocks: u32,
    pt: (usize, u64, u64),
    root: &Dir,
    root_mtime: i64,
) -> Vec<u8> {
    let mut s = vec![0u8; BLOCK as usize];
    s[0] = if joliet { 2 } else { 1 };
    s[1..6].copy_from_slice(b"CD001");
    s[6] = 1;
    let text = |v: &str, n: usize| {
        if joliet {
            ucs2_padded(v, n)
        } else {
            padded(v, n)
        }
    };
    s[8..40].copy_from_slice(&text(&opts.system_id, 32));
    s[40..72].copy_from_slice(&text(&opts.volume_id, 32));
    s[80..88].copy_from_slice(&both32(volume_blocks));
    if joliet {
        s[88..91].copy_from_slice(b"%/E");
    }
    s[120..124].copy_from_slice(&both16(1));
    s[124..128].copy_from_slice(&both16(1));
    s[128..132].copy_from_slice(&both16(BLOCK as u16));
    let (pt_len, l, m) = pt;
    s[132..140].copy_from_slice(&both32(pt_len as u32));
    s[140..144].copy_from_slice(&(l as u32).to_le_bytes());
    s[148..152].copy_from_slice(&(m as u32).to_be_bytes());
    let mut rr = Vec::new();
    let (lba, size) = if joliet {
        (root.joliet_lba, root.joliet_size)
    } else {
        (root.iso_lba, root.iso_size)
    };
    record(&mut rr, &[0], lba, size as u32, 2, root_mtime, &[], None, 0);
    s[156..190].copy_from_slice(&rr[..34]);
    s[190..318].copy_from_slice(&text("", 128));
    s[318..446].copy_from_slice(&text(&opts.publisher, 128));
    s[446..574].copy_from_slice(&text(&opts.preparer, 128));
    s[574..702].copy_from_slice(&text(&opts.application, 128));
    for r in [702..739, 739..776, 776..813] {
        let n = r.len();
        s[r].copy_from_slice(&text("", n));
    }
    let d = rrip::date17(opts.epoch);
    s[813..830].copy_from_slice(&d);
    s[830..847].copy_from_slice(&d);
    let unset: [u8; 17] = *b"0000000000000000\0";
    s[847..864].copy_from_slice(&unset);
    s[864..881].copy_from_slice(&unset);
    s[881] = 1;
    s
}

/// The BIOS boot file's bytes with its boot info table patched in (`d`: where it lies).
fn patched_boot_file(tree: &Tree, id: NodeId, d: &Data, b: &BiosBoot) -> Result<Vec<u8>> {
    if d.size > MAX_BOOT_FILE {
        return Err(invalid(
            "bios.path",
            format!(
                "{} is {} bytes; a BIOS boot file with a boot info table must be under 64 MiB",
                lossy(&b.path),
                d.size
            ),
        ));
    }
    let mut bytes = match &tree.node(id).kind {
        Kind::File(f) => match &f.source {
            Source::Bytes(b) => b.to_vec(),
            Source::Host(p) => {
                std::fs::read(p).map_err(|e| Error::io(Some(p), "reading the BIOS boot file", e))?
            }
        },
        _ => Vec::new(),
    };
    if bytes.len() as u64 != d.size {
        return Err(invalid(
            "bios.path",
            format!(
                "{} changed size while the image was planned",
                lossy(&b.path)
            ),
        ));
    }
    boot::patch_info_table(&mut bytes, d.lba);
    Ok(bytes)
}

/// Plans the image of `tree` with `opts`.
///
/// # Errors
/// `InvalidInput` for a bad option (naming it) or a boot path missing from the tree or not a
/// regular file; `Unsupported` when the image would exceed ISO 9660's 32-bit block numbers or
/// the tree nests directories deeper than the path table allows (65535 directories);
/// `Io` reading the BIOS boot file for its info table.
pub fn plan(tree: &Tree, opts: &Options) -> Result<Plan> {
    check_text("volume_id", &opts.volume_id, 32)?;
    check_text("system_id", &opts.system_id, 32)?;
    check_text("publisher", &opts.publisher, 128)?;
    check_text("preparer", &opts.preparer, 128)?;
    check_text("application", &opts.application, 128)?;
    let mut tree = tree.clone();
    let boot_file = |path: &[u8], key: &str, tree: &Tree| -> Result<NodeId> {
        let id = tree
            .lookup(path)
            .ok_or_else(|| invalid(key, format!("{} is not in the tree", lossy(path))))?;
        if !matches!(tree.node(id).kind, Kind::File(_)) {
            return Err(invalid(
                key,
                format!("{} is not a regular file", lossy(path)),
            ));
        }
        Ok(id)
    };
    let bios_id = match &opts.bios {
        Some(b) => Some(boot_file(&b.path, "bios.path", &tree)?),
        None => None,
    };
    let efi_id = match &opts.efi_image {
        Some(p) => Some(boot_file(p, "efi_image", &tree)?),
        None => None,
    };
    if opts.hybrid.is_some() && bios_id.is_none() {
        return Err(invalid(
            "hybrid",
            "isohybrid needs a BIOS boot file (its MBR code loads it)",
        ));
    }
    let catalog_id = if bios_id.is_some() || efi_id.is_some() {
        let meta = Meta::file(0o444).at(imagetool_fstree::Timestamp::from_secs(opts.epoch));
        let id = tree
            .add_file(
                &opts.catalog_path,
                Source::Bytes(Arc::from(vec![0u8; 2048])),
                meta,
            )
            .map_err(|e| invalid("catalog_path", e.to_string()))?;
        Some(id)
    } else {
        None
    };

    // Directories, breadth first with children in ISO order: the ISO path table's order.
    let mut nlink: HashMap<NodeId, u32> = HashMap::new();
    let mut dirs: Vec<Dir> = Vec::new();
    let mut dir_index: HashMap<NodeId, usize> = HashMap::new();
    dirs.push(Dir {
        node: NodeId::ROOT,
        parent: 0,
        children: Vec::new(),
        iso_size: 0,
        joliet_size: 0,
        iso_lba: 0,
        joliet_lba: 0,
    });
    dir_index.insert(NodeId::ROOT, 0);
    let mut i = 0;
    while i < dirs.len() {
        let node = dirs[i].node;
        let kids: Vec<(Box<[u8]>, NodeId)> = tree
            .children(node)
            .map(|(n, c)| (Box::from(n), c))
            .collect();
        let named: Vec<(&[u8], bool)> = kids
            .iter()
            .map(|(n, c)| (&**n, is_dir(&tree, *c)))
            .collect();
        let iso = names::iso_names(&named);
        let joliet = names::joliet_names(&named);
        let mut children: Vec<Child> = kids
            .into_iter()
            .zip(iso.into_iter().zip(joliet))
            .map(|((name, node), (iso_id, joliet_id))| Child {
                name,
                node,
                iso_id,
                joliet_id,
            })
            .collect();
        children.sort_by(|a, b| names::iso_cmp(&a.iso_id, &b.iso_id));
        let mut subdirs = 0;
        for c in &children {
            if is_dir(&tree, c.node) {
                subdirs += 1;
                dir_index.insert(c.node, dirs.len());
                dirs.push(Dir {
                    node: c.node,
                    parent: i,
                    children: Vec::new(),
                    iso_size: 0,
                    joliet_size: 0,
                    iso_lba: 0,
                    joliet_lba: 0,
                });
            } else {
                *nlink.entry(c.node).or_insert(0) += 1;
            }
        }
        nlink.insert(node, 2 + subdirs);
        dirs[i].children = children;
        i += 1;
    }
    if dirs.len() > usize::from(u16::MAX) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "tree",
            format!(
                "{} directories: the ISO 9660 path table holds at most 65535",
                dirs.len()
            ),
        ));
    }
    // Joliet's path table order: breadth first with children in Joliet identifier order.
    let mut joliet_order: Vec<usize> = vec![0];
    let mut j = 0;
    while j < joliet_order.len() {
        let d = &dirs[joliet_order[j]];
        let mut subs: Vec<&Child> = d
            .children
            .iter()
            .filter(|c| is_dir(&tree, c.node))
            .collect();
        subs.sort_by(|a, b| a.joliet_id.cmp(&b.joliet_id));
        joliet_order.extend(subs.iter().map(|c| dir_index[&c.node]));
        j += 1;
    }

    // System use areas and directory sizes.
    let mut chunks: Vec<Chunk> = Vec::new();
    // Per directory: the SUSP of ".", "..", and each child.
    let mut susps: Vec<(Susp, Susp, Vec<Susp>)> = Vec::with_capacity(dirs.len());
    for (di, d) in dirs.iter().enumerate() {
        let nl = |id: NodeId| nlink.get(&id).copied().unwrap_or(1);
        let mut dot = rr_entries(&tree, d.node, nl(d.node), None);
        if di == 0 {
            dot.insert(0, rrip::sp());
            dot.push(rrip::er());
        }
        let dot = place_susp(dot, 255 - 34, &mut chunks);
        let parent = dirs[d.parent].node;
        let dotdot = place_susp(
            rr_entries(&tree, parent, nl(parent), None),
            255 - 34,
            &mut chunks,
        );
        let mut kids = Vec::with_capacity(d.children.len());
        for c in &d.children {
            let e = rr_entries(&tree, c.node, nl(c.node), Some(&c.name));
            let budget = 255 - record_len(c.iso_id.len(), 0);
            kids.push(place_susp(e, budget, &mut chunks));
        }
        susps.push((dot, dotdot, kids));
    }
    for (d, (dot, dotdot, kids)) in dirs.iter_mut().zip(&susps) {
        let mut lens = vec![
            record_len(1, susp_len(dot)),
            record_len(1, susp_len(dotdot)),
        ];
        for (c, s) in d.children.iter().zip(kids) {
            let n = extents(0, file_size(&tree, c.node)).len();
            lens.extend(std::iter::repeat_n(
                record_len(c.iso_id.len(), susp_len(s)),
                n,
            ));
        }
        d.iso_size = dir_bytes(lens.into_iter());
        let mut jl = vec![record_len(1, 0), record_len(1, 0)];
        for c in d
            .children
            .iter()
            .filter(|c| matches!(tree.node(c.node).kind, Kind::File(_) | Kind::Dir(_)))
        {
            let n = extents(0, file_size(&tree, c.node)).len();
            jl.extend(std::iter::repeat_n(record_len(c.joliet_id.len(), 0), n));
        }
        d.joliet_size = dir_bytes(jl.into_iter());
    }
    // Continuation areas: packed into blocks in order, never straddling one.
    let mut ce_blocks = 0u32;
    let mut ce_off = 0u32;
    for c in &mut chunks {
        let len = c.len() as u32;
        if ce_blocks == 0 || ce_off + len > BLOCK as u32 {
            ce_blocks += 1;
            ce_off = 0;
        }
        c.block = ce_blocks - 1;
        c.offset = ce_off;
        ce_off += len;
    }

    // Block layout.
    let mut next: u64 = 16;
    let pvd_lba = next;
    next += 1;
    let br_lba = catalog_id.map(|_| {
        next += 1;
        next - 1
    });
    let svd_lba = opts.joliet.then(|| {
        next += 1;
        next - 1
    });
    let term_lba = next;
    next += 1;
    let pt_entries = |order: &[usize], joliet: bool, dirs: &[Dir], number: &HashMap<usize, u16>| {
        order
            .iter()
            .map(|&di| {
                let d = &dirs[di];
                let id = if di == 0 {
                    vec![0]
                } else {
                    let parent = &dirs[d.parent];
                    parent
                        .children
                        .iter()
                        .find(|c| c.node == d.node)
                        .map(|c| {
                            if joliet {
                                c.joliet_id.clone()
                            } else {
                                c.iso_id.clone()
                            }
                        })
                        .unwrap_or_default()
                };
                let lba = if joliet { d.joliet_lba } else { d.iso_lba };
                (id, lba, number.get(&d.parent).copied().unwrap_or(1))
            })
            .collect::<Vec<_>>()
    };
    let iso_order: Vec<usize> = (0..dirs.len()).collect();
    let iso_number: HashMap<usize, u16> = iso_order
        .iter()
        .enumerate()
        .map(|(n, &d)| (d, (n + 1) as u16))
        .collect();
    let joliet_number: HashMap<usize, u16> = joliet_order
        .iter()
        .enumerate()
        .map(|(n, &d)| (d, (n + 1) as u16))
        .collect();
    // Sizes of the path tables do not depend on LBAs.
    let iso_pt_len = path_table(&pt_entries(&iso_order, false, &dirs, &iso_number), false).len();
    let joliet_pt_len = path_table(
        &pt_entries(&joliet_order, true, &dirs, &joliet_number),
        false,
    )
    .len();
    let pt_blocks = u64::from(blocks(iso_pt_len as u64));
    let l_pt = next;
    let m_pt = l_pt + pt_blocks;
    next = m_pt + pt_blocks;
    let jpt_blocks = u64::from(blocks(joliet_pt_len as u64));
    let (jl_pt, jm_pt) = if opts.joliet {
        let l = next;
        next += 2 * jpt_blocks;
        (l, l + jpt_blocks)
    } else {
        (0, 0)
    };
    let to32 = |v: u64, what: &str| -> Result<u32> {
        u32::try_from(v).map_err(|_| {
            Error::new(
                ErrorKind::Unsupported,
                "image",
                format!("{what} beyond block 2^32: the image would exceed 8 TiB"),
            )
        })
    };
    for d in &mut dirs {
        d.iso_lba = to32(next, "directories")?;
        next += d.iso_size / BLOCK;
    }
    if opts.joliet {
        for &di in &joliet_order {
            dirs[di].joliet_lba = to32(next, "directories")?;
            next += dirs[di].joliet_size / BLOCK;
        }
    }
    let ce_lba = to32(next, "continuation areas")?;
    next += u64::from(ce_blocks);
    // File data: boot files first, the catalog, then every other file in directory order.
    let mut data: HashMap<NodeId, Data> = HashMap::new();
    let mut order: Vec<NodeId> = Vec::new();
    order.extend(catalog_id);
    order.extend(bios_id);
    order.extend(efi_id);
    for d in &dirs {
        for c in &d.children {
            if matches!(tree.node(c.node).kind, Kind::File(_)) {
                order.push(c.node);
            }
        }
    }
    for id in order {
        if data.contains_key(&id) {
            continue;
        }
        let size = file_size(&tree, id);
        let lba = if size == 0 {
            0
        } else {
            to32(next, "file data")?
        };
        next = next
            .checked_add(size.div_ceil(BLOCK))
            .ok_or_else(|| invalid("tree", "file sizes overflow"))?;
        data.insert(id, Data { lba, size });
    }
    let data_end = next;
    let total_512 = match &opts.hybrid {
        Some(_) => (data_end * 4 + hybrid::BACKUP).div_ceil(hybrid::CYLINDER) * hybrid::CYLINDER,
        None => data_end * 4,
    };
    let volume_blocks = to32(total_512 / 4, "the volume")?;

    // Serialise directories.
    let mut meta: Vec<(u64, Vec<u8>)> = Vec::new();
    let data_of = |id: NodeId| data.get(&id).cloned().unwrap_or(Data { lba: 0, size: 0 });
    let mtime = |id: NodeId| tree.node(id).meta.mtime.secs;
    for (d, (dot, dotdot, kids)) in dirs.iter().zip(&susps) {
        let mut buf = Vec::with_capacity(d.iso_size as usize);
        let parent = &dirs[d.parent];
        let mut rec = Vec::new();
        let chunk = |s: &Susp| s.chunk.map(|c| &chunks[c]);
        record(
            &mut rec,
            &[0],
            d.iso_lba,
            d.iso_size as u32,
            2,
            mtime(d.node),
            &dot.inline,
            chunk(dot),
            ce_lba,
        );
        push_record(&mut buf, &rec);
        rec.clear();
        record(
            &mut rec,
            &[1],
            parent.iso_lba,
            parent.iso_size as u32,
            2,
            mtime(parent.node),
            &dotdot.inline,
            chunk(dotdot),
            ce_lba,
        );
        push_record(&mut buf, &rec);
        for (c, s) in d.children.iter().zip(kids) {
            for (lba, len, flags) in child_extents(&dirs, &dir_index, &data_of, c, false) {
                rec.clear();
                record(
                    &mut rec,
                    &c.iso_id,
                    lba,
                    len,
                    flags,
                    mtime(c.node),
                    &s.inline,
                    chunk(s),
                    ce_lba,
                );
                push_record(&mut buf, &rec);
            }
        }
        buf.resize(d.iso_size as usize, 0);
        meta.push((u64::from(d.iso_lba) * BLOCK, buf));
        if opts.joliet {
            let mut buf = Vec::with_capacity(d.joliet_size as usize);
            record(
                rec_clear(&mut rec),
                &[0],
                d.joliet_lba,
                d.joliet_size as u32,
                2,
                mtime(d.node),
                &[],
                None,
                0,
            );
            push_record(&mut buf, &rec);
            record(
                rec_clear(&mut rec),
                &[1],
                parent.joliet_lba,
                parent.joliet_size as u32,
                2,
                mtime(parent.node),
                &[],
                None,
                0,
            );
            push_record(&mut buf, &rec);
            // Joliet has no symlinks or devices: xorriso leaves them out, so do we.
            let mut kids: Vec<&Child> = d
                .children
                .iter()
                .filter(|c| matches!(tree.node(c.node).kind, Kind::File(_) | Kind::Dir(_)))
                .collect();
            kids.sort_by(|a, b| a.joliet_id.cmp(&b.joliet_id));
            for c in kids {
                for (lba, len, flags) in child_extents(&dirs, &dir_index, &data_of, c, true) {
                    record(
                        rec_clear(&mut rec),
                        &c.joliet_id,
                        lba,
                        len,
                        flags,
                        mtime(c.node),
                        &[],
                        None,
                        0,
                    );
                    push_record(&mut buf, &rec);
                }
            }
            buf.resize(d.joliet_size as usize, 0);
            meta.push((u64::from(d.joliet_lba) * BLOCK, buf));
        }
    }
    if ce_blocks > 0 {
        let mut buf = vec![0u8; ce_blocks as usize * BLOCK as usize];
        for c in &chunks {
            let start = c.block as usize * BLOCK as usize + c.offset as usize;
            let mut bytes = c.bytes.clone();
            if let Some(n) = c.next {
                let nc = &chunks[n];
                bytes.extend(rrip::ce(ce_lba + nc.block, nc.offset, nc.len() as u32));
            }
            buf[start..start + bytes.len()].copy_from_slice(&bytes);
        }
        meta.push((u64::from(ce_lba) * BLOCK, buf));
    }
    // Path tables.
    let iso_pt = pt_entries(&iso_order, false, &dirs, &iso_number);
    meta.push((l_pt * BLOCK, path_table(&iso_pt, false)));
    meta.push((m_pt * BLOCK, path_table(&iso_pt, true)));
    if opts.joliet {
        let jpt = pt_entries(&joliet_order, true, &dirs, &joliet_number);
        meta.push((jl_pt * BLOCK, path_table(&jpt, false)));
        meta.push((jm_pt * BLOCK, path_table(&jpt, true)));
    }
    // Volume descriptors.
    let root = &dirs[0];
    let root_mtime = mtime(root.node);
    let vd = |joliet: bool| {
        let (pt_len, l, m) = if joliet {
            (joliet_pt_len, jl_pt, jm_pt)
        } else {
            (iso_pt_len, l_pt, m_pt)
        };
        volume_descriptor(
            opts,
            joliet,
            volume_blocks,
            (pt_len, l, m),
            root,
            root_mtime,
        )
    };
    meta.push((pvd_lba * BLOCK, vd(false)));
    if let Some(l) = svd_lba {
        meta.push((l * BLOCK, vd(true)));
    }
    let mut term = vec![0u8; BLOCK as usize];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    meta.push((term_lba * BLOCK, term));

    // El Torito.
    let mut files: Vec<FileJob> = Vec::new();
    let mut path_of: HashMap<NodeId, String> = HashMap::new();
    for (p, id) in tree.walk() {
        path_of.entry(id).or_insert_with(|| lossy(&p));
    }
    if let (Some(cat), Some(br)) = (catalog_id, br_lba) {
        let cat_lba = data_of(cat).lba;
        meta.push((br * BLOCK, boot::boot_record(cat_lba).to_vec()));
        let bios_img = bios_id.map(|id| boot::Image {
            lba: data_of(id).lba,
            sectors: opts.bios.as_ref().map_or(4, |b| b.load_sectors),
        });
        let efi_img = efi_id.map(|id| {
            let d = data_of(id);
            boot::Image {
                lba: d.lba,
                sectors: u16::try_from(d.size.div_ceil(512)).unwrap_or(u16::MAX),
            }
        });
        meta.push((
            u64::from(cat_lba) * BLOCK,
            boot::catalog(bios_img, efi_img).to_vec(),
        ));
    }
    let mut patched: Option<(NodeId, Vec<u8>)> = None;
    if let (Some(id), Some(b)) = (bios_id, &opts.bios)
        && b.info_table
    {
        let bytes = patched_boot_file(&tree, id, &data_of(id), b)?;
        patched = Some((id, bytes));
    }
    if let Some(h) = &opts.hybrid {
        let boot_lba = bios_id.map_or(0, |id| data_of(id).lba);
        let efi = efi_id.map(|id| {
            let d = data_of(id);
            (u64::from(d.lba) * 4, d.size.div_ceil(512))
        });
        meta.extend(hybrid::tables(&hybrid::Layout {
            mbr_code: &h.mbr_code,
            boot_lba,
            efi,
            total: total_512,
            gpt: h.gpt,
            disk_guid: hybrid::gpt_bytes(h.disk_guid),
        }));
    }

    // File data jobs.
    let mut ids: Vec<(&NodeId, &Data)> = data.iter().collect();
    ids.sort_by_key(|(_, d)| d.lba);
    for (id, d) in ids {
        if Some(*id) == catalog_id || d.size == 0 {
            continue;
        }
        let path = path_of.get(id).cloned().unwrap_or_default();
        let offset = u64::from(d.lba) * BLOCK;
        if let Some((pid, bytes)) = &patched
            && pid == id
        {
            files.push(FileJob {
                offset,
                source: Source::Bytes(Arc::from(bytes.clone())),
                ranges: std::iter::once(0..d.size).collect(),
                path,
            });
            continue;
        }
        if let Kind::File(f) = &tree.node(*id).kind {
            files.push(FileJob {
                offset,
                source: f.source.clone(),
                ranges: f.data_ranges(),
                path,
            });
        }
    }
    meta.sort_by_key(|(o, _)| *o);
    Ok(Plan {
        size: total_512 * 512,
        meta,
        files,
    })
}

fn rec_clear(v: &mut Vec<u8>) -> &mut Vec<u8> {
    v.clear();
    v
}

/// The `(lba, length, flags)` of each record naming child `c`.
fn child_extents(
    dirs: &[Dir],
    dir_index: &HashMap<NodeId, usize>,
    data_of: &dyn Fn(NodeId) -> Data,
    c: &Child,
    joliet: bool,
) -> Vec<(u32, u32, u8)> {
    if let Some(&di) = dir_index.get(&c.node) {
        let d = &dirs[di];
        return if joliet {
            vec![(d.joliet_lba, d.joliet_size as u32, 2)]
        } else {
            vec![(d.iso_lba, d.iso_size as u32, 2)]
        };
    }
    let d = data_of(c.node);
    extents(d.lba, d.size)
        .into_iter()
        .map(|(l, n, last)| (l, n, if last { 0 } else { 0x80 }))
        .collect()
}

/// Writes the image of `tree` to the new file `output` (atomically: under a temporary name,
/// renamed when complete; sparse where the image holds zeros).
///
/// # Errors
/// As [`plan`] and [`Plan::write`]; `Io` creating or committing `output`.
pub fn write_file(tree: &Tree, opts: &Options, output: &std::path::Path) -> Result<Plan> {
    let p = plan(tree, opts)?;
    let out = imagetool_blockio::AtomicFile::create(output)
        .map_err(|e| Error::io(Some(output), "creating the image", e))?;
    let f = out
        .try_clone_file()
        .map_err(|e| Error::io(Some(output), "opening the image", e))?;
    let sparse = imagetool_blockio::SparseFile::from_file(f, p.size())
        .map_err(|e| Error::io(Some(output), "sizing the image", e))?;
    p.write(&sparse)?;
    out.commit()
        .map_err(|e| Error::io(Some(output), "committing the image", e))?;
    Ok(p)
}

/// The GRUB filesystem UUID of an image written with `epoch` (GRUB's iso9660 driver prints the
/// volume modification date as `YYYY-MM-DD-HH-MM-SS-CC`).
#[must_use]
pub fn grub_uuid(epoch: i64) -> String {
    let d = rrip::date17(epoch);
    let s = |r: std::ops::Range<usize>| String::from_utf8_lossy(&d[r]).into_owned();
    format!(
        "{}-{}-{}-{}-{}-{}-{}",
        s(0..4),
        s(4..6),
        s(6..8),
        s(8..10),
        s(10..12),
        s(12..14),
        s(14..16)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_files_over_4_gib_split_into_contiguous_extents() {
        let size = 2 * MAX_EXTENT + 5;
        let e = extents(100, size);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0], (100, MAX_EXTENT as u32, false));
        assert_eq!(
            e[1],
            (100 + (MAX_EXTENT / BLOCK) as u32, MAX_EXTENT as u32, false)
        );
        assert_eq!(e[2], (100 + (2 * MAX_EXTENT / BLOCK) as u32, 5, true));
        assert_eq!(extents(7, MAX_EXTENT), vec![(7, MAX_EXTENT as u32, true)]);
        assert_eq!(extents(0, 0), vec![(0, 0, true)]);
    }

    #[test]
    fn test_records_never_straddle_a_block() {
        // 2048 / 250 = 8 records per block: the ninth starts the second block.
        assert_eq!(dir_bytes(std::iter::repeat_n(250, 8)), BLOCK);
        assert_eq!(dir_bytes(std::iter::repeat_n(250, 9)), 2 * BLOCK);
        assert_eq!(dir_bytes(std::iter::empty()), BLOCK);
        assert_eq!(record_len(1, 0), 34);
        assert_eq!(record_len(2, 0), 36);
        assert_eq!(record_len(1, 3), 38);
    }
}
