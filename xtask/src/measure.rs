//! What every `cargo xtask bench …` needs: the release CLI, and the machine's state to report
//! beside each figure.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

/// Builds the release `imagetool` and returns its path.
///
/// # Errors
/// The build fails.
pub fn release_cli(root: &Path) -> Result<PathBuf> {
    crate::run(Command::new("cargo").current_dir(root).args([
        "build",
        "--release",
        "-q",
        "-p",
        "imagetool-cli",
    ]))?;
    Ok(root.join("target/release/imagetool"))
}

/// CPU seconds (user + system) of this process's waited-for children, from /proc/self/stat
/// (cutime + cstime, in clock ticks of 1/100 s on Linux).
pub fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After ")": state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
    (f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0)) / 100.0
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
pub fn loadavg() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
