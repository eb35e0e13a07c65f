//! One module per subcommand; each adds one variant here and one arm in [`run`].

mod assets;
mod build;
mod build_plan;
mod build_progress;
mod convert;
mod disk;
mod inspect;
mod iso;
mod layout_args;
mod mkfs;
mod mkfs_ext4;
mod mkfs_squashfs;
mod progress;
mod table;
mod variants;

use anyhow::Result;
use clap::Subcommand;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a NixOS disk image from a system closure (make-disk-image without a VM).
    Build(Box<build::Args>),
    /// Make a filesystem image (ext4, FAT, squashfs).
    Mkfs(mkfs::Args),
    /// Show an image's partition table and the filesystems in it.
    Inspect(inspect::Args),
    /// Assemble a partitioned raw disk from a root filesystem image and ESP contents.
    Disk(disk::Args),
    /// Convert a raw disk image to a container format (qcow2, vdi, vhd, vhdx, vmdk).
    Convert(convert::Args),
    /// List the image variants (nixpkgs' system.build.images) and what each produces.
    Variants(variants::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(assets::CompletionsArgs),
    /// Write the man pages (imagetool.1 and one per subcommand) into a directory.
    #[command(hide = true)]
    Man(assets::ManArgs),
}

/// Runs a parsed subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Build(a) => build::run(*a),
        Command::Convert(args) => convert::run(&args),
        Command::Mkfs(a) => mkfs::run(a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Disk(a) => disk::run(a),
        Command::Variants(a) => variants::run(&a),
        Command::Completions(a) => assets::completions(&a),
        Command::Man(a) => assets::man(&a),
    }
}

/// How much the CLI prints besides errors (`-q`, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: no progress.
    Quiet,
    /// The default.
    Normal,
    /// `-v`: every cause of an error on its own line; plain progress lines on a terminal too.
    Verbose,
}

static VERBOSITY: std::sync::OnceLock<Verbosity> = std::sync::OnceLock::new();

/// Sets the verbosity (once, from the global flags).
pub fn set_verbosity(v: Verbosity) {
    let _ = VERBOSITY.set(v);
}

/// The verbosity the global flags asked for.
pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or(Verbosity::Normal)
}

/// A mistake in the command line that the library never sees (a flag's value, a missing
/// flag, flags that do not go together): exit status 2, as clap's own usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A [`Usage`] error from a format string: `return Err(usage!("--flag {v}: why"))`.
macro_rules! usage {
    ($($t:tt)*) => {
        anyhow::Error::new($crate::cmd::Usage(format!($($t)*)))
    };
}
pub(crate) use usage;

/// The exit status of a failed command, decided here and nowhere else: 2 for a [`Usage`]
/// error, else the status of the first imagetool error kind in the chain
/// ([`imagetool::ErrorKind::exit_code`]), else 1. (Interruption, 130, is decided by the
/// cancel flag before this is asked.)
pub fn exit_status(err: &anyhow::Error) -> u8 {
    if err.chain().any(|c| c.is::<Usage>()) {
        return 2;
    }
    let kind = err.chain().find_map(imagetool::ErrorKind::of);
    kind.map_or(1, imagetool::ErrorKind::exit_code)
}

/// The error as one line, "what failed: why", each cause once: a cause whose text an outer
/// message already carries (an I/O error a layer quoted, a path named twice) is left out.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let t = cause.to_string();
        let t = t.trim();
        if t.is_empty() || parts.iter().any(|p| p.contains(t)) {
            continue;
        }
        if let Some(last) = parts.last_mut() {
            // The outer message repeated as this one's prefix ("x: y" after "x"): keep the
            // longer.
            if t.starts_with(last.as_str()) {
                *last = t.to_string();
                continue;
            }
            // This one starting with what the outer one ends with ("reading the tree DIR",
            // then "DIR: stat: …"): say DIR once.
            if let Some(rest) = overlap(last, t) {
                last.push_str(rest);
                continue;
            }
        }
        parts.push(t.to_string());
    }
    parts.join(": ").replace('\n', " ")
}

/// When `inner` starts with a word or path that `outer` ends with, followed by `": "`, the
/// rest of `inner` after that word (from the `": "` on).
fn overlap<'a>(outer: &str, inner: &'a str) -> Option<&'a str> {
    let (head, _) = inner.split_once(": ")?;
    (outer.ends_with(head)
        && (outer.len() == head.len() || outer[..outer.len() - head.len()].ends_with(' ')))
    .then(|| &inner[head.len()..])
}

