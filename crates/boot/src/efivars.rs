//! The OVMF (edk2) UEFI variable store, read and written as a file: what make-disk-image's
//! `touchEFIVars` leaves in `$out/efi-vars.fd` after its VM's installer registered a boot entry.
//!
//! ```text
//! 0x0000  EFI_FIRMWARE_VOLUME_HEADER   ZeroVector, FileSystemGuid = EFI_SYSTEM_NV_DATA_FV_GUID,
//!                                      FvLength, "_FVH", Attributes, HeaderLength, Checksum
//!                                      (the header's u16 words sum to 0), Revision 2, BlockMap
//! HeaderLength  VARIABLE_STORE_HEADER  Signature = gEfiAuthenticatedVariableGuid (or
//!                                      gEfiVariableGuid), Size, Format 0x5A, State 0xFE
//!         variables, each 4-byte aligned: header (StartId 0x55AA, State, Attributes,
//!         [MonotonicCount, TimeStamp, PubKeyIndex,] NameSize, DataSize, VendorGuid),
//!         the UTF-16LE name with its NUL, the data; then erased flash (0xFF)
//! store end  (OVMF: a 4 KiB event-log area, then) the fault-tolerant-write working block
//!         (signature gEdkiiWorkingBlockSignatureGuid, CRC32) and its spare area
//! ```
//!
//! Only the variable area is changed: a replaced variable is marked deleted in place (State
//! `0x3C`, as edk2's `UpdateVariable` leaves it) and the new one appended in the free space, as
//! the firmware's own `SetVariable` does. Non-time-authenticated variables carry a zero
//! monotonic count, timestamp and key index, as OVMF stores them.
//!
//! [`add_boot_entry`] does what `bootctl install` does through efivarfs (systemd's
//! `src/bootctl/bootctl-install.c`: `find_slot`, `efi_add_boot_option`, `insert_into_order`):
//! reuse the `Boot####` with the same partition and loader path or take the lowest free number,
//! write an `EFI_LOAD_OPTION` (active, the description, `HD(part, GPT, GUID, start,
//! size)/File(path)/End`), and put it first in `BootOrder`.
//!
//! The parser takes hostile input: every size is checked against the file before it is used,
//! the loop over variables always advances, and nothing is allocated beyond the input's size.

use crate::error::{Error, ErrorKind, Result};

/// A GUID in its on-disk (mixed-endian) byte order.
pub type Guid = [u8; 16];

/// `EFI_SYSTEM_NV_DATA_FV_GUID` {FFF12B8D-7696-4C8B-A985-2747075B4F50}: the volume's file system.
pub const NV_DATA_FV_GUID: Guid = guid(
    0xfff1_2b8d,
    0x7696,
    0x4c8b,
    [0xa9, 0x85, 0x27, 0x47, 0x07, 0x5b, 0x4f, 0x50],
);
/// `gEfiAuthenticatedVariableGuid` {AAF32C78-947B-439A-A180-2E144EC37792}: a store whose
/// variables have the authenticated header.
pub const AUTHENTICATED_VARIABLE_GUID: Guid = guid(
    0xaaf3_2c78,
    0x947b,
    0x439a,
    [0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92],
);
/// `gEfiVariableGuid` {DDCF3616-3275-4164-98B6-FE85707FFE7D}: a store of plain variables.
pub const VARIABLE_GUID: Guid = guid(
    0xddcf_3616,
    0x3275,
    0x4164,
    [0x98, 0xb6, 0xfe, 0x85, 0x70, 0x7f, 0xfe, 0x7d],
);
/// `EFI_GLOBAL_VARIABLE` {8BE4DF61-93CA-11D2-AA0D-00E098032B8C}: `Boot####`, `BootOrder`, ….
pub const GLOBAL_VARIABLE_GUID: Guid = guid(
    0x8be4_df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// `gEdkiiWorkingBlockSignatureGuid` {9E58292B-7C68-497D-A0CE-6500FD9F1B95}: the
/// fault-tolerant-write working block.
pub const FTW_WORKING_BLOCK_GUID: Guid = guid(
    0x9e58_292b,
    0x7c68,
    0x497d,
    [0xa0, 0xce, 0x65, 0x00, 0xfd, 0x9f, 0x1b, 0x95],
);

/// `EFI_VARIABLE_NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS`: what efivarfs writers
/// (bootctl, efibootmgr) set on boot variables.
pub const ATTR_NV_BS_RT: u32 = 0x7;
/// `EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS`.
pub const ATTR_TIME_BASED_AUTH: u32 = 0x20;
/// `LOAD_OPTION_ACTIVE`.
pub const LOAD_OPTION_ACTIVE: u32 = 0x1;

/// The description `bootctl install` gives its entry.
pub const SYSTEMD_BOOT_DESCRIPTION: &str = "Linux Boot Manager";

/// The size of the OVMF 4 MiB build's variable file (`OVMF_VARS_4M.fd`, edk2's default flash
/// size for OvmfPkgX64): what [`VarStore::empty_ovmf`] makes.
pub const OVMF_4M_VARS_SIZE: usize = 0x84000;
/// The largest template read: OVMF variable files are 128 KiB to 4 MiB.
pub const MAX_TEMPLATE_SIZE: u64 = 64 << 20;

const FV_HEADER_LEN: usize = 0x38; // without the block map
const STORE_HEADER_LEN: usize = 28;
const AUTH_VAR_HEADER_LEN: usize = 60;
const VAR_HEADER_LEN: usize = 32;
const START_ID: u16 = 0x55aa;
const STORE_FORMATTED: u8 = 0x5a;
const STORE_HEALTHY: u8 = 0xfe;
/// `VAR_ADDED`.
const VAR_ADDED: u8 = 0x3f;
/// `VAR_ADDED & VAR_IN_DELETED_TRANSITION`: still the live copy until its successor is added.
const VAR_ADDED_IN_TRANSITION: u8 = 0x3e;
/// `VAR_ADDED & VAR_IN_DELETED_TRANSITION & VAR_DELETED`.
const VAR_DELETED_STATE: u8 = 0x3c;
const FTW_HEADER_LEN: usize = 32;

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// A GUID's canonical text (`8be4df61-93ca-11d2-aa0d-00e098032b8c`) from its on-disk bytes.
#[must_use]
pub fn guid_text(g: &Guid) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("EFI variable store: {what}"),
    )
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
fn guid_at(b: &[u8], off: usize) -> Guid {
    let mut g = [0u8; 16];
    g.copy_from_slice(&b[off..off + 16]);
    g
}

