//! Finding GRUB (modules and `grub-mkimage`) and running `grub-mkimage`.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, ErrorKind, Result};
use crate::{BootFile, FileSource};

/// A GRUB platform (`lib/grub/<name>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// BIOS (`i386-pc`): a core image embedded in the disk, loaded by boot.img in the MBR.
    I386Pc,
    /// 64-bit UEFI (`x86_64-efi`): a PE image, installed as `EFI/BOOT/BOOTX64.EFI`.
    X86_64Efi,
    /// 32-bit x86 UEFI (`i386-efi`): `EFI/BOOT/BOOTIA32.EFI`.
    I386Efi,
    /// 64-bit Arm UEFI (`arm64-efi`): `EFI/BOOT/BOOTAA64.EFI`.
    Arm64Efi,
    /// RISC-V 64 UEFI (`riscv64-efi`): `EFI/BOOT/BOOTRISCV64.EFI`.
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

/// Where the `grub-mkimage` in use was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MkimageSource {
    /// `<grub store path>/bin/grub-mkimage` (a NixOS closure's GRUB).
    Closure(PathBuf),
    /// A `grub-mkimage` on `PATH` (Debian's grub-common).
    SearchPath(PathBuf),
    /// Given by the caller.
    Explicit(PathBuf),
}

impl MkimageSource {
    /// The program's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            MkimageSource::Closure(p)
            | MkimageSource::SearchPath(p)
            | MkimageSource::Explicit(p) => p,
        }
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

/// One platform's GRUB: its module directory and a `grub-mkimage` of the same version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubTools {
    platform: Platform,
    store_path: PathBuf,
    moddir: PathBuf,
    mkimage: MkimageSource,
    mkimage_version: String,
    modules_version: Option<String>,
}

impl GrubTools {
    /// Finds GRUB for `platform` among `store_paths` (host directories of the closure's store
    /// paths, tried in the given order): the first one holding `lib/grub/<platform>/`.
    /// `grub-mkimage` is that store path's `bin/grub-mkimage` when it runs on this host, else
    /// the first `grub-mkimage` on `PATH` that runs.
    ///
    /// # Errors
    /// `Missing` when no store path holds the modules or no `grub-mkimage` runs (the message
    /// names what was looked for and where); `Unsupported` when `grub-mkimage`'s version is
    /// not the modules' version.
    pub fn find(platform: Platform, store_paths: &[PathBuf]) -> Result<Self> {
        let path_var = std::env::var_os("PATH");
        Self::find_in(platform, store_paths, path_var.as_deref())
    }

    /// As [`GrubTools::find`] with `PATH` given (`None`: no `PATH` lookup).
    ///
    /// # Errors
    /// As [`GrubTools::find`].
    pub fn find_in(
        platform: Platform,
        store_paths: &[PathBuf],
        path_var: Option<&OsStr>,
    ) -> Result<Self> {
        let (store_path, moddir) = find_moddir(platform, store_paths)?;
        let mut tried = Vec::new();
        let mut candidates = vec![MkimageSource::Closure(store_path.join("bin/grub-mkimage"))];
        if let Some(var) = path_var {
            for dir in std::env::split_paths(var) {
                if dir.is_absolute() {
                    candidates.push(MkimageSource::SearchPath(dir.join("grub-mkimage")));
                }
            }
        }
        for cand in candidates {
            if !cand.path().is_file() {
                tried.push(format!("{} (absent)", cand.path().display()));
                continue;
            }
            match mkimage_version(cand.path()) {
                Ok(version) => return Self::checked(platform, store_path, moddir, cand, version),
                Err(e) => tried.push(format!("{} ({e})", cand.path().display())),
            }
        }
        Err(Error::new(
            ErrorKind::Missing,
            format!(
                "no grub-mkimage runs for GRUB {platform} at {}: looked for {} \
                 (install grub-common: apt-get install grub-common)",
                store_path.display(),
                tried.join(", ")
            ),
        ))
    }

