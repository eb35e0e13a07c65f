//! Nix's base32 ("nix32"): a 32-letter alphabet without `e`, `o`, `t`, `u`, written from the last
//! 5-bit group to the first (so it is not RFC 4648 base32).

use crate::{Error, ErrorKind, Result};

/// The nix32 alphabet.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Whether `c` is a letter of the nix32 alphabet.
#[must_use]
pub fn is_nix32_char(c: u8) -> bool {
    NIX32_VALUE[usize::from(c)] != 0xff
}

/// The value of each byte as a nix32 digit, 0xff when it is none.
const NIX32_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 32 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The length of the nix32 encoding of `len` bytes.
#[must_use]
pub fn encoded_len(len: usize) -> usize {
    if len == 0 { 0 } else { (len * 8 - 1) / 5 + 1 }
}

/// Encodes `bytes` in nix32.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let low = bytes[i] >> j;
        let high = if i + 1 < bytes.len() {
            // j may be 0, in which case the shift by 8 leaves nothing of the next byte.
            (u16::from(bytes[i + 1]) << (8 - j)) as u8
        } else {
            0
        };
        out.push(char::from(ALPHABET[usize::from((low | high) & 0x1f)]));
    }
    out
}

/// Decodes a nix32 string into `out_len` bytes.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] when the length does not match `out_len`, a character is not in
/// the alphabet, or the string encodes bits beyond `out_len` bytes.
pub fn decode(s: &str, out_len: usize) -> Result<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() != encoded_len(out_len) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "nix32 string of {} characters, expected {} for {out_len} bytes",
                s.len(),
                encoded_len(out_len)
            ),
        ));
    }
    let mut out = vec![0u8; out_len];
    for (n, &c) in s.iter().rev().enumerate() {
        let digit = NIX32_VALUE[usize::from(c)];
        if digit == 0xff {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{:?} is not a nix32 character", char::from(c)),
            ));
        }
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= digit << j;
        let carry = u16::from(digit) >> (8 - j);
        if carry != 0 {
            match out.get_mut(i + 1) {
                Some(next) => *next |= carry as u8,
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "nix32 string has bits beyond the decoded length",
                    ));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256;

    #[test]
    fn test_encode_sha256_empty_matches_nix() {
        assert_eq!(
            encode(&sha256(b"")),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
    }

    #[test]
    fn test_encode_short_inputs() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x1f]), "0z");
        assert_eq!(encode(&[0xff]), "7z");
    }

    #[test]
    fn test_decode_roundtrip() {
        for len in [1usize, 5, 16, 20, 32, 64] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&bytes), len).unwrap(), bytes);
        }
    }

    #[test]
    fn test_decode_bad_char_is_invalid_input() {
        let mut s = encode(&[1u8; 20]);
        s.replace_range(0..1, "e");
        assert_eq!(decode(&s, 20).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(
            decode("00", 20).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn test_decode_excess_bits_rejected() {
        // "zz" encodes 10 bits; one byte holds only 8.
        assert_eq!(decode("zz", 1).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}
