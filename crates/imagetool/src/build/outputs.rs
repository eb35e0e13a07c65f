//! Several outputs from one plan (`format = "qcow2,vhdx"`): every container writer reads the
//! same in-memory disk, in parallel, and either all outputs appear or none does.

use imagetool_blockio::{AtomicFile, Extents, ReadAt};
use imagetool_vdisk::{self as vdisk, Format};

use crate::build::BuildError;

/// Writes `src` into every output (one thread each; the writers share `opts.threads` among
/// themselves through rayon). Nothing is committed here: the caller commits all outputs together
/// ([`imagetool_blockio::AtomicFile::commit_all`]) or drops them, so either every output appears
/// or none does.
pub(crate) fn convert_all<S>(
    src: &S,
    outs: &[(Format, AtomicFile)],
    opts: &vdisk::Options,
) -> Result<String, BuildError>
where
    S: ReadAt + Extents + Sync + ?Sized,
{
    let results: Vec<(Format, Result<vdisk::Report, BuildError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = outs
            .iter()
            .map(|(f, out)| {
                let f = *f;
                scope.spawn(move || {
                    (
                        f,
                        vdisk::convert_into(src, f, out, opts).map_err(BuildError::from),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(outs)
            .map(|(h, (f, out))| {
                h.join().unwrap_or_else(|_| {
                    (
                        *f,
                        Err(BuildError::Io {
                            path: out.dest().to_path_buf(),
                            source: std::io::Error::other("the writer thread panicked"),
                        }),
                    )
                })
            })
            .collect()
    });
    let mut detail = Vec::new();
    for (f, r) in results {
        let r = r?;
        detail.push(format!("{f} ({} bytes)", r.file_size));
    }
    Ok(detail.join(", "))
}
