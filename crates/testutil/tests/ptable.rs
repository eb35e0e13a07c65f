//! The partition-table oracles on tables written by `sfdisk` (MBR and GPT).

mod common;

use std::path::Path;

use common::{flip, sparse};
use imagetool_testutil::tools::{SFDISK, SGDISK};
use imagetool_testutil::{ErrorKind, Target, Tool, ptable, require_tools, run};

const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const DISK_GUID: &str = "5B4E1F3A-2C6D-4E8F-9A0B-1C2D3E4F5A6B";

fn sfdisk_write(img: &Path, script: &str) {
    let tool: Tool = SFDISK;
    let path = tool.path().unwrap();
    let mut child = std::process::Command::new(path)
        .args([
            "--no-reread",
            "--no-tell-kernel",
            "-q",
            img.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk refused:\n{script}");
}

fn gpt_disk(img: &Path) {
    sparse(img, 64 << 20);
    sfdisk_write(
        img,
        &format!(
            "label: gpt\nlabel-id: {DISK_GUID}\n\
             start=2048, size=20480, type={ESP}, uuid=11111111-2222-4333-8444-555555555555, name=\"ESP\", attrs=\"RequiredPartition\"\n\
             start=22528, type={LINUX}, uuid=66666666-7777-4888-9999-AAAAAAAAAAAA, name=\"nixos\", attrs=\"LegacyBIOSBootable\"\n"
        ),
    );
}

#[test]
fn mbr_table_reads_back_as_written() {
    require_tools!(SFDISK);
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("mbr.img");
    sparse(&img, 32 << 20);
    sfdisk_write(
        &img,
        "label: dos\nlabel-id: 0x2178694e\nstart=2048, size=8192, type=ef, bootable\nstart=10240, type=83\n",
    );
    let t = ptable::read(&Target::whole(&img)).unwrap();
    assert_eq!(t.label, "dos");
    assert_eq!(t.id.as_deref(), Some("0x2178694e"));
    assert_eq!(t.partitions.len(), 2);
    let (p1, p2) = (&t.partitions[0], &t.partitions[1]);
    assert_eq!(
        (p1.start, p1.size, p1.kind.as_str(), p1.bootable),
        (2048, 8192, "ef", true)
    );
    assert_eq!(
        (p2.start, p2.size, p2.kind.as_str(), p2.bootable),
        (10240, 65536 - 10240, "83", false)
    );
    assert_eq!(
        t.byte_range(1).unwrap(),
        (10240 * 512, (65536 - 10240) * 512)
    );
    let dump = ptable::dump(&Target::whole(&img)).unwrap();
    assert!(dump.contains("label-id: 0x2178694e"), "{dump}");
    assert!(
        dump.contains("IMAGE1 : start=        2048, size=        8192, type=ef, bootable"),
        "{dump}"
    );
}

#[test]
fn gpt_table_reads_back_and_verifies() {
    require_tools!(SFDISK, SGDISK);
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("gpt.img");
    gpt_disk(&img);
    let t = ptable::read(&Target::whole(&img)).unwrap();
    assert_eq!(t.label, "gpt");
    assert_eq!(t.id.as_deref(), Some(DISK_GUID));
    assert_eq!(
        (t.firstlba, t.lastlba, t.sectorsize),
        (Some(2048), Some(131_038), Some(512))
    );
    let (p1, p2) = (&t.partitions[0], &t.partitions[1]);
    assert_eq!((p1.start, p1.size, p1.kind.as_str()), (2048, 20480, ESP));
    assert_eq!(p1.name.as_deref(), Some("ESP"));
    assert_eq!(p1.attrs.as_deref(), Some("RequiredPartition"));
    assert_eq!(
        p1.uuid.as_deref(),
        Some("11111111-2222-4333-8444-555555555555")
    );
    assert_eq!(
        (p2.start, p2.size, p2.kind.as_str()),
        (22528, 106_496, LINUX)
    );
    assert_eq!(p2.attrs.as_deref(), Some("LegacyBIOSBootable"));
    let out = ptable::sgdisk_verify(&Target::whole(&img)).unwrap();
    assert!(out.stdout.contains("No problems found"), "{out}");
}

#[test]
fn corrupted_gpt_header_crc_fails() {
    require_tools!(SFDISK, SGDISK);
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("gpt.img");
    gpt_disk(&img);
    // The primary header's CRC32 field (LBA 1, bytes 16..20).
    flip(&img, 512 + 16);
    let e = ptable::sgdisk_verify(&Target::whole(&img)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    println!("sgdisk: {e}");
    // sfdisk falls back to the backup header but warns: also a finding.
    let e = ptable::read(&Target::whole(&img)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    // A damaged partition entry array (its CRC in the header no longer matches).
    gpt_disk(&img);
    flip(&img, 2 * 512 + 32);
    assert!(ptable::sgdisk_verify(&Target::whole(&img)).is_err());
    // Sanity: the tool itself is what judged it.
    let out = run(SGDISK, &["-v", img.to_str().unwrap()], &[]).unwrap();
    assert!(!out.stdout.contains("No problems found"), "{out}");
}
