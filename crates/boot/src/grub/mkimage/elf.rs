//! GRUB's `kernel.img`, an ELF object, laid out as `grub-mkimage` lays it out: code sections,
//! then data, then (EFI) `.bss` made explicit; for EFI the relocations resolved against
//! address 0 of the PE image, absolute ones listed as PE base relocations.

use std::path::Path;

use super::pe::Fixups;
use crate::error::{Error, ErrorKind, Result};

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;

/// ELF machine numbers.
pub(crate) const EM_386: u16 = 3;
pub(crate) const EM_X86_64: u16 = 62;
pub(crate) const EM_AARCH64: u16 = 183;
pub(crate) const EM_RISCV: u16 = 243;

/// What `grub-mkimage`'s image target says about the kernel's layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// ELF64 (`voidp_sizeof == 8`).
    pub elf64: bool,
    /// The ELF machine the kernel must be for.
    pub machine: u16,
    /// A PE image (relocatable kernel, `.bss` kept, relocations translated).
    pub efi: bool,
    /// Section alignment of the image (4096 for PE, 1 for the PC).
    pub section_align: u64,
    /// Where the kernel starts in the image's address space (the PE header size, or 0).
    pub vaddr_offset: u64,
    /// The address a non-relocatable kernel is linked at.
    pub link_addr: u64,
}

/// The kernel as laid out in the image.
#[derive(Debug)]
pub(crate) struct Kernel {
    /// The sections at their places, `kernel_size` bytes.
    pub image: Vec<u8>,
    /// Bytes of code (the `.text` PE section).
    pub exec_size: u64,
    /// `.bss` beyond the image (the PC's check that the kernel fits below 0x68000).
    pub bss_size: u64,
    /// The entry point (`_start`/`start`) in the image's address space (EFI).
    pub start_address: u64,
    /// The PE base relocation blocks (EFI), a multiple of the section alignment.
    pub reloc: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    addralign: u64,
    entsize: u64,
}

struct Elf<'a> {
    path: &'a Path,
    data: Vec<u8>,
    elf64: bool,
    shdrs: Vec<Shdr>,
    shstrtab: u64,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{}: {what}", path.display()),
    )
    .with_path(path)
}

fn align_up(x: u64, a: u64) -> u64 {
    if a <= 1 {
        return x;
    }
    x.wrapping_add(a - 1) & !(a - 1)
}

impl<'a> Elf<'a> {
    fn parse(path: &'a Path, data: Vec<u8>, target: &Target) -> Result<Self> {
        let ident_ok = data.len() >= 52
            && data.starts_with(b"\x7fELF")
            && data[6] == 1
            && data[5] == 1
            && data[4] == if target.elf64 { 2 } else { 1 };
        if !ident_ok {
            return Err(bad(
                path,
                format!(
                    "not a little-endian ELF{} object (GRUB's kernel.img)",
                    if target.elf64 { 64 } else { 32 }
                ),
            ));
        }
        let mut elf = Elf {
            path,
            data,
            elf64: target.elf64,
            shdrs: Vec::new(),
            shstrtab: 0,
        };
        if elf.u32(20)? != 1 {
            return Err(bad(path, "ELF version is not 1"));
        }
        let machine = elf.u16(18)?;
        if machine != target.machine {
            return Err(bad(
                path,
                format!(
                    "ELF machine {machine}, expected {} for this GRUB platform",
                    target.machine
                ),
            ));
        }
        let (shoff, shentsize, shnum, shstrndx) = if elf.elf64 {
            (
                elf.u64(0x28)?,
                elf.u16(0x3A)?,
                elf.u16(0x3C)?,
                elf.u16(0x3E)?,
            )
        } else {
            (
                u64::from(elf.u32(0x20)?),
                elf.u16(0x2E)?,
                elf.u16(0x30)?,
                elf.u16(0x32)?,
            )
        };
        let min = if elf.elf64 { 64 } else { 40 };
        if usize::from(shentsize) < min {
            return Err(bad(path, format!("section header size {shentsize}")));
        }
        for i in 0..u64::from(shnum) {
            let at = i
                .checked_mul(u64::from(shentsize))
                .and_then(|o| o.checked_add(shoff))
                .ok_or_else(|| bad(path, "section headers beyond the file"))?;
            let s = if elf.elf64 {
                Shdr {
                    name: elf.u32(at)?,
                    kind: elf.u32(at + 4)?,
                    flags: elf.u64(at + 8)?,
                    addr: elf.u64(at + 16)?,
                    offset: elf.u64(at + 24)?,
                    size: elf.u64(at + 32)?,
                    link: elf.u32(at + 40)?,
                    info: elf.u32(at + 44)?,
                    addralign: elf.u64(at + 48)?,
                    entsize: elf.u64(at + 56)?,
                }
            } else {
                Shdr {
                    name: elf.u32(at)?,
                    kind: elf.u32(at + 4)?,
                    flags: u64::from(elf.u32(at + 8)?),
                    addr: u64::from(elf.u32(at + 12)?),
                    offset: u64::from(elf.u32(at + 16)?),
                    size: u64::from(elf.u32(at + 20)?),
                    link: elf.u32(at + 24)?,
                    info: elf.u32(at + 28)?,
                    addralign: u64::from(elf.u32(at + 32)?),
                    entsize: u64::from(elf.u32(at + 36)?),
                }
            };
            elf.shdrs.push(s);
        }
        let strtab = elf.shdrs.get(usize::from(shstrndx)).ok_or_else(|| {
            bad(
                path,
                format!("section name table {shstrndx} does not exist"),
            )
        })?;
        elf.shstrtab = strtab.offset;
        Ok(elf)
    }

