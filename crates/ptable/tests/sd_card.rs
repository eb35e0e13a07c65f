//! The `sd-card` layout against the real thing: sd-image.nix's sfdisk script
//! (tests/sd_image.sh) on a disk of the same size, compared byte for byte (MBR) and through
//! `sfdisk --json`.

use std::os::unix::fs::FileExt;
use std::path::Path;

use imagetool_blockio::SparseFile;
use imagetool_ptable::{
    DiskSize, LayoutOptions, MIB, Requirements, Role, SD_FIRMWARE_ID, TableType, plan,
};
use imagetool_testutil::tools::{SFDISK, SH};
use imagetool_testutil::{Target, ptable, require_tools, run_ok};

fn sector0(img: &Path) -> Vec<u8> {
    let f = std::fs::File::open(img).unwrap();
    let mut buf = vec![0u8; 512];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn test_sd_card_equals_sd_image_nix_sfdisk() {
    require_tools!(SFDISK, SH);
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sd_image.sh");
    // Small (root ends below cylinder 1023 of 255×63) and large (CHS saturates) disks.
    for mib in [64u64, 300, 9000] {
        let layout = plan(
            &{
                let mut o = LayoutOptions::default();
                o.table = TableType::SdCard;
                o.disk_size = DiskSize::Mib(mib);
                o
            },
            Requirements::default(),
        )
        .unwrap();
        assert_eq!(layout.disk_size, mib * MIB);
        assert_eq!(layout.mbr_signature, Some(SD_FIRMWARE_ID));
        let fw = layout.partition(Role::Firmware).unwrap();
        assert_eq!((fw.first_lba, fw.sectors()), (16384, 61440));
        let ours = dir.path().join(format!("ours-{mib}.img"));
        let disk = SparseFile::create(&ours, layout.disk_size).unwrap();
        layout.write_table(&disk).unwrap();
        drop(disk);
        let reference = dir.path().join(format!("ref-{mib}.img"));
        run_ok(
            SH,
            &[
                script.to_str().unwrap(),
                reference.to_str().unwrap(),
                &(mib * MIB).to_string(),
            ],
        );
        let t = ptable::read(&Target::whole(&reference)).unwrap();
        let o = ptable::read(&Target::whole(&ours)).unwrap();
        let view = |t: &ptable::Table| {
            let parts: Vec<_> = t
                .partitions
                .iter()
                .map(|p| (p.start, p.size, p.kind.clone(), p.bootable))
                .collect();
            (t.label.clone(), t.id.clone(), parts)
        };
        assert_eq!(view(&o), view(&t), "{mib} MiB");
        assert_eq!(sector0(&ours), sector0(&reference), "{mib} MiB: sector 0");
    }
}

#[test]
fn test_sd_card_auto_size_holds_the_root() {
    let layout = plan(
        &{
            let mut o = LayoutOptions::default();
            o.table = TableType::SdCard;
            o.disk_size = DiskSize::Auto {
                additional_space: 0,
            };
            o
        },
        Requirements {
            root_bytes: 100 * MIB + 1,
        },
    )
    .unwrap();
    let root = layout.partition(Role::Root).unwrap();
    assert_eq!(root.first_lba, 38 * 2048);
    assert!(root.sectors() * 512 > 100 * MIB);
    assert_eq!(layout.disk_size, (38 + 101) * MIB);
    assert_eq!("sd-card".parse::<TableType>().unwrap(), TableType::SdCard);
    assert!(!TableType::ALL.contains(&TableType::SdCard));
}
