//! Finding a platform's GRUB modules in the closure and assembling its images natively
//! ([`super::mkimage`]): nothing from the closure or the host runs.

use std::fmt;
use std::path::{Path, PathBuf};

use super::mkimage::{self, Format};
use crate::error::{Error, ErrorKind, Result};
use crate::{BootFile, FileSource};

/// A GRUB platform (`lib/grub/<name>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// BIOS (`i386-pc`): a core image embedded in the disk, loaded by boot.img in the MBR.
    I386Pc,
    /// 64-bit UEFI (`x86_64-efi`): a PE image, installed as `EFI/BOOT/BOOTX64.EFI`.
    X86_64Efi,
    /// 32-bit UEFI (`i386-efi`): a PE32 image, `EFI/BOOT/BOOTIA32.EFI`.
    I386Efi,
    /// 64-bit ARM UEFI (`arm64-efi`): a PE32+ image, `EFI/BOOT/BOOTAA64.EFI`.
    Arm64Efi,
    /// 64-bit RISC-V UEFI (`riscv64-efi`): a PE32+ image, `EFI/BOOT/BOOTRISCV64.EFI`.
    Riscv64Efi,
}

impl Platform {
    /// GRUB's name of the platform (the module directory and `grub-mkimage -O` format).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Platform::I386Pc => "i386-pc",
            Platform::X86_64Efi => "x86_64-efi",
            Platform::I386Efi => "i386-efi",
            Platform::Arm64Efi => "arm64-efi",
            Platform::Riscv64Efi => "riscv64-efi",
        }
    }

    /// The image format of the platform's boot image.
    #[must_use]
    pub fn format(self) -> Format {
        match self {
            Platform::I386Pc => Format::I386Pc,
            Platform::X86_64Efi => Format::X86_64Efi,
            Platform::I386Efi => Format::I386Efi,
            Platform::Arm64Efi => Format::Arm64Efi,
            Platform::Riscv64Efi => Format::Riscv64Efi,
        }
    }

    /// Whether the platform boots from UEFI (its image is a PE file).
    #[must_use]
    pub fn is_efi(self) -> bool {
        self != Platform::I386Pc
    }

    /// The modules built into the core image: the disk driver (EFI's is in the kernel),
    /// both partition maps, the filesystems `/boot` can be on, and `search.fs_uuid`.
    #[must_use]
    pub fn core_modules(self) -> &'static [&'static str] {
        match self {
            Platform::I386Pc => &[
                "biosdisk",
                "part_msdos",
                "part_gpt",
                "ext2",
                "fat",
                "search_fs_uuid",
            ],
            Platform::X86_64Efi | Platform::I386Efi | Platform::Arm64Efi | Platform::Riscv64Efi => {
                &["part_msdos", "part_gpt", "ext2", "fat", "search_fs_uuid"]
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `grub-mkimage` builds: the early configuration that finds GRUB's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// The UUID of the filesystem holding GRUB's directory, as GRUB prints it (ext4
    /// `0ccc2a4e-…`, FAT `ABCD-1234`; compared without regard to case).
    pub fs_uuid: String,
    /// GRUB's directory inside that filesystem: `/boot/grub` (on the root filesystem) or
    /// `/grub` (on a separate `/boot` or the ESP).
    pub prefix: String,
    /// Modules to build in beyond [`Platform::core_modules`].
    pub extra_modules: Vec<String>,
}

impl ImageOptions {
    /// Options with no extra modules.
    #[must_use]
    pub fn new(fs_uuid: &str, prefix: &str) -> Self {
        Self {
            fs_uuid: fs_uuid.to_string(),
            prefix: prefix.to_string(),
            extra_modules: Vec::new(),
        }
    }

    /// The early configuration built into the image (what grub-install writes as `load.cfg`).
    ///
    /// # Errors
    /// `InvalidInput` for a UUID that is not hex digits and dashes, or a prefix that is not an
    /// absolute path of plain characters.
    pub fn early_config(&self) -> Result<String> {
        validate_uuid(&self.fs_uuid)?;
        validate_prefix(&self.prefix)?;
        Ok(format!(
            "search.fs_uuid {} root\nset prefix=($root)'{}'\n",
            self.fs_uuid, self.prefix
        ))
    }
}

fn validate_uuid(uuid: &str) -> Result<()> {
    let ok = !uuid.is_empty()
        && uuid.len() <= 64
        && uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("GRUB: filesystem UUID {uuid:?} is not hex digits and dashes"),
        ))
    }
}

