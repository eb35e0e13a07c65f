//! `cargo xtask …`: the project's tasks.
//!
//! * `test`    — installs the oracle tools when missing (Debian, as root), then fmt check, clippy
//!   with `-D warnings`, and every test with nextest. This is what CI runs.

mod bench;
mod deps;
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
        "bench" => bench::run(&rest),
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
         \x20 bench ext4 [--tree DIR] [--timeout SECS]  imagetool vs mkfs.ext4 -d (wall, peak RSS)"
    );
}

/// Runs a command, failing with its name when it does not succeed.
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