/// One variable record of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Its name (`BootOrder`).
    pub name: String,
    /// Its vendor GUID (on-disk bytes).
    pub guid: Guid,
    /// `EFI_VARIABLE_*` attributes.
    pub attributes: u32,
    /// The record's state byte (`0x3F`: added; `0x3C`: deleted).
    pub state: u8,
    /// The value.
    pub data: Vec<u8>,
    /// Authenticated stores: the monotonic count, `EFI_TIME` and public-key index as stored.
    pub auth: Option<([u8; 8], [u8; 16], u32)>,
    /// Byte offset of the record's header in the file.
    pub offset: usize,
}

impl Variable {
    /// True for the live copy of a variable (added, possibly in deletion transition).
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.state == VAR_ADDED || self.state == VAR_ADDED_IN_TRANSITION
    }
}

/// An OVMF variable file: the firmware volume, its variable store and what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarStore {
    bytes: Vec<u8>,
    /// Offset of the first variable.
    vars_start: usize,
    /// End of the variable store (exclusive).
    store_end: usize,
    /// Offset where the next variable goes (the first erased byte after the last record).
    free: usize,
    authenticated: bool,
    vars: Vec<Variable>,
}

impl VarStore {
    /// Parses an OVMF variable file (`OVMF_VARS.fd`, `OVMF_VARS_4M.fd`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming what is wrong and where: not a firmware volume, a
    /// bad checksum, block map or size, not an NV variable volume, an unformatted or unknown
    /// variable store, a variable record that runs past the store or has a malformed name,
    /// free space that is not erased, a damaged fault-tolerant-write working block.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let len = bytes.len();
        if len < FV_HEADER_LEN + 16 {
            return Err(bad(format!(
                "{len} bytes: too small for a firmware volume header"
            )));
        }
        if &bytes[0x28..0x2c] != b"_FVH" {
            return Err(bad(
                "no firmware volume signature \"_FVH\" at offset 0x28 (not an OVMF variable file)",
            ));
        }
        let fs = guid_at(&bytes, 0x10);
        if fs != NV_DATA_FV_GUID {
            return Err(bad(format!(
                "firmware volume file system {} is not EFI_SYSTEM_NV_DATA_FV_GUID {}",
                guid_text(&fs),
                guid_text(&NV_DATA_FV_GUID)
            )));
        }
        let fv_len = u64_at(&bytes, 0x20);
        if fv_len != len as u64 {
            return Err(bad(format!(
                "firmware volume length {fv_len} differs from the file's {len} bytes"
            )));
        }
        let hlen = usize::from(u16_at(&bytes, 0x30));
        if hlen < FV_HEADER_LEN + 16 || !hlen.is_multiple_of(8) || hlen + STORE_HEADER_LEN > len {
            return Err(bad(format!(
                "firmware volume header length {hlen} is out of range"
            )));
        }
        let sum = bytes[..hlen].chunks_exact(2).fold(0u16, |s, w| {
            s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        if sum != 0 {
            return Err(bad(format!(
                "firmware volume header checksum is wrong (its words sum to {sum:#06x}, not 0)"
            )));
        }
        if bytes[0x37] != 2 {
            return Err(bad(format!(
                "firmware volume revision {} (expected 2)",
                bytes[0x37]
            )));
        }
        // The block map: (NumBlocks, Length) pairs ending with (0, 0), covering the volume.
        let mut covered: u64 = 0;
        let mut off = FV_HEADER_LEN;
        loop {
            if off + 8 > hlen {
                return Err(bad("firmware volume block map has no (0, 0) terminator"));
            }
            let (n, l) = (u32_at(&bytes, off), u32_at(&bytes, off + 4));
            off += 8;
            if n == 0 && l == 0 {
                break;
            }
            covered = covered
                .checked_add(u64::from(n) * u64::from(l))
                .ok_or_else(|| bad("firmware volume block map overflows"))?;
        }
        if covered != fv_len {
            return Err(bad(format!(
                "firmware volume block map covers {covered} bytes, the volume has {fv_len}"
            )));
        }

        // The variable store header.
        let sh = hlen;
        let sig = guid_at(&bytes, sh);
        let authenticated = if sig == AUTHENTICATED_VARIABLE_GUID {
            true
        } else if sig == VARIABLE_GUID {
            false
        } else {
            return Err(bad(format!(
                "variable store signature {} at offset {sh:#x} is neither the authenticated \
                 ({}) nor the plain ({}) variable GUID",
                guid_text(&sig),
                guid_text(&AUTHENTICATED_VARIABLE_GUID),
                guid_text(&VARIABLE_GUID)
            )));
        };
        let size = u32_at(&bytes, sh + 16) as usize;
        let store_end = sh
            .checked_add(size)
            .filter(|e| *e <= len && size >= STORE_HEADER_LEN)
            .ok_or_else(|| {
                bad(format!(
                    "variable store size {size} at offset {sh:#x} runs past the {len}-byte file"
                ))
            })?;
        if bytes[sh + 20] != STORE_FORMATTED || bytes[sh + 21] != STORE_HEALTHY {
            return Err(bad(format!(
                "variable store format/state {:#04x}/{:#04x} (expected formatted 0x5a, healthy 0xfe)",
                bytes[sh + 20],
                bytes[sh + 21]
            )));
        }
        let vars_start = align4(sh + STORE_HEADER_LEN);
        let hdr_len = if authenticated {
            AUTH_VAR_HEADER_LEN
        } else {
            VAR_HEADER_LEN
        };

        // The variables: records until the first header without StartId.
        let mut vars = Vec::new();
        let mut off = vars_start;
        while off + hdr_len <= store_end && u16_at(&bytes, off) == START_ID {
            let (v, next) = parse_variable(&bytes, off, store_end, authenticated)?;
            vars.push(v);
            off = next;
        }
        let free = off.min(store_end);
        if let Some(i) = bytes[free..store_end].iter().position(|b| *b != 0xff) {
            return Err(bad(format!(
                "the free space after the last variable is not erased (byte {:#04x} at offset {:#x})",
                bytes[free + i],
                free + i
            )));
        }
        check_ftw(&bytes, store_end)?;
        Ok(Self {
            bytes,
            vars_start,
            store_end,
            free,
            authenticated,
            vars,
        })
    }

    /// Reads and parses a template file (at most [`MAX_TEMPLATE_SIZE`] bytes).
    ///
    /// # Errors
    /// [`ErrorKind::Io`] naming the file; [`ErrorKind::InvalidInput`] naming the file and what
    /// is malformed.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, "open", e))?;
        let mut bytes = Vec::new();
        f.take(MAX_TEMPLATE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, "read", e))?;
        if bytes.len() as u64 > MAX_TEMPLATE_SIZE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{}: larger than {} MiB: not an OVMF variable file",
                    path.display(),
                    MAX_TEMPLATE_SIZE >> 20
                ),
            )
            .with_path(path));
        }
        Self::parse(bytes).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, format!("{}: {e}", path.display())).with_path(path)
        })
    }

    /// An empty variable file of edk2's OVMF 4 MiB layout (`OVMF_VARS_4M.fd`: a 0x84000-byte
    /// volume of 4 KiB blocks, a 0x3FFB8-byte authenticated variable store, a 4 KiB event-log
    /// area, the 4 KiB fault-tolerant-write working block and its 0x42000-byte spare area), as
    /// the firmware build leaves it.
    #[must_use]
    pub fn empty_ovmf() -> Self {
        let mut b = vec![0xffu8; OVMF_4M_VARS_SIZE];
        // The firmware volume header.
        b[..0x10].fill(0);
        b[0x10..0x20].copy_from_slice(&NV_DATA_FV_GUID);
        b[0x20..0x28].copy_from_slice(&(OVMF_4M_VARS_SIZE as u64).to_le_bytes());
        b[0x28..0x2c].copy_from_slice(b"_FVH");
        b[0x2c..0x30].copy_from_slice(&0x0004_feffu32.to_le_bytes()); // EFI_FVB2 attributes
        b[0x30..0x32].copy_from_slice(&0x48u16.to_le_bytes());
        b[0x32..0x34].fill(0); // checksum, below
        b[0x34..0x37].fill(0); // ExtHeaderOffset, Reserved
        b[0x37] = 2;
        b[0x38..0x3c].copy_from_slice(&((OVMF_4M_VARS_SIZE / 0x1000) as u32).to_le_bytes());
        b[0x3c..0x40].copy_from_slice(&0x1000u32.to_le_bytes());
        b[0x40..0x48].fill(0);
        let sum = b[..0x48].chunks_exact(2).fold(0u16, |s, w| {
            s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        b[0x32..0x34].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
        // The variable store header: 0x40000 bytes of the volume minus its header.
        let store = 0x48;
        b[store..store + 16].copy_from_slice(&AUTHENTICATED_VARIABLE_GUID);
        b[store + 16..store + 20].copy_from_slice(&(0x40000u32 - 0x48).to_le_bytes());
        b[store + 20] = STORE_FORMATTED;
        b[store + 21] = STORE_HEALTHY;
        b[store + 22..store + 28].fill(0);
        // The fault-tolerant-write working block header at 0x41000.
        let w = 0x41000;
        b[w..w + 16].copy_from_slice(&FTW_WORKING_BLOCK_GUID);
        // WriteQueueSize: the 4 KiB block minus the header.
        b[w + 24..w + 32].copy_from_slice(&((0x1000 - FTW_HEADER_LEN) as u64).to_le_bytes());
        let crc = ftw_crc(&b[w..w + FTW_HEADER_LEN]);
        b[w + 16..w + 20].copy_from_slice(&crc.to_le_bytes());
        b[w + 20] = 0xfe; // WorkingBlockValid = 0, WorkingBlockInvalid = 1
        match Self::parse(b) {
            Ok(s) => s,
            // The bytes above are constants: a failure is a bug in this function.
            Err(e) => unreachable!("the built-in empty OVMF store does not parse: {e}"),
        }
    }

    /// The file's bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file's bytes, consuming the store.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// True when the store uses the authenticated variable header.
    #[must_use]
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Every record, deleted ones included, in store order.
    #[must_use]
    pub fn records(&self) -> &[Variable] {
        &self.vars
    }

    /// The live variables, in store order.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.vars.iter().filter(|v| v.is_live())
    }

    /// The live variable `name` of vendor `guid`.
    #[must_use]
    pub fn get(&self, name: &str, guid: &Guid) -> Option<&Variable> {
        // The last live copy wins (a record in deletion transition precedes its successor).
        self.variables()
            .filter(|v| v.name == name && v.guid == *guid)
            .last()
    }

    /// Bytes left for new records.
    #[must_use]
    pub fn free_space(&self) -> usize {
        self.store_end - self.free
    }

    /// Sets `name` (vendor `guid`) to `data` with `attributes`, as the firmware's
    /// `SetVariable` does: the live copy, if any, is marked deleted and a new record appended.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty name, time-authenticated attributes (they need
    /// a signed payload) or a record that does not fit in the free space.
    pub fn set(&mut self, name: &str, guid: &Guid, attributes: u32, data: &[u8]) -> Result<()> {
        if name.is_empty() || name.contains('\0') {
            return Err(bad(format!("variable name {name:?} is empty or has a NUL")));
        }
        if attributes & ATTR_TIME_BASED_AUTH != 0 {
            return Err(bad(format!(
                "{name}: time-based authenticated variables need a signed update"
            )));
        }
        let name16: Vec<u8> = name
            .encode_utf16()
            .chain(std::iter::once(0))
            .flat_map(u16::to_le_bytes)
            .collect();
        let hdr_len = if self.authenticated {
            AUTH_VAR_HEADER_LEN
        } else {
            VAR_HEADER_LEN
        };
        let total = hdr_len + name16.len() + data.len();
        let end = self
            .free
            .checked_add(total)
            .filter(|e| *e <= self.store_end)
            .ok_or_else(|| {
                bad(format!(
                    "{name}: a {total}-byte record does not fit in the {} free bytes",
                    self.free_space()
                ))
            })?;
        let (Ok(name_size), Ok(data_size)) =
            (u32::try_from(name16.len()), u32::try_from(data.len()))
        else {
            return Err(bad(format!("{name}: too large")));
        };
        for v in &mut self.vars {
            if v.is_live() && v.name == name && v.guid == *guid {
                v.state = VAR_DELETED_STATE;
                self.bytes[v.offset + 2] = VAR_DELETED_STATE;
            }
        }
        let off = self.free;
        let b = &mut self.bytes[off..end];
        b[0..2].copy_from_slice(&START_ID.to_le_bytes());
        b[2] = VAR_ADDED;
        b[3] = 0;
        b[4..8].copy_from_slice(&attributes.to_le_bytes());
        let mut p = 8;
        if self.authenticated {
            b[p..p + 28].fill(0); // MonotonicCount, TimeStamp, PubKeyIndex
            p += 28;
        }
        b[p..p + 4].copy_from_slice(&name_size.to_le_bytes());
        b[p + 4..p + 8].copy_from_slice(&data_size.to_le_bytes());
        b[p + 8..p + 24].copy_from_slice(guid);
        p += 24;
        b[p..p + name16.len()].copy_from_slice(&name16);
        p += name16.len();
        b[p..p + data.len()].copy_from_slice(data);
        self.vars.push(Variable {
            name: name.to_string(),
            guid: *guid,
            attributes,
            state: VAR_ADDED,
            data: data.to_vec(),
            auth: self.authenticated.then_some(([0; 8], [0; 16], 0)),
            offset: off,
        });
        self.free = align4(end).min(self.store_end);
        Ok(())
    }

    /// The offset of the first variable record.
    #[must_use]
    pub fn variables_offset(&self) -> usize {
        self.vars_start
    }
}

fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// One record at `off` (its StartId checked by the caller); returns it and the next offset.
fn parse_variable(
    b: &[u8],
    off: usize,
    end: usize,
    authenticated: bool,
) -> Result<(Variable, usize)> {
    let state = b[off + 2];
    let attributes = u32_at(b, off + 4);
    let (auth, p) = if authenticated {
        let mut mc = [0u8; 8];
        mc.copy_from_slice(&b[off + 8..off + 16]);
        let mut ts = [0u8; 16];
        ts.copy_from_slice(&b[off + 16..off + 32]);
        (Some((mc, ts, u32_at(b, off + 32))), off + 36)
    } else {
        (None, off + 8)
    };
    let name_size = u32_at(b, p) as usize;
    let data_size = u32_at(b, p + 4) as usize;
    let guid = guid_at(b, p + 8);
    let name_at = p + 24;
    let data_at = name_at
        .checked_add(name_size)
        .filter(|x| *x <= end)
        .ok_or_else(|| {
            bad(format!(
                "variable at offset {off:#x}: name size {name_size} runs past the store"
            ))
        })?;
    let data_end = data_at
        .checked_add(data_size)
        .filter(|x| *x <= end)
        .ok_or_else(|| {
            bad(format!(
                "variable at offset {off:#x}: data size {data_size} runs past the store"
            ))
        })?;
    if name_size < 2 || !name_size.is_multiple_of(2) {
        return Err(bad(format!(
            "variable at offset {off:#x}: name size {name_size} is not a UTF-16 string with its NUL"
        )));
    }
    let units: Vec<u16> = b[name_at..data_at]
        .chunks_exact(2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .collect();
    let Some((0, body)) = units.split_last() else {
        return Err(bad(format!(
            "variable at offset {off:#x}: name is not NUL-terminated"
        )));
    };
    if body.contains(&0) {
        return Err(bad(format!(
            "variable at offset {off:#x}: name has a NUL inside"
        )));
    }
    let name = String::from_utf16(body).map_err(|_| {
        bad(format!(
            "variable at offset {off:#x}: name is not valid UTF-16"
        ))
    })?;
    let v = Variable {
        name,
        guid,
        attributes,
        state,
        data: b[data_at..data_end].to_vec(),
        auth,
        offset: off,
    };
    Ok((v, align4(data_end)))
}

/// The working block's CRC: CRC32 of its header with the CRC and state fields erased.
fn ftw_crc(header: &[u8]) -> u32 {
    let mut h = [0u8; FTW_HEADER_LEN];
    h.copy_from_slice(&header[..FTW_HEADER_LEN]);
    h[16..21].fill(0xff);
    crc32fast::hash(&h)
}

/// Checks the fault-tolerant-write working block if it follows the store (at its end or one
/// 4 KiB event-log block later, as OVMF places it).
fn check_ftw(b: &[u8], store_end: usize) -> Result<()> {
    for at in [store_end, store_end.saturating_add(0x1000)] {
        if at.checked_add(FTW_HEADER_LEN).is_none_or(|e| e > b.len()) {
            continue;
        }
        if guid_at(b, at) != FTW_WORKING_BLOCK_GUID {
            continue;
        }
        let stored = u32_at(b, at + 16);
        let want = ftw_crc(&b[at..at + FTW_HEADER_LEN]);
        if stored != want {
            return Err(bad(format!(
                "fault-tolerant-write working block at offset {at:#x}: CRC {stored:#010x}, \
                 expected {want:#010x}"
            )));
        }
        return Ok(());
    }
    Ok(())
}

/// Where a loader lives: a GPT partition and a path on its filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardDrive {
    /// The partition number (1-based).
    pub number: u32,
    /// The first sector (512-byte LBA).
    pub start_lba: u64,
    /// The size in sectors.
    pub size_lba: u64,
    /// The partition's unique GUID (on-disk bytes).
    pub guid: Guid,
}

