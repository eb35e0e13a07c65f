//! Deterministic identifiers: every UUID and serial comes from a seed.

use sha2::{Digest, Sha256};

/// 16 bytes from which every identifier of one output is derived.
pub type Seed = [u8; 16];

/// Accumulates the content fingerprint: the virtual size, the grain size and, for every
/// non-zero grain in guest order, its index and CRC-32C.
pub(crate) struct Fingerprint(Sha256);

impl Fingerprint {
    pub fn new(virtual_size: u64, grain: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"imagetool-vdisk fingerprint v1");
        h.update(virtual_size.to_le_bytes());
        h.update(grain.to_le_bytes());
        Self(h)
    }

    pub fn add(&mut self, index: u64, crc: u32) {
        self.0.update(index.to_le_bytes());
        self.0.update(crc.to_le_bytes());
    }

    pub fn finish(self) -> Seed {
        let d = self.0.finalize();
        let mut s = [0u8; 16];
        s.copy_from_slice(&d[..16]);
        s
    }
}

/// A UUID for `purpose` (e.g. "vhd unique id") from `seed`: SHA-256 of both, truncated, marked
/// as an RFC 9562 version-8 (custom) UUID. Bytes in RFC (big-endian) order.
pub(crate) fn uuid(seed: &Seed, purpose: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"imagetool-vdisk id v1");
    h.update(seed);
    h.update(purpose.as_bytes());
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x80;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// A UUID in Microsoft's GUID layout (first three fields little-endian), as VHDX stores them.
pub(crate) fn guid_le(uuid: [u8; 16]) -> [u8; 16] {
    let mut g = uuid;
    g[0..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_uuid_depends_on_seed_and_purpose_only() {
        let a = uuid(&[1; 16], "x");
        assert_eq!(a, uuid(&[1; 16], "x"));
        assert_ne!(a, uuid(&[2; 16], "x"));
        assert_ne!(a, uuid(&[1; 16], "y"));
        assert_eq!(a[6] >> 4, 8);
        assert_eq!(a[8] >> 6, 2);
    }

    #[test]
    fn test_guid_le_swaps_first_three_fields() {
        let u = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        assert_eq!(
            guid_le(u),
            [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
        );
    }
}
