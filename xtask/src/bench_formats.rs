//! `cargo xtask bench formats [--image RAW] [--closure DIR]`: imagetool's native container
//! writers against `qemu-img convert` on the same raw image, in the same run.
//!
//! With `--closure DIR` (a closure from `cargo xtask fixture --bench --out DIR`; by default
//! target/bench/closure when it exists), `imagetool build` runs first: once with `--format raw`
//! (its output is then the raw image the conversions read) and once per container format
//! straight from the closure (no raw intermediate), each with wall time, CPU time and peak RSS;
//! the targets compare those direct builds with "build raw, then qemu-img convert".
//!
//! Without either, a 2 GiB ext4 image of /usr/share, /usr/bin and /usr/include (hard-linked
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
    let mut image = None;
    let mut closure = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().map(PathBuf::from);
        match (flag.as_str(), value) {
            ("--image", Some(v)) => image = Some(v),
            ("--closure", Some(v)) => closure = Some(v),
            _ => bail!("usage: cargo xtask bench formats [--image RAW] [--closure DIR]"),
        }
    }
    let default_closure = root.join("target/bench/closure");
    if closure.is_none() && image.is_none() && default_closure.join("toplevel").exists() {
        closure = Some(default_closure);
    }
    let bin = crate::measure::release_cli(&root)?;
    let mut direct = None;
    if let Some(dir) = &closure {
        let (raw, rows) = bench_build(&bin, dir, &work)?;
        image = Some(raw);
        direct = Some(rows);
    }
    let image = match image {
        Some(i) => i,
        None => default_image(&root.join("target/bench"))?,
    };
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

    let ours = |format: &str, extra: &[&str]| -> Result<(Duration, u64, f64)> {
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
    let qemu = |name: &str, extra: &[&str]| -> Result<(Duration, u64, f64)> {
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

    let row = |what: &str, (t, s, cpu): (Duration, u64, f64)| {
        println!(
            "| {what} | {:.2} | {cpu:.2} | {} |",
            t.as_secs_f64(),
            s >> 20
        );
    };
    println!("| run | wall s | CPU s | output MiB |\n|---|---|---|---|");
    row("imagetool raw (sparse copy)", raw);
    row("imagetool qcow2", q);
    row("qemu-img convert -O qcow2", qq);
    row("imagetool qcow2-compressed (deflate)", c);
    row("qemu-img convert -c -O qcow2", qc);
    row("imagetool qcow2-compressed (zstd)", z);
    row("qemu-img convert -c -o compression_type=zstd", qz);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!();
    if let Some(rows) = &direct {
        let get = |f: &str| rows.iter().find(|r| r.format == f).map(|r| r.wall);
        let cpu = |f: &str| rows.iter().find(|r| r.format == f).map_or(0.0, |r| r.cpu);
        if let (Some(raw_t), Some(c_t), Some(q_t)) =
            (get("raw"), get("qcow2-compressed"), get("qcow2"))
        {
            println!(
                "CPU s: build qcow2-compressed {:.2}; build raw + qemu-img convert -c {:.2} ({:.2} + {:.2})",
                cpu("qcow2-compressed"),
                cpu("raw") + qc.2,
                cpu("raw"),
                qc.2
            );
            println!(
                "build qcow2-compressed vs build raw + qemu-img convert -c: {:.2}x (target >= 2)",
                ratio(raw_t + qc.0, c_t)
            );
            println!(
                "build qcow2 time / build raw time: {:.2} (target <= 1)",
                ratio(q_t, raw_t)
            );
            println!(
                "build qcow2 vs build raw + qemu-img convert: {:.2}x",
                ratio(raw_t + qq.0, q_t)
            );
        }
    }
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

/// One `imagetool build` run.
struct BuildRow {
    format: &'static str,
    wall: Duration,
    cpu: f64,
}

/// `imagetool build` of the closure in `dir`: raw first (returned: the raw image), then every
/// container format straight from the closure; prints a table with wall, CPU, peak RSS, size.
fn bench_build(bin: &Path, dir: &Path, work: &Path) -> Result<(PathBuf, Vec<BuildRow>)> {
    let toplevel = std::fs::read_to_string(dir.join("toplevel"))
        .with_context(|| format!("{}: not a closure from cargo xtask fixture", dir.display()))?;
    // Warm the page cache with the closure, as for the image below.
    crate::measure::warm_page_cache(&dir.join("store"))?;
    let formats = [
        "raw",
        "qcow2",
        "qcow2-compressed",
        "vdi",
        "vpc",
        "vhd-fixed",
        "vhdx",
        "vmdk",
        "vmdk-stream",
    ];
    let mut rows = Vec::new();
    println!(
        "imagetool build of {} (hybrid table), load average before: {}\n",
        dir.display(),
        crate::measure::loadavg()
    );
    if let Some(line) = crate::measure::free_page_reporting() {
        println!("{line}\n");
    }
    println!(
        "| build --format | wall s | CPU s | peak RSS MiB | output MiB (allocated) | load avg after |"
    );
    println!("|---|---|---|---|---|---|");
    let mut raw = None;
    for format in formats {
        let out = work.join(format!("build-{format}.img"));
        let _ = std::fs::remove_file(&out);
        let _ = Command::new("sync").status();
        let stats = work.join("time.txt");
        let cpu = crate::measure::children_cpu();
        let t = Instant::now();
        let st = Command::new("/usr/bin/time")
            .arg("-o")
            .arg(&stats)
            .args(["-f", "%M"])
            .arg(bin)
            .arg("build")
            .args(["--toplevel", toplevel.trim(), "--closure-info"])
            .arg(dir)
            .arg("--store-root")
            .arg(dir.join("store"))
            // The benchmark closure is a store, not a bootable system (no boot.json).
            .args(["--partition", "hybrid", "--bootloader", "none"])
            .args(["--format", format, "--output"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("running /usr/bin/time (apt-get install time)")?;
        let wall = t.elapsed();
        if !st.success() {
            bail!("imagetool build --format {format} failed with {st}");
        }
        let cpu = crate::measure::children_cpu() - cpu;
        let rss: u64 = std::fs::read_to_string(&stats)?
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(&out)?;
        println!(
            "| {format} | {:.2} | {cpu:.2} | {} | {} ({}) | {} |",
            wall.as_secs_f64(),
            rss >> 10,
            md.len() >> 20,
            (md.blocks() * 512) >> 20,
            crate::measure::loadavg()
        );
        // Nothing but the output may be left in the directory.
        let stray: Vec<_> = std::fs::read_dir(work)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        if !stray.is_empty() {
            bail!(
                "build --format {format} left {stray:?} in {}",
                work.display()
            );
        }
        rows.push(BuildRow { format, wall, cpu });
        if format == "raw" {
            raw = Some(out);
        } else {
            std::fs::remove_file(&out)?;
        }
    }
    println!();
    let raw = raw.context("no raw build")?;
    Ok((raw, rows))
}

/// Runs `cmd` (twice when it is quick, keeping the faster run), after `sync` so that write-back
/// of an earlier run's output does not land in this one's time.
fn timed(cmd: &mut Command, out: &Path) -> Result<(Duration, u64, f64)> {
    let first = timed_once(cmd, out)?;
    if first.0 > Duration::from_secs(10) {
        return Ok(first);
    }
    let second = timed_once(cmd, out)?;
    Ok(if second.0 < first.0 { second } else { first })
}

fn timed_once(cmd: &mut Command, out: &Path) -> Result<(Duration, u64, f64)> {
    let _ = std::fs::remove_file(out);
    let _ = Command::new("sync").status();
    let cpu = crate::measure::children_cpu();
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
        crate::measure::children_cpu() - cpu,
        cmd.get_program()
    );
    Ok((
        d,
        std::fs::metadata(out)?.len(),
        crate::measure::children_cpu() - cpu,
    ))
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