/// An `EFI_LOAD_OPTION` of the kind bootctl and efibootmgr write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOption {
    /// `LOAD_OPTION_*` attributes.
    pub attributes: u32,
    /// The description the firmware's boot menu shows.
    pub description: String,
    /// The partition (`HD()` node).
    pub partition: HardDrive,
    /// The loader's path on it, `\`-separated (`\EFI\systemd\systemd-bootx64.efi`).
    pub path: String,
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

impl LoadOption {
    /// The variable's bytes: attributes, `FilePathListLength`, the description (UTF-16, NUL),
    /// `HD(number, start, size, GUID, GPT, GUID signature)`, `File(path)`, End.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the path is too long for a device-path node.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let path = utf16z(&self.path.replace('/', "\\"));
        let file_len = u16::try_from(4 + path.len())
            .map_err(|_| bad(format!("loader path {:?} is too long", self.path)))?;
        let list_len = 42 + file_len + 4;
        let mut v = Vec::new();
        v.extend_from_slice(&self.attributes.to_le_bytes());
        v.extend_from_slice(&list_len.to_le_bytes());
        v.extend_from_slice(&utf16z(&self.description));
        // MEDIA_DEVICE_PATH / MEDIA_HARDDRIVE_DP
        v.extend_from_slice(&[4, 1]);
        v.extend_from_slice(&42u16.to_le_bytes());
        v.extend_from_slice(&self.partition.number.to_le_bytes());
        v.extend_from_slice(&self.partition.start_lba.to_le_bytes());
        v.extend_from_slice(&self.partition.size_lba.to_le_bytes());
        v.extend_from_slice(&self.partition.guid);
        v.push(2); // MBR_TYPE_EFI_PARTITION_TABLE_HEADER
        v.push(2); // SIGNATURE_TYPE_GUID
        // MEDIA_DEVICE_PATH / MEDIA_FILEPATH_DP
        v.extend_from_slice(&[4, 4]);
        v.extend_from_slice(&file_len.to_le_bytes());
        v.extend_from_slice(&path);
        // END_DEVICE_PATH_TYPE / END_ENTIRE_DEVICE_PATH_SUBTYPE
        v.extend_from_slice(&[0x7f, 0xff, 4, 0]);
        Ok(v)
    }

    /// Reads a load option of this shape (`HD()/File()/End`); `None` for any other (a
    /// firmware's own entries, network boot, …) or malformed bytes.
    #[must_use]
    pub fn decode(data: &[u8]) -> Option<Self> {
        let attributes = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
        let list_len = usize::from(u16::from_le_bytes(data.get(4..6)?.try_into().ok()?));
        let mut units = Vec::new();
        let mut p = 6;
        loop {
            let u = u16::from_le_bytes(data.get(p..p + 2)?.try_into().ok()?);
            p += 2;
            if u == 0 {
                break;
            }
            units.push(u);
        }
        let description = String::from_utf16(&units).ok()?;
        let list = data.get(p..p.checked_add(list_len)?)?;
        let hd = list.get(0..42)?;
        if hd[0..4] != [4, 1, 42, 0] || hd[40] != 2 || hd[41] != 2 {
            return None;
        }
        let partition = HardDrive {
            number: u32::from_le_bytes(hd[4..8].try_into().ok()?),
            start_lba: u64::from_le_bytes(hd[8..16].try_into().ok()?),
            size_lba: u64::from_le_bytes(hd[16..24].try_into().ok()?),
            guid: hd[24..40].try_into().ok()?,
        };
        let file = list.get(42..)?;
        if file.get(0..2)? != [4, 4] {
            return None;
        }
        let flen = usize::from(u16::from_le_bytes(file.get(2..4)?.try_into().ok()?));
        let name = file.get(4..flen)?;
        let units: Vec<u16> = name
            .chunks_exact(2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .take_while(|u| *u != 0)
            .collect();
        let path = String::from_utf16(&units).ok()?;
        if file.get(flen..flen + 4)? != [0x7f, 0xff, 4, 0] {
            return None;
        }
        Some(Self {
            attributes,
            description,
            partition,
            path,
        })
    }
}