/// Writes a `--json` document (pretty, one trailing newline) to stdout: an object with
/// `"schemaVersion": 1` and `"command"` first, then `fields` (camelCase keys; the schema is
/// docs/imagetool-output.schema.json).
///
/// # Errors
/// As [`out`].
pub fn json_out(command: &str, mut fields: serde_json::Value) -> Result<()> {
    let mut doc = serde_json::Map::new();
    doc.insert("schemaVersion".into(), JSON_SCHEMA_VERSION.into());
    doc.insert("command".into(), command.into());
    if let Some(m) = fields.as_object_mut() {
        doc.append(m);
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(doc))?;
    out(format_args!("{text}"))
}

/// The version of the `--json` output schema.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Writes one line of a command's report to stdout. A closed pipe (`imagetool … | head`) is
/// not an error worth a message; any other failure (stdout on a full device) is reported, never
/// a panic. The output is already in place when this runs.
///
/// # Errors
/// The write error, naming stdout.
pub fn out(line: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing the report to stdout"))
        }
        _ => Ok(()),
    }
}

/// The cancel handle of this process: raised by SIGINT or SIGTERM once
/// [`cancel_on_signals`] has run.
pub fn cancel() -> &'static imagetool::blockio::Cancel {
    static CANCEL: std::sync::OnceLock<imagetool::blockio::Cancel> = std::sync::OnceLock::new();
    CANCEL.get_or_init(imagetool::blockio::Cancel::new)
}

/// Makes SIGINT and SIGTERM cancel the work cleanly (every reader and writer stops, nothing
/// is committed, exit status 130); a second signal exits at once (status 130), which still
/// leaves nothing where the output is an unnamed file.
///
/// # Errors
/// When a handler cannot be installed.
/// Idempotent: `main` installs the handlers before anything else, so a signal at any point
/// of any subcommand ends in status 130; later calls do nothing.
pub fn cancel_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let r = INSTALLED.get_or_init(|| {
        let flag = cancel().flag();
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it runs when the flag is already raised: the second signal.
            signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
                .map_err(|e| e.to_string())?;
            signal_hook::flag::register(sig, flag.clone()).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    r.clone()
        .map_err(|e| anyhow::anyhow!("installing the SIGINT/SIGTERM handlers: {e}"))
}

/// `SOURCE_DATE_EPOCH` when set (and valid), else the FAT epoch 1980-01-01.
pub fn source_date_epoch() -> Result<imagetool::Timestamp> {
    Ok(imagetool::mkfs::source_date_epoch()
        .map_err(anyhow::Error::msg)?
        .unwrap_or(imagetool::mkfs::DEFAULT_EPOCH))
}

/// Checks, before any work, that the directory `output` goes into exists (a missing or
/// non-directory parent is an I/O failure, exit status 1, as it would be at the end).
///
/// # Errors
/// The I/O error, naming the flag and the directory.
pub fn check_output_dir(flag: &str, output: &std::path::Path) -> Result<()> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(anyhow::Error::new(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ))
        .context(format!("{flag} {}: {}", output.display(), dir.display()))),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "{flag} {}: directory {}",
            output.display(),
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer error that quotes its cause in its message and also returns it as `source()`.
    #[derive(Debug)]
    struct Quoting(std::io::Error);

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading /x/y: {}", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn test_one_line_says_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let why = io.to_string();
        let e = anyhow::Error::new(Quoting(io)).context("building out.img");
        assert_eq!(
            one_line(&e),
            format!("building out.img: reading /x/y: {why}")
        );
        // "… DIR" then "DIR: …": DIR once.
        let e = anyhow::Error::new(std::io::Error::other("src: stat: gone"))
            .context("reading the source tree src");
        assert_eq!(one_line(&e), "reading the source tree src: stat: gone");
    }

    #[test]
    fn test_exit_statuses_come_from_the_kinds() {
        assert_eq!(exit_status(&usage!("--x: bad")), 2);
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            .context("writing");
        assert_eq!(exit_status(&e), 1);
        let e = anyhow::Error::new(imagetool::build::BuildError::InvalidInput("x".into()))
            .context("building");
        assert_eq!(exit_status(&e), 2);
        let e = anyhow::Error::new(imagetool::mkfs::MkfsError::Cancelled);
        assert_eq!(exit_status(&e), 130);
        assert_eq!(exit_status(&anyhow::anyhow!("no kind")), 1);
    }
}
