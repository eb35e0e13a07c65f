//! The compressors, as reproducible streaming writers.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

use imagetool_blockio::AtomicFile;

use crate::{Error, Result};

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// gzip (RFC 1952) through flate2's zlib-rs backend: no file name, mtime 0, OS Unix.
    Gzip,
    /// bzip2.
    Bzip2,
    /// zstd (one frame, zstd's multi-threaded mode).
    Zstd,
    /// xz (LZMA2, CRC64 check; liblzma's multi-threaded encoder, independent blocks).
    Xz,
}

impl Codec {
    /// Every codec.
    pub const ALL: [Codec; 4] = [Codec::Gzip, Codec::Bzip2, Codec::Zstd, Codec::Xz];

    /// The name (`gzip`, `bzip2`, `zstd`, `xz`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Zstd => "zstd",
            Codec::Xz => "xz",
        }
    }

    /// The file extension the standard tool appends (`gz`, `bz2`, `zst`, `xz`).
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => "gz",
            Codec::Bzip2 => "bz2",
            Codec::Zstd => "zst",
            Codec::Xz => "xz",
        }
    }

    /// The standard tool's default level (gzip 6, bzip2 9, zstd 3, xz 6).
    #[must_use]
    pub fn default_level(self) -> u32 {
        match self {
            Codec::Gzip | Codec::Xz => 6,
            Codec::Bzip2 => 9,
            Codec::Zstd => 3,
        }
    }

    fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Codec::Gzip | Codec::Xz => 0..=9,
            Codec::Bzip2 => 1..=9,
            Codec::Zstd => 1..=22,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Codec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gzip" | "gz" => Ok(Codec::Gzip),
            "bzip2" | "bz2" => Ok(Codec::Bzip2),
            "zstd" | "zst" => Ok(Codec::Zstd),
            "xz" => Ok(Codec::Xz),
            _ => Err(Error::invalid(
                format!("compression {s:?}"),
                "unknown; expected gzip, bzip2, zstd or xz",
            )),
        }
    }
}

/// A codec with its level and threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// The format.
    pub codec: Codec,
    /// The level (`None`: the standard tool's default).
    pub level: Option<u32>,
    /// Worker threads for zstd and xz (0: one per core). Never changes the output: both always
    /// run in their multi-threaded mode, whose output does not depend on the worker count.
    pub threads: usize,
}

impl Compression {
    /// `codec` at its default level.
    #[must_use]
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            level: None,
            threads: 0,
        }
    }

    /// The level used.
    #[must_use]
    pub fn effective_level(&self) -> u32 {
        self.level.unwrap_or(self.codec.default_level())
    }

    /// The worker threads used (`threads`, or one per core for 0).
    fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// A compressing writer over `inner`.
    ///
    /// # Errors
    /// `InvalidInput` for a level out of the codec's range; `Io` when the encoder cannot start.
    pub fn encoder<W: Write>(&self, inner: W) -> Result<Encoder<W>> {
        let level = self.effective_level();
        if !self.codec.levels().contains(&level) {
            return Err(Error::invalid(
                format!("{} level {level}", self.codec),
                format!("out of range {:?}", self.codec.levels()),
            ));
        }
        Ok(match self.codec {
            Codec::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(3)
                    .write(inner, flate2::Compression::new(level)),
            ),
            Codec::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                inner,
                bzip2::Compression::new(level),
            )),
            #[cfg(not(feature = "zstd"))]
            Codec::Zstd => {
                return Err(Error::invalid(
                    "compression zstd",
                    "imagetool was built without the `zstd` feature",
                ));
            }
            #[cfg(feature = "zstd")]
            Codec::Zstd => {
                let threads = self.worker_threads();
                let mut e = zstd::stream::write::Encoder::new(inner, level as i32)
                    .map_err(|e| Error::io("zstd", e))?;
                e.multithread(u32::try_from(threads).unwrap_or(u32::MAX).max(1))
                    .map_err(|e| Error::io("zstd threads", e))?;
                e.include_checksum(true)
                    .map_err(|e| Error::io("zstd checksum", e))?;
                Encoder::Zstd(e)
            }
            Codec::Xz => {
                // Always liblzma's multi-threaded encoder: its output depends on the preset and
                // the block size (the preset's default, 3 × its dictionary), never on the
                // number of threads.
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .preset(level)
                    .threads(
                        u32::try_from(self.worker_threads())
                            .unwrap_or(u32::MAX)
                            .max(1),
                    )
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(|e| Error::io("xz", io::Error::other(e)))?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(inner, stream))
            }
        })
    }
}

/// A compressing writer; [`Encoder::finish`] writes the trailer and returns the inner writer.
pub enum Encoder<W: Write> {
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// bzip2.
    Bzip2(bzip2::write::BzEncoder<W>),
    /// zstd (only with the crate's `zstd` feature).
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// xz.
    Xz(liblzma::write::XzEncoder<W>),
}

