//! The external tools the oracles run, where to find them and which Debian package has them.

use std::path::{Path, PathBuf};

use crate::{Error, ErrorKind, Result};

/// An external program (or firmware file) an oracle needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    /// The program name (looked up in `PATH`, `/usr/sbin`, `/sbin`), or an absolute file path
    /// for firmware.
    pub name: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// `bash` (bash): parses the generated completion script (`bash -n`).
pub const BASH: Tool = Tool::new("bash", "bash");
/// `e2fsck` (e2fsprogs).
pub const E2FSCK: Tool = Tool::new("e2fsck", "e2fsprogs");
/// `debugfs` (e2fsprogs).
pub const DEBUGFS: Tool = Tool::new("debugfs", "e2fsprogs");
/// `dumpe2fs` (e2fsprogs).
pub const DUMPE2FS: Tool = Tool::new("dumpe2fs", "e2fsprogs");
/// `mkfs.ext4` (e2fsprogs), used by tests to make reference images.
pub const MKFS_EXT4: Tool = Tool::new("mkfs.ext4", "e2fsprogs");
/// e2fsprogs' `resize2fs` (growing an image: the layout must allow it).
pub const RESIZE2FS: Tool = Tool::new("resize2fs", "e2fsprogs");
/// `fsck.fat` (dosfstools).
pub const FSCK_FAT: Tool = Tool::new("fsck.fat", "dosfstools");
/// `mkfs.vfat` (dosfstools), used by tests to make reference images.
pub const MKFS_VFAT: Tool = Tool::new("mkfs.vfat", "dosfstools");
/// `mdir` (mtools).
pub const MDIR: Tool = Tool::new("mdir", "mtools");
/// `mcopy` (mtools).
pub const MCOPY: Tool = Tool::new("mcopy", "mtools");
/// `mdel` (mtools), used by tests to remove a file from an image.
pub const MDEL: Tool = Tool::new("mdel", "mtools");
/// `virt-fw-vars` (python3-virt-firmware, bookworm-backports): lists an OVMF variable store.
pub const VIRT_FW_VARS: Tool = Tool::new("virt-fw-vars", "python3-virt-firmware");
/// `mmd` (mtools), used by tests to make reference images.
pub const MMD: Tool = Tool::new("mmd", "mtools");
/// `mtype` (mtools).
pub const MTYPE: Tool = Tool::new("mtype", "mtools");
/// `blkid` (util-linux).
pub const BLKID: Tool = Tool::new("blkid", "util-linux");
/// `parted`.
pub const PARTED: Tool = Tool::new("parted", "parted");
/// `sh`.
pub const SH: Tool = Tool::new("sh", "dash");
/// `sfdisk` (fdisk).
pub const SFDISK: Tool = Tool::new("sfdisk", "fdisk");
/// `sgdisk` (gdisk).
pub const SGDISK: Tool = Tool::new("sgdisk", "gdisk");
/// `qemu-img` (qemu-utils).
pub const QEMU_IMG: Tool = Tool::new("qemu-img", "qemu-utils");
/// `nix-store` (nix-bin).
pub const NIX_STORE: Tool = Tool::new("nix-store", "nix-bin");
/// `qemu-system-x86_64` (qemu-system-x86, from bookworm-backports on Debian 12).
pub const QEMU_SYSTEM: Tool = Tool::new("qemu-system-x86_64", "qemu-system-x86");
/// SeaBIOS firmware.
pub const SEABIOS: Tool = Tool::new("/usr/share/seabios/bios-256k.bin", "seabios");
/// OVMF code (read-only pflash unit 0).
pub const OVMF_CODE: Tool = Tool::new("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf");
/// OVMF variable store template (copied to a writable pflash unit 1).
pub const OVMF_VARS: Tool = Tool::new("/usr/share/OVMF/OVMF_VARS_4M.fd", "ovmf");
/// `qemu-system-aarch64` (qemu-system-arm, from bookworm-backports on Debian 12).
pub const QEMU_SYSTEM_AARCH64: Tool = Tool::new("qemu-system-aarch64", "qemu-system-arm");
/// AAVMF (EDK II for aarch64) code, pflash unit 0 of `-M virt`.
pub const AAVMF_CODE: Tool = Tool::new("/usr/share/AAVMF/AAVMF_CODE.fd", "qemu-efi-aarch64");
/// AAVMF variable store template (copied to pflash unit 1).
pub const AAVMF_VARS: Tool = Tool::new("/usr/share/AAVMF/AAVMF_VARS.fd", "qemu-efi-aarch64");
/// `qemu-system-riscv64` (qemu-system-misc, from bookworm-backports on Debian 12).
pub const QEMU_SYSTEM_RISCV64: Tool = Tool::new("qemu-system-riscv64", "qemu-system-misc");
/// EDK II for QEMU's riscv64 `virt` machine, pflash unit 0 (`qemu-efi-riscv64`: Debian 13's,
/// an `all` package; `cargo xtask deps` adds the source).
pub const RISCV64_EDK2_CODE: Tool = Tool::new(
    "/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd",
    "qemu-efi-riscv64",
);
/// Its variable store template (copied to pflash unit 1).
pub const RISCV64_EDK2_VARS: Tool = Tool::new(
    "/usr/share/qemu-efi-riscv64/RISCV_VIRT_VARS.fd",
    "qemu-efi-riscv64",
);
/// `zstd` (decompresses `.img.zst` images).
pub const ZSTD: Tool = Tool::new("zstd", "zstd");
/// U-Boot for QEMU's aarch64 `virt` machine (`-bios`).
pub const UBOOT_QEMU_ARM64: Tool =
    Tool::new("/usr/lib/u-boot/qemu_arm64/u-boot.bin", "u-boot-qemu");

