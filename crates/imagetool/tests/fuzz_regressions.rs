//! Replays every committed fuzz input (`fuzz/regressions/<target>/*`) through the same code the
//! cargo-fuzz targets run (`fuzz/src/lib.rs`, included here), on the stable toolchain: each
//! crash the fuzzers found stays fixed.

#[path = "../../../fuzz/src/lib.rs"]
#[allow(dead_code, clippy::all)]
mod fuzz;

use std::path::Path;

#[test]
fn test_fuzz_regression_inputs_replay_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for target in fuzz::TARGETS {
        let Ok(files) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        for f in files {
            let path = f.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            fuzz::run(target, &data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression inputs under {}", dir.display());
}
