//! `cargo xtask dist-assets --out DIR`: the shell completions and man pages, generated from the
//! CLI's clap definition by the CLI itself (`imagetool completions SHELL`, `imagetool man`), so
//! they always match the binary. The Nix package runs the same two commands at install time.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The shells `imagetool completions` knows, with the file name each one's loader looks for.
const SHELLS: &[(&str, &str)] = &[
    ("bash", "imagetool.bash"),
    ("zsh", "_imagetool"),
    ("fish", "imagetool.fish"),
    ("elvish", "imagetool.elv"),
    ("powershell", "_imagetool.ps1"),
];

/// Builds the CLI and writes `DIR/completions/*` and `DIR/man1/*.1`.
///
/// # Errors
/// A bad argument, a failed build, or a failed write.
pub fn run(args: &[String]) -> Result<()> {
    let out = match args {
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask dist-assets --out DIR"),
    };
    let status = Command::new("cargo")
        .args(["build", "-q", "-p", "imagetool-cli"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p imagetool-cli failed");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("debug/imagetool");
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for (shell, file) in SHELLS {
        let o = Command::new(&bin)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !o.status.success() || o.stdout.is_empty() {
            bail!(
                "imagetool completions {shell}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let path = completions.join(file);
        std::fs::write(&path, &o.stdout).with_context(|| format!("writing {}", path.display()))?;
    }
    let man = out.join("man1");
    let status = Command::new(&bin)
        .arg("man")
        .arg("--out")
        .arg(&man)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    if !status.success() {
        bail!("imagetool man --out {} failed", man.display());
    }
    let pages = std::fs::read_dir(&man)?.count();
    eprintln!(
        "wrote {} completion scripts to {} and {pages} man pages to {}",
        SHELLS.len(),
        completions.display(),
        man.display()
    );
    Ok(())
}