/// `apt-get` (fetches the fixture's Debian packages).
pub const APT_GET: Tool = Tool::new("apt-get", "apt");
/// `dpkg-deb` (unpacks them).
pub const DPKG_DEB: Tool = Tool::new("dpkg-deb", "dpkg");
/// `nix-hash`.
pub const NIX_HASH: Tool = Tool::new("nix-hash", "nix-bin");
/// `grub-mkimage`.
pub const GRUB_MKIMAGE: Tool = Tool::new("grub-mkimage", "grub-common");
/// `grub-script-check` (parses a grub.cfg).
pub const GRUB_SCRIPT_CHECK: Tool = Tool::new("grub-script-check", "grub-common");

/// `xorriso` (reads ISO images: El Torito and system-area reports, extraction).
pub const XORRISO: Tool = Tool::new("xorriso", "xorriso");
/// `isoinfo` (genisoimage).
pub const ISOINFO: Tool = Tool::new("isoinfo", "genisoimage");
/// `unsquashfs` (squashfs-tools).
pub const UNSQUASHFS: Tool = Tool::new("unsquashfs", "squashfs-tools");
/// `mksquashfs` (squashfs-tools): only tests and the ISO benchmark's reference run use it.
pub const MKSQUASHFS: Tool = Tool::new("mksquashfs", "squashfs-tools");
/// `mount` (mount), for the kernel's read-only view of a filesystem image.
pub const MOUNT: Tool = Tool::new("mount", "mount");
/// `umount` (mount).
pub const UMOUNT: Tool = Tool::new("umount", "mount");
/// GNU `tar`.
pub const TAR: Tool = Tool::new("tar", "tar");
/// `gzip`.
pub const GZIP: Tool = Tool::new("gzip", "gzip");
/// `bzip2`.
pub const BZIP2: Tool = Tool::new("bzip2", "bzip2");
/// `xz` (xz-utils).
pub const XZ: Tool = Tool::new("xz", "xz-utils");
/// PyYAML (python3-yaml), run by `python3`: a real YAML parser for LXC's `metadata.yaml`.
/// Named by its module file, so that a python3 without it counts as missing.
pub const PYTHON3_YAML: Tool = Tool::new(
    "/usr/lib/python3/dist-packages/yaml/__init__.py",
    "python3-yaml",
);
/// `xmllint` (libxml2-utils): XML Schema validation.
pub const XMLLINT: Tool = Tool::new("xmllint", "libxml2-utils");

/// `sqlite3`: reads the store database the fixture and the Nix tests check.
pub const SQLITE3: Tool = Tool::new("sqlite3", "sqlite3");
/// `cpio` (GNU cpio): the fixture's initrd and the netboot initrd's appended archive are
/// checked with it.
pub const CPIO: Tool = Tool::new("cpio", "cpio");
/// `grub-fstest` (grub-common): GRUB's own filesystem drivers read our images.
pub const GRUB_FSTEST: Tool = Tool::new("grub-fstest", "grub-common");

/// `setpriv` (util-linux): runs a command as another user (a root test as `nobody`).
pub const SETPRIV: Tool = Tool::new("setpriv", "util-linux");

/// Every tool the tests, the boot tests and the fixture use: `cargo xtask deps` installs their
/// packages from this list (the one place a tool's Debian package is named).
pub const ALL: &[Tool] = &[
    E2FSCK,
    DEBUGFS,
    DUMPE2FS,
    MKFS_EXT4,
    RESIZE2FS,
    FSCK_FAT,
    MKFS_VFAT,
    MDIR,
    MCOPY,
    MMD,
    MTYPE,
    BLKID,
    PARTED,
    SH,
    SFDISK,
    SGDISK,
    QEMU_IMG,
    NIX_STORE,
    QEMU_SYSTEM,
    SEABIOS,
    OVMF_CODE,
    OVMF_VARS,
    QEMU_SYSTEM_AARCH64,
    AAVMF_CODE,
    AAVMF_VARS,
    ZSTD,
    UBOOT_QEMU_ARM64,
    APT_GET,
    DPKG_DEB,
    NIX_HASH,
    GRUB_MKIMAGE,
    GRUB_SCRIPT_CHECK,
    XORRISO,
    ISOINFO,
    UNSQUASHFS,
    MKSQUASHFS,
    MOUNT,
    UMOUNT,
    TAR,
    GZIP,
    BZIP2,
    XZ,
    XMLLINT,
    SQLITE3,
    CPIO,
    GRUB_FSTEST,
    SETPRIV,
    BASH,
    MDEL,
    PYTHON3_YAML,
    QEMU_SYSTEM_RISCV64,
    RISCV64_EDK2_CODE,
    RISCV64_EDK2_VARS,
    VIRT_FW_VARS,
];

