//! Extended attributes: the key/value table, the id table and its header.

use std::collections::BTreeMap;

use crate::Result;
use crate::compress::Codec;
use crate::meta::MetaWriter;

const PREFIXES: [(&[u8], u16); 3] = [(b"user.", 0), (b"trusted.", 1), (b"security.", 2)];

/// The squashfs type of an attribute name and the name without its prefix, for the three
/// namespaces squashfs keeps.
pub(crate) fn prefix(name: &[u8]) -> Option<(u16, &[u8])> {
    PREFIXES.iter().find_map(|(p, t)| {
        name.strip_prefix(*p)
            .filter(|rest| !rest.is_empty())
            .map(|rest| (*t, rest))
    })
}

/// The xattr section placed at `at`: returns its bytes and the offset of its id table
/// header (the superblock's `xattr_id_table_start`).
pub(crate) fn xattr_table(
    codec: &Codec,
    sets: &[BTreeMap<Vec<u8>, Vec<u8>>],
    at: u64,
) -> Result<(Vec<u8>, u64)> {
    let mut kv = MetaWriter::new(codec);
    let mut ids = Vec::with_capacity(sets.len() * 16);
    for set in sets {
        let (block, off) = kv.pos();
        let mut size = 0u32;
        for (name, value) in set {
            // Checked when the inode was written.
            let Some((t, rest)) = prefix(name) else {
                continue;
            };
            kv.push(&t.to_le_bytes())?;
            kv.push(&(rest.len() as u16).to_le_bytes())?;
            kv.push(rest)?;
            kv.push(&(value.len() as u32).to_le_bytes())?;
            kv.push(value)?;
            size = size.saturating_add((name.len() + 1 + value.len()) as u32);
        }
        ids.extend_from_slice(&((block << 16) | u64::from(off)).to_le_bytes());
        ids.extend_from_slice(&(set.len() as u32).to_le_bytes());
        ids.extend_from_slice(&size.to_le_bytes());
    }
    let (mut bytes, _) = kv.finish()?;
    let mut idw = MetaWriter::new(codec);
    idw.push(&ids)?;
    let (id_bytes, starts) = idw.finish()?;
    let ids_at = at + bytes.len() as u64;
    bytes.extend_from_slice(&id_bytes);
    let header_at = at + bytes.len() as u64;
    bytes.extend_from_slice(&at.to_le_bytes());
    bytes.extend_from_slice(&(sets.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    for s in starts {
        bytes.extend_from_slice(&(ids_at + s).to_le_bytes());
    }
    Ok((bytes, header_at))
}
