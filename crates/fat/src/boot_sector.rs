//! The boot sector: the BIOS parameter block (FAT12/16 and FAT32's extended one), the volume
//! label and the boot code of a non-bootable volume.

use crate::error::{Error, ErrorKind, Result};
use crate::params::{FatType, Params, SECTOR};

/// The OEM name in the boot sector (the value Microsoft recommends for compatibility).
const OEM_NAME: &[u8; 8] = b"MSWIN4.1";
/// Boot code for a non-bootable volume: `int 18h` (the BIOS tries the next boot device), then
/// `hlt` in a loop.
const BOOT_CODE: [u8; 5] = [0xcd, 0x18, 0xf4, 0xeb, 0xfd];
/// Sector of the FAT32 backup boot sector.
pub(crate) const BACKUP_BOOT: u32 = 6;
/// The label stored when none is given.
pub(crate) const NO_NAME: [u8; 11] = *b"NO NAME    ";

/// Validates a volume label and pads it to 11 bytes.
///
/// # Errors
/// `InvalidInput` for more than 11 characters, non-ASCII, control characters, a leading space,
/// or any of `*?.,;:/\|+=<>[]"`.
pub fn label_bytes(label: &str) -> Result<[u8; 11]> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid FAT label {label:?}: {why}"),
        ))
    };
    if label.len() > 11 || !label.is_ascii() {
        return bad("at most 11 ASCII characters");
    }
    if label.starts_with(' ') {
        return bad("starts with a space");
    }
    if label
        .bytes()
        .any(|c| c < 0x20 || c == 0x7f || b"*?.,;:/\\|+=<>[]\"".contains(&c))
    {
        return bad("holds a character FAT labels cannot");
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// The boot sector with its BIOS parameter block for `p`: the volume `label`, `volume_id`
/// and `hidden_sectors` (the partition's start LBA); FAT32's extended BPB points at the
/// FSInfo sector and the backup boot sector.
pub(crate) fn boot_sector(
    p: &Params,
    label: &[u8; 11],
    volume_id: u32,
    hidden_sectors: u32,
) -> Vec<u8> {
    let mut b = vec![0u8; SECTOR as usize];
    let fat32 = p.fat_type == FatType::Fat32;
    let code_at = if fat32 { 90 } else { 62 };
    b[0] = 0xeb;
    b[1] = (code_at - 2) as u8;
    b[2] = 0x90;
    b[3..11].copy_from_slice(OEM_NAME);
    b[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
    b[13] = p.cluster_sectors as u8;
    b[14..16].copy_from_slice(&(p.reserved as u16).to_le_bytes());
    b[16] = 2;
    b[17..19].copy_from_slice(&(p.root_entries as u16).to_le_bytes());
    if p.sectors < 65536 {
        b[19..21].copy_from_slice(&(p.sectors as u16).to_le_bytes());
    } else {
        b[32..36].copy_from_slice(&p.sectors.to_le_bytes());
    }
    b[21] = 0xf8;
    if !fat32 {
        b[22..24].copy_from_slice(&(p.fat_sectors as u16).to_le_bytes());
    }
    b[24..26].copy_from_slice(&p.secs_track.to_le_bytes());
    b[26..28].copy_from_slice(&p.heads.to_le_bytes());
    b[28..32].copy_from_slice(&hidden_sectors.to_le_bytes());
    let vi = if fat32 {
        b[36..40].copy_from_slice(&p.fat_sectors.to_le_bytes());
        b[44..48].copy_from_slice(&2u32.to_le_bytes()); // root cluster
        b[48..50].copy_from_slice(&1u16.to_le_bytes()); // FSInfo sector
        b[50..52].copy_from_slice(&(BACKUP_BOOT as u16).to_le_bytes());
        64
    } else {
        36
    };
    b[vi] = 0x80; // drive number: a hard disk
    b[vi + 2] = 0x29; // extended boot signature
    b[vi + 3..vi + 7].copy_from_slice(&volume_id.to_le_bytes());
    b[vi + 7..vi + 18].copy_from_slice(label);
    let fs = match p.fat_type {
        FatType::Fat12 => b"FAT12   ",
        FatType::Fat16 => b"FAT16   ",
        FatType::Fat32 => b"FAT32   ",
    };
    b[vi + 18..vi + 26].copy_from_slice(fs);
    b[code_at..code_at + BOOT_CODE.len()].copy_from_slice(&BOOT_CODE);
    b[510] = 0x55;
    b[511] = 0xaa;
    b
}
