//! FAT32's FSInfo sector: the free cluster count and the next free cluster hint.

use crate::params::SECTOR;

/// The FSInfo sector with `free` clusters free and `next_free` the first cluster to try.
pub(crate) fn fsinfo(free: u32, next_free: u32) -> Vec<u8> {
    let mut s = vec![0u8; SECTOR as usize];
    s[..4].copy_from_slice(b"RRaA");
    s[484..488].copy_from_slice(b"rrAa");
    s[488..492].copy_from_slice(&free.to_le_bytes());
    s[492..496].copy_from_slice(&next_free.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}
