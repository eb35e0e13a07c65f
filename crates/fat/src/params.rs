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
        // 1. The sector count and the forced cluster size, checked.
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
        // 2. mkfs.fat's starting point: FAT32 from 512 MiB on, its cluster size by size.
        let small = size < 512 << 20;
        let (secs_track, heads) = if small { (32, 64) } else { (63, 255) };
        let size_fat = forced.or((!small).then_some(FatType::Fat32));
        let mut cluster = forced_cluster_sectors.unwrap_or_else(|| first_cluster(size, size_fat));
        let max_cluster = forced_cluster_sectors.unwrap_or(128);
        let geo = Geometry::new(num_sectors, size_fat);
        // 3. Double the cluster size until the wanted type's cluster count is valid.
        let found = loop {
            let Some(counts) = geo.counts(cluster, forced) else {
                break None;
            };
            if let Some(p) = counts.pick(size_fat) {
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
        // 4. Refuse what readers would misread, and what is too small.
        check_found(size, num_sectors, fat_type, clusters)?;
        let reserved = geo.align(geo.reserved0, cluster_sectors);
        let root_entries = if fat_type == FatType::Fat32 {
            0
        } else if geo.aligned {
            geo.align(geo.root_sectors, cluster_sectors) * (SECTOR / 32)
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

/// mkfs.fat's first cluster size (sectors) for `size` bytes: by size for FAT32, else 4.
fn first_cluster(size: u64, size_fat: Option<FatType>) -> u32 {
    if size_fat != Some(FatType::Fat32) {
        return 4;
    }
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
}

/// mkfs.fat (and this writer) refuse a FAT16 that would be detected as FAT12, a FAT32 below
/// its minimum (readers decide the type by the cluster count), and anything under 32 KiB.
fn check_found(size: u64, num_sectors: u32, fat_type: FatType, clusters: u32) -> Result<()> {
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
    Ok(())
}

/// What the cluster counts of one size depend on besides the cluster size.
struct Geometry {
    num_sectors: u32,
    /// Areas are aligned to clusters (over 8192 sectors, as mkfs.fat).
    aligned: bool,
    /// Reserved sectors before alignment: 32 for FAT32, else 1.
    reserved0: u32,
    /// Sectors of the default root directory (FAT12/16).
    root_sectors: u32,
}

/// Per FAT type: `(clusters, sectors per FAT)` for one cluster size; 0 clusters when the
/// type is not valid there.
struct Counts {
    fat12: (u32, u32),
    fat16: (u32, u32),
    fat32: (u32, u32),
}

impl Geometry {
    fn new(num_sectors: u32, size_fat: Option<FatType>) -> Self {
        Self {
            num_sectors,
            aligned: num_sectors > 8192,
            reserved0: if size_fat == Some(FatType::Fat32) {
                32
            } else {
                1
            },
            root_sectors: (DEFAULT_ROOT_ENTRIES * 32).div_ceil(SECTOR),
        }
    }

    /// `s` sectors rounded up to whole clusters of `c` sectors when aligned.
    fn align(&self, s: u32, c: u32) -> u32 {
        if self.aligned { s.div_ceil(c) * c } else { s }
    }

    /// mkfs.fat's cluster counts and FAT sizes of each type with `cluster` sectors per
    /// cluster (`None`: the reserved and root areas alone do not fit).
    fn counts(&self, cluster: u32, forced: Option<FatType>) -> Option<Counts> {
        let al = |s: u32| self.align(s, cluster);
        let fatdata32 = self.num_sectors.checked_sub(al(self.reserved0))?;
        let fatdata1216 = fatdata32.checked_sub(al(self.root_sectors))?;
        let ss = u64::from(SECTOR);
        let c = u64::from(cluster);
        let (d16, d32) = (u64::from(fatdata1216), u64::from(fatdata32));
        // FAT12
        let c12 = 2 * (d16 * ss + u64::from(NR_FATS) * 3) / (2 * c * ss + u64::from(NR_FATS) * 3);
        let fl12 = al((((c12 + 2) * 3 + 1) >> 1).div_ceil(ss) as u32);
        let mut clust12 = fatdata1216.saturating_sub(NR_FATS * fl12) / cluster;
        let max12 = ((u64::from(fl12) * 2 * ss) / 3).min(u64::from(MAX_CLUST_12)) as u32;
        if clust12 > max12.saturating_sub(2) {
            clust12 = 0;
        }
        // FAT16
        let c16 = (d16 * ss + u64::from(NR_FATS) * 4) / (c * ss + u64::from(NR_FATS) * 2);
        let fl16 = al(((c16 + 2) * 2).div_ceil(ss) as u32);
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
        let fl32 = al(((c32 + 2) * 4).div_ceil(ss) as u32);
        let mut clust32 = fatdata32.saturating_sub(NR_FATS * fl32) / cluster;
        let max32 = ((u64::from(fl32) * ss) / 4).min(u64::from(MAX_CLUST_32)) as u32;
        if clust32 != 0 && clust32 < MIN_CLUST_32 && forced != Some(FatType::Fat32) {
            clust32 = 0;
        }
        if clust32 > max32 {
            clust32 = 0;
        }
        Some(Counts {
            fat12: (clust12, fl12),
            fat16: (clust16, fl16),
            fat32: (clust32, fl32),
        })
    }
}

impl Counts {
    /// The type chosen, with its clusters and FAT sectors: the wanted type if valid; with
    /// none wanted, FAT16 or FAT12, whichever has more clusters.
    fn pick(&self, size_fat: Option<FatType>) -> Option<(FatType, u32, u32)> {
        let ((clust12, fl12), (clust16, fl16), (clust32, fl32)) =
            (self.fat12, self.fat16, self.fat32);
        match size_fat {
            None if clust12 != 0 || clust16 != 0 => Some(if clust16 > clust12 {
                (FatType::Fat16, clust16, fl16)
            } else {
                (FatType::Fat12, clust12, fl12)
            }),
            Some(FatType::Fat12) if clust12 != 0 => Some((FatType::Fat12, clust12, fl12)),
            Some(FatType::Fat16) if clust16 != 0 => Some((FatType::Fat16, clust16, fl16)),
            Some(FatType::Fat32) if clust32 != 0 => Some((FatType::Fat32, clust32, fl32)),
            _ => None,
        }
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
