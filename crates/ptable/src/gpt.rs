//! GUID partition tables: written with `gptman`, read back by a small bounded reader.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use imagetool_blockio::ReadAt;

use crate::error::{Error, ErrorKind, Result};
use crate::guid::Guid;

/// The sector size every table of this crate uses.
pub const SECTOR: u64 = 512;
/// "EFI PART".
pub const GPT_SIGNATURE: [u8; 8] = *b"EFI PART";
/// Entries in the array, as parted, sgdisk and gptman write.
pub const ENTRY_COUNT: u32 = 128;
/// Bytes per entry.
pub const ENTRY_SIZE: u32 = 128;
/// The most entries the reader accepts (a bound for untrusted input; UEFI needs 128).
const MAX_ENTRIES: u32 = 4096;

/// Well-known partition type GUIDs.
pub mod types {
    use crate::guid::Guid;
    /// EFI system partition (parted `boot`/`esp` flag on GPT).
    pub const ESP: Guid = Guid::from_str_const("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    /// BIOS boot partition (parted `bios_grub`).
    pub const BIOS_BOOT: Guid = Guid::from_str_const("21686148-6449-6E6F-744E-656564454649");
    /// Extended boot loader partition (parted `bls_boot`).
    pub const XBOOTLDR: Guid = Guid::from_str_const("BC13C2FF-59E6-4262-A352-B275FD6F7172");
    /// Linux filesystem data (parted's default).
    pub const LINUX_DATA: Guid = Guid::from_str_const("0FC63DAF-8483-4772-8E79-3D69D8477DE4");
}

/// One used GPT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptEntry {
    /// 1-based partition number (index in the array + 1).
    pub number: u32,
    /// Partition type GUID.
    pub type_guid: Guid,
    /// Unique partition GUID.
    pub guid: Guid,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// Name (at most 36 UTF-16 code units).
    pub name: String,
}

/// A GPT as read from a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptTable {
    /// Disk GUID.
    pub disk_guid: Guid,
    /// First usable sector.
    pub first_usable: u64,
    /// Last usable sector.
    pub last_usable: u64,
    /// True when the primary header was damaged and the backup was used.
    pub from_backup: bool,
    /// Used entries in array order.
    pub entries: Vec<GptEntry>,
}

/// Encodes a GPT (primary header and entries at LBA 1.., backup entries and header at the end)
/// for a disk of `disk_sectors` sectors. Returns the sectors to write, as (byte offset, bytes).
///
/// # Errors
/// `InvalidInput` when gptman rejects the entries (overlap, outside the usable range, duplicate
/// GUIDs); `Overflow` for impossible sizes.
pub fn encode(
    disk_sectors: u64,
    disk_guid: Guid,
    entries: &[GptEntry],
) -> Result<Vec<(u64, Vec<u8>)>> {
    let size = disk_sectors
        .checked_mul(SECTOR)
        .ok_or_else(|| crate::error::overflow("disk size"))?;
    let mut sink = SectorSink::new(size);
    let gpt_err = |e: gptman::Error| {
        Error::new(ErrorKind::InvalidInput, "cannot build the GPT").with_source(e)
    };
    let mut gpt =
        gptman::GPT::new_from(&mut sink, SECTOR, disk_guid.disk_bytes()).map_err(gpt_err)?;
    for e in entries {
        let slot = e.number;
        if slot == 0 || slot > ENTRY_COUNT {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("partition number {slot} outside 1..={ENTRY_COUNT}"),
            ));
        }
        gpt[slot] = gptman::GPTPartitionEntry {
            partition_type_guid: e.type_guid.disk_bytes(),
            unique_partition_guid: e.guid.disk_bytes(),
            starting_lba: e.first_lba,
            ending_lba: e.last_lba,
            attribute_bits: e.attributes,
            partition_name: e.name.as_str().into(),
        };
    }
    gpt.write_into(&mut sink).map_err(gpt_err)?;
    Ok(sink.into_runs())
}

/// Reads the GPT of a disk: the primary header, or the backup when the primary is damaged.
///
/// # Errors
/// `Corrupt` when neither header is valid; `Io` on read errors.
pub fn read(disk: &impl ReadAt) -> Result<GptTable> {
    let sectors = disk.size() / SECTOR;
    match read_at(disk, 1, sectors) {
        Ok(t) => Ok(t),
        Err(primary) if sectors > 2 => match read_at(disk, sectors - 1, sectors) {
            Ok(mut t) => {
                t.from_backup = true;
                Ok(t)
            }
            Err(_) => Err(primary),
        },
        Err(e) => Err(e),
    }
}

fn read_bytes(disk: &impl ReadAt, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    disk.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io("cannot read the GPT", offset, e))?;
    Ok(buf)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[at..at + 16]);
    Guid::from_disk_bytes(x)
}

