//! systemd-boot: the files `bootctl install` and systemd-boot-builder.py leave on the ESP
//! (and on XBOOTLDR), for generation 1 and its specialisations.
//!
//! ```text
//! ESP       EFI/systemd/systemd-bootx64.efi      the closure's systemd-boot
//!           EFI/BOOT/BOOTX64.EFI                 the same binary (removable-media path)
//!           loader/loader.conf                   timeout, default entry, console mode
//! BOOT      loader/entries/nixos-generation-1.conf (+ -specialisation-<name>.conf)
//! (ESP when EFI/nixos/<dir>-<file>.efi           kernels and initrds
//!  no XBOOTLDR)
//! ```
//!
//! What upstream adds and this leaves out, for reproducibility: `loader/random-seed`
//! (bootctl), the `machine-id` line (no `/etc/machine-id` in a fresh image), and the build date
//! of the generation link (the "built on" date is the build timestamp, `SOURCE_DATE_EPOCH`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::bootspec::{BootSpec, Generation};
use crate::store::Closure;
use crate::{BootFile, Error, ErrorKind, FileSource, Result};

/// `systemd-boot-builder.py`'s `NIXOS_DIR`.
pub const NIXOS_DIR: &str = "EFI/nixos";

/// Options of the installation (systemd-boot.nix's settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `boot.loader.timeout` (seconds; NixOS's default 5).
    pub timeout: u32,
    /// `DISTRO_NAME` in entry titles.
    pub distro_name: String,
    /// `consoleMode` (`keep`).
    pub console_mode: String,
    /// Entries and kernels go to an XBOOTLDR partition instead of the ESP.
    pub xbootldr: bool,
    /// The build timestamp (seconds since the epoch): the "built on" date of entries.
    pub timestamp: i64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: 5,
            distro_name: "NixOS".into(),
            console_mode: "keep".into(),
            xbootldr: false,
            timestamp: 0,
        }
    }
}

/// The installed files, by filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    /// Files on the ESP.
    pub esp: Vec<BootFile>,
    /// Files on XBOOTLDR (empty unless [`Options::xbootldr`]).
    pub xbootldr: Vec<BootFile>,
}

/// EFI architecture names for a bootspec `system`: (`x64`, `X64`).
///
/// # Errors
/// `Unsupported` for systems with no UEFI systemd-boot.
pub fn efi_arch(system: &str) -> Result<(&'static str, &'static str)> {
    let arch = crate::arch::Arch::from_system(system)?;
    let upper = match arch {
        crate::arch::Arch::X86_64 => "X64",
        crate::arch::Arch::I686 => "IA32",
        crate::arch::Arch::Aarch64 => "AA64",
        crate::arch::Arch::Riscv64 => "RISCV64",
    };
    Ok((arch.efi_name(), upper))
}

/// The closure's systemd-boot binary for `arch` (`x64`): the toplevel's `systemd` link
/// first (what NixOS's bootctl uses), else the first store path that has
/// `lib/systemd/boot/efi/systemd-boot<arch>.efi`. Returns its host path, or `None`.
///
/// # Errors
/// `Io` when the store cannot be read.
pub fn find_binary(closure: &Closure, toplevel: &str, arch: &str) -> Result<Option<PathBuf>> {
    let rel = format!("lib/systemd/boot/efi/systemd-boot{arch}.efi");
    if let Ok(sd) = closure.realpath(&format!("{toplevel}/systemd")) {
        let host = closure.host(&format!("{sd}/{rel}"));
        if host.is_file() {
            return Ok(Some(host));
        }
    }
    for p in closure.paths() {
        let host = closure.host(&format!("{p}/{rel}"));
        if host.is_file() {
            return Ok(Some(host));
        }
    }
    Ok(None)
}

/// `copy_from_file`'s destination: `EFI/nixos/<parent dir>-<file>.efi` of the resolved path.
fn efi_name(real: &str) -> String {
    let mut it = real.rsplit('/');
    let file = it.next().unwrap_or_default();
    let dir = it.next().unwrap_or_default();
    format!("{NIXOS_DIR}/{dir}-{file}.efi")
}

