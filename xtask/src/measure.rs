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

/// A line on the guest's free-page reporting, when the machine is a VM whose balloon device
/// takes freed memory back (virtio-balloon's `VIRTIO_BALLOON_F_REPORTING`; the kernel's
/// `page_reporting` parameters are then present); `None` elsewhere. With it on, every page the
/// kernel frees goes back to the host, and touching it again costs a fault in the host: writing
/// an image's gigabytes into fresh page cache ran at 0.3–1 GB/s on the project's VM instead of
/// 4.6 GB/s, and varied from run to run, so wall times of builds that write large outputs are
/// noisy there in a way no build setting changes.
pub fn free_page_reporting() -> Option<String> {
    let order =
        std::fs::read_to_string("/sys/module/page_reporting/parameters/page_reporting_order")
            .ok()?;
    let order: u32 = order.trim().parse().ok()?;
    let balloon = std::fs::read_dir("/sys/bus/virtio/drivers/virtio_balloon")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("virtio"))
        })
        .unwrap_or(false);
    if !balloon {
        return None;
    }
    // Orders at or past the buddy allocator's (11 orders) are never reported.
    Some(if order >= 11 {
        format!("free-page reporting: off (page_reporting_order {order})")
    } else {
        format!(
            "free-page reporting: on (page_reporting_order {order}): freed memory goes back to \
             the host and is faulted in again when touched, so writing a fresh output is slow \
             and wall times vary; for stable figures, as root: echo 11 > \
             /sys/module/page_reporting/parameters/page_reporting_order (and back to {order})"
        )
    })
}

/// One command timed by `/usr/bin/time -v`: wall time, CPU seconds (user + system), peak RSS.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// Wall time.
    pub wall: std::time::Duration,
    /// User + system CPU seconds.
    pub cpu: f64,
    /// Peak resident set size, KiB.
    pub rss_kib: u64,
}

/// Runs `args` under `timeout` and `/usr/bin/time -v`; `None` when it timed out.
///
/// # Errors
/// The command cannot start or fails.
pub fn time_v(args: &[String], timeout_s: u64) -> Result<Option<Timed>> {
    let start = std::time::Instant::now();
    let o = Command::new("timeout")
        .arg(timeout_s.to_string())
        .arg("/usr/bin/time")
        .arg("-v")
        .args(args)
        .output()
        .map_err(|e| {
            anyhow::anyhow!("running {args:?} (needs /usr/bin/time: apt-get install time): {e}")
        })?;
    let wall = start.elapsed();
    if o.status.code() == Some(124) {
        return Ok(None);
    }
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        anyhow::bail!("{args:?} failed: {err}");
    }
    let field = |name: &str| -> f64 {
        err.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(Some(Timed {
        wall,
        cpu: field("User time (seconds):") + field("System time (seconds):"),
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        rss_kib: field("Maximum resident set size (kbytes):") as u64,
    }))
}

/// The value after a command-line flag.
///
/// # Errors
/// The flag is the last argument.
pub fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<String> {
    it.next()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
}

/// Reads every regular file under `dir` once, so the runs that follow find it in the page
/// cache. (`tar -cf /dev/null` does not do this: GNU tar notices the archive is /dev/null and
/// skips reading the files' data.)
///
/// # Errors
/// A directory cannot be listed.
pub fn warm_page_cache(dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    let mut buf = vec![0u8; 1 << 20];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file()
                && let Ok(mut f) = std::fs::File::open(e.path())
            {
                use std::io::Read;
                while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
            }
        }
    }
    Ok(())
}
