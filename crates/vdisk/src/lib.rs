//! Disk image containers written natively from a raw image's allocated extents.
//!
//! `imagetool-vdisk` turns a raw disk image (anything that is [`ReadAt`] + [`Extents`]: a
//! [`SparseFile`] on disk, or the in-memory `Overlay` a build writes its metadata into, whose
//! file data are still references to the closure) into the container formats hypervisors and
//! clouds take, in one pass and without a raw intermediate file:
//!
//! | [`Format`] | container | make-disk-image name | extension |
//! |---|---|---|---|
//! | `raw` | sparse raw copy | `raw` | `img` |
//! | `qcow2` | qcow2 v3, 64 KiB clusters | `qcow2` | `qcow2` |
//! | `qcow2-compressed` | qcow2 v3, deflate (or zstd) clusters | `qcow2` + `-c` | `qcow2` |
//! | `vdi` | VirtualBox VDI, dynamic, 1 MiB blocks | `vdi` | `vdi` |
//! | `vpc` | VHD dynamic, 2 MiB blocks | `vpc` | `vhd` |
//! | `vhd-fixed` | VHD fixed (Azure), size a whole number of MiB | `vpc` fixed | `vhd` |
//! | `vhdx` | VHDX dynamic, 2 MiB blocks | `vhdx` | `vhdx` |
//! | `vmdk` | VMDK monolithicSparse | `vmdk` | `vmdk` |
//! | `vmdk-stream` | VMDK streamOptimized (OVA) | `vmdk` streamOptimized | `vmdk` |
//!
//! ```text
//!  source extents ─► candidate grains ─► read + zero check (+ compress) in parallel (rayon)
//!                                             │ results in guest order
//!                                             ▼
//!  output:  [header space][data grains, appended in guest order][tables][headers written last]
//! ```
//!
//! Every writer reads only the grains that the source's extents touch, drops all-zero grains
//! (nothing is allocated for zeros), appends the rest in guest order, and then writes the tables
//! and headers, whose contents are known only once the data is placed. The output is written
//! through an [`AtomicFile`]: a failed conversion leaves nothing behind.
//!
//! Determinism: no field depends on time or randomness. Identifiers (VDI/VHD/VHDX UUIDs, the
//! VMDK CID) are derived from [`Options::seed`], or, without a seed, from a fingerprint of the
//! content (virtual size and a CRC-32C of every non-zero grain). The VHD timestamp is
//! `SOURCE_DATE_EPOCH` relative to 2000-01-01 (0 when unset). The thread count never changes a
//! byte: grains are processed in parallel but placed in guest order.
//!
//! It also reads containers back, as untrusted input ([`ImageReader`], [`open_input`]: qcow2,
//! VDI, VHD, VHDX and VMDK detected by magic, every table bounded and checked), for `convert`
//! and `inspect`; and writes the packaging formats around a disk (Proxmox [`vma`], [`ovf`]).
#![deny(missing_docs)]

mod ids;
mod open;
mod out;
pub mod ovf;
mod qcow2;
mod raw;
mod read;
mod scan;
mod vdi;
mod vdi_read;
mod vhd;
mod vhd_read;
mod vhdx;
mod vhdx_read;
pub mod vma;
mod vmdk;
mod vmdk_read;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use imagetool_blockio::{AtomicFile, Extents, OutputMode, ReadAt, SparseFile};

pub use ids::Seed;
pub use imagetool_fstree::Timestamp;
pub use qcow2::read::{Qcow2Reader, is_qcow2};
pub use read::{
    Container, ImageReader, Input, detect, limits, open_image, open_image_file, open_regular,
};

/// The sector size every format here addresses; a raw input must be a whole number of them.
pub const SECTOR: u64 = 512;

pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error of this crate: a kind, where it happened, and the cause (the layers' shared
    /// shape, [`imagetool_blockio::error`]).
    ///
    /// Its `Display` names the context and, for errors without an underlying I/O error, what is
    /// wrong; an I/O cause is reached through `source()` (printed by `anyhow`'s `{:#}`).
    new(kind, context, message)
);

impl Error {
    /// What was being read or written (a path, a format, a byte offset).
    #[must_use]
    pub fn context(&self) -> &str {
        self.0.context().unwrap_or_default()
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self(imagetool_blockio::error::Error::io("", source).with_context(context))
    }

    pub(crate) fn overflow(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Overflow, context, "size computation overflowed")
    }
}

