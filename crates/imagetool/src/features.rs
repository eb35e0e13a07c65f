//! What a build without some of the crate's Cargo features refuses, before any work: the
//! `nix-db` feature (SQLite, for the image's Nix store database) and `zstd` (docs/library.md,
//! "Cargo features"). With the default features every check passes.

use crate::build::{BuildError, ImageSpec};

/// `spec`'s first need this build of the crate cannot meet, as the error `build` returns.
pub(crate) fn check_build(spec: &ImageSpec) -> Result<(), BuildError> {
    if !cfg!(feature = "nix-db") {
        return Err(BuildError::InvalidInput(
            "the image's Nix store database (/nix/var/nix/db/db.sqlite): imagetool was built \
             without the `nix-db` feature"
                .into(),
        ));
    }
    if !cfg!(feature = "zstd") {
        let zstd_qcow2 = spec.format_options.compression == crate::vdisk::Compression::Zstd
            && std::iter::once(spec.format)
                .chain(spec.also.iter().map(|(f, _)| *f))
                .any(|f| f == crate::vdisk::Format::Qcow2Compressed);
        if zstd_qcow2 {
            return Err(BuildError::InvalidInput(
                "compression zstd: imagetool was built without the `zstd` feature".into(),
            ));
        }
        if crate::sdcard::wants_zstd(&spec.output) {
            return Err(BuildError::InvalidInput(format!(
                "{}: a .zst output: imagetool was built without the `zstd` feature",
                spec.output.display()
            )));
        }
    }
    Ok(())
}
