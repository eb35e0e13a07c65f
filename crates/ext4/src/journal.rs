//! The internal jbd2 journal: an empty, clean v2 superblock in its first block (big-endian),
//! the rest of the journal zero.

/// `JBD2_MAGIC_NUMBER`.
const MAGIC: u32 = 0xC03B_3998;
/// `JBD2_SUPERBLOCK_V2`.
const SUPERBLOCK_V2: u32 = 4;

/// The journal superblock block for a journal of `blocks` blocks on filesystem `uuid`.
pub fn superblock(blocks: u64, uuid: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; crate::BLOCK_SIZE as usize];
    let mut put = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    put(0x00, MAGIC);
    put(0x04, SUPERBLOCK_V2);
    put(0x08, 0); // h_sequence
    put(0x0C, crate::BLOCK_SIZE as u32);
    put(0x10, blocks as u32); // s_maxlen
    put(0x14, 1); // s_first: the log starts after this block
    put(0x18, 1); // s_sequence of the first transaction
    put(0x1C, 0); // s_start 0: clean, nothing to replay
    put(0x40, 1); // s_nr_users
    b[0x30..0x40].copy_from_slice(uuid);
    b
}
