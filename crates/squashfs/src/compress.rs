//! The four compressors and their superblock options, as mksquashfs writes them.

#[cfg(feature = "zstd")]
use std::cell::RefCell;
use std::io::Write;
use std::str::FromStr;

use crate::{Error, ErrorKind, Result};

/// A squashfs compressor (the superblock's compression id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// zlib streams (id 1); levels 1–9, default 9 (mksquashfs' default compressor).
    Gzip,
    /// xz streams with a CRC32 check (id 4); liblzma presets 0–9, default 6, the dictionary
    /// as large as a block.
    Xz,
    /// LZ4 raw blocks (id 5); no levels.
    Lz4,
    /// zstd frames (id 6); levels 1–22, default 15.
    Zstd,
}

impl Compression {
    /// The superblock's compression id.
    #[must_use]
    pub fn id(self) -> u16 {
        match self {
            Self::Gzip => 1,
            Self::Xz => 4,
            Self::Lz4 => 5,
            Self::Zstd => 6,
        }
    }

    /// The name mksquashfs' `-comp` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Xz => "xz",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// mksquashfs' default level (`None` for lz4, which has none).
    #[must_use]
    pub fn default_level(self) -> Option<u32> {
        match self {
            Self::Gzip => Some(9),
            Self::Xz => Some(6),
            Self::Lz4 => None,
            Self::Zstd => Some(15),
        }
    }

    fn level_range(self) -> Option<(u32, u32)> {
        match self {
            Self::Gzip => Some((1, 9)),
            Self::Xz => Some((0, 9)),
            Self::Lz4 => None,
            Self::Zstd => Some((1, 22)),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gzip" => Ok(Self::Gzip),
            "xz" => Ok(Self::Xz),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                "compression",
                format!("{s:?} is not one of gzip, xz, lz4, zstd"),
            )),
        }
    }
}

/// An xz branch/call/jump filter, tried besides no filter on every block; the smaller output
/// wins (mksquashfs' `-Xbcj`). The kernel's xz decoder knows all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum XzFilter {
    /// x86 (32 and 64 bit).
    X86,
    /// Big-endian PowerPC.
    PowerPc,
    /// Itanium.
    Ia64,
    /// 32-bit ARM.
    Arm,
    /// ARM Thumb.
    ArmThumb,
    /// SPARC.
    Sparc,
}

impl XzFilter {
    /// The bit of the xz compressor options' `flags` word.
    fn flag(self) -> u32 {
        match self {
            Self::X86 => 1,
            Self::PowerPc => 2,
            Self::Ia64 => 4,
            Self::Arm => 8,
            Self::ArmThumb => 16,
            Self::Sparc => 32,
        }
    }
}

impl FromStr for XzFilter {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "x86" => Ok(Self::X86),
            "powerpc" => Ok(Self::PowerPc),
            "ia64" => Ok(Self::Ia64),
            "arm" => Ok(Self::Arm),
            "armthumb" => Ok(Self::ArmThumb),
            "sparc" => Ok(Self::Sparc),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                "xz filter",
                format!("{s:?} is not one of x86, powerpc, ia64, arm, armthumb, sparc"),
            )),
        }
    }
}

/// A configured compressor, shared by every worker thread.
#[derive(Debug, Clone)]
pub(crate) struct Codec {
    comp: Compression,
    level: u32,
    filters: Vec<XzFilter>,
    dict_size: u32,
}

