//! The QEMU boot runner on tiny guests: a hand-written MBR boot sector under SeaBIOS (raw and
//! qcow2), a UEFI shell script under OVMF, and the hard timeout. The fixture's direct kernel
//! boot is in `boot_fixture.rs`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{must, patch, sparse};
use imagetool_testutil::boot::{self, Accel, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{
    MCOPY, MKFS_VFAT, OVMF_CODE, OVMF_VARS, QEMU_IMG, QEMU_SYSTEM, SEABIOS,
};
use imagetool_testutil::{ErrorKind, require_tools};

const TOPLEVEL: &str = "/nix/store/00000000000000000000000000000000-bootsector";
const HASH: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// A 512-byte real-mode program that writes `msg` to COM1 and halts:
/// `xor ax,ax; mov ds,ax; cld; mov si,msg; mov dx,0x3f8; l: lodsb; test al,al; jz h;
///  out dx,al; jmp l; h: hlt; jmp h; msg: ...`.
fn boot_sector(msg: &str) -> Vec<u8> {
    let mut s = vec![
        0x31, 0xC0, 0x8E, 0xD8, 0xFC, 0xBE, 0x16, 0x7C, 0xBA, 0xF8, 0x03, 0xAC, 0x84, 0xC0, 0x74,
        0x03, 0xEE, 0xEB, 0xF8, 0xF4, 0xEB, 0xFD,
    ];
    assert_eq!(s.len(), 0x16);
    s.extend_from_slice(msg.as_bytes());
    s.push(0);
    assert!(s.len() <= 440, "message too long for a boot sector");
    s.resize(510, 0);
    s.extend_from_slice(&[0x55, 0xAA]);
    s
}

fn mbr_disk(path: &Path) {
    sparse(path, 1 << 20);
    let msg =
        format!("boot sector\r\nIMAGETOOL-BOOT-OK {TOPLEVEL}\r\nIMAGETOOL-MANIFEST {HASH}\r\n");
    patch(path, 0, &boot_sector(&msg));
}

fn short(mut cfg: BootConfig, secs: u64) -> BootConfig {
    cfg.timeout = Duration::from_secs(secs);
    cfg
}

#[test]
fn seabios_boots_a_boot_sector_from_raw_and_qcow2() {
    require_tools!(QEMU_SYSTEM, SEABIOS, QEMU_IMG);
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("mbr.img");
    mbr_disk(&raw);
    let before = std::fs::read(&raw).unwrap();
    let cfg = short(
        BootConfig::new(Firmware::SeaBios).drive(&raw, DiskFormat::Raw),
        120,
    );
    let r = boot::boot_and_expect(&cfg, TOPLEVEL, HASH).unwrap();
    println!("SeaBIOS raw: {:.1?} ({:?})", r.elapsed, r.accel);
    assert!(r.stopped && !r.timed_out);
    // A wrong expectation on the same log fails, naming the hash it saw.
    let e = boot::expect_markers(&r, TOPLEVEL, &HASH.replace('5', "6")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Mismatch);
    assert!(
        e.message().contains("manifest differs") && e.message().contains("serial log tail"),
        "{e}"
    );
    // snapshot=on: the image is untouched.
    assert_eq!(std::fs::read(&raw).unwrap(), before);

    // A guest that reports failure is stopped at once, and the failure is named.
    let failing = tmp.path().join("fail.img");
    sparse(&failing, 1 << 20);
    patch(
        &failing,
        0,
        &boot_sector("IMAGETOOL-BOOT-FAIL stage1: test failure\r\n"),
    );
    let cfg = short(
        BootConfig::new(Firmware::SeaBios).drive(&failing, DiskFormat::Raw),
        120,
    );
    let r = boot::boot(&cfg).unwrap();
    assert!(r.stopped && !r.timed_out && r.elapsed < Duration::from_secs(60));
    let e = boot::expect_markers(&r, TOPLEVEL, HASH).unwrap_err();
    assert!(
        e.message()
            .contains("the guest reported \"IMAGETOOL-BOOT-FAIL stage1: test failure\""),
        "{e}"
    );

    let qcow = tmp.path().join("mbr.qcow2");
    must(
        QEMU_IMG,
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            qcow.to_str().unwrap(),
        ],
    );
    let cfg = short(
        BootConfig::new(Firmware::SeaBios).drive(&qcow, DiskFormat::Qcow2),
        120,
    );
    let r = boot::boot_and_expect(&cfg, TOPLEVEL, HASH).unwrap();
    println!("SeaBIOS qcow2: {:.1?}", r.elapsed);
}

#[test]
fn the_timeout_kills_a_guest_that_never_finishes() {
    require_tools!(QEMU_SYSTEM, SEABIOS);
    let tmp = tempfile::tempdir().unwrap();
    let blank = tmp.path().join("blank.img");
    sparse(&blank, 1 << 20);
    let cfg = short(
        BootConfig::new(Firmware::SeaBios).drive(&blank, DiskFormat::Raw),
        3,
    );
    let r = boot::boot(&cfg).unwrap();
    assert!(r.timed_out && !r.stopped);
    assert!(
        r.elapsed >= Duration::from_secs(3) && r.elapsed < Duration::from_secs(15),
        "{:?}",
        r.elapsed
    );
    let e = boot::expect_markers(&r, TOPLEVEL, HASH).unwrap_err();
    assert!(e.message().contains("killed after"), "{e}");
    // A missing drive is refused before QEMU starts.
    let cfg = BootConfig::new(Firmware::SeaBios).drive(&tmp.path().join("nope"), DiskFormat::Raw);
    assert_eq!(
        boot::boot(&cfg).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // Whatever the host, TCG can always be forced.
    let mut cfg = short(
        BootConfig::new(Firmware::SeaBios).drive(&blank, DiskFormat::Raw),
        1,
    );
    cfg.accel = Some(Accel::Tcg);
    assert_eq!(boot::boot(&cfg).unwrap().accel, Accel::Tcg);
}

#[test]
fn ovmf_runs_a_uefi_shell_script_from_a_fat_disk() {
    require_tools!(QEMU_SYSTEM, OVMF_CODE, OVMF_VARS, MKFS_VFAT, MCOPY);
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("fat.img");
    must(
        MKFS_VFAT,
        &["-i", "0badcafe", "-C", disk.to_str().unwrap(), "8192"],
    );
    let script = tmp.path().join("startup.nsh");
    std::fs::write(
        &script,
        // Quoted: the shell takes a word starting with '/' for a flag.
        format!(
            "@echo -off\r\necho \"IMAGETOOL-BOOT-OK {TOPLEVEL}\"\r\necho \"IMAGETOOL-MANIFEST {HASH}\"\r\nreset -s\r\n"
        ),
    )
    .unwrap();
    must(
        MCOPY,
        &[
            "-i",
            disk.to_str().unwrap(),
            script.to_str().unwrap(),
            "::/startup.nsh",
        ],
    );
    let cfg = short(
        BootConfig::new(Firmware::Ovmf).drive(&disk, DiskFormat::Raw),
        180,
    );
    let r = boot::boot_and_expect(&cfg, TOPLEVEL, HASH).unwrap();
    println!("OVMF: {:.1?} ({:?})", r.elapsed, r.accel);
}
