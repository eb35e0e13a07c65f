//! What `grub-bios-setup` does, natively: boot.img into the MBR, core.img into the MBR gap or
//! the BIOS boot partition, with the sector numbers patched in.
//!
//! Offsets (GRUB's `include/grub/i386/pc/boot.h`, `include/grub/offsets.h`, `util/setup.c`):
//! boot.img keeps its code in bytes 0..440 except the BPB area 0x03..0x5A (taken from the
//! existing sector 0), the core image's LBA at 0x5C (u64 LE), the boot drive 0xFF ("the drive
//! the BIOS booted from") at 0x64, and NOPs over the floppy check at 0x66; bytes 0x1B8..0x1FE
//! (disk signature and partition table) come from the existing sector 0. core.img's first
//! sector (diskboot.img) ends with a blocklist entry `{u64 start, u16 len, u16 segment}` at
//! 0x1F4 that says where the rest of the core image is: `{first + 1, sectors − 1, 0x820}`,
//! followed (downward) by an entry with `len == 0` ending the list.
//!
//! Reed-Solomon codes are not added (as `grub-bios-setup --no-rs-codes` and osbuild): they
//! let GRUB repair a core image partly overwritten by other software writing into the gap
//! after installation, which a freshly built image does not have; core.img's redundancy field
//! stays 0, which its startup code reads as "no codes".

use imagetool_blockio::{ReadAt, WriteAt};

use crate::error::{Error, ErrorKind, Result};

const SECTOR: u64 = 512;
/// GRUB's limit on the core image it loads below 0x78000 (`(0x78000 − 0x9000) / 512`).
pub const MAX_CORE_SECTORS: u64 = 888;
/// The BIOS boot partition's GPT type GUID `21686148-6449-6E6F-744E-656564454649`, as stored.
pub const BIOS_BOOT_GUID: [u8; 16] = *b"Hah!IdontNeedEFI";

const BPB_START: usize = 0x03;
const BPB_END: usize = 0x5A;
const KERNEL_SECTOR: usize = 0x5C;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
const TABLE_START: usize = 0x1B8;
const TABLE_END: usize = 0x1FE;
const BLOCKLIST: usize = 0x200 - 12;
const KERNEL_SEGMENT: u16 = 0x820;

/// Where the core image goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedArea {
    /// An MBR disk's gap between the MBR and the first partition: `sectors` sectors from LBA 1
    /// (2047 for a first partition at 1 MiB).
    MbrGap {
        /// Sectors in the gap.
        sectors: u64,
    },
    /// A GPT disk's BIOS boot partition (type `21686148-…`), all of it.
    BiosBootPartition {
        /// Its first sector.
        first_lba: u64,
        /// Its size in sectors.
        sectors: u64,
    },
}

impl EmbedArea {
    /// The first sector of the area.
    #[must_use]
    pub fn first_lba(self) -> u64 {
        match self {
            EmbedArea::MbrGap { .. } => 1,
            EmbedArea::BiosBootPartition { first_lba, .. } => first_lba,
        }
    }

    /// The size of the area in sectors.
    #[must_use]
    pub fn sectors(self) -> u64 {
        match self {
            EmbedArea::MbrGap { sectors } | EmbedArea::BiosBootPartition { sectors, .. } => sectors,
        }
    }
}

/// What [`embed_bios`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    /// The core image's first sector (what boot.img loads).
    pub core_lba: u64,
    /// Sectors the core image occupies.
    pub core_sectors: u64,
    /// Sectors of the area.
    pub area_sectors: u64,
}

