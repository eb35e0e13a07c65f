//! Container-format oracles: `qemu-img check`, `info --output=json`, `compare`.

use std::path::Path;

use serde::Deserialize;

use crate::tools::QEMU_IMG;
use crate::{Error, ErrorKind, Output, Result, run};

/// Exit code of `qemu-img check` for a format without consistency checks (raw, vpc).
const CHECK_UNSUPPORTED: i32 = 63;

/// Runs `qemu-img check -f <format>`. `Ok(Some(output))` when clean, `Ok(None)` when the format
/// has no checks (raw, vpc).
///
/// # Errors
/// `Finding` on corruptions (exit 2), leaks (exit 3) or any other failure, with the output.
pub fn check(image: &Path, format: &str) -> Result<Option<Output>> {
    let out = run(
        QEMU_IMG,
        &[
            "check".as_ref(),
            "-f".as_ref(),
            format.as_ref(),
            image.as_os_str(),
        ],
        &[],
    )?;
    match out.code() {
        Some(0) => Ok(Some(out)),
        Some(CHECK_UNSUPPORTED) => Ok(None),
        Some(2) => Err(out.finding("qemu-img check: corruptions")),
        Some(3) => Err(out.finding("qemu-img check: leaked clusters")),
        _ => Err(out.finding("qemu-img check failed")),
    }
}

/// Panics with qemu-img's output unless [`check`] is clean (or the format has no checks).
///
/// # Panics
/// On any finding or error.
pub fn assert_check_clean(image: &Path, format: &str) {
    if let Err(e) = check(image, format) {
        panic!("{e}");
    }
}

/// The parts of `qemu-img info --output=json` the tests use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Info {
    /// The detected (or given) format.
    pub format: String,
    /// The guest-visible disk size in bytes.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// Bytes allocated on the host.
    #[serde(rename = "actual-size", default)]
    pub actual_size: Option<u64>,
    /// Cluster size, for clustered formats.
    #[serde(rename = "cluster-size", default)]
    pub cluster_size: Option<u64>,
    /// Whether the image is marked dirty.
    #[serde(rename = "dirty-flag", default)]
    pub dirty_flag: Option<bool>,
    /// Format-specific details, unparsed.
    #[serde(rename = "format-specific", default)]
    pub format_specific: Option<serde_json::Value>,
}

/// Runs `qemu-img info --output=json` (with `-f format` when given, else qemu probes).
///
/// # Errors
/// `Finding` when qemu-img cannot open the image; `Parse` on unexpected JSON.
pub fn info(image: &Path, format: Option<&str>) -> Result<Info> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["info".as_ref(), "--output=json".as_ref()];
    if let Some(f) = format {
        args.push("-f".as_ref());
        args.push(f.as_ref());
    }
    args.push(image.as_os_str());
    let out = run(QEMU_IMG, &args, &[])?;
    if out.code() != Some(0) {
        return Err(out.finding("qemu-img info failed"));
    }
    serde_json::from_str(&out.stdout).map_err(|e| {
        Error::new(
            ErrorKind::Parse,
            &out.command,
            format!("{e}\n{}", out.stdout),
        )
    })
}

/// Compares two images' virtual sizes (`qemu-img info`) and then their contents with
/// `qemu-img compare` (not `-s`: strict mode also compares allocation, and a hole equals
/// zeros here).
///
/// # Errors
/// `Mismatch` when sizes or contents differ (with qemu-img's first differing offset);
/// `Finding` when qemu-img fails to read either.
pub fn compare(a: &Path, a_format: &str, b: &Path, b_format: &str) -> Result<Output> {
    let (sa, sb) = (
        info(a, Some(a_format))?.virtual_size,
        info(b, Some(b_format))?.virtual_size,
    );
    if sa != sb {
        return Err(Error::new(
            ErrorKind::Mismatch,
            format!("qemu-img compare {} {}", a.display(), b.display()),
            format!("virtual sizes differ: {sa} vs {sb} bytes"),
        ));
    }
    let out = run(
        QEMU_IMG,
        &[
            "compare".as_ref(),
            "-f".as_ref(),
            a_format.as_ref(),
            "-F".as_ref(),
            b_format.as_ref(),
            a.as_os_str(),
            b.as_os_str(),
        ],
        &[],
    )?;
    match out.code() {
        Some(0) => Ok(out),
        Some(1) => Err(Error::new(
            ErrorKind::Mismatch,
            &out.command,
            format!("images differ\n{out}"),
        )),
        _ => Err(out.finding("qemu-img compare failed")),
    }
}

/// Panics with qemu-img's output unless the two images have identical contents.
///
/// # Panics
/// On any difference or error.
pub fn assert_identical(a: &Path, a_format: &str, b: &Path, b_format: &str) {
    if let Err(e) = compare(a, a_format, b, b_format) {
        panic!("{e}");
    }
}
