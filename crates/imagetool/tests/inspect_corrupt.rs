//! `inspect` on damaged images: every answer is a report or an error, never a panic. The
//! images are the fixture's, raw and qcow2; the damage is seeded, so a failure reproduces.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use imagetool::boot::Bootloader;
use imagetool::build::{NoProgress, build};
use imagetool::probe::inspect_file;
use imagetool::ptable::TableType;
use imagetool::vdisk::Format;

mod common;

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The fixture's hybrid image in `format`, written once; damage is patched into it and undone.
fn image(dir: &Path, format: Format) -> PathBuf {
    let fx = imagetool_fixture::ensure().unwrap();
    let out = dir.join(format!("damaged.{}", format.extension()));
    let spec = common::fixture_spec(&fx, TableType::Hybrid, Bootloader::None, format, &out);
    build(&spec, &mut NoProgress).unwrap();
    // The undamaged image reads back as the hybrid layout.
    let (_, r) = inspect_file(&out).unwrap();
    assert_eq!(r.partitions.len(), 3);
    out
}

/// Damages the image at `path` in 150 seeded ways inside `regions` (byte ranges of the file),
/// some of them truncations when `truncate`, inspects each result, and undoes the damage.
fn damage_and_inspect(path: &Path, regions: &[(u64, u64)], truncate: bool, seed: u64) -> usize {
    let mut rng = Rng(seed);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = file.metadata().unwrap().len();
    let mut answered = 0;
    for round in 0..150 {
        let mut undo: Vec<(u64, Vec<u8>)> = Vec::new();
        if truncate && round % 10 == 9 {
            let at = rng.below(len);
            let mut tail = vec![0u8; usize::try_from(len - at).unwrap()];
            file.read_exact_at(&mut tail, at).unwrap();
            file.set_len(at).unwrap();
            undo.push((at, tail));
        } else {
            for _ in 0..1 + rng.below(8) {
                let (start, n) = regions[usize::try_from(rng.below(regions.len() as u64)).unwrap()];
                let at = start + rng.below(n);
                let mut old = [0u8; 1];
                file.read_exact_at(&mut old, at).unwrap();
                let new = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => old[0] ^ (1 << rng.below(8)),
                    _ => rng.next().to_le_bytes()[0],
                };
                file.write_all_at(&[new], at).unwrap();
                undo.push((at, old.to_vec()));
            }
        }
        // A report or an error naming the file; a panic fails the test.
        match inspect_file(path) {
            Ok(_) => answered += 1,
            Err(e) => assert!(e.to_string().contains("damaged"), "{e}"),
        }
        for (at, bytes) in undo.into_iter().rev() {
            file.write_all_at(&bytes, at).unwrap();
        }
    }
    assert_eq!(file.metadata().unwrap().len(), len);
    answered
}

#[test]
fn test_inspect_survives_damaged_raw_and_qcow2_images() {
    let dir = tempfile::tempdir().unwrap();

    let raw = image(dir.path(), Format::Raw);
    // The tables (LBA 0..34 and the backup at the end), the ESP's boot sector and the root's
    // superblock (hybrid: ESP at LBA 16384, root at 526336).
    let len = std::fs::metadata(&raw).unwrap().len();
    let regions = [
        (0, 34 * 512),
        (len - 33 * 512, 33 * 512),
        (16384 * 512, 512),
        (526_336 * 512 + 1024, 1024),
    ];
    let answered = damage_and_inspect(&raw, &regions, false, 1);
    assert!(answered > 0, "some damage must leave a readable image");

    let qcow2 = image(dir.path(), Format::Qcow2);
    // The header, and the metadata clusters after it (L1, refcounts, the first L2 tables).
    let answered = damage_and_inspect(&qcow2, &[(0, 512), (512, 6 << 16)], true, 2);
    assert!(answered > 0, "some damage must leave a readable image");
}
