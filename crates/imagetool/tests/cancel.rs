//! Cancelling a build from a library caller (issue 14): a [`Cancel`] raised from another
//! thread, or a [`Progress`] that panics, stops every worker and commits nothing; the output
//! directory holds nothing afterwards (the output is an unnamed file until commit), and the
//! same spec then builds normally.

use std::path::Path;
use std::time::Duration;

use imagetool::blockio::Cancel;
use imagetool::boot::Bootloader;
use imagetool::build::{BuildError, NoProgress, Phase, Progress, build, build_cancellable};
use imagetool::ptable::TableType;
use imagetool::vdisk::Format;

mod common;

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Cancels its handle when a phase starts.
struct CancelAt(Phase, Cancel, Vec<Phase>);

impl Progress for CancelAt {
    fn started(&mut self, phase: Phase) {
        self.2.push(phase);
        if phase == self.0 {
            self.1.cancel();
        }
    }
}

#[test]
fn test_cancel_at_each_phase_commits_nothing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nixos.qcow2");
    let spec = common::fixture_spec(&fx, TableType::Efi, Bootloader::None, Format::Qcow2, &out);
    for phase in [Phase::RootTree, Phase::Write, Phase::Convert] {
        let cancel = Cancel::new();
        let mut p = CancelAt(phase, cancel.clone(), Vec::new());
        let err = build_cancellable(&spec, &mut p, &cancel).unwrap_err();
        assert!(matches!(err, BuildError::Cancelled), "{phase:?}: {err}");
        assert_eq!(err.kind(), imagetool::ErrorKind::Interrupted);
        assert_eq!(err.kind().exit_code(), 130);
        // It stopped in the phase it was cancelled in: no later phase started.
        assert_eq!(p.2.last(), Some(&phase), "{:?}", p.2);
        assert!(
            entries(dir.path()).is_empty(),
            "{phase:?}: {:?}",
            entries(dir.path())
        );
    }
    // A cancel from another thread while the container is written.
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        c2.cancel();
    });
    let r = build_cancellable(&spec, &mut NoProgress, &cancel);
    t.join().unwrap();
    // The fixture may build in under 50 ms on a fast machine: then it succeeded whole.
    match r {
        Err(BuildError::Cancelled) => assert!(entries(dir.path()).is_empty()),
        Err(e) => panic!("{e}"),
        Ok(_) => {
            assert_eq!(entries(dir.path()), ["nixos.qcow2"]);
            std::fs::remove_file(&out).unwrap();
        }
    }
    build(&spec, &mut NoProgress).unwrap();
    assert_eq!(entries(dir.path()), ["nixos.qcow2"]);
}

/// Panics on the second byte count of the convert phase: the first tick while the container
/// is written (or, on a machine fast enough to finish first, the final count, still before the
/// commit).
#[derive(Default)]
struct Panicky(u32);

impl Progress for Panicky {
    fn bytes(&mut self, phase: Phase, _done: u64, _total: u64) {
        if phase == Phase::Convert {
            self.0 += 1;
            assert!(self.0 < 2, "progress callback failed");
        }
    }
}

#[test]
fn test_a_panicking_progress_commits_nothing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nixos.qcow2");
    let format = Format::Qcow2Compressed;
    let spec = common::fixture_spec(&fx, TableType::Efi, Bootloader::None, format, &out);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        build(&spec, &mut Panicky::default())
    }));
    assert!(r.is_err(), "the panic reaches the caller");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}
