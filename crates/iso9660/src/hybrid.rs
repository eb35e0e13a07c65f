//! isohybrid: the MBR and GPT that make an ISO image boot from a USB stick, laid out as
//! xorriso's `-isohybrid-mbr` with `-isohybrid-gpt-basdat` writes them.
//!
//! * MBR: the first 432 bytes of the hybrid MBR code (syslinux's `isohdpfx.bin`), at 432 the
//!   BIOS boot file's position in 512-byte sectors, at 440 the disk signature; partition 1
//!   (bootable, type 0x00) covers the whole image from sector 0, partition 2 (type 0xEF) the
//!   EFI boot image.
//! * GPT: header at sector 1, 248 entries at sectors 2..63 (inside the ISO's system area),
//!   "ISOHybrid" (the image up to the backup GPT) and "ISOHybrid1" (the EFI image), both Basic
//!   Data, attributes required + read-only; partition GUIDs are the disk GUID with byte 9
//!   XOR the partition number; the backup entries and header fill the image's last 64 sectors.
//! * The image is padded to a multiple of 1 MiB (64 heads × 32 sectors, cylinder-aligned).

/// GPT entries xorriso writes (62 sectors).
const ENTRIES: u32 = 248;
/// The image is a whole number of these 512-byte sectors (one 64 × 32 cylinder).
pub(crate) const CYLINDER: u64 = 64 * 32;
/// Sectors reserved at the end for the backup GPT (a whole number of 2048-byte blocks).
pub(crate) const BACKUP: u64 = 64;

/// Basic Data (EBD0A0A2-B9E5-4433-87C0-68B6B72699C7), mixed-endian as stored.
const BASIC_DATA: [u8; 16] = [
    0xa2, 0xa0, 0xd0, 0xeb, 0xe5, 0xb9, 0x33, 0x44, 0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7,
];

/// What the hybrid tables describe.
pub(crate) struct Layout<'a> {
    /// The MBR boot code (at least 432 bytes are used).
    pub mbr_code: &'a [u8],
    /// The BIOS boot file's first 2048-byte block.
    pub boot_lba: u32,
    /// The EFI image: first 512-byte sector and sector count.
    pub efi: Option<(u64, u64)>,
    /// Total image size in 512-byte sectors (a multiple of [`CYLINDER`]).
    pub total: u64,
    /// Write a GPT too.
    pub gpt: bool,
    /// The GPT disk GUID (as stored).
    pub disk_guid: [u8; 16],
}

fn chs(lba: u64) -> [u8; 3] {
    let cyl = lba / CYLINDER;
    if cyl > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let head = (lba / 32) % 64;
    let sector = lba % 32 + 1;
    [
        head as u8,
        (sector as u8) | (((cyl >> 2) & 0xC0) as u8),
        (cyl & 0xff) as u8,
    ]
}

/// A GUID's on-disk GPT bytes: the first three fields little-endian.
pub(crate) fn gpt_bytes(u: imagetool_fstree::Uuid) -> [u8; 16] {
    let u = u.into_bytes();
    [
        u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13],
        u[14], u[15],
    ]
}

/// The system area's tables: `(byte offset, bytes)` to write.
pub(crate) fn tables(l: &Layout<'_>) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut mbr = vec![0u8; 512];
    let n = l.mbr_code.len().min(432);
    mbr[..n].copy_from_slice(&l.mbr_code[..n]);
    mbr[432..436].copy_from_slice(&(l.boot_lba.wrapping_mul(4)).to_le_bytes());
    mbr[440..444].copy_from_slice(&l.disk_guid[..4]);
    let size32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes();
    let p1 = &mut mbr[446..462];
    p1[0] = 0x80;
    p1[1..4].copy_from_slice(&[0, 1, 0]);
    p1[4] = 0x00;
    p1[5..8].copy_from_slice(&chs(l.total - 1));
    p1[8..12].copy_from_slice(&0u32.to_le_bytes());
    p1[12..16].copy_from_slice(&size32(l.total));
    if let Some((start, count)) = l.efi {
        let p2 = &mut mbr[462..478];
        p2[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        p2[4] = 0xef;
        p2[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        p2[8..12].copy_from_slice(&size32(start));
        p2[12..16].copy_from_slice(&size32(count));
    }
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    out.push((0, mbr));
    if !l.gpt {
        return out;
    }
    let backup_start = l.total - BACKUP;
    let mut entries = vec![0u8; ENTRIES as usize * 128];
    let mut put = |i: usize, first: u64, last: u64, name: &str| {
        let e = &mut entries[i * 128..(i + 1) * 128];
        e[..16].copy_from_slice(&BASIC_DATA);
        let mut guid = l.disk_guid;
        guid[9] ^= (i + 1) as u8;
        e[16..32].copy_from_slice(&guid);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        e[48..56].copy_from_slice(&0x1000_0000_0000_0001u64.to_le_bytes());
        for (j, u) in name.encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    };
    put(0, 0, backup_start - 1, "ISOHybrid");
    if let Some((start, count)) = l.efi {
        put(1, start, start + count.max(1) - 1, "ISOHybrid1");
    }
    let entries_crc = crc32fast::hash(&entries);
    let header = |my: u64, alt: u64, entries_lba: u64| -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&64u64.to_le_bytes());
        h[48..56].copy_from_slice(&backup_start.to_le_bytes());
        h[56..72].copy_from_slice(&l.disk_guid);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let backup_entries = l.total - 1 - u64::from(ENTRIES) * 128 / 512;
    out.push((512, header(1, l.total - 1, 2)));
    out.push((1024, entries.clone()));
    out.push((backup_entries * 512, entries));
    out.push(((l.total - 1) * 512, header(l.total - 1, 1, backup_entries)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_chs_of_the_last_sector_of_2_mib() {
        assert_eq!(chs(4095), [63, 32, 1]);
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(1024 * CYLINDER), [0xfe, 0xff, 0xff]);
    }

    #[test]
    fn test_tables_match_xorrisos_layout() {
        let l = Layout {
            mbr_code: &[0x33; 432],
            boot_lba: 757,
            efi: Some((148, 2880)),
            total: 4096,
            gpt: true,
            disk_guid: [0x11; 16],
        };
        let t = tables(&l);
        let mbr = &t[0].1;
        assert_eq!(u32::from_le_bytes(mbr[432..436].try_into().unwrap()), 3028);
        assert_eq!(
            &mbr[446..462],
            &[0x80, 0, 1, 0, 0, 63, 32, 1, 0, 0, 0, 0, 0, 0x10, 0, 0]
        );
        assert_eq!(mbr[462 + 4], 0xef);
        let h = &t[1].1;
        assert_eq!(u64::from_le_bytes(h[48..56].try_into().unwrap()), 4032);
        assert_eq!(t[3].0, 4033 * 512);
        assert_eq!(t[4].0, 4095 * 512);
    }
}
