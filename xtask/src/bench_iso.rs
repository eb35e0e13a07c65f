//! `cargo xtask bench iso [--size-mib M] [--files N] [--level L] [--timeout SECS]`:
//! `imagetool build --format iso` against what nixpkgs runs for the same ISO, `mksquashfs`
//! (make-squashfs.nix's switches) then `xorriso` (make-iso9660-image.sh's command line), in the
//! same run, on the same input.
//!
//! The input is the bootable fixture closure with the benchmark closure's store paths added to
//! it (so the store image is large and the ISO still has a bootspec, a kernel, syslinux and
//! GRUB). The conventional side gets exactly the tree imagetool put around the store image (the
//! ISO's files, extracted with `xorriso -osirrox`), so both sides write the same ISO content:
//! the only difference is who makes the squashfs and the ISO 9660 image.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use imagetool_fixture::bench::{BenchOptions, build_bench};

use crate::measure::{Timed as Run, value};

fn timed(args: &[String], timeout_s: u64) -> Result<Run> {
    crate::measure::time_v(args, timeout_s)?
        .with_context(|| format!("{} timed out after {timeout_s} s", args[0]))
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The fixture closure plus the benchmark closure's paths, in `dir` (hard links, no copy).
fn merge(fixture: &Path, bench: &Path, dir: &Path) -> Result<String> {
    let store = dir.join("store/nix/store");
    std::fs::create_dir_all(&store)?;
    let mut paths = BTreeSet::new();
    let mut registration = String::new();
    for src in [fixture, bench] {
        crate::run(
            Command::new("cp")
                .arg("-al")
                .arg(src.join("store/nix/store/."))
                .arg(&store),
        )?;
        let list = std::fs::read_to_string(src.join("store-paths"))
            .with_context(|| format!("{}/store-paths", src.display()))?;
        paths.extend(list.lines().map(str::to_owned));
        registration.push_str(
            &std::fs::read_to_string(src.join("registration"))
                .with_context(|| format!("{}/registration", src.display()))?,
        );
    }
    let mut list = String::new();
    for p in &paths {
        writeln!(list, "{p}")?;
    }
    std::fs::write(dir.join("store-paths"), list)?;
    std::fs::write(dir.join("registration"), registration)?;
    let toplevel = std::fs::read_to_string(fixture.join("toplevel"))?;
    std::fs::write(dir.join("toplevel"), &toplevel)?;
    Ok(toplevel.trim().to_owned())
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let ft = e.file_type().ok()?;
        if ft.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if ft.is_file() && e.file_name() == name {
            return Some(p);
        }
    }
    None
}

