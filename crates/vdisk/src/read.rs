//! Reading containers back: every input `convert` and `inspect` take goes through here.
//!
//! The input is untrusted. [`open_regular`] refuses anything that is not a regular file before
//! a byte is read (a FIFO would block, a device is not an image); [`detect`] names the
//! container by its magic and refuses the ones no reader here understands; each reader then
//! turns its tables into one sorted map of guest blocks ([`ImageReader`]) under the limits of
//! [`limits`]: table sizes as qemu bounds them, every table and data block inside the file,
//! no table or block used twice, sizes checked before anything is allocated, and a map whose
//! size is bounded by the allocated content, not by the virtual size.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use flate2::{Decompress, FlushDecompress, Status};
use imagetool_blockio::{Extents, ReadAt, SparseFile};

use crate::{Error, ErrorKind, Result};

/// The limits every reader applies to untrusted input.
pub mod limits {
    /// The largest virtual disk a reader accepts (64 TiB: VHDX's own limit, and imagetool's
    /// largest output, see `imagetool::MAX_DISK_SIZE`).
    pub const MAX_VIRTUAL_SIZE: u64 = 64 << 40;
    /// The most allocated blocks one image may map (each costs 24 bytes of memory: at most
    /// 192 MiB). 8 Mi blocks are 512 GiB of data in 64 KiB clusters.
    pub const MAX_MAPPED_BLOCKS: u64 = 8 << 20;
    /// The largest table (qcow2 L1, VDI block map, VHD BAT, VHDX BAT, VMDK grain directory)
    /// read in one piece: qemu's limit on the qcow2 L1 table.
    pub const MAX_TABLE_BYTES: u64 = 32 << 20;
}

use limits::{MAX_MAPPED_BLOCKS, MAX_TABLE_BYTES, MAX_VIRTUAL_SIZE};

/// Opens `path` for reading, refusing anything but a regular file (named by what it is) and
/// never blocking: the file is opened with `O_NONBLOCK` and checked with `fstat` on the open
/// descriptor, so a FIFO swapped in after a check cannot hang the open.
///
/// # Errors
/// `Io` when it cannot be opened; `InvalidInput` when it is not a regular file.
pub fn open_regular(path: &Path) -> Result<File> {
    let name = path.display().to_string();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)
        .map_err(|e| Error::io(name.clone(), e))?;
    let ft = file
        .metadata()
        .map_err(|e| Error::io(name.clone(), e))?
        .file_type();
    let what = if ft.is_file() {
        return Ok(file);
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        name,
        format!("is {what}; only regular image files are read (copy a device to a file first)"),
    ))
}

/// A container format recognised by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Container {
    /// No container: the bytes are the disk.
    Raw,
    /// qcow2 (v2 or v3).
    Qcow2,
    /// VirtualBox VDI.
    Vdi,
    /// VHD (qemu's `vpc`), dynamic.
    Vhd,
    /// VHD fixed: raw data and a footer.
    VhdFixed,
    /// VHDX.
    Vhdx,
    /// VMDK hosted sparse extent (monolithicSparse or streamOptimized).
    Vmdk,
}

impl Container {
    /// The name `inspect` reports (`qemu-img`'s format name, `vhd-fixed` for fixed VHD).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Container::Raw => "raw",
            Container::Qcow2 => "qcow2",
            Container::Vdi => "vdi",
            Container::Vhd => "vpc",
            Container::VhdFixed => "vhd-fixed",
            Container::Vhdx => "vhdx",
            Container::Vmdk => "vmdk",
        }
    }
}

/// Magic numbers of containers that are recognised but not read: refused by name.
const REFUSED: &[(u64, &[u8], &str)] = &[
    (0, b"QFI\xfb\x00\x00\x00\x01", "a qcow (version 1) image"),
    (0, b"QED\x00", "a QED image"),
    (0, b"VMA\x00", "a Proxmox VMA archive"),
    (0, b"LUKS\xba\xbe", "a LUKS encrypted volume"),
    (0, b"WithoutFreeSpace", "a Parallels image"),
    (0, b"WithouFreSpacExt", "a Parallels image"),
    (0, b"COWD", "a VMware ESX sparse (COWD) extent"),
    (
        0,
        b"# Disk DescriptorFile",
        "a VMDK descriptor whose extents are separate files (give the extent itself)",
    ),
    (0, b"Bochs Virtual HD Image", "a Bochs image"),
    (0, b"#!/bin/sh\n#V2.0 Format", "a cloop image"),
];

