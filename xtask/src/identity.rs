//! `cargo xtask identity --record FILE | --check FILE [--out DIR]`: proof that a refactor changed
//! no output byte. Builds a fixed set of outputs from the fixture closure with a fixed
//! `SOURCE_DATE_EPOCH` (every partition table as raw, qcow2 and vhdx; an ISO; an sd-card image;
//! `mkfs` ext4, vfat and squashfs of a directory; `convert` to the other containers; two
//! variants) with the CLI of the working tree, and records their SHA-256 (`--record`) or
//! compares them with a recording (`--check`, failing on any difference).
//!
//! The recording is not committed: a legitimate change of output changes it. Record before a
//! change that must not move a byte, check after it. The fixture must be the same for both runs
//! (`IMAGETOOL_FIXTURE=DIR` pins it; by default the workspace's `target/fixture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{run, workspace_root};

/// The fixed timestamp of every build.
const EPOCH: &str = "1700000000";

/// Runs the task.
pub fn run_identity(args: &[String]) -> Result<()> {
    let mut mode = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--record" => mode = Some((true, PathBuf::from(value()?))),
            "--check" => mode = Some((false, PathBuf::from(value()?))),
            "--out" => out = Some(PathBuf::from(value()?)),
            other => bail!("identity: unknown argument {other:?}"),
        }
    }
    let Some((record, file)) = mode else {
        bail!("usage: cargo xtask identity --record FILE | --check FILE [--out DIR]");
    };
    let root = workspace_root();
    let out = out.unwrap_or_else(|| root.join("target/identity"));
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| out.display().to_string())?;
    }
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;

    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--quiet",
        "-p",
        "imagetool-cli",
    ]))?;
    // A copy, so that building something else while the outputs are written changes nothing.
    let exe = root.join("target/identity-imagetool");
    std::fs::copy(root.join("target/debug/imagetool"), &exe).context("target/debug/imagetool")?;
    let fx = imagetool_fixture::ensure().context("the fixture closure")?;
    build_all(&exe, &fx, &out)?;

    let hashes = hash_tree(&out)?;
    // The outputs are large (about 2 GiB); only their hashes are kept.
    std::fs::remove_dir_all(&out).with_context(|| out.display().to_string())?;
    let text: String = hashes
        .iter()
        .map(|(name, h)| format!("{h}  {name}\n"))
        .collect();
    if record {
        std::fs::write(&file, &text).with_context(|| file.display().to_string())?;
        println!(
            "identity: recorded {} outputs in {}",
            hashes.len(),
            file.display()
        );
        return Ok(());
    }
    let before = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
    let before: BTreeMap<String, String> = before
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, n)| (n.to_string(), h.to_string()))
        .collect();
    let mut differ = Vec::new();
    for (name, h) in &hashes {
        match before.get(name) {
            Some(b) if b == h => {}
            Some(_) => differ.push(format!("changed: {name}")),
            None => differ.push(format!("new: {name}")),
        }
    }
    for name in before.keys().filter(|n| !hashes.contains_key(*n)) {
        differ.push(format!("missing: {name}"));
    }
    if differ.is_empty() {
        println!(
            "identity: all {} outputs byte-identical to {}",
            hashes.len(),
            file.display()
        );
        Ok(())
    } else {
        bail!(
            "identity: {} of {} outputs differ from {}:\n{}",
            differ.len(),
            before.len(),
            file.display(),
            differ.join("\n")
        )
    }
}