/// An output container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A sparse raw copy.
    Raw,
    /// qcow2 v3, 64 KiB clusters, uncompressed.
    Qcow2,
    /// qcow2 v3 with compressed clusters ([`Compression`]).
    Qcow2Compressed,
    /// VirtualBox VDI, dynamic.
    Vdi,
    /// VHD (qemu's `vpc`), dynamic.
    Vpc,
    /// VHD fixed: raw data plus a footer; the size is rounded up to a whole MiB (Azure).
    VhdFixed,
    /// VHDX, dynamic.
    Vhdx,
    /// VMDK monolithicSparse.
    Vmdk,
    /// VMDK streamOptimized (deflate grains, for OVA/VMware).
    VmdkStream,
}

impl Format {
    /// Every format, in the order of the CLI's help.
    pub const ALL: [Format; 9] = [
        Format::Raw,
        Format::Qcow2,
        Format::Qcow2Compressed,
        Format::Vdi,
        Format::Vpc,
        Format::VhdFixed,
        Format::Vhdx,
        Format::Vmdk,
        Format::VmdkStream,
    ];

    /// The name used on the command line (make-disk-image's `format` where it has one).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Qcow2Compressed => "qcow2-compressed",
            Format::Vdi => "vdi",
            Format::Vpc => "vpc",
            Format::VhdFixed => "vhd-fixed",
            Format::Vhdx => "vhdx",
            Format::Vmdk => "vmdk",
            Format::VmdkStream => "vmdk-stream",
        }
    }

    /// The output file extension, as make-disk-image names it (`raw` → `img`, `vpc` → `vhd`).
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Format::Raw => "img",
            Format::Qcow2 | Format::Qcow2Compressed => "qcow2",
            Format::Vdi => "vdi",
            Format::Vpc | Format::VhdFixed => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vmdk | Format::VmdkStream => "vmdk",
        }
    }

    /// The format name `qemu-img -f` takes to read the output.
    #[must_use]
    pub fn qemu_format(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 | Format::Qcow2Compressed => "qcow2",
            Format::Vdi => "vdi",
            Format::Vpc | Format::VhdFixed => "vpc",
            Format::Vhdx => "vhdx",
            Format::Vmdk | Format::VmdkStream => "vmdk",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("format {s:?}"),
                    format!("unknown format; expected one of {}", names.join(", ")),
                )
            })
    }
}

/// The codec of compressed qcow2 clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Raw deflate with a 4 KiB window (what QEMU inflates); readable by every qemu.
    #[default]
    Deflate,
    /// zstd (qcow2 compression type 1; needs qemu ≥ 5.1).
    Zstd,
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "deflate" | "zlib" => Ok(Compression::Deflate),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("compression {s:?}"),
                "unknown compression; expected deflate or zstd",
            )),
        }
    }
}

/// Conversion options. The default is deterministic with a content-derived seed.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Codec for [`Format::Qcow2Compressed`].
    pub compression: Compression,
    /// Compression level: deflate 0–9 (default 9: zlib-rs' level 9 packs as tightly as zlib's
    /// default that qemu uses), zstd 1–22 (default 3, as qemu).
    pub level: Option<u32>,
    /// Worker threads for reading and compressing (0: rayon's default, one per core). Never
    /// changes the output.
    pub threads: usize,
    /// Seed of every identifier; `None` derives it from the content.
    pub seed: Option<Seed>,
    /// The time of timestamp fields (VHD; whole seconds, a time before 1970 counts as 1970);
    /// `None` reads `SOURCE_DATE_EPOCH`, and 0 (2000-01-01 in VHD terms) when that is unset too.
    pub source_date_epoch: Option<Timestamp>,
    /// `fsync` the output before renaming it into place (off by default, like `qemu-img
    /// convert`; a Nix build does not need it).
    pub sync: bool,
    /// A new file (the default) or an existing device written in place (raw only).
    pub output_mode: OutputMode,
}

impl Options {
    pub(crate) fn epoch(&self) -> u64 {
        self.source_date_epoch
            .map(|t| t.to_u64().unwrap_or(0))
            .or_else(|| {
                std::env::var("SOURCE_DATE_EPOCH")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The format written.
    pub format: Format,
    /// The virtual disk size the container declares.
    pub virtual_size: u64,
    /// The output file's length.
    pub file_size: u64,
    /// Grains (clusters, blocks) holding data.
    pub data_grains: u64,
}

/// Opens a raw image as conversion input, checking that it is a regular file whose size is a
/// whole number of sectors (the bytes are taken as they are, whatever container they hold).
///
/// # Errors
/// `Io` when it cannot be opened; `InvalidInput` when it is not a regular file or its size is
/// not a multiple of 512.
pub fn open_raw(path: &Path) -> Result<SparseFile> {
    let file = open_regular(path)?;
    let file =
        SparseFile::from_read_only(file).map_err(|e| Error::io(path.display().to_string(), e))?;
    let size = file.size();
    if !size.is_multiple_of(SECTOR) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            path.display().to_string(),
            format!("raw image size {size} is not a multiple of {SECTOR} bytes"),
        ));
    }
    Ok(file)
}

