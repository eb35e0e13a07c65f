//! File data: blocks read once and compressed in parallel, written in a fixed order.
//!
//! The regular files are taken in tree order and cut into items (a whole small file, or up to
//! [`CHUNK_BYTES`] of a large one). Items are processed in batches of about [`BATCH_BYTES`]:
//! the workers read and compress a batch's items in parallel (and hash them, for duplicate
//! detection); then, in item order, the blocks are written one after the other, duplicates are
//! taken back, and small files are packed into fragment blocks, which are compressed in
//! parallel and written after the batch. Batch boundaries depend only on file sizes, so the
//! bytes do not depend on the number of threads; memory holds one batch at a time.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use imagetool_blockio::{WriteAt, is_zero};
use imagetool_fstree::{FileData, Kind, NodeId, Source, Tree};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::compress::Codec;
use crate::{Error, ErrorKind, Result};

/// The most file bytes one work item reads.
const CHUNK_BYTES: u64 = 8 << 20;
/// The most file bytes one batch reads.
const BATCH_BYTES: u64 = 64 << 20;
/// Bit 24 of a data block or fragment size: stored uncompressed.
pub(crate) const UNCOMPRESSED: u32 = 1 << 24;

/// Where a regular file's data went.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileLoc {
    /// The offset of its first block.
    pub start: u64,
    /// The size word of every block (0: a sparse block, all zeros, not stored).
    pub blocks: Vec<u32>,
    /// The fragment holding its tail, and the tail's offset in it.
    pub fragment: Option<(u32, u32)>,
    /// Bytes in sparse blocks.
    pub sparse: u64,
}

/// A fragment table entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fragment {
    pub start: u64,
    pub size: u32,
}

/// What the data phase produced.
pub(crate) struct DataOut {
    /// Per node index: the file's location (regular files only).
    pub locs: Vec<Option<FileLoc>>,
    pub fragments: Vec<Fragment>,
    /// The offset after the last data or fragment block.
    pub end: u64,
    /// The furthest offset written (duplicates taken back may have left bytes past `end`).
    pub high_water: u64,
    pub stats: DataStats,
}

/// Counts for the report.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DataStats {
    pub files: u64,
    pub bytes: u64,
    pub blocks: u64,
    pub sparse_blocks: u64,
    pub duplicates: u64,
}

pub(crate) struct DataOptions {
    pub block_size: u32,
    pub fragments: bool,
    pub always_fragments: bool,
    pub dedup: bool,
}

struct Item<'t> {
    node: NodeId,
    path: &'t [u8],
    data: &'t FileData,
    /// The first block of the file this item covers.
    first_block: u64,
    /// Whole or final blocks this item compresses.
    blocks: u64,
    /// The item ends the file.
    last: bool,
    /// Bytes of the file's tail this item packs into a fragment (only on the last item).
    tail: u32,
}

impl Item<'_> {
    fn bytes(&self, bs: u64) -> u64 {
        let end = ((self.first_block + self.blocks) * bs).min(self.data.size);
        end - self.first_block * bs + u64::from(self.tail)
    }
}

struct Block {
    size: u32,
    bytes: Option<Vec<u8>>,
}

struct ItemOut {
    blocks: Vec<Block>,
    tail: Vec<u8>,
    hash: [u8; 32],
    /// A whole file found identical to an earlier one before compression.
    duplicate: bool,
}

/// The current file of the sequential pass.
struct Current {
    start: u64,
    blocks: Vec<u32>,
    sparse: u64,
    hashes: Vec<[u8; 32]>,
}

struct Packer {
    block_size: usize,
    current: Vec<u8>,
    /// Full fragment blocks not yet written.
    pending: Vec<Vec<u8>>,
    count: u32,
}

impl Packer {
    /// Packs `tail`; returns (fragment index, offset).
    fn add(&mut self, tail: &[u8]) -> Result<(u32, u32)> {
        if self.current.len() + tail.len() > self.block_size {
            self.close()?;
        }
        let off = self.current.len() as u32;
        self.current.extend_from_slice(tail);
        Ok((self.count, off))
    }

