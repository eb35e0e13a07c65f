//! Running a tool and keeping everything it said.

use std::fmt;
use std::process::{Command, ExitStatus};

use crate::{Error, ErrorKind, Result, Tool};

/// What a tool printed and how it exited.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// The exit code (`None` when killed by a signal).
    #[must_use]
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// A `Finding` error carrying the command and its whole output.
    #[must_use]
    pub fn finding(&self, why: &str) -> Error {
        Error::new(ErrorKind::Finding, &self.command, format!("{why}\n{self}"))
    }

    /// A `ToolFailed` error carrying the command and its whole output.
    #[must_use]
    pub fn failed(&self, why: &str) -> Error {
        Error::new(
            ErrorKind::ToolFailed,
            &self.command,
            format!("{why}\n{self}"),
        )
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {} → {}", self.command, self.status)?;
        if !self.stdout.is_empty() {
            writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        }
        if !self.stderr.is_empty() {
            writeln!(f, "--- stderr ---\n{}", self.stderr.trim_end())?;
        }
        Ok(())
    }
}

/// Runs `tool` with `args` (plus `env` settings), capturing its output. Any exit status is
/// returned: judging it is the caller's job.
///
/// # Errors
/// `ToolMissing` when the tool is not installed, `ToolFailed` when it cannot be started.
pub fn run<S: AsRef<std::ffi::OsStr>>(
    tool: Tool,
    args: &[S],
    env: &[(&str, &str)],
) -> Result<Output> {
    let path = tool.path()?;
    let mut cmd = Command::new(&path);
    cmd.args(args).env("LC_ALL", "C").env("TZ", "UTC");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let command = std::iter::once(tool.name.to_string())
        .chain(
            args.iter()
                .map(|a| shell_word(&a.as_ref().to_string_lossy())),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .output()
        .map_err(|e| Error::new(ErrorKind::ToolFailed, &command, e.to_string()))?;
    Ok(Output {
        command,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%?".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `tool` and returns whether it exited 0 and its stdout followed by its stderr, for tests
/// that judge the output themselves. The locale is `C.UTF-8`, so tools print non-ASCII file
/// names as UTF-8; mtools' drive-geometry check is off (`MTOOLS_SKIP_CHECK`), since images are
/// not floppies.
///
/// # Panics
/// When the tool is missing or cannot be started (check it with [`require_tools!`] first).
///
/// [`require_tools!`]: crate::require_tools
pub fn run_text<S: AsRef<std::ffi::OsStr>>(tool: Tool, args: &[S]) -> (bool, String) {
    let env = [("LC_ALL", "C.UTF-8"), ("MTOOLS_SKIP_CHECK", "1")];
    let out = run(tool, args, &env).unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.success(),
        format!("{}{}", out.stdout, out.stderr),
    )
}

/// Runs `tool` and panics with its whole output unless it exits 0.
///
/// # Panics
/// When the tool is missing, cannot be started, or fails.
pub fn run_ok<S: AsRef<std::ffi::OsStr>>(tool: Tool, args: &[S]) -> Output {
    let out = run(tool, args, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out}");
    out
}

/// Runs a prepared command (one that is not a single [`Tool`] call: `cp -a`, a shell pipeline,
/// a command with its own environment) and panics with its output unless it exits 0.
///
/// # Panics
/// When the command cannot be started or fails.
pub fn command_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let sh = Tool::new("sh", "dash");
        let out = run(sh, &["-c", "echo out; echo err >&2; exit 3"], &[]).unwrap();
        assert_eq!(out.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let shown = out.finding("bad").to_string();
        assert!(
            shown.contains("sh -c 'echo out; echo err >&2; exit 3'"),
            "{shown}"
        );
        assert!(shown.contains("--- stderr ---\nerr"), "{shown}");
    }
}
