//! The PE32/PE32+ image `grub-mkimage` makes for EFI: GRUB's DOS stub and headers, the
//! sections `.text`, `.data`, `mods` and `.reloc`, and the base relocation blocks.

/// PE file and section alignment (GRUB uses the EFI page for both).
pub(crate) const FILE_ALIGNMENT: u64 = 4096;

pub(crate) const REL_HIGHLOW: u16 = 3;
pub(crate) const REL_RISCV_HI20: u16 = 5;
pub(crate) const REL_RISCV_LOW12I: u16 = 7;
pub(crate) const REL_RISCV_LOW12S: u16 = 8;
pub(crate) const REL_DIR64: u16 = 10;

/// GRUB's MS-DOS stub ("This program cannot be run in DOS mode."), `e_lfanew` = 0x80.
const MSDOS_STUB: [u8; 0x80] = [
    0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
    0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,
    0x0e, 0x1f, 0xba, 0x0e, 0x00, 0xb4, 0x09, 0xcd, 0x21, 0xb8, 0x01, 0x4c, 0xcd, 0x21, 0x54, 0x68,
    0x69, 0x73, 0x20, 0x70, 0x72, 0x6f, 0x67, 0x72, 0x61, 0x6d, 0x20, 0x63, 0x61, 0x6e, 0x6e, 0x6f,
    0x74, 0x20, 0x62, 0x65, 0x20, 0x72, 0x75, 0x6e, 0x20, 0x69, 0x6e, 0x20, 0x44, 0x4f, 0x53, 0x20,
    0x6d, 0x6f, 0x64, 0x65, 0x2e, 0x0d, 0x0d, 0x0a, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// `STABLE_EMBEDDING_TIMESTAMP`: 2015-01-01T00:00:00Z, GRUB's constant COFF time stamp.
pub(crate) const TIMESTAMP: u32 = 1_420_070_400;

/// The header size of both PE flavours: stub, signature, COFF header, optional header and
/// four section headers, rounded up to the file alignment (4096 either way).
pub(crate) const HEADER_SIZE: u64 = 4096;

/// Base relocation blocks as `grub-mkimage` builds them: one block per run of fixups in the
/// same 4 KiB page (a fixup outside the page starts a new block), each padded to 8 bytes
/// with type-0 entries, the last padded so the table ends on a section boundary.
#[derive(Debug)]
pub(crate) struct Fixups {
    section_align: u64,
    out: Vec<u8>,
    cur: Option<(u32, Vec<u16>)>,
}

impl Fixups {
    pub(crate) fn new(section_align: u64) -> Self {
        Self {
            section_align,
            out: Vec::new(),
            cur: None,
        }
    }

    fn emit(&mut self, page: u32, entries: &[u16]) {
        let size = 8 + 2 * entries.len();
        self.out.extend_from_slice(&page.to_le_bytes());
        self.out.extend_from_slice(&(size as u32).to_le_bytes());
        for e in entries {
            self.out.extend_from_slice(&e.to_le_bytes());
        }
    }

    /// Adds a fixup of `kind` at image address `addr`.
    pub(crate) fn add(&mut self, kind: u16, addr: u64) -> std::result::Result<(), String> {
        if let Some((page, entries)) = self.cur.take() {
            let page64 = u64::from(page);
            if addr < page64 || page64 + 0x1000 <= addr {
                let mut entries = entries;
                while (8 + 2 * entries.len()) % 8 != 0 {
                    entries.push(0);
                }
                self.emit(page, &entries);
            } else {
                self.cur = Some((page, entries));
            }
        }
        let (page, entries) = self
            .cur
            .get_or_insert_with(|| (((addr as u32) & !0xfff), Vec::new()));
        if 8 + 2 * entries.len() >= 8 + 2 * 0x1000 {
            return Err("too many fixup entries in one page".into());
        }
        let off = (addr as u32).wrapping_sub(*page);
        entries.push((kind << 12) | (off as u16));
        Ok(())
    }

    /// The `.reloc` bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if let Some((page, mut entries)) = self.cur.take() {
            let next = self.out.len() as u64 + 8 + 2 * entries.len() as u64;
            let padding = (align_up(next, self.section_align) - next) >> 1;
            entries.extend(std::iter::repeat_n(0, padding as usize));
            self.emit(page, &entries);
        }
        self.out
    }
}