    fn close(&mut self) -> Result<()> {
        if !self.current.is_empty() {
            self.pending.push(std::mem::replace(
                &mut self.current,
                Vec::with_capacity(self.block_size),
            ));
            self.count = self.count.checked_add(1).ok_or_else(|| {
                Error::new(ErrorKind::Overflow, "fragments", "more than 2^32 fragments")
            })?;
        }
        Ok(())
    }
}

/// Writes every regular file's data from `at` on.
pub(crate) fn write_data<W: WriteAt + ?Sized>(
    tree: &Tree,
    walk: &[(Vec<u8>, NodeId)],
    codec: &Codec,
    opts: &DataOptions,
    out: &W,
    at: u64,
) -> Result<DataOut> {
    let bs = u64::from(opts.block_size);
    let mut w = DataWriter {
        out,
        codec,
        opts,
        pos: at,
        high_water: at,
        seen: HashMap::new(),
        packer: Packer {
            block_size: opts.block_size as usize,
            current: Vec::new(),
            pending: Vec::new(),
            count: 0,
        },
        fragments: Vec::new(),
        current: None,
        stats: DataStats::default(),
        locs: vec![None; tree.len()],
    };
    // 1. The work list: every file's blocks in chunks.
    let items = w.items(tree, walk);
    // 2. Batch by batch: read, hash and compress in parallel, then store in order.
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        let mut bytes = 0;
        while j < items.len() && (j == i || bytes + items[j].bytes(bs) <= BATCH_BYTES) {
            bytes += items[j].bytes(bs);
            j += 1;
        }
        let batch = &items[i..j];
        let outs = w.compress_batch(batch)?;
        for (it, o) in batch.iter().zip(outs) {
            w.store(it, o?)?;
        }
        // Fragments go between files, never inside one's blocks.
        if w.current.is_none() {
            w.flush_fragments()?;
        }
        i = j;
    }
    // 3. The last fragment block.
    w.packer.close()?;
    w.flush_fragments()?;
    Ok(DataOut {
        locs: w.locs,
        fragments: w.fragments,
        end: w.pos,
        high_water: w.high_water,
        stats: w.stats,
    })
}

/// The state of [`write_data`]: where the next block goes, the files stored so far (for
/// duplicates), the fragment packer, the file being stored.
struct DataWriter<'a, W: WriteAt + ?Sized> {
    out: &'a W,
    codec: &'a Codec,
    opts: &'a DataOptions,
    pos: u64,
    high_water: u64,
    seen: HashMap<(u64, [u8; 32]), FileLoc>,
    packer: Packer,
    fragments: Vec<Fragment>,
    current: Option<Current>,
    stats: DataStats,
    locs: Vec<Option<FileLoc>>,
}