    fn range(&self, at: u64, len: u64) -> Result<std::ops::Range<usize>> {
        let end = at
            .checked_add(len)
            .filter(|&e| e <= self.data.len() as u64)
            .ok_or_else(|| {
                bad(
                    self.path,
                    format!("{len} bytes at offset {at:#x} are beyond the end of the file"),
                )
            })?;
        Ok(at as usize..end as usize)
    }

    fn bytes<const N: usize>(&self, at: u64) -> Result<[u8; N]> {
        let r = self.range(at, N as u64)?;
        let mut b = [0; N];
        b.copy_from_slice(&self.data[r]);
        Ok(b)
    }
    fn u16(&self, at: u64) -> Result<u16> {
        Ok(u16::from_le_bytes(self.bytes(at)?))
    }
    fn u32(&self, at: u64) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(at)?))
    }
    fn u64(&self, at: u64) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(at)?))
    }
    fn put_u16(&mut self, at: u64, v: u16) -> Result<()> {
        let r = self.range(at, 2)?;
        self.data[r].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn put_u32(&mut self, at: u64, v: u32) -> Result<()> {
        let r = self.range(at, 4)?;
        self.data[r].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn put_u64(&mut self, at: u64, v: u64) -> Result<()> {
        let r = self.range(at, 8)?;
        self.data[r].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn put_u8(&mut self, at: u64, v: u8) -> Result<()> {
        let r = self.range(at, 1)?;
        self.data[r.start] = v;
        Ok(())
    }
    fn u8(&self, at: u64) -> Result<u8> {
        Ok(self.bytes::<1>(at)?[0])
    }

    /// A NUL-terminated name at `off` in the string table at `table`.
    fn name(&self, table: u64, off: u32) -> Result<&[u8]> {
        let start = table
            .checked_add(u64::from(off))
            .filter(|&s| s < self.data.len() as u64)
            .ok_or_else(|| bad(self.path, format!("name offset {off:#x} beyond the file")))?
            as usize;
        let rest = &self.data[start..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(self.path, "unterminated name"))?;
        Ok(&rest[..len])
    }

    fn section_name(&self, s: &Shdr) -> Result<&[u8]> {
        self.name(self.shstrtab, s.name)
    }
}

struct Rules {
    relocatable: bool,
}

impl Rules {
    fn is_text(&self, s: &Shdr) -> bool {
        if !self.relocatable && s.kind != SHT_PROGBITS {
            return false;
        }
        s.flags & (SHF_EXECINSTR | SHF_ALLOC) == SHF_EXECINSTR | SHF_ALLOC
    }
    fn is_data(&self, s: &Shdr) -> bool {
        if !self.relocatable && s.kind != SHT_PROGBITS {
            return false;
        }
        s.flags & (SHF_EXECINSTR | SHF_ALLOC) == SHF_ALLOC && s.kind != SHT_NOBITS
    }
    fn is_bss(&self, s: &Shdr) -> bool {
        self.relocatable
            && s.flags & (SHF_EXECINSTR | SHF_ALLOC) == SHF_ALLOC
            && s.kind == SHT_NOBITS
    }
    fn is_kept(&self, s: &Shdr) -> bool {
        self.is_text(s) || self.is_data(s) || self.is_bss(s)
    }
}

/// Whether the relocation section `s` applies to a kept section (`.rela.X` → `.X`; other
/// names are kept), as grub-mkimage decides it.
fn is_kept_reloc(elf: &Elf<'_>, rules: &Rules, s: &Shdr) -> Result<bool> {
    let name = elf.section_name(s)?;
    let target: &[u8] = if let Some(rest) = name.strip_prefix(b".rela.") {
        &name[5..5 + rest.len() + 1]
    } else if let Some(rest) = name.strip_prefix(b".rel.") {
        &name[4..4 + rest.len() + 1]
    } else {
        return Ok(true);
    };
    for t in &elf.shdrs {
        if elf.section_name(t)? == target {
            return Ok(rules.is_kept(t));
        }
    }
    Ok(false)
}

/// Loads `kernel.img` and lays it out for `target`; `total_module_size` zero bytes follow
/// the kernel in the returned image, for the caller to fill.
pub(crate) fn load_kernel(path: &Path, data: Vec<u8>, target: &Target) -> Result<Kernel> {
    let mut elf = Elf::parse(path, data, target)?;
    let rules = Rules {
        relocatable: target.efi,
    };
    let vo = target.vaddr_offset;
    let n = elf.shdrs.len();
    let mut addrs = vec![0u64; n];
    let mut vaddrs = vec![0u64; n];

    let put = |s: &Shdr, cur: u64| -> u64 {
        let mut cur = cur;
        if s.addralign != 0 {
            cur = align_up(cur.wrapping_add(vo), s.addralign).wrapping_sub(vo);
        }
        if !rules.relocatable {
            cur = s.addr.wrapping_sub(target.link_addr);
        }
        cur
    };
    // .text
    let mut kernel_size = 0u64;
    for (i, s) in elf.shdrs.iter().enumerate() {
        if rules.is_text(s) {
            let at = put(s, kernel_size);
            addrs[i] = at;
            kernel_size = at.wrapping_add(s.size);
            if !rules.relocatable && s.addr != target.link_addr {
                return Err(bad(
                    path,
                    format!(
                        "miscompiled: its start address is {:#x} instead of {:#x}",
                        s.addr, target.link_addr
                    ),
                ));
            }
        }
    }
    kernel_size = align_up(kernel_size.wrapping_add(vo), target.section_align).wrapping_sub(vo);
    let exec_size = kernel_size;
    // .data
    for (i, s) in elf.shdrs.iter().enumerate() {
        if rules.is_data(s) {
            let at = put(s, kernel_size);
            addrs[i] = at;
            kernel_size = at.wrapping_add(s.size);
        }
    }
    let bss_start = kernel_size;
    let mut end = kernel_size;
    for (i, s) in elf.shdrs.iter().enumerate() {
        if rules.is_bss(s) {
            let at = put(s, end);
            addrs[i] = at;
            end = at.wrapping_add(s.size);
        }
        vaddrs[i] = addrs[i].wrapping_add(vo);
    }
    end = align_up(end.wrapping_add(vo), target.section_align).wrapping_sub(vo);
    // EFI keeps .bss in the file; the PC kernel has none among its kept sections.
    kernel_size = end;

    let mut bss_size = 0;
    if !rules.relocatable {
        let mut cur = kernel_size;
        for s in &elf.shdrs {
            if s.kind == SHT_NOBITS {
                cur = s.addr.wrapping_sub(target.link_addr).wrapping_add(s.size);
            }
        }
        bss_size = cur.wrapping_sub(kernel_size);
    }

    const LIMIT: u64 = 64 << 20;
    let mut got_off = 0;
    let mut got_size = 0;
    let mut symtab = None;
    if rules.relocatable {
        symtab = elf.shdrs.iter().position(|s| s.kind == SHT_SYMTAB);
        if symtab.is_none() {
            return Err(bad(path, "no symbol table"));
        }
        if target.machine == EM_AARCH64 {
            kernel_size = align_up(kernel_size, 16);
            got_size = 8 * count_got(&elf)?;
            got_off = kernel_size;
            kernel_size += align_up(got_size, 16);
        }
        kernel_size = align_up(kernel_size, super::pe::FILE_ALIGNMENT);
    }
    if kernel_size > LIMIT {
        return Err(bad(
            path,
            format!("lays out to {kernel_size} bytes, more than a GRUB kernel can be"),
        ));
    }
    let mut image = vec![0u8; kernel_size as usize];
    let mut start_address = 0;
    let mut reloc = Vec::new();
    if let Some(symtab) = symtab {
        let ctx = Ctx {
            target,
            rules: &rules,
            addrs: &addrs,
            vaddrs: &vaddrs,
            symtab,
        };
        let (syms, start) = ctx.relocate_symbols(&elf, bss_start, end)?;
        start_address = start;
        ctx.relocate_addrs(&mut elf, &syms, &mut image, got_off)?;
        reloc = ctx.make_reloc_section(&elf, got_off, got_size)?;
    }
    for (i, s) in elf.shdrs.iter().enumerate() {
        if !rules.is_kept(s) {
            continue;
        }
        let at = addrs[i];
        let dst = at
            .checked_add(s.size)
            .filter(|&e| e <= kernel_size)
            .ok_or_else(|| bad(path, format!("section {i} lies outside the kernel")))?;
        if s.kind != SHT_NOBITS {
            let src = elf.range(s.offset, s.size)?;
            image[at as usize..dst as usize].copy_from_slice(&elf.data[src]);
        }
    }
    Ok(Kernel {
        image,
        exec_size,
        bss_size,
        start_address,
        reloc,
    })
}

const R_AARCH64_ABS64: u32 = 257;
const R_AARCH64_PREL32: u32 = 261;
const R_AARCH64_ADR_PREL_PG_HI21: u32 = 275;
const R_AARCH64_ADD_ABS_LO12_NC: u32 = 277;
const R_AARCH64_JUMP26: u32 = 282;
const R_AARCH64_CALL26: u32 = 283;
const R_AARCH64_LDST64_ABS_LO12_NC: u32 = 286;
const R_AARCH64_ADR_GOT_PAGE: u32 = 311;
const R_AARCH64_LD64_GOT_LO12_NC: u32 = 312;

/// The GOT entries an arm64 kernel needs: one per `ADR_GOT_PAGE` in any relocation table.
fn count_got(elf: &Elf<'_>) -> Result<u64> {
    let mut n = 0u64;
    for s in &elf.shdrs {
        if s.kind != SHT_REL && s.kind != SHT_RELA {
            continue;
        }
        for r in relocs(elf, s)? {
            if r.kind == R_AARCH64_ADR_GOT_PAGE {
                n += 1;
            }
        }
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy)]
struct Rel {
    offset: u64,
    sym: u32,
    kind: u32,
    /// The raw `r_info` (compared whole when matching GOT pairs).
    info: u64,
    addend: u64,
}

fn relocs(elf: &Elf<'_>, s: &Shdr) -> Result<Vec<Rel>> {
    let min = match (elf.elf64, s.kind == SHT_RELA) {
        (true, true) => 24,
        (true, false) => 16,
        (false, true) => 12,
        (false, false) => 8,
    };
    if s.entsize < min {
        return Err(bad(
            elf.path,
            format!(
                "relocation entry size {} (expected at least {min})",
                s.entsize
            ),
        ));
    }
    elf.range(s.offset, s.size)?;
    let count = s.size / s.entsize;
    let mut out = Vec::with_capacity(count as usize);
    for j in 0..count {
        let at = s.offset + j * s.entsize;
        let r = if elf.elf64 {
            let info = elf.u64(at + 8)?;
            Rel {
                offset: elf.u64(at)?,
                sym: (info >> 32) as u32,
                kind: info as u32,
                info,
                addend: if s.kind == SHT_RELA {
                    elf.u64(at + 16)?
                } else {
                    0
                },
            }
        } else {
            let info = u64::from(elf.u32(at + 4)?);
            Rel {
                offset: u64::from(elf.u32(at)?),
                sym: (info >> 8) as u32,
                kind: (info & 0xff) as u32,
                info,
                // Elf32 addends are sign-extended to the 32-bit address arithmetic below.
                addend: if s.kind == SHT_RELA {
                    u64::from(elf.u32(at + 8)?)
                } else {
                    0
                },
            }
        };
        out.push(r);
    }
    Ok(out)
}

struct Ctx<'t> {
    target: &'t Target,
    rules: &'t Rules,
    addrs: &'t [u64],
    vaddrs: &'t [u64],
    symtab: usize,
}

impl Ctx<'_> {
    fn mask(&self, v: u64) -> u64 {
        if self.target.elf64 {
            v
        } else {
            v & 0xffff_ffff
        }
    }

    /// Every symbol's address in the image (GRUB rewrites the symbol table in place), and
    /// the entry point.
    fn relocate_symbols(&self, elf: &Elf<'_>, bss_start: u64, end: u64) -> Result<(Vec<u64>, u64)> {
        let st = &elf.shdrs[self.symtab];
        let strtab = elf
            .shdrs
            .get(st.link as usize)
            .ok_or_else(|| bad(elf.path, "symbol table without a string table"))?
            .offset;
        let min = if elf.elf64 { 24 } else { 16 };
        if st.entsize < min {
            return Err(bad(elf.path, format!("symbol size {}", st.entsize)));
        }
        elf.range(st.offset, st.size)?;
        let count = st.size / st.entsize;
        let mut values = Vec::with_capacity(count as usize);
        let mut start = None;
        for i in 0..count {
            let at = st.offset + i * st.entsize;
            let (name_off, value, shndx) = if elf.elf64 {
                (elf.u32(at)?, elf.u64(at + 8)?, elf.u16(at + 6)?)
            } else {
                (elf.u32(at)?, u64::from(elf.u32(at + 4)?), elf.u16(at + 14)?)
            };
            let name = elf.name(strtab, name_off)?;
            let v = if shndx == SHN_ABS {
                values.push(value);
                continue;
            } else if shndx == SHN_UNDEF {
                if name_off != 0 && name == b"__bss_start" {
                    bss_start
                } else if name_off != 0 && name == b"_end" {
                    end
                } else if name_off != 0 {
                    return Err(bad(
                        elf.path,
                        format!("undefined symbol {}", String::from_utf8_lossy(name)),
                    ));
                } else {
                    values.push(value);
                    continue;
                }
            } else {
                let base = self
                    .vaddrs
                    .get(usize::from(shndx))
                    .ok_or_else(|| bad(elf.path, format!("section {shndx} does not exist")))?;
                self.mask(value.wrapping_add(*base))
            };
            values.push(v);
            if start.is_none() && (name == b"_start" || name == b"start") {
                start = Some(v);
            }
        }
        let start = start.ok_or_else(|| bad(elf.path, "start symbol is not defined"))?;
        Ok((values, start))
    }

    fn sym(&self, elf: &Elf<'_>, syms: &[u64], i: u32) -> Result<u64> {
        syms.get(i as usize).copied().ok_or_else(|| {
            bad(
                elf.path,
                format!("relocation names symbol {i}, which does not exist"),
            )
        })
    }

    fn relocate_addrs(
        &self,
        elf: &mut Elf<'_>,
        syms: &[u64],
        image: &mut [u8],
        got_off: u64,
    ) -> Result<()> {
        let vo = self.target.vaddr_offset;
        let mut got_next = got_off;
        let mut unmatched_got = 0u32;
        for si in 0..elf.shdrs.len() {
            let s = elf.shdrs[si].clone();
            if s.kind != SHT_REL && s.kind != SHT_RELA {
                continue;
            }
            if !self.rules.is_kept(&s) && !is_kept_reloc(elf, self.rules, &s)? {
                continue;
            }
            let ti = s.info as usize;
            let tsec = elf
                .shdrs
                .get(ti)
                .ok_or_else(|| {
                    bad(
                        elf.path,
                        format!("relocations for section {ti}, which does not exist"),
                    )
                })?
                .clone();
            let tsa = self.addrs[ti];
            let rels = relocs(elf, &s)?;
            for (j, r) in rels.iter().enumerate() {
                let place = tsec
                    .offset
                    .checked_add(r.offset)
                    .ok_or_else(|| bad(elf.path, "relocation offset overflows"))?;
                let sym = self.sym(elf, syms, r.sym)?;
                let addend = r.addend;
                let unsupported = || {
                    bad(
                        elf.path,
                        format!("relocation {:#x} is not implemented", r.kind),
                    )
                };
                match self.target.machine {
                    EM_386 => match r.kind {
                        0 => {}
                        1 => {
                            let v = elf
                                .u32(place)?
                                .wrapping_add(addend as u32)
                                .wrapping_add(sym as u32);
                            elf.put_u32(place, v)?;
                        }
                        2 => {
                            let v = elf
                                .u32(place)?
                                .wrapping_add(addend as u32)
                                .wrapping_add(sym as u32)
                                .wrapping_sub(tsa as u32)
                                .wrapping_sub(r.offset as u32)
                                .wrapping_sub(vo as u32);
                            elf.put_u32(place, v)?;
                        }
                        _ => return Err(unsupported()),
                    },
                    EM_X86_64 => match r.kind {
                        0 => {}
                        1 => {
                            let v = elf.u64(place)?.wrapping_add(addend).wrapping_add(sym);
                            elf.put_u64(place, v)?;
                        }
                        2 | 4 => {
                            let v = u64::from(elf.u32(place)?)
                                .wrapping_add(addend)
                                .wrapping_add(sym)
                                .wrapping_sub(tsa)
                                .wrapping_sub(r.offset)
                                .wrapping_sub(vo);
                            elf.put_u32(place, v as u32)?;
                        }
                        24 => {
                            let v = elf
                                .u64(place)?
                                .wrapping_add(addend)
                                .wrapping_add(sym)
                                .wrapping_sub(tsa)
                                .wrapping_sub(r.offset)
                                .wrapping_sub(vo);
                            elf.put_u64(place, v)?;
                        }
                        10 | 11 => {
                            let v = u64::from(elf.u32(place)?)
                                .wrapping_add(addend)
                                .wrapping_add(sym);
                            elf.put_u32(place, v as u32)?;
                        }
                        _ => return Err(unsupported()),
                    },
                    EM_AARCH64 => {
                        let sym_addr = sym.wrapping_add(addend);
                        let here = r.offset.wrapping_add(tsa).wrapping_add(vo);
                        match r.kind {
                            R_AARCH64_ABS64 => {
                                let v = elf.u64(place)?.wrapping_add(sym_addr);
                                elf.put_u64(place, v)?;
                            }
                            R_AARCH64_PREL32 => {
                                let v = u64::from(elf.u32(place)?)
                                    .wrapping_add(sym_addr)
                                    .wrapping_sub(here);
                                elf.put_u32(place, v as u32)?;
                            }
                            R_AARCH64_ADD_ABS_LO12_NC => {
                                let v = (elf.u32(place)? & 0xffc0_03ff)
                                    | ((sym_addr << 10) as u32 & !0xffc0_03ff);
                                elf.put_u32(place, v)?;
                            }
                            R_AARCH64_LDST64_ABS_LO12_NC => {
                                set_ldst64(elf, place, sym_addr)?;
                            }
                            R_AARCH64_JUMP26 | R_AARCH64_CALL26 => {
                                let off = sym_addr.wrapping_sub(here) as i64;
                                if !(-(1i64 << 27)..(1i64 << 27)).contains(&off) {
                                    return Err(bad(elf.path, "CALL26 relocation out of range"));
                                }
                                let v = (elf.u32(place)? & 0xfc00_0000)
                                    | ((off >> 2) as u32 & !0xfc00_0000);
                                elf.put_u32(place, v)?;
                            }
                            R_AARCH64_ADR_GOT_PAGE => {
                                let slot = got_next;
                                let gp = slot.wrapping_add(vo);
                                let gpoffset = ((gp & !0xfff).wrapping_sub(here & !0xfff)) as i64;
                                let dst = image
                                    .get_mut(slot as usize..slot as usize + 8)
                                    .ok_or_else(|| bad(elf.path, "GOT beyond the kernel"))?;
                                dst.copy_from_slice(&sym_addr.to_le_bytes());
                                unmatched_got += 1;
                                set_hi21(elf, place, gpoffset)?;
                                let pair = rels[j + 1..].iter().find(|r2| {
                                    (r2.info >> 32) == (r.info >> 32)
                                        && r2.addend == r.addend
                                        && r2.kind == R_AARCH64_LD64_GOT_LO12_NC
                                });
                                let Some(r2) = pair else {
                                    return Err(bad(
                                        elf.path,
                                        "ADR_GOT_PAGE without matching LD64_GOT_LO12_NC",
                                    ));
                                };
                                let place2 = tsec
                                    .offset
                                    .checked_add(r2.offset)
                                    .ok_or_else(|| bad(elf.path, "relocation offset overflows"))?;
                                set_ldst64(elf, place2, gp)?;
                                got_next += 8;
                            }
                            R_AARCH64_LD64_GOT_LO12_NC => {
                                if unmatched_got == 0 {
                                    return Err(bad(
                                        elf.path,
                                        "LD64_GOT_LO12_NC without matching ADR_GOT_PAGE",
                                    ));
                                }
                                unmatched_got -= 1;
                            }
                            R_AARCH64_ADR_PREL_PG_HI21 => {
                                let v = (sym_addr & !0xfff).wrapping_sub(here & !0xfff) as i64;
                                if v != i64::from(v as i32) {
                                    return Err(bad(
                                        elf.path,
                                        "ADR_PREL_PG_HI21 relocation out of range",
                                    ));
                                }
                                set_hi21(elf, place, v)?;
                            }
                            _ => return Err(unsupported()),
                        }
                    }
                    EM_RISCV => {
                        riscv(elf, &rels, j, place, &tsec, tsa, vo, syms, self)?;
                    }
                    m => return Err(bad(elf.path, format!("unknown ELF machine {m}"))),
                }
            }
        }
        Ok(())
    }

    fn make_reloc_section(&self, elf: &Elf<'_>, got_off: u64, got_size: u64) -> Result<Vec<u8>> {
        let mut fx = Fixups::new(self.target.section_align);
        for s in &elf.shdrs {
            if s.kind != SHT_REL && s.kind != SHT_RELA {
                continue;
            }
            if !is_kept_reloc(elf, self.rules, s)? {
                continue;
            }
            let base = *self.vaddrs.get(s.info as usize).ok_or_else(|| {
                bad(
                    elf.path,
                    format!("relocations for section {}, which does not exist", s.info),
                )
            })?;
            for r in relocs(elf, s)? {
                let addr = base.wrapping_add(r.offset);
                let kind = match (self.target.machine, r.kind) {
                    (EM_386, 1) => Some(super::pe::REL_HIGHLOW),
                    (EM_X86_64, 10 | 11) => {
                        return Err(bad(elf.path, "cannot add a fixup entry for R_X86_64_32(S)"));
                    }
                    (EM_X86_64, 1) => Some(super::pe::REL_DIR64),
                    (EM_X86_64 | EM_386, _) => None,
                    (EM_AARCH64, R_AARCH64_ABS64) => Some(super::pe::REL_DIR64),
                    (
                        EM_AARCH64,
                        R_AARCH64_CALL26
                        | R_AARCH64_JUMP26
                        | R_AARCH64_PREL32
                        | R_AARCH64_ADR_PREL_PG_HI21
                        | R_AARCH64_ADD_ABS_LO12_NC
                        | R_AARCH64_LDST64_ABS_LO12_NC
                        | R_AARCH64_ADR_GOT_PAGE
                        | R_AARCH64_LD64_GOT_LO12_NC,
                    ) => None,
                    (EM_RISCV, k) => riscv_fixup(k).map_err(|()| {
                        bad(elf.path, format!("relocation {k:#x} is not implemented"))
                    })?,
                    (_, k) => {
                        return Err(bad(
                            elf.path,
                            format!("relocation {k:#x} is not implemented"),
                        ));
                    }
                };
                if let Some(kind) = kind {
                    fx.add(kind, addr).map_err(|m| bad(elf.path, m))?;
                }
            }
        }
        if self.target.machine == EM_AARCH64 {
            for i in 0..got_size / 8 {
                fx.add(
                    super::pe::REL_DIR64,
                    got_off + self.target.vaddr_offset + 8 * i,
                )
                .map_err(|m| bad(elf.path, m))?;
            }
        }
        Ok(fx.finish())
    }
}

