//! The small piece of Nix that imagetool needs, written in-house (the `nix-compat` crate on
//! crates.io is an empty placeholder; see `docs/fixture.md`).
//!
//! ```text
//!   host tree ──nar::dump_path──▶ NAR bytes ──HashSink──▶ (sha256, size) ─┐
//!                                    │                                     ├─▶ closure_info
//!                                    └──RefScanner──▶ references ──────────┤   (store-paths,
//!   (sha256, name, refs) ──store_path::make_source_path──▶ /nix/store/… ───┘    registration)
//! ```
//!
//! * [`base32`]: Nix's base32 alphabet and bit order.
//! * [`nar`]: NAR serialisation of a host directory into any `io::Write`, a hashing sink and the
//!   hash-modulo sink used for self-referencing content-addressed paths.
//! * [`store_path`]: store path validation and Nix's path derivation (`makeStorePath`).
//! * [`refscan`]: reference scanning, linear in the bytes scanned.
//! * [`closure_info`]: `store-paths` and `registration` exactly as nixpkgs' `closureInfo`.
//! * [`closure`]: loading a closure (closureInfo or exportReferencesGraph), completing and
//!   verifying NAR hashes, adding extra paths closed under their references.
//! * [`db`]: the image's Nix store database (`db.sqlite`, schema 10), deterministic.
//! * [`scan`]: a store path read with NAR semantics, its parallel NAR hash, and the snapshot
//!   that proves nothing read changed during a build.
//! * [`root`]: the NixOS root tree (store, database, profiles, `/etc/NIXOS`, contents) as an
//!   `imagetool_fstree::Tree` for the filesystem writers.
//!
//! ```
//! use imagetool_nix::{base32, sha256, store_path::make_source_path};
//!
//! assert_eq!(base32::encode(&sha256(b"")), "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
//! let p = make_source_path(&sha256(b"nar bytes"), "hello", [], false).unwrap();
//! assert!(p.as_str().starts_with("/nix/store/") && p.name() == "hello");
//! ```
#![deny(missing_docs)]

pub mod base32;
pub mod closure;
pub mod closure_info;
pub mod db;
mod error;
pub mod nar;
pub mod refscan;
pub mod root;
pub mod scan;
pub mod store_path;

use sha2::{Digest, Sha256};

pub use closure_info::PathInfo;
pub use error::{Error, ErrorKind, Result};
pub use store_path::StorePath;

/// The sha256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lower-case hexadecimal of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}
