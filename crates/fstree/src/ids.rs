//! The identifier and time types every layer shares: [`Uuid`] and [`Timestamp`].

use std::fmt;
use std::str::FromStr;

/// A 16-byte identifier shown as `8-4-4-4-12` hex text: a filesystem UUID, a GPT GUID's value,
/// a VMA archive's UUID.
///
/// The bytes are in RFC 4122 order (the text's hex digits left to right), which is how ext4's
/// superblock and VMA store them. GPT stores its GUIDs mixed-endian: `imagetool_ptable::Guid`
/// is that on-disk form and converts to and from a `Uuid` (`Guid::from(uuid)`, `guid.uuid()`).
///
/// `Display` is blkid's lowercase form (`12345678-9abc-…`); `{:X}` prints the uppercase form
/// sfdisk and GPT tools use. Parsing accepts either case.
///
/// ```
/// use imagetool_fstree::Uuid;
///
/// let u: Uuid = "12345678-9ABC-def0-0001-020304050607".parse()?;
/// assert_eq!(u.as_bytes()[..3], [0x12, 0x34, 0x56]);
/// assert_eq!(u.to_string(), "12345678-9abc-def0-0001-020304050607");
/// assert_eq!(format!("{u:X}"), "12345678-9ABC-DEF0-0001-020304050607");
/// assert_eq!(Uuid::from_bytes(*u.as_bytes()), u);
/// assert!("12345678".parse::<Uuid>().unwrap_err().to_string().contains("\"12345678\" is not a UUID"));
/// # Ok::<(), imagetool_fstree::ParseUuidError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// The all-zero UUID.
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A UUID from its 16 bytes in RFC 4122 (text) order.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes in RFC 4122 (text) order.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The 16 bytes in RFC 4122 (text) order, by value.
    #[must_use]
    pub const fn into_bytes(self) -> [u8; 16] {
        self.0
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, upper: bool) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            if upper {
                write!(f, "{b:02X}")?;
            } else {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl From<[u8; 16]> for Uuid {
    fn from(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl From<Uuid> for [u8; 16] {
    fn from(u: Uuid) -> Self {
        u.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl fmt::UpperHex for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, true)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// A text that is not `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` hex; its message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseUuidError {
    text: String,
    shape: bool,
}

impl fmt::Display for ParseUuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shape {
            write!(
                f,
                "{:?} is not a UUID (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)",
                self.text
            )
        } else {
            write!(f, "{:?} is not a UUID", self.text)
        }
    }
}

impl std::error::Error for ParseUuidError {}

impl FromStr for Uuid {
    type Err = ParseUuidError;

    fn from_str(text: &str) -> Result<Self, ParseUuidError> {
        let err = |shape| ParseUuidError {
            text: text.to_owned(),
            shape,
        };
        let groups: Vec<usize> = text.split('-').map(str::len).collect();
        if groups != [8, 4, 4, 4, 12] {
            return Err(err(true));
        }
        let digits: Vec<u8> = text.bytes().filter(|c| *c != b'-').collect();
        let mut out = [0u8; 16];
        for (b, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let hex = |c: u8| char::from(c).to_digit(16).ok_or_else(|| err(false));
            *b = u8::try_from(hex(pair[0])? << 4 | hex(pair[1])?).map_err(|_| err(false))?;
        }
        Ok(Self(out))
    }
}

use crate::Timestamp;

/// The option structs' times (`ImageSpec::timestamp`, ext4's and FAT's `timestamp`, squashfs's
/// `mkfs_time`, vdisk's `source_date_epoch`) are this same [`Timestamp`] the tree's nodes carry;
/// they use whole seconds (`SOURCE_DATE_EPOCH`'s unit) and ignore `nanos`.
///
/// Each format stores a different range; the range checks are methods, and each writer
/// documents which one it applies (ext4 and FAT refuse what they cannot store, squashfs clamps
/// to its unsigned 32 bits, VHD counts from 2000).
///
/// ```
/// use imagetool_fstree::Timestamp;
///
/// let t = Timestamp::from(1_700_000_000);
/// assert_eq!(t, Timestamp::from_secs(1_700_000_000));
/// assert_eq!(Timestamp::from(-5).clamp_u32(), 0);
/// assert_eq!(Timestamp::from(1 << 40).clamp_u32(), u32::MAX);
/// assert_eq!(Timestamp::from(-5).to_u64(), None);
/// assert!(t.within(0..=i64::from(u32::MAX)));
/// ```
impl Timestamp {
    /// 1970-01-01 00:00:00 UTC.
    pub const EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// Whether the seconds lie in `range` (a format's storable times).
    #[must_use]
    pub fn within(self, range: std::ops::RangeInclusive<i64>) -> bool {
        range.contains(&self.secs)
    }

    /// The seconds as an unsigned 32-bit field, clamped to 0..=`u32::MAX` (squashfs's
    /// `mkfs_time`).
    #[must_use]
    pub fn clamp_u32(self) -> u32 {
        u32::try_from(self.secs.max(0)).unwrap_or(u32::MAX)
    }

    /// The seconds as an unsigned 64-bit count; `None` before the epoch.
    #[must_use]
    pub fn to_u64(self) -> Option<u64> {
        u64::try_from(self.secs).ok()
    }

    /// The same time without its fraction of a second.
    #[must_use]
    pub const fn whole_secs(self) -> Self {
        Self::from_secs(self.secs)
    }
}

/// Whole seconds since the epoch.
impl From<i64> for Timestamp {
    fn from(secs: i64) -> Self {
        Self::from_secs(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_uuid_text_roundtrip_and_errors() {
        let u: Uuid = "F222513B-DED1-49FA-B591-20CE86A2FE7F".parse().unwrap();
        assert_eq!(u.as_bytes()[0], 0xf2);
        assert_eq!(u.to_string(), "f222513b-ded1-49fa-b591-20ce86a2fe7f");
        assert_eq!(format!("{u:X}"), "F222513B-DED1-49FA-B591-20CE86A2FE7F");
        for bad in [
            "F222513B-DED1-49FA-B591-20CE86A2FE7",
            "F222513BDED149FAB59120CE86A2FE7F",
            "",
        ] {
            let e = bad.parse::<Uuid>().unwrap_err().to_string();
            assert!(
                e.ends_with("is not a UUID (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)"),
                "{e}"
            );
        }
        for bad in [
            "G222513B-DED1-49FA-B591-20CE86A2FE7F",
            "é22513B-DED1-49FA-B591-20CE86A2FE7F",
        ] {
            let e = bad.parse::<Uuid>().unwrap_err().to_string();
            assert_eq!(e, format!("{bad:?} is not a UUID"));
        }
    }
}