/// boot.img as grub-bios-setup writes it to a hard disk: `boot_img`'s code with the core
/// image's LBA, boot drive 0xFF and the floppy check disabled, the BPB area and the
/// partition table (0x1B8..0x1FE) from `existing` (the sector 0 the table writer wrote).
#[must_use]
pub fn patch_boot_img(boot_img: &[u8; 512], existing: &[u8; 512], core_lba: u64) -> [u8; 512] {
    let mut s = *boot_img;
    s[BPB_START..BPB_END].copy_from_slice(&existing[BPB_START..BPB_END]);
    s[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    s[BOOT_DRIVE] = 0xFF;
    s[DRIVE_CHECK] = 0x90;
    s[DRIVE_CHECK + 1] = 0x90;
    s[TABLE_START..TABLE_END].copy_from_slice(&existing[TABLE_START..TABLE_END]);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

/// core.img padded to whole sectors, with its diskboot blocklist saying the rest of it
/// follows `first_lba` contiguously.
///
/// # Errors
/// `InvalidInput` when `core_img` is not an i386-pc core image (no diskboot blocklist with
/// segment 0x820 and a terminator after it); `NoSpace` when it is larger than GRUB can load
/// ([`MAX_CORE_SECTORS`]); `Overflow`-like input (`first_lba + 1` past u64) is `InvalidInput`.
pub fn patch_core_img(core_img: &[u8], first_lba: u64) -> Result<Vec<u8>> {
    let sector = SECTOR as usize;
    if core_img.len() <= sector {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "core.img of {} bytes is not an i386-pc core image (needs diskboot and more)",
                core_img.len()
            ),
        ));
    }
    let segment = u16::from_le_bytes([core_img[BLOCKLIST + 10], core_img[BLOCKLIST + 11]]);
    let next_len = u16::from_le_bytes([core_img[BLOCKLIST - 4], core_img[BLOCKLIST - 3]]);
    if segment != KERNEL_SEGMENT || next_len != 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "core.img has no diskboot blocklist at 0x1F4 (segment {segment:#x}, next length \
                 {next_len}): not an i386-pc core image"
            ),
        ));
    }
    let nsec = core_img.len().div_ceil(sector);
    if nsec as u64 > MAX_CORE_SECTORS {
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!("core.img has {nsec} sectors; GRUB loads at most {MAX_CORE_SECTORS}"),
        ));
    }
    let start = first_lba.checked_add(1).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("core.img LBA {first_lba} is out of range"),
        )
    })?;
    let mut out = core_img.to_vec();
    out.resize(nsec * sector, 0);
    out[BLOCKLIST..BLOCKLIST + 8].copy_from_slice(&start.to_le_bytes());
    out[BLOCKLIST + 8..BLOCKLIST + 10].copy_from_slice(&((nsec - 1) as u16).to_le_bytes());
    out[BLOCKLIST + 10..BLOCKLIST + 12].copy_from_slice(&KERNEL_SEGMENT.to_le_bytes());
    Ok(out)
}

/// One MBR partition entry: type, first sector.
#[derive(Debug, Clone, Copy)]
struct MbrPart {
    index: usize,
    kind: u8,
    first: u64,
}

fn mbr_parts(s0: &[u8; 512]) -> Vec<MbrPart> {
    (0..4)
        .filter_map(|i| {
            let e = &s0[0x1BE + 16 * i..0x1BE + 16 * (i + 1)];
            let kind = e[4];
            let first = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
            let sectors = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
            (kind != 0 && sectors != 0).then_some(MbrPart {
                index: i + 1,
                kind,
                first: u64::from(first),
            })
        })
        .collect()
}

