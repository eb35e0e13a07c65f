//! Directories: one linear block when the entries fit, else a hashed b-tree (`dir_index`):
//! a root block, up to 507 inner nodes (two levels), and leaf blocks filled in hash order.

use crate::hash::dx_hash;
use crate::{BLOCK_SIZE, Error, ErrorKind, Result, csum};

const BS: usize = BLOCK_SIZE as usize;
/// Usable bytes of a leaf block: the last 12 hold the checksum tail entry.
const LEAF_SPACE: usize = BS - 12;
/// dx entries in the root block: (4096 - 0x20 - 8-byte tail) / 8.
const ROOT_LIMIT: usize = (BS - 0x20 - 8) / 8;
/// dx entries in an inner node: (4096 - 8 - 8-byte tail) / 8.
const NODE_LIMIT: usize = (BS - 8 - 8) / 8;
/// `dx_root_info.hash_version`: half-MD4.
pub const HASH_HALF_MD4: u8 = 1;

/// One entry of a directory.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Name bytes (1..=255).
    pub name: &'a [u8],
    /// Inode number.
    pub ino: u32,
    /// `file_type` code (1 regular … 7 symlink).
    pub ftype: u8,
}

fn rec_len(name_len: usize) -> usize {
    (8 + name_len).next_multiple_of(4)
}

/// The shape of a directory: how many blocks, and for an htree which entries go to which leaf.
#[derive(Debug)]
pub enum Shape {
    /// One linear block (or `n` blocks for lost+found, the extra ones empty).
    Linear(u64),
    /// A hashed tree; `order` lists entry indices in hash order and `leaves` the ranges of
    /// `order` per leaf with the leaf's starting hash.
    Htree {
        /// Entry indices sorted by (hash, name).
        order: Vec<(u32, usize)>,
        /// Per leaf: range into `order` and the index hash of the leaf.
        leaves: Vec<(std::ops::Range<usize>, u32)>,
        /// Inner nodes (0 for a one-level tree).
        nodes: usize,
    },
}

impl Shape {
    /// Blocks the directory occupies.
    pub fn blocks(&self) -> u64 {
        match self {
            Shape::Linear(n) => *n,
            Shape::Htree { leaves, nodes, .. } => (1 + nodes + leaves.len()) as u64,
        }
    }
}

/// Plans the blocks of a directory with `entries` (not counting `.` and `..`).
///
/// # Errors
/// `Unsupported` when the directory needs more than two htree levels.
pub fn shape(entries: &[Entry<'_>], seed: &[u32; 4], min_blocks: u64, path: &str) -> Result<Shape> {
    let linear: usize = 12 + 12 + entries.iter().map(|e| rec_len(e.name.len())).sum::<usize>();
    if linear <= LEAF_SPACE {
        return Ok(Shape::Linear(min_blocks.max(1)));
    }
    let mut order: Vec<(u32, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (dx_hash(e.name, seed).0, i))
        .collect();
    order.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| entries[a.1].name.cmp(entries[b.1].name))
    });
    let mut leaves = Vec::new();
    let mut start = 0;
    let mut used = 0;
    let mut i = 0;
    while i < order.len() {
        let len = rec_len(entries[order[i].1].name.len());
        if used + len > LEAF_SPACE {
            // Keep entries of one hash in one leaf when possible, so no continuation is needed.
            let mut cut = i;
            while cut > start + 1 && order[cut - 1].0 == order[i].0 {
                cut -= 1;
            }
            if order[cut - 1].0 == order[i].0 {
                cut = i;
            }
            leaves.push((start..cut, 0));
            start = cut;
            i = cut;
            used = 0;
            continue;
        }
        used += len;
        i += 1;
    }
    leaves.push((start..order.len(), 0));
    for (k, leaf) in leaves.iter_mut().enumerate() {
        let first = leaf.0.start;
        let mut h = if k == 0 { 0 } else { order[first].0 };
        if k > 0 && order[first - 1].0 == order[first].0 {
            h |= 1; // a hash continued from the previous leaf
        }
        leaf.1 = h;
    }
    let nodes = if leaves.len() <= ROOT_LIMIT {
        0
    } else {
        leaves.len().div_ceil(NODE_LIMIT)
    };
    if nodes > ROOT_LIMIT {
        return Err(Error::new(
            ErrorKind::Unsupported,
            path,
            "directory too large for a two-level htree",
        ));
    }
    Ok(Shape::Htree {
        order,
        leaves,
        nodes,
    })
}

fn put_entry(b: &mut [u8], off: usize, ino: u32, rec: usize, name: &[u8], ftype: u8) {
    b[off..off + 4].copy_from_slice(&ino.to_le_bytes());
    b[off + 4..off + 6].copy_from_slice(&(rec as u16).to_le_bytes());
    b[off + 6] = name.len() as u8;
    b[off + 7] = ftype;
    b[off + 8..off + 8 + name.len()].copy_from_slice(name);
}

