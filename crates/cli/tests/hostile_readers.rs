//! Hostile inputs to `inspect` and `convert` (issue 14, the readers' half): every case is a file
//! built here from bytes (damaged qcow2, VDI, VHD, VHDX, VMDK, GPT, refused containers,
//! non-regular files), run under `ulimit -v` 1 GiB and a 30 s timeout; each must end in a
//! clear error naming the file and the offending field (or, for the partition/filesystem
//! probes, a graceful answer), and leave nothing in the output directory or `$TMPDIR`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Runs imagetool under a 1 GiB address-space limit and a timeout, with its own `$TMPDIR`.
fn limited(args: &[&str], tmpdir: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec timeout 30 \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_imagetool"))
        .args(args)
        .env("TMPDIR", tmpdir)
        .output()
        .expect("run imagetool")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A file of `len` bytes (sparse) with `parts` written at their offsets.
fn file(path: &Path, len: u64, parts: &[(u64, Vec<u8>)]) {
    let f = File::create(path).unwrap();
    f.set_len(len).unwrap();
    for (off, b) in parts {
        f.write_all_at(b, *off).unwrap();
    }
}

fn be64(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// A qcow2 v3 header: cluster bits, virtual size, L1 entries and offset.
fn qcow2_header(bits: u32, size: u64, l1_size: u32, l1_off: u64) -> Vec<u8> {
    let mut h = vec![0u8; 112];
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&bits.to_be_bytes());
    h[24..32].copy_from_slice(&size.to_be_bytes());
    h[36..40].copy_from_slice(&l1_size.to_be_bytes());
    h[40..48].copy_from_slice(&l1_off.to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes());
    h[100..104].copy_from_slice(&104u32.to_be_bytes());
    h
}

/// A table of big-endian u64 entries.
fn table(entries: &[u64]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.to_be_bytes()).collect()
}

const COPIED: u64 = 1 << 63;
const C: u64 = 64 * KIB;

/// A small valid qcow2 (1 MiB, L1 at cluster 1, L2 at cluster 2, data at cluster 3), with
/// `edit` applied to (header, L1, L2).
fn qcow2_with(edit: impl Fn(&mut Vec<u8>, &mut Vec<u64>, &mut Vec<u64>)) -> Vec<(u64, Vec<u8>)> {
    let mut h = qcow2_header(16, MIB, 1, C);
    let mut l1 = vec![(2 * C) | COPIED];
    let mut l2 = vec![0u64; 8192];
    l2[0] = (3 * C) | COPIED;
    edit(&mut h, &mut l1, &mut l2);
    vec![
        (0, h),
        (C, table(&l1)),
        (2 * C, table(&l2)),
        (3 * C, vec![0xab; C as usize]),
    ]
}

fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// A VDI header (dynamic, 1 MiB blocks) for `size` bytes with `blocks` map entries.
fn vdi_header(size: u64, block: u32, blocks: u32, bmap: u32, data: u32) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[0x40..0x44].copy_from_slice(&0xbeda_107fu32.to_le_bytes());
    h[0x44..0x48].copy_from_slice(&0x0001_0001u32.to_le_bytes());
    h[0x48..0x4c].copy_from_slice(&0x180u32.to_le_bytes());
    h[0x4c..0x50].copy_from_slice(&1u32.to_le_bytes());
    h[0x154..0x158].copy_from_slice(&bmap.to_le_bytes());
    h[0x158..0x15c].copy_from_slice(&data.to_le_bytes());
    h[0x168..0x16c].copy_from_slice(&512u32.to_le_bytes());
    h[0x170..0x178].copy_from_slice(&size.to_le_bytes());
    h[0x178..0x17c].copy_from_slice(&block.to_le_bytes());
    h[0x180..0x184].copy_from_slice(&blocks.to_le_bytes());
    h
}

fn vhd_checksum(b: &mut [u8], at: usize) {
    b[at..at + 4].fill(0);
    let s = !b.iter().fold(0u32, |a, &x| a.wrapping_add(u32::from(x)));
    b[at..at + 4].copy_from_slice(&s.to_be_bytes());
}