/// Reads up to `buf.len()` bytes at `off`, returning how many the file had.
fn read_some(file: &File, name: &str, buf: &mut [u8], off: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(format!("{name} (reading at byte {off})"), e)),
        }
    }
    Ok(done)
}

/// Names the container in `file` by its magic. Formats recognised but not read (QED, qcow1,
/// VMA, LUKS, Parallels, VMDK descriptors, DMG, …) are refused with their name.
///
/// # Errors
/// `Io` on read errors; `Unsupported` naming a recognised format this crate does not read.
pub fn detect(file: &File, name: &str) -> Result<Container> {
    let flen = file.metadata().map_err(|e| Error::io(name, e))?.len();
    let mut head = [0u8; 512];
    let n = read_some(file, name, &mut head, 0)?;
    let head = &head[..n];
    for (off, magic, what) in REFUSED {
        let at = *off as usize;
        if head.len() >= at + magic.len() && &head[at..at + magic.len()] == *magic {
            return Err(Error::new(
                ErrorKind::Unsupported,
                name,
                format!("is {what}, which imagetool does not read"),
            ));
        }
    }
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"QFI\xfb") {
        return Ok(Container::Qcow2);
    }
    if starts(b"vhdxfile") {
        return Ok(Container::Vhdx);
    }
    if starts(b"KDMV") {
        return Ok(Container::Vmdk);
    }
    if starts(b"conectix") {
        return Ok(Container::Vhd);
    }
    if head.len() >= 0x44 && head[0x40..0x44] == 0xbeda_107fu32.to_le_bytes() {
        return Ok(Container::Vdi);
    }
    if flen >= 1024 {
        let mut tail = [0u8; 512];
        read_some(file, name, &mut tail, flen - 512)?;
        if tail.starts_with(b"conectix") {
            return Ok(Container::VhdFixed);
        }
        if tail.starts_with(b"koly") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                name,
                "is an Apple disk image (DMG), which imagetool does not read",
            ));
        }
    }
    Ok(Container::Raw)
}

/// Where a mapped block's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Stored as is at this file offset.
    Data(u64),
    /// Compressed at `offset`, `len` bytes (an upper bound: the stream says where it ends).
    Compressed {
        /// File offset.
        offset: u64,
        /// Stored bytes.
        len: u32,
    },
}

/// How compressed blocks are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Raw deflate, 4 KiB window (qcow2).
    RawDeflate,
    /// zstd frames (qcow2 compression type 1).
    Zstd,
    /// zlib streams (VMDK streamOptimized).
    Zlib,
}

/// The map a container reader builds: guest block → location, checked as it grows.
pub(crate) struct MapBuilder {
    name: String,
    flen: u64,
    block: u64,
    entries: Vec<(u64, Loc)>,
    /// File ranges already claimed by metadata or data (checked for overlaps at the end).
    claimed: Vec<(u64, u64, &'static str)>,
    /// Table offsets already followed.
    tables: std::collections::HashSet<u64>,
}

impl MapBuilder {
    pub fn new(name: &str, flen: u64, block: u64) -> Self {
        Self {
            name: name.to_string(),
            flen,
            block,
            entries: Vec::new(),
            claimed: Vec::new(),
            tables: std::collections::HashSet::new(),
        }
    }

    /// The same claims with another block size (once a header has said what it is).
    pub fn rebuild(self, block: u64) -> Self {
        Self { block, ..self }
    }

    /// True the first time a table at `off` is followed, false after.
    pub fn first_use(&mut self, off: u64) -> bool {
        self.tables.insert(off)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn corrupt(&self, what: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corrupt, self.name.clone(), what)
    }