/// Registers `option` as `bootctl install` does: the `Boot####` already pointing at the same
/// partition GUID and path (case-insensitively) is rewritten, else the lowest unused number is
/// taken; the number is moved or added to the front of `BootOrder`. Returns the number.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] when the store is full, has all 65535 numbers in use, or holds a
/// `BootOrder` of odd length.
pub fn add_boot_entry(store: &mut VarStore, option: &LoadOption) -> Result<u16> {
    let mut numbers: Vec<u16> = store
        .variables()
        .filter(|v| v.guid == GLOBAL_VARIABLE_GUID)
        .filter_map(|v| boot_number(&v.name))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let same = numbers.iter().copied().find(|n| {
        store
            .get(&format!("Boot{n:04X}"), &GLOBAL_VARIABLE_GUID)
            .and_then(|v| LoadOption::decode(&v.data))
            .is_some_and(|o| {
                o.partition.guid == option.partition.guid
                    && o.path.eq_ignore_ascii_case(&option.path.replace('/', "\\"))
            })
    });
    let slot = match same {
        Some(n) => n,
        None => {
            // The first gap in the sorted numbers, else the next one (bootctl's find_slot).
            let gap = numbers
                .iter()
                .enumerate()
                .find(|(i, n)| usize::from(**n) != *i)
                .map(|(i, _)| i);
            let i = gap.unwrap_or(numbers.len());
            u16::try_from(i)
                .ok()
                .filter(|n| *n != u16::MAX)
                .ok_or_else(|| bad("every Boot#### number is in use"))?
        }
    };
    store.set(
        &format!("Boot{slot:04X}"),
        &GLOBAL_VARIABLE_GUID,
        ATTR_NV_BS_RT,
        &option.encode()?,
    )?;
    let mut order: Vec<u16> = match store.get("BootOrder", &GLOBAL_VARIABLE_GUID) {
        Some(v) if !v.data.len().is_multiple_of(2) => {
            return Err(bad(format!(
                "BootOrder has {} bytes, not a list of 16-bit numbers",
                v.data.len()
            )));
        }
        Some(v) => v
            .data
            .chunks_exact(2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .collect(),
        None => Vec::new(),
    };
    if order.first() != Some(&slot) {
        if let Some(i) = order.iter().position(|n| *n == slot) {
            order.remove(i);
        }
        order.insert(0, slot);
        let data: Vec<u8> = order.iter().flat_map(|n| n.to_le_bytes()).collect();
        store.set("BootOrder", &GLOBAL_VARIABLE_GUID, ATTR_NV_BS_RT, &data)?;
    }
    Ok(slot)
}

/// `Boot####` (four upper- or lower-case hex digits) → its number.
fn boot_number(name: &str) -> Option<u16> {
    let hex = name.strip_prefix("Boot")?;
    if hex.len() != 4 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

    fn debian() -> Option<Vec<u8>> {
        match std::fs::read(DEBIAN_4M) {
            Ok(b) => Some(b),
            Err(_) => {
                eprintln!("skipped: {DEBIAN_4M} missing (apt-get install ovmf)");
                None
            }
        }
    }

    fn option() -> LoadOption {
        LoadOption {
            attributes: LOAD_OPTION_ACTIVE,
            description: SYSTEMD_BOOT_DESCRIPTION.into(),
            partition: HardDrive {
                number: 1,
                start_lba: 2048,
                size_lba: 524_288,
                guid: guid(
                    0x1c06_f03b,
                    0x704e,
                    0x4657,
                    [0xb9, 0xcd, 0x68, 0x1a, 0x08, 0x7a, 0x2f, 0xdc],
                ),
            },
            path: "/EFI/systemd/systemd-bootx64.efi".into(),
        }
    }

    #[test]
    fn test_the_built_in_empty_store_is_debians_ovmf_vars_4m_byte_for_byte() {
        let Some(b) = debian() else { return };
        assert!(VarStore::empty_ovmf().bytes() == b.as_slice());
    }

    #[test]
    fn test_debians_templates_parse() {
        for f in [
            DEBIAN_4M,
            "/usr/share/OVMF/OVMF_VARS.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
        ] {
            let Ok(b) = std::fs::read(f) else {
                eprintln!("skipped: {f} missing");
                continue;
            };
            let s = VarStore::parse(b.clone()).unwrap();
            assert!(s.is_authenticated(), "{f}");
            assert_eq!(s.bytes(), b.as_slice(), "{f}");
            if f.ends_with("ms.fd") {
                // The Microsoft-enrolled store holds PK, KEK, db, dbx (time-authenticated).
                let names: Vec<&str> = s.variables().map(|v| v.name.as_str()).collect();
                for n in ["PK", "KEK", "db", "dbx"] {
                    assert!(names.contains(&n), "{f}: {names:?}");
                }
            } else {
                assert_eq!(s.variables().count(), 0, "{f}");
            }
        }
    }

    #[test]
    fn test_set_appends_and_replaces_then_reparses_identically() {
        let mut s = VarStore::empty_ovmf();
        let free = s.free_space();
        s.set("Foo", &GLOBAL_VARIABLE_GUID, ATTR_NV_BS_RT, b"abc")
            .unwrap();
        // 60-byte header + "Foo\0" (8) + 3 bytes, aligned to 4.
        assert_eq!(free - s.free_space(), 72);
        s.set("Foo", &GLOBAL_VARIABLE_GUID, ATTR_NV_BS_RT, b"defg")
            .unwrap();
        let again = VarStore::parse(s.bytes().to_vec()).unwrap();
        assert_eq!(again, s);
        assert_eq!(again.records().len(), 2);
        assert_eq!(again.records()[0].state, VAR_DELETED_STATE);
        assert_eq!(
            again.get("Foo", &GLOBAL_VARIABLE_GUID).unwrap().data,
            b"defg"
        );
        assert_eq!(again.variables().count(), 1);
    }

    #[test]
    fn test_add_boot_entry_is_bootctls_slot_and_order() {
        let mut s = VarStore::empty_ovmf();
        assert_eq!(add_boot_entry(&mut s, &option()).unwrap(), 0);
        let order = &s.get("BootOrder", &GLOBAL_VARIABLE_GUID).unwrap().data;
        assert_eq!(order, &[0, 0]);
        let v = s.get("Boot0000", &GLOBAL_VARIABLE_GUID).unwrap();
        assert_eq!(v.attributes, ATTR_NV_BS_RT);
        let mut want = option();
        want.path = "\\EFI\\systemd\\systemd-bootx64.efi".into();
        assert_eq!(LoadOption::decode(&v.data), Some(want));
        // Again: the same entry is reused, nothing else changes in the order.
        assert_eq!(add_boot_entry(&mut s, &option()).unwrap(), 0);
        assert_eq!(s.variables().count(), 2);
        // Another loader takes the next number and goes first.
        let mut other = option();
        other.path = "/EFI/other.efi".into();
        assert_eq!(add_boot_entry(&mut s, &other).unwrap(), 1);
        let order = &s.get("BootOrder", &GLOBAL_VARIABLE_GUID).unwrap().data;
        assert_eq!(order, &[1, 0, 0, 0]);
    }

    #[test]
    fn test_load_option_bytes() {
        let b = option().encode().unwrap();
        // attributes, FilePathListLength = 42 (HD) + 4 + 66 (32 UTF-16 units + NUL) + 4
        assert_eq!(&b[..6], &[1, 0, 0, 0, 116, 0]);
        assert_eq!(b.len(), 6 + 38 + 116);
        assert_eq!(&b[b.len() - 4..], &[0x7f, 0xff, 4, 0]);
    }

    #[test]
    fn test_malformed_stores_are_refused_by_what_is_wrong() {
        let good = VarStore::empty_ovmf().into_bytes();
        let mut with_var = VarStore::empty_ovmf();
        with_var
            .set("Foo", &GLOBAL_VARIABLE_GUID, ATTR_NV_BS_RT, b"abc")
            .unwrap();
        let with_var = with_var.into_bytes();
        type Damage = fn(&mut Vec<u8>);
        let cases: &[(Damage, &str)] = &[
            (|b| b.truncate(40), "too small"),
            (|b| b[0x28] = b'X', "_FVH"),
            (|b| b[0x10] ^= 1, "EFI_SYSTEM_NV_DATA_FV_GUID"),
            (|b| b.truncate(0x80000), "length"),
            (|b| b[0x2c] ^= 1, "checksum"),
            (|b| b[0x30] = 0x30, "header length"),
            (|b| b[0x48] ^= 1, "signature"),
            (|b| b[0x48 + 19] = 0x7f, "runs past"),
            (|b| b[0x48 + 20] = 0xff, "format"),
            (|b| b[0x1000] = 0, "not erased"),
            (|b| b[0x41000 + 24] = 0, "CRC"),
            (|b| b[0x64 + 39] = 0x7f, "name size"),
            (|b| b[0x64 + 43] = 0x7f, "data size"),
            (|b| b[0x64 + 36] = 3, "UTF-16"),
            (|b| b[0x64 + 60 + 6] = 1, "NUL"),
        ];
        for (damage, want) in cases {
            let mut b = with_var.clone();
            damage(&mut b);
            let e = VarStore::parse(b).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        assert!(VarStore::parse(good).is_ok());
    }

    #[test]
    fn test_a_full_store_refuses_a_record() {
        let mut s = VarStore::empty_ovmf();
        let big = vec![0u8; s.free_space()];
        let e = s
            .set("Big", &GLOBAL_VARIABLE_GUID, ATTR_NV_BS_RT, &big)
            .unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    #[test]
    fn test_guid_text() {
        assert_eq!(
            guid_text(&GLOBAL_VARIABLE_GUID),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c"
        );
    }
}
