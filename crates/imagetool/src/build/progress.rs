//! What a build reports while it runs ([`Progress`], by [`Phase`]) and when it is done
//! ([`BuildReport`]).

use std::path::PathBuf;
use std::time::Duration;

use imagetool_ptable::DiskLayout;
use imagetool_vdisk::Format;

/// A phase of a build, reported to a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Reading the closure (and hashing what must be hashed).
    Closure,
    /// Assembling the root tree.
    RootTree,
    /// Planning the filesystems and the partition layout.
    Plan,
    /// Writing the table and the filesystems into the in-memory disk (file data as references).
    Write,
    /// Writing the output file in its format, reading the file data from the closure.
    Convert,
}

impl Phase {
    /// The phase's name as the CLI prints it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Closure => "closure",
            Phase::RootTree => "root tree",
            Phase::Plan => "plan",
            Phase::Write => "write",
            Phase::Convert => "convert",
        }
    }
}

/// Receives a build's progress. The library never prints.
pub trait Progress {
    /// A phase begins.
    fn started(&mut self, _phase: Phase) {}
    /// A phase ended after `elapsed`; `detail` says what it did.
    fn finished(&mut self, _phase: Phase, _elapsed: Duration, _detail: &str) {}
    /// `done` of `total` bytes of a long phase ([`Phase::Write`], [`Phase::Convert`]) are
    /// through: 0 first, then a few times a second, then `total` when the phase succeeded.
    /// Always called on the thread that called [`build`](super::build), between `started`
    /// and `finished`.
    /// For `Write`, `total` is the root filesystem's used bytes and `done` the bytes written;
    /// for `Convert`, the raw image's allocated bytes and the bytes read from it.
    fn bytes(&mut self, _phase: Phase, _done: u64, _total: u64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What a build produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuildReport {
    /// The image file.
    pub output: PathBuf,
    /// Its format.
    pub format: Format,
    /// The virtual disk size in bytes.
    pub disk_size: u64,
    /// The partition layout (a single whole-disk root for `none`).
    pub layout: DiskLayout,
    /// The root filesystem's UUID.
    pub root_fs_uuid: crate::Uuid,
    /// Store paths in the image.
    pub store_paths: usize,
    /// Bytes allocated in the raw image.
    pub allocated: u64,
    /// How long each phase took.
    pub timings: Vec<(Phase, Duration)>,
}
