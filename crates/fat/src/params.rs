//! Filesystem parameters: FAT type, cluster size and region sizes, chosen as mkfs.fat 4.2
//! chooses them for a given size (512-byte sectors, two FATs, 512 root entries, aligned
//! structures).

use crate::error::{Error, ErrorKind, Result};

/// Bytes per sector (the only size this writer produces).
pub const SECTOR: u32 = 512;
const NR_FATS: u32 = 2;
/// mkfs.fat 4.2 limits (later versions use 16 reserved values; the oracle test pins 4.2).
const MAX_CLUST_12: u32 = (1 << 12) - 12;
const MAX_CLUST_16: u32 = (1 << 16) - 12;
const MIN_CLUST_32: u32 = 65529;
const MAX_CLUST_32: u32 = (1 << 28) - 16;
const FAT12_THRESHOLD: u32 = 4085;
const DEFAULT_ROOT_ENTRIES: u32 = 512;

/// The FAT variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FatType {
    /// 12-bit FAT (only tiny filesystems).
    Fat12,
    /// 16-bit FAT.
    Fat16,
    /// 32-bit FAT (28 bits used).
    Fat32,
}

impl FatType {
    /// 12, 16 or 32.
    #[must_use]
    pub fn bits(self) -> u32 {
        match self {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        }
    }

    /// The type for a cluster count, as every FAT driver decides it.
    #[must_use]
    pub fn from_clusters(clusters: u32) -> Self {
        if clusters < 4085 {
            FatType::Fat12
        } else if clusters < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        }
    }
}

/// The computed layout of a FAT filesystem (all counts in sectors unless named otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// FAT variant.
    pub fat_type: FatType,
    /// Total sectors.
    pub sectors: u32,
    /// Sectors per cluster.
    pub cluster_sectors: u32,
    /// Reserved sectors before the first FAT.
    pub reserved: u32,
    /// Sectors per FAT.
    pub fat_sectors: u32,
    /// Root directory entries (FAT12/16; 0 on FAT32).
    pub root_entries: u32,
    /// Data clusters (numbered 2..clusters+2).
    pub clusters: u32,
    /// Sectors per track and heads stored in the boot sector (meaningless for LBA; mkfs.fat's
    /// values for a file).
    pub secs_track: u16,
    /// See `secs_track`.
    pub heads: u16,
}

