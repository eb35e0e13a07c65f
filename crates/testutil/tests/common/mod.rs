//! Helpers shared by the oracle tests: run a conventional tool, patch bytes in an image.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::Path;

use imagetool_testutil::{Tool, run};

/// Runs a tool that must succeed (used to make reference images); returns its stdout.
pub fn must(tool: Tool, args: &[&str]) -> String {
    let out = run(tool, args, &[("MTOOLS_SKIP_CHECK", "1")]).unwrap();
    assert!(out.status.success(), "{out}");
    out.stdout
}

/// Overwrites bytes of a file at `offset`.
pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Reads `len` bytes of a file at `offset`.
pub fn read(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

/// Flips every bit of the byte at `offset`.
pub fn flip(path: &Path, offset: u64) {
    let b = read(path, offset, 1)[0];
    patch(path, offset, &[!b]);
}

/// Copies all of `src` into `dst` at `offset` (dst must be large enough).
pub fn place(src: &Path, dst: &Path, offset: u64) {
    let data = std::fs::read(src).unwrap();
    patch(dst, offset, &data);
}

/// Creates a sparse file of `size` bytes.
pub fn sparse(path: &Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
}