fn put_tail(b: &mut [u8]) {
    let t = BS - 12;
    b[t..t + 4].fill(0);
    b[t + 4..t + 6].copy_from_slice(&12u16.to_le_bytes());
    b[t + 6] = 0;
    b[t + 7] = 0xDE;
}

/// Fills a leaf block with `items` (entries after any given prefix at `off`).
fn fill_leaf<'a>(b: &mut [u8], mut off: usize, items: impl Iterator<Item = &'a Entry<'a>>) {
    let mut last: Option<usize> = None;
    for e in items {
        let rec = rec_len(e.name.len());
        put_entry(b, off, e.ino, rec, e.name, e.ftype);
        last = Some(off);
        off += rec;
    }
    match last {
        Some(l) => {
            let rec = LEAF_SPACE - l;
            b[l + 4..l + 6].copy_from_slice(&(rec as u16).to_le_bytes());
        }
        None => put_entry(b, off, 0, LEAF_SPACE - off, b"", 0),
    }
    put_tail(b);
}

/// Writes the directory blocks (logical order) with checksums, calling `out(index, block)`.
///
/// # Errors
/// Whatever `out` returns.
pub fn build(
    shape: &Shape,
    entries: &[Entry<'_>],
    ino: u32,
    parent: u32,
    fs_seed: u32,
    mut out: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut b = vec![0u8; BS];
    match shape {
        Shape::Linear(n) => {
            put_entry(&mut b, 0, ino, 12, b".", 2);
            let mut dots = [Entry {
                name: b"..",
                ino: parent,
                ftype: 2,
            }]
            .to_vec();
            dots.extend_from_slice(entries);
            fill_leaf(&mut b, 12, dots.iter());
            csum::set_dir_leaf(fs_seed, ino, &mut b);
            out(0, &b)?;
            for k in 1..*n {
                b.fill(0);
                fill_leaf(&mut b, 0, std::iter::empty());
                csum::set_dir_leaf(fs_seed, ino, &mut b);
                out(k, &b)?;
            }
        }
        Shape::Htree {
            order,
            leaves,
            nodes,
        } => {
            let first_leaf = 1 + *nodes as u64;
            // Root: ".", ".." spanning the block, dx_root_info, then the entries.
            put_entry(&mut b, 0, ino, 12, b".", 2);
            put_entry(&mut b, 12, parent, BS - 12, b"..", 2);
            b[0x18..0x1C].fill(0);
            b[0x1C] = HASH_HALF_MD4;
            b[0x1D] = 8;
            b[0x1E] = u8::from(*nodes > 0);
            b[0x1F] = 0;
            let root_targets: Vec<(u32, u64)> = if *nodes == 0 {
                leaves
                    .iter()
                    .enumerate()
                    .map(|(k, l)| (l.1, first_leaf + k as u64))
                    .collect()
            } else {
                (0..*nodes)
                    .map(|n| (leaves[n * NODE_LIMIT].1, 1 + n as u64))
                    .collect()
            };
            put_dx(&mut b, 0x20, ROOT_LIMIT, &root_targets);
            csum::set_dx_node(fs_seed, ino, &mut b, 0x20);
            out(0, &b)?;
            for n in 0..*nodes {
                b.fill(0);
                put_entry(&mut b, 0, 0, BS, b"", 0);
                let chunk = n * NODE_LIMIT..((n + 1) * NODE_LIMIT).min(leaves.len());
                let targets: Vec<(u32, u64)> = chunk
                    .map(|k| (leaves[k].1, first_leaf + k as u64))
                    .collect();
                put_dx(&mut b, 8, NODE_LIMIT, &targets);
                csum::set_dx_node(fs_seed, ino, &mut b, 8);
                out(1 + n as u64, &b)?;
            }
            for (k, (range, _)) in leaves.iter().enumerate() {
                b.fill(0);
                fill_leaf(
                    &mut b,
                    0,
                    order[range.clone()].iter().map(|&(_, i)| &entries[i]),
                );
                csum::set_dir_leaf(fs_seed, ino, &mut b);
                out(first_leaf + k as u64, &b)?;
            }
        }
    }
    Ok(())
}

/// `dx_countlimit` then entries; the first entry's hash field holds the count/limit.
fn put_dx(b: &mut [u8], off: usize, limit: usize, targets: &[(u32, u64)]) {
    b[off..off + 2].copy_from_slice(&(limit as u16).to_le_bytes());
    b[off + 2..off + 4].copy_from_slice(&(targets.len() as u16).to_le_bytes());
    for (k, &(hash, blk)) in targets.iter().enumerate() {
        let e = off + k * 8;
        if k > 0 {
            b[e..e + 4].copy_from_slice(&hash.to_le_bytes());
        }
        b[e + 4..e + 8].copy_from_slice(&(blk as u32).to_le_bytes());
    }
}
