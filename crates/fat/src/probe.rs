//! A bounded reader of FAT boot sectors, for `inspect` (safe on untrusted input).

use imagetool_blockio::ReadAt;

use crate::params::FatType;

/// What a FAT boot sector says about its filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatInfo {
    /// FAT12, FAT16 or FAT32, by the cluster count (as drivers decide).
    pub fat_type: FatType,
    /// Volume label from the boot sector, trailing spaces removed.
    pub label: String,
    /// Volume ID (serial), shown by blkid as `XXXX-XXXX`.
    pub volume_id: u32,
    /// Filesystem size in bytes.
    pub size: u64,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Hidden sectors (the partition start the filesystem was made for).
    pub hidden_sectors: u32,
}

/// Reads the boot sector at offset 0 of `dev` and returns its description, or `None` when it
/// is not a plausible FAT boot sector. Never panics, whatever the bytes.
#[must_use]
pub fn probe(dev: &impl ReadAt) -> Option<FatInfo> {
    if dev.size() < 512 {
        return None;
    }
    let mut b = [0u8; 512];
    dev.read_exact_at(&mut b, 0).ok()?;
    parse(&b)
}

fn u16le(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses a boot sector (see [`probe`]).
#[must_use]
pub fn parse(b: &[u8; 512]) -> Option<FatInfo> {
    if !(b[0] == 0xeb || b[0] == 0xe9) || b[510..] != [0x55, 0xaa] {
        return None;
    }
    let bps = u16le(b, 11);
    let spc = u32::from(b[13]);
    let reserved = u16le(b, 14);
    let fats = u32::from(b[16]);
    let root_entries = u16le(b, 17);
    let total = match u16le(b, 19) {
        0 => u32le(b, 32),
        n => n,
    };
    let fat16_len = u16le(b, 22);
    if !(512..=4096).contains(&bps)
        || !bps.is_power_of_two()
        || spc == 0
        || !spc.is_power_of_two()
        || reserved == 0
        || fats == 0
        || total == 0
    {
        return None;
    }
    let fat_len = if fat16_len == 0 {
        u32le(b, 36)
    } else {
        fat16_len
    };
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let meta = u64::from(reserved) + u64::from(fats) * u64::from(fat_len) + u64::from(root_sectors);
    let data = u64::from(total).checked_sub(meta)?;
    let clusters = u32::try_from(data / u64::from(spc)).ok()?;
    let fat_type = FatType::from_clusters(clusters);
    let vi = if fat_type == FatType::Fat32 { 64 } else { 36 };
    let (label, volume_id) = if b[vi + 2] == 0x29 || b[vi + 2] == 0x28 {
        let raw = &b[vi + 7..vi + 18];
        let l: String = raw
            .iter()
            .map(|&c| {
                if c.is_ascii_graphic() || c == b' ' {
                    c as char
                } else {
                    '?'
                }
            })
            .collect();
        let l = l.trim_end().to_string();
        (
            if l == "NO NAME" { String::new() } else { l },
            u32le(b, vi + 3),
        )
    } else {
        (String::new(), 0)
    };
    Some(FatInfo {
        fat_type,
        label,
        volume_id,
        size: u64::from(total) * u64::from(bps),
        cluster_size: bps * spc,
        hidden_sectors: u32le(b, 28),
    })
}