    /// As [`GrubTools::find`], with the `grub-mkimage` to use given.
    ///
    /// # Errors
    /// As [`GrubTools::find`]; `Missing` when `mkimage` does not run.
    pub fn find_with_mkimage(
        platform: Platform,
        store_paths: &[PathBuf],
        mkimage: &Path,
    ) -> Result<Self> {
        let (store_path, moddir) = find_moddir(platform, store_paths)?;
        let version = mkimage_version(mkimage).map_err(|e| {
            Error::new(
                ErrorKind::Missing,
                format!("grub-mkimage {} does not run: {e}", mkimage.display()),
            )
            .with_path(mkimage)
        })?;
        Self::checked(
            platform,
            store_path,
            moddir,
            MkimageSource::Explicit(mkimage.to_path_buf()),
            version,
        )
    }

    fn checked(
        platform: Platform,
        store_path: PathBuf,
        moddir: PathBuf,
        mkimage: MkimageSource,
        mkimage_version: String,
    ) -> Result<Self> {
        let modules_version = modules_version(&moddir)?;
        if let Some(mv) = &modules_version
            && upstream(mv) != upstream(&mkimage_version)
        {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "grub-mkimage {} is GRUB {mkimage_version}, but the modules in {} are GRUB {mv}: \
                     a core image needs both from the same GRUB",
                    mkimage.path().display(),
                    moddir.display()
                ),
            )
            .with_path(&moddir));
        }
        Ok(Self {
            platform,
            store_path,
            moddir,
            mkimage,
            mkimage_version,
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

    /// The `grub-mkimage` in use and where it was found.
    #[must_use]
    pub fn mkimage_source(&self) -> &MkimageSource {
        &self.mkimage
    }

    /// `grub-mkimage --version`'s version (`2.06-13+deb12u2`, `2.12`).
    #[must_use]
    pub fn mkimage_version(&self) -> &str {
        &self.mkimage_version
    }

    /// The modules' version from `modinfo.sh` (`grub_package_version`), when it says.
    #[must_use]
    pub fn modules_version(&self) -> Option<&str> {
        self.modules_version.as_deref()
    }

    /// Runs `grub-mkimage -O <platform> -d <moddir> -p <prefix> -c <early config> <modules>`
    /// and returns the image.
    ///
    /// # Errors
    /// `InvalidInput` for bad options; `Missing` for a module not in the module directory;
    /// `Tool` when grub-mkimage fails or writes something that is not an image of the
    /// platform; `Io` for the temporary config file.
    pub fn make_image(&self, opts: &ImageOptions) -> Result<Vec<u8>> {
        let early = opts.early_config()?;
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
        for m in &modules {
            let f = self.moddir.join(format!("{m}.mod"));
            if !f.is_file() {
                return Err(Error::new(
                    ErrorKind::Missing,
                    format!("GRUB module {m} not found: {} is absent", f.display()),
                )
                .with_path(&f));
            }
        }
        // grub-mkimage fsyncs its output, which fails on a pipe: write into a private
        // temporary directory and read the image back.
        let tmp = tempfile::Builder::new()
            .prefix("imagetool-grub-")
            .tempdir()
            .map_err(|e| {
                Error::io(
                    Path::new("(temporary directory)"),
                    "create a directory for grub-mkimage",
                    e,
                )
            })?;
        let cfg = tmp.path().join("load.cfg");
        let image = tmp.path().join("image");
        std::fs::write(&cfg, early.as_bytes())
            .map_err(|e| Error::io(&cfg, "write the early GRUB config", e))?;
        let prog = self.mkimage.path();
        let out = Command::new(prog)
            .env("LC_ALL", "C")
            .arg("-O")
            .arg(self.platform.name())
            .arg("-d")
            .arg(&self.moddir)
            .arg("-p")
            .arg(&opts.prefix)
            .arg("-c")
            .arg(&cfg)
            .arg("-o")
            .arg(&image)
            .args(&modules)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io(prog, "run grub-mkimage", e))?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Tool,
                format!(
                    "{} -O {} failed ({}): {}",
                    prog.display(),
                    self.platform,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )
            .with_path(prog));
        }
        let img =
            std::fs::read(&image).map_err(|e| Error::io(&image, "read grub-mkimage's image", e))?;
        let looks_right = match self.platform {
            Platform::I386Pc => img.len() > 1024,
            _ => img.starts_with(b"MZ"),
        };
        if !looks_right {
            return Err(Error::new(
                ErrorKind::Tool,
                format!(
                    "{} -O {} wrote {} bytes that are not a {} image",
                    prog.display(),
                    self.platform,
                    img.len(),
                    self.platform
                ),
            )
            .with_path(prog));
        }
        Ok(img)
    }

    /// The BIOS core image (`core.img`): [`GrubTools::make_image`] for `i386-pc`.
    ///
    /// # Errors
    /// `Unsupported` when these tools are not for `i386-pc`; as [`GrubTools::make_image`].
    pub fn core_image(&self, opts: &ImageOptions) -> Result<Vec<u8>> {
        self.expect(Platform::I386Pc)?;
        self.make_image(opts)
    }

    /// The removable EFI image (`EFI/BOOT/BOOTX64.EFI`, `BOOTAA64.EFI`, …):
    /// [`GrubTools::make_image`] for an EFI platform.
    ///
    /// # Errors
    /// `Unsupported` when these tools are for `i386-pc`; as [`GrubTools::make_image`].
    pub fn efi_image(&self, opts: &ImageOptions) -> Result<Vec<u8>> {
        if self.platform == Platform::I386Pc {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "GRUB tools for i386-pc cannot make an EFI image",
            ));
        }
        self.make_image(opts)
    }

    fn expect(&self, p: Platform) -> Result<()> {
        if self.platform == p {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Unsupported,
                format!("GRUB tools for {} cannot make a {p} image", self.platform),
            ))
        }
    }

    /// `boot.img`, the 512-byte MBR code of `i386-pc`.
    ///
    /// # Errors
    /// `Unsupported` for another platform; `Io` reading it; `InvalidInput` when it is not 512
    /// bytes ending in 55 AA.
    pub fn boot_img(&self) -> Result<[u8; 512]> {
        self.expect(Platform::I386Pc)?;
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

/// `grub-mkimage --version` → `2.06-13+deb12u2`.
fn mkimage_version(prog: &Path) -> std::result::Result<String, String> {
    let out = Command::new(prog)
        .env("LC_ALL", "C")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("--version: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("");
    // "grub-mkimage (GRUB) 2.06-13+deb12u2"
    match line.split_whitespace().last() {
        Some(v) if line.contains("GRUB") && v.starts_with(|c: char| c.is_ascii_digit()) => {
            Ok(v.to_string())
        }
        _ => Err(format!("--version printed {line:?}, not a GRUB version")),
    }
}

/// `modinfo.sh`'s `grub_package_version` (else `grub_version`), if the file is there.
fn modules_version(moddir: &Path) -> Result<Option<String>> {
    let p = moddir.join("modinfo.sh");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, "read GRUB's modinfo.sh", e)),
    };
    let value = |key: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    Ok(value("grub_package_version").or_else(|| value("grub_version")))
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
        let e = GrubTools::find_in(Platform::I386Pc, &[sp], None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(e.to_string().contains("lib/grub/i386-pc"), "{e}");
    }

    #[test]
    fn test_no_mkimage_is_missing_naming_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "i386-pc", "2.06");
        let empty = tmp.path().join("empty-bin");
        std::fs::create_dir(&empty).unwrap();
        let e = GrubTools::find_in(Platform::I386Pc, &[sp], Some(empty.as_os_str())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Missing);
        let msg = e.to_string();
        assert!(msg.contains("bin/grub-mkimage (absent)"), "{msg}");
        assert!(msg.contains("empty-bin/grub-mkimage (absent)"), "{msg}");
    }

    #[test]
    fn test_a_program_that_is_not_grub_mkimage_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "i386-pc", "2.06");
        let e = GrubTools::find_with_mkimage(Platform::I386Pc, &[sp], Path::new("/bin/true"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(e.to_string().contains("not a GRUB version"), "{e}");
    }

    #[test]
    fn test_module_version_is_read_from_modinfo() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "i386-pc", "2.06");
        let v = modules_version(&sp.join("lib/grub/i386-pc")).unwrap();
        assert_eq!(v.as_deref(), Some("2.06-1"));
    }

    #[test]
    fn test_module_files_are_what_grub_install_copies_in_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = fake_grub(tmp.path(), "i386-pc", "2.06");
        let tools = GrubTools {
            platform: Platform::I386Pc,
            moddir: sp.join("lib/grub/i386-pc"),
            store_path: sp,
            mkimage: MkimageSource::Explicit(PathBuf::from("/x")),
            mkimage_version: "2.06".into(),
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
