//! A sequential appender over the output file that leaves zero blocks as holes.

use std::fs::File;
use std::os::unix::fs::FileExt;

use imagetool_blockio::{ZERO_BLOCK, is_zero};

use crate::{Error, Result};

const FLUSH_AT: usize = 8 << 20;
/// Writes at least this large bypass the buffer.
const DIRECT: usize = 64 << 10;

/// Appends bytes at a growing position; all-zero 4 KiB blocks are not written (the output is a
/// fresh file, so they read as zeros and stay unallocated).
pub(crate) struct Appender<'a> {
    file: &'a File,
    name: String,
    /// Offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
}

impl<'a> Appender<'a> {
    pub fn new(file: &'a File, name: String, start: u64) -> Self {
        Self {
            file,
            name,
            base: start,
            buf: Vec::with_capacity(FLUSH_AT + (1 << 20)),
        }
    }

    /// The offset the next byte goes to.
    pub fn pos(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if data.len() >= DIRECT {
            self.flush()?;
            // Large data goes straight to the file, without a copy through the buffer.
            put_at(self.file, &self.name, data, self.base)?;
            self.base += data.len() as u64;
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Advances to the next multiple of `align` (zeros, left as a hole where whole blocks).
    pub fn pad_to(&mut self, align: u64) -> Result<()> {
        let target = self.pos().div_ceil(align) * align;
        self.skip_to(target)
    }

    /// Advances to `target` (≥ pos) leaving zeros.
    pub fn skip_to(&mut self, target: u64) -> Result<()> {
        let gap = target.saturating_sub(self.pos());
        if gap < ZERO_BLOCK as u64 {
            self.buf.resize(self.buf.len() + gap as usize, 0);
            return Ok(());
        }
        self.flush()?;
        self.base = target;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        let mut pos = 0usize;
        let mut run: Option<usize> = None;
        let zb = ZERO_BLOCK as u64;
        while pos < self.buf.len() {
            // Blocks end at absolute multiples of ZERO_BLOCK, so a skipped block is a whole
            // host filesystem block.
            let abs = self.base + pos as u64;
            let end = ((abs / zb + 1) * zb - self.base).min(self.buf.len() as u64) as usize;
            let zero = end - pos == ZERO_BLOCK && is_zero(&self.buf[pos..end]);
            match (zero, run) {
                (false, None) => run = Some(pos),
                (true, Some(s)) => {
                    self.put(s, pos)?;
                    run = None;
                }
                _ => {}
            }
            pos = end;
        }
        if let Some(s) = run {
            self.put(s, self.buf.len())?;
        }
        self.base += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn put(&self, from: usize, to: usize) -> Result<()> {
        let off = self.base + from as u64;
        self.file
            .write_all_at(&self.buf[from..to], off)
            .map_err(|e| Error::io(format!("{} (writing at byte {off})", self.name), e))
    }

    /// Flushes and sets the file length to the current position.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        let len = self.pos();
        // A device keeps its size (it was zeroed up to the image's length beforehand).
        let regular = self
            .file
            .metadata()
            .map_err(|e| Error::io(self.name.clone(), e))?
            .is_file();
        if regular {
            self.file
                .set_len(len)
                .map_err(|e| Error::io(self.name.clone(), e))?;
        }
        Ok(len)
    }
}

/// Writes `data` at `offset` of the (fresh) output, leaving aligned all-zero 4 KiB blocks as
/// holes.
pub(crate) fn put_at(file: &File, name: &str, data: &[u8], offset: u64) -> Result<()> {
    let zb = ZERO_BLOCK as u64;
    let put = |from: usize, to: usize| {
        let off = offset + from as u64;
        file.write_all_at(&data[from..to], off)
            .map_err(|e| Error::io(format!("{name} (writing at byte {off})"), e))
    };
    let mut run: Option<usize> = None;
    let mut pos = 0usize;
    while pos < data.len() {
        let abs = offset + pos as u64;
        let end = ((abs / zb + 1) * zb - offset).min(data.len() as u64) as usize;
        let zero = end - pos == ZERO_BLOCK && is_zero(&data[pos..end]);
        match (zero, run) {
            (false, None) => run = Some(pos),
            (true, Some(s)) => {
                put(s, pos)?;
                run = None;
            }
            _ => {}
        }
        pos = end;
    }
    if let Some(s) = run {
        put(s, data.len())?;
    }
    Ok(())
}

/// Writes a table of `width`-byte entries at `base`, `count` entries long, where only `set`
/// (index and encoded entry, ascending by index) differ from `fill`. Memory is one 64 KiB
/// chunk whatever the table's length; all-zero chunks of a fresh file stay holes.
pub(crate) fn put_table(
    file: &File,
    name: &str,
    base: u64,
    count: u64,
    width: usize,
    fill: u8,
    set: &[(u64, [u8; 8])],
) -> Result<()> {
    const CHUNK: u64 = 64 << 10;
    let w = width as u64;
    let total = count * w;
    let mut buf = vec![fill; CHUNK as usize];
    let mut k = 0usize;
    let mut at = 0u64;
    while at < total {
        let n = CHUNK.min(total - at);
        let chunk = &mut buf[..n as usize];
        chunk.fill(fill);
        let mut touched = false;
        while let Some(&(i, e)) = set.get(k) {
            let off = i * w;
            if off >= at + n {
                break;
            }
            let o = (off - at) as usize;
            chunk[o..o + width].copy_from_slice(&e[..width]);
            touched = true;
            k += 1;
        }
        if touched || fill != 0 {
            put_at(file, name, chunk, base + at)?;
        }
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn test_appender_writes_bytes_and_holes_in_place() {
        let f = tempfile::tempfile().unwrap();
        let mut a = Appender::new(&f, "t".into(), 512);
        a.write(b"abc").unwrap();
        a.pad_to(4096).unwrap();
        a.write(&[0u8; 8192]).unwrap();
        a.write(b"z").unwrap();
        a.skip_to(100_000).unwrap();
        a.write(b"end").unwrap();
        assert_eq!(a.finish().unwrap(), 100_003);
        let mut all = Vec::new();
        (&f).read_to_end(&mut all).unwrap();
        assert_eq!(&all[512..515], b"abc");
        assert_eq!(all[4096 + 8192], b'z');
        assert_eq!(&all[100_000..], b"end");
        assert_eq!(
            all.iter().map(|&b| u64::from(b)).sum::<u64>(),
            u64::from(b'a')
                + u64::from(b'b')
                + u64::from(b'c')
                + u64::from(b'z')
                + u64::from(b'e')
                + u64::from(b'n')
                + u64::from(b'd')
        );
    }
}