/// A VHD footer (creator "qem2": the size is `size`), disk type 2 fixed / 3 dynamic / 4 diff.
fn vhd_footer(size: u64, disk_type: u32, dyn_off: u64) -> Vec<u8> {
    let mut f = vec![0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[16..24].copy_from_slice(&dyn_off.to_be_bytes());
    f[28..32].copy_from_slice(b"qem2");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    f[60..64].copy_from_slice(&disk_type.to_be_bytes());
    vhd_checksum(&mut f, 64);
    f
}

fn vhd_dyn_header(bat_off: u64, entries: u32, block: u32) -> Vec<u8> {
    let mut d = vec![0u8; 1024];
    d[0..8].copy_from_slice(b"cxsparse");
    d[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    d[16..24].copy_from_slice(&bat_off.to_be_bytes());
    d[28..32].copy_from_slice(&entries.to_be_bytes());
    d[32..36].copy_from_slice(&block.to_be_bytes());
    vhd_checksum(&mut d, 36);
    d
}

/// A VMDK sparse header.
fn vmdk_header(capacity: u64, grain: u64, gtes: u32, gd: u64, flags: u32) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&1u32.to_le_bytes());
    h[8..12].copy_from_slice(&flags.to_le_bytes());
    h[12..20].copy_from_slice(&capacity.to_le_bytes());
    h[20..28].copy_from_slice(&grain.to_le_bytes());
    h[44..48].copy_from_slice(&gtes.to_le_bytes());
    h[56..64].copy_from_slice(&gd.to_le_bytes());
    h
}

/// A VHDX file with a valid identifier and headers (log GUID `log`), no region table.
fn vhdx_headers(log: bool) -> Vec<(u64, Vec<u8>)> {
    let mut h = vec![0u8; 4096];
    h[0..4].copy_from_slice(b"head");
    h[8..16].copy_from_slice(&1u64.to_le_bytes());
    if log {
        h[48] = 1;
    }
    h[66..68].copy_from_slice(&1u16.to_le_bytes());
    let c = crc32c(&h);
    h[4..8].copy_from_slice(&c.to_le_bytes());
    vec![(0, b"vhdxfile".to_vec()), (64 * KIB, h)]
}

/// CRC-32C (Castagnoli), bitwise: enough for a 4 KiB test header.
fn crc32c(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A disk with a protective MBR and a GPT header saying `count` entries at `entries_lba`.
fn gpt(count: u32, entries_lba: u64) -> Vec<(u64, Vec<u8>)> {
    let mut mbr = vec![0u8; 512];
    mbr[446 + 4] = 0xee;
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut h = vec![0u8; 512];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&1u64.to_le_bytes());
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&count.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    let c = crc32(&h[..92]);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    vec![(0, mbr), (512, h)]
}

/// How a case's input is made.
enum Make {
    Bytes(u64, Vec<(u64, Vec<u8>)>),
    Fifo,
    Dir,
    Path(&'static str),
    Missing,
}

struct Case {
    name: &'static str,
    make: Make,
    /// Substrings the error must contain (besides the file's path); empty for a case that
    /// must succeed.
    want: &'static [&'static str],
    /// For a case that succeeds: what `inspect` must print.
    ok_stdout: &'static str,
}

