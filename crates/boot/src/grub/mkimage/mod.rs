//! `grub-mkimage` in Rust: GRUB's boot images assembled from a platform's module directory
//! (`<grub>/lib/grub/<platform>/`) without running any program.
//!
//! | format | image |
//! |---|---|
//! | `i386-pc` | `diskboot.img` + `lzma_decompress.img` + LZMA(kernel + modules) ([`pc`]) |
//! | `i386-pc-eltorito` | `cdboot.img` + the `i386-pc` image |
//! | `x86_64-efi`, `i386-efi`, `arm64-efi`, `riscv64-efi` | PE32(+) of the relocated ELF `kernel.img` + modules ([`pe`]) |
//!
//! The kernel and the module area are laid out as GRUB 2.06's `util/mkimage.c` and
//! `util/grub-mkimagexx.c` lay them out ([`elf`]): the module info header, then each module
//! (`*.mod`, in [`moddep`] order) behind an 8-byte header, then the early config and the
//! prefix. EFI images are byte-identical to `grub-mkimage`'s; the `i386-pc` LZMA stream is an
//! equivalent one (see [`lzma`]).

mod elf;
pub mod lzma;
mod moddep;
mod pc;
mod pe;

use std::path::{Path, PathBuf};

pub use moddep::ModDeps;

use crate::error::{Error, ErrorKind, Result};
use elf::{EM_386, EM_AARCH64, EM_RISCV, EM_X86_64, Target};

/// An image format of `grub-mkimage -O`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// BIOS `core.img`.
    I386Pc,
    /// BIOS El Torito boot image: `cdboot.img` + `core.img`.
    I386PcEltorito,
    /// 32-bit UEFI PE image.
    I386Efi,
    /// 64-bit x86 UEFI PE32+ image.
    X86_64Efi,
    /// 64-bit ARM UEFI PE32+ image.
    Arm64Efi,
    /// 64-bit RISC-V UEFI PE32+ image.
    Riscv64Efi,
}

impl Format {
    /// `grub-mkimage -O`'s name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Format::I386Pc => "i386-pc",
            Format::I386PcEltorito => "i386-pc-eltorito",
            Format::I386Efi => "i386-efi",
            Format::X86_64Efi => "x86_64-efi",
            Format::Arm64Efi => "arm64-efi",
            Format::Riscv64Efi => "riscv64-efi",
        }
    }

    /// The module directory's name (`lib/grub/<dir>`).
    #[must_use]
    pub fn dir_name(self) -> &'static str {
        match self {
            Format::I386Pc | Format::I386PcEltorito => "i386-pc",
            f => f.name(),
        }
    }

    fn target(self) -> Target {
        let efi = |elf64, machine| Target {
            elf64,
            machine,
            efi: true,
            section_align: pe::FILE_ALIGNMENT,
            vaddr_offset: pe::HEADER_SIZE,
            link_addr: 0,
        };
        match self {
            Format::I386Pc | Format::I386PcEltorito => Target {
                elf64: false,
                machine: EM_386,
                efi: false,
                section_align: 1,
                vaddr_offset: 0,
                link_addr: pc::LINK_ADDR,
            },
            Format::I386Efi => efi(false, EM_386),
            Format::X86_64Efi => efi(true, EM_X86_64),
            Format::Arm64Efi => efi(true, EM_AARCH64),
            Format::Riscv64Efi => efi(true, EM_RISCV),
        }
    }

    fn pe_machine(self) -> u16 {
        match self {
            Format::I386Efi => 0x14c,
            Format::Arm64Efi => 0xaa64,
            Format::Riscv64Efi => 0x5064,
            _ => 0x8664,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to build: `grub-mkimage -O <format> -d <moddir> -p <prefix> -c <config> <modules>`.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The image format.
    pub format: Format,
    /// The platform's module directory.
    pub moddir: &'a Path,
    /// Modules to build in (their dependencies are added from `moddep.lst`).
    pub modules: &'a [&'a str],
    /// The prefix (`-p`); `None` for none.
    pub prefix: Option<&'a str>,
    /// The early configuration (`-c`), if any.
    pub config: Option<&'a [u8]>,
}

/// The GRUB releases whose module directories this assembler knows.
pub const KNOWN_VERSIONS: &[&str] = &["2.06", "2.12"];

/// Largest module directory file read (GRUB's largest module is ~ 200 KiB).
const MAX_FILE: u64 = 16 << 20;

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(
                ErrorKind::Missing,
                format!("GRUB {what} not found: {} is absent", path.display()),
            )
            .with_path(path)
        } else {
            Error::io(path, &format!("read GRUB's {what}"), e)
        }
    })?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "GRUB {what} {} is not a regular file of at most {MAX_FILE} bytes",
                path.display()
            ),
        )
        .with_path(path));
    }
    std::fs::read(path).map_err(|e| Error::io(path, &format!("read GRUB's {what}"), e))
}

