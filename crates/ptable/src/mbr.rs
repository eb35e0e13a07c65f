//! The 512-byte master boot record: legacy tables and the GPT protective MBR.
//!
//! Written in-house (see docs/why-in-house.md): the format is one sector, and the only crate
//! that writes it (mbrman) pulls in an unmaintained serialiser.

use crate::error::{Error, Result};

/// Bytes 0..440: boot code.
pub const BOOT_CODE_LEN: usize = 440;
/// Offset of the 32-bit disk signature (`label-id` in sfdisk).
pub const SIGNATURE_OFFSET: usize = 440;
/// Offset of the first of the four 16-byte partition entries.
pub const ENTRIES_OFFSET: usize = 446;
/// The boot signature `55 AA` at bytes 510..512.
pub const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xaa];
/// Partition type of a GPT protective entry.
pub const TYPE_GPT_PROTECTIVE: u8 = 0xee;
/// Partition type parted gives a `fat32` partition: FAT32 with LBA addressing.
pub const TYPE_FAT32_LBA: u8 = 0x0c;
/// Partition type `Linux`.
pub const TYPE_LINUX: u8 = 0x83;
/// Partition type `W95 FAT32` (CHS), what sd-image.nix gives its firmware partition.
pub const TYPE_FAT32: u8 = 0x0b;

/// A disk geometry used only to fill the legacy CHS fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Heads per cylinder.
    pub heads: u32,
    /// Sectors per track.
    pub sectors: u32,
}

impl Geometry {
    /// The geometry parted assumes for a regular image file (4 heads, 32 sectors per track):
    /// make-disk-image runs parted on a file, so this is what its tables carry.
    pub const PARTED_FILE: Geometry = Geometry {
        heads: 4,
        sectors: 32,
    };

    /// The geometry sfdisk (libfdisk) assumes for a regular image file (255 heads, 63 sectors
    /// per track): sd-image.nix runs sfdisk on a file.
    pub const SFDISK_FILE: Geometry = Geometry {
        heads: 255,
        sectors: 63,
    };

    /// Encodes `lba` as the three CHS bytes (head, sector | cylinder high bits, cylinder low
    /// byte); past cylinder 1023 the maximum address is stored, as parted does.
    #[must_use]
    pub fn chs(self, lba: u64) -> [u8; 3] {
        let per_cyl = u64::from(self.heads) * u64::from(self.sectors);
        if per_cyl == 0 {
            return [0; 3];
        }
        let mut c = lba / per_cyl;
        let mut h = (lba / u64::from(self.sectors)) % u64::from(self.heads);
        let mut s = lba % u64::from(self.sectors);
        if c > 1023 {
            c = 1023;
            h = u64::from(self.heads) - 1;
            s = u64::from(self.sectors) - 1;
        }
        [
            h as u8,
            ((s + 1) as u8 & 0x3f) | (((c >> 8) as u8 & 0x3) << 6),
            c as u8,
        ]
    }
}

/// One of the four primary partition entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MbrEntry {
    /// 0x80 for the active (bootable) partition, else 0.
    pub status: u8,
    /// CHS of the first sector.
    pub chs_first: [u8; 3],
    /// Partition type byte.
    pub kind: u8,
    /// CHS of the last sector.
    pub chs_last: [u8; 3],
    /// First sector.
    pub first_lba: u32,
    /// Number of sectors.
    pub sectors: u32,
}

impl MbrEntry {
    /// An entry whose CHS fields are computed with `geometry`.
    #[must_use]
    pub fn new(kind: u8, first_lba: u32, sectors: u32, bootable: bool, geometry: Geometry) -> Self {
        let last = u64::from(first_lba) + u64::from(sectors).saturating_sub(1);
        Self {
            status: if bootable { 0x80 } else { 0 },
            chs_first: geometry.chs(u64::from(first_lba)),
            kind,
            chs_last: geometry.chs(last),
            first_lba,
            sectors,
        }
    }

    /// The protective entry of a GPT disk of `disk_sectors` sectors, as parted and sgdisk write
    /// it: LBA 1 to the end (capped at 2^32 - 1 sectors), CHS `00 02 00` to `FF FF FF`.
    #[must_use]
    pub fn protective(disk_sectors: u64) -> Self {
        Self {
            status: 0,
            chs_first: [0x00, 0x02, 0x00],
            kind: TYPE_GPT_PROTECTIVE,
            chs_last: [0xff, 0xff, 0xff],
            first_lba: 1,
            sectors: u32::try_from(disk_sectors.saturating_sub(1)).unwrap_or(u32::MAX),
        }
    }

