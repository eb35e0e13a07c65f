//! File identifiers: ISO 9660 level 3 names (d-characters, up to 31 characters, as xorriso's
//! `-full-iso9660-filenames` writes them) and Joliet names (UCS-2, up to 64 characters), made
//! unique within their directory and sorted as ECMA-119 9.3 orders directory records.

use std::cmp::Ordering;
use std::collections::HashSet;

/// The longest ISO 9660 identifier written (xorriso's `-full-iso9660-filenames`).
const ISO_MAX: usize = 31;
/// The longest Joliet identifier written, in UCS-2 units (the Joliet specification's 64).
const JOLIET_MAX: usize = 64;

fn d_char(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => b.to_ascii_uppercase(),
        b'A'..=b'Z' | b'0'..=b'9' | b'_' => b,
        _ => b'_',
    }
}

/// ISO 9660 identifiers for the names of one directory, in the order given: directories get
/// `NAME`, files `NAME.EXT;1`; clashes get a numeric tail.
pub(crate) fn iso_names(names: &[(&[u8], bool)]) -> Vec<Vec<u8>> {
    let mut taken = HashSet::new();
    names
        .iter()
        .map(|(name, is_dir)| {
            let (stem, ext): (Vec<u8>, Vec<u8>) = if *is_dir {
                (name.iter().map(|&b| d_char(b)).collect(), Vec::new())
            } else {
                match name.iter().rposition(|&b| b == b'.') {
                    Some(i) if i > 0 => (
                        name[..i].iter().map(|&b| d_char(b)).collect(),
                        name[i + 1..].iter().map(|&b| d_char(b)).collect(),
                    ),
                    _ => (name.iter().map(|&b| d_char(b)).collect(), Vec::new()),
                }
            };
            let build = |stem: &[u8], tail: &[u8]| -> Vec<u8> {
                let room = if *is_dir {
                    ISO_MAX
                } else {
                    ISO_MAX - 1 - ext.len().min(8)
                };
                let keep = room.saturating_sub(tail.len()).min(stem.len());
                let mut id = stem[..keep].to_vec();
                id.extend_from_slice(tail);
                if !*is_dir {
                    id.push(b'.');
                    id.extend_from_slice(&ext[..ext.len().min(8)]);
                    id.extend_from_slice(b";1");
                }
                id
            };
            let mut id = build(&stem, b"");
            let mut n = 0u32;
            while !taken.insert(id.clone()) {
                n += 1;
                id = build(&stem, format!("{n:03}").as_bytes());
            }
            id
        })
        .collect()
}

/// Joliet identifiers (UCS-2 big-endian bytes) for the names of one directory, in the order
/// given. Characters outside the BMP and `* / : ; ? \` become `_`; no version suffix (as
/// xorriso writes them).
pub(crate) fn joliet_names(names: &[(&[u8], bool)]) -> Vec<Vec<u8>> {
    let mut taken = HashSet::new();
    names
        .iter()
        .map(|(name, _)| {
            let units: Vec<u16> = String::from_utf8_lossy(name)
                .chars()
                .map(|c| match c {
                    '*' | '/' | ':' | ';' | '?' | '\\' => u16::from(b'_'),
                    c if (c as u32) < 0x20 => u16::from(b'_'),
                    c => u16::try_from(c as u32).unwrap_or(u16::from(b'_')),
                })
                .collect();
            let build = |tail: &str| -> Vec<u16> {
                let tail: Vec<u16> = tail.encode_utf16().collect();
                let keep = JOLIET_MAX.saturating_sub(tail.len()).min(units.len());
                let mut id = units[..keep].to_vec();
                id.extend_from_slice(&tail);
                id
            };
            let mut id = build("");
            let mut n = 0u32;
            while !taken.insert(id.clone()) {
                n += 1;
                id = build(&format!("~{n}"));
            }
            id.iter().flat_map(|u| u.to_be_bytes()).collect()
        })
        .collect()
}

/// ECMA-119 9.3 order of ISO identifiers: name, then extension (both padded with spaces), then
/// version (descending).
pub(crate) fn iso_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let split = |id: &[u8]| -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (base, ver) = match id.iter().position(|&c| c == b';') {
            Some(i) => (&id[..i], id[i + 1..].to_vec()),
            None => (id, Vec::new()),
        };
        match base.iter().position(|&c| c == b'.') {
            Some(i) => (base[..i].to_vec(), base[i + 1..].to_vec(), ver),
            None => (base.to_vec(), Vec::new(), ver),
        }
    };
    let padded = |x: &[u8], y: &[u8]| -> Ordering {
        let n = x.len().max(y.len());
        let px = x.iter().copied().chain(std::iter::repeat(b' ')).take(n);
        let py = y.iter().copied().chain(std::iter::repeat(b' ')).take(n);
        px.cmp(py)
    };
    let (an, ae, av) = split(a);
    let (bn, be, bv) = split(b);
    padded(&an, &bn)
        .then_with(|| padded(&ae, &be))
        .then_with(|| bv.cmp(&av))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_iso_names_are_d_characters_and_unique() {
        let names: Vec<(&[u8], bool)> = vec![
            (b"nix-store.squashfs", false),
            (b"bzImage", false),
            (b"EFI", true),
            (b"a.b.c", true),
            (b"version.txt", false),
            (b"Version.txt", false),
        ];
        let ids = iso_names(&names);
        assert_eq!(ids[0], b"NIX_STORE.SQUASHFS;1");
        assert_eq!(ids[1], b"BZIMAGE.;1");
        assert_eq!(ids[2], b"EFI");
        assert_eq!(ids[3], b"A_B_C");
        assert_eq!(ids[4], b"VERSION.TXT;1");
        assert_eq!(ids[5], b"VERSION001.TXT;1");
        let long = vec![b'x'; 200];
        let ids = iso_names(&[(&long, false), (&long[..199], false)]);
        assert!(ids.iter().all(|i| i.len() <= ISO_MAX + 2), "{ids:?}");
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn test_joliet_names_truncate_and_stay_unique() {
        let long = vec![b'y'; 100];
        let ids = joliet_names(&[(&long, false), (&long[..90], false), (b"a:b", true)]);
        assert_eq!(ids[0].len(), JOLIET_MAX * 2);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[2], [0, b'a', 0, b'_', 0, b'b']);
    }

    #[test]
    fn test_iso_order_pads_with_spaces() {
        assert_eq!(iso_cmp(b"A.;1", b"A_B.;1"), Ordering::Less);
        assert_eq!(iso_cmp(b"AB.C;1", b"A.C;1"), Ordering::Greater);
        assert_eq!(iso_cmp(b"EFI", b"BOOT"), Ordering::Greater);
    }
}