/// The packages Debian 12 must take from bookworm-backports: QEMU's system emulators must
/// match qemu-utils 10 from there.
pub const FROM_BACKPORTS: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-arm",
    "qemu-system-misc",
    "python3-virt-firmware",
];

/// The environment variable that turns a missing tool into a test failure.
pub const REQUIRE_ENV: &str = "IMAGETOOL_REQUIRE_TOOLS";

impl Tool {
    /// A tool named `name` from Debian package `package`.
    #[must_use]
    pub const fn new(name: &'static str, package: &'static str) -> Self {
        Self { name, package }
    }

    /// The installed program or file, if any.
    #[must_use]
    pub fn find(&self) -> Option<PathBuf> {
        let name = Path::new(self.name);
        if name.is_absolute() {
            return name.is_file().then(|| name.to_path_buf());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
            .map(|dir| dir.join(self.name))
            .find(|p| p.is_file())
    }

    /// The installed program, or a `ToolMissing` error with the install hint.
    ///
    /// # Errors
    /// `ToolMissing` when the tool is not installed.
    pub fn path(&self) -> Result<PathBuf> {
        self.find()
            .ok_or_else(|| Error::new(ErrorKind::ToolMissing, self.name, self.hint()))
    }

    /// `"<tool> missing (apt-get install <pkg>)"`.
    #[must_use]
    pub fn hint(&self) -> String {
        format!("{} missing (apt-get install {})", self.name, self.package)
    }
}

/// True when every tool is installed. Otherwise prints `skipped: <hint>` and returns false, or,
/// when `IMAGETOOL_REQUIRE_TOOLS=1`, panics with the install hint. Tests use it through
/// [`require_tools!`](crate::require_tools).
///
/// # Panics
/// When a tool is missing and `IMAGETOOL_REQUIRE_TOOLS=1`.
#[must_use]
pub fn require(tools: &[Tool]) -> bool {
    require_with(tools, required())
}

/// [`require`] with the CI switch given explicitly: `strict` turns a missing tool into a panic.
///
/// # Panics
/// When a tool is missing and `strict` is true.
#[must_use]
pub fn require_with(tools: &[Tool], strict: bool) -> bool {
    let missing: Vec<&Tool> = tools.iter().filter(|t| t.find().is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let hints: Vec<String> = missing.iter().map(|t| t.hint()).collect();
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    if strict {
        panic!(
            "{} (required because {REQUIRE_ENV}=1; run `cargo xtask deps` or apt-get install {})",
            hints.join(", "),
            packages.join(" ")
        );
    }
    for h in hints {
        eprintln!("skipped: {h}");
    }
    false
}

/// True when `IMAGETOOL_REQUIRE_TOOLS=1` (CI): missing tools fail tests.
#[must_use]
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_all_lists_every_tool_of_this_file() {
        let text = include_str!("tools.rs");
        let consts = text
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter(|l| l.contains(": Tool"))
            .count();
        assert_eq!(consts, ALL.len(), "a Tool constant is missing from ALL");
    }

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(Tool::new("sh", "dash").find().is_some());
        let t = Tool::new("imagetool-no-such-tool", "nothing");
        assert!(t.find().is_none());
        let err = t.path().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ToolMissing);
        assert!(err.to_string().contains("apt-get install nothing"));
    }

    #[test]
    fn missing_tools_skip_locally_and_fail_in_ci() {
        let sh = Tool::new("sh", "dash");
        let gone = Tool::new("imagetool-no-such-tool", "imagetool-pkg");
        assert!(require_with(&[sh], true));
        assert!(!require_with(&[sh, gone], false));
        let panic = std::panic::catch_unwind(|| require_with(&[gone], true)).unwrap_err();
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(msg.contains("apt-get install imagetool-pkg"), "{msg}");
        assert!(msg.contains("IMAGETOOL_REQUIRE_TOOLS=1"), "{msg}");
    }

    #[test]
    fn absolute_names_are_files() {
        assert!(Tool::new("/bin/sh", "dash").find().is_some());
        assert!(Tool::new("/nonexistent/firmware.bin", "x").find().is_none());
    }
}