fn case(name: &'static str, make: Make, want: &'static [&'static str]) -> Case {
    Case {
        name,
        make,
        want,
        ok_stdout: "",
    }
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    let mut v = vec![
        // qcow2: the three.
        case(
            "qcow2-l1-2pow28-sparse",
            Make::Bytes(3 << 30, vec![(0, qcow2_header(9, 64 << 40, 1 << 28, C))]),
            &["l1_size", "32"],
        ),
        case(
            "qcow2-every-l1-entry-one-l2-of-data",
            Make::Bytes(
                8 * C,
                vec![
                    (0, qcow2_header(16, 2048 * 8192 * C, 2048, C)),
                    (C, table(&vec![(3 * C) | COPIED; 2048])),
                    (3 * C, table(&vec![(4 * C) | COPIED; 8192])),
                ],
            ),
            &["L2 table at byte 196608", "another L1 entry"],
        ),
        case(
            "qcow2-every-l1-entry-one-l2-of-zeros",
            Make::Bytes(
                8 * C,
                vec![
                    (0, qcow2_header(16, 2048 * 8192 * C, 2048, C)),
                    (C, table(&vec![(3 * C) | COPIED; 2048])),
                    (3 * C, table(&vec![1; 8192])),
                ],
            ),
            &["another L1 entry"],
        ),
        case(
            "qcow2-cluster-bits-30",
            Make::Bytes(C, vec![(0, qcow2_header(30, MIB, 1, C))]),
            &["cluster_bits", "30"],
        ),
        case(
            "qcow2-cluster-bits-8",
            Make::Bytes(C, vec![(0, qcow2_header(8, MIB, 1, C))]),
            &["cluster_bits", "8"],
        ),
        case(
            "qcow2-virtual-size-2pow62",
            Make::Bytes(C, vec![(0, qcow2_header(16, 1 << 62, 1, C))]),
            &["virtual size", "64 TiB"],
        ),
        case(
            "qcow2-l1-outside-file",
            Make::Bytes(C, vec![(0, qcow2_header(16, MIB, 1, 100 * C))]),
            &["L1 table at byte 6553600", "outside the file"],
        ),
        case(
            "qcow2-l1-unaligned",
            Make::Bytes(4 * C, vec![(0, qcow2_header(16, MIB, 1, C + 8))]),
            &["l1_table_offset", "65544"],
        ),
        case(
            "qcow2-l1-size-too-small",
            Make::Bytes(4 * C, vec![(0, qcow2_header(16, 1 << 40, 1, C))]),
            &["l1_size", "too small"],
        ),
        case(
            "qcow2-l2-outside-file",
            Make::Bytes(4 * C, qcow2_with(|_, l1, _| l1[0] = 1000 * C)),
            &["L2 table at byte 65536000", "outside the file"],
        ),
        case(
            "qcow2-l2-unaligned",
            Make::Bytes(4 * C, qcow2_with(|_, l1, _| l1[0] = 2 * C + 512)),
            &["L1 entry 0", "not cluster-aligned"],
        ),
        case(
            "qcow2-data-outside-file",
            Make::Bytes(4 * C, qcow2_with(|_, _, l2| l2[1] = 5000 * C)),
            &["data block at byte 327680000", "outside the file"],
        ),
        case(
            "qcow2-data-unaligned",
            Make::Bytes(4 * C, qcow2_with(|_, _, l2| l2[1] = 3 * C + 512)),
            &["L2 entry 1", "not cluster-aligned"],
        ),
        case(
            "qcow2-data-overlaps-l1",
            Make::Bytes(4 * C, qcow2_with(|_, _, l2| l2[1] = C)),
            &["overlaps", "qcow2 L1 table"],
        ),
        case(
            "qcow2-two-clusters-one-host-cluster",
            Make::Bytes(4 * C, qcow2_with(|_, _, l2| l2[1] = 3 * C)),
            &["data block at byte 196608 overlaps"],
        ),
        case(
            "qcow2-compressed-garbage-in-header",
            Make::Bytes(4 * C, qcow2_with(|_, _, l2| l2[0] = 0x200 | (1 << 62))),
            &["compressed block at byte 512", "deflate"],
        ),
        case(
            "qcow2-backing-file",
            Make::Bytes(
                4 * C,
                qcow2_with(|h, _, _| h[8..16].copy_from_slice(&be64(512))),
            ),
            &["backing file"],
        ),
        case(
            "qcow2-encrypted",
            Make::Bytes(4 * C, qcow2_with(|h, _, _| h[35] = 2)),
            &["encrypted"],
        ),
        case(
            "qcow2-version-4",
            Make::Bytes(4 * C, qcow2_with(|h, _, _| h[7] = 4)),
            &["qcow2 version 4"],
        ),
        case(
            "qcow2-unknown-incompatible-feature",
            Make::Bytes(4 * C, qcow2_with(|h, _, _| h[79] = 0x20)),
            &["incompatible features 0x20"],
        ),
        case(
            "qcow2-header-length-beyond-cluster",
            Make::Bytes(
                4 * C,
                qcow2_with(|h, _, _| h[100..104].copy_from_slice(&(1u32 << 20).to_be_bytes())),
            ),
            &["header_length", "1048576"],
        ),
        case(
            "qcow2-truncated-header",
            Make::Bytes(40, vec![(0, b"QFI\xfb\0\0\0\x03".to_vec())]),
            &["qcow2 header"],
        ),
        case(
            "qcow2-compressed-past-eof",
            Make::Bytes(4 * C, qcow2_with(|_, _, l2| l2[0] = (1 << 62) | (900 * C))),
            &["compressed block", "outside the file"],
        ),
        case(
            "qcow1",
            Make::Bytes(4 * KIB, vec![(0, b"QFI\xfb\0\0\0\x01".to_vec())]),
            &["qcow (version 1)", "does not read"],
        ),
        // VDI.
        case(
            "vdi-block-size-4m",
            Make::Bytes(MIB, vec![(0, vdi_header(MIB, 4 << 20, 1, 512, 1024))]),
            &["block size", "4194304"],
        ),
        case(
            "vdi-too-few-blocks",
            Make::Bytes(MIB, vec![(0, vdi_header(1 << 40, 1 << 20, 1, 512, 1024))]),
            &["blocks in image", "too few"],
        ),
        case(
            "vdi-map-outside-file",
            Make::Bytes(
                4 * KIB,
                vec![(0, vdi_header(1 << 40, 1 << 20, 1 << 20, 512, 1 << 30))],
            ),
            &["VDI block map", "outside the file"],
        ),
        case(
            "vdi-block-outside-file",
            Make::Bytes(
                4 * KIB,
                vec![(0, vdi_header(MIB, 1 << 20, 1, 512, 1024)), (512, le32(7))],
            ),
            &["data block", "outside the file"],
        ),
        case(
            "vdi-two-blocks-one-place",
            Make::Bytes(
                3 * MIB,
                vec![
                    (0, vdi_header(2 * MIB, 1 << 20, 2, 512, 1024)),
                    (512, [le32(0), le32(0)].concat()),
                ],
            ),
            &["overlaps"],
        ),
        case(
            "vdi-virtual-size-2pow60",
            Make::Bytes(
                MIB,
                vec![(0, vdi_header(1 << 60, 1 << 20, u32::MAX, 512, 1024))],
            ),
            &["virtual size"],
        ),
        // VHD.
        case(
            "vhd-footer-checksum",
            Make::Bytes(MIB + 512, {
                let mut f = vhd_footer(MIB, 2, u64::MAX);
                f[70] ^= 1;
                vec![(MIB, f)]
            }),
            &["VHD footer checksum"],
        ),
        case(
            "vhd-fixed-larger-than-file",
            Make::Bytes(MIB + 512, vec![(MIB, vhd_footer(1 << 40, 2, u64::MAX))]),
            &["fixed VHD", "only 1048576 bytes"],
        ),
        case(
            "vhd-dynamic-header-outside",
            Make::Bytes(
                4 * KIB,
                vec![
                    (0, vhd_footer(MIB, 3, 1 << 40)),
                    (4 * KIB - 512, vhd_footer(MIB, 3, 1 << 40)),
                ],
            ),
            &["dynamic header offset", "outside the file"],
        ),
        case(
            "vhd-bat-outside",
            Make::Bytes(
                4 * KIB,
                vec![
                    (0, vhd_footer(1 << 40, 3, 512)),
                    (512, vhd_dyn_header(1 << 40, 1 << 19, 2 << 20)),
                    (4 * KIB - 512, vhd_footer(1 << 40, 3, 512)),
                ],
            ),
            &["VHD BAT", "outside the file"],
        ),
        case(
            "vhd-block-size-3m",
            Make::Bytes(
                4 * KIB,
                vec![
                    (0, vhd_footer(MIB, 3, 512)),
                    (512, vhd_dyn_header(1536, 1, 3 << 20)),
                    (4 * KIB - 512, vhd_footer(MIB, 3, 512)),
                ],
            ),
            &["block size", "3145728"],
        ),
        case(
            "vhd-differencing",
            Make::Bytes(
                4 * KIB,
                vec![
                    (0, vhd_footer(MIB, 4, 512)),
                    (4 * KIB - 512, vhd_footer(MIB, 4, 512)),
                ],
            ),
            &["differencing VHD"],
        ),
        // VHDX.
        case(
            "vhdx-no-valid-header",
            Make::Bytes(MIB, vec![(0, b"vhdxfile".to_vec())]),
            &["neither VHDX header"],
        ),
        case(
            "vhdx-log-to-replay",
            Make::Bytes(MIB, vhdx_headers(true)),
            &["log to replay"],
        ),
        case(
            "vhdx-no-region-table",
            Make::Bytes(MIB, vhdx_headers(false)),
            &["region table"],
        ),
        // VMDK.
        case(
            "vmdk-1024-gtes",
            Make::Bytes(64 * KIB, vec![(0, vmdk_header(2048, 128, 1024, 1, 0))]),
            &["grain table entries", "1024"],
        ),
        case(
            "vmdk-grain-3-sectors",
            Make::Bytes(64 * KIB, vec![(0, vmdk_header(2048, 3, 512, 1, 0))]),
            &["grain size", "3 sectors"],
        ),
        case(
            "vmdk-capacity-2pow60-sectors",
            Make::Bytes(64 * KIB, vec![(0, vmdk_header(1 << 60, 128, 512, 1, 0))]),
            &["capacity", "overflows"],
        ),
        case(
            "vmdk-capacity-2pow50-sectors",
            Make::Bytes(64 * KIB, vec![(0, vmdk_header(1 << 50, 128, 512, 1, 0))]),
            &["virtual size"],
        ),
        case(
            "vmdk-gd-outside",
            Make::Bytes(
                64 * KIB,
                vec![(0, vmdk_header(1 << 30, 128, 512, 1 << 30, 0))],
            ),
            &["VMDK grain directory", "outside the file"],
        ),
        case(
            "vmdk-shared-grain-table",
            Make::Bytes(
                64 * KIB,
                vec![
                    (0, vmdk_header(1 << 20, 128, 512, 1, 0)),
                    (512, [le32(4), le32(4), le32(4)].concat()),
                ],
            ),
            &["grain table at byte 2048", "another entry"],
        ),
        case(
            "vmdk-stream-without-footer",
            Make::Bytes(
                64 * KIB,
                vec![(0, vmdk_header(2048, 128, 512, u64::MAX, 0))],
            ),
            &["without a footer"],
        ),
        case(
            "vmdk-grain-outside",
            Make::Bytes(
                64 * KIB,
                vec![
                    (0, vmdk_header(2048, 128, 512, 1, 0)),
                    (512, le32(4)),
                    (2048, le32(1 << 30)),
                ],
            ),
            &["data block", "outside the file"],
        ),
        // Refused by name.
        case(
            "qed",
            Make::Bytes(4 * KIB, vec![(0, b"QED\0".to_vec())]),
            &["QED image", "does not read"],
        ),
        case(
            "vmdk-descriptor",
            Make::Bytes(
                512,
                vec![(0, b"# Disk DescriptorFile\nRW 8 FLAT \"x\" 0\n".to_vec())],
            ),
            &["VMDK descriptor"],
        ),
        case(
            "luks",
            Make::Bytes(4 * KIB, vec![(0, b"LUKS\xba\xbe".to_vec())]),
            &["LUKS"],
        ),
        case(
            "vma",
            Make::Bytes(4 * KIB, vec![(0, b"VMA\0".to_vec())]),
            &["Proxmox VMA"],
        ),
        // Not regular files.
        case("fifo", Make::Fifo, &["FIFO"]),
        case("directory", Make::Dir, &["directory"]),
        case(
            "char-device",
            Make::Path("/dev/zero"),
            &["character device"],
        ),
        case("missing", Make::Missing, &["No such file"]),
        // GPT whose entry array is absurd or outside the disk (both headers unusable).
        case(
            "gpt-2pow32-entries",
            Make::Bytes(MIB, gpt(u32::MAX, 2)),
            &["GPT entry array of 4294967295 entries"],
        ),
        case(
            "gpt-entries-outside-disk",
            Make::Bytes(MIB, gpt(128, 1 << 40)),
            &["GPT entry array outside the disk"],
        ),
    ];
    // Probes that answer instead of failing: a sane answer, never a panic.
    v.push(Case {
        name: "mbr-partition-beyond-disk",
        make: Make::Bytes(MIB, {
            let mut m = vec![0u8; 512];
            m[446 + 4] = 0x83;
            m[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
            m[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
            m[510] = 0x55;
            m[511] = 0xaa;
            vec![(0, m)]
        }),
        want: &[],
        ok_stdout: "table: none",
    });
    v.push(Case {
        name: "fat-zero-fats",
        make: Make::Bytes(MIB, {
            let mut b = vec![0u8; 512];
            b[0] = 0xeb;
            b[11..13].copy_from_slice(&512u16.to_le_bytes());
            b[13] = 1;
            b[14] = 1;
            b[19..21].copy_from_slice(&2048u16.to_le_bytes());
            b[510] = 0x55;
            b[511] = 0xaa;
            vec![(0, b)]
        }),
        want: &[],
        ok_stdout: "filesystem: unknown",
    });
    v.push(Case {
        name: "fat-sectors-per-cluster-zero-total-huge",
        make: Make::Bytes(MIB, {
            let mut b = vec![0xffu8; 512];
            b[0] = 0xeb;
            b[11..13].copy_from_slice(&512u16.to_le_bytes());
            b[13] = 0;
            b[510] = 0x55;
            b[511] = 0xaa;
            vec![(0, b)]
        }),
        want: &[],
        ok_stdout: "filesystem: unknown",
    });
    v
}

fn make(c: &Case, dir: &Path) -> PathBuf {
    let p = dir.join(c.name);
    match &c.make {
        Make::Bytes(len, parts) => file(&p, *len, parts),
        Make::Fifo => {
            let ok = Command::new("mkfifo").arg(&p).status().unwrap().success();
            assert!(ok, "mkfifo");
        }
        Make::Dir => std::fs::create_dir(&p).unwrap(),
        Make::Path(s) => return PathBuf::from(s),
        Make::Missing => {}
    }
    p
}

#[test]
fn test_hostile_inputs_end_in_clear_errors_within_limits_and_leave_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let all = cases();
    assert!(all.len() >= 55, "{} cases", all.len());
    let mut failures = Vec::new();
    for c in &all {
        let input = make(c, inputs.path());
        let name = input.to_str().unwrap();
        let dest = out.path().join("out.qcow2");
        for args in [
            vec!["inspect", name],
            vec!["convert", name, "-O", "qcow2", "-o", dest.to_str().unwrap()],
        ] {
            let o = limited(&args, tmp.path());
            let err = String::from_utf8_lossy(&o.stderr);
            let stdout = String::from_utf8_lossy(&o.stdout);
            let code = o.status.code();
            let what = format!("{} {}", c.name, args[0]);
            if c.want.is_empty() {
                // A probe case: inspect answers; convert reads it as raw and succeeds.
                if code != Some(0) {
                    failures.push(format!("{what}: exit {code:?}: {err}"));
                } else if args[0] == "inspect" && !stdout.contains(c.ok_stdout) {
                    failures.push(format!("{what}: stdout lacks {:?}: {stdout}", c.ok_stdout));
                }
                let _ = std::fs::remove_file(&dest);
                continue;
            }
            // GPT damage concerns `inspect` only: `convert` copies the bytes as raw.
            if args[0] == "convert" && c.name.starts_with("gpt-") {
                if code != Some(0) {
                    failures.push(format!("{what}: exit {code:?}: {err}"));
                }
                let _ = std::fs::remove_file(&dest);
                continue;
            }
            // 2 for invalid input, 1 for a corrupt or unreadable file (the exit-status policy
            // of the CLI); a signal, a timeout (124) or a panic (101) fails.
            if !matches!(code, Some(1 | 2)) {
                failures.push(format!("{what}: exit {code:?} (want 1 or 2): {err}"));
            }
            if err.contains("panicked") || err.contains("memory allocation") {
                failures.push(format!("{what}: crashed: {err}"));
            }
            if !err.contains(name) {
                failures.push(format!("{what}: error does not name {name}: {err}"));
            }
            for w in c.want {
                if !err.contains(w) {
                    failures.push(format!("{what}: error lacks {w:?}: {err}"));
                }
            }
            if !entries(out.path()).is_empty() {
                failures.push(format!("{what}: left {:?}", entries(out.path())));
                for e in entries(out.path()) {
                    let _ = std::fs::remove_file(out.path().join(e));
                }
            }
            if !entries(tmp.path()).is_empty() {
                failures.push(format!("{what}: left in TMPDIR {:?}", entries(tmp.path())));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