/// Opens a conversion input: a container [`detect`] recognises (qcow2, VDI, VHD, VHDX, VMDK),
/// read through its map, else raw (whose size must be a multiple of 512). Non-regular files
/// and unsupported containers are refused by name.
///
/// # Errors
/// As [`open_image`].
pub fn open_input(path: &Path) -> Result<Input> {
    open_image(path, true)
}

/// Writes `src` as `format` to `dest` (atomically: an unnamed file linked into place on
/// success; see [`AtomicFile`]).
///
/// # Errors
/// `InvalidInput` for a source whose size is not a multiple of 512, or an output that is not
/// what [`Options::output_mode`] writes; `Unsupported` when the format cannot hold the size;
/// `Io` for read or write failures (the message names the path).
pub fn convert<S>(src: &S, format: Format, dest: &Path, opts: &Options) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let out = create_output(dest, opts)?;
    let report = convert_into(src, format, &out, opts)?;
    out.commit()
        .map_err(|e| Error::io(dest.display().to_string(), e))?;
    Ok(report)
}

/// Checks that `dest` can name an output of `format`: a VMDK embeds its file name in a
/// quoted text descriptor, which has no escapes, so a name with a `"`, a control character
/// (a newline would inject a descriptor line) or invalid UTF-8 is refused.
///
/// # Errors
/// `InvalidInput` naming the output and the character at fault.
pub fn check_output_name(format: Format, dest: &Path) -> Result<()> {
    if !matches!(format, Format::Vmdk | Format::VmdkStream) {
        return Ok(());
    }
    let name = dest.file_name().unwrap_or_default();
    let bad = |why: String| {
        Err(Error::new(
            ErrorKind::InvalidInput,
            dest.display().to_string(),
            format!("a {format} output's file name {why} (it is written into the VMDK descriptor)"),
        ))
    };
    let Some(text) = name.to_str() else {
        return bad("is not valid UTF-8".into());
    };
    if let Some(c) = text.chars().find(|c| *c == '"' || c.is_control()) {
        return bad(format!("must not contain {c:?}"));
    }
    Ok(())
}

/// Creates the output of [`convert_into`] for `dest` as `opts.output_mode` says.
///
/// # Errors
/// `InvalidInput` for an existing output that is not a regular file (or, for
/// [`OutputMode::Device`], not a device); `Io` when it cannot be created.
pub fn create_output(dest: &Path, opts: &Options) -> Result<AtomicFile> {
    AtomicFile::create_with(dest, opts.output_mode).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidInput {
            Error::new(ErrorKind::InvalidInput, "output", e.to_string())
        } else {
            Error::io("cannot create the output", e)
        }
    })
}

/// Writes `src` as `format` into `out` without committing it: the caller commits (with
/// [`AtomicFile::commit_all`] when several outputs must appear together) or drops it.
///
/// # Errors
/// As [`convert`]; `Unsupported` for a container format written to a device.
pub fn convert_into<S>(src: &S, format: Format, out: &AtomicFile, opts: &Options) -> Result<Report>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let dest = out.dest();
    let size = src.size();
    if !size.is_multiple_of(SECTOR) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "source image",
            format!("size {size} is not a multiple of {SECTOR} bytes"),
        ));
    }
    if size > limits::MAX_VIRTUAL_SIZE {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "source image",
            format!(
                "{size} bytes is larger than the {} bytes (64 TiB) imagetool converts",
                limits::MAX_VIRTUAL_SIZE
            ),
        ));
    }
    let ctx = Ctx::new(dest, format, opts)?;
    check_level(&ctx)?;
    if out.is_device() {
        if format != Format::Raw {
            return Err(Error::new(
                ErrorKind::Unsupported,
                dest.display().to_string(),
                format!("a device is written raw only, not as {format}"),
            ));
        }
        out.prepare_len(size).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidInput {
                Error::new(ErrorKind::InvalidInput, "output", e.to_string())
            } else {
                Error::io(dest.display().to_string(), e)
            }
        })?;
    }
    let report = match format {
        Format::Raw => raw::write(src, out.file(), &ctx)?,
        Format::Qcow2 => qcow2::write(src, out.file(), &ctx, None)?,
        Format::Qcow2Compressed => qcow2::write(src, out.file(), &ctx, Some(ctx.compression))?,
        Format::Vdi => vdi::write(src, out.file(), &ctx)?,
        Format::Vpc => vhd::write_dynamic(src, out.file(), &ctx)?,
        Format::VhdFixed => vhd::write_fixed(src, out.file(), &ctx)?,
        Format::Vhdx => vhdx::write(src, out.file(), &ctx)?,
        Format::Vmdk => vmdk::write_sparse(src, out.file(), &ctx)?,
        Format::VmdkStream => vmdk::write_stream(src, out.file(), &ctx)?,
    };
    if opts.sync {
        out.file()
            .sync_all()
            .map_err(|e| Error::io(dest.display().to_string(), e))?;
    }
    Ok(report)
}

