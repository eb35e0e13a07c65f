//! The planner against the real thing: make-disk-image's parted + sgdisk commands
//! (tests/make-disk-image.sh) on the same disk size, compared with sfdisk, sgdisk and byte for
//! byte.

use imagetool_testutil::tools::{PARTED, SFDISK, SGDISK, SH};
use imagetool_testutil::{require, run_ok};
use std::os::unix::fs::FileExt;
use std::path::Path;

use imagetool_blockio::SparseFile;
use imagetool_ptable::{DiskSize, LayoutOptions, Requirements, TableType, plan, read_table};

fn reference(t: TableType, img: &Path, mib: u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make-disk-image.sh");
    run_ok(
        SH,
        &[
            script.to_str().unwrap(),
            t.name(),
            img.to_str().unwrap(),
            &mib.to_string(),
        ],
    );
}

fn ours(t: TableType, img: &Path, mib: u64) -> imagetool_ptable::DiskLayout {
    let layout = plan(
        &{
            let mut o = LayoutOptions::default();
            o.table = t;
            o.disk_size = DiskSize::Mib(mib);
            o
        },
        Requirements::default(),
    )
    .unwrap();
    let disk = SparseFile::create(img, layout.disk_size).unwrap();
    layout.write_table(&disk).unwrap();
    layout
}

fn sectors(img: &Path, first: u64, count: u64) -> Vec<u8> {
    let f = std::fs::File::open(img).unwrap();
    let mut buf = vec![0u8; (count * 512) as usize];
    f.read_exact_at(&mut buf, first * 512).unwrap();
    buf
}

#[test]
fn test_every_table_equals_parted_and_sgdisk() {
    if !(require(&[PARTED]) && require(&[SGDISK]) && require(&[SFDISK])) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for mib in [2048u64, 777] {
        for t in TableType::ALL {
            if t == TableType::None {
                continue;
            }
            let r = dir.path().join(format!("ref-{mib}-{t}.img"));
            let o = dir.path().join(format!("ours-{mib}-{t}.img"));
            reference(t, &r, mib);
            let layout = ours(t, &o, mib);
            let mbr = !t.is_gpt();
            assert_eq!(
                sfdisk_dump(&o, mbr).replace("ours", "X"),
                sfdisk_dump(&r, mbr).replace("ref", "X"),
                "{t} at {mib} MiB"
            );
            // Byte for byte: sector 0, the primary GPT and the backup GPT. On MBR disks parted
            // writes its own 75-byte chain-loader into the boot code area and a random disk
            // signature; we leave the boot code to the bootloader installer (GRUB's boot.img
            // replaces it anyway) and derive the signature, so bytes 0..444 are compared apart.
            let (mut a, mut b) = (sectors(&o, 0, 34), sectors(&r, 0, 34));
            if mbr {
                assert!(a[..440].iter().all(|&x| x == 0), "{t}: boot code not empty");
                a[..444].fill(0);
                b[..444].fill(0);
            }
            assert!(a == b, "{t} at {mib} MiB: the first 34 sectors differ");
            let n = mib * 2048;
            assert!(
                sectors(&o, n - 33, 33) == sectors(&r, n - 33, 33),
                "{t} at {mib} MiB: the backup GPT differs"
            );
            if t.is_gpt() {
                let v = run_ok(SGDISK, &["-v", o.to_str().unwrap()]);
                let v = v.stdout;
                assert!(v.contains("No problems found"), "{t}: {v}");
            }
            // sfdisk --json agrees with the plan, and so does our own reader.
            let j = run_ok(SFDISK, &["--json", o.to_str().unwrap()]);
            let j: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
            let parts = j["partitiontable"]["partitions"].as_array().unwrap();
            assert_eq!(parts.len(), layout.partitions.len());
            for (p, want) in parts.iter().zip(&layout.partitions) {
                assert_eq!(p["start"].as_u64(), Some(want.first_lba), "{t}");
                assert_eq!(p["size"].as_u64(), Some(want.sectors()), "{t}");
            }
            let read = read_table(&SparseFile::open(&o).unwrap()).unwrap();
            assert_eq!(read.partitions.len(), layout.partitions.len());
            for (p, want) in read.partitions.iter().zip(&layout.partitions) {
                assert_eq!((p.first_lba, p.sectors), (want.first_lba, want.sectors()));
                assert_eq!(p.guid, want.guid);
            }
        }
    }
}

#[test]
fn test_table_images_are_sparse_and_identical_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    ours(TableType::Hybrid, &a, 4096);
    ours(TableType::Hybrid, &b, 4096);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&a).unwrap();
    assert_eq!(m.len(), 4096 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{} blocks allocated",
        m.blocks()
    );
}

/// `sfdisk --dump` with the device name removed (and the label-id line when `drop_label_id`).
fn sfdisk_dump(img: &Path, drop_label_id: bool) -> String {
    let out = run_ok(SFDISK, &["--dump", img.to_str().unwrap()]);
    let name = img.to_str().unwrap();
    out.stdout
        .lines()
        .filter(|l| !(l.starts_with("device:") || (drop_label_id && l.starts_with("label-id:"))))
        .map(|l| l.replace(name, "IMG"))
        .collect::<Vec<_>>()
        .join("\n")
}