fn read_at(disk: &impl ReadAt, lba: u64, disk_sectors: u64) -> Result<GptTable> {
    let off = lba * SECTOR;
    if disk_sectors < 3 || lba >= disk_sectors {
        return Err(Error::corrupt("disk too small for a GPT", off));
    }
    let h = read_bytes(disk, off, SECTOR as usize)?;
    if h[..8] != GPT_SIGNATURE {
        return Err(Error::corrupt("no GPT header signature", off));
    }
    let header_size = le32(&h, 12) as usize;
    if !(92..=SECTOR as usize).contains(&header_size) {
        return Err(Error::corrupt(
            format!("GPT header size {header_size}"),
            off,
        ));
    }
    let mut crc_buf = h[..header_size].to_vec();
    crc_buf[16..20].fill(0);
    if crc32fast::hash(&crc_buf) != le32(&h, 16) {
        return Err(Error::corrupt("GPT header checksum mismatch", off));
    }
    let first_usable = le64(&h, 40);
    let last_usable = le64(&h, 48);
    let entries_lba = le64(&h, 72);
    let count = le32(&h, 80);
    let esize = le32(&h, 84);
    if count > MAX_ENTRIES || !(128..=4096).contains(&esize) || !esize.is_multiple_of(8) {
        return Err(Error::corrupt(
            format!("GPT entry array of {count} entries of {esize} bytes"),
            off,
        ));
    }
    let array_len = u64::from(count) * u64::from(esize);
    let array_off = entries_lba
        .checked_mul(SECTOR)
        .filter(|o| {
            o.checked_add(array_len)
                .is_some_and(|end| end <= disk.size())
        })
        .ok_or_else(|| Error::corrupt("GPT entry array outside the disk", off))?;
    let array = read_bytes(disk, array_off, array_len as usize)?;
    if crc32fast::hash(&array) != le32(&h, 88) {
        return Err(Error::corrupt(
            "GPT entry array checksum mismatch",
            array_off,
        ));
    }
    let mut entries = Vec::new();
    for (i, e) in array.chunks_exact(esize as usize).enumerate() {
        let type_guid = guid_at(e, 0);
        if type_guid == Guid::NIL {
            continue;
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        entries.push(GptEntry {
            number: i as u32 + 1,
            type_guid,
            guid: guid_at(e, 16),
            first_lba: le64(e, 32),
            last_lba: le64(e, 40),
            attributes: le64(e, 48),
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(GptTable {
        disk_guid: guid_at(&h, 56),
        first_usable,
        last_usable,
        from_backup: false,
        entries,
    })
}

/// A `Read + Write + Seek` device of a fixed size that only keeps the sectors written to it,
/// so gptman can "write a disk" of any size without allocating it.
struct SectorSink {
    size: u64,
    pos: u64,
    sectors: BTreeMap<u64, Vec<u8>>,
}

impl SectorSink {
    fn new(size: u64) -> Self {
        Self {
            size,
            pos: 0,
            sectors: BTreeMap::new(),
        }
    }

    /// The written sectors, adjacent ones merged, as (byte offset, bytes).
    fn into_runs(self) -> Vec<(u64, Vec<u8>)> {
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (lba, data) in self.sectors {
            let off = lba * SECTOR;
            match runs.last_mut() {
                Some((start, buf)) if *start + buf.len() as u64 == off => buf.extend(data),
                _ => runs.push((off, data)),
            }
        }
        runs
    }
}

impl Read for SectorSink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.size.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let p = self.pos + i as u64;
            *b = self
                .sectors
                .get(&(p / SECTOR))
                .map_or(0, |s| s[(p % SECTOR) as usize]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SectorSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self
            .pos
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past the disk"))?;
        for (i, &b) in buf.iter().enumerate() {
            let p = self.pos + i as u64;
            let s = self
                .sectors
                .entry(p / SECTOR)
                .or_insert_with(|| vec![0u8; SECTOR as usize]);
            s[(p % SECTOR) as usize] = b;
        }
        self.pos = end;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SectorSink {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use imagetool_blockio::{MemImage, WriteAt};

    use super::*;

    fn sample() -> Vec<GptEntry> {
        vec![GptEntry {
            number: 1,
            type_guid: types::ESP,
            guid: Guid::derive(b"t", "esp"),
            first_lba: 2048,
            last_lba: 4095,
            attributes: 0,
            name: "ESP".into(),
        }]
    }

    #[test]
    fn test_encode_then_read_roundtrip() {
        let disk = MemImage::new(8 << 20);
        for (off, b) in encode(16384, Guid::derive(b"t", "disk"), &sample()).unwrap() {
            disk.write_all_at(&b, off).unwrap();
        }
        let t = read(&disk).unwrap();
        assert_eq!(t.entries, sample());
        assert_eq!((t.first_usable, t.last_usable), (34, 16384 - 34));
        assert!(!t.from_backup);
    }

    #[test]
    fn test_read_falls_back_to_backup_header() {
        let disk = MemImage::new(8 << 20);
        for (off, b) in encode(16384, Guid::derive(b"t", "disk"), &sample()).unwrap() {
            disk.write_all_at(&b, off).unwrap();
        }
        disk.write_all_at(&[0xff; 8], 512 + 16).unwrap();
        let t = read(&disk).unwrap();
        assert!(t.from_backup);
        assert_eq!(t.entries, sample());
    }

    #[test]
    fn test_encode_rejects_overlap() {
        let mut e = sample();
        let mut second = e[0].clone();
        second.number = 2;
        second.guid = Guid::derive(b"t", "x");
        e.push(second);
        assert_eq!(
            encode(16384, Guid::NIL, &e).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
