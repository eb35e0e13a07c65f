//! GUIDs in the mixed-endian form GPT stores them.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use imagetool_fstree::Uuid;

use crate::error::{Error, ErrorKind};

/// A GUID, kept as its 16 on-disk bytes (the first three fields little-endian, as in GPT).
///
/// This is the on-disk form of the project's one identifier type, [`Uuid`] (RFC 4122 byte
/// order): `Guid::from(uuid)` and [`Guid::uuid`] convert, keeping the text. `Display` is the
/// uppercase text sfdisk and gdisk print.
///
/// ```
/// use imagetool_fstree::Uuid;
/// use imagetool_ptable::Guid;
///
/// let u: Uuid = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b".parse()?;
/// let g = Guid::from(u);
/// assert_eq!(g.disk_bytes()[..4], [0x28, 0x73, 0x2a, 0xc1]);
/// assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
/// assert_eq!(g.uuid(), u);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid([u8; 16]);

impl Guid {
    /// The all-zero GUID (an unused GPT entry).
    pub const NIL: Guid = Guid([0; 16]);

    /// A GUID from its on-disk bytes.
    #[must_use]
    pub const fn from_disk_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The on-disk bytes.
    #[must_use]
    pub const fn disk_bytes(&self) -> [u8; 16] {
        self.0
    }

    /// The GPT form of a UUID: the same text, the first three fields stored little-endian.
    #[must_use]
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(to_mixed(uuid.into_bytes()))
    }

    /// The UUID this GUID's text names (the bytes in RFC 4122 order).
    #[must_use]
    pub const fn uuid(&self) -> Uuid {
        // The mixed-endian swap is its own inverse.
        Uuid::from_bytes(to_mixed(self.0))
    }

    /// Parses the canonical text form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` at compile time.
    ///
    /// # Panics
    /// On a malformed literal: only for constants written in this crate, where it is a
    /// compile error.
    #[must_use]
    pub const fn from_str_const(s: &str) -> Self {
        match parse(s.as_bytes()) {
            Some(g) => g,
            None => panic!("malformed GUID literal"),
        }
    }

    /// A version-4-shaped GUID derived from a seed and a role label: the first 16 bytes of
    /// SHA-256(`"imagetool-guid"`, len(seed), seed, role), with the RFC 4122 version and variant
    /// bits set. The same seed and role always give the same GUID.
    #[must_use]
    pub fn derive(seed: &[u8], role: &str) -> Self {
        let d = derive_bytes(seed, role);
        // Build the canonical (big-endian) UUID first, then store it mixed-endian.
        let mut u = [0u8; 16];
        u.copy_from_slice(&d[..16]);
        u[6] = (u[6] & 0x0f) | 0x40;
        u[8] = (u[8] & 0x3f) | 0x80;
        Self(to_mixed(u))
    }
}

/// SHA-256 over a domain label, the seed (length-prefixed) and a role.
pub(crate) fn derive_bytes(seed: &[u8], role: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"imagetool-ptable-v1\0");
    h.update((seed.len() as u64).to_le_bytes());
    h.update(seed);
    h.update(role.as_bytes());
    h.finalize().into()
}

const fn to_mixed(u: [u8; 16]) -> [u8; 16] {
    [
        u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13],
        u[14], u[15],
    ]
}

const fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const fn parse(s: &[u8]) -> Option<Guid> {
    if s.len() != 36 || s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
        return None;
    }
    let mut u = [0u8; 16];
    let mut i = 0;
    let mut n = 0;
    while i < 36 {
        if i == 8 || i == 13 || i == 18 || i == 23 {
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (hex(s[i]), hex(s[i + 1])) else {
            return None;
        };
        u[n] = hi << 4 | lo;
        n += 1;
        i += 2;
    }
    Some(Guid(to_mixed(u)))
}

impl FromStr for Guid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse(s.as_bytes()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid GUID {s:?}: expected 36 characters XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"
                ),
            )
        })
    }
}

impl From<Uuid> for Guid {
    fn from(uuid: Uuid) -> Self {
        Self::from_uuid(uuid)
    }
}

impl From<Guid> for Uuid {
    fn from(guid: Guid) -> Self {
        guid.uuid()
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        for x in &b[10..] {
            write!(f, "{x:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_guid_roundtrip_mixed_endian() {
        let g: Guid = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap();
        assert_eq!(g.disk_bytes()[..4], [0x28, 0x73, 0x2a, 0xc1]);
        assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    }

    #[test]
    fn test_guid_rejects_35_chars() {
        // make-disk-image's disk GUID literal: sgdisk mangles it, we refuse it.
        assert!(
            "97FD5997-D90B-4AA3-8D16-C1723AEA73C"
                .parse::<Guid>()
                .is_err()
        );
        assert!(
            "G12A7328-F81F-11D2-BA4B-00A0C93EC93B"
                .parse::<Guid>()
                .is_err()
        );
    }

    #[test]
    fn test_derive_is_stable_and_role_dependent() {
        let a = Guid::derive(b"seed", "root");
        assert_eq!(a, Guid::derive(b"seed", "root"));
        assert_ne!(a, Guid::derive(b"seed", "esp"));
        assert_ne!(a, Guid::derive(b"seed2", "root"));
        assert_eq!(&a.to_string()[14..15], "4");
    }
}
