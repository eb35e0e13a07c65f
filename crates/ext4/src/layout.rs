//! Geometry (groups, backups, inode tables, journal size) and the block allocator.

use std::ops::Range;

use crate::BLOCK_SIZE;

/// Blocks per group: one 4 KiB bitmap block covers 32768 blocks.
pub const BLOCKS_PER_GROUP: u64 = 32768;
/// Inode size in bytes.
pub const INODE_SIZE: u64 = 256;
/// Inodes per inode table block.
pub const INODES_PER_BLOCK: u64 = BLOCK_SIZE / INODE_SIZE;
/// Group descriptor size (64bit feature).
pub const DESC_SIZE: u64 = 64;
/// Groups per flex group (`s_log_groups_per_flex` = 4), as mke2fs.
pub const FLEX_GROUPS: u64 = 16;
/// The most blocks one initialised extent maps.
pub const MAX_EXTENT_LEN: u64 = 32768;
/// The smallest filesystem with a journal (mke2fs gives none below 2048 blocks).
pub const MIN_BLOCKS: u64 = 2048;
/// The largest filesystem written: 64 TiB (imagetool's largest disk; the inode count stays
/// below ext4's 2^32 and the group count below 2^19).
pub const MAX_BYTES: u64 = 64 << 40;

/// The shape of a filesystem of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Total blocks.
    pub blocks: u64,
    /// Block groups.
    pub groups: u64,
    /// Inodes per group.
    pub ipg: u64,
    /// Inode table blocks per group.
    pub itb: u64,
    /// Group descriptor table blocks.
    pub gdt_blocks: u64,
    /// Reserved GDT blocks (for `resize_inode`).
    pub rgdt_blocks: u64,
    /// Journal blocks.
    pub journal_blocks: u64,
}

impl Geometry {
    /// The geometry for `blocks` blocks and at least `inodes` inodes; `None` when one group
    /// cannot hold that many inodes per group (more blocks are needed).
    pub fn new(blocks: u64, inodes: u64) -> Option<Self> {
        let groups = blocks.div_ceil(BLOCKS_PER_GROUP).max(1);
        let ipg = inodes
            .div_ceil(groups)
            .max(INODES_PER_BLOCK)
            .next_multiple_of(INODES_PER_BLOCK);
        if ipg > BLOCKS_PER_GROUP {
            return None;
        }
        let gdt_blocks = (groups * DESC_SIZE).div_ceil(BLOCK_SIZE);
        // mke2fs: room to grow 1024 times (capped at 2^32 blocks and one indirect block).
        let max_blocks = blocks.saturating_mul(1024).min(u64::from(u32::MAX));
        let rsv_groups = max_blocks.div_ceil(BLOCKS_PER_GROUP);
        let rgdt_blocks = (rsv_groups * DESC_SIZE)
            .div_ceil(BLOCK_SIZE)
            .saturating_sub(gdt_blocks)
            .min(BLOCK_SIZE / 4);
        Some(Self {
            blocks,
            groups,
            ipg,
            itb: ipg * INODE_SIZE / BLOCK_SIZE,
            gdt_blocks,
            rgdt_blocks,
            journal_blocks: journal_blocks(blocks),
        })
    }

    /// Blocks in group `g`.
    pub fn group_len(&self, g: u64) -> u64 {
        if g + 1 == self.groups {
            self.blocks - g * BLOCKS_PER_GROUP
        } else {
            BLOCKS_PER_GROUP
        }
    }

    /// The superblock + GDT + reserved GDT range of group `g`, when it holds a copy.
    pub fn backup_range(&self, g: u64) -> Option<Range<u64>> {
        has_super(g).then(|| {
            let s = g * BLOCKS_PER_GROUP;
            s..s + 1 + self.gdt_blocks + self.rgdt_blocks
        })
    }

    /// Inode count.
    pub fn inodes(&self) -> u64 {
        self.ipg * self.groups
    }
}

/// `sparse_super`: groups 0, 1 and powers of 3, 5 and 7 hold superblock copies.
pub fn has_super(g: u64) -> bool {
    if g <= 1 {
        return true;
    }
    [3u64, 5, 7].iter().any(|&b| {
        let mut p = b;
        while p < g {
            match p.checked_mul(b) {
                Some(n) => p = n,
                None => return false,
            }
        }
        p == g
    })
}