fn set_ldst64(elf: &mut Elf<'_>, place: u64, target: u64) -> Result<()> {
    let v = (elf.u32(place)? & 0xfff8_03ff) | ((target << 7) as u32 & !0xfff8_03ff);
    elf.put_u32(place, v)
}

fn set_hi21(elf: &mut Elf<'_>, place: u64, offset: i64) -> Result<()> {
    let off = offset >> 12;
    let val = (((off & 3) << 29) | (((off >> 2) & 0x7ffff) << 5)) as u32;
    let v = (elf.u32(place)? & 0x9f00_001f) | (val & !0x9f00_001f);
    elf.put_u32(place, v)
}

const R_RISCV_32: u32 = 1;
const R_RISCV_64: u32 = 2;
const R_RISCV_BRANCH: u32 = 16;
const R_RISCV_JAL: u32 = 17;
const R_RISCV_CALL: u32 = 18;
const R_RISCV_CALL_PLT: u32 = 19;
const R_RISCV_PCREL_HI20: u32 = 23;
const R_RISCV_PCREL_LO12_I: u32 = 24;
const R_RISCV_PCREL_LO12_S: u32 = 25;
const R_RISCV_HI20: u32 = 26;
const R_RISCV_LO12_I: u32 = 27;
const R_RISCV_LO12_S: u32 = 28;
const R_RISCV_ADD8: u32 = 33;
const R_RISCV_ADD16: u32 = 34;
const R_RISCV_ADD32: u32 = 35;
const R_RISCV_ADD64: u32 = 36;
const R_RISCV_SUB8: u32 = 37;
const R_RISCV_SUB16: u32 = 38;
const R_RISCV_SUB32: u32 = 39;
const R_RISCV_SUB64: u32 = 40;
const R_RISCV_RVC_BRANCH: u32 = 44;
const R_RISCV_RVC_JUMP: u32 = 45;
const R_RISCV_RELAX: u32 = 51;