fn validate_prefix(prefix: &str) -> Result<()> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-+".contains(&b);
    if prefix.starts_with('/') && prefix.bytes().all(plain) && !prefix.contains("//") {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "GRUB: prefix {prefix:?} must be an absolute path of letters, digits and ./_-+"
            ),
        ))
    }
}

/// One platform's GRUB: its module directory in the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubTools {
    platform: Platform,
    store_path: PathBuf,
    moddir: PathBuf,
    modules_version: Option<String>,
}

impl GrubTools {
    /// Finds GRUB for `platform` among `store_paths` (host directories of the closure's store
    /// paths, tried in the given order): the first one holding `lib/grub/<platform>/`.
    /// Nothing is run: the images are assembled from the modules ([`super::mkimage`]).
    ///
    /// # Errors
    /// `Missing` when no store path holds the modules (the message names what was looked
    /// for); `Unsupported` when the modules are of a GRUB version whose image layout is not
    /// known; `Io` reading `modinfo.sh`.
    pub fn find(platform: Platform, store_paths: &[PathBuf]) -> Result<Self> {
        let (store_path, moddir) = find_moddir(platform, store_paths)?;
        Self::at(platform, store_path, moddir)
    }

    /// GRUB for `platform` with the module directory given (`<grub>/lib/grub/<platform>`).
    ///
    /// # Errors
    /// `Missing` when `moddir` has no `kernel.img`; as [`GrubTools::find`].
    pub fn with_moddir(platform: Platform, moddir: &Path) -> Result<Self> {
        let k = moddir.join("kernel.img");
        if !k.is_file() {
            return Err(Error::new(
                ErrorKind::Missing,
                format!("no GRUB for {platform}: {} is absent", k.display()),
            )
            .with_path(&k));
        }
        let store_path = moddir
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .unwrap_or(moddir)
            .to_path_buf();
        Self::at(platform, store_path, moddir.to_path_buf())
    }

