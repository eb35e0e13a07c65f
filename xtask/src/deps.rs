//! Installs the Debian packages that the oracle tests, the boot tests and the fixture need.
//!
//! On a fresh Debian 12 machine as root this enables bookworm-backports (qemu-system-x86 must
//! match the machine's qemu-utils 10 from backports) and installs what is missing. Elsewhere it
//! prints what is missing and leaves the tests to skip (locally) or fail (in CI).

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use imagetool_testutil::Tool;
use imagetool_testutil::tools::{ALL, FROM_BACKPORTS};

/// Tool → Debian package, and whether it comes from bookworm-backports: from the oracle
/// kit's list (`imagetool_testutil::tools::ALL`), the one place a tool's package is named.
fn tools() -> Vec<(Tool, bool)> {
    ALL.iter()
        .map(|t| (*t, FROM_BACKPORTS.contains(&t.package)))
        .collect()
}

const BACKPORTS: &str = "/etc/apt/sources.list.d/imagetool-backports.sources";

/// Installs every missing package, or explains what is missing when that is not possible.
pub fn ensure_all() -> Result<()> {
    ensure_foreign_arch("arm64")?;
    let mut missing: Vec<(&str, bool)> = tools()
        .into_iter()
        .filter(|(tool, _)| tool.find().is_none())
        .map(|(tool, bp)| (tool.package, bp))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    if !imagetool_testutil::is_root() || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "xtask: missing oracle tools (tests needing them will skip locally, fail in CI): \
             apt-get install {}",
            names.join(" ")
        );
        return Ok(());
    }
    let needs_backports = missing.iter().any(|(_, bp)| *bp);
    if needs_backports && !Path::new(BACKPORTS).exists() {
        std::fs::write(
            BACKPORTS,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )?;
    }
    // The aarch64 fixture downloads Debian's arm64 packages (never installs them).
    crate::run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
    crate::run(Command::new("apt-get").args(["update", "-qq"]))?;
    let plain: Vec<&str> = missing
        .iter()
        .filter(|(_, bp)| !bp)
        .map(|(p, _)| *p)
        .collect();
    if !plain.is_empty() {
        crate::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&plain),
        )?;
    }
    if needs_backports {
        let backported: Vec<&str> = missing
            .iter()
            .filter(|(_, bp)| *bp)
            .map(|(p, _)| *p)
            .collect();
        crate::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-qq", "--no-install-recommends", "-t"])
                .arg("bookworm-backports")
                .args(&backported)
                .args(["qemu-system-common", "qemu-system-data"]),
        )?;
    }
    let still: Vec<&str> = tools()
        .into_iter()
        .filter(|(tool, _)| tool.find().is_none())
        .map(|(tool, _)| tool.package)
        .collect();
    if !still.is_empty() {
        bail!(
            "packages still missing after apt-get install: {}",
            still.join(" ")
        );
    }
    Ok(())
}

/// Lets `apt-get download PKG:<arch>` fetch another architecture's packages (GRUB's arm64-efi
/// modules for the native grub-mkimage tests; they are unpacked, never installed or run).
fn ensure_foreign_arch(arch: &str) -> Result<()> {
    let out = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output();
    let Ok(out) = out else { return Ok(()) };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == arch)
    {
        return Ok(());
    }
    if !imagetool_testutil::is_root() {
        eprintln!(
            "xtask: tests fetching {arch} packages need: dpkg --add-architecture {arch} && apt-get update"
        );
        return Ok(());
    }
    crate::run(Command::new("dpkg").args(["--add-architecture", arch]))?;
    crate::run(Command::new("apt-get").args(["update", "-qq"]))?;
    Ok(())
}