fn read<D: ReadAt + ?Sized>(disk: &D, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
    disk.read_exact_at(buf, offset).map_err(|e| {
        Error::new(ErrorKind::Io, format!("disk: read {what} at byte {offset}")).with_source(e)
    })
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Checks that `first..first+sectors` is exactly a BIOS boot partition of the disk's GPT and
/// overlaps no other partition.
fn check_gpt_area<D: ReadAt + ?Sized>(disk: &D, first: u64, sectors: u64) -> Result<()> {
    let mut hdr = [0u8; 512];
    read(disk, &mut hdr, SECTOR, "the GPT header")?;
    if &hdr[..8] != b"EFI PART" {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "disk: a BIOS boot partition was given but LBA 1 holds no GPT header",
        ));
    }
    let entries_lba = le_u64(&hdr[0x48..]);
    let count = u64::from(le_u32(&hdr[0x50..]));
    let size = u64::from(le_u32(&hdr[0x54..]));
    let bytes = count
        .checked_mul(size)
        .filter(|&b| b <= 1 << 20 && size >= 128);
    let (Some(bytes), Some(off)) = (bytes, entries_lba.checked_mul(SECTOR)) else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("disk: GPT header with an implausible entry array ({count} × {size} bytes)"),
        ));
    };
    let mut arr = vec![0u8; bytes as usize];
    read(disk, &mut arr, off, "the GPT partition entries")?;
    let last = first + sectors - 1;
    let mut found = false;
    for (i, e) in arr.chunks_exact(size as usize).enumerate() {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let (pf, pl) = (le_u64(&e[32..]), le_u64(&e[40..]));
        if pf == first && pl == last && e[..16] == BIOS_BOOT_GUID {
            found = true;
        } else if pf <= last && first <= pl {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "disk: the core image area LBA {first}..={last} overlaps GPT partition {} \
                     (LBA {pf}..={pl})",
                    i + 1
                ),
            ));
        }
    }
    if found {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "disk: the GPT has no BIOS boot partition (type 21686148-6449-6E6F-744E-656564454649) \
                 at LBA {first}..={last}"
            ),
        ))
    }
}