fn align_up(x: u64, a: u64) -> u64 {
    if a <= 1 { x } else { (x + a - 1) & !(a - 1) }
}

/// What goes into the PE image besides the headers.
pub(crate) struct PeInput<'a> {
    /// PE32+ (64-bit) or PE32.
    pub pe64: bool,
    /// COFF machine.
    pub machine: u16,
    /// Kernel followed by the module area (`kernel_size + total_module_size` bytes).
    pub core: &'a [u8],
    /// The kernel's size (code, data, bss, GOT), a multiple of 4096.
    pub kernel_size: u64,
    /// Bytes of code.
    pub exec_size: u64,
    /// The module area's size.
    pub total_module_size: u64,
    /// The entry point.
    pub entry: u64,
    /// The `.reloc` contents.
    pub reloc: &'a [u8],
}

struct Section {
    name: &'static [u8],
    vaddr: u32,
    vsize: u32,
    raw_offset: u32,
    raw_size: u32,
    flags: u32,
}

const SCN_CNT_CODE: u32 = 0x20;
const SCN_CNT_INITIALIZED_DATA: u32 = 0x40;
const SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
const SCN_MEM_READ: u32 = 0x4000_0000;
const SCN_MEM_WRITE: u32 = 0x8000_0000;

/// Assembles the PE image (GRUB 2.06's layout; no `.sbat`).
pub(crate) fn build(p: &PeInput<'_>) -> Vec<u8> {
    let h = HEADER_SIZE;
    let core_size = p.core.len() as u64;
    let reloc_size = p.reloc.len() as u64;
    let pe_size = align_up(h + core_size, FILE_ALIGNMENT) + align_up(reloc_size, FILE_ALIGNMENT);
    let mut img = vec![0u8; pe_size as usize];
    img[h as usize..(h + core_size) as usize].copy_from_slice(p.core);
    img[..0x80].copy_from_slice(&MSDOS_STUB);
    img[0x80..0x84].copy_from_slice(b"PE\0\0");

    // Sections.
    let mut vma = h;
    let mut raw = h;
    let mut sections = Vec::new();
    let mut add = |name, vsz: u64, rsz: u64, flags| {
        sections.push(Section {
            name,
            vaddr: vma as u32,
            vsize: vsz as u32,
            raw_offset: raw as u32,
            raw_size: rsz as u32,
            flags,
        });
        vma = align_up(vma + vsz, FILE_ALIGNMENT);
        raw += rsz;
    };
    add(
        b".text",
        p.exec_size,
        p.exec_size,
        SCN_CNT_CODE | SCN_MEM_EXECUTE | SCN_MEM_READ,
    );
    let data_raw = p.kernel_size - p.exec_size;
    let data_scn = align_up(data_raw, FILE_ALIGNMENT);
    add(
        b".data",
        data_scn,
        data_raw,
        SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ | SCN_MEM_WRITE,
    );
    let mods_raw = pe_size - reloc_size - (h + p.kernel_size);
    add(
        b"mods",
        align_up(mods_raw, FILE_ALIGNMENT),
        mods_raw,
        SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ | SCN_MEM_WRITE,
    );
    let reloc_scn = align_up(reloc_size, FILE_ALIGNMENT);
    add(
        b".reloc",
        reloc_scn,
        reloc_size,
        SCN_CNT_INITIALIZED_DATA | SCN_MEM_DISCARDABLE | SCN_MEM_READ,
    );
    let (reloc_rva, reloc_raw_at) = (sections[3].vaddr, sections[3].raw_offset);
    let at = reloc_raw_at as usize;
    img[at..at + p.reloc.len()].copy_from_slice(p.reloc);

    // COFF header.
    let put16 =
        |img: &mut [u8], at: usize, v: u16| img[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |img: &mut [u8], at: usize, v: u32| img[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |img: &mut [u8], at: usize, v: u64| img[at..at + 8].copy_from_slice(&v.to_le_bytes());
    let c = 0x84;
    put16(&mut img, c, p.machine);
    put16(&mut img, c + 2, 4);
    put32(&mut img, c + 4, TIMESTAMP);
    let opt_size: u16 = if p.pe64 { 240 } else { 224 };
    put16(&mut img, c + 16, opt_size);
    let chars = 0x0002 | 0x0004 | 0x0008 | 0x0200 | if p.pe64 { 0 } else { 0x0100 };
    put16(&mut img, c + 18, chars);

    // Optional header.
    let o = c + 20;
    put16(&mut img, o, if p.pe64 { 0x20b } else { 0x10b });
    put32(&mut img, o + 4, p.exec_size as u32); // code_size
    put32(
        &mut img,
        o + 8,
        (data_scn + align_up(p.total_module_size, FILE_ALIGNMENT)) as u32,
    ); // data_size
    put32(&mut img, o + 16, p.entry as u32);
    put32(&mut img, o + 20, h as u32); // code_base
    let (dirs_at, after_base) = if p.pe64 {
        put64(&mut img, o + 24, 0);
        (o + 112, o + 32)
    } else {
        put32(&mut img, o + 24, (h + p.exec_size) as u32); // data_base
        put32(&mut img, o + 28, 0);
        (o + 96, o + 32)
    };
    let b = after_base;
    put32(&mut img, b, FILE_ALIGNMENT as u32); // section_alignment
    put32(&mut img, b + 4, FILE_ALIGNMENT as u32); // file_alignment
    put32(&mut img, b + 24, pe_size as u32); // image_size
    put32(&mut img, b + 28, h as u32); // header_size
    put16(&mut img, b + 36, 10); // EFI application
    let s = b + 40;
    if p.pe64 {
        for i in 0..4 {
            put64(&mut img, s + 8 * i, 0x10000);
        }
        put32(&mut img, s + 36, 16);
    } else {
        for i in 0..4 {
            put32(&mut img, s + 4 * i, 0x10000);
        }
        put32(&mut img, s + 20, 16);
    }
    // Data directory 5: base relocations.
    put32(&mut img, dirs_at + 5 * 8, reloc_rva);
    put32(&mut img, dirs_at + 5 * 8 + 4, reloc_scn as u32);

    let mut t = o + usize::from(opt_size);
    for sec in &sections {
        img[t..t + sec.name.len()].copy_from_slice(sec.name);
        put32(&mut img, t + 8, sec.vsize);
        put32(&mut img, t + 12, sec.vaddr);
        put32(&mut img, t + 16, sec.raw_size);
        put32(&mut img, t + 20, sec.raw_offset);
        put32(&mut img, t + 36, sec.flags);
        t += 40;
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fixup_blocks_split_by_page_and_pad() {
        let mut f = Fixups::new(4096);
        f.add(REL_DIR64, 0x1010).unwrap();
        f.add(REL_DIR64, 0x1020).unwrap();
        f.add(REL_DIR64, 0x1030).unwrap();
        f.add(REL_DIR64, 0x3008).unwrap();
        let out = f.finish();
        // First block: page 0x1000, 3 entries + 1 padding = 16 bytes.
        assert_eq!(&out[0..4], &0x1000u32.to_le_bytes());
        assert_eq!(&out[4..8], &16u32.to_le_bytes());
        assert_eq!(&out[8..10], &0xA010u16.to_le_bytes());
        assert_eq!(&out[14..16], &[0, 0]);
        // Last block padded to the section alignment.
        assert_eq!(&out[16..20], &0x3000u32.to_le_bytes());
        assert_eq!(out.len(), 4096);
        assert_eq!(&out[20..24], &(4096u32 - 16).to_le_bytes());
        assert_eq!(Fixups::new(4096).finish(), Vec::<u8>::new());
    }
}
