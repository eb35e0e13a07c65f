//! The raw LZMA stream of an `i386-pc` core image.
//!
//! GRUB's decompressor (`lzma_decompress.img`, `startup_raw.S` + `lzma_decode.S`) decodes a
//! headerless LZMA1 stream with the fixed properties lc=3, lp=0, pb=2 until it has produced
//! the uncompressed size grub-mkimage patched into it; the dictionary is the output buffer.
//! `grub-mkimage` compresses with the LZMA SDK 4.58 encoder bundled in GRUB
//! (`grub-core/lib/LzmaEnc.c` + `LzFind.c`: level 5, 64 KiB dictionary, bt4, 32 fast bytes,
//! no end marker). [`compress`] is that encoder written in Rust ([`encoder`], [`match_finder`]),
//! so the stream, and with it the whole core image, is byte for byte grub-mkimage's. No crate
//! reproduces it: liblzma and lzma-rust2 descend from the same SDK but choose other matches
//! (the first difference is within the first 1.5 KB of a core image).

mod encoder;
mod match_finder;

use lzma_rust2::LzmaReader;

use crate::error::{Error, ErrorKind, Result};

/// lc, lp, pb as `lzma_decode.S` hard-codes them.
pub(crate) const LC: u32 = 3;
pub(crate) const LP: u32 = 0;
pub(crate) const PB: u32 = 2;
/// `grub-mkimage`'s dictionary size.
pub(crate) const DICT_SIZE: u32 = 1 << 16;

/// The largest input: positions are 32-bit in the SDK's match finder, which renormalizes them
/// only near 2³²; GRUB core images are below 512 KiB.
const MAX_INPUT: usize = 1 << 30;

/// Compresses `data` into a headerless LZMA1 stream GRUB's decompressor reads, byte for byte
/// as `grub-mkimage` does.
///
/// # Errors
/// `InvalidInput` when `data` is larger than 1 GiB.
pub fn compress(data: &[u8]) -> Result<Vec<u8>> {
    if data.len() > MAX_INPUT {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "GRUB core image payload of {} bytes: LZMA input is limited to {MAX_INPUT} bytes",
                data.len()
            ),
        ));
    }
    Ok(encoder::Encoder::new(data).encode())
}

/// Decompresses a stream of [`compress`]'s kind (or grub-mkimage's) to `size` bytes.
///
/// # Errors
/// `InvalidInput` when the stream is not LZMA with GRUB's properties or ends early.
pub fn decompress(stream: &[u8], size: usize) -> Result<Vec<u8>> {
    let bad = |e: std::io::Error| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("GRUB core image LZMA stream: {e}"),
        )
    };
    let mut r = LzmaReader::new(stream, size as u64, LC, LP, PB, DICT_SIZE, None).map_err(bad)?;
    let mut out = vec![0; size];
    std::io::Read::read_exact(&mut r, &mut out).map_err(bad)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_round_trip_and_compresses() {
        let mut data = Vec::new();
        for i in 0u32..20_000 {
            data.extend_from_slice(format!("grub module {} ", i % 97).as_bytes());
        }
        let c = compress(&data).unwrap();
        assert!(c.len() < data.len() / 10, "{} of {}", c.len(), data.len());
        assert_eq!(decompress(&c, data.len()).unwrap(), data);
        assert!(decompress(&c[..c.len() / 2], data.len()).is_err());
    }
}