/// mke2fs's default journal size for a filesystem of `blocks` 4 KiB blocks.
pub fn journal_blocks(blocks: u64) -> u64 {
    match blocks {
        0..32_768 => 1024,
        32_768..262_144 => 4096,
        262_144..524_288 => 8192,
        524_288..4_194_304 => 16_384,
        4_194_304..8_388_608 => 32_768,
        8_388_608..16_777_216 => 65_536,
        16_777_216..33_554_432 => 131_072,
        _ => 262_144,
    }
}

/// Allocates blocks: metadata first-fit at a hint, data sequentially; both skip reserved
/// ranges. Allocation may run past the filesystem end (the caller then needs more blocks).
#[derive(Debug, Default)]
pub struct Allocator {
    /// Taken ranges, sorted, non-overlapping.
    taken: Vec<Range<u64>>,
    cursor: u64,
    next_taken: usize,
}

impl Allocator {
    /// Marks `r` taken (ranges are inserted in any order).
    pub fn reserve(&mut self, r: Range<u64>) {
        let i = self.taken.partition_point(|t| t.start < r.start);
        self.taken.insert(i, r);
    }

    /// The first `n` free contiguous blocks at or after `hint`; marks them taken.
    pub fn alloc_contig(&mut self, hint: u64, n: u64) -> u64 {
        let mut pos = hint;
        let mut i = self.taken.partition_point(|t| t.end <= pos);
        while i < self.taken.len() {
            let t = &self.taken[i];
            if t.start >= pos + n {
                break;
            }
            pos = pos.max(t.end);
            i += 1;
        }
        self.reserve(pos..pos + n);
        pos
    }

    /// `n` blocks from the sequential data cursor, split around taken ranges.
    pub fn alloc_data(&mut self, mut n: u64, out: &mut Vec<Range<u64>>) {
        while n > 0 {
            while self.next_taken < self.taken.len()
                && self.taken[self.next_taken].end <= self.cursor
            {
                self.next_taken += 1;
            }
            let limit = match self.taken.get(self.next_taken) {
                Some(t) if t.start <= self.cursor => {
                    self.cursor = t.end;
                    continue;
                }
                Some(t) => t.start,
                None => u64::MAX,
            };
            let take = n.min(limit - self.cursor);
            let r = self.cursor..self.cursor + take;
            match out.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => out.push(r),
            }
            self.cursor += take;
            n -= take;
        }
    }

    /// The end of data allocation so far.
    pub fn data_end(&self) -> u64 {
        self.cursor
    }

    /// The highest taken block + 1.
    pub fn taken_end(&self) -> u64 {
        self.taken.iter().map(|r| r.end).max().unwrap_or(0)
    }

    /// Taken (non-data) ranges.
    pub fn taken(&self) -> &[Range<u64>] {
        &self.taken
    }
}

/// Sorts and merges ranges.
pub fn coalesce(mut v: Vec<Range<u64>>) -> Vec<Range<u64>> {
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(l) if l.end >= r.start => l.end = l.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_has_super_sparse_groups() {
        let v: Vec<u64> = (0..50).filter(|&g| has_super(g)).collect();
        assert_eq!(v, [0, 1, 3, 5, 7, 9, 25, 27, 49]);
    }

    #[test]
    fn test_alloc_data_skips_taken() {
        let mut a = Allocator::default();
        a.reserve(0..10);
        a.reserve(20..25);
        let mut out = Vec::new();
        a.alloc_data(15, &mut out);
        assert_eq!(out, [10..20, 25..30]);
        // Metadata placement ignores data (it runs before any data is allocated).
        assert_eq!(a.alloc_contig(0, 3), 10);
    }

    #[test]
    fn test_geometry_matches_mke2fs_reserved_gdt() {
        // mkfs.ext4 on 16384 blocks reserves 7 GDT blocks.
        let g = Geometry::new(16384, 16384).unwrap();
        assert_eq!(
            (g.groups, g.gdt_blocks, g.rgdt_blocks, g.journal_blocks),
            (1, 1, 7, 1024)
        );
    }
}