thread_local! {
    #[cfg(feature = "zstd")]
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

impl Codec {
    pub(crate) fn new(
        comp: Compression,
        level: Option<u32>,
        filters: &[XzFilter],
        block_size: u32,
    ) -> Result<Self> {
        let level = match (comp.level_range(), level) {
            (None, Some(l)) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "compression level",
                    format!("{comp} has no levels (got {l})"),
                ));
            }
            (None, None) => 0,
            (Some((lo, hi)), Some(l)) if l < lo || l > hi => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "compression level",
                    format!("{comp} level {l} is outside {lo}..={hi}"),
                ));
            }
            (Some(_), l) => l.or(comp.default_level()).unwrap_or(0),
        };
        if comp == Compression::Zstd && !cfg!(feature = "zstd") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "compression zstd",
                "imagetool was built without the `zstd` feature",
            ));
        }
        if comp != Compression::Xz && !filters.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "xz filter",
                format!("filters apply to xz only, not {comp}"),
            ));
        }
        let mut filters = filters.to_vec();
        filters.sort();
        filters.dedup();
        Ok(Self {
            comp,
            level,
            filters,
            dict_size: block_size,
        })
    }

    pub(crate) fn compression(&self) -> Compression {
        self.comp
    }

    /// The compressor options stored after the superblock, when mksquashfs would store them
    /// (lz4 always: the kernel requires them; the others only when not the defaults).
    pub(crate) fn options(&self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        match self.comp {
            Compression::Gzip if self.level != 9 => {
                v.extend_from_slice(&self.level.to_le_bytes());
                v.extend_from_slice(&15u16.to_le_bytes()); // window bits
                v.extend_from_slice(&1u16.to_le_bytes()); // strategy: default
            }
            Compression::Xz if !self.filters.is_empty() => {
                let flags = self.filters.iter().fold(0, |a, f| a | f.flag());
                v.extend_from_slice(&self.dict_size.to_le_bytes());
                v.extend_from_slice(&flags.to_le_bytes());
            }
            Compression::Lz4 => {
                v.extend_from_slice(&1u32.to_le_bytes()); // LZ4_LEGACY
                v.extend_from_slice(&0u32.to_le_bytes()); // flags: not HC
            }
            Compression::Zstd if self.level != 15 => {
                v.extend_from_slice(&self.level.to_le_bytes());
            }
            _ => return None,
        }
        Some(v)
    }

    /// Compresses `input`; `None` when the result would not be smaller (the block is then
    /// stored as is, flagged uncompressed).
    pub(crate) fn compress(&self, input: &[u8]) -> Result<Option<Vec<u8>>> {
        if input.is_empty() {
            return Ok(None);
        }
        let out = match self.comp {
            Compression::Gzip => {
                let mut e = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(input.len() / 2),
                    flate2::Compression::new(self.level),
                );
                e.write_all(input).map_err(|e| codec_err("gzip", e))?;
                e.finish().map_err(|e| codec_err("gzip", e))?
            }
            Compression::Lz4 => lz4_flex::block::compress(input),
            Compression::Zstd => self.zstd(input)?,
            Compression::Xz => {
                let mut best = xz(input, self.level, self.dict_size, None)?;
                for f in &self.filters {
                    let o = xz(input, self.level, self.dict_size, Some(*f))?;
                    if o.len() < best.len() {
                        best = o;
                    }
                }
                best
            }
        };
        Ok((out.len() < input.len()).then_some(out))
    }

    #[cfg(not(feature = "zstd"))]
    fn zstd(&self, _input: &[u8]) -> Result<Vec<u8>> {
        // `Codec::new` refuses zstd in this build: never reached.
        Err(Error::new(
            ErrorKind::Unsupported,
            "compression zstd",
            "imagetool was built without the `zstd` feature",
        ))
    }

    #[cfg(feature = "zstd")]
    fn zstd(&self, input: &[u8]) -> Result<Vec<u8>> {
        let level = self.level as i32;
        ZSTD.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                let c = zstd::bulk::Compressor::new(level).map_err(|e| codec_err("zstd", e))?;
                *slot = Some((level, c));
            }
            let Some((_, c)) = slot.as_mut() else {
                return Err(codec_err("zstd", std::io::Error::other("no context")));
            };
            c.compress(input).map_err(|e| codec_err("zstd", e))
        })
    }
}

fn xz(input: &[u8], preset: u32, dict: u32, filter: Option<XzFilter>) -> Result<Vec<u8>> {
    use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};
    let err = |e: liblzma::stream::Error| codec_err("xz", std::io::Error::other(e));
    let mut opts = LzmaOptions::new_preset(preset).map_err(err)?;
    // At least 8 KiB, as metadata blocks are 8 KiB (liblzma's minimum is 4 KiB).
    opts.dict_size(dict.max(8192));
    let mut filters = Filters::new();
    match filter {
        None => {}
        Some(XzFilter::X86) => {
            filters.x86();
        }
        Some(XzFilter::PowerPc) => {
            filters.powerpc();
        }
        Some(XzFilter::Ia64) => {
            filters.ia64();
        }
        Some(XzFilter::Arm) => {
            filters.arm();
        }
        Some(XzFilter::ArmThumb) => {
            filters.arm_thumb();
        }
        Some(XzFilter::Sparc) => {
            filters.sparc();
        }
    }
    filters.lzma2(&opts);
    let mut s = Stream::new_stream_encoder(&filters, Check::Crc32).map_err(err)?;
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 256);
    loop {
        let consumed = usize::try_from(s.total_in()).unwrap_or(usize::MAX);
        let rest = input.get(consumed..).unwrap_or(&[]);
        match s.process_vec(rest, &mut out, Action::Finish).map_err(err)? {
            Status::StreamEnd => return Ok(out),
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
}

fn codec_err(what: &str, e: std::io::Error) -> Error {
    Error::io(what, "compression failed", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_levels_are_checked_and_lz4_options_always_written() {
        assert!(Codec::new(Compression::Zstd, Some(23), &[], 131072).is_err());
        assert!(Codec::new(Compression::Lz4, Some(1), &[], 131072).is_err());
        assert!(Codec::new(Compression::Gzip, None, &[XzFilter::X86], 131072).is_err());
        let lz4 = Codec::new(Compression::Lz4, None, &[], 131072).unwrap();
        assert_eq!(lz4.options().unwrap(), [1, 0, 0, 0, 0, 0, 0, 0]);
        let z = Codec::new(Compression::Zstd, None, &[], 131072).unwrap();
        assert_eq!(z.options(), None);
        let z = Codec::new(Compression::Zstd, Some(19), &[], 131072).unwrap();
        assert_eq!(z.options().unwrap(), 19u32.to_le_bytes());
    }

    #[test]
    fn test_incompressible_data_is_stored() {
        // A sequence with no repeats at any useful distance.
        let data = imagetool_testutil::noise(0x1234_5678, 4096);
        for c in [
            Compression::Gzip,
            Compression::Xz,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let codec = Codec::new(c, None, &[], 131072).unwrap();
            assert_eq!(codec.compress(&data).unwrap(), None, "{c}");
            assert!(codec.compress(&[0u8; 4096]).unwrap().unwrap().len() < 200);
        }
    }
}