    fn at(platform: Platform, store_path: PathBuf, moddir: PathBuf) -> Result<Self> {
        let modules_version = mkimage::modules_version(&moddir)?;
        if let Some(v) = &modules_version
            && !mkimage::KNOWN_VERSIONS.contains(&upstream(v))
        {
            let p = moddir.join("modinfo.sh");
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{}: GRUB {v}, whose image layout imagetool does not know (known: {})",
                    p.display(),
                    mkimage::KNOWN_VERSIONS.join(", ")
                ),
            )
            .with_path(&p));
        }
        Ok(Self {
            platform,
            store_path,
            moddir,
            modules_version,
        })
    }

    /// The platform.
    #[must_use]
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The store path (host directory) holding the modules.
    #[must_use]
    pub fn store_path(&self) -> &Path {
        &self.store_path
    }

    /// The module directory, `<store path>/lib/grub/<platform>`.
    #[must_use]
    pub fn moddir(&self) -> &Path {
        &self.moddir
    }

    /// The modules' version from `modinfo.sh` (`grub_version`: `2.06`, `2.12`), when it says.
    #[must_use]
    pub fn modules_version(&self) -> Option<&str> {
        self.modules_version.as_deref()
    }

    /// The modules built in: [`Platform::core_modules`] and `opts.extra_modules`.
    fn modules<'o>(&self, opts: &'o ImageOptions) -> Result<Vec<&'o str>> {
        let mut modules: Vec<&str> = self.platform.core_modules().to_vec();
        for m in &opts.extra_modules {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("GRUB module name {m:?} is not letters, digits and _"),
                ));
            }
            if !modules.contains(&m.as_str()) {
                modules.push(m);
            }
        }
        Ok(modules)
    }

    /// Assembles the image `grub-mkimage -O <format> -d <moddir> -p <prefix> -c <early
    /// config> <modules>` makes, natively.
    ///
    /// # Errors
    /// `InvalidInput` for bad options or malformed module files (named); `Missing` for a
    /// module not in the module directory (the path is named); `Io` reading them.
    pub fn make_image_as(&self, format: Format, opts: &ImageOptions) -> Result<Vec<u8>> {
        if format.dir_name() != self.platform.name() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "GRUB modules for {} cannot make a {format} image",
                    self.platform
                ),
            ));
        }
        let early = opts.early_config()?;
        let modules = self.modules(opts)?;
        mkimage::mkimage(&mkimage::Request {
            format,
            moddir: &self.moddir,
            modules: &modules,
            prefix: Some(&opts.prefix),
            config: Some(early.as_bytes()),
        })
    }

    /// The platform's boot image ([`GrubTools::make_image_as`] with [`Platform::format`]).
    ///
    /// # Errors
    /// As [`GrubTools::make_image_as`].
    pub fn make_image(&self, opts: &ImageOptions) -> Result<Vec<u8>> {
        self.make_image_as(self.platform.format(), opts)
    }

    /// The BIOS core image (`core.img`): [`GrubTools::make_image`] for `i386-pc`.
    ///
    /// # Errors
    /// `Unsupported` when these modules are not for `i386-pc`; as [`GrubTools::make_image`].
    pub fn core_image(&self, opts: &ImageOptions) -> Result<Vec<u8>> {
        self.expect_pc(true)?;
        self.make_image(opts)
    }

    /// The BIOS El Torito boot image (`cdboot.img` + `core.img`, `grub-mkimage -O
    /// i386-pc-eltorito`).
    ///
    /// # Errors
    /// `Unsupported` when these modules are not for `i386-pc`; as [`GrubTools::make_image`].
    pub fn eltorito_image(&self, opts: &ImageOptions) -> Result<Vec<u8>> {
        self.expect_pc(true)?;
        self.make_image_as(Format::I386PcEltorito, opts)
    }

    /// The removable EFI image (`EFI/BOOT/BOOTX64.EFI`, `BOOTAA64.EFI`, …):
    /// [`GrubTools::make_image`] for an EFI platform.
    ///
    /// # Errors
    /// `Unsupported` when these modules are for `i386-pc`; as [`GrubTools::make_image`].
    pub fn efi_image(&self, opts: &ImageOptions) -> Result<Vec<u8>> {
        self.expect_pc(false)?;
        self.make_image(opts)
    }

    fn expect_pc(&self, pc: bool) -> Result<()> {
        if (self.platform == Platform::I386Pc) == pc {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "GRUB modules for {} cannot make {} image",
                    self.platform,
                    if pc { "a BIOS" } else { "an EFI" }
                ),
            ))
        }
    }

    /// `boot.img`, the 512-byte MBR code of `i386-pc`.
    ///
    /// # Errors
    /// `Unsupported` for another platform; `Io` reading it; `InvalidInput` when it is not 512
    /// bytes ending in 55 AA.
    pub fn boot_img(&self) -> Result<[u8; 512]> {
        self.expect_pc(true)?;
        let p = self.moddir.join("boot.img");
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, "read GRUB's boot.img", e))?;
        let img: [u8; 512] = bytes.as_slice().try_into().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{}: {} bytes, expected 512", p.display(), bytes.len()),
            )
            .with_path(&p)
        })?;
        if img[510..] != [0x55, 0xAA] {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{}: no 55 AA boot signature", p.display()),
            )
            .with_path(&p));
        }
        Ok(img)
    }

    /// The files grub-install copies into `<dir>/<platform>/`: every `*.mod` and `*.lst`,
    /// `modinfo.sh`, and on `i386-pc` `efiemu32.o`/`efiemu64.o` and `boot.img`, in byte
    /// order of their names. `dir` is GRUB's directory relative to its filesystem's root
    /// (`boot/grub` or `grub`). Fonts, locales and themes are not copied (NixOS's default
    /// grub.cfg as written by [`crate::grub::grub_cfg`] uses none).
    ///
    /// # Errors
    /// `Io` reading the module directory; `InvalidInput` for a `dir` with empty or `..`
    /// components.
    pub fn module_files(&self, dir: &str) -> Result<Vec<BootFile>> {
        let dir = dir.trim_matches('/');
        if dir
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
            && !dir.is_empty()
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("GRUB directory {dir:?} has an empty, . or .. component"),
            ));
        }
        let rd = std::fs::read_dir(&self.moddir)
            .map_err(|e| Error::io(&self.moddir, "list the GRUB modules", e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&self.moddir, "list the GRUB modules", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let wanted = name.ends_with(".mod")
                || name.ends_with(".lst")
                || name == "modinfo.sh"
                || (self.platform == Platform::I386Pc
                    && matches!(name, "efiemu32.o" | "efiemu64.o" | "boot.img"));
            let is_file = entry
                .file_type()
                .map_err(|e| Error::io(&entry.path(), "stat a GRUB module", e))?
                .is_file();
            if wanted && is_file {
                names.push(name.to_string());
            }
        }
        names.sort_unstable();
        let base = if dir.is_empty() {
            self.platform.name().to_string()
        } else {
            format!("{dir}/{}", self.platform.name())
        };
        Ok(names
            .into_iter()
            .map(|n| BootFile {
                path: format!("{base}/{n}"),
                source: FileSource::Host(self.moddir.join(&n)),
            })
            .collect())
    }
}

