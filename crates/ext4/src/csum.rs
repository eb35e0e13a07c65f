//! Every ext4 checksum in one place: crc32c as the kernel computes it (seeded, without the final
//! inversion), the per-filesystem seed, the per-inode seed, and the 16-bit group descriptor sum.

/// The kernel's `crc32c(seed, data)`: no pre- or post-inversion of the register.
#[must_use]
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // The crc32c crate inverts on the way in and out; undo both.
    !crc32c::crc32c_append(!seed, data)
}

/// The filesystem checksum seed: `crc32c(~0, uuid)`.
#[must_use]
pub fn fs_seed(uuid: &[u8; 16]) -> u32 {
    crc32c(!0, uuid)
}

/// The seed of inode `ino` (generation 0): used for the inode itself, its extent blocks and,
/// for directories, its leaf and htree blocks.
#[must_use]
pub fn inode_seed(fs_seed: u32, ino: u32) -> u32 {
    let s = crc32c(fs_seed, &ino.to_le_bytes());
    crc32c(s, &0u32.to_le_bytes())
}

/// Superblock checksum over its first 1020 bytes.
pub fn set_superblock(sb: &mut [u8]) {
    let c = crc32c(!0, &sb[..0x3FC]);
    sb[0x3FC..0x400].copy_from_slice(&c.to_le_bytes());
}

/// Group descriptor checksum (`bg_checksum`) of descriptor `group` (64 bytes).
pub fn set_group_desc(fs_seed: u32, group: u32, desc: &mut [u8]) {
    desc[0x1E..0x20].fill(0);
    let c = crc32c(crc32c(fs_seed, &group.to_le_bytes()), desc);
    desc[0x1E..0x20].copy_from_slice(&((c & 0xFFFF) as u16).to_le_bytes());
}

/// Inode checksum, stored split in `l_i_checksum_lo` (0x7C) and `i_checksum_hi` (0x82).
pub fn set_inode(fs_seed: u32, ino: u32, inode: &mut [u8]) {
    inode[0x7C..0x7E].fill(0);
    inode[0x82..0x84].fill(0);
    let c = crc32c(inode_seed(fs_seed, ino), inode);
    inode[0x7C..0x7E].copy_from_slice(&(c as u16).to_le_bytes());
    inode[0x82..0x84].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
}

/// Extent tree block tail (the 4 bytes after `eh_max` entries).
pub fn set_extent_block(fs_seed: u32, ino: u32, block: &mut [u8]) {
    let max = u16::from_le_bytes([block[4], block[5]]) as usize;
    let tail = 12 + 12 * max;
    let c = crc32c(inode_seed(fs_seed, ino), &block[..tail]);
    block[tail..tail + 4].copy_from_slice(&c.to_le_bytes());
}

/// Directory leaf block tail (the last 12 bytes are the fake `0xDE00` entry).
pub fn set_dir_leaf(fs_seed: u32, ino: u32, block: &mut [u8]) {
    let n = block.len();
    let c = crc32c(inode_seed(fs_seed, ino), &block[..n - 12]);
    block[n - 4..].copy_from_slice(&c.to_le_bytes());
}

/// htree node tail: `count_offset` is where `dx_countlimit` sits (0x20 in the root, 0x08 in
/// inner nodes).
pub fn set_dx_node(fs_seed: u32, ino: u32, block: &mut [u8], count_offset: usize) {
    let limit = u16::from_le_bytes([block[count_offset], block[count_offset + 1]]) as usize;
    let count = u16::from_le_bytes([block[count_offset + 2], block[count_offset + 3]]) as usize;
    let tail = count_offset + limit * 8;
    let mut c = crc32c(inode_seed(fs_seed, ino), &block[..count_offset + count * 8]);
    c = crc32c(c, &block[tail..tail + 4]);
    c = crc32c(c, &[0; 4]);
    block[tail + 4..tail + 8].copy_from_slice(&c.to_le_bytes());
}

/// Extended attribute block checksum, seeded with the block number.
pub fn set_xattr_block(fs_seed: u32, blocknr: u64, block: &mut [u8]) {
    block[0x10..0x14].fill(0);
    let c = crc32c(crc32c(fs_seed, &blocknr.to_le_bytes()), block);
    block[0x10..0x14].copy_from_slice(&c.to_le_bytes());
}

/// Bitmap checksum (`crc32c(fs_seed, bitmap)`), split by the caller into lo/hi halves.
#[must_use]
pub fn bitmap(fs_seed: u32, bits: &[u8]) -> u32 {
    crc32c(fs_seed, bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_crc32c_matches_kernel_convention() {
        // crc32c("123456789") with the standard inversions is 0xE3069283; the kernel form
        // with seed ~0 is its complement.
        assert_eq!(crc32c(!0, b"123456789"), !0xE306_9283);
        // Chaining equals one pass.
        assert_eq!(
            crc32c(crc32c(!0, b"1234"), b"56789"),
            crc32c(!0, b"123456789")
        );
    }
}