    /// Records that `what` occupies `len` bytes at `off`, which must lie inside the file.
    pub fn claim(&mut self, off: u64, len: u64, what: &'static str) -> Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.flen => {
                if len > 0 {
                    self.claimed.push((off, end, what));
                }
                Ok(())
            }
            _ => Err(self.corrupt(format!(
                "{what} at byte {off} ({len} bytes) lies outside the file ({} bytes)",
                self.flen
            ))),
        }
    }

    /// Maps guest block `guest` (ascending or not) to a full block of data at `off`.
    pub fn data(&mut self, guest: u64, off: u64) -> Result<()> {
        self.claim(off, self.block, "data block")?;
        self.push(guest, Loc::Data(off))
    }

    /// Maps guest block `guest` to compressed bytes at `off` (clipped to the file's end, as
    /// the stored length of the last one may be rounded past it).
    pub fn compressed(&mut self, guest: u64, off: u64, len: u64) -> Result<()> {
        if off >= self.flen {
            return Err(self.corrupt(format!(
                "compressed block of guest block {guest} at byte {off} lies outside the file"
            )));
        }
        let len = len.min(self.flen - off);
        let len = u32::try_from(len)
            .map_err(|_| self.corrupt(format!("compressed block at byte {off} too long")))?;
        self.push(guest, Loc::Compressed { offset: off, len })
    }

    fn push(&mut self, guest: u64, loc: Loc) -> Result<()> {
        if self.entries.len() as u64 >= MAX_MAPPED_BLOCKS {
            return Err(Error::new(
                ErrorKind::Unsupported,
                self.name.clone(),
                format!(
                    "more than {MAX_MAPPED_BLOCKS} allocated blocks: larger than imagetool reads"
                ),
            ));
        }
        self.entries.push((guest, loc));
        Ok(())
    }

    /// Sorts, checks that no guest block is mapped twice and that no two claimed file ranges
    /// overlap, and returns the reader.
    pub fn finish(mut self, file: File, size: u64, codec: Codec) -> Result<ImageReader> {
        self.entries.sort_unstable_by_key(|&(g, _)| g);
        if let Some(w) = self.entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(self.corrupt(format!("guest block {} is mapped twice", w[0].0)));
        }
        if let Some(&(g, _)) = self.entries.last()
            && g.checked_mul(self.block).is_none_or(|o| o >= size)
        {
            return Err(self.corrupt(format!(
                "guest block {g} lies beyond the virtual size {size}"
            )));
        }
        self.claimed.sort_unstable();
        if let Some(w) = self.claimed.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(self.corrupt(format!(
                "{} at byte {} overlaps {} at byte {}",
                w[1].2, w[1].0, w[0].2, w[0].0
            )));
        }
        self.entries.shrink_to_fit();
        Ok(ImageReader {
            file,
            name: self.name,
            size,
            block: self.block,
            codec,
            map: self.entries,
        })
    }
}

/// Checks a virtual size against [`limits::MAX_VIRTUAL_SIZE`].
pub(crate) fn check_virtual_size(name: &str, size: u64) -> Result<()> {
    if size > MAX_VIRTUAL_SIZE {
        return Err(Error::new(
            ErrorKind::Unsupported,
            name,
            format!(
                "virtual size {size} bytes is larger than the {MAX_VIRTUAL_SIZE} bytes (64 TiB) \
                 imagetool reads"
            ),
        ));
    }
    Ok(())
}

/// Reads a table of `len` bytes at `off` after checking it lies inside the file and within
/// [`limits::MAX_TABLE_BYTES`].
pub(crate) fn read_table(
    file: &File,
    b: &mut MapBuilder,
    off: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    if len > MAX_TABLE_BYTES {
        return Err(b.corrupt(format!(
            "{what} of {len} bytes is larger than the {MAX_TABLE_BYTES}-byte limit"
        )));
    }
    b.claim(off, len, what)?;
    let mut t = vec![0u8; len as usize];
    file.read_exact_at(&mut t, off)
        .map_err(|e| Error::io(format!("{} ({what} at byte {off})", b.name), e))?;
    Ok(t)
}

