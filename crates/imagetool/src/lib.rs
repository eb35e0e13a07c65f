//! imagetool: NixOS disk images built natively.
//!
//! This is the facade crate: it re-exports the layers below it, so a Rust tool can depend on
//! `imagetool` alone.
//!
//! * [`blockio`]: positional I/O (sparse image files, in-memory images, partition windows).
//! * [`fstree`]: the host-independent file tree the filesystem writers consume.
//! * [`ext4`]: the native ext4 writer.
#![deny(missing_docs)]

pub use imagetool_blockio as blockio;
pub use imagetool_ext4 as ext4;
pub use imagetool_fstree as fstree;
