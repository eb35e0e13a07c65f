//! Extended attributes: in the inode's extra space first, the rest in one xattr block.

use std::collections::BTreeMap;

use crate::hash::{xattr_block_hash, xattr_entry_hash};
use crate::inode::{put16, put32};
use crate::{BLOCK_SIZE, Error, ErrorKind, Result, csum};

const MAGIC: u32 = 0xEA02_0000;
/// Bytes for in-inode xattrs: 256 - 128 - 32 extra bytes.
const IN_INODE: usize = 96;

/// One attribute: name index (1 user, 4 trusted, 6 security), name suffix, value.
#[derive(Debug, Clone)]
pub struct Attr {
    index: u8,
    name: Vec<u8>,
    value: Vec<u8>,
}

fn entry_len(a: &Attr) -> usize {
    16 + a.name.len().next_multiple_of(4)
}
fn value_len(a: &Attr) -> usize {
    a.value.len().next_multiple_of(4)
}

/// Attributes split between the inode and a block.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Kept in the inode.
    pub inode: Vec<Attr>,
    /// Kept in the xattr block.
    pub block: Vec<Attr>,
}

/// Splits `xattrs` (full names) into in-inode and block attributes.
///
/// # Errors
/// `Unsupported` for a namespace ext4 cannot hold natively (POSIX ACLs, unknown prefixes) or
/// when the attributes do not fit in one block.
pub fn split(xattrs: &BTreeMap<Vec<u8>, Vec<u8>>, path: &str) -> Result<Split> {
    let mut attrs = Vec::new();
    for (full, value) in xattrs {
        let (index, name, value) =
            if full == b"system.posix_acl_access" || full == b"system.posix_acl_default" {
                let index = if full.ends_with(b"access") { 2 } else { 3 };
                (
                    index,
                    &b""[..],
                    acl_to_disk(value).ok_or_else(|| {
                        Error::new(ErrorKind::InvalidInput, path, "malformed POSIX ACL")
                    })?,
                )
            } else if let Some(n) = full.strip_prefix(b"user.") {
                (1, n, value.clone())
            } else if let Some(n) = full.strip_prefix(b"trusted.") {
                (4, n, value.clone())
            } else if let Some(n) = full.strip_prefix(b"security.") {
                (6, n, value.clone())
            } else {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    path,
                    format!(
                        "extended attribute {} is not supported",
                        String::from_utf8_lossy(full)
                    ),
                ));
            };
        if (name.is_empty() && index != 2 && index != 3)
            || name.len() > 255
            || value.len() > BLOCK_SIZE as usize
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                path,
                "extended attribute name or value too long",
            ));
        }
        attrs.push(Attr {
            index,
            name: name.to_vec(),
            value: value.clone(),
        });
    }
    // The kernel's block order: index, name length, name.
    attrs.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
    let mut out = Split::default();
    let mut used = 8; // magic + terminator
    let mut spill = false;
    for a in attrs {
        let need = entry_len(&a) + value_len(&a);
        if !spill && used + need <= IN_INODE {
            used += need;
            out.inode.push(a);
        } else {
            spill = true;
            out.block.push(a);
        }
    }
    let block: usize = 32
        + 4
        + out
            .block
            .iter()
            .map(|a| entry_len(a) + value_len(a))
            .sum::<usize>();
    if block > BLOCK_SIZE as usize {
        return Err(Error::new(
            ErrorKind::Unsupported,
            path,
            "extended attributes do not fit in one block",
        ));
    }
    Ok(out)
}

/// Converts a POSIX ACL from the kernel's xattr form (version 2, 8-byte entries) to ext4's
/// on-disk form (version 1; 4-byte entries for the owner/group/mask/other tags).
fn acl_to_disk(v: &[u8]) -> Option<Vec<u8>> {
    let body = v.get(4..)?;
    if u32::from_le_bytes(v.get(..4)?.try_into().ok()?) != 2 || body.len() % 8 != 0 {
        return None;
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[..4]);
        // ACL_USER (2) and ACL_GROUP (8) carry an id.
        if tag == 2 || tag == 8 {
            out.extend_from_slice(&e[4..8]);
        }
    }
    Some(out)
}

/// Lays out entries from `base` and values down from `end` inside `b`; value offsets are
/// relative to `rel`. Returns the entry hashes.
fn put_entries(b: &mut [u8], base: usize, end: usize, rel: usize, attrs: &[Attr]) -> Vec<u32> {
    let mut off = base;
    let mut vend = end;
    let mut hashes = Vec::new();
    for a in attrs {
        let vstart = vend - value_len(a);
        b[vstart..vstart + a.value.len()].copy_from_slice(&a.value);
        let h = xattr_entry_hash(&a.name, &a.value);
        b[off] = a.name.len() as u8;
        b[off + 1] = a.index;
        put16(b, off + 2, (vstart - rel) as u16);
        put32(b, off + 4, 0);
        put32(b, off + 8, a.value.len() as u32);
        put32(b, off + 12, h);
        b[off + 16..off + 16 + a.name.len()].copy_from_slice(&a.name);
        off += entry_len(a);
        vend = vstart;
        hashes.push(h);
    }
    hashes
}

/// The in-inode area (from offset 0xA0 to the end of the inode).
pub fn inode_area(attrs: &[Attr]) -> Option<Vec<u8>> {
    if attrs.is_empty() {
        return None;
    }
    let mut b = vec![0u8; IN_INODE];
    put32(&mut b, 0, MAGIC);
    put_entries(&mut b, 4, IN_INODE, 4, attrs);
    Some(b)
}

/// The xattr block at `blocknr`, with its hash and checksum.
pub fn block(attrs: &[Attr], blocknr: u64, fs_seed: u32) -> Vec<u8> {
    let bs = BLOCK_SIZE as usize;
    let mut b = vec![0u8; bs];
    put32(&mut b, 0, MAGIC);
    put32(&mut b, 4, 1); // refcount
    put32(&mut b, 8, 1); // blocks
    let hashes = put_entries(&mut b, 32, bs, 0, attrs);
    put32(&mut b, 0x0C, xattr_block_hash(&hashes));
    csum::set_xattr_block(fs_seed, blocknr, &mut b);
    b
}