impl Params {
    /// Chooses the parameters for a filesystem of `size` bytes: the FAT type (unless forced)
    /// and the cluster size (unless forced) as mkfs.fat 4.2 picks them.
    ///
    /// # Errors
    /// `NoSpace` when no valid filesystem of that type fits the size (too small, or too big for
    /// a forced FAT12/16); `InvalidInput` for a cluster size that is not a power of two.
    pub fn choose(
        size: u64,
        forced: Option<FatType>,
        forced_cluster_sectors: Option<u32>,
    ) -> Result<Params> {
        let num_sectors = u32::try_from(size / u64::from(SECTOR)).map_err(|_| {
            Error::new(
                ErrorKind::Overflow,
                format!("a FAT filesystem of {size} bytes is too big"),
            )
        })?;
        if let Some(c) = forced_cluster_sectors
            && (!c.is_power_of_two() || c > 128)
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("sectors per cluster {c} is not a power of two up to 128"),
            ));
        }
        let small = size < 512 << 20;
        let (secs_track, heads) = if small { (32, 64) } else { (63, 255) };
        let mut size_fat = forced;
        if size_fat.is_none() && !small {
            size_fat = Some(FatType::Fat32);
        }
        let mut cluster = if size_fat == Some(FatType::Fat32) {
            let mb = size >> 20;
            if mb > 32 * 1024 {
                64
            } else if mb > 16 * 1024 {
                32
            } else if mb > 8 * 1024 {
                16
            } else if mb > 260 {
                8
            } else {
                1
            }
        } else {
            4
        };
        let max_cluster = forced_cluster_sectors.unwrap_or(128);
        if let Some(c) = forced_cluster_sectors {
            cluster = c;
        }
        let align = num_sectors > 8192;
        let al = |s: u32, c: u32| if align { s.div_ceil(c) * c } else { s };
        let reserved0 = if size_fat == Some(FatType::Fat32) {
            32
        } else {
            1
        };
        let root_sectors = (DEFAULT_ROOT_ENTRIES * 32).div_ceil(SECTOR);
        let ss = u64::from(SECTOR);
        let found = loop {
            let fatdata32 = num_sectors.checked_sub(al(reserved0, cluster));
            let fatdata1216 = fatdata32.and_then(|d| d.checked_sub(al(root_sectors, cluster)));
            let (Some(fatdata32), Some(fatdata1216)) = (fatdata32, fatdata1216) else {
                break None;
            };
            let c = u64::from(cluster);
            let (d16, d32) = (u64::from(fatdata1216), u64::from(fatdata32));
            // FAT12
            let c12 =
                2 * (d16 * ss + u64::from(NR_FATS) * 3) / (2 * c * ss + u64::from(NR_FATS) * 3);
            let fl12 = al((((c12 + 2) * 3 + 1) >> 1).div_ceil(ss) as u32, cluster);
            let mut clust12 = fatdata1216.saturating_sub(NR_FATS * fl12) / cluster;
            let max12 = ((u64::from(fl12) * 2 * ss) / 3).min(u64::from(MAX_CLUST_12)) as u32;
            if clust12 > max12.saturating_sub(2) {
                clust12 = 0;
            }
            // FAT16
            let c16 = (d16 * ss + u64::from(NR_FATS) * 4) / (c * ss + u64::from(NR_FATS) * 2);
            let fl16 = al(((c16 + 2) * 2).div_ceil(ss) as u32, cluster);
            let mut clust16 = fatdata1216.saturating_sub(NR_FATS * fl16) / cluster;
            let max16 = ((u64::from(fl16) * ss) / 2).min(u64::from(MAX_CLUST_16)) as u32;
            if clust16 > max16.saturating_sub(2) {
                clust16 = 0;
            }
            if clust16 < FAT12_THRESHOLD && forced != Some(FatType::Fat16) {
                clust16 = 0;
            }
            // FAT32
            let c32 = (d32 * ss + u64::from(NR_FATS) * 8) / (c * ss + u64::from(NR_FATS) * 4);
            let fl32 = al(((c32 + 2) * 4).div_ceil(ss) as u32, cluster);
            let mut clust32 = fatdata32.saturating_sub(NR_FATS * fl32) / cluster;
            let max32 = ((u64::from(fl32) * ss) / 4).min(u64::from(MAX_CLUST_32)) as u32;
            if clust32 != 0 && clust32 < MIN_CLUST_32 && forced != Some(FatType::Fat32) {
                clust32 = 0;
            }
            if clust32 > max32 {
                clust32 = 0;
            }
            let pick = match size_fat {
                None if clust12 != 0 || clust16 != 0 => Some(if clust16 > clust12 {
                    (FatType::Fat16, clust16, fl16)
                } else {
                    (FatType::Fat12, clust12, fl12)
                }),
                Some(FatType::Fat12) if clust12 != 0 => Some((FatType::Fat12, clust12, fl12)),
                Some(FatType::Fat16) if clust16 != 0 => Some((FatType::Fat16, clust16, fl16)),
                Some(FatType::Fat32) if clust32 != 0 => Some((FatType::Fat32, clust32, fl32)),
                _ => None,
            };
            if let Some(p) = pick {
                break Some((p, cluster));
            }
            cluster <<= 1;
            if cluster > max_cluster {
                break None;
            }
        };
        let Some(((fat_type, clusters, fat_sectors), cluster_sectors)) = found else {
            let what = forced.map_or("FAT".to_string(), |t| format!("FAT{}", t.bits()));
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!("no valid {what} filesystem fits in {size} bytes"),
            ));
        };
        // mkfs.fat refuses a FAT16 that would be detected as FAT12 (and warns for a FAT32 below
        // its minimum); this writer refuses both: readers decide the type by the cluster count.
        if FatType::from_clusters(clusters) != fat_type {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!(
                    "a FAT{} filesystem of {size} bytes would have {clusters} clusters, which readers take for FAT{}",
                    fat_type.bits(),
                    FatType::from_clusters(clusters).bits()
                ),
            ));
        }
        if num_sectors < 64 {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!("a FAT filesystem needs at least 32 KiB, given {size} bytes"),
            ));
        }
        let reserved = al(reserved0, cluster_sectors);
        let root_entries = if fat_type == FatType::Fat32 {
            0
        } else if align {
            al(root_sectors, cluster_sectors) * (SECTOR / 32)
        } else {
            DEFAULT_ROOT_ENTRIES
        };
        Ok(Params {
            fat_type,
            sectors: num_sectors,
            cluster_sectors,
            reserved,
            fat_sectors,
            root_entries,
            clusters,
            secs_track,
            heads,
        })
    }

    /// Bytes per cluster.
    #[must_use]
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.cluster_sectors) * u64::from(SECTOR)
    }

    /// Sectors of the fixed root directory (FAT12/16).
    #[must_use]
    pub fn root_sectors(&self) -> u32 {
        (self.root_entries * 32).div_ceil(SECTOR)
    }

    /// The first sector of the data area (cluster 2).
    #[must_use]
    pub fn data_start(&self) -> u32 {
        self.reserved + 2 * self.fat_sectors + self.root_sectors()
    }

    /// Byte offset of cluster `n` (n ≥ 2) from the start of the filesystem.
    #[must_use]
    pub fn cluster_offset(&self, n: u32) -> u64 {
        u64::from(self.data_start()) * u64::from(SECTOR) + u64::from(n - 2) * self.cluster_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_248_mib_esp_is_fat16_like_mkfs_fat() {
        // mkfs.fat 4.2 on 249 MiB: FAT16, 8 sectors per cluster, 512 root entries.
        let p = Params::choose(249 << 20, None, None).unwrap();
        assert_eq!(p.fat_type, FatType::Fat16);
        assert_eq!(p.cluster_sectors, 8);
        assert_eq!(p.root_entries, 512);
    }

    #[test]
    fn test_large_is_fat32_and_small_is_fat12() {
        let p = Params::choose(1 << 30, None, None).unwrap();
        assert_eq!(
            (p.fat_type, p.cluster_sectors, p.reserved),
            (FatType::Fat32, 8, 32)
        );
        assert_eq!(
            Params::choose(2 << 20, None, None).unwrap().fat_type,
            FatType::Fat12
        );
    }

    #[test]
    fn test_forced_fat32_on_small_uses_512_byte_clusters() {
        let p = Params::choose(248 << 20, Some(FatType::Fat32), None).unwrap();
        assert_eq!((p.fat_type, p.cluster_sectors), (FatType::Fat32, 1));
        assert!(p.clusters >= 65525);
        assert!(Params::choose(16 << 20, Some(FatType::Fat32), None).is_err());
    }
}
