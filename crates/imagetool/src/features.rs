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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::closure::ClosureInput;
    use crate::vdisk::{Compression, Format};

    fn spec(output: &str) -> ImageSpec {
        ImageSpec::new(
            None,
            ClosureInput::ClosureInfo("/nonexistent".into()),
            output.into(),
        )
    }

    /// With every feature (the default) nothing is refused; without one, the request that
    /// needs it is refused naming the feature. Run both ways:
    /// `cargo test -p imagetool --lib features` and the same with `--no-default-features`.
    #[test]
    fn test_a_missing_feature_is_named_never_reached() {
        let zstd_qcow2 = spec("/nonexistent/x.qcow2")
            .format(Format::Qcow2Compressed)
            .compression(Compression::Zstd);
        let zst = spec("/nonexistent/x.img.zst");
        let plain = spec("/nonexistent/x.img");
        for (s, needs) in [(&zstd_qcow2, "zstd"), (&zst, "zstd"), (&plain, "nix-db")] {
            let r = check_build(s);
            let db = cfg!(feature = "nix-db");
            let has = db && (needs == "nix-db" || cfg!(feature = "zstd"));
            match r {
                Ok(()) => assert!(has, "{}: accepted without `{needs}`", s.output.display()),
                Err(e) => {
                    assert!(!has, "{}: refused: {e}", s.output.display());
                    let named = if db { needs } else { "nix-db" };
                    assert!(e.to_string().contains(&format!("`{named}` feature")), "{e}");
                }
            }
        }
    }
}