/// A VHD stores its time as 32-bit seconds since 2000-01-01: a later `SOURCE_DATE_EPOCH` is an
/// error, never a wrap. An earlier one (nixpkgs' default, 1980-01-01) is stored as the field's
/// zero, 2000-01-01.
fn check_epoch(format: Format, epoch: u64) -> Result<u64> {
    if matches!(format, Format::Vpc | Format::VhdFixed)
        && epoch.saturating_sub(vhd::VHD_EPOCH) > u64::from(u32::MAX)
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "SOURCE_DATE_EPOCH",
            format!(
                "{epoch} is past the latest time a VHD stores ({}: 2136-02-07)",
                vhd::VHD_EPOCH + u64::from(u32::MAX)
            ),
        ));
    }
    Ok(epoch)
}

/// What a zstd request meets in a build without the `zstd` feature.
pub(crate) const NO_ZSTD: &str =
    "zstd-compressed qcow2: imagetool was built without the `zstd` feature";

fn check_level(ctx: &Ctx) -> Result<()> {
    if ctx.format == Format::Qcow2Compressed
        && ctx.compression == Compression::Zstd
        && !cfg!(feature = "zstd")
    {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "compression zstd",
            NO_ZSTD,
        ));
    }
    let max = match (ctx.format, ctx.compression) {
        (Format::Qcow2Compressed, Compression::Zstd) => 22,
        _ => 9,
    };
    if ctx.level > max {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("compression level {}", ctx.level),
            format!("out of range (0..={max})"),
        ));
    }
    Ok(())
}

/// What every writer needs besides the source and the output.
pub(crate) struct Ctx {
    pub dest: PathBuf,
    pub format: Format,
    pub pool: rayon::ThreadPool,
    pub seed: Option<Seed>,
    pub epoch: u64,
    /// The codec for qcow2-compressed.
    pub compression: Compression,
    /// The deflate or zstd level.
    pub level: u32,
}

impl Ctx {
    fn new(dest: &Path, format: Format, opts: &Options) -> Result<Self> {
        check_output_name(format, dest)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| Error::new(ErrorKind::Io, "thread pool", e.to_string()))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            format,
            pool,
            seed: opts.seed,
            epoch: check_epoch(format, opts.epoch())?,
            compression: opts.compression,
            level: opts.level.unwrap_or(match (format, opts.compression) {
                (Format::Qcow2Compressed, Compression::Zstd) => 3,
                _ => 9,
            }),
        })
    }

    /// Whether identifiers are derived from the content (formats with ids and no seed).
    pub fn wants_fingerprint(&self) -> bool {
        self.seed.is_none()
            && matches!(
                self.format,
                Format::Vdi
                    | Format::Vpc
                    | Format::VhdFixed
                    | Format::Vhdx
                    | Format::Vmdk
                    | Format::VmdkStream
            )
    }

    /// The path for error messages.
    pub fn at(&self, what: &str, offset: u64) -> String {
        format!(
            "{} ({} {what} at byte {offset})",
            self.dest.display(),
            self.format
        )
    }

    pub fn name(&self) -> String {
        self.dest.display().to_string()
    }

    /// The seed of this output's identifiers: the caller's, or the content fingerprint.
    pub fn seed_or(&self, fingerprint: Seed) -> Seed {
        self.seed.unwrap_or(fingerprint)
    }
}

/// Rounds `a` up to a multiple of `b`, failing on overflow.
pub(crate) fn round_up(a: u64, b: u64, ctx: &str) -> Result<u64> {
    a.div_ceil(b)
        .checked_mul(b)
        .ok_or_else(|| Error::overflow(ctx.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_format_names_round_trip_and_extensions_match_make_disk_image() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert_eq!(Format::Qcow2.extension(), "qcow2");
        assert_eq!(Format::Vdi.extension(), "vdi");
        assert_eq!(Format::Vpc.extension(), "vhd");
        assert_eq!(Format::Raw.extension(), "img");
        let err = "qcow3".parse::<Format>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("qcow3"), "{err}");
    }
}
