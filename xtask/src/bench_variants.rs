//! `cargo xtask bench variants [--closure DIR]`: several outputs from one plan against separate
//! builds, and each compressed variant against the same packaging done with the standard CLIs
//! (gzip, GNU tar) on imagetool's own raw/qcow2 image, in the same run.
//!
//! The closure is target/bench/closure when it exists (`cargo xtask fixture --bench`), else the
//! fixture closure (target/fixture). Release build; every row is the faster of two runs when a
//! run is quick.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::workspace_root;

struct Closure {
    dir: PathBuf,
    toplevel: String,
}

fn imagetool(bin: &Path, c: &Closure) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("build")
        .args(["--toplevel", c.toplevel.trim(), "--closure-info"])
        .arg(&c.dir)
        .arg("--store-root")
        .arg(c.dir.join("store"))
        .args(["--bootloader", "none", "--progress", "none"]);
    cmd
}

/// Runs `f` (a fresh command each time) twice when quick; returns the faster wall time.
fn best(mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for i in 0..2 {
        let _ = Command::new("sync").status();
        let t = Instant::now();
        f()?;
        let d = t.elapsed();
        best = best.min(d);
        if i == 0 && d > Duration::from_secs(20) {
            break;
        }
    }
    Ok(best)
}

fn quiet(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("{cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    Ok(())
}

fn sh(script: &str) -> Result<()> {
    quiet(Command::new("sh").args(["-c", script]))
}

pub fn run_bench(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let mut dir = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--closure", Some(v)) => dir = Some(PathBuf::from(v)),
            _ => bail!("usage: cargo xtask bench variants [--closure DIR]"),
        }
    }
    let dir = dir.unwrap_or_else(|| {
        let b = root.join("target/bench/closure");
        if b.join("toplevel").exists() {
            b
        } else {
            root.join("target/fixture")
        }
    });
    let toplevel = std::fs::read_to_string(dir.join("toplevel")).with_context(|| {
        format!(
            "{}: no closure (run cargo xtask fixture, or the fixture tests, first)",
            dir.display()
        )
    })?;
    let c = Closure { dir, toplevel };
    let bin = crate::measure::release_cli(&root)?;
    let work = root.join("target/bench/variants");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    crate::measure::warm_page_cache(&c.dir.join("store"))?;
    println!("bench variants on {}\n", c.dir.display());

    // One plan, three containers vs three builds.
    let one = best(|| {
        quiet(
            imagetool(&bin, &c)
                .args(["--format", "qcow2,vhdx,vmdk", "--output"])
                .arg(work.join("one.qcow2")),
        )
    })?;
    let three = best(|| {
        for f in ["qcow2", "vhdx", "vmdk"] {
            quiet(
                imagetool(&bin, &c)
                    .args(["--format", f, "--output"])
                    .arg(work.join(format!("sep.{f}"))),
            )?;
        }
        Ok(())
    })?;
    println!("| build | wall s |\n|---|---|");
    println!(
        "| --format qcow2,vhdx,vmdk (one plan) | {:.2} |",
        one.as_secs_f64()
    );
    println!(
        "| three builds (qcow2, vhdx, vmdk) | {:.2} |",
        three.as_secs_f64()
    );
    println!(
        "\none plan / three builds = {:.2} (goal <= 0.5)\n",
        one.as_secs_f64() / three.as_secs_f64()
    );

    // Compressed variants vs the standard CLIs on imagetool's own disk.
    println!("| variant | imagetool --variant s | disk build + CLI packaging s | ratio |");
    println!("|---|---|---|---|");
    let w = work.display().to_string();
    for (variant, disk_format, script) in [
        (
            "digital-ocean",
            "qcow2",
            format!("gzip -6 -n -c {w}/cli/d.qcow2 > {w}/cli/d.qcow2.gz"),
        ),
        (
            "linode",
            "raw",
            format!("gzip -6 -n -c {w}/cli/d.img > {w}/cli/d.img.gz"),
        ),
        (
            "google-compute",
            "raw",
            format!(
                "cd {w}/cli && mv d.img disk.raw && tar -S --format=oldgnu -c disk.raw | gzip -6 -n > d.raw.tar.gz"
            ),
        ),
        (
            "proxmox",
            "raw",
            format!("zstd -q -T0 -f {w}/cli/d.img -o {w}/cli/d.img.zst"),
        ),
    ] {
        let out = work.join(variant);
        let native = best(|| {
            let _ = std::fs::remove_dir_all(&out);
            quiet(
                imagetool(&bin, &c)
                    .args(["--variant", variant, "--output"])
                    .arg(&out),
            )
        })?;
        let partition = match variant {
            "linode" => "none",
            _ => "legacy",
        };
        let cli = work.join("cli");
        let ext = if disk_format == "raw" { "img" } else { "qcow2" };
        let shell = best(|| {
            let _ = std::fs::remove_dir_all(&cli);
            std::fs::create_dir_all(&cli)?;
            quiet(
                imagetool(&bin, &c)
                    .args([
                        "--partition",
                        partition,
                        "--format",
                        disk_format,
                        "--output",
                    ])
                    .arg(cli.join(format!("d.{ext}"))),
            )?;
            sh(&script)
        })?;
        let label = if variant == "proxmox" {
            "proxmox (CLI: raw + zstd, no VMA)"
        } else {
            variant
        };
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} |",
            native.as_secs_f64(),
            shell.as_secs_f64(),
            native.as_secs_f64() / shell.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