/// Builds every output under `out`.
fn build_all(exe: &Path, fx: &imagetool_fixture::Fixture, out: &Path) -> Result<()> {
    let it = |args: &[&str]| -> Result<()> {
        run(Command::new(exe).env("SOURCE_DATE_EPOCH", EPOCH).args(args))
    };
    let s = |p: &Path| p.to_str().map(str::to_string).context("non-UTF-8 path");
    let closure = [
        "--toplevel".to_string(),
        fx.toplevel.clone(),
        "--closure-info".to_string(),
        s(&fx.dir)?,
        "--store-root".to_string(),
        s(&fx.store_root)?,
    ];
    let closure: Vec<&str> = closure.iter().map(String::as_str).collect();

    for table in [
        "legacy",
        "legacy+boot",
        "legacy+gpt",
        "efi",
        "efixbootldr",
        "hybrid",
        "none",
    ] {
        let o = s(&out.join(format!("table-{}.img", table.replace('+', "-"))))?;
        let mut a = vec!["build"];
        a.extend(&closure);
        a.extend([
            "--partition",
            table,
            "--format",
            "raw,qcow2,vhdx",
            "--seed",
            "identity",
            "--output",
            &o,
        ]);
        it(&a)?;
    }
    let raw = s(&out.join("table-hybrid.img"))?;
    for fmt in [
        "vdi",
        "vpc",
        "vhd-fixed",
        "vmdk",
        "vmdk-stream",
        "qcow2-compressed",
    ] {
        let o = s(&out.join(format!("convert-{fmt}.out")))?;
        it(&["convert", &raw, "--format", fmt, "--output", &o])?;
    }

    let iso = s(&out.join("nixos.iso"))?;
    let mut a = vec!["build", "--format", "iso"];
    a.extend(&closure);
    a.extend(["--squashfs-comp", "lz4", "--output", &iso]);
    it(&a)?;

    let fw = out.join("firmware-src");
    std::fs::create_dir_all(fw.join("overlays"))?;
    std::fs::write(fw.join("config.txt"), b"arm_64bit=1\n")?;
    std::fs::write(fw.join("overlays/a.dtbo"), [7u8; 3000])?;
    let blob = out.join("blob-src.bin");
    std::fs::write(&blob, (0..5000u32).map(|i| i as u8).collect::<Vec<u8>>())?;
    let sd = s(&out.join("sd.img"))?;
    let fw_s = s(&fw)?;
    let raw_write = format!("{}@8192", s(&blob)?);
    let mut a = vec!["build"];
    a.extend(&closure);
    a.extend([
        "--partition",
        "sd-card",
        "--firmware-dir",
        &fw_s,
        "--raw-write",
        &raw_write,
        "--output",
        &sd,
    ]);
    it(&a)?;

    // mkfs of a directory: the fixture's store (files, symlinks, directories).
    let src = s(&fx.store_root.join("nix/store"))?;
    let ext4 = s(&out.join("mkfs.ext4"))?;
    it(&["mkfs", "ext4", "--source", &src, "--output", &ext4])?;
    let vfat_src = s(&fw)?;
    let vfat = s(&out.join("mkfs.vfat"))?;
    it(&[
        "mkfs", "vfat", "--source", &vfat_src, "--output", &vfat, "--size", "33554432",
    ])?;
    let sq = s(&out.join("mkfs.squashfs"))?;
    it(&["mkfs", "squashfs", "--source", &src, &sq, "--comp", "zstd"])?;

    for variant in ["proxmox", "virtualbox", "amazon"] {
        let dir = s(&out.join(format!("variant-{variant}")))?;
        let mut a = vec!["build", "--variant", variant];
        a.extend(&closure);
        a.extend(["--output", &dir]);
        it(&a)?;
    }
    Ok(())
}

/// Every regular file under `dir` (relative name → SHA-256), in name order.
fn hash_tree(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                files.push(e.path());
            }
        }
    }
    let mut map = BTreeMap::new();
    for f in files {
        let o = Command::new("sha256sum")
            .arg(&f)
            .output()
            .context("sha256sum")?;
        if !o.status.success() {
            bail!("sha256sum {} failed", f.display());
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let h = text.split_whitespace().next().unwrap_or("").to_string();
        let name = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        map.insert(name, h);
    }
    Ok(map)
}
