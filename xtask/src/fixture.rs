//! `cargo xtask fixture --out DIR`: the bootable fixture closure (docs/fixture.md).
//! `cargo xtask fixture --bench --out DIR [--seed N] [--size-mib M] [--files N]`: the benchmark
//! closure.
//! `--arch aarch64-linux` makes the fixture from Debian's arm64 packages (downloaded and
//! unpacked, never run; needs `dpkg --add-architecture arm64`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use imagetool_fixture::bench::{BenchOptions, build_bench};

/// Parses the arguments and builds the requested closure.
pub fn run(args: &[String]) -> Result<()> {
    let mut out: Option<PathBuf> = None;
    let mut bench = false;
    let mut opts = BenchOptions::default();
    let mut arch = imagetool_fixture::Arch::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--bench" => bench = true,
            "--arch" => arch = value("--arch")?.parse()?,
            "--seed" => opts.seed = value("--seed")?.parse().context("--seed: not a number")?,
            "--size-mib" => {
                opts.size_mib = value("--size-mib")?
                    .parse()
                    .context("--size-mib: not a number")?;
            }
            "--files" => opts.files = value("--files")?.parse().context("--files: not a number")?,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask fixture [--arch x86_64-linux|aarch64-linux] \
                 [--bench [--seed N] [--size-mib M] [--files N]] --out DIR"
            ),
        }
    }
    let out = out.context("--out DIR is required")?;
    let start = Instant::now();
    let f = if bench {
        build_bench(&out, &opts)?
    } else {
        imagetool_fixture::build(
            &out,
            &imagetool_fixture::Options {
                arch,
                ..imagetool_fixture::Options::default()
            },
        )?
    };
    eprintln!(
        "xtask: built {} in {:.1} s",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    println!("toplevel {}", f.toplevel);
    println!("store-paths {}", f.store_paths.len());
    if !bench {
        println!("kernel {}", f.kernel().display());
        println!("initrd {}", f.initrd().display());
        println!("cmdline {}", f.kernel_cmdline());
        println!("manifest-sha256 {}", f.expected_manifest_sha256()?);
    }
    Ok(())
}
