//! El Torito: the boot record volume descriptor, the boot catalog and the boot info table.

/// The boot record volume descriptor (sector 17) pointing at the catalog.
pub(crate) fn boot_record(catalog_lba: u32) -> [u8; 2048] {
    let mut s = [0u8; 2048];
    s[0] = 0;
    s[1..6].copy_from_slice(b"CD001");
    s[6] = 1;
    let id = b"EL TORITO SPECIFICATION";
    s[7..7 + id.len()].copy_from_slice(id);
    s[0x47..0x4B].copy_from_slice(&catalog_lba.to_le_bytes());
    s
}

/// One no-emulation boot image: its first sector and its size in 512-byte sectors as the
/// catalog records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Image {
    pub lba: u32,
    pub sectors: u16,
}

fn validation(platform: u8) -> [u8; 32] {
    let mut v = [0u8; 32];
    v[0] = 1;
    v[1] = platform;
    v[30] = 0x55;
    v[31] = 0xAA;
    let sum = v.chunks_exact(2).fold(0u16, |a, w| {
        a.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    v[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    v
}

fn initial(img: Image) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[0] = 0x88;
    e[6..8].copy_from_slice(&img.sectors.to_le_bytes());
    e[8..12].copy_from_slice(&img.lba.to_le_bytes());
    e
}

/// The boot catalog: the BIOS image as the default entry and the EFI image in a final section
/// for platform 0xEF (or the EFI image as the default entry when there is no BIOS image).
pub(crate) fn catalog(bios: Option<Image>, efi: Option<Image>) -> [u8; 2048] {
    let mut c = [0u8; 2048];
    match (bios, efi) {
        (Some(b), efi) => {
            c[..32].copy_from_slice(&validation(0));
            c[32..64].copy_from_slice(&initial(b));
            if let Some(e) = efi {
                c[64] = 0x91;
                c[65] = 0xEF;
                c[66..68].copy_from_slice(&1u16.to_le_bytes());
                c[96..128].copy_from_slice(&initial(e));
            }
        }
        (None, Some(e)) => {
            c[..32].copy_from_slice(&validation(0xEF));
            c[32..64].copy_from_slice(&initial(e));
        }
        (None, None) => {}
    }
    c
}

/// Writes the El Torito boot info table into `image` (a boot file placed at `file_lba`): the
/// PVD's LBA (16), the file's LBA and length, and the 32-bit sum of its words from byte 64.
pub(crate) fn patch_info_table(image: &mut [u8], file_lba: u32) {
    if image.len() < 64 {
        return;
    }
    let sum = image[64..].chunks(4).fold(0u32, |a, w| {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        a.wrapping_add(u32::from_le_bytes(b))
    });
    image[8..12].copy_from_slice(&16u32.to_le_bytes());
    image[12..16].copy_from_slice(&file_lba.to_le_bytes());
    let len = image.len() as u32;
    image[16..20].copy_from_slice(&len.to_le_bytes());
    image[20..24].copy_from_slice(&sum.to_le_bytes());
    image[24..64].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_validation_checksum_sums_to_zero() {
        let c = catalog(
            Some(Image {
                lba: 40,
                sectors: 4,
            }),
            Some(Image {
                lba: 50,
                sectors: 2880,
            }),
        );
        let sum = c[..32].chunks_exact(2).fold(0u16, |a, w| {
            a.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        assert_eq!(sum, 0);
        assert_eq!(c[32], 0x88);
        assert_eq!(u32::from_le_bytes(c[40..44].try_into().unwrap()), 40);
        assert_eq!((c[64], c[65]), (0x91, 0xEF));
        assert_eq!(u16::from_le_bytes([c[102], c[103]]), 2880);
    }

    #[test]
    fn test_info_table() {
        let mut img = vec![0u8; 2048];
        img[64] = 1;
        img[2047] = 1;
        patch_info_table(&mut img, 99);
        assert_eq!(u32::from_le_bytes(img[12..16].try_into().unwrap()), 99);
        assert_eq!(u32::from_le_bytes(img[16..20].try_into().unwrap()), 2048);
        assert_eq!(
            u32::from_le_bytes(img[20..24].try_into().unwrap()),
            1 + (1 << 24)
        );
    }
}
