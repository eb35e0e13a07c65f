//! imagetool: NixOS disk images built natively.
//!
//! This is the facade crate: it re-exports the layers below it, so a Rust tool can depend on
//! `imagetool` alone.
//!
//! * [`blockio`]: positional I/O (sparse image files, in-memory images, partition windows).
//! * [`nix`]: Nix base32, NAR hashing, store paths, reference scanning, closureInfo files.
#![deny(missing_docs)]

pub use imagetool_blockio as blockio;
pub use imagetool_nix as nix;