/// The GRUB version of a module directory from its `modinfo.sh` (`grub_version`), if it says.
///
/// # Errors
/// `Io` reading the file.
pub fn modules_version(moddir: &Path) -> Result<Option<String>> {
    let p = moddir.join("modinfo.sh");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, "read GRUB's modinfo.sh", e)),
    };
    Ok(text.lines().find_map(|l| {
        l.strip_prefix("grub_version=")
            .map(|v| v.trim().trim_matches('"').to_string())
    }))
}

fn check_version(moddir: &Path) -> Result<()> {
    let Some(v) = modules_version(moddir)? else {
        return Ok(());
    };
    let upstream = v.split(['-', '+', '~']).next().unwrap_or(&v);
    if KNOWN_VERSIONS.contains(&upstream) {
        Ok(())
    } else {
        let p = moddir.join("modinfo.sh");
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: GRUB {v}, whose image layout imagetool does not know (known: {})",
                p.display(),
                KNOWN_VERSIONS.join(", ")
            ),
        )
        .with_path(&p))
    }
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Builds the image `grub-mkimage` builds for `req`.
///
/// # Errors
/// `Missing` for an absent module directory, module, `kernel.img`, `moddep.lst` or boot
/// image (the message names the path); `Unsupported` for a GRUB version whose layout is
/// unknown; `InvalidInput` for a malformed file (named) or an image over GRUB's size limits.
pub fn mkimage(req: &Request<'_>) -> Result<Vec<u8>> {
    let dir = req.moddir;
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::Missing,
            format!("GRUB module directory {} is absent", dir.display()),
        )
        .with_path(dir));
    }
    check_version(dir)?;
    for m in req.modules {
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("GRUB module name {m:?} is not letters, digits, - and _"),
            ));
        }
    }
    let dep_path = dir.join("moddep.lst");
    let deps_text = read(&dep_path, "module list")?;
    let deps = ModDeps::parse(&String::from_utf8_lossy(&deps_text), &dep_path)?;
    let order = deps.resolve(req.modules, &dep_path)?;

    let target = req.format.target();
    let word = if target.elf64 { 8 } else { 4 };
    let mut mods: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for m in &order {
        let p = dir.join(format!("{m}.mod"));
        let bytes = read(&p, &format!("module {m}"))?;
        mods.push((p, bytes));
    }
    let header = 8u64;
    // grub_module_info32 {magic, offset, size}; grub_module_info64 {magic, padding, offset, size}.
    let info_size: u64 = if target.elf64 { 24 } else { 12 };
    let mut total = info_size;
    for (_, b) in &mods {
        total += align(b.len() as u64, word) + header;
    }
    let config_size = req.config.map(|c| align(c.len() as u64 + 1, word));
    if let Some(c) = config_size {
        total += c + header;
    }
    let prefix_size = req.prefix.map(|p| align(p.len() as u64 + 1, word));
    if let Some(p) = prefix_size {
        total += p + header;
    }

    let kpath = dir.join("kernel.img");
    let kbytes = read(&kpath, "kernel")?;
    let kernel = elf::load_kernel(&kpath, kbytes, &target)?;
    let kernel_size = kernel.image.len() as u64;
    let mut core = kernel.image;
    core.reserve(total as usize);
    // grub_module_info: magic "mimg", offset of the first module header, total size.
    core.extend_from_slice(&0x676d_696du32.to_le_bytes());
    if target.elf64 {
        core.extend_from_slice(&0u32.to_le_bytes());
        core.extend_from_slice(&info_size.to_le_bytes());
        core.extend_from_slice(&total.to_le_bytes());
    } else {
        core.extend_from_slice(&(info_size as u32).to_le_bytes());
        core.extend_from_slice(&(total as u32).to_le_bytes());
    }
    let object = |core: &mut Vec<u8>, kind: u32, data: &[u8], size: u64| {
        core.extend_from_slice(&kind.to_le_bytes());
        core.extend_from_slice(&((size + header) as u32).to_le_bytes());
        let start = core.len();
        core.extend_from_slice(data);
        core.resize(start + size as usize, 0);
    };
    for (_, b) in &mods {
        object(&mut core, 0, b, align(b.len() as u64, word));
    }
    if let (Some(c), Some(size)) = (req.config, config_size) {
        object(&mut core, 2, c, size);
    }
    if let (Some(p), Some(size)) = (req.prefix, prefix_size) {
        object(&mut core, 3, p.as_bytes(), size);
    }
    debug_assert_eq!(core.len() as u64, kernel_size + total);

    match req.format {
        Format::I386Pc | Format::I386PcEltorito => pc::assemble(
            dir,
            &core,
            kernel_size,
            kernel.bss_size,
            req.format == Format::I386PcEltorito,
        ),
        f => Ok(pe::build(&pe::PeInput {
            pe64: target.elf64,
            machine: f.pe_machine(),
            core: &core,
            kernel_size,
            exec_size: kernel.exec_size,
            total_module_size: total,
            entry: kernel.start_address,
            reloc: &kernel.reloc,
        })),
    }
}