/// The PE fixup a RISC-V relocation needs (`Ok(None)`: none; `Err`: not supported).
fn riscv_fixup(kind: u32) -> std::result::Result<Option<u16>, ()> {
    use super::pe::{REL_DIR64, REL_HIGHLOW, REL_RISCV_HI20, REL_RISCV_LOW12I, REL_RISCV_LOW12S};
    Ok(match kind {
        R_RISCV_32 => Some(REL_HIGHLOW),
        R_RISCV_64 => Some(REL_DIR64),
        R_RISCV_BRANCH | R_RISCV_JAL | R_RISCV_CALL | R_RISCV_CALL_PLT | R_RISCV_PCREL_HI20
        | R_RISCV_PCREL_LO12_I | R_RISCV_PCREL_LO12_S | R_RISCV_RVC_BRANCH | R_RISCV_RVC_JUMP
        | R_RISCV_ADD32 | R_RISCV_SUB32 | R_RISCV_RELAX => None,
        R_RISCV_HI20 => Some(REL_RISCV_HI20),
        R_RISCV_LO12_I => Some(REL_RISCV_LOW12I),
        R_RISCV_LO12_S => Some(REL_RISCV_LOW12S),
        _ => return Err(()),
    })
}

#[allow(clippy::too_many_arguments)]
fn riscv(
    elf: &mut Elf<'_>,
    rels: &[Rel],
    j: usize,
    place: u64,
    tsec: &Shdr,
    tsa: u64,
    vo: u64,
    syms: &[u64],
    ctx: &Ctx<'_>,
) -> Result<()> {
    let r = rels[j];
    let sym_addr = ctx.sym(elf, syms, r.sym)?.wrapping_add(r.addend);
    let off = sym_addr
        .wrapping_sub(tsa)
        .wrapping_sub(r.offset)
        .wrapping_sub(vo) as i64;
    let reach = |elf: &Elf<'_>| {
        if off == i64::from(off as i32) {
            Ok(())
        } else {
            Err(bad(
                elf.path,
                format!("RISC-V target {sym_addr:#x} not reachable"),
            ))
        }
    };
    let u32at = |elf: &Elf<'_>| elf.u32(place);
    match r.kind {
        R_RISCV_ADD8 => {
            let v = elf.u8(place)?.wrapping_add(sym_addr as u8);
            elf.put_u8(place, v)?;
        }
        R_RISCV_ADD16 => {
            let v = elf.u16(place)?.wrapping_add(sym_addr as u16);
            elf.put_u16(place, v)?;
        }
        R_RISCV_32 | R_RISCV_ADD32 => {
            let v = u32at(elf)?.wrapping_add(sym_addr as u32);
            elf.put_u32(place, v)?;
        }
        R_RISCV_64 | R_RISCV_ADD64 => {
            let v = elf.u64(place)?.wrapping_add(sym_addr);
            elf.put_u64(place, v)?;
        }
        R_RISCV_SUB8 => {
            // GRUB computes sym - *t8 here (the other widths subtract the symbol).
            let v = (sym_addr as u8).wrapping_sub(elf.u8(place)?);
            elf.put_u8(place, v)?;
        }
        R_RISCV_SUB16 => {
            let v = elf.u16(place)?.wrapping_sub(sym_addr as u16);
            elf.put_u16(place, v)?;
        }
        R_RISCV_SUB32 => {
            let v = u32at(elf)?.wrapping_sub(sym_addr as u32);
            elf.put_u32(place, v)?;
        }
        R_RISCV_SUB64 => {
            let v = elf.u64(place)?.wrapping_sub(sym_addr);
            elf.put_u64(place, v)?;
        }
        R_RISCV_BRANCH => {
            let o = off as u32;
            let imm = ((o & 0x1000) << (31 - 12))
                | ((o & 0x800) >> (11 - 7))
                | ((o & 0x7e0) << (30 - 10))
                | ((o & 0x1e) << (11 - 4));
            let v = (u32at(elf)? & 0x01ff_f07f) | imm;
            elf.put_u32(place, v)?;
        }
        R_RISCV_JAL => {
            let o = off as u32;
            let imm = ((o & 0x10_0000) << (31 - 20))
                | (o & 0xf_f000)
                | ((o & 0x800) << (20 - 11))
                | ((o & 0x7fe) << (30 - 10));
            let v = (u32at(elf)? & 0xfff) | imm;
            elf.put_u32(place, v)?;
        }
        R_RISCV_CALL | R_RISCV_CALL_PLT => {
            reach(elf)?;
            let hi20 = (off.wrapping_add(0x800) as u32) & 0xffff_f000;
            let lo12 = (off as u32).wrapping_sub(hi20) & 0xfff;
            let a = (u32at(elf)? & 0xfff) | hi20;
            elf.put_u32(place, a)?;
            let b = (elf.u32(place + 4)? & 0xfffff) | (lo12 << 20);
            elf.put_u32(place + 4, b)?;
        }
        R_RISCV_RVC_BRANCH => {
            let o = off as u16;
            let imm = ((o & 0x100) << (12 - 8))
                | ((o & 0xc0) >> (6 - 5))
                | ((o & 0x20) >> (5 - 2))
                | ((o & 0x18) << (12 - 5))
                | ((o & 0x6) << (12 - 10));
            let v = (elf.u16(place)? & 0xe383) | imm;
            elf.put_u16(place, v)?;
        }
        R_RISCV_RVC_JUMP => {
            let o = off as u16;
            let imm = ((o & 0x800) << (12 - 11))
                | ((o & 0x400) >> (10 - 8))
                | ((o & 0x300) << (12 - 11))
                | ((o & 0x80) >> (7 - 6))
                | ((o & 0x40) << (12 - 11))
                | ((o & 0x20) >> (5 - 2))
                | ((o & 0x10) << (12 - 5))
                | ((o & 0xe) << (12 - 10));
            let v = (elf.u16(place)? & 0xe003) | imm;
            elf.put_u16(place, v)?;
        }
        R_RISCV_PCREL_HI20 => {
            reach(elf)?;
            let hi20 = (off.wrapping_add(0x800) as u32) & 0xffff_f000;
            let v = (u32at(elf)? & 0xfff) | hi20;
            elf.put_u32(place, v)?;
        }
        R_RISCV_PCREL_LO12_I | R_RISCV_PCREL_LO12_S => {
            // The matching HI20 is an earlier relocation whose place is this symbol.
            let mut found = None;
            for r2 in rels[..j].iter().rev() {
                let loc = tsa.wrapping_add(r2.offset).wrapping_add(vo);
                if r2.kind == R_RISCV_PCREL_HI20 && loc == sym_addr {
                    let s2 = ctx.sym(elf, syms, r2.sym)?;
                    let o2 = s2.wrapping_add(r2.addend).wrapping_sub(loc) as i64;
                    found = Some(o2.wrapping_sub(o2.wrapping_add(0x800) & 0xffff_f000));
                    break;
                }
            }
            let Some(o) = found else {
                return Err(bad(elf.path, "cannot find matching HI20 relocation"));
            };
            let o = o as u32;
            let v = if r.kind == R_RISCV_PCREL_LO12_I {
                (u32at(elf)? & 0xfffff) | ((o & 0xfff) << 20)
            } else {
                (u32at(elf)? & 0x01ff_f07f) | ((o & 0xfe0) << (31 - 11)) | ((o & 0x1f) << (11 - 4))
            };
            elf.put_u32(place, v)?;
        }
        R_RISCV_HI20 => {
            let v = (u32at(elf)? & 0xfff)
                | ((sym_addr as i32).wrapping_add(0x800) as u32 & 0xffff_f000);
            elf.put_u32(place, v)?;
        }
        R_RISCV_LO12_I | R_RISCV_LO12_S => {
            let s = sym_addr as i32;
            let lo12 = s.wrapping_sub(s.wrapping_add(0x800) & (0xffff_f000u32 as i32)) as u32;
            let v = if r.kind == R_RISCV_LO12_I {
                (u32at(elf)? & 0xfffff) | ((lo12 & 0xfff) << 20)
            } else {
                (u32at(elf)? & 0x01ff_f07f)
                    | ((lo12 & 0xfe0) << (31 - 11))
                    | ((lo12 & 0x1f) << (11 - 4))
            };
            elf.put_u32(place, v)?;
        }
        R_RISCV_RELAX => {}
        k => {
            let _ = tsec;
            return Err(bad(
                elf.path,
                format!("relocation {k:#x} is not implemented"),
            ));
        }
    }
    Ok(())
}
