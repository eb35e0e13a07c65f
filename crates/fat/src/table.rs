//! The file allocation table: one chain per cluster run, packed as FAT12, FAT16 or FAT32.

use crate::error::{Error, ErrorKind, Result};
use crate::params::{FatType, Params, SECTOR};

/// One FAT (`params.fat_sectors` long) holding a chain for each run `(first, count)`: the
/// media byte and end-of-chain in entries 0 and 1.
///
/// # Errors
/// `NoSpace` when the chains do not fit the FAT.
pub(crate) fn encode_fat(params: &Params, runs: &[(u32, u32)]) -> Result<Vec<u8>> {
    let last = runs.iter().map(|(f, n)| f + n).max().unwrap_or(2);
    let mut entries = vec![0u32; last as usize];
    let (mask, eoc) = match params.fat_type {
        FatType::Fat12 => (0xfff, 0xfff),
        FatType::Fat16 => (0xffff, 0xffff),
        FatType::Fat32 => (0x0fff_ffff, 0x0fff_ffff),
    };
    entries[0] = (0x0fff_ff00 | 0xf8) & mask;
    entries[1] = mask;
    for &(first, n) in runs {
        for c in first..first + n - 1 {
            entries[c as usize] = c + 1;
        }
        entries[(first + n - 1) as usize] = eoc;
    }
    let fat_len = params.fat_sectors as usize * SECTOR as usize;
    let mut out = match params.fat_type {
        FatType::Fat12 => {
            let mut b = vec![0u8; (entries.len() * 3).div_ceil(2)];
            for (i, &v) in entries.iter().enumerate() {
                let at = i * 3 / 2;
                if i % 2 == 0 {
                    b[at] = v as u8;
                    b[at + 1] = (b[at + 1] & 0xf0) | ((v >> 8) as u8 & 0x0f);
                } else {
                    b[at] = (b[at] & 0x0f) | ((v as u8 & 0x0f) << 4);
                    b[at + 1] = (v >> 4) as u8;
                }
            }
            b
        }
        FatType::Fat16 => entries
            .iter()
            .flat_map(|&v| (v as u16).to_le_bytes())
            .collect(),
        FatType::Fat32 => entries.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    };
    if out.len() > fat_len {
        return Err(Error::new(
            ErrorKind::NoSpace,
            "the FAT is too small for the clusters used",
        ));
    }
    out.truncate(fat_len);
    Ok(out)
}
