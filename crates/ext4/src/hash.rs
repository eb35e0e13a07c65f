//! Directory hashing (half-MD4 with a seed, as `dir_index` uses it) and the xattr entry hash.

const K2: u32 = 0o13_240_474_631;
const K3: u32 = 0o15_666_365_641;

fn f(x: u32, y: u32, z: u32) -> u32 {
    z ^ (x & (y ^ z))
}
fn g(x: u32, y: u32, z: u32) -> u32 {
    (x & y).wrapping_add((x ^ y) & z)
}
fn h(x: u32, y: u32, z: u32) -> u32 {
    x ^ y ^ z
}

fn round(fun: fn(u32, u32, u32) -> u32, a: &mut u32, b: u32, c: u32, d: u32, x: u32, s: u32) {
    *a = a.wrapping_add(fun(b, c, d)).wrapping_add(x).rotate_left(s);
}

#[allow(clippy::many_single_char_names)]
fn half_md4_transform(buf: &mut [u32; 4], inp: &[u32; 8]) {
    let [mut a, mut b, mut c, mut d] = *buf;
    for (i, s) in [
        (0, 3),
        (1, 7),
        (2, 11),
        (3, 19),
        (4, 3),
        (5, 7),
        (6, 11),
        (7, 19),
    ] {
        match i % 4 {
            0 => round(f, &mut a, b, c, d, inp[i], s),
            1 => round(f, &mut d, a, b, c, inp[i], s),
            2 => round(f, &mut c, d, a, b, inp[i], s),
            _ => round(f, &mut b, c, d, a, inp[i], s),
        }
    }
    for (k, (i, s)) in [
        (1, 3),
        (3, 5),
        (5, 9),
        (7, 13),
        (0, 3),
        (2, 5),
        (4, 9),
        (6, 13),
    ]
    .into_iter()
    .enumerate()
    {
        let x = inp[i].wrapping_add(K2);
        match k % 4 {
            0 => round(g, &mut a, b, c, d, x, s),
            1 => round(g, &mut d, a, b, c, x, s),
            2 => round(g, &mut c, d, a, b, x, s),
            _ => round(g, &mut b, c, d, a, x, s),
        }
    }
    for (k, (i, s)) in [
        (3, 3),
        (7, 9),
        (2, 11),
        (6, 15),
        (1, 3),
        (5, 9),
        (0, 11),
        (4, 15),
    ]
    .into_iter()
    .enumerate()
    {
        let x = inp[i].wrapping_add(K3);
        match k % 4 {
            0 => round(h, &mut a, b, c, d, x, s),
            1 => round(h, &mut d, a, b, c, x, s),
            2 => round(h, &mut c, d, a, b, x, s),
            _ => round(h, &mut b, c, d, a, x, s),
        }
    }
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

/// e2fsprogs' `str2hashbuf` with signed chars (the `signed_directory_hash` flag we set).
fn str2hashbuf(msg: &[u8], out: &mut [u32; 8]) {
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let take = msg.len().min(32);
    let mut n = 0;
    for (i, &byte) in msg[..take].iter().enumerate() {
        let c = i32::from(byte as i8) as u32;
        val = c.wrapping_add(val << 8);
        if i % 4 == 3 {
            out[n] = val;
            n += 1;
            val = pad;
        }
    }
    if n < 8 {
        out[n] = val;
        n += 1;
    }
    for o in &mut out[n..] {
        *o = pad;
    }
}

/// The htree hash of `name` (half-MD4, signed chars), as `(major, minor)`.
#[must_use]
pub fn dx_hash(name: &[u8], seed: &[u32; 4]) -> (u32, u32) {
    let mut buf = if seed.iter().any(|&s| s != 0) {
        *seed
    } else {
        [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]
    };
    let mut p = name;
    let mut inp = [0u32; 8];
    loop {
        str2hashbuf(p, &mut inp);
        half_md4_transform(&mut buf, &inp);
        if p.len() <= 32 {
            break;
        }
        p = &p[32..];
    }
    let mut hash = buf[1] & !1;
    if hash == 0x7FFF_FFFF << 1 {
        hash = 0x7FFF_FFFE << 1;
    }
    (hash, buf[2])
}

/// The hash of one extended attribute entry (name bytes signed, value as little-endian words).
#[must_use]
pub fn xattr_entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut hash = 0u32;
    for &c in name {
        hash = (hash << 5) ^ (hash >> 27) ^ (i32::from(c as i8) as u32);
    }
    for w in value.chunks(4) {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        hash = (hash << 16) ^ (hash >> 16) ^ u32::from_le_bytes(b);
    }
    hash
}

/// The hash of an xattr block from its entries' hashes.
#[must_use]
pub fn xattr_block_hash(entry_hashes: &[u32]) -> u32 {
    let mut hash = 0u32;
    for &e in entry_hashes {
        if e == 0 {
            return 0;
        }
        hash = (hash << 16) ^ (hash >> 16) ^ e;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> [u32; 4] {
        let b = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        let w = |k: usize| u32::from_le_bytes([b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]]);
        [w(0), w(1), w(2), w(3)]
    }

    // Golden values from `debugfs -R "dx_hash -h half_md4 -s 01234567-89ab-cdef-0123-456789abcdef NAME"`.
    #[test]
    fn test_dx_hash_matches_debugfs() {
        assert_eq!(dx_hash(b"hello", &seed()), (0xa26e_4a80, 0x97e5_b7f7));
        let long = "ünïcødé-名前-and-a-name-longer-than-thirty-two-bytes";
        assert_eq!(
            dx_hash(long.as_bytes(), &seed()),
            (0x53c1_a1c4, 0xd398_8264)
        );
    }
}