/// Reads a table of `len` bytes at `off` (checked to lie inside the file) in 1 MiB pieces,
/// calling `each` with every piece and its byte offset in the table: memory stays one piece
/// however long the table (a VDI map or VHDX BAT of a 64 TiB disk is hundreds of MiB).
pub(crate) fn stream_table(
    file: &File,
    b: &mut MapBuilder,
    off: u64,
    len: u64,
    what: &'static str,
    mut each: impl FnMut(&mut MapBuilder, u64, &[u8]) -> Result<()>,
) -> Result<()> {
    const PIECE: u64 = 1 << 20;
    b.claim(off, len, what)?;
    let mut buf = vec![0u8; PIECE.min(len) as usize];
    let mut at = 0u64;
    while at < len {
        let n = PIECE.min(len - at) as usize;
        file.read_exact_at(&mut buf[..n], off + at)
            .map_err(|e| Error::io(format!("{} ({what} at byte {})", b.name, off + at), e))?;
        each(b, at, &buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// A container opened for reading: a sorted map of its allocated guest blocks. Reads of
/// unmapped ranges are zeros (one fill per run); [`Extents`] lists the mapped blocks.
#[derive(Debug)]
pub struct ImageReader {
    file: File,
    name: String,
    size: u64,
    block: u64,
    codec: Codec,
    /// Allocated guest blocks, ascending, each once.
    map: Vec<(u64, Loc)>,
}

impl ImageReader {
    /// Allocated blocks (for tests and reports).
    #[must_use]
    pub fn mapped_blocks(&self) -> u64 {
        self.map.len() as u64
    }

    fn block_bytes(&self, loc: Loc, out: &mut [u8]) -> io::Result<()> {
        match loc {
            Loc::Data(off) => self.file.read_exact_at(out, off),
            Loc::Compressed { offset, len } => {
                let mut z = vec![0u8; len as usize];
                self.file.read_exact_at(&mut z, offset)?;
                let corrupt = |m: String| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: compressed block at byte {offset}: {m}", self.name),
                    )
                };
                match self.codec {
                    #[cfg(not(feature = "zstd"))]
                    Codec::Zstd => {
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            format!("{}: {}", self.name, crate::NO_ZSTD),
                        ));
                    }
                    #[cfg(feature = "zstd")]
                    Codec::Zstd => {
                        // The stored length is rounded to sectors: find where the frame ends
                        // and decode exactly that (qemu ignores the padding the same way).
                        let n = zstd::zstd_safe::find_frame_compressed_size(&z)
                            .map_err(|c| corrupt(zstd::zstd_safe::get_error_name(c).to_string()))?;
                        let mut d =
                            zstd::bulk::Decompressor::new().map_err(|e| corrupt(e.to_string()))?;
                        let got = d
                            .decompress_to_buffer(&z[..n], out)
                            .map_err(|e| corrupt(e.to_string()))?;
                        if got != out.len() {
                            return Err(corrupt("short".into()));
                        }
                    }
                    Codec::RawDeflate | Codec::Zlib => {
                        let mut d = if self.codec == Codec::Zlib {
                            Decompress::new(true)
                        } else {
                            Decompress::new_with_window_bits(false, 12)
                        };
                        match d.decompress(&z, out, FlushDecompress::Finish) {
                            // A zlib grain may end short of the block (the last grain of a
                            // VMDK whose capacity is not a whole number of grains).
                            Ok(Status::StreamEnd) if self.codec == Codec::Zlib => {
                                out[d.total_out() as usize..].fill(0);
                            }
                            Ok(Status::StreamEnd | Status::Ok | Status::BufError)
                                if d.total_out() == out.len() as u64 => {}
                            Ok(_) => return Err(corrupt("short".into())),
                            Err(e) => return Err(corrupt(e.to_string())),
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

impl ReadAt for ImageReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        imagetool_blockio::check_range(offset, buf.len() as u64, self.size)
            .map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))?;
        let bs = self.block;
        let mut done = 0usize;
        let mut tmp = Vec::new();
        // The first mapped block at or after the read's start; advanced as the read goes.
        let mut k = self.map.partition_point(|&(g, _)| g < offset / bs);
        while done < buf.len() {
            let pos = offset + done as u64;
            let guest = pos / bs;
            let within = pos % bs;
            let rest = buf.len() - done;
            match self.map.get(k) {
                Some(&(g, loc)) if g == guest => {
                    let n = ((bs - within) as usize).min(rest);
                    let dst = &mut buf[done..done + n];
                    match loc {
                        Loc::Data(off) => self.file.read_exact_at(dst, off + within)?,
                        Loc::Compressed { .. } => {
                            tmp.resize(bs as usize, 0);
                            self.block_bytes(loc, &mut tmp)?;
                            dst.copy_from_slice(&tmp[within as usize..within as usize + n]);
                        }
                    }
                    done += n;
                    k += 1;
                }
                next => {
                    // An unmapped run: zeros up to the next mapped block, in one fill.
                    let run_end = next.map_or(u64::MAX, |&(g, _)| g.saturating_mul(bs));
                    let n = (run_end - pos).min(rest as u64) as usize;
                    buf[done..done + n].fill(0);
                    done += n;
                }
            }
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl Extents for ImageReader {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for &(g, _) in &self.map {
            let r = g * self.block..((g + 1) * self.block).min(self.size);
            match out.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => out.push(r),
            }
        }
        Ok(out)
    }
}

/// A conversion or inspection input: a raw image, or a container read through its map.
#[derive(Debug)]
pub enum Input {
    /// A raw image.
    Raw(SparseFile),
    /// A container (qcow2, VDI, VHD, VHDX, VMDK).
    Container(Container, ImageReader),
}

impl Input {
    /// The container's name (`raw`, `qcow2`, `vdi`, `vpc`, `vhd-fixed`, `vhdx`, `vmdk`).
    #[must_use]
    pub fn container(&self) -> Container {
        match self {
            Input::Raw(_) => Container::Raw,
            Input::Container(c, _) => *c,
        }
    }
}

impl ReadAt for Input {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Input::Raw(r) => r.read_exact_at(buf, offset),
            Input::Container(_, q) => q.read_exact_at(buf, offset),
        }
    }

    fn size(&self) -> u64 {
        match self {
            Input::Raw(r) => r.size(),
            Input::Container(_, q) => q.size(),
        }
    }
}

impl Extents for Input {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        match self {
            Input::Raw(r) => r.data_extents(),
            Input::Container(_, q) => q.data_extents(),
        }
    }
}

