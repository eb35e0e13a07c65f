//! Helpers shared by the fuzz targets (and by the stable replay of their regression inputs in
//! `crates/vdisk/tests/fuzz_regressions.rs`... which calls the same library functions).
//!
//! Every function here feeds untrusted bytes to one public reader and ignores the answer: a
//! target fails only by panicking, aborting (an allocation beyond the limits), or hanging.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use imagetool::blockio::{Extents, MemImage, ReadAt, WriteAt};
use imagetool::vdisk::{self, Container, ImageReader};

/// An anonymous in-memory file holding `data` (memfd: no disk, no cleanup).
#[must_use]
pub fn memfile(data: &[u8]) -> File {
    let fd =
        rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd_create");
    let mut f = File::from(fd);
    f.write_all(data).expect("write memfd");
    f
}

/// Reads what an opened container maps: the first and last 64 KiB and the start of every
/// extent (bounded, so a huge virtual size costs nothing).
fn exercise(img: &(impl ReadAt + Extents)) {
    let size = img.size();
    let mut buf = vec![0u8; 64 << 10];
    let n = (buf.len() as u64).min(size) as usize;
    let _ = img.read_exact_at(&mut buf[..n], 0);
    let _ = img.read_exact_at(&mut buf[..n], size - n as u64);
    if let Ok(ext) = img.data_extents() {
        for e in ext.iter().take(64) {
            let n = (buf.len() as u64).min(e.end - e.start) as usize;
            let _ = img.read_exact_at(&mut buf[..n], e.start);
        }
    }
    let _ = imagetool::probe::inspect(img);
}

/// Reads `data` as container `c` (qcow2, VDI, VHD, VHDX, VMDK) and reads what it maps.
pub fn container(c: Container, data: &[u8]) {
    if let Ok(img) = ImageReader::open_as(memfile(data), "fuzz", c) {
        exercise(&img);
    }
}

/// Detects the container of `data` by its magic and reads it, as `inspect` does.
pub fn any_container(data: &[u8]) {
    if let Ok(img) = vdisk::open_image_file(memfile(data), "fuzz", false) {
        exercise(&img);
    }
}

/// `data` as a disk for the GPT reader (its tail also at the end, for the backup header).
pub fn gpt(data: &[u8]) {
    let img = MemImage::new(data.len() as u64 + (1 << 20));
    let _ = img.write_all_at(data, 0);
    let tail = data.len().min(33 * 512);
    let _ = img.write_all_at(&data[data.len() - tail..], img.size() - tail as u64);
    let _ = imagetool::ptable::gpt::read(&img);
    let _ = imagetool::ptable::read_table(&img);
}

/// The first 512 bytes of `data` as an MBR, then the whole as a disk.
pub fn mbr(data: &[u8]) {
    let mut s = [0u8; 512];
    let n = data.len().min(512);
    s[..n].copy_from_slice(&data[..n]);
    let _ = imagetool::ptable::mbr::Mbr::decode(&s);
    let img = MemImage::new(data.len() as u64);
    let _ = img.write_all_at(data, 0);
    let _ = imagetool::ptable::read_table(&img);
}

/// The first 512 bytes of `data` as a FAT boot sector, then the whole as a volume.
pub fn fat(data: &[u8]) {
    let mut s = [0u8; 512];
    let n = data.len().min(512);
    s[..n].copy_from_slice(&data[..n]);
    let _ = imagetool::fat::probe::parse(&s);
    let img = MemImage::new(data.len() as u64);
    let _ = img.write_all_at(data, 0);
    let _ = imagetool::probe::probe_fs(&img);
}

/// A closureInfo `registration` file.
pub fn registration(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = imagetool::nix::closure_info::parse_registration(text);
    }
}

/// An `exportReferencesGraph` file (plain or JSON), loaded against an empty store root.
pub fn references_graph(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("imagetool-fuzz-graph-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("graph");
    if std::fs::write(&file, data).is_ok() {
        let mut opts = imagetool::nix::closure::LoadOptions::default();
        opts.store_root = dir.clone();
        let _ = imagetool::nix::closure::load(
            &imagetool::nix::closure::ClosureInput::ReferencesGraph(file),
            &opts,
        );
    }
}

/// A spec JSON document.
pub fn spec(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(s) = imagetool::spec::Spec::from_json(text) {
            let _ = s.bootloader();
            let _ = s.file_name();
            let _ = s.resolve(0);
        }
    }
}

/// A structured-attributes file (`.attrs.json`).
pub fn attrs(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = imagetool::spec::StructuredAttrs::parse(text, Path::new("fuzz/.attrs.json"));
    }
}

/// A bootspec (`boot.json`).
pub fn bootspec(data: &[u8]) {
    let _ = imagetool::boot::bootspec::Generation::parse(data, Path::new("fuzz/boot.json"));
}

/// An OVMF variable file (`efiVariables`): parsed, and when it parses, a boot entry added and
/// the result parsed again.
pub fn efivars(data: &[u8]) {
    use imagetool::boot::efivars::{self, HardDrive, LoadOption, VarStore};
    let _ = LoadOption::decode(data);
    if let Ok(mut s) = VarStore::parse(data.to_vec()) {
        let option = LoadOption {
            attributes: efivars::LOAD_OPTION_ACTIVE,
            description: efivars::SYSTEMD_BOOT_DESCRIPTION.into(),
            partition: HardDrive {
                number: 1,
                start_lba: 2048,
                size_lba: 4096,
                guid: [7; 16],
            },
            path: "\\EFI\\systemd\\systemd-bootx64.efi".into(),
        };
        if efivars::add_boot_entry(&mut s, &option).is_ok() {
            let again = VarStore::parse(s.into_bytes()).expect("an updated store parses");
            assert!(
                again
                    .get("BootOrder", &efivars::GLOBAL_VARIABLE_GUID)
                    .is_some()
            );
        }
    }
}

/// Runs `data` through the target called `name` (the replay of regression inputs).
///
/// # Panics
/// On an unknown target name.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "qcow2" => container(Container::Qcow2, data),
        "vdi" => container(Container::Vdi, data),
        "vhd" => container(Container::Vhd, data),
        "vhdx" => container(Container::Vhdx, data),
        "vmdk" => container(Container::Vmdk, data),
        "container" => any_container(data),
        "gpt" => gpt(data),
        "mbr" => mbr(data),
        "fat" => fat(data),
        "registration" => registration(data),
        "references_graph" => references_graph(data),
        "spec" => spec(data),
        "attrs" => attrs(data),
        "bootspec" => bootspec(data),
        "efivars" => efivars(data),
        "inspect" => {
            let img = MemImage::new(data.len() as u64);
            let _ = img.write_all_at(data, 0);
            let _ = imagetool::probe::inspect(&img);
        }
        other => panic!("unknown fuzz target {other}"),
    }
}

/// The fuzz targets, as `cargo fuzz list` names them.
pub const TARGETS: &[&str] = &[
    "qcow2",
    "vdi",
    "vhd",
    "vhdx",
    "vmdk",
    "container",
    "gpt",
    "mbr",
    "fat",
    "registration",
    "references_graph",
    "spec",
    "attrs",
    "bootspec",
    "efivars",
    "inspect",
];
