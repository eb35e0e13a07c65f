//! `cargo xtask bench formats [--image RAW]`: imagetool's native container writers against
//! `qemu-img convert` on the same raw image, in the same run.
//!
//! Without `--image`, a 2 GiB ext4 image of /usr/share, /usr/bin and /usr/include (hard-linked
//! into a staging tree, then `mkfs.ext4 -d`) is made once under target/bench/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{run, workspace_root};

pub fn run_bench(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let work = root.join("target/bench/formats");
    std::fs::create_dir_all(&work)?;
    let image = match args {
        [] => default_image(&root.join("target/bench"))?,
        [flag, path] if flag == "--image" => PathBuf::from(path),
        _ => bail!("usage: cargo xtask bench formats [--image RAW]"),
    };
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-q",
        "-p",
        "imagetool-cli",
    ]))?;
    let bin = root.join("target/release/imagetool");
    let size = std::fs::metadata(&image)
        .with_context(|| image.display().to_string())?
        .len();
    eprintln!(
        "bench formats: {} ({} MiB virtual)",
        image.display(),
        size >> 20
    );
    // Warm the page cache so both tools read from memory.
    run(Command::new("cat")
        .arg(&image)
        .stdout(std::process::Stdio::null()))?;

    let ours = |format: &str, extra: &[&str]| -> Result<(Duration, u64)> {
        let out = work.join(format!("it.{format}{}", extra.join("")));
        timed(
            Command::new(&bin)
                .args(["convert"])
                .arg(&image)
                .args(["--format", format, "--output"])
                .arg(&out)
                .args(extra),
            &out,
        )
    };
    let qemu = |name: &str, extra: &[&str]| -> Result<(Duration, u64)> {
        let out = work.join(format!("qemu.{name}"));
        timed(
            Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .args(extra)
                .arg(&image)
                .arg(&out),
            &out,
        )
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average before: {}", load.trim());
    let raw = ours("raw", &[])?;
    let q = ours("qcow2", &[])?;
    let qq = qemu("qcow2", &[])?;
    let c = ours("qcow2-compressed", &[])?;
    let qc = qemu("c.qcow2", &["-c"])?;
    let z = ours("qcow2-compressed", &["--compression", "zstd"])?;
    let qz = qemu("z.qcow2", &["-c", "-o", "compression_type=zstd"])?;

    let row = |what: &str, (t, s): (Duration, u64)| {
        println!("| {what} | {:.2} | {} |", t.as_secs_f64(), s >> 20);
    };
    println!("| run | seconds | output MiB |\n|---|---|---|");
    row("imagetool raw (sparse copy)", raw);
    row("imagetool qcow2", q);
    row("qemu-img convert -O qcow2", qq);
    row("imagetool qcow2-compressed (deflate)", c);
    row("qemu-img convert -c -O qcow2", qc);
    row("imagetool qcow2-compressed (zstd)", z);
    row("qemu-img convert -c -o compression_type=zstd", qz);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!();
    println!(
        "speed-up vs qemu-img -c (deflate): {:.2}x (target >= 2)",
        ratio(qc.0, c.0)
    );
    println!("speed-up vs qemu-img -c (zstd): {:.2}x", ratio(qz.0, z.0));
    println!("speed-up vs qemu-img qcow2: {:.2}x", ratio(qq.0, q.0));
    println!(
        "imagetool qcow2 time / imagetool raw time: {:.2} (target <= 1)",
        ratio(q.0, raw.0)
    );
    Ok(())
}

/// CPU seconds (user + system) of this process's waited-for children, from /proc/self/stat
/// (cutime + cstime, in clock ticks of 1/100 s on Linux).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After ")": state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
    (f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0)) / 100.0
}

/// Runs `cmd` (twice when it is quick, keeping the faster run), after `sync` so that write-back
/// of an earlier run's output does not land in this one's time.
fn timed(cmd: &mut Command, out: &Path) -> Result<(Duration, u64)> {
    let first = timed_once(cmd, out)?;
    if first.0 > Duration::from_secs(10) {
        return Ok(first);
    }
    let second = timed_once(cmd, out)?;
    Ok(if second.0 < first.0 { second } else { first })
}

fn timed_once(cmd: &mut Command, out: &Path) -> Result<(Duration, u64)> {
    let _ = std::fs::remove_file(out);
    let _ = Command::new("sync").status();
    let cpu = children_cpu();
    let t = Instant::now();
    let st = cmd
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("{cmd:?}"))?;
    let d = t.elapsed();
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    eprintln!(
        "  {:.2} s wall, {:.2} s CPU: {:?}",
        d.as_secs_f64(),
        children_cpu() - cpu,
        cmd.get_program()
    );
    Ok((d, std::fs::metadata(out)?.len()))
}

fn default_image(dir: &Path) -> Result<PathBuf> {
    let image = dir.join("formats-usr.raw");
    if image.exists() {
        return Ok(image);
    }
    std::fs::create_dir_all(dir)?;
    let tree = dir.join("formats-tree");
    if !tree.exists() {
        std::fs::create_dir_all(&tree)?;
        for d in ["/usr/share", "/usr/bin", "/usr/include"] {
            // Hard links when the tree is on the same filesystem, else copies.
            run(Command::new("cp").args(["-a", "-l", d]).arg(&tree))
                .or_else(|_| run(Command::new("cp").args(["-a", d]).arg(&tree)))?;
        }
    }
    let tmp = dir.join("formats-usr.raw.tmp");
    run(Command::new("truncate").args(["-s", "2G"]).arg(&tmp))?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
        .arg(&tree)
        .arg(&tmp))?;
    std::fs::rename(&tmp, &image)?;
    Ok(image)
}