/// Installs GRUB's BIOS stage into `disk`, as grub-bios-setup (without Reed-Solomon codes):
/// core.img at the start of `area` with its blocklist patched, then boot.img into sector 0
/// keeping the sector's partition table. Write the partition table first.
///
/// # Errors
/// `InvalidInput` when sector 0 holds no table (no 55 AA), an MBR gap is asked for on a GPT
/// disk (protective MBR) or overlaps a partition, a BIOS boot partition is asked for that the
/// GPT does not have (or that overlaps another partition), or `core_img` is not a core image;
/// `NoSpace` when the core image is larger than the area or the area runs past the disk;
/// `Io` reading or writing the disk.
pub fn embed_bios<D: ReadAt + WriteAt + ?Sized>(
    disk: &D,
    boot_img: &[u8; 512],
    core_img: &[u8],
    area: EmbedArea,
) -> Result<Embedded> {
    let first = area.first_lba();
    let sectors = area.sectors();
    if sectors == 0 || first == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("disk: empty or sector-0 core image area ({area:?})"),
        ));
    }
    let mut s0 = [0u8; 512];
    read(disk, &mut s0, 0, "sector 0")?;
    if s0[510..] != [0x55, 0xAA] {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "disk: sector 0 holds no partition table (no 55 AA): write the table before GRUB",
        ));
    }
    let parts = mbr_parts(&s0);
    let protective = parts.iter().any(|p| p.kind == 0xEE);
    match area {
        EmbedArea::MbrGap { .. } => {
            if protective {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "disk: GPT (protective MBR): GRUB goes into the BIOS boot partition, not the \
                     MBR gap",
                ));
            }
            if let Some(p) = parts.iter().find(|p| p.first < 1 + sectors) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "disk: the MBR gap of {sectors} sectors (LBA 1..={sectors}) overlaps \
                         partition {} (type {:#04x}) starting at LBA {}",
                        p.index, p.kind, p.first
                    ),
                ));
            }
        }
        EmbedArea::BiosBootPartition { .. } => {
            if !protective {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "disk: a BIOS boot partition was given but sector 0 is not a protective MBR",
                ));
            }
            let end = first.checked_add(sectors);
            if end.is_none() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("disk: core image area {area:?} is out of range"),
                ));
            }
            check_gpt_area(disk, first, sectors)?;
        }
    }
    let disk_sectors = disk.capacity() / SECTOR;
    if first
        .checked_add(sectors)
        .is_none_or(|end| end > disk_sectors)
    {
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "disk: core image area LBA {first} + {sectors} sectors runs past the disk's \
                 {disk_sectors} sectors"
            ),
        ));
    }
    let core = patch_core_img(core_img, first)?;
    let core_sectors = core.len() as u64 / SECTOR;
    if core_sectors > sectors {
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "disk: core.img needs {core_sectors} sectors, the {} has {sectors}",
                match area {
                    EmbedArea::MbrGap { .. } => "MBR gap",
                    EmbedArea::BiosBootPartition { .. } => "BIOS boot partition",
                }
            ),
        ));
    }
    let boot = patch_boot_img(boot_img, &s0, first);
    disk.write_all_at(&core, first * SECTOR).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("disk: write core.img at LBA {first}"),
        )
        .with_source(e)
    })?;
    disk.write_all_at(&boot, 0).map_err(|e| {
        Error::new(ErrorKind::Io, "disk: write boot.img to sector 0").with_source(e)
    })?;
    Ok(Embedded {
        core_lba: first,
        core_sectors,
        area_sectors: sectors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagetool_blockio::MemImage;

    /// A boot.img stand-in with GRUB's layout: jmp, kernel_address, kernel_sector 1, drive
    /// 0xFF, `jmp 3f` at 0x66, code bytes elsewhere, 55 AA.
    fn boot_img() -> [u8; 512] {
        let mut b = [0xC3u8; 512];
        b[0] = 0xEB;
        b[1] = 0x63;
        b[2] = 0x90;
        b[BPB_START..BPB_END].fill(0);
        b[0x5A..0x5C].copy_from_slice(&0x8000u16.to_le_bytes());
        b[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&1u64.to_le_bytes());
        b[BOOT_DRIVE] = 0xFF;
        b[DRIVE_CHECK] = 0xEB;
        b[DRIVE_CHECK + 1] = 0x05;
        b[TABLE_START..TABLE_END].fill(0);
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    /// A core.img stand-in as grub-mkimage lays it out: `n` bytes, diskboot's blocklist
    /// `{2, sectors − 1, 0x820}` at 0x1F4 and a zero terminator below it.
    fn core_img(n: usize) -> Vec<u8> {
        let mut c: Vec<u8> = (0..n).map(|i| (i % 251) as u8 | 1).collect();
        c[BLOCKLIST - 12..BLOCKLIST].fill(0);
        c[BLOCKLIST..BLOCKLIST + 8].copy_from_slice(&2u64.to_le_bytes());
        let len = (n.div_ceil(512) - 1) as u16;
        c[BLOCKLIST + 8..BLOCKLIST + 10].copy_from_slice(&len.to_le_bytes());
        c[BLOCKLIST + 10..BLOCKLIST + 12].copy_from_slice(&0x820u16.to_le_bytes());
        c
    }

    fn mbr(parts: &[(u8, u32, u32)]) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0x1B8..0x1BC].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        for (i, &(kind, first, n)) in parts.iter().enumerate() {
            let e = &mut s[0x1BE + 16 * i..0x1BE + 16 * (i + 1)];
            e[4] = kind;
            e[8..12].copy_from_slice(&first.to_le_bytes());
            e[12..16].copy_from_slice(&n.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    fn gpt_disk(sectors: u64, parts: &[([u8; 16], u64, u64)]) -> MemImage {
        let d = MemImage::new(sectors * 512);
        d.write_all_at(&mbr(&[(0xEE, 1, (sectors - 1) as u32)]), 0)
            .unwrap();
        let mut h = [0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[0x48..0x50].copy_from_slice(&2u64.to_le_bytes());
        h[0x50..0x54].copy_from_slice(&128u32.to_le_bytes());
        h[0x54..0x58].copy_from_slice(&128u32.to_le_bytes());
        d.write_all_at(&h, 512).unwrap();
        for (i, (guid, first, last)) in parts.iter().enumerate() {
            let mut e = [0u8; 128];
            e[..16].copy_from_slice(guid);
            e[16] = 1;
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
            d.write_all_at(&e, 1024 + 128 * i as u64).unwrap();
        }
        d
    }

    #[test]
    fn test_boot_img_patch_sets_lba_drive_nops_and_keeps_table() {
        let existing = mbr(&[(0x83, 2048, 100_000)]);
        let mut existing_bpb = existing;
        existing_bpb[0x10] = 0x42;
        let b = patch_boot_img(&boot_img(), &existing_bpb, 0x0102_0304_0506);
        assert_eq!(&b[..3], &[0xEB, 0x63, 0x90]);
        assert_eq!(b[0x10], 0x42, "BPB area from the existing sector");
        assert_eq!(&b[0x5A..0x5C], &[0x00, 0x80], "kernel_address untouched");
        assert_eq!(le_u64(&b[0x5C..]), 0x0102_0304_0506);
        assert_eq!(b[0x64], 0xFF);
        assert_eq!(&b[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(b[0x68], 0xC3, "code after the check untouched");
        assert_eq!(&b[0x1B8..0x1FE], &existing[0x1B8..0x1FE]);
        assert_eq!(&b[0x1B0..0x1B8], &[0xC3; 8], "boot.img code up to 440");
        assert_eq!(&b[510..], &[0x55, 0xAA]);
    }

    #[test]
    fn test_core_img_blocklist_points_after_the_first_sector() {
        let c = core_img(31500);
        let p = patch_core_img(&c, 2048).unwrap();
        assert_eq!(p.len(), 62 * 512);
        assert_eq!(le_u64(&p[0x1F4..]), 2049);
        assert_eq!(u16::from_le_bytes([p[0x1FC], p[0x1FD]]), 61);
        assert_eq!(u16::from_le_bytes([p[0x1FE], p[0x1FF]]), 0x820);
        assert!(p[0x1E8..0x1F4].iter().all(|&b| b == 0), "terminator");
        assert_eq!(&p[..0x1E8], &c[..0x1E8]);
        assert_eq!(&p[0x200..31500], &c[0x200..]);
        assert!(p[31500..].iter().all(|&b| b == 0), "zero padding");
        // Directly after the MBR, as grub-mkimage made it.
        assert_eq!(&patch_core_img(&c, 1).unwrap()[..31500], &c[..]);
    }

    #[test]
    fn test_core_img_not_a_core_image_or_too_big() {
        let mut c = core_img(4096);
        c[0x1FE] = 0;
        assert_eq!(
            patch_core_img(&c, 1).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let mut c = core_img(4096);
        c[0x1F0] = 1;
        assert_eq!(
            patch_core_img(&c, 1).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            patch_core_img(&[0u8; 100], 1).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let big = core_img(889 * 512);
        assert_eq!(
            patch_core_img(&big, 1).unwrap_err().kind(),
            ErrorKind::NoSpace
        );
        assert!(patch_core_img(&core_img(888 * 512), 1).is_ok());
        assert_eq!(
            patch_core_img(&core_img(4096), u64::MAX)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn test_embed_into_mbr_gap() {
        let d = MemImage::new(4 << 20);
        let table = mbr(&[(0x83, 2048, 6144)]);
        d.write_all_at(&table, 0).unwrap();
        let c = core_img(31500);
        let r = embed_bios(&d, &boot_img(), &c, EmbedArea::MbrGap { sectors: 2047 }).unwrap();
        assert_eq!(
            r,
            Embedded {
                core_lba: 1,
                core_sectors: 62,
                area_sectors: 2047
            }
        );
        let mut s0 = [0u8; 512];
        d.read_exact_at(&mut s0, 0).unwrap();
        assert_eq!(le_u64(&s0[0x5C..]), 1);
        assert_eq!(&s0[0x1B8..], &table[0x1B8..]);
        let mut core = vec![0u8; 62 * 512];
        d.read_exact_at(&mut core, 512).unwrap();
        assert_eq!(core, patch_core_img(&c, 1).unwrap());
        assert_eq!(le_u64(&core[0x1F4..]), 2);
    }

    #[test]
    fn test_embed_refuses_gap_overlapping_a_partition_or_too_small() {
        let d = MemImage::new(4 << 20);
        d.write_all_at(&mbr(&[(0x0c, 2048, 100), (0x83, 63, 1000)]), 0)
            .unwrap();
        let e = embed_bios(
            &d,
            &boot_img(),
            &core_img(31500),
            EmbedArea::MbrGap { sectors: 2047 },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("partition 2"), "{e}");
        let e = embed_bios(
            &d,
            &boot_img(),
            &core_img(31500),
            EmbedArea::MbrGap { sectors: 61 },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
        assert!(e.to_string().contains("needs 62 sectors"), "{e}");
        // Nothing was written on failure.
        let mut s = vec![0u8; 62 * 512];
        d.read_exact_at(&mut s, 512).unwrap();
        assert!(s.iter().all(|&b| b == 0));
    }

    #[test]
    fn test_embed_needs_a_table_first_and_refuses_gap_on_gpt() {
        let d = MemImage::new(4 << 20);
        let e = embed_bios(
            &d,
            &boot_img(),
            &core_img(4096),
            EmbedArea::MbrGap { sectors: 2047 },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("write the table"), "{e}");
        let g = gpt_disk(8192, &[(BIOS_BOOT_GUID, 2048, 4095)]);
        let e = embed_bios(
            &g,
            &boot_img(),
            &core_img(4096),
            EmbedArea::MbrGap { sectors: 2047 },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn test_embed_into_bios_boot_partition() {
        let linux = [0x11u8; 16];
        let g = gpt_disk(16384, &[(BIOS_BOOT_GUID, 2048, 4095), (linux, 4096, 16000)]);
        let c = core_img(31500);
        let area = EmbedArea::BiosBootPartition {
            first_lba: 2048,
            sectors: 2048,
        };
        let r = embed_bios(&g, &boot_img(), &c, area).unwrap();
        assert_eq!(r.core_lba, 2048);
        let mut s0 = [0u8; 512];
        g.read_exact_at(&mut s0, 0).unwrap();
        assert_eq!(le_u64(&s0[0x5C..]), 2048);
        assert_eq!(s0[0x1BE + 4], 0xEE, "protective entry kept");
        let mut first = [0u8; 512];
        g.read_exact_at(&mut first, 2048 * 512).unwrap();
        assert_eq!(le_u64(&first[0x1F4..]), 2049);
        // The hybrid layout: LBA 34..=2048.
        let h = gpt_disk(16384, &[(linux, 4096, 16000), (BIOS_BOOT_GUID, 34, 2048)]);
        let area = EmbedArea::BiosBootPartition {
            first_lba: 34,
            sectors: 2015,
        };
        assert_eq!(embed_bios(&h, &boot_img(), &c, area).unwrap().core_lba, 34);
    }

    #[test]
    fn test_embed_refuses_a_partition_the_gpt_does_not_have() {
        let linux = [0x11u8; 16];
        let g = gpt_disk(16384, &[(linux, 2048, 4095), (linux, 4096, 16000)]);
        let area = EmbedArea::BiosBootPartition {
            first_lba: 2048,
            sectors: 2048,
        };
        let e = embed_bios(&g, &boot_img(), &core_img(4096), area).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("overlaps GPT partition 1"), "{e}");
        let g = gpt_disk(16384, &[(BIOS_BOOT_GUID, 2048, 3000), (linux, 4096, 16000)]);
        let e = embed_bios(&g, &boot_img(), &core_img(4096), area).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let d = MemImage::new(4 << 20);
        d.write_all_at(&mbr(&[(0x83, 2048, 6144)]), 0).unwrap();
        let e = embed_bios(&d, &boot_img(), &core_img(4096), area).unwrap_err();
        assert!(e.to_string().contains("not a protective MBR"), "{e}");
    }

    #[test]
    fn test_embed_area_past_the_disk_is_no_space() {
        let g = gpt_disk(4096, &[(BIOS_BOOT_GUID, 2048, 8191)]);
        let area = EmbedArea::BiosBootPartition {
            first_lba: 2048,
            sectors: 6144,
        };
        let e = embed_bios(&g, &boot_img(), &core_img(4096), area).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    }
}
