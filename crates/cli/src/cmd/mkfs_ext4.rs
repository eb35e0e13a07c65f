//! `imagetool mkfs ext4`: a drop-in for `mkfs.ext4 -d DIR`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use imagetool::blockio::{AtomicFile, SparseFile, Window};
use imagetool::ext4::{self, Options, Size};
use imagetool::fstree::{HostOptions, Overrides, Tree};

/// `imagetool mkfs ext4` arguments.
#[derive(Debug, Args)]
pub struct Ext4Args {
    /// The directory whose contents become the filesystem root.
    #[arg(long, short = 'd')]
    source: PathBuf,
    /// The image file to write (created atomically, or written into with --offset).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// `auto` (smallest that fits plus --reserve), or a size in bytes, or with a K/M/G/T suffix.
    #[arg(long, default_value = "auto")]
    size: String,
    /// Volume label (at most 16 bytes).
    #[arg(long, short = 'L', default_value = "")]
    label: String,
    /// Filesystem UUID (default: derived from the label and tree).
    #[arg(long, short = 'U')]
    uuid: Option<String>,
    /// Directory hash seed UUID (default: derived from the filesystem UUID).
    #[arg(long)]
    hash_seed: Option<String>,
    /// Free space to leave with --size auto (bytes, or K/M/G suffix).
    #[arg(long, default_value = "0")]
    reserve: String,
    /// Percentage of blocks reserved for root.
    #[arg(long, short = 'm', default_value_t = 5)]
    reserved_percent: u8,
    /// Data-copy threads (0: one per core). The output does not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Write into an existing image at this byte offset instead of creating --output.
    #[arg(long)]
    offset: Option<String>,
    /// Force every file's owner to root:root.
    #[arg(long)]
    root_owner: bool,
}

/// Parses `123`, `4K`, `16M`, `2G`, `1T` (binary units).
pub fn parse_bytes(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => bail!("{s:?}: unknown size suffix"),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("{s:?}: not a size"))?;
    n.checked_mul(mul)
        .with_context(|| format!("{s:?}: too large"))
}

/// Parses a UUID in the usual 8-4-4-4-12 hex form.
pub fn parse_uuid(s: &str) -> Result<[u8; 16]> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 {
        bail!("{s:?}: not a UUID");
    }
    let mut out = [0u8; 16];
    for (k, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * k..2 * k + 2], 16)
            .with_context(|| format!("{s:?}: not a UUID"))?;
    }
    Ok(out)
}

/// Runs `mkfs ext4`.
pub fn run(a: Ext4Args) -> Result<()> {
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => Some(
            v.trim()
                .parse::<i64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?}: not a number"))?,
        ),
        Err(_) => None,
    };
    let overrides = Overrides {
        owner: a.root_owner.then_some((0, 0)),
        clamp_time: epoch,
        ..Overrides::default()
    };
    let tree = Tree::from_host_dir(
        &a.source,
        &HostOptions {
            overrides,
            ..HostOptions::default()
        },
    )
    .with_context(|| "reading the source tree")?;
    let size = if a.size == "auto" {
        Size::Auto {
            reserve: parse_bytes(&a.reserve)?,
        }
    } else {
        Size::Fixed(parse_bytes(&a.size).context("--size")?)
    };
    let opts = Options {
        size,
        label: a.label.into_bytes(),
        uuid: a.uuid.as_deref().map(parse_uuid).transpose()?,
        hash_seed: a.hash_seed.as_deref().map(parse_uuid).transpose()?,
        timestamp: epoch.unwrap_or(0),
        reserved_percent: a.reserved_percent,
        threads: a.threads,
        target_zeroed: a.offset.is_none(),
        ..Options::default()
    };
    let plan = ext4::plan(&tree, &opts).context("planning the filesystem")?;
    match a.offset {
        Some(off) => {
            let off = parse_bytes(&off).context("--offset")?;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&a.output)
                .with_context(|| format!("{}", a.output.display()))?;
            let len = file
                .metadata()
                .with_context(|| format!("{}", a.output.display()))?
                .len();
            // Keeps the image's length: a window never grows the disk.
            let img = SparseFile::from_file(file, len)?;
            let win = Window::new(&img, off, plan.size_bytes()).with_context(|| {
                format!(
                    "{}: the image has no room for {} bytes at offset {off}",
                    a.output.display(),
                    plan.size_bytes()
                )
            })?;
            plan.write(&tree, &win).context("writing the filesystem")?;
        }
        None => {
            let out = AtomicFile::create(&a.output)?;
            let img = SparseFile::from_file(out.try_clone_file()?, plan.size_bytes())?;
            plan.write(&tree, &img).context("writing the filesystem")?;
            img.file()
                .sync_all()
                .with_context(|| format!("{}", a.output.display()))?;
            drop(img);
            out.commit()?;
        }
    }
    println!(
        "{}: ext4, {} MiB, {} inodes",
        a.output.display(),
        plan.size_bytes() >> 20,
        plan.inode_count()
    );
    Ok(())
}