/// Runs the benchmark.
pub fn run_bench(args: &[String]) -> Result<()> {
    let mut bench = BenchOptions {
        size_mib: 384,
        files: 30_000,
        ..BenchOptions::default()
    };
    let mut level = "19".to_string();
    let mut timeout_s = 3600;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size-mib" => bench.size_mib = value(&mut it, a)?.parse().context("--size-mib")?,
            "--files" => bench.files = value(&mut it, a)?.parse().context("--files")?,
            "--level" => level = value(&mut it, a)?,
            "--timeout" => timeout_s = value(&mut it, a)?.parse().context("--timeout")?,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask bench iso [--size-mib M] \
                 [--files N] [--level L] [--timeout SECS]"
            ),
        }
    }
    let root = crate::workspace_root();
    let bin = crate::measure::release_cli(&root)?;
    let work = std::env::temp_dir().join(format!("imagetool-bench-iso-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| -> Result<()> {
        let fixture = imagetool_fixture::ensure().context("the fixture closure")?;
        let bench_dir = work.join("bench");
        eprintln!(
            "bench iso: building the benchmark closure ({} MiB, {} files)",
            bench.size_mib, bench.files
        );
        build_bench(&bench_dir, &bench)?;
        let closure = work.join("closure");
        let toplevel = merge(&fixture.dir, &bench_dir, &closure)?;
        let store = closure.join("store/nix/store");
        crate::measure::warm_page_cache(&store)?;
        let epoch = "1700000000";
        let volid = "nixos-bench-x86_64";

        // imagetool: one command.
        let ours = work.join("imagetool.iso");
        let mine = timed(
            &[
                s(&bin),
                "build".into(),
                "--format".into(),
                "iso".into(),
                "--toplevel".into(),
                toplevel.clone(),
                "--closure-info".into(),
                s(&closure),
                "--store-root".into(),
                s(&closure.join("store")),
                "--volume-id".into(),
                volid.into(),
                "--squashfs-comp".into(),
                "zstd".into(),
                "--squashfs-level".into(),
                level.clone(),
                "--output".into(),
                s(&ours),
            ],
            timeout_s,
        )?;

        // The same ISO tree around the store image, for xorriso.
        let tree = work.join("tree");
        crate::run(
            Command::new("xorriso")
                .args(["-osirrox", "on", "-indev"])
                .arg(&ours)
                .args(["-extract", "/"])
                .arg(&tree)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )?;
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&tree)
            .status();
        std::fs::remove_file(tree.join("nix-store.squashfs")).context("extracted ISO")?;
        let _ = std::fs::remove_file(tree.join(".boot.cat"));
        let isohdpfx = find(&fixture.store_root, "isohdpfx.bin")
            .context("no syslinux isohdpfx.bin in the fixture closure")?;

        // nixpkgs: make-squashfs.nix, then make-iso9660-image.sh.
        let sqfs = work.join("nix-store.squashfs");
        let reg = work.join("nix-path-registration");
        std::fs::copy(closure.join("registration"), &reg)?;
        let mut mk: Vec<String> = vec!["mksquashfs".into(), s(&reg)];
        for p in std::fs::read_to_string(closure.join("store-paths"))?.lines() {
            mk.push(s(&closure.join("store").join(p.trim_start_matches('/'))));
        }
        mk.extend([
            s(&sqfs),
            "-no-hardlinks".into(),
            "-keep-as-directory".into(),
            "-all-root".into(),
            "-b".into(),
            "1048576".into(),
            "-comp".into(),
            "zstd".into(),
            "-Xcompression-level".into(),
            level.clone(),
            "-processors".into(),
            std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .to_string(),
            "-no-progress".into(),
            "-quiet".into(),
        ]);
        let squash = timed(&mk, timeout_s)?;
        let mut pathlist = String::new();
        let mut top: Vec<_> = std::fs::read_dir(&tree)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        top.sort();
        for name in top {
            let name = name.to_string_lossy().into_owned();
            writeln!(pathlist, "{name}={}", s(&tree.join(&name)))?;
        }
        writeln!(pathlist, "nix-store.squashfs={}", s(&sqfs))?;
        std::fs::write(work.join("pathlist"), pathlist)?;
        let theirs = work.join("xorriso.iso");
        let xorriso_args: Vec<String> = [
            "xorriso",
            "-boot_image",
            "any",
            "gpt_disk_guid=daed2280b91e42c0aed682c825ca41f3",
            "-volume_date",
            "all_file_dates",
            &format!("={epoch}"),
            "-as",
            "mkisofs",
            "-iso-level",
            "3",
            "-volid",
            volid,
            "-appid",
            "nixos",
            "-publisher",
            "nixos",
            "-graft-points",
            "-full-iso9660-filenames",
            "-joliet",
            "-eltorito-boot",
            "isolinux/isolinux.bin",
            "-eltorito-catalog",
            ".boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "--sort-weight",
            "1",
            "/isolinux",
            "-isohybrid-mbr",
            &s(&isohdpfx),
            "-eltorito-alt-boot",
            "-e",
            "boot/efi.img",
            "-no-emul-boot",
            "-isohybrid-gpt-basdat",
            "-r",
            "-path-list",
            &s(&work.join("pathlist")),
            "--sort-weight",
            "0",
            "/",
            "-output",
            &s(&theirs),
        ]
        .iter()
        .map(|x| (*x).to_string())
        .collect();
        let xo = timed(&xorriso_args, timeout_s)?;

        let size = |p: &Path| std::fs::metadata(p).map(|m| m.size()).unwrap_or(0);
        let conv_wall = squash.wall + xo.wall;
        let conv_cpu = squash.cpu + xo.cpu;
        println!(
            "\n## ISO of the fixture closure + the benchmark closure ({} MiB, {} files), \
             zstd level {level}, 1 MiB blocks (load average after: {})\n",
            bench.size_mib,
            bench.files,
            crate::measure::loadavg()
        );
        println!("| pipeline | wall s | CPU s | peak RSS MiB | ISO bytes |");
        println!("|---|---|---|---|---|");
        println!(
            "| mksquashfs | {:.1} | {:.1} | {} | |",
            squash.wall.as_secs_f64(),
            squash.cpu,
            squash.rss_kib / 1024
        );
        println!(
            "| xorriso | {:.1} | {:.1} | {} | |",
            xo.wall.as_secs_f64(),
            xo.cpu,
            xo.rss_kib / 1024
        );
        println!(
            "| mksquashfs + xorriso | {:.1} | {:.1} | {} | {} |",
            conv_wall.as_secs_f64(),
            conv_cpu,
            squash.rss_kib.max(xo.rss_kib) / 1024,
            size(&theirs)
        );
        println!(
            "| imagetool build --format iso | {:.1} | {:.1} | {} | {} |",
            mine.wall.as_secs_f64(),
            mine.cpu,
            mine.rss_kib / 1024,
            size(&ours)
        );
        println!(
            "\nimagetool is {:.2}x faster (wall), {:.2}x less CPU; ISO size ratio {:.4}",
            conv_wall.as_secs_f64() / mine.wall.as_secs_f64(),
            conv_cpu / mine.cpu.max(0.001),
            size(&ours) as f64 / size(&theirs).max(1) as f64
        );
        Ok(())
    })();
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&work)
        .status();
    let _ = std::fs::remove_dir_all(&work);
    result
}
