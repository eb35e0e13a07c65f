//! imagetool: NixOS disk images built natively.
//!
//! This is the facade crate: it re-exports the layers below it, so a Rust tool can depend on
//! `imagetool` alone.
//!
//! * [`blockio`]: positional I/O (sparse image files, in-memory images, partition windows).
//! * [`vdisk`]: container formats (qcow2, VDI, VHD, VHDX, VMDK) written from allocated extents.
#![deny(missing_docs)]

pub use imagetool_blockio as blockio;
pub use imagetool_vdisk as vdisk;
