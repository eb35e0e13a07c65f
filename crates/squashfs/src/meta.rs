//! Metadata blocks: 8 KiB of uncompressed table bytes, compressed, each behind a 16-bit
//! header (its stored length; bit 15 set when stored uncompressed).

use crate::Result;
use crate::compress::Codec;

/// The uncompressed size of a metadata block.
pub(crate) const META_SIZE: usize = 8192;

/// A table written as metadata blocks (inodes, directories, lookup tables, xattrs).
pub(crate) struct MetaWriter<'c> {
    codec: &'c Codec,
    /// Compressed blocks with their headers.
    out: Vec<u8>,
    /// Bytes not yet in a block (always fewer than [`META_SIZE`]).
    pending: Vec<u8>,
    /// The offset in `out` of every block, the pending one included.
    starts: Vec<u64>,
}

impl<'c> MetaWriter<'c> {
    pub(crate) fn new(codec: &'c Codec) -> Self {
        Self {
            codec,
            out: Vec::new(),
            pending: Vec::with_capacity(META_SIZE),
            starts: vec![0],
        }
    }

    /// Where the next byte goes: the start of its block (relative to the table) and its
    /// offset in the uncompressed block.
    pub(crate) fn pos(&self) -> (u64, u16) {
        (self.out.len() as u64, self.pending.len() as u16)
    }

    /// The number of uncompressed bytes written so far.
    pub(crate) fn uncompressed_len(&self) -> u64 {
        (self.starts.len() as u64 - 1) * META_SIZE as u64 + self.pending.len() as u64
    }

    /// The table offset of the block holding uncompressed byte `at` (written already, or in
    /// the pending block).
    pub(crate) fn block_start_of(&self, at: u64) -> Option<u64> {
        self.starts
            .get(usize::try_from(at / META_SIZE as u64).ok()?)
            .copied()
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let n = (META_SIZE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.pending.len() == META_SIZE {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        match self.codec.compress(&self.pending)? {
            Some(c) => {
                self.out.extend_from_slice(&(c.len() as u16).to_le_bytes());
                self.out.extend_from_slice(&c);
            }
            None => {
                self.out
                    .extend_from_slice(&(self.pending.len() as u16 | 0x8000).to_le_bytes());
                self.out.extend_from_slice(&self.pending);
            }
        }
        self.pending.clear();
        self.starts.push(self.out.len() as u64);
        Ok(())
    }

    /// Flushes the last, partial block; returns the table's bytes and the table offset of
    /// every block.
    pub(crate) fn finish(mut self) -> Result<(Vec<u8>, Vec<u64>)> {
        if !self.pending.is_empty() {
            self.flush()?;
        }
        self.starts.pop();
        Ok((self.out, self.starts))
    }
}

/// A lookup table (fragments, export, ids, xattr ids): fixed-size entries in metadata blocks,
/// then the absolute offset of each block. Returns the table's bytes and the offset of its
/// index, given that the table is placed at `at`.
pub(crate) fn lookup_table(codec: &Codec, entries: &[u8], at: u64) -> Result<(Vec<u8>, u64)> {
    let mut m = MetaWriter::new(codec);
    m.push(entries)?;
    let (mut bytes, starts) = m.finish()?;
    let index_at = at + bytes.len() as u64;
    for s in starts {
        bytes.extend_from_slice(&(at + s).to_le_bytes());
    }
    Ok((bytes, index_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;

    #[test]
    fn test_positions_follow_compressed_blocks() {
        let codec = Codec::new(Compression::Gzip, None, &[], 131072).unwrap();
        let mut m = MetaWriter::new(&codec);
        m.push(&[0u8; 8000]).unwrap();
        assert_eq!(m.pos(), (0, 8000));
        m.push(&[1u8; 300]).unwrap();
        let (start, off) = m.pos();
        assert!(start > 2 && start < 200, "{start}");
        assert_eq!(off, 108);
        assert_eq!(m.block_start_of(8192), Some(start));
        assert_eq!(m.uncompressed_len(), 8300);
        let (bytes, starts) = m.finish().unwrap();
        assert_eq!(starts, [0, start]);
        // The first header: compressed (bit 15 clear), its length the gap to the next block.
        assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]) as u64 + 2, start);
    }
}