impl<W: Write> fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Encoder::Gzip(_) => "gzip",
            Encoder::Bzip2(_) => "bzip2",
            #[cfg(feature = "zstd")]
            Encoder::Zstd(_) => "zstd",
            Encoder::Xz(_) => "xz",
        };
        f.debug_tuple("Encoder").field(&name).finish()
    }
}

impl<W: Write> Encoder<W> {
    /// Ends the stream and returns the inner writer.
    ///
    /// # Errors
    /// The inner writer's error.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
        }
    }
}

/// Compresses the file `src` into `dest` (atomically: nothing appears at `dest` unless it
/// succeeded); returns the compressed size.
///
/// # Errors
/// `Io` naming the file that failed; the errors of [`Compression::encoder`].
pub fn compress_file(src: &Path, dest: &Path, c: &Compression) -> Result<u64> {
    let mut input = std::fs::File::open(src).map_err(|e| Error::at_path(src, e))?;
    let out = AtomicFile::create(dest).map_err(|e| Error::at_path(dest, e))?;
    let file = out.try_clone_file().map_err(|e| Error::at_path(dest, e))?;
    let mut enc = c.encoder(io::BufWriter::with_capacity(1 << 20, file))?;
    io::copy(&mut input, &mut enc).map_err(|e| Error::at_path(src, e))?;
    let buf = enc.finish().map_err(|e| Error::at_path(dest, e))?;
    let file = buf
        .into_inner()
        .map_err(|e| Error::at_path(dest, e.into_error()))?;
    let len = file.metadata().map_err(|e| Error::at_path(dest, e))?.len();
    out.commit().map_err(|e| Error::at_path(dest, e))?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .map(|i| if i % 3000 < 700 { 0 } else { (i % 97) as u8 })
            .collect()
    }

    fn pack(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut e = c.encoder(Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn test_every_codec_round_trips_and_is_reproducible() {
        let data = sample();
        for codec in Codec::ALL {
            let a = pack(Compression::new(codec), &data);
            let b = pack(Compression::new(codec), &data);
            assert_eq!(a, b, "{codec}");
            let mut back = Vec::new();
            match codec {
                Codec::Gzip => flate2::read::GzDecoder::new(&a[..])
                    .read_to_end(&mut back)
                    .unwrap(),
                Codec::Bzip2 => bzip2::read::BzDecoder::new(&a[..])
                    .read_to_end(&mut back)
                    .unwrap(),
                Codec::Zstd => zstd::stream::read::Decoder::new(&a[..])
                    .unwrap()
                    .read_to_end(&mut back)
                    .unwrap(),
                Codec::Xz => liblzma::read::XzDecoder::new(&a[..])
                    .read_to_end(&mut back)
                    .unwrap(),
            };
            assert!(back == data, "{codec}");
        }
    }

    #[test]
    fn test_zstd_output_does_not_depend_on_threads() {
        let data = sample();
        let one = pack(
            Compression {
                threads: 1,
                ..Compression::new(Codec::Zstd)
            },
            &data,
        );
        let four = pack(
            Compression {
                threads: 4,
                ..Compression::new(Codec::Zstd)
            },
            &data,
        );
        assert_eq!(one, four);
    }

    #[test]
    fn test_xz_output_does_not_depend_on_threads_and_xz_reads_it() {
        let data = sample();
        let with = |threads| {
            pack(
                Compression {
                    threads,
                    level: Some(1),
                    ..Compression::new(Codec::Xz)
                },
                &data,
            )
        };
        let one = with(1);
        assert_eq!(one, with(4));
        if !imagetool_testutil::tools::require(&[imagetool_testutil::tools::XZ]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.xz");
        std::fs::write(&f, &one).unwrap();
        let out =
            imagetool_testutil::command_ok(std::process::Command::new("xz").arg("-dc").arg(&f));
        assert!(out.stdout == data);
    }

    #[test]
    fn test_gzip_header_has_no_name_and_no_time() {
        let a = pack(Compression::new(Codec::Gzip), b"x");
        assert_eq!(a[3], 0, "no FNAME/FCOMMENT flags");
        assert_eq!(&a[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(a[9], 3, "OS unix");
    }

    #[test]
    fn test_bad_level_is_named() {
        let c = Compression {
            level: Some(30),
            ..Compression::new(Codec::Gzip)
        };
        let e = c.encoder(Vec::new()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("gzip level 30"), "{e}");
        let e = "lz4".parse::<Codec>().unwrap_err();
        assert!(e.to_string().contains("lz4"), "{e}");
    }

    #[test]
    fn test_compress_file_matches_the_gzip_cli() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::write(&src, sample()).unwrap();
        let dest = dir.path().join("in.gz");
        compress_file(&src, &dest, &Compression::new(Codec::Gzip)).unwrap();
        if !imagetool_testutil::tools::require(&[imagetool_testutil::tools::GZIP]) {
            return;
        }
        let back = dir.path().join("back");
        let out = imagetool_testutil::command_ok(
            std::process::Command::new("gzip").arg("-dc").arg(&dest),
        );
        std::fs::write(&back, &out.stdout).unwrap();
        assert!(std::fs::read(&back).unwrap() == sample());
    }
}