/// The entry file name (`nixos-generation-1.conf`, `nixos-generation-1-specialisation-x.conf`).
#[must_use]
pub fn entry_name(generation: u32, specialisation: Option<&str>) -> String {
    match specialisation {
        Some(s) => format!("nixos-generation-{generation}-specialisation-{s}.conf"),
        None => format!("nixos-generation-{generation}.conf"),
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time, as `strftime('%F')`.
#[must_use]
pub fn iso_date(unix: i64) -> String {
    let (y, m, d) = imagetool_fat::civil_date(unix);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The files for `generation` (generation number 1, as a fresh image has), with `binary` the
/// host path of `systemd-boot<arch>.efi`.
///
/// # Errors
/// `Unsupported` for `initrdSecrets` (the script would run on the build host and put its
/// secrets into the image) and unknown systems; `InvalidInput` for kernels or initrds that are
/// not regular files in the closure.
pub fn install(
    generation: &Generation,
    closure: &Closure,
    binary: &std::path::Path,
    opts: &Options,
) -> Result<Files> {
    let (arch, arch_upper) = efi_arch(&generation.bootspec.system)?;
    let mut files = Files::default();
    files.esp.push(BootFile {
        path: format!("EFI/systemd/systemd-boot{arch}.efi"),
        source: FileSource::Host(binary.to_path_buf()),
    });
    files.esp.push(BootFile {
        path: format!("EFI/BOOT/BOOT{arch_upper}.EFI"),
        source: FileSource::Host(binary.to_path_buf()),
    });

    // Kernels and initrds shared by entries are copied once.
    let mut copies: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut entries: Vec<BootFile> = Vec::new();
    let docs = std::iter::once((None, &generation.bootspec)).chain(
        generation
            .specialisations
            .iter()
            .map(|(n, d)| (Some(n.as_str()), d)),
    );
    for (spec_name, doc) in docs {
        let text = entry(doc, spec_name, closure, &mut copies, opts)
            .map_err(|e| e.with_path(&generation.file))?;
        entries.push(BootFile {
            path: format!("loader/entries/{}", entry_name(1, spec_name)),
            source: FileSource::Bytes(text.into_bytes()),
        });
    }
    let loader = format!(
        "timeout {}\ndefault {}\nconsole-mode {}\n",
        opts.timeout,
        entry_name(1, None),
        opts.console_mode
    );
    files.esp.push(BootFile {
        path: "loader/loader.conf".into(),
        source: FileSource::Bytes(loader.into_bytes()),
    });
    let target = if opts.xbootldr {
        &mut files.xbootldr
    } else {
        &mut files.esp
    };
    target.extend(entries);
    target.extend(copies.into_iter().map(|(path, host)| BootFile {
        path,
        source: FileSource::Host(host),
    }));
    files.esp.sort_by(|a, b| a.path.cmp(&b.path));
    files.xbootldr.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn entry(
    doc: &BootSpec,
    specialisation: Option<&str>,
    closure: &Closure,
    copies: &mut BTreeMap<String, PathBuf>,
    opts: &Options,
) -> Result<String> {
    if doc.initrd_secrets.is_some() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "initrdSecrets: appending secrets to the initrd would run a script of the closure \
             on the build host and store the secrets in the image; not supported",
        ));
    }
    let mut copy = |path: &str| -> Result<String> {
        let (real, host) = closure.file(path)?;
        let name = efi_name(&real);
        copies.insert(name.clone(), host);
        Ok(format!("/{name}"))
    };
    let kernel = copy(&doc.kernel)?;
    let initrd = doc.initrd.as_deref().map(&mut copy).transpose()?;
    let mut t = format!("title {}", opts.distro_name);
    if let Some(s) = specialisation {
        t.push_str(&format!(" ({s})"));
    }
    t.push('\n');
    t.push_str(&format!("sort-key {}\n", doc.sort_key()));
    t.push_str(&format!(
        "version Generation 1 {}, built on {}\n",
        doc.label,
        iso_date(opts.timestamp)
    ));
    t.push_str(&format!("linux {kernel}\n"));
    if let Some(i) = initrd {
        t.push_str(&format!("initrd {i}\n"));
    }
    let mut options = format!("init={}", doc.init);
    for p in &doc.kernel_params {
        options.push(' ');
        options.push_str(p);
    }
    t.push_str(&format!("options {options}\n"));
    if let Some(dt) = doc
        .extensions
        .get(crate::bootspec::SYSTEMD_BOOT_EXT)
        .and_then(|e| e.get("devicetree"))
        .and_then(serde_json::Value::as_str)
    {
        t.push_str(&format!("devicetree {}\n", copy(dt)?));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    #[test]
    fn test_iso_date() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(1_700_000_000), "2023-11-14");
        assert_eq!(iso_date(951_782_400), "2000-02-29");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(iso_date(4_102_444_800), "2100-01-01");
    }

    fn closure(d: &Path) -> Closure {
        let s = d.join("nix/store");
        for p in ["k1-linux", "i1-initrd", "t1-top", "sd-systemd"] {
            std::fs::create_dir_all(s.join(p)).unwrap();
        }
        std::fs::write(s.join("k1-linux/bzImage"), b"kernel").unwrap();
        std::fs::write(s.join("i1-initrd/initrd"), b"initrd").unwrap();
        symlink("/nix/store/k1-linux/bzImage", s.join("t1-top/kernel")).unwrap();
        symlink("/nix/store/sd-systemd", s.join("t1-top/systemd")).unwrap();
        std::fs::create_dir_all(s.join("sd-systemd/lib/systemd/boot/efi")).unwrap();
        std::fs::write(
            s.join("sd-systemd/lib/systemd/boot/efi/systemd-bootx64.efi"),
            b"MZ",
        )
        .unwrap();
        Closure::new(
            d,
            ["k1-linux", "i1-initrd", "t1-top", "sd-systemd"]
                .iter()
                .map(|p| format!("/nix/store/{p}")),
        )
    }

    const DOC: &str = r#"{"org.nixos.bootspec.v1": {
        "init": "/nix/store/t1-top/init", "initrd": "/nix/store/i1-initrd/initrd",
        "kernel": "/nix/store/t1-top/kernel", "kernelParams": ["console=ttyS0", "quiet"],
        "label": "NixOS Test (Linux 6.1)", "system": "x86_64-linux",
        "toplevel": "/nix/store/t1-top"},
      "org.nixos.specialisation.v1": {"dbg": {"org.nixos.bootspec.v1": {
        "init": "/nix/store/t1-top/init", "kernel": "/nix/store/k1-linux/bzImage",
        "kernelParams": [], "label": "NixOS Dbg", "system": "x86_64-linux",
        "toplevel": "/nix/store/t1-top"}, "org.nixos.systemd-boot": {"sortKey": "b"}}}}"#;

    fn get<'a>(files: &'a [BootFile], path: &str) -> &'a FileSource {
        &files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} missing"))
            .source
    }

    #[test]
    fn test_install_esp_layout_and_entry_text() {
        let d = tempfile::tempdir().unwrap();
        let c = closure(d.path());
        let g = Generation::parse(DOC.as_bytes(), Path::new("/t/boot.json")).unwrap();
        let bin = find_binary(&c, "/nix/store/t1-top", "x64")
            .unwrap()
            .unwrap();
        assert!(bin.ends_with("sd-systemd/lib/systemd/boot/efi/systemd-bootx64.efi"));
        let opts = Options {
            timestamp: 1_700_000_000,
            ..Options::default()
        };
        let f = install(&g, &c, &bin, &opts).unwrap();
        assert!(f.xbootldr.is_empty());
        let paths: Vec<&str> = f.esp.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "EFI/BOOT/BOOTX64.EFI",
                "EFI/nixos/i1-initrd-initrd.efi",
                "EFI/nixos/k1-linux-bzImage.efi",
                "EFI/systemd/systemd-bootx64.efi",
                "loader/entries/nixos-generation-1-specialisation-dbg.conf",
                "loader/entries/nixos-generation-1.conf",
                "loader/loader.conf",
            ]
        );
        assert_eq!(
            get(&f.esp, "loader/entries/nixos-generation-1.conf"),
            &FileSource::Bytes(
                "title NixOS\nsort-key nixos\n\
                 version Generation 1 NixOS Test (Linux 6.1), built on 2023-11-14\n\
                 linux /EFI/nixos/k1-linux-bzImage.efi\n\
                 initrd /EFI/nixos/i1-initrd-initrd.efi\n\
                 options init=/nix/store/t1-top/init console=ttyS0 quiet\n"
                    .as_bytes()
                    .to_vec()
            )
        );
        assert_eq!(
            get(
                &f.esp,
                "loader/entries/nixos-generation-1-specialisation-dbg.conf"
            ),
            &FileSource::Bytes(
                "title NixOS (dbg)\nsort-key b\n\
                 version Generation 1 NixOS Dbg, built on 2023-11-14\n\
                 linux /EFI/nixos/k1-linux-bzImage.efi\n\
                 options init=/nix/store/t1-top/init\n"
                    .as_bytes()
                    .to_vec()
            )
        );
        assert_eq!(
            get(&f.esp, "loader/loader.conf"),
            &FileSource::Bytes(
                b"timeout 5\ndefault nixos-generation-1.conf\nconsole-mode keep\n".to_vec()
            )
        );
        assert_eq!(
            get(&f.esp, "EFI/nixos/k1-linux-bzImage.efi"),
            &FileSource::Host(d.path().join("nix/store/k1-linux/bzImage"))
        );
    }

    #[test]
    fn test_xbootldr_gets_entries_and_kernels() {
        let d = tempfile::tempdir().unwrap();
        let c = closure(d.path());
        let g = Generation::parse(DOC.as_bytes(), Path::new("/t/boot.json")).unwrap();
        let opts = Options {
            xbootldr: true,
            ..Options::default()
        };
        let f = install(&g, &c, Path::new("/bin"), &opts).unwrap();
        let esp: Vec<&str> = f.esp.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            esp,
            [
                "EFI/BOOT/BOOTX64.EFI",
                "EFI/systemd/systemd-bootx64.efi",
                "loader/loader.conf"
            ]
        );
        assert_eq!(f.xbootldr.len(), 4);
        assert!(
            f.xbootldr
                .iter()
                .all(|f| f.path.starts_with("EFI/nixos/") || f.path.starts_with("loader/entries/"))
        );
    }

    #[test]
    fn test_initrd_secrets_and_missing_kernel_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let c = closure(d.path());
        let doc = DOC.replacen(
            "\"label\"",
            "\"initrdSecrets\": \"/nix/store/t1-top/x\", \"label\"",
            1,
        );
        let g = Generation::parse(doc.as_bytes(), Path::new("/t/boot.json")).unwrap();
        let e = install(&g, &c, Path::new("/bin"), &Options::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let doc = DOC.replacen("t1-top/kernel", "t1-top/nokernel", 1);
        let g = Generation::parse(doc.as_bytes(), Path::new("/t/boot.json")).unwrap();
        let e = install(&g, &c, Path::new("/bin"), &Options::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("nokernel"), "{e}");
    }
}