/// The first store path holding `lib/grub/<platform>/kernel.img`.
fn find_moddir(platform: Platform, store_paths: &[PathBuf]) -> Result<(PathBuf, PathBuf)> {
    let rel = format!("lib/grub/{}", platform.name());
    for sp in store_paths {
        let moddir = sp.join(&rel);
        if moddir.join("kernel.img").is_file() {
            return Ok((sp.clone(), moddir));
        }
    }
    Err(Error::new(
        ErrorKind::Missing,
        format!(
            "no GRUB for {platform}: none of the {} store paths of the closure holds {rel}/kernel.img \
             (add the GRUB package, e.g. boot.loader.grub, to the closure)",
            store_paths.len()
        ),
    ))
}

/// The upstream part of a version: `2.06-13+deb12u2` → `2.06`.
fn upstream(v: &str) -> &str {
    v.split(['-', '+', '~']).next().unwrap_or(v)
}

/// The 1024-byte environment block grub-install creates as `grubenv` (`grub-editenv create`):
/// the two header lines, then `#` to the end. NixOS's grub.cfg loads it when present.
#[must_use]
pub fn grubenv() -> Vec<u8> {
    let mut b = b"# GRUB Environment Block\n\
# WARNING: Do not edit this file by tools other than grub-editenv!!!\n"
        .to_vec();
    b.resize(1024, b'#');
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_early_config_searches_uuid_and_sets_prefix() {
        let o = ImageOptions::new("0ccc2a4e-6b2c-4b7c-9f3b-4b1d7a8e3f10", "/boot/grub");
        assert_eq!(
            o.early_config().unwrap(),
            "search.fs_uuid 0ccc2a4e-6b2c-4b7c-9f3b-4b1d7a8e3f10 root\nset prefix=($root)'/boot/grub'\n"
        );
        let fat = ImageOptions::new("ABCD-1234", "/grub");
        assert!(fat.early_config().unwrap().contains("ABCD-1234 root\n"));
    }

    #[test]
    fn test_early_config_rejects_injection() {
        for (uuid, prefix) in [
            ("abc; reboot", "/boot/grub"),
            ("", "/boot/grub"),
            ("abcd", "boot/grub"),
            ("abcd", "/boot/gr'ub"),
            ("abcd", "/boot grub"),
            ("abcd", "/boot//grub"),
        ] {
            let e = ImageOptions::new(uuid, prefix).early_config().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{uuid:?} {prefix:?}");
        }
    }

    #[test]
    fn test_platform_formats() {
        assert_eq!(Platform::Arm64Efi.format().name(), "arm64-efi");
        assert!(Platform::Riscv64Efi.is_efi());
        assert!(!Platform::I386Pc.is_efi());
    }

    #[test]
    fn test_upstream_version() {
        assert_eq!(upstream("2.06-13+deb12u2"), "2.06");
        assert_eq!(upstream("2.12"), "2.12");
        assert_eq!(upstream("2.12~rc1"), "2.12");
    }

    #[test]
    fn test_grubenv_is_a_1024_byte_block() {
        let b = grubenv();
        assert_eq!(b.len(), 1024);
        assert!(b.starts_with(b"# GRUB Environment Block\n# WARNING"));
        assert_eq!(b[1023], b'#');
    }

    fn fake_grub(dir: &Path, platform: &str, version: &str) -> PathBuf {
        let sp = dir.join(format!("grub-{version}"));
        let md = sp.join("lib/grub").join(platform);
        std::fs::create_dir_all(&md).unwrap();
        std::fs::write(md.join("kernel.img"), b"k").unwrap();
        std::fs::write(
            md.join("modinfo.sh"),
            format!("grub_version=\"{version}\"\ngrub_package_version=\"{version}-1\"\n"),
        )
        .unwrap();
        for f in [
            "b.mod",
            "a.mod",
            "fs.lst",
            "boot.img",
            "README",
            "efiemu32.o",
        ] {
            std::fs::write(md.join(f), b"x").unwrap();
        }
        sp
    }

    #[test]
    fn test_no_grub_in_the_closure_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "x86_64-efi", "2.06");
        let e = GrubTools::find(Platform::I386Pc, &[sp]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(e.to_string().contains("lib/grub/i386-pc"), "{e}");
    }

    #[test]
    fn test_an_unknown_grub_version_is_refused_naming_modinfo() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "i386-pc", "1.99");
        let e = GrubTools::find(Platform::I386Pc, &[sp]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(
            e.to_string().contains("i386-pc/modinfo.sh: GRUB 1.99"),
            "{e}"
        );
    }

    #[test]
    fn test_module_version_is_read_from_modinfo() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "i386-pc", "2.06");
        let t = GrubTools::find(Platform::I386Pc, &[sp]).unwrap();
        assert_eq!(t.modules_version(), Some("2.06"));
    }

    #[test]
    fn test_missing_module_names_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "x86_64-efi", "2.06");
        std::fs::write(sp.join("lib/grub/x86_64-efi/moddep.lst"), b"fat:\n").unwrap();
        let t = GrubTools::find(Platform::X86_64Efi, std::slice::from_ref(&sp)).unwrap();
        let e = t
            .efi_image(&ImageOptions::new("ABCD-1234", "/grub"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(
            e.to_string()
                .contains("x86_64-efi/part_msdos.mod is absent"),
            "{e}"
        );
        let e = t
            .core_image(&ImageOptions::new("ABCD-1234", "/grub"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let e = GrubTools::with_moddir(Platform::I386Pc, &sp.join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope/kernel.img is absent"), "{e}");
    }

    #[test]
    fn test_module_files_are_what_grub_install_copies_in_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "i386-pc", "2.06");
        let tools = GrubTools {
            platform: Platform::I386Pc,
            moddir: sp.join("lib/grub/i386-pc"),
            store_path: sp,
            modules_version: None,
        };
        let files = tools.module_files("/boot/grub/").unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "boot/grub/i386-pc/a.mod",
                "boot/grub/i386-pc/b.mod",
                "boot/grub/i386-pc/boot.img",
                "boot/grub/i386-pc/efiemu32.o",
                "boot/grub/i386-pc/fs.lst",
                "boot/grub/i386-pc/modinfo.sh",
            ]
        );
        assert_eq!(
            files[0].source,
            FileSource::Host(tools.moddir.join("a.mod"))
        );
        assert_eq!(tools.module_files("").unwrap()[0].path, "i386-pc/a.mod");
        let e = tools.module_files("boot/../grub").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
