//! Directories: the planned entries (with their long names), and their encoding as 32-byte
//! short entries preceded by LFN entries.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, ErrorKind, Result};
use crate::name;
use crate::params::{FatType, Params, SECTOR};
use crate::tree::{Node, Source};

const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;

/// A planned directory entry.
pub(crate) struct PEntry {
    /// The long name (the tree's).
    pub(crate) name: String,
    /// The 8.3 name stored (the name itself, or its `~N` alias).
    pub(crate) short: [u8; 11],
    /// Long-name entries precede the short one.
    pub(crate) lfn: bool,
    /// The first cluster of the entry's run (0: empty file).
    pub(crate) first_cluster: u32,
    pub(crate) kind: PKind,
}

/// What a planned entry is.
pub(crate) enum PKind {
    /// A file of `len` bytes.
    File { len: u64, source: Source },
    /// A subdirectory.
    Dir(PDir),
}

/// A planned directory.
pub(crate) struct PDir {
    /// Its path from the root (for errors and file jobs).
    pub(crate) path: String,
    /// Its entries in name order.
    pub(crate) entries: Vec<PEntry>,
    /// The first cluster of its run (FAT12/16's root has none).
    pub(crate) first_cluster: u32,
    /// Clusters in its run.
    pub(crate) clusters: u32,
}

/// The planned directory of `map` at `path`: names validated, case clashes refused, short
/// names and aliases chosen ("." and ".." reserved outside the root).
pub(crate) fn build_dir(map: &BTreeMap<String, Node>, path: String, is_root: bool) -> Result<PDir> {
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

/// The 32-byte slots of an entry: its short entry and its LFN entries.
fn entry_slots(e: &PEntry) -> usize {
    1 + if e.lfn {
        e.name.encode_utf16().count().div_ceil(13)
    } else {
        0
    }
}

/// The slots of the root directory: its entries and the volume label's.
pub(crate) fn root_slot_count(d: &PDir, has_label: bool) -> usize {
    d.entries.iter().map(entry_slots).sum::<usize>() + usize::from(has_label)
}

/// The slots of a subdirectory: ".", ".." and its entries.
pub(crate) fn dir_slot_count(d: &PDir) -> usize {
    2 + d.entries.iter().map(entry_slots).sum::<usize>()
}

/// A short (8.3) directory entry.
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

/// Encodes `d` and, recursively, its subdirectories into `out` as (offset, bytes): the
/// label or "." and "..", then each entry's LFN entries and short entry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_dirs(
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
