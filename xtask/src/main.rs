//! `cargo xtask …`: the project's tasks.
//!
//! * `test`    — installs the oracle tools when missing (Debian, as root), then fmt check, clippy
//!   with `-D warnings`, and every test with nextest. This is what CI runs.
//! * `demo`    — the main job on the bundled default: fixture closure → imagetool build →
//!   QEMU boot, with the serial output and step timings.
//! * `examples` — runs the library's examples on the fixture, checked by e2fsck and qemu-img.
//! * `fixture` — builds the bootable fixture closure, or with `--bench` the benchmark closure.
//! * `deps`    — installs the Debian packages of every oracle tool (`testutil::tools::ALL`).
//! * `bench`   — end-to-end comparisons with the conventional tools (`ext4`, `formats`,
//!   `squashfs`, `variants`, `verify`, `arch`, `iso`); micro-benchmarks are `cargo bench -p
//!   imagetool-benches`.
//! * `fuzz`    — every cargo-fuzz target for a bounded time.
//! * `cycles`  — fails on an import cycle between the modules of any crate.
//! * `identity` — records or checks the SHA-256 of a fixed set of outputs (a refactor's proof).
//! * `dist-assets --out DIR` — shell completions and man pages generated from the CLI.

mod bench;
mod bench_arch;
mod bench_formats;
mod bench_iso;
mod bench_squashfs;
mod bench_variants;
mod bench_verify;
mod cycles;
mod demo;
mod deps;
mod dist_assets;
mod examples;
mod fixture;
mod fuzz;
mod identity;
mod measure;
mod test;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(task) = args.next() else {
        usage();
        bail!("no task given");
    };
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "test" => test::all(&rest),
        "deps" => deps::ensure_all(),
        "dist-assets" => dist_assets::run(&rest),
        "examples" => examples::run_examples(),
        "bench" => match rest.split_first() {
            Some((what, args)) if what == "formats" => bench_formats::run_bench(args),
            Some((what, args)) if what == "variants" => bench_variants::run_bench(args),
            Some((what, _)) if what == "ext4" => bench::run(&rest),
            Some((what, args)) if what == "squashfs" => bench_squashfs::run_bench(args),
            Some((what, args)) if what == "arch" => bench_arch::run_bench(args),
            Some((what, args)) if what == "verify" => bench_verify::run_bench(args),
            Some((what, args)) if what == "iso" => bench_iso::run_bench(args),
            _ => bail!(
                "usage: cargo xtask bench formats|variants|ext4|squashfs|verify|arch|iso [ARGS] \
                 (cargo xtask help lists each one's arguments)"
            ),
        },
        "fixture" => fixture::run(&rest),
        "fuzz" => fuzz::run_all(match rest.first() {
            Some(s) => s.parse()?,
            None => fuzz::CI_SECONDS,
        }),
        "demo" => demo::run_demo(&rest),
        "identity" => identity::run_identity(&rest),
        "cycles" => cycles::run_cycles(),
        "help" | "--help" | "-h" => {
            usage();
            Ok(())
        }
        other => {
            usage();
            bail!("unknown task {other:?}")
        }
    }
}

fn usage() {
    eprintln!(
        "usage: cargo xtask <task>\n\
         \n\
         tasks:\n\
         \x20 test [nextest args]  install oracle tools if missing, fmt, clippy, all tests (CI)\n\
         \x20 deps                 install the Debian packages the tests and demo need\n\
         \x20 demo [--out DIR]     build the fixture's hybrid qcow2 image with imagetool and boot it\n\
         \x20 bench ext4 [--tree DIR] [--timeout SECS]  imagetool vs mkfs.ext4 -d (wall, peak RSS)\n\
         \x20 bench formats [--image RAW]  native qcow2 writers vs qemu-img convert\n\
         \x20 bench squashfs [--closure DIR] [--comp C] [--level L] [--xz-bcj F]\n\
         \x20                      imagetool mkfs squashfs vs mksquashfs (wall, RSS, size)\n\
         \x20 bench variants [--closure DIR]  one plan, three formats vs three builds; packaging vs CLIs\n\
         \x20 fuzz [SECONDS]       every cargo-fuzz target for SECONDS each (default 8)\n\
         \x20 bench verify [--closure DIR] [--files N]  store verification's cost; one large path's hash\n\
         \x20 bench arch [--runs N]  an aarch64 image vs the same-size x86_64 image\n\
         \x20 bench iso [--size-mib M] [--files N] [--level L]\n\
         \x20                      build --format iso vs mksquashfs + xorriso (wall, CPU, RSS, size)\n\
         \x20 fixture --out DIR    build the bootable fixture closure (docs/fixture.md)\n\
         \x20 fixture --bench --out DIR [--seed N] [--size-mib M] [--files N]\n\
         \x20                      build the benchmark closure\n\
         \x20 cycles               report import cycles between the modules of every crate\n\
         \x20 identity --record FILE | --check FILE [--out DIR]\n\
         \x20                      hash a fixed set of outputs; prove a refactor moved no byte"
    );
}

/// Runs a command, failing with its name when it does not succeed.
///
/// # Errors
/// The command cannot be started, or exits unsuccessfully.
pub fn run(cmd: &mut std::process::Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().map_err(|e| anyhow::anyhow!("{cmd:?}: {e}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The workspace root (xtask's parent directory).
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}
