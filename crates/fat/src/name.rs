//! File names: validation, 8.3 short names, deterministic `~N` aliases, long-name entries.

use std::collections::HashSet;

use crate::error::{Error, ErrorKind, Result};

/// Characters a short name may hold besides A–Z and 0–9.
const SHORT_SPECIALS: &[u8] = b"!#$%&'()-@^_`{}~";

/// Checks that a name can be stored as a FAT long name.
///
/// # Errors
/// `InvalidInput` naming the path when the name is empty, `.`/`..`, longer than 255 UTF-16
/// units, ends in a dot or space, or holds a control character or one of `"*/:<>?\|`.
pub fn validate(name: &str, path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("cannot store {path:?} on FAT: {why}"),
        ))
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("reserved name");
    }
    if name.encode_utf16().count() > 255 {
        return bad("name longer than 255 characters");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return bad("name ends in a dot or a space");
    }
    if let Some(c) = name
        .chars()
        .find(|&c| (c as u32) < 0x20 || "\"*/:<>?\\|".contains(c))
    {
        return bad(&format!("character {c:?} is not allowed"));
    }
    Ok(())
}

/// The name as an exact 8.3 short name (11 bytes, space padded), when it is one: upper case,
/// legal characters, at most 8 + 3, at most one dot, not starting with a dot.
#[must_use]
pub fn exact_short(name: &str) -> Option<[u8; 11]> {
    let b = name.as_bytes();
    let ok = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || SHORT_SPECIALS.contains(&c);
    let (base, ext) = match name.find('.') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b[..0]),
    };
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || !base.iter().chain(ext).all(|&c| ok(c))
    {
        return None;
    }
    let mut s = [b' '; 11];
    s[..base.len()].copy_from_slice(base);
    s[8..8 + ext.len()].copy_from_slice(ext);
    Some(s)
}

fn short_char(c: char) -> Option<u8> {
    if c.is_ascii_alphanumeric() {
        Some(c.to_ascii_uppercase() as u8)
    } else if c.is_ascii() && SHORT_SPECIALS.contains(&(c as u8)) {
        Some(c as u8)
    } else if c == ' ' || c == '.' {
        None
    } else {
        Some(b'_')
    }
}

/// Generates a unique `BASE~N.EXT` alias for a long name, given the short names already taken
/// in the directory (which it extends). Deterministic: the smallest free N.
///
/// # Errors
/// `NoSpace` when a directory has more than 999999 aliases for one base.
pub fn alias(name: &str, taken: &mut HashSet<[u8; 11]>) -> Result<[u8; 11]> {
    let trimmed = name.trim_start_matches('.');
    let (base, ext) = match trimmed.rfind('.') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (trimmed, ""),
    };
    let base: Vec<u8> = base.chars().filter_map(short_char).take(8).collect();
    let ext: Vec<u8> = ext.chars().filter_map(short_char).take(3).collect();
    let mut s = [b' '; 11];
    s[8..8 + ext.len()].copy_from_slice(&ext);
    for n in 1..=999_999u32 {
        let tail = format!("~{n}");
        let keep = base
            .len()
            .min(8 - tail.len())
            .max(if base.is_empty() { 0 } else { 1 });
        let mut cand = s;
        let mut i = 0;
        for &c in base.iter().take(keep) {
            cand[i] = c;
            i += 1;
        }
        if base.is_empty() {
            cand[0] = b'_';
            i = 1;
        }
        for c in tail.bytes() {
            if i < 8 {
                cand[i] = c;
                i += 1;
            }
        }
        if taken.insert(cand) {
            return Ok(cand);
        }
    }
    Err(Error::new(
        ErrorKind::NoSpace,
        format!("too many short-name aliases for {name:?}"),
    ))
}

/// The checksum of a short name stored in each of its long-name entries.
#[must_use]
pub fn checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &c| sum.rotate_right(1).wrapping_add(c))
}

/// The long-name directory entries for `name` (already validated), in on-disk order (the last
/// part first, flagged 0x40).
#[must_use]
pub fn lfn_entries(name: &str, short: &[u8; 11]) -> Vec<[u8; 32]> {
    let mut units: Vec<u16> = name.encode_utf16().collect();
    let parts = units.len().div_ceil(13);
    if !units.len().is_multiple_of(13) {
        units.push(0);
        while !units.len().is_multiple_of(13) {
            units.push(0xffff);
        }
    }
    let sum = checksum(short);
    let mut out = Vec::with_capacity(parts);
    for p in (0..parts).rev() {
        let mut e = [0u8; 32];
        e[0] = (p as u8 + 1) | if p + 1 == parts { 0x40 } else { 0 };
        e[11] = 0x0f;
        e[13] = sum;
        let chunk = &units[p * 13..p * 13 + 13];
        let slots = (1..11)
            .step_by(2)
            .chain((14..26).step_by(2))
            .chain((28..32).step_by(2));
        for (u, at) in chunk.iter().zip(slots) {
            e[at..at + 2].copy_from_slice(&u.to_le_bytes());
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_exact_short_names() {
        assert_eq!(exact_short("BOOTX64.EFI"), Some(*b"BOOTX64 EFI"));
        assert_eq!(exact_short("EFI"), Some(*b"EFI        "));
        assert_eq!(exact_short("efi"), None);
        assert_eq!(exact_short("A.B.C"), None);
        assert_eq!(exact_short("TOOLONGNAME"), None);
    }

    #[test]
    fn test_alias_is_deterministic_and_unique() {
        let mut taken = HashSet::new();
        let a = alias("loader.conf", &mut taken).unwrap();
        assert_eq!(&a, b"LOADER~1CON");
        let b = alias("loader.confx", &mut taken).unwrap();
        assert_eq!(&b, b"LOADER~2CON");
        assert_eq!(&alias(".hidden", &mut taken).unwrap(), b"HIDDEN~1   ");
        assert_eq!(&alias("été", &mut taken).unwrap(), b"_T_~1      ");
    }

    #[test]
    fn test_lfn_layout() {
        let s = *b"LOADER~1CON";
        let e = lfn_entries("loader.conf", &s);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0][0], 0x41);
        assert_eq!(e[0][11], 0x0f);
        assert_eq!(&e[0][1..3], &[b'l', 0]);
        // 11 characters then a NUL terminator then 0xFFFF padding.
        assert_eq!(&e[0][28..30], &[0, 0]);
        assert_eq!(&e[0][30..32], &[0xff, 0xff]);
        assert_eq!(lfn_entries(&"x".repeat(26), &s).len(), 2);
    }

    #[test]
    fn test_validate_rejects_bad_names() {
        for n in ["a:b", "a.", "a ", "..", "x\u{1}"] {
            assert!(validate(n, n).is_err(), "{n}");
        }
        assert!(validate("ünïcødé 名前.txt", "p").is_ok());
    }
}
