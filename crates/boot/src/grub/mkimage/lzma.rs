//! The raw LZMA stream of an `i386-pc` core image.
//!
//! GRUB's decompressor (`lzma_decompress.img`, `startup_raw.S` + `lzma_decode.S`) decodes a
//! headerless LZMA1 stream with the fixed properties lc=3, lp=0, pb=2 until it has produced
//! the uncompressed size grub-mkimage patched into it; the dictionary is the output buffer.
//! `grub-mkimage` compresses with its bundled LZMA SDK 4.65 encoder (`LzmaEnc`, level 5,
//! 64 KiB dictionary). No crate reproduces that encoder's choices, so this stream is a
//! different but equally valid encoding of the same bytes (the `lzma-rust2` encoder, same
//! properties and dictionary, no end marker): a core image made here decompresses to
//! exactly the kernel and modules grub-mkimage's does (the tests decode both and compare),
//! and its size differs by a few bytes to a few hundred.

use std::io::Write;

use lzma_rust2::{EncodeMode, LzmaOptions, LzmaReader, LzmaWriter, MfType};

use crate::error::{Error, ErrorKind, Result};

/// lc, lp, pb as `lzma_decode.S` hard-codes them.
pub(crate) const LC: u32 = 3;
pub(crate) const LP: u32 = 0;
pub(crate) const PB: u32 = 2;
/// `grub-mkimage`'s dictionary size.
pub(crate) const DICT_SIZE: u32 = 1 << 16;

/// Compresses `data` into a headerless LZMA1 stream GRUB's decompressor reads.
///
/// # Errors
/// `Io` when the encoder fails (it writes to memory, so only on a bug in it).
pub fn compress(data: &[u8]) -> Result<Vec<u8>> {
    let opts = LzmaOptions {
        dict_size: DICT_SIZE,
        lc: LC,
        lp: LP,
        pb: PB,
        mode: EncodeMode::Normal,
        nice_len: 32,
        mf: MfType::Bt4,
        depth_limit: 0,
        preset_dict: None,
    };
    let fail = |e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!("LZMA-compressing the GRUB core image: {e}"),
        )
    };
    let mut w = LzmaWriter::new_no_header(Vec::with_capacity(data.len() / 2), &opts, false)
        .map_err(fail)?;
    w.write_all(data).map_err(fail)?;
    w.finish().map_err(fail)
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
