//! System Use Sharing Protocol (SUSP 1.12) and Rock Ridge (RRIP 1991A) entries: SP, ER, CE,
//! RR, PX, PN, TF, NM, SL.

use imagetool_fstree::Timestamp;

/// `ER`'s identifier, description and source for RRIP 1991A (the texts mkisofs and xorriso
/// write; Linux looks for the ER entry to trust Rock Ridge over Joliet).
const ER_ID: &[u8] = b"RRIP_1991A";
const ER_DES: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SRC: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

/// The size of a `CE` entry.
pub(crate) const CE_LEN: usize = 28;

pub(crate) fn both32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

pub(crate) fn both16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

fn entry(sig: &[u8; 2], body: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(4 + body.len());
    e.extend_from_slice(sig);
    e.push((4 + body.len()) as u8);
    e.push(1);
    e.extend_from_slice(body);
    e
}

/// `SP`: the SUSP indicator, first in the root's `.` record.
pub(crate) fn sp() -> Vec<u8> {
    entry(b"SP", &[0xBE, 0xEF, 0])
}

/// `ER`: the RRIP 1991A extension reference.
pub(crate) fn er() -> Vec<u8> {
    let mut body = vec![ER_ID.len() as u8, ER_DES.len() as u8, ER_SRC.len() as u8, 1];
    body.extend_from_slice(ER_ID);
    body.extend_from_slice(ER_DES);
    body.extend_from_slice(ER_SRC);
    entry(b"ER", &body)
}

/// `CE`: the continuation area at `block`, `offset`, `len`.
pub(crate) fn ce(block: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&both32(block));
    body.extend_from_slice(&both32(offset));
    body.extend_from_slice(&both32(len));
    entry(b"CE", &body)
}

/// `RR` (RRIP 1991A): which Rock Ridge entries follow (PX 1, PN 2, SL 4, NM 8, TF 128).
pub(crate) fn rr(flags: u8) -> Vec<u8> {
    entry(b"RR", &[flags])
}

/// `PX`: mode (type and permission bits), links, owner.
pub(crate) fn px(mode: u32, nlink: u32, uid: u32, gid: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    for v in [mode, nlink, uid, gid] {
        body.extend_from_slice(&both32(v));
    }
    entry(b"PX", &body)
}

/// `PN`: a device's major and minor numbers.
pub(crate) fn pn(major: u32, minor: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&both32(major));
    body.extend_from_slice(&both32(minor));
    entry(b"PN", &body)
}

/// A 7-byte ECMA-119 9.1.5 date (UTC); years outside 1900..=2155 are clamped.
pub(crate) fn date7(t: i64) -> [u8; 7] {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    if y < 1900 {
        return [0, 1, 1, 0, 0, 0, 0];
    }
    if y > 2155 {
        return [255, 12, 31, 23, 59, 59, 0];
    }
    [
        (y - 1900) as u8,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        (secs / 60 % 60) as u8,
        (secs % 60) as u8,
        0,
    ]
}

/// A 17-byte ECMA-119 8.4.26.1 volume date (`YYYYMMDDHHMMSSCC` and a zone byte, UTC).
pub(crate) fn date17(t: i64) -> [u8; 17] {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let y = y.clamp(1, 9999);
    let s = format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let mut b = [0u8; 17];
    b[..16].copy_from_slice(&s.as_bytes()[..16]);
    b
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's civil_from_days).
pub(crate) fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `TF`: modification, access and attribute-change times.
pub(crate) fn tf(mtime: Timestamp, atime: Timestamp, ctime: Timestamp) -> Vec<u8> {
    let mut body = vec![0x0E];
    for t in [mtime, atime, ctime] {
        body.extend_from_slice(&date7(t.secs));
    }
    entry(b"TF", &body)
}

/// `NM` entries for `name` (split into pieces of at most 250 bytes, CONTINUE on all but the
/// last).
pub(crate) fn nm(name: &[u8]) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = name.chunks(250).collect();
    let n = pieces.len();
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut body = vec![u8::from(i + 1 < n)];
            body.extend_from_slice(p);
            entry(b"NM", &body)
        })
        .collect()
}

/// `SL` entries for a symlink `target`: one component record per path component (`/` at the
/// start is the ROOT flag, `.` CURRENT, `..` PARENT; components longer than 248 bytes are split
/// with CONTINUE), packed into entries of at most 255 bytes.
pub(crate) fn sl(target: &[u8]) -> Vec<Vec<u8>> {
    let mut comps: Vec<Vec<u8>> = Vec::new();
    let mut rest = target;
    if rest.first() == Some(&b'/') {
        comps.push(vec![0x08, 0]);
        while rest.first() == Some(&b'/') {
            rest = &rest[1..];
        }
    }
    if !rest.is_empty() {
        let parts: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
        let last = parts.len() - 1;
        for (i, p) in parts.iter().enumerate() {
            match *p {
                b"." => comps.push(vec![0x02, 0]),
                b".." => comps.push(vec![0x04, 0]),
                // An empty component (`a//b`, a trailing `/`) is written as an empty name.
                p if p.is_empty() && i == last => {}
                p => {
                    let chunks: Vec<&[u8]> = if p.is_empty() {
                        vec![p]
                    } else {
                        p.chunks(248).collect()
                    };
                    let n = chunks.len();
                    for (j, c) in chunks.iter().enumerate() {
                        let mut rec = vec![u8::from(j + 1 < n), c.len() as u8];
                        rec.extend_from_slice(c);
                        comps.push(rec);
                    }
                }
            }
        }
    }
    // Pack component records into SL entries (5 header bytes, at most 255 in all).
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for c in comps {
        if 5 + cur.len() + c.len() > 255 {
            entries.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(&c);
    }
    entries.push(cur);
    let n = entries.len();
    entries
        .into_iter()
        .enumerate()
        .map(|(i, comps)| {
            let mut body = vec![u8::from(i + 1 < n)];
            body.extend_from_slice(&comps);
            entry(b"SL", &body)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_dates() {
        assert_eq!(date7(0), [70, 1, 1, 0, 0, 0, 0]);
        assert_eq!(date7(1_700_000_000), [123, 11, 14, 22, 13, 20, 0]);
        assert_eq!(&date17(1_700_000_000)[..16], b"2023111422132000");
    }

    #[test]
    fn test_sl_components() {
        let e = sl(b"/nix/store/x");
        assert_eq!(e.len(), 1);
        assert_eq!(&e[0][..5], &[b'S', b'L', 5 + 2 + 5 + 7 + 3, 1, 0]);
        assert_eq!(&e[0][5..7], &[0x08, 0]);
        let long = vec![b'a'; 600];
        let e = sl(&long);
        assert!(e.iter().all(|x| x.len() <= 255 && x[2] as usize == x.len()));
        assert_eq!(
            e.iter().map(|x| x.len()).sum::<usize>(),
            600 + 3 * 2 + 5 * e.len()
        );
    }

    #[test]
    fn test_er_fits_a_continuation_area() {
        let e = er();
        assert_eq!(e.len(), 8 + 10 + 84 + 135);
        assert_eq!(e[2] as usize, e.len());
    }
}