/// Opens an image for `convert` or `inspect`: refuses non-regular files, detects the
/// container by its magic and reads it, or takes the file as raw. With `raw_sectors`, a raw
/// image's size must be a whole number of 512-byte sectors.
///
/// # Errors
/// As [`open_regular`], [`detect`] and the container readers.
pub fn open_image(path: &Path, raw_sectors: bool) -> Result<Input> {
    let file = open_regular(path)?;
    open_image_file(file, &path.display().to_string(), raw_sectors)
}

/// [`open_image`] on an open file (`name` is used in errors): refuses it unless it is a
/// regular file, then detects and reads the container.
///
/// # Errors
/// As [`open_image`].
pub fn open_image_file(file: File, name: &str, raw_sectors: bool) -> Result<Input> {
    let meta = file.metadata().map_err(|e| Error::io(name, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            name,
            "is not a regular file",
        ));
    }
    match detect(&file, name)? {
        Container::Raw => {
            let size = meta.len();
            if raw_sectors && !size.is_multiple_of(crate::SECTOR) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    name,
                    format!(
                        "raw image size {size} is not a multiple of {} bytes",
                        crate::SECTOR
                    ),
                ));
            }
            let f = SparseFile::from_read_only(file).map_err(|e| Error::io(name, e))?;
            Ok(Input::Raw(f))
        }
        c => Ok(Input::Container(c, ImageReader::open_as(file, name, c)?)),
    }
}
