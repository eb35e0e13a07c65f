//! GRUB's own `grub-mkimage` as the oracle for natively assembled GRUB images.

use std::path::Path;

use crate::tools::GRUB_MKIMAGE;
use crate::{Error, ErrorKind, Result, run};

/// What `grub-mkimage -O <format> -d <moddir> [-p <prefix>] [-c <config>] <modules>` writes.
/// The early config is written to a temporary file; the image is read back (grub-mkimage
/// fsyncs its output, so it cannot write to a pipe).
///
/// # Errors
/// `ToolMissing` without grub-mkimage; `ToolFailed` when it fails (with its output).
pub fn mkimage(
    format: &str,
    moddir: &Path,
    prefix: Option<&str>,
    config: Option<&[u8]>,
    modules: &[&str],
) -> Result<Vec<u8>> {
    let tmp = tempfile::tempdir()
        .map_err(|e| Error::new(ErrorKind::ToolFailed, "tempdir", e.to_string()))?;
    let out = tmp.path().join("image");
    let cfg = tmp.path().join("load.cfg");
    let mut args: Vec<std::ffi::OsString> = vec![
        "-O".into(),
        format.into(),
        "-d".into(),
        moddir.into(),
        "-o".into(),
        (&out).into(),
    ];
    if let Some(p) = prefix {
        args.extend(["-p".into(), p.into()]);
    }
    if let Some(c) = config {
        std::fs::write(&cfg, c)
            .map_err(|e| Error::new(ErrorKind::ToolFailed, "write load.cfg", e.to_string()))?;
        args.extend(["-c".into(), (&cfg).into()]);
    }
    args.extend(modules.iter().map(Into::into));
    let o = run(GRUB_MKIMAGE, &args, &[])?;
    if !o.status.success() {
        return Err(o.failed("grub-mkimage failed"));
    }
    std::fs::read(&out).map_err(|e| Error::new(ErrorKind::ToolFailed, &o.command, e.to_string()))
}
