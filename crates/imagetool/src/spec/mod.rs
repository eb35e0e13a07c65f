//! The build specification as data: make-disk-image's arguments in JSON, and the builder methods
//! of [`ImageSpec`].
//!
//! A [`Spec`] is what a user writes: one JSON object whose keys are make-disk-image's argument
//! names (`partitionTableType`, `format`, `diskSize`, `contents`, …), the closure inputs
//! (`toplevel`, `closureInfo`, `referencesGraph`, `storeRoot`) and imagetool's own settings
//! (`output`, `threads`, `bootloader`, `seed`, …). [`Spec::resolve`] checks it and turns it into
//! the [`ImageSpec`] that [`build`](crate::build::build) takes. The CLI flags of `imagetool build`
//! fill the very same [`Spec`], so flags and JSON with the same settings give byte-identical
//! images.
//!
//! Inside a Nix build with `__structuredAttrs = true`, [`StructuredAttrs::read`] takes the
//! derivation's `.attrs.json` (`$NIX_ATTRS_JSON_FILE`): the derivation's own attributes
//! (`builder`, `system`, `outputs`, `exportReferencesGraph`, …) are set aside, the rest is the
//! spec, the closure is the `exportReferencesGraph` entry, and the image goes to
//! `$out/<baseName>.<ext>` with `$out/nix-support/hydra-build-products`, as make-disk-image
//! writes them.
//!
//! ```
//! use imagetool::spec::Spec;
//!
//! let spec = Spec::from_json(r#"{ "partitionTableType": "efi", "format": "qcow2",
//!     "toplevel": "/nix/store/00000000000000000000000000000000-nixos-system",
//!     "closureInfo": "/nix/store/00000000000000000000000000000000-closure-info",
//!     "installBootLoader": false, "output": "nixos.qcow2" }"#).unwrap();
//! let image = spec.resolve(0).unwrap();
//! assert_eq!(image.format, imagetool::vdisk::Format::Qcow2);
//!
//! let err = Spec::from_json(r#"{ "partitionTabelType": "efi" }"#).unwrap_err();
//! assert!(err.to_string().contains("partitionTabelType"));
//! ```

mod attrs;
mod builder;
mod error;
mod file;
mod image;
mod resolve;
mod schema;

pub use attrs::{StructuredAttrs, attrs_file_from_env};
pub use error::{Error, ErrorKind};
pub use file::SpecFile;
pub use image::{DEFAULT_ROOT_GUID, ImageSpec, parse_uuid};
pub use schema::{Bootloader, ContentSpec, SizeValue, Spec};

#[cfg(test)]
mod tests;