    /// True for an all-zero (unused) entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn encode(&self, out: &mut [u8]) {
        out[0] = self.status;
        out[1..4].copy_from_slice(&self.chs_first);
        out[4] = self.kind;
        out[5..8].copy_from_slice(&self.chs_last);
        out[8..12].copy_from_slice(&self.first_lba.to_le_bytes());
        out[12..16].copy_from_slice(&self.sectors.to_le_bytes());
    }

    fn decode(b: &[u8; 16]) -> Self {
        Self {
            status: b[0],
            chs_first: [b[1], b[2], b[3]],
            kind: b[4],
            chs_last: [b[5], b[6], b[7]],
            first_lba: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            sectors: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }
}

/// A whole MBR sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    /// Boot code (bytes 0..440); zero unless a bootloader installs some.
    pub boot_code: [u8; BOOT_CODE_LEN],
    /// The disk signature (bytes 440..444, little-endian).
    pub signature: u32,
    /// The four primary entries.
    pub entries: [MbrEntry; 4],
}

impl Default for Mbr {
    fn default() -> Self {
        Self {
            boot_code: [0; BOOT_CODE_LEN],
            signature: 0,
            entries: [MbrEntry::default(); 4],
        }
    }
}

impl Mbr {
    /// The 512 bytes of the sector.
    #[must_use]
    pub fn encode(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[..BOOT_CODE_LEN].copy_from_slice(&self.boot_code);
        s[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 4].copy_from_slice(&self.signature.to_le_bytes());
        for (i, e) in self.entries.iter().enumerate() {
            let at = ENTRIES_OFFSET + 16 * i;
            e.encode(&mut s[at..at + 16]);
        }
        s[510..].copy_from_slice(&BOOT_SIGNATURE);
        s
    }

    /// Parses a sector.
    ///
    /// # Errors
    /// `Corrupt` when the `55 AA` signature is missing.
    pub fn decode(sector: &[u8; 512]) -> Result<Self> {
        if sector[510..] != BOOT_SIGNATURE {
            return Err(Error::corrupt("no MBR boot signature 55 AA", 510));
        }
        let mut m = Self::default();
        m.boot_code.copy_from_slice(&sector[..BOOT_CODE_LEN]);
        m.signature = u32::from_le_bytes([sector[440], sector[441], sector[442], sector[443]]);
        for (i, e) in m.entries.iter_mut().enumerate() {
            let at = ENTRIES_OFFSET + 16 * i;
            let mut b = [0u8; 16];
            b.copy_from_slice(&sector[at..at + 16]);
            *e = MbrEntry::decode(&b);
        }
        Ok(m)
    }

    /// True when the first entry is a GPT protective entry.
    #[must_use]
    pub fn is_protective(&self) -> bool {
        self.entries.iter().any(|e| e.kind == TYPE_GPT_PROTECTIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_chs_matches_parted_on_files() {
        // Values read from a table parted 3.5 wrote on a 2 GiB file.
        let g = Geometry::PARTED_FILE;
        assert_eq!(g.chs(2048), [0x00, 0x01, 0x10]);
        assert_eq!(g.chs(4_194_303), [0x03, 0xe0, 0xff]);
        assert_eq!(g.chs(0), [0, 1, 0]);
    }

    #[test]
    fn test_mbr_roundtrip() {
        let mut m = Mbr {
            signature: 0x1d1e_3a21,
            ..Mbr::default()
        };
        m.entries[0] = MbrEntry::new(TYPE_LINUX, 2048, 4_192_256, false, Geometry::PARTED_FILE);
        let s = m.encode();
        assert_eq!(
            s[0x1b8..0x1ce],
            [
                0x21, 0x3a, 0x1e, 0x1d, 0, 0, 0, 0, 0x01, 0x10, 0x83, 0x03, 0xe0, 0xff, 0x00, 0x08,
                0, 0, 0x00, 0xf8, 0x3f, 0
            ]
        );
        assert_eq!(Mbr::decode(&s).unwrap(), m);
    }

    #[test]
    fn test_decode_rejects_missing_signature() {
        assert!(Mbr::decode(&[0u8; 512]).is_err());
    }
}