impl<W: WriteAt + ?Sized> DataWriter<'_, W> {
    /// Every regular file's blocks as items of at most `CHUNK_BYTES` (the tail in a fragment
    /// when fragments are on); empty files are located at once.
    fn items<'t>(&mut self, tree: &'t Tree, walk: &'t [(Vec<u8>, NodeId)]) -> Vec<Item<'t>> {
        let opts = self.opts;
        let bs = u64::from(opts.block_size);
        let mut items = Vec::new();
        for (path, id) in walk {
            let Kind::File(data) = &tree.node(*id).kind else {
                continue;
            };
            self.stats.files += 1;
            self.stats.bytes += data.size;
            if data.size == 0 {
                self.locs[id.0 as usize] = Some(FileLoc::default());
                continue;
            }
            let to_fragment = opts.fragments && (data.size < bs || opts.always_fragments);
            let (nblocks, tail) = if to_fragment {
                (data.size / bs, (data.size % bs) as u32)
            } else {
                (data.size.div_ceil(bs), 0)
            };
            let per_chunk = (CHUNK_BYTES / bs).max(1);
            let mut first = 0;
            loop {
                let n = per_chunk.min(nblocks - first);
                let last = first + n == nblocks;
                items.push(Item {
                    node: *id,
                    path,
                    data,
                    first_block: first,
                    blocks: n,
                    last,
                    tail: if last { tail } else { 0 },
                });
                first += n;
                if last {
                    break;
                }
            }
        }
        items
    }

    /// Reads and hashes `batch` in parallel; then, before compressing anything, finds the
    /// whole files identical to one stored earlier (or earlier in this batch): they are not
    /// compressed. The others are compressed in parallel.
    fn compress_batch(&self, batch: &[Item<'_>]) -> Result<Vec<Result<ItemOut>>> {
        let bs = u64::from(self.opts.block_size);
        let raws: Vec<Result<(Vec<u8>, [u8; 32])>> =
            batch.par_iter().map(|it| read_item(it, bs)).collect();
        let raws = raws.into_iter().collect::<Result<Vec<_>>>()?;
        let mut firsts = std::collections::HashSet::new();
        let dup: Vec<bool> = batch
            .iter()
            .zip(&raws)
            .map(|(it, (_, h))| {
                self.opts.dedup && it.first_block == 0 && it.last && {
                    let key = (it.data.size, whole_key(&[*h]));
                    self.seen.contains_key(&key) || !firsts.insert(key)
                }
            })
            .collect();
        let (codec, block_size) = (self.codec, self.opts.block_size);
        Ok(batch
            .par_iter()
            .zip(raws)
            .zip(&dup)
            .map(|((it, (buf, hash)), &d)| compress_item(it, buf, hash, d, codec, block_size))
            .collect())
    }

    /// Stores one compressed item: its blocks written in order; at a file's last item, the
    /// file located (its tail packed into a fragment), or, identical to a file stored before,
    /// its blocks taken back and the first copy's shared.
    fn store(&mut self, it: &Item<'_>, o: ItemOut) -> Result<()> {
        let bs = u64::from(self.opts.block_size);
        if o.duplicate {
            let key = (it.data.size, whole_key(&[o.hash]));
            let loc = self.seen.get(&key).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    lossy(it.path),
                    "duplicate of a file that was not stored",
                )
            })?;
            self.stats.duplicates += 1;
            self.locs[it.node.0 as usize] = Some(loc);
            return Ok(());
        }
        let pos = self.pos;
        let cur = self.current.get_or_insert_with(|| Current {
            start: pos,
            blocks: Vec::new(),
            sparse: 0,
            hashes: Vec::new(),
        });
        for (k, b) in o.blocks.iter().enumerate() {
            if let Some(bytes) = &b.bytes {
                self.out
                    .write_all_at(bytes, self.pos)
                    .map_err(|e| Error::io("output", "writing a data block", e))?;
                self.pos += bytes.len() as u64;
                self.stats.blocks += 1;
            } else if b.size == 0 {
                self.stats.sparse_blocks += 1;
                let bi = it.first_block + k as u64;
                cur.sparse += (it.data.size - bi * bs).min(bs);
            }
            cur.blocks.push(b.size);
        }
        self.high_water = self.high_water.max(self.pos);
        cur.hashes.push(o.hash);
        if !it.last {
            return Ok(());
        }
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let key = (it.data.size, whole_key(&cur.hashes));
        let loc = match self.seen.get(&key).filter(|_| self.opts.dedup) {
            Some(prev) => {
                // Identical contents: take this copy's blocks back, share the first's.
                self.stats.duplicates += 1;
                self.stats.blocks -= cur.blocks.iter().filter(|&&s| s != 0).count() as u64;
                self.pos = cur.start;
                prev.clone()
            }
            None => {
                let fragment = if o.tail.is_empty() {
                    None
                } else {
                    Some(self.packer.add(&o.tail)?)
                };
                let loc = FileLoc {
                    start: if cur.blocks.is_empty() { 0 } else { cur.start },
                    blocks: cur.blocks,
                    fragment,
                    sparse: cur.sparse,
                };
                if self.opts.dedup {
                    self.seen.insert(key, loc.clone());
                }
                loc
            }
        };
        self.locs[it.node.0 as usize] = Some(loc);
        Ok(())
    }

    /// Writes the fragment blocks packed so far at the current position.
    fn flush_fragments(&mut self) -> Result<()> {
        self.pos = write_fragments(
            &mut self.packer.pending,
            self.codec,
            self.out,
            self.pos,
            &mut self.fragments,
        )?;
        self.high_water = self.high_water.max(self.pos);
        Ok(())
    }
}

