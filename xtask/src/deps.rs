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
/// Debian 13 for riscv64 packages only (Debian 12 has no riscv64 port): the riscv64 fixture's
/// kernel, busybox, systemd-boot and GRUB, and the riscv64 EDK II firmware.
const TRIXIE_RISCV64: &str = "/etc/apt/sources.list.d/imagetool-trixie-riscv64.sources";
/// Pinned to priority 1: trixie is never a candidate where Debian 12 has a version.
const TRIXIE_PIN: &str = "/etc/apt/preferences.d/imagetool-trixie";

/// Installs every missing package, or explains what is missing when that is not possible.
pub fn ensure_all() -> Result<()> {
    ensure_trixie_riscv64()?;
    ensure_foreign_arch("arm64")?;
    ensure_foreign_arch("riscv64")?;
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

/// Adds Debian 13 as an apt source restricted to riscv64 and pinned below every Debian 12
/// package (root only; elsewhere prints what to do).
fn ensure_trixie_riscv64() -> Result<()> {
    if Path::new(TRIXIE_RISCV64).exists() && Path::new(TRIXIE_PIN).exists() {
        return Ok(());
    }
    if !imagetool_testutil::is_root() || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "xtask: the riscv64 tests need Debian 13's riscv64 packages: add {TRIXIE_RISCV64} \
             (Suites: trixie, Architectures: riscv64) and pin it at priority 1 ({TRIXIE_PIN})"
        );
        return Ok(());
    }
    std::fs::write(
        TRIXIE_PIN,
        "# Debian 13 only for riscv64 fixture packages: never a candidate where Debian 12 has \
         a version.\nPackage: *\nPin: release n=trixie\nPin-Priority: 1\n",
    )?;
    std::fs::write(
        TRIXIE_RISCV64,
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n\
         Architectures: riscv64\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )?;
    crate::run(Command::new("apt-get").args(["update", "-qq"]))?;
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
