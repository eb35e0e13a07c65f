//! `imagetool completions SHELL` and the hidden `imagetool man --out DIR`: shell completions
//! and man pages generated from the clap definition (`cargo xtask dist-assets` runs both; the
//! Nix package installs them).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

/// Arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory that receives imagetool.1 and imagetool-SUBCOMMAND.1 (created).
    #[arg(long, short = 'o')]
    out: PathBuf,
}

/// Prints the completion script.
pub fn completions(a: &CompletionsArgs) -> Result<()> {
    let mut cmd = crate::command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "imagetool", &mut buf);
    let text = String::from_utf8(buf).context("the completion script is not UTF-8")?;
    super::out(format_args!("{}", text.trim_end()))
}

/// Writes the man pages.
pub fn man(a: &ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let cmd = crate::command();
    clap_mangen::generate_to(cmd, &a.out)
        .with_context(|| format!("writing the man pages into {}", a.out.display()))?;
    Ok(())
}