fn write_fragments<W: WriteAt + ?Sized>(
    pending: &mut Vec<Vec<u8>>,
    codec: &Codec,
    out: &W,
    mut pos: u64,
    table: &mut Vec<Fragment>,
) -> Result<u64> {
    let blocks = std::mem::take(pending);
    let compressed: Vec<Result<Option<Vec<u8>>>> =
        blocks.par_iter().map(|b| codec.compress(b)).collect();
    for (raw, c) in blocks.iter().zip(compressed) {
        let (bytes, size) = match c? {
            Some(c) => {
                let n = c.len() as u32;
                (c, n)
            }
            None => (raw.clone(), raw.len() as u32 | UNCOMPRESSED),
        };
        out.write_all_at(&bytes, pos)
            .map_err(|e| Error::io("output", "writing a fragment block", e))?;
        table.push(Fragment { start: pos, size });
        pos += bytes.len() as u64;
    }
    Ok(pos)
}

/// The duplicate-detection key of a file from the hashes of its items.
fn whole_key(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for x in hashes {
        h.update(x);
    }
    h.finalize().into()
}

/// Reads and hashes one item.
fn read_item(it: &Item<'_>, bs: u64) -> Result<(Vec<u8>, [u8; 32])> {
    let start = it.first_block * bs;
    let end = it.data.size.min((it.first_block + it.blocks) * bs) + u64::from(it.tail);
    let len = usize::try_from(end - start)
        .map_err(|_| Error::new(ErrorKind::Overflow, lossy(it.path), "chunk too large"))?;
    let mut buf = vec![0u8; len];
    read_region(it, start, &mut buf)?;
    let hash = Sha256::digest(&buf).into();
    Ok((buf, hash))
}

/// Compresses one item's blocks (in parallel); a duplicate's are not compressed at all.
fn compress_item(
    it: &Item<'_>,
    mut buf: Vec<u8>,
    hash: [u8; 32],
    duplicate: bool,
    codec: &Codec,
    block_size: u32,
) -> Result<ItemOut> {
    let block_bytes = buf.len() - it.tail as usize;
    let tail = buf.split_off(block_bytes);
    if duplicate {
        return Ok(ItemOut {
            blocks: Vec::new(),
            tail,
            hash,
            duplicate,
        });
    }
    let blocks: Vec<Result<Block>> = buf
        .par_chunks(block_size as usize)
        .map(|chunk| {
            if is_zero(chunk) {
                return Ok(Block {
                    size: 0,
                    bytes: None,
                });
            }
            Ok(match codec.compress(chunk)? {
                Some(c) => Block {
                    size: c.len() as u32,
                    bytes: Some(c),
                },
                None => Block {
                    size: chunk.len() as u32 | UNCOMPRESSED,
                    bytes: Some(chunk.to_vec()),
                },
            })
        })
        .collect();
    Ok(ItemOut {
        blocks: blocks.into_iter().collect::<Result<_>>()?,
        tail,
        hash,
        duplicate,
    })
}

/// Fills `buf` with the file's bytes from `start`: data ranges are read, holes stay zeros.
fn read_region(it: &Item<'_>, start: u64, buf: &mut [u8]) -> Result<()> {
    let end = start + buf.len() as u64;
    match &it.data.source {
        Source::Bytes(b) => {
            let s = usize::try_from(start).unwrap_or(usize::MAX);
            let src = b.get(s..s.saturating_add(buf.len())).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    lossy(it.path),
                    "generated file shorter than its size",
                )
            })?;
            buf.copy_from_slice(src);
        }
        Source::Host(p) => {
            let f = imagetool_blockio::open_regular(p)
                .map_err(|e| Error::io(p.display(), "open", e))?;
            for r in it.data.data_ranges() {
                let (a, b) = (r.start.max(start), r.end.min(end));
                if a >= b {
                    continue;
                }
                let dst = &mut buf[(a - start) as usize..(b - start) as usize];
                f.read_exact_at(dst, a)
                    .map_err(|e| Error::io(p.display(), "read", e))?;
            }
        }
    }
    Ok(())
}

fn lossy(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}
