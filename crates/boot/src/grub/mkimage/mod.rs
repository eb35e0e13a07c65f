//! `grub-mkimage` in Rust: GRUB's boot images assembled from a platform's module directory
//! (`<grub>/lib/grub/<platform>/`) without running any program.
//!
//! | format | image |
//! |---|---|
//! | `i386-pc` | `diskboot.img` + `lzma_decompress.img` + LZMA(kernel + modules) (`pc.rs`) |
//! | `i386-pc-eltorito` | `cdboot.img` + the `i386-pc` image |
//! | `x86_64-efi`, `i386-efi`, `arm64-efi`, `riscv64-efi` | PE32(+) of the relocated ELF `kernel.img` + modules (`pe.rs`) |
//!
//! The kernel and the module area are laid out as GRUB 2.06's `util/mkimage.c` and
//! `util/grub-mkimagexx.c` lay them out (`elf.rs`): the module info header, then each module
//! (`*.mod`, in [`ModDeps`] order) behind an 8-byte header, then the early config and the
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal RISC-V 64 relocatable "kernel.img" (Debian 12 has no riscv64 GRUB to take one
    /// from): `.text` with auipc/addi (PCREL_HI20/LO12_I), lui/addi (HI20/LO12_I) and a jal,
    /// `.data` with a 64-bit absolute address, `.bss`.
    fn riscv_kernel() -> Vec<u8> {
        let text: Vec<u8> = [
            0x0000_0517u32, // auipc a0, 0      PCREL_HI20 data_sym
            0x0005_0513,    // addi a0, a0, 0   PCREL_LO12_I _start (the auipc)
            0x0000_05b7,    // lui a1, 0        HI20 data_sym
            0x0005_8593,    // addi a1, a1, 0   LO12_I data_sym
            0x0000_00ef,    // jal ra, 0        JAL func
            0x0000_0013,
            0x0000_8067, // func: ret
            0x0000_0013,
        ]
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
        let data = [0u8; 16];
        let strtab = b"\0_start\0data_sym\0func\0";
        let shstr = b"\0.text\0.data\0.bss\0.symtab\0.strtab\0.rela.text\0.rela.data\0.shstrtab\0";
        let name = |n: &[u8]| shstr.windows(n.len()).position(|w| w == n).unwrap() as u32;
        let sym = |name: u32, info: u8, shndx: u16, value: u64| {
            let mut b = Vec::new();
            b.extend_from_slice(&name.to_le_bytes());
            b.push(info);
            b.push(0);
            b.extend_from_slice(&shndx.to_le_bytes());
            b.extend_from_slice(&value.to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes());
            b
        };
        let symtab = [
            sym(0, 0, 0, 0),
            sym(1, 0x10, 1, 0),   // _start
            sym(8, 0x10, 2, 8),   // data_sym
            sym(17, 0x12, 1, 24), // func
        ]
        .concat();
        let rela = |off: u64, kind: u32, sym: u32, addend: i64| {
            let mut b = Vec::new();
            b.extend_from_slice(&off.to_le_bytes());
            b.extend_from_slice(&((u64::from(sym) << 32) | u64::from(kind)).to_le_bytes());
            b.extend_from_slice(&addend.to_le_bytes());
            b
        };
        let rela_text = [
            rela(0, 23, 2, 0),
            rela(4, 24, 1, 0),
            rela(8, 26, 2, 0),
            rela(12, 27, 2, 0),
            rela(16, 17, 3, 0),
        ]
        .concat();
        let rela_data = rela(0, 2, 1, 4);
        let mut f = vec![0u8; 64];
        let place = |f: &mut Vec<u8>, b: &[u8]| {
            while !f.len().is_multiple_of(8) {
                f.push(0);
            }
            let at = f.len() as u64;
            f.extend_from_slice(b);
            at
        };
        let o_text = place(&mut f, &text);
        let o_data = place(&mut f, &data);
        let o_sym = place(&mut f, &symtab);
        let o_str = place(&mut f, strtab);
        let o_rt = place(&mut f, &rela_text);
        let o_rd = place(&mut f, &rela_data);
        let o_shs = place(&mut f, shstr);
        let shoff = place(&mut f, &[]);
        #[allow(clippy::too_many_arguments)]
        let sh = |n: u32,
                  t: u32,
                  fl: u64,
                  off: u64,
                  size: u64,
                  link: u32,
                  info: u32,
                  al: u64,
                  es: u64| {
            let mut b = Vec::new();
            for v in [n, t] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            for v in [fl, 0, off, size] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            for v in [link, info] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            for v in [al, es] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b
        };
        let shdrs = [
            vec![0; 64],
            sh(name(b".text\0"), 1, 6, o_text, 32, 0, 0, 4, 0),
            sh(name(b".data\0"), 1, 3, o_data, 16, 0, 0, 8, 0),
            sh(name(b".bss\0"), 8, 3, o_data, 32, 0, 0, 8, 0),
            sh(
                name(b".symtab\0"),
                2,
                0,
                o_sym,
                symtab.len() as u64,
                5,
                1,
                8,
                24,
            ),
            sh(
                name(b".strtab\0"),
                3,
                0,
                o_str,
                strtab.len() as u64,
                0,
                0,
                1,
                0,
            ),
            sh(
                name(b".rela.text\0"),
                4,
                0x40,
                o_rt,
                rela_text.len() as u64,
                4,
                1,
                8,
                24,
            ),
            sh(
                name(b".rela.data\0"),
                4,
                0x40,
                o_rd,
                rela_data.len() as u64,
                4,
                2,
                8,
                24,
            ),
            sh(
                name(b".shstrtab\0"),
                3,
                0,
                o_shs,
                shstr.len() as u64,
                0,
                0,
                1,
                0,
            ),
        ]
        .concat();
        f.extend_from_slice(&shdrs);
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        f[18..20].copy_from_slice(&EM_RISCV.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        f[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        f[0x3C..0x3E].copy_from_slice(&9u16.to_le_bytes());
        f[0x3E..0x40].copy_from_slice(&8u16.to_le_bytes());
        f
    }

    fn u32at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn test_riscv64_efi_structure_and_relocations() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("kernel.img"), riscv_kernel()).unwrap();
        std::fs::write(d.join("moddep.lst"), b"fat: fshelp\nfshelp:\n").unwrap();
        std::fs::write(d.join("fat.mod"), b"FATMOD").unwrap();
        std::fs::write(d.join("fshelp.mod"), b"FSHELPMOD!").unwrap();
        let img = mkimage(&Request {
            format: Format::Riscv64Efi,
            moddir: d,
            modules: &["fat"],
            prefix: Some("/grub"),
            config: Some(b"set x=1\n"),
        })
        .unwrap();
        // PE32+ for RISC-V 64, four sections, entry at _start (header 4096 + 0).
        assert_eq!(&img[..2], b"MZ");
        assert_eq!(&img[0x80..0x84], b"PE\0\0");
        assert_eq!(u16::from_le_bytes([img[0x84], img[0x85]]), 0x5064);
        assert_eq!(u16::from_le_bytes([img[0x86], img[0x87]]), 4);
        let o = 0x98;
        assert_eq!(u16::from_le_bytes([img[o], img[o + 1]]), 0x20b);
        assert_eq!(u32at(&img, o + 16), 4096, "entry");
        assert_eq!(u32at(&img, o + 4), 4096, "code size");
        // Instructions patched (GRUB's formulas): data_sym at 8200, func at 4120.
        let t = 4096;
        assert_eq!(u32at(&img, t), 0x0000_1517, "auipc +0x1000");
        assert_eq!(u32at(&img, t + 4), 0x0085_0513, "addi +8");
        assert_eq!(u32at(&img, t + 8), 0x0000_25b7, "lui 0x2000");
        assert_eq!(u32at(&img, t + 12), 0x0085_8593, "addi 8");
        assert_eq!(u32at(&img, t + 16), 0x0080_00ef, "jal +8");
        // .data at RVA 8192 holds _start + 4.
        assert_eq!(
            u64::from_le_bytes(img[8192..8200].try_into().unwrap()),
            4100
        );
        // Modules after the kernel (8192 bytes): mimg header, fshelp before fat, config, prefix.
        let m = 4096 + 8192;
        assert_eq!(u32at(&img, m), 0x676d_696d);
        assert_eq!(
            u64::from_le_bytes(img[m + 8..m + 16].try_into().unwrap()),
            24
        );
        assert_eq!(&img[m + 24 + 8..m + 24 + 18], b"FSHELPMOD!");
        assert_eq!(u32at(&img, m + 24 + 4), 8 + 16, "fshelp padded to 16");
        assert_eq!(&img[m + 48 + 8..m + 48 + 14], b"FATMOD");
        let cfg = m + 48 + 16;
        assert_eq!(u32at(&img, cfg), 2, "OBJ_TYPE_CONFIG");
        assert_eq!(&img[cfg + 8..cfg + 16], b"set x=1\n");
        let pfx = cfg + 8 + 16;
        assert_eq!(u32at(&img, pfx), 3, "OBJ_TYPE_PREFIX");
        assert_eq!(&img[pfx + 8..pfx + 14], b"/grub\0");
        // .reloc: the fourth section header; HI20 (5) and LOW12I (7) fixups in page 0x1000,
        // DIR64 (10) for .data in page 0x2000, padded to 4096 bytes.
        let s4 = o + 240 + 3 * 40;
        assert_eq!(&img[s4..s4 + 6], b".reloc");
        let raw = u32at(&img, s4 + 20) as usize;
        assert_eq!(u32at(&img, s4 + 16), 4096);
        assert_eq!(u32at(&img, raw), 0x1000);
        assert_eq!(u32at(&img, raw + 4), 16);
        assert_eq!(u16::from_le_bytes([img[raw + 8], img[raw + 9]]), 0x5008);
        assert_eq!(u16::from_le_bytes([img[raw + 10], img[raw + 11]]), 0x700c);
        assert_eq!(u32at(&img, raw + 16), 0x2000);
        assert_eq!(u16::from_le_bytes([img[raw + 24], img[raw + 25]]), 0xa000);
        assert_eq!(img.len(), raw + 4096);
        // The base relocation directory points at it.
        assert_eq!(u32at(&img, o + 112 + 5 * 8), u32at(&img, s4 + 12));
    }

    #[test]
    fn test_malformed_kernels_are_named_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("moddep.lst"), b"").unwrap();
        let req = Request {
            format: Format::Riscv64Efi,
            moddir: d,
            modules: &[],
            prefix: Some("/grub"),
            config: None,
        };
        let e = mkimage(&req).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(e.to_string().contains("kernel.img is absent"), "{e}");
        let good = riscv_kernel();
        for (what, bytes) in [
            ("truncated", good[..200].to_vec()),
            (
                "not ELF",
                b"MZ not an elf at all, just some bytes to be long enough....".to_vec(),
            ),
            ("wrong machine", {
                let mut b = good.clone();
                b[18] = 0x3e;
                b
            }),
        ] {
            std::fs::write(d.join("kernel.img"), &bytes).unwrap();
            let e = mkimage(&req).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
            assert!(e.to_string().contains("kernel.img"), "{what}: {e}");
        }
        // x86 image from the RISC-V kernel: wrong machine, named.
        std::fs::write(d.join("kernel.img"), &good).unwrap();
        let e = mkimage(&Request {
            format: Format::X86_64Efi,
            ..req.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("ELF machine 243"), "{e}");
        assert!(
            mkimage(&Request {
                moddir: &d.join("nope"),
                ..req
            })
            .unwrap_err()
            .to_string()
            .contains("nope is absent")
        );
    }
}
