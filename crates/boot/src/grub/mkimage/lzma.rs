//! The raw LZMA stream of an `i386-pc` core image.
//!
//! GRUB's decompressor (`lzma_decompress.img`, `startup_raw.S` + `lzma_decode.S`) decodes a
//! headerless LZMA1 stream with the fixed properties lc=3, lp=0, pb=2 until it has produced
//! the uncompressed size grub-mkimage patched into it; the dictionary is the output buffer.
//! `grub-mkimage` compresses with the LZMA SDK 4.58 encoder bundled in GRUB
//! (`grub-core/lib/LzmaEnc.c` + `LzFind.c`: level 5, 64 KiB dictionary, bt4, 32 fast bytes,
//! no end marker). [`compress`] is that encoder written in Rust (`lzma/encoder.rs`,
//! `lzma/match_finder.rs`), so the stream, and with it the whole core image, is byte for byte
//! grub-mkimage's. No crate reproduces it: liblzma and lzma-rust2 descend from the same SDK
//! but choose other matches (the first difference is within the first 1.5 KB of a core image).

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
    use sha2::Digest;

    use super::*;

    /// Text lines, pseudo-random bytes and zero runs: literals, short and long matches,
    /// repeated distances.
    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut x: u32 = 0x2545_F491;
        for i in 0u32..120 {
            let part = ["gpt", "msdos", "bsd"][i as usize % 3];
            out.extend_from_slice(format!("insmod part_{part} {}\n", i * 7 % 50).as_bytes());
            if i % 17 == 0 {
                for _ in 0..40 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    out.push(x as u8);
                }
            }
            if i % 40 == 0 {
                out.extend_from_slice(&[0; 300]);
            }
        }
        out
    }

    /// GRUB's own encoder (`grub-core/lib/LzmaEnc.c` + `LzFind.c`, the same in 2.06 and 2.12, compiled
    /// on their own and called as `compress_kernel_lzma` calls `LzmaEncode`) on [`sample`].
    const GRUB_SAMPLE_STREAM: &[&str] = &[
        "00349b8acd8895f3433027c8cefc35ee215e1bbd1b3132e648163630236df2a1a772d587e370875e",
        "30fe03bfc6405e2601b027f04af855954251c854eb34abe13dbeb48958057a887698d75ddd4e9f39",
        "fee5ed0b8c483f6dfc87e71c76b272a2ed17c1d5494ca175a12a6534110d360ce7a333e7ca75b6b6",
        "c81728be68490f8b5176099faef8acd367b1c27d35142bfb8225703147ac9a301293a802f1462b58",
        "8bdbcd8e740a6d6a1710d4081d304ee641b2ef6080d3784f2ec93d78085051b97588ad4515a4eef8",
        "faf8fdd867d05a8df56c1bd8c1500b16eadc48b994fc960d1643e8df2264b763e43a8af60d1e693f",
        "ff9434da82238540a6db79c3007a5f4739de1cc46ec20af9d8ad4a4511fa87a0c4237fff5836eb36",
        "79e137329c5c7f0a9a73c15e082f48fa85d507061579bd8fdcc234259688590b93c41f0392dc82cb",
        "a874fd8d04a24b039f2064aa98b4e8ecda595256dc62d4a4922ece81df699ce2c6e81a3083177948",
        "4e799c65eda8520e7d3bd9b0d4d872fa054453562a4d3fc5111cffb6816a353caa5215ad4587dd23",
        "109ce5b61efa06d4331fc560c851db3cc5f856cd6d264ce09152bdd01cc3fc54f3052fff76c39f58",
        "5dc4f3f3b21fc4cad82fa1e96f513d4183db823443456305990f9393d1c4331d9ed2d98a59acbf08",
        "524cb7a569360fc39028af8fbb9dab264c78950bedc2d43d622d4b779edd52936312ab8cf3342388",
        "5cc264dc8eeef63b2e732dfc8978f46f753a1c33adacf380028dfe4e653e652706fe9da5fde67a15",
        "c6ac6b869c461c079f631dcbc37a3453b24722521d0dd99521407ee4077ac45dd8b3f1c32594887a",
        "b9249894dc4f00ef1c8f4b1ea8e8123fc03a5a8a40cb95acd4c8f9fc27b2bafa6ad9fe690a9af918",
        "f78d775baf498ea44367aadca3a754448f8a68bebba13658fc6cd1e97c01c4ad4d8b6c8ecf6969a0",
    ];

    /// 300,000 bytes of GRUB-config-like words, hex numbers, runs, and earlier stretches
    /// repeated with sparse bit flips: long binary-tree searches, ties between short reps and
    /// literals, price-table refreshes.
    fn big_sample() -> Vec<u8> {
        const WORDS: [&str; 15] = [
            "insmod",
            "part_gpt",
            "part_msdos",
            "ext2",
            "fat",
            "search",
            "--fs-uuid",
            "linux",
            "initrd",
            "/nix/store/",
            "set",
            "root=",
            "menuentry",
            "{",
            "}",
        ];
        let mut x: u32 = 0x9E37_79B9;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut out: Vec<u8> = Vec::new();
        while out.len() < 300_000 {
            let r = next();
            match r % 24 {
                k @ 0..15 => {
                    out.extend_from_slice(WORDS[k as usize].as_bytes());
                    out.push(b' ');
                }
                15 | 16 => out.extend_from_slice(format!("{r:08x}").as_bytes()),
                17 => out.push(b'\n'),
                18 => out.push((r >> 24) as u8),
                19 => out.extend(std::iter::repeat_n(
                    ((r >> 8) & 0x3f) as u8,
                    (r & 0x1f) as usize,
                )),
                _ if out.len() > 70_000 => {
                    let start = out.len() - 1 - (next() % 70_000) as usize;
                    for i in 0..(next() % 400) as usize {
                        let mut b = out[start + i];
                        let flip = next();
                        if flip % 16 == 0 {
                            b ^= 1 << (flip % 8);
                        }
                        out.push(b);
                    }
                }
                _ => {}
            }
        }
        out.truncate(300_000);
        out
    }

    fn unhex(lines: &[&str]) -> Vec<u8> {
        let s: String = lines.concat();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn test_equals_grubs_encoder() {
        let data = sample();
        assert_eq!(data.len(), 3556);
        assert_eq!(compress(&data).unwrap(), unhex(GRUB_SAMPLE_STREAM));
        // A larger input, its stream from the same build of GRUB's encoder: length and SHA-256.
        let stream = compress(&big_sample()).unwrap();
        assert_eq!(stream.len(), 41_898);
        let digest: String = sha2::Sha256::digest(&stream)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            digest,
            "2c6652262aef123ee831dbc00f9d07de68038e9cd645c6ca4372b7465996c7b2"
        );
        // The two shortest cases, from the same build of GRUB's encoder.
        assert_eq!(compress(b"").unwrap(), [0; 5]);
        assert_eq!(
            compress(b"a").unwrap(),
            [0x00, 0x30, 0x7f, 0xfc, 0x00, 0x00]
        );
    }

    /// Shapes that reach every branch of the encoder, decoded by lzma-rust2's decoder.
    #[test]
    fn test_round_trips_through_an_independent_decoder() {
        let mut x: u32 = 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let random: Vec<u8> = (0..70_000).map(|_| rnd() as u8).collect();
        let mut far = random.clone();
        // Repeats farther back than the 64 KiB dictionary, and just inside it.
        far.extend_from_slice(&random[..5000]);
        far.extend_from_slice(&random[far.len() - 65_536..][..3000]);
        let mut mixed = Vec::new();
        for i in 0u32..20_000 {
            mixed.extend_from_slice(format!("grub module {} ", i % 97).as_bytes());
            if rnd() % 7 == 0 {
                mixed.push(rnd() as u8);
            }
        }
        for (name, data) in [
            ("1 byte", vec![7u8]),
            ("4 bytes", b"abab".to_vec()),
            ("zeros", vec![0u8; 200_000]),
            ("random", random),
            ("far", far),
            ("mixed", mixed),
            ("sample", sample()),
        ] {
            let c = compress(&data).unwrap();
            assert_eq!(decompress(&c, data.len()).unwrap(), data, "{name}");
            assert_eq!(compress(&data).unwrap(), c, "{name}: deterministic");
        }
    }

    #[test]
    fn test_compresses_and_truncation_is_an_error() {
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
