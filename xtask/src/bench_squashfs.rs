//! `cargo xtask bench squashfs [--closure DIR] [--size-mib M] [--files N] [--comp C]
//! [--level L] [--xz-bcj F] [--block-size B] [--timeout SECS]`: imagetool's squashfs writer
//! against `mksquashfs` on the benchmark closure's store, in the same run, both using every
//! core, with the same compressor, level and block size and NixOS' make-squashfs switches
//! (`-all-root -no-hardlinks`): wall time, peak RSS and image size.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use imagetool_fixture::bench::{BenchOptions, build_bench};

struct Run {
    wall: Duration,
    rss_kib: u64,
    size: u64,
}

fn measure(args: &[String], out: &Path, timeout_s: u64) -> Result<Option<Run>> {
    let _ = std::fs::remove_file(out);
    let Some(t) = crate::measure::time_v(args, timeout_s)? else {
        return Ok(None);
    };
    Ok(Some(Run {
        wall: t.wall,
        rss_kib: t.rss_kib,
        size: std::fs::metadata(out)?.len(),
    }))
}

fn row(label: &str, r: &Option<Run>, base: &Option<Run>) -> String {
    match (r, base) {
        (Some(r), Some(b)) => format!(
            "| {label} | {:.1} s | {} MiB | {:.1} MiB | {:.2}x | {:.4} |",
            r.wall.as_secs_f64(),
            r.rss_kib / 1024,
            r.size as f64 / f64::from(1 << 20),
            b.wall.as_secs_f64() / r.wall.as_secs_f64(),
            r.size as f64 / b.size as f64
        ),
        (Some(r), None) => format!(
            "| {label} | {:.1} s | {} MiB | {:.1} MiB | - | - |",
            r.wall.as_secs_f64(),
            r.rss_kib / 1024,
            r.size as f64 / f64::from(1 << 20)
        ),
        (None, _) => format!("| {label} | timed out | - | - | - | - |"),
    }
}

/// Runs the benchmark.
pub fn run_bench(args: &[String]) -> Result<()> {
    let mut closure: Option<PathBuf> = None;
    let mut bench = BenchOptions::default();
    let mut comp = "zstd".to_string();
    let mut level: Option<String> = Some("19".into());
    let mut bcj: Option<String> = None;
    let mut block = "1M".to_string();
    let mut timeout_s = 3600;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || crate::measure::value(&mut it, a);
        match a.as_str() {
            "--closure" => closure = Some(value()?.into()),
            "--size-mib" => bench.size_mib = value()?.parse().context("--size-mib")?,
            "--files" => bench.files = value()?.parse().context("--files")?,
            "--comp" => {
                comp = value()?;
                if comp != "zstd" && comp != "gzip" {
                    level = None;
                }
            }
            "--level" => level = Some(value()?),
            "--xz-bcj" => bcj = Some(value()?),
            "--block-size" => block = value()?,
            "--timeout" => timeout_s = value()?.parse().context("--timeout")?,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask bench squashfs [--closure DIR] \
                 [--size-mib M] [--files N] [--comp C] [--level L] [--xz-bcj F] \
                 [--block-size B] [--timeout SECS]"
            ),
        }
    }
    let root = crate::workspace_root();
    let bin = crate::measure::release_cli(&root)?;
    let work = std::env::temp_dir().join(format!("imagetool-bench-sqfs-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| -> Result<()> {
        let closure = match closure {
            Some(c) => c,
            None => {
                let c = work.join("closure");
                eprintln!(
                    "bench: building the benchmark closure ({} MiB, {} files) in {}",
                    bench.size_mib,
                    bench.files,
                    c.display()
                );
                build_bench(&c, &bench)?;
                c
            }
        };
        let store = closure.join("store/nix/store");
        if !store.is_dir() {
            bail!("{}: no store/nix/store in the closure", closure.display());
        }
        let s = |p: &Path| p.to_string_lossy().into_owned();
        // Warm the page cache once so neither tool pays for a cold tree alone.
        crate::measure::warm_page_cache(&store)?;
        let ours = work.join("imagetool.sqfs");
        let theirs = work.join("mksquashfs.sqfs");
        let mut mine: Vec<String> = [
            s(&bin),
            "mkfs".into(),
            "squashfs".into(),
            "--source".into(),
            s(&store),
            s(&ours),
            "--all-root".into(),
            "--no-hardlinks".into(),
            "--comp".into(),
            comp.clone(),
            "--block-size".into(),
            block.clone(),
        ]
        .into();
        let mut theirs_args: Vec<String> = [
            "mksquashfs".into(),
            s(&store),
            s(&theirs),
            "-noappend".into(),
            "-no-progress".into(),
            "-quiet".into(),
            "-all-root".into(),
            "-no-hardlinks".into(),
            "-b".into(),
            block.clone(),
            "-comp".into(),
            comp.clone(),
        ]
        .into();
        if let Some(l) = &level {
            mine.extend(["--level".into(), l.clone()]);
            theirs_args.extend(["-Xcompression-level".into(), l.clone()]);
        }
        if let Some(f) = &bcj {
            mine.extend(["--xz-bcj".into(), f.clone()]);
            theirs_args.extend(["-Xbcj".into(), f.clone()]);
        }
        let m = measure(&theirs_args, &theirs, timeout_s)?;
        let i = measure(&mine, &ours, timeout_s)?;
        let settings = format!(
            "{comp}{}{}, block {block}",
            level
                .as_deref()
                .map(|l| format!(" level {l}"))
                .unwrap_or_default(),
            bcj.as_deref()
                .map(|f| format!(" bcj {f}"))
                .unwrap_or_default()
        );
        println!("\n## squashfs of {} ({settings})\n", store.display());
        println!(
            "| tool | wall | peak RSS | size | speed-up vs mksquashfs | size vs mksquashfs |\n\
             |---|---|---|---|---|---|"
        );
        println!("{}", row("mksquashfs", &m, &m));
        println!("{}", row("imagetool mkfs squashfs", &i, &m));
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}
