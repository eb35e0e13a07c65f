//! The superblock (primary and backups) and group descriptors.

use crate::inode::{put16, put32};
use crate::layout::{BLOCKS_PER_GROUP, DESC_SIZE, FLEX_GROUPS, INODE_SIZE};
use crate::{csum, plan::Plan};

/// `s_magic`.
const MAGIC: u16 = 0xEF53;
/// COMPAT: has_journal 0x4, ext_attr 0x8, resize_inode 0x10, dir_index 0x20.
pub const FEATURE_COMPAT: u32 = 0x4 | 0x8 | 0x10 | 0x20;
/// INCOMPAT: filetype 0x2, extent 0x40, 64bit 0x80, flex_bg 0x200.
pub const FEATURE_INCOMPAT: u32 = 0x2 | 0x40 | 0x80 | 0x200;
/// RO_COMPAT: sparse_super 0x1, large_file 0x2, huge_file 0x8, dir_nlink 0x20,
/// extra_isize 0x40, metadata_csum 0x400.
pub const FEATURE_RO_COMPAT: u32 = 0x1 | 0x2 | 0x8 | 0x20 | 0x40 | 0x400;

/// The 1024-byte superblock as stored in group `group`.
pub fn encode(p: &Plan, group: u64) -> [u8; 1024] {
    let g = &p.geo;
    let mut b = [0u8; 1024];
    let t = p.timestamp;
    let lo = |v: u64| v as u32;
    put32(&mut b, 0x00, lo(g.inodes()));
    put32(&mut b, 0x04, lo(g.blocks));
    put32(&mut b, 0x08, lo(p.r_blocks));
    put32(&mut b, 0x0C, lo(p.free_blocks));
    put32(&mut b, 0x10, lo(p.free_inodes));
    put32(&mut b, 0x14, 0); // s_first_data_block
    put32(&mut b, 0x18, 2); // log2(4096) - 10
    put32(&mut b, 0x1C, 2);
    put32(&mut b, 0x20, BLOCKS_PER_GROUP as u32);
    put32(&mut b, 0x24, BLOCKS_PER_GROUP as u32);
    put32(&mut b, 0x28, lo(g.ipg));
    put32(&mut b, 0x30, t as u32); // s_wtime
    put16(&mut b, 0x36, 0xFFFF); // s_max_mnt_count -1
    put16(&mut b, 0x38, MAGIC);
    put16(&mut b, 0x3A, 1); // clean
    put16(&mut b, 0x3C, 1); // errors: continue
    put32(&mut b, 0x40, t as u32); // s_lastcheck
    put32(&mut b, 0x4C, 1); // dynamic revision
    put32(&mut b, 0x54, 11); // s_first_ino
    put16(&mut b, 0x58, INODE_SIZE as u16);
    put16(&mut b, 0x5A, group as u16);
    put32(&mut b, 0x5C, FEATURE_COMPAT);
    put32(&mut b, 0x60, FEATURE_INCOMPAT);
    put32(&mut b, 0x64, FEATURE_RO_COMPAT);
    b[0x68..0x78].copy_from_slice(&p.uuid);
    let label = &p.label[..p.label.len().min(16)];
    b[0x78..0x78 + label.len()].copy_from_slice(label);
    put16(&mut b, 0xCE, g.rgdt_blocks as u16);
    put32(&mut b, 0xE0, 8); // journal inode
    for (k, w) in p.hash_seed.iter().enumerate() {
        put32(&mut b, 0xEC + 4 * k, *w);
    }
    b[0xFC] = crate::dir::HASH_HALF_MD4;
    b[0xFD] = 1; // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
    put16(&mut b, 0xFE, DESC_SIZE as u16);
    put32(&mut b, 0x100, 0x000C); // default mount options: user_xattr, acl
    put32(&mut b, 0x108, t as u32); // s_mkfs_time
    b[0x10C..0x10C + 60].copy_from_slice(&p.journal_iblock);
    put32(
        &mut b,
        0x10C + 60,
        ((g.journal_blocks * crate::BLOCK_SIZE) >> 32) as u32,
    );
    put32(
        &mut b,
        0x10C + 64,
        (g.journal_blocks * crate::BLOCK_SIZE) as u32,
    );
    put32(&mut b, 0x150, (g.blocks >> 32) as u32);
    put32(&mut b, 0x154, (p.r_blocks >> 32) as u32);
    put32(&mut b, 0x158, (p.free_blocks >> 32) as u32);
    put16(&mut b, 0x15C, crate::inode::EXTRA_ISIZE);
    put16(&mut b, 0x15E, crate::inode::EXTRA_ISIZE);
    put32(&mut b, 0x160, 1); // s_flags: signed directory hash
    b[0x174] = FLEX_GROUPS.trailing_zeros() as u8;
    b[0x175] = 1; // crc32c
    let hi = ((t >> 32) & 0xFF) as u8;
    b[0x274] = hi; // s_wtime_hi
    b[0x276] = hi; // s_mkfs_time_hi
    b[0x277] = hi; // s_lastcheck_hi
    csum::set_superblock(&mut b);
    b
}

/// The 64-byte descriptor of group `g`.
pub fn group_desc(
    p: &Plan,
    g: u64,
    block_bitmap_csum: u32,
    inode_bitmap_csum: u32,
    extra_flags: u16,
) -> [u8; DESC_SIZE as usize] {
    let gi = &p.groups[g as usize];
    let mut b = [0u8; DESC_SIZE as usize];
    let put64 = |b: &mut [u8], lo_off: usize, hi_off: usize, v: u64| {
        put32(b, lo_off, v as u32);
        put32(b, hi_off, (v >> 32) as u32);
    };
    put64(&mut b, 0x00, 0x20, gi.block_bitmap);
    put64(&mut b, 0x04, 0x24, gi.inode_bitmap);
    put64(&mut b, 0x08, 0x28, gi.inode_table);
    put16(&mut b, 0x0C, gi.free_blocks as u16);
    put16(&mut b, 0x2C, (gi.free_blocks >> 16) as u16);
    put16(&mut b, 0x0E, gi.free_inodes as u16);
    put16(&mut b, 0x2E, (gi.free_inodes >> 16) as u16);
    put16(&mut b, 0x10, gi.dirs as u16);
    put16(&mut b, 0x30, (gi.dirs >> 16) as u16);
    put16(&mut b, 0x12, gi.flags | extra_flags);
    put16(&mut b, 0x18, block_bitmap_csum as u16);
    put16(&mut b, 0x38, (block_bitmap_csum >> 16) as u16);
    put16(&mut b, 0x1A, inode_bitmap_csum as u16);
    put16(&mut b, 0x3A, (inode_bitmap_csum >> 16) as u16);
    put16(&mut b, 0x1C, gi.itable_unused as u16);
    put16(&mut b, 0x32, (gi.itable_unused >> 16) as u16);
    csum::set_group_desc(p.fs_seed, g as u32, &mut b);
    b
}
