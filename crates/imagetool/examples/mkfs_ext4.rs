//! `mkfs.ext4 -d` done by the library: an ext4 image file from a host directory.
//!
//! ```text
//! cargo run -p imagetool --example mkfs_ext4 -- DIR OUTPUT.img [LABEL]
//! ```
//!
//! The image is as small as the tree allows (plus the journal and a little headroom), every
//! owner, mode and time comes from the directory (times clamped to `SOURCE_DATE_EPOCH` when it
//! is set), and the output is renamed into place only when it is complete.

use std::path::PathBuf;
use std::process::ExitCode;

use imagetool::blockio::{AtomicFile, SparseFile};
use imagetool::ext4;
use imagetool::fstree::{HostOptions, Overrides, Tree};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, output, rest @ ..] = args.as_slice() else {
        eprintln!("usage: mkfs_ext4 DIR OUTPUT.img [LABEL]");
        return ExitCode::from(2);
    };
    match run(dir.into(), output.into(), rest.first().cloned()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkfs_ext4: {e}");
            let mut source = std::error::Error::source(e.as_ref());
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(
    dir: PathBuf,
    output: PathBuf,
    label: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let epoch: Option<i64> = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok());
    let host = HostOptions {
        overrides: Overrides {
            clamp_time: epoch,
            ..Overrides::default()
        },
        ..HostOptions::default()
    };
    let tree = Tree::from_host_dir(&dir, &host)?;
    let timestamp = epoch.unwrap_or(315_532_800);
    let plan = ext4::plan(&tree, &{
        let mut o = ext4::Options::default();
        o.label = label.unwrap_or_default().into_bytes();
        o.timestamp = timestamp.into();
        o
    })?;
    let out = AtomicFile::create(&output)?;
    let image = SparseFile::from_file(out.try_clone_file()?, plan.size_bytes())?;
    plan.write(&tree, &image)?;
    out.commit()?;
    println!(
        "{}: ext4, {} MiB, {} inodes, {} entries",
        output.display(),
        plan.size_bytes() >> 20,
        plan.inode_count(),
        tree.len()
    );
    Ok(())
}
