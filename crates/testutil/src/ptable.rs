//! Partition-table oracles: `sfdisk --json` (parsed), `sfdisk --dump`, `sgdisk -v`.

use serde::Deserialize;

use crate::tools::{SFDISK, SGDISK};
use crate::{Error, ErrorKind, Output, Result, Target, run};

/// A partition table as `sfdisk --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Table {
    /// `dos` or `gpt`.
    pub label: String,
    /// Disk identifier: `0x1234abcd` (dos) or a GUID (gpt).
    #[serde(default)]
    pub id: Option<String>,
    /// The device name sfdisk was given.
    pub device: String,
    /// `sectors`.
    pub unit: String,
    /// First usable LBA (gpt).
    #[serde(default)]
    pub firstlba: Option<u64>,
    /// Last usable LBA (gpt).
    #[serde(default)]
    pub lastlba: Option<u64>,
    /// Sector size in bytes.
    #[serde(default)]
    pub sectorsize: Option<u64>,
    /// The partitions in table order.
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

/// One partition of [`Table`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Partition {
    /// Device node name (`image1`, ...).
    pub node: String,
    /// First sector.
    pub start: u64,
    /// Size in sectors.
    pub size: u64,
    /// Type: an MBR byte in hex (`83`, `ef`) or a GPT type GUID (upper case).
    #[serde(rename = "type")]
    pub kind: String,
    /// Unique partition GUID (gpt).
    #[serde(default)]
    pub uuid: Option<String>,
    /// Partition name (gpt).
    #[serde(default)]
    pub name: Option<String>,
    /// Attribute string (gpt), e.g. `RequiredPartition LegacyBIOSBootable`.
    #[serde(default)]
    pub attrs: Option<String>,
    /// Active flag (dos).
    #[serde(default)]
    pub bootable: bool,
}

impl Table {
    /// The byte range `(offset, len)` of partition `index` (0-based), for a [`Target`].
    ///
    /// # Errors
    /// `InvalidInput` when there is no such partition; `Overflow`-free checked arithmetic.
    pub fn byte_range(&self, index: usize) -> Result<(u64, u64)> {
        let p = self.partitions.get(index).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                &self.device,
                format!(
                    "no partition {index} ({} partitions)",
                    self.partitions.len()
                ),
            )
        })?;
        let ss = self.sectorsize.unwrap_or(512);
        match (p.start.checked_mul(ss), p.size.checked_mul(ss)) {
            (Some(o), Some(l)) => Ok((o, l)),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                &self.device,
                "partition range overflows",
            )),
        }
    }
}

#[derive(Deserialize)]
struct Wrapper {
    partitiontable: Table,
}

/// Parses `sfdisk --json` output.
///
/// # Errors
/// `Parse` with the JSON error.
pub fn parse_json(text: &str) -> Result<Table> {
    serde_json::from_str::<Wrapper>(text)
        .map(|w| w.partitiontable)
        .map_err(|e| Error::new(ErrorKind::Parse, "sfdisk --json", format!("{e}\n{text}")))
}

/// Reads the partition table with `sfdisk --json`. Fails when sfdisk finds no table or warns
/// (GPT header problems are printed on stderr).
///
/// # Errors
/// `Finding` with sfdisk's output; `Parse`; `ToolMissing`.
pub fn read(t: &Target<'_>) -> Result<Table> {
    let m = t.materialize()?;
    let out = run(
        SFDISK,
        &[std::ffi::OsStr::new("--json"), m.path().as_os_str()],
        &[],
    )?;
    if out.code() != Some(0) {
        return Err(out.finding("sfdisk --json failed"));
    }
    if !out.stderr.trim().is_empty() {
        return Err(out.finding("sfdisk warned"));
    }
    parse_json(&out.stdout)
}

/// `sfdisk --dump`, as text (for golden comparisons); the device name is replaced by `IMAGE`.
///
/// # Errors
/// `Finding` with sfdisk's output; `ToolMissing`.
pub fn dump(t: &Target<'_>) -> Result<String> {
    let m = t.materialize()?;
    let out = run(
        SFDISK,
        &[std::ffi::OsStr::new("--dump"), m.path().as_os_str()],
        &[],
    )?;
    if out.code() != Some(0) {
        return Err(out.finding("sfdisk --dump failed"));
    }
    Ok(out.stdout.replace(&*m.path().to_string_lossy(), "IMAGE"))
}

/// Runs `sgdisk -v` (GPT headers, CRCs, backup, overlaps) and succeeds only when it says
/// "No problems found" and mentions no CRC, corruption or "Caution". Its advisory about a gap
/// before the first usable LBA (sfdisk's first-lba 2048) is not a problem.
///
/// # Errors
/// `Finding` with sgdisk's output; `ToolMissing`.
pub fn sgdisk_verify(t: &Target<'_>) -> Result<Output> {
    let m = t.materialize()?;
    let out = run(
        SGDISK,
        &[std::ffi::OsStr::new("-v"), m.path().as_os_str()],
        &[],
    )?;
    let text = format!("{}{}", out.stdout, out.stderr);
    if out.code() != Some(0) || !text.contains("No problems found") {
        return Err(out.finding("sgdisk -v found problems"));
    }
    let suspicious = ["Caution", "corrupt", "Problem:", "CRC", "ERROR"];
    if let Some(l) = text
        .lines()
        .find(|l| suspicious.iter().any(|s| l.contains(s)))
    {
        return Err(out.finding(&format!("sgdisk -v warned: {l:?}")));
    }
    Ok(out)
}

/// Panics with sgdisk's output unless [`sgdisk_verify`] is clean.
///
/// # Panics
/// On any finding or error.
pub fn assert_gpt_clean(t: &Target<'_>) {
    if let Err(e) = sgdisk_verify(t) {
        panic!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gpt_json() {
        let t = parse_json(
            r#"{"partitiontable": {"label":"gpt","id":"A1B2C3D4-0000-4000-8000-000000000001",
            "device":"disk.img","unit":"sectors","firstlba":34,"lastlba":65502,"sectorsize":512,
            "partitions":[{"node":"disk.img1","start":2048,"size":4096,
            "type":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B","uuid":"11111111-2222-4333-8444-555555555555",
            "name":"ESP","attrs":"RequiredPartition"}]}}"#,
        )
        .unwrap();
        assert_eq!(t.label, "gpt");
        assert_eq!(t.partitions[0].name.as_deref(), Some("ESP"));
        assert_eq!(t.byte_range(0).unwrap(), (2048 * 512, 4096 * 512));
        assert!(t.byte_range(1).is_err());
        assert_eq!(parse_json("{}").unwrap_err().kind(), ErrorKind::Parse);
    }
}
