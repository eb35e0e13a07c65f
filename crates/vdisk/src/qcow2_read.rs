//! Reading qcow2 back (v2/v3, no backing file, no encryption, no external data file): a
//! [`ReadAt`] + [`Extents`] source, so `convert` takes qcow2 input too.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use flate2::{Decompress, FlushDecompress, Status};
use imagetool_blockio::{Extents, ReadAt};

use crate::{Error, ErrorKind, Result};

const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Incompatible features this reader understands: dirty (0) and compression type (3).
const KNOWN_INCOMPATIBLE: u64 = (1 << 0) | (1 << 3);

/// Where a guest cluster's bytes are.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Data(u64),
    Compressed { offset: u64, len: u64 },
}

/// An open qcow2 image read through its cluster map.
#[derive(Debug)]
pub struct Qcow2Reader {
    file: File,
    name: String,
    size: u64,
    cluster: u64,
    zstd: bool,
    /// Allocated guest clusters, ascending.
    map: Vec<(u64, Loc)>,
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

/// True when the file starts with the qcow2 magic.
///
/// # Errors
/// `Io` when the file cannot be read.
pub fn is_qcow2(path: &Path) -> Result<bool> {
    let f = File::open(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let mut m = [0u8; 4];
    match f.read_exact_at(&mut m, 0) {
        Ok(()) => Ok(&m == b"QFI\xfb"),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(path.display().to_string(), e)),
    }
}

impl Qcow2Reader {
    /// Opens `path` and loads its cluster map.
    ///
    /// # Errors
    /// `Io` on read errors; `Corrupt` for a damaged header or table; `Unsupported` for backing
    /// files, encryption, external data files or extended L2 entries.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(name.clone(), e))?;
        let flen = file
            .metadata()
            .map_err(|e| Error::io(name.clone(), e))?
            .len();
        let rd = |buf: &mut [u8], off: u64| {
            file.read_exact_at(buf, off)
                .map_err(|e| Error::io(format!("{name} (reading at byte {off})"), e))
        };
        let bad = |what: &str| Error::new(ErrorKind::Corrupt, name.clone(), what.to_string());
        let mut h = [0u8; 112];
        rd(&mut h[..104], 0)?;
        if &h[0..4] != b"QFI\xfb" {
            return Err(bad("not a qcow2 image"));
        }
        let version = be32(&h, 4);
        if !(2..=3).contains(&version) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                name,
                format!("qcow2 version {version}"),
            ));
        }
        let unsupported =
            |what: &str| Error::new(ErrorKind::Unsupported, name.clone(), what.to_string());
        if be64(&h, 8) != 0 {
            return Err(unsupported("qcow2 with a backing file"));
        }
        if be32(&h, 32) != 0 {
            return Err(unsupported("encrypted qcow2"));
        }
        let cluster_bits = be32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(bad("cluster size out of range"));
        }
        let cluster = 1u64 << cluster_bits;
        let size = be64(&h, 24);
        let l1_size = u64::from(be32(&h, 36));
        let l1_off = be64(&h, 40);
        let mut zstd = false;
        if version == 3 {
            let incompatible = be64(&h, 72);
            if incompatible & !KNOWN_INCOMPATIBLE != 0 {
                return Err(unsupported(
                    "qcow2 incompatible features this reader does not know",
                ));
            }
            let header_len = be32(&h, 100);
            if header_len > 104 {
                rd(&mut h[104..105], 104)?;
                zstd = h[104] == 1;
            }
        }
        let l2_entries = cluster / 8;
        if l1_size
            .checked_mul(l2_entries)
            .and_then(|n| n.checked_mul(cluster))
            .is_none_or(|cap| cap < size)
        {
            return Err(bad("L1 table too small for the virtual size"));
        }
        let csize_shift = 62 - (cluster_bits - 8);
        let csize_mask = (1u64 << (cluster_bits - 8)) - 1;
        let offset_mask = (1u64 << csize_shift) - 1;
        let l1_bytes = l1_size
            .checked_mul(8)
            .filter(|&n| l1_off.checked_add(n).is_some_and(|e| e <= flen))
            .ok_or_else(|| bad("L1 table outside the file"))?;
        let mut l1 = vec![0u8; l1_bytes as usize];
        rd(&mut l1, l1_off)?;
        let mut map = Vec::new();
        let mut l2 = vec![0u8; cluster as usize];
        for i in 0..l1_size {
            let l2_off = be64(&l1, (i * 8) as usize) & OFFSET_MASK;
            if l2_off == 0 {
                continue;
            }
            if l2_off.checked_add(cluster).is_none_or(|e| e > flen) {
                return Err(bad("L2 table outside the file"));
            }
            rd(&mut l2, l2_off)?;
            for j in 0..l2_entries {
                let guest = i * l2_entries + j;
                if guest * cluster >= size {
                    break;
                }
                let e = be64(&l2, (j * 8) as usize);
                let loc = if e & COMPRESSED != 0 {
                    let offset = e & offset_mask;
                    let sectors = ((e >> csize_shift) & csize_mask) + 1;
                    let len = sectors * 512 - (offset & 511);
                    Loc::Compressed { offset, len }
                } else if e & ZERO != 0 {
                    continue;
                } else {
                    match e & !COPIED & OFFSET_MASK {
                        0 => continue,
                        o if o.checked_add(cluster).is_some_and(|end| end <= flen) => Loc::Data(o),
                        _ => return Err(bad("data cluster outside the file")),
                    }
                };
                map.push((guest, loc));
            }
        }
        Ok(Self {
            file,
            name,
            size,
            cluster,
            zstd,
            map,
        })
    }

    fn cluster_bytes(&self, loc: Loc, out: &mut [u8]) -> io::Result<()> {
        match loc {
            Loc::Data(off) => self.file.read_exact_at(out, off),
            Loc::Compressed { offset, len } => {
                let flen = self.file.metadata()?.len();
                let len = len.min(flen.saturating_sub(offset)) as usize;
                let mut z = vec![0u8; len];
                self.file.read_exact_at(&mut z, offset)?;
                let corrupt = |m: String| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: compressed cluster at byte {offset}: {m}", self.name),
                    )
                };
                if self.zstd {
                    // The stored length is rounded to sectors: find where the frame ends and
                    // decode exactly that (qemu ignores the padding the same way).
                    let n = zstd::zstd_safe::find_frame_compressed_size(&z)
                        .map_err(|c| corrupt(zstd::zstd_safe::get_error_name(c).to_string()))?;
                    let v = zstd::bulk::decompress(&z[..n], out.len())
                        .map_err(|e| corrupt(e.to_string()))?;
                    if v.len() != out.len() {
                        return Err(corrupt("short".into()));
                    }
                    out.copy_from_slice(&v);
                } else {
                    let mut d = Decompress::new_with_window_bits(false, 12);
                    match d.decompress(&z, out, FlushDecompress::Finish) {
                        Ok(Status::StreamEnd | Status::Ok | Status::BufError)
                            if d.total_out() == out.len() as u64 => {}
                        Ok(_) => return Err(corrupt("short".into())),
                        Err(e) => return Err(corrupt(e.to_string())),
                    }
                }
                Ok(())
            }
        }
    }
}

impl ReadAt for Qcow2Reader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        imagetool_blockio::check_range(offset, buf.len() as u64, self.size)
            .map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))?;
        let cs = self.cluster;
        let mut done = 0usize;
        let mut tmp = Vec::new();
        while done < buf.len() {
            let pos = offset + done as u64;
            let guest = pos / cs;
            let within = (pos % cs) as usize;
            let n = (cs as usize - within).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match self.map.binary_search_by_key(&guest, |&(g, _)| g) {
                Err(_) => dst.fill(0),
                Ok(k) => match self.map[k].1 {
                    Loc::Data(off) => self.file.read_exact_at(dst, off + within as u64)?,
                    loc @ Loc::Compressed { .. } => {
                        tmp.resize(cs as usize, 0);
                        self.cluster_bytes(loc, &mut tmp)?;
                        dst.copy_from_slice(&tmp[within..within + n]);
                    }
                },
            }
            done += n;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl Extents for Qcow2Reader {
    fn data_extents(&self) -> io::Result<Vec<Range<u64>>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for &(g, _) in &self.map {
            let r = g * self.cluster..((g + 1) * self.cluster).min(self.size);
            match out.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => out.push(r),
            }
        }
        Ok(out)
    }
}
