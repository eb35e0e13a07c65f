//! Several outputs from one plan (`format = "qcow2,vhdx"`): every container writer reads the
//! same in-memory disk, in parallel, and either all outputs appear or none does.

use std::path::PathBuf;

use imagetool_blockio::{Extents, ReadAt};
use imagetool_vdisk::{self as vdisk, Format};

use crate::build::{BuildError, ImageSpec};

/// Writes the primary output and every `spec.also` output from `src` (one thread each; the
/// writers share `opts.threads` among themselves through rayon). When one fails, the outputs
/// already written are removed and the first error is returned.
pub(crate) fn convert_all<S>(
    src: &S,
    spec: &ImageSpec,
    opts: &vdisk::Options,
) -> Result<String, BuildError>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let jobs: Vec<(Format, PathBuf)> = std::iter::once((spec.format, spec.output.clone()))
        .chain(spec.also.iter().cloned())
        .collect();
    let results: Vec<(Format, PathBuf, Result<vdisk::Report, BuildError>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .iter()
                .map(|(f, p)| {
                    let (f, p) = (*f, p.clone());
                    scope.spawn(move || {
                        let r = vdisk::convert(src, f, &p, opts).map_err(BuildError::from);
                        (f, p, r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&jobs)
                .map(|(h, (f, p))| {
                    h.join().unwrap_or_else(|_| {
                        (
                            *f,
                            p.clone(),
                            Err(BuildError::Io {
                                path: p.clone(),
                                source: std::io::Error::other("the writer thread panicked"),
                            }),
                        )
                    })
                })
                .collect()
        });
    if results.iter().any(|(_, _, r)| r.is_err()) {
        let mut first = None;
        for (_, path, r) in results {
            match r {
                Ok(_) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) if first.is_none() => first = Some(e),
                Err(_) => {}
            }
        }
        return Err(first.unwrap_or_else(|| BuildError::InvalidInput("a writer failed".into())));
    }
    let mut detail = Vec::new();
    for (f, _, r) in results {
        if let Ok(r) = r {
            detail.push(format!("{f} ({} bytes)", r.file_size));
        }
    }
    Ok(detail.join(", "))
}
