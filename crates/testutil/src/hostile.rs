//! A harness for hostile-input cases: run the `imagetool` binary on one bad input under a memory
//! limit (`ulimit -v`) and a timeout, with a private `$TMPDIR`, an output directory seeded with
//! symlinks planted on the names an attacker would guess, and a victim file they point to; then
//! check that the run ended as expected (exit status, a message naming the culprit, no panic)
//! and left nothing behind (output directory and `$TMPDIR` as before, victim unchanged).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The memory limit of every run: 1 GiB of address space.
pub const MEMORY_LIMIT_KIB: u64 = 1 << 20;
/// The time limit of every run.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// What the victim file holds; it must still hold it after every case.
pub const VICTIM_BYTES: &[u8] = b"root-owned secret: must never be overwritten\n";

/// A scratch world for one case.
#[derive(Debug)]
pub struct Sandbox {
    tmp: tempfile::TempDir,
    /// The output directory (the case's output goes here).
    pub out_dir: PathBuf,
    /// The `$TMPDIR` of the run (empty, and must stay empty).
    pub tmpdir: PathBuf,
    /// The file the planted symlinks point to.
    pub victim: PathBuf,
    planted: BTreeSet<OsString>,
}

impl Sandbox {
    /// A fresh sandbox whose output directory holds symlinks to the victim under the
    /// temporary names older imagetool used for `output_name` (`.<name>.imagetool-<pid>.tmp`
    /// for the next few hundred pids).
    ///
    /// # Panics
    /// When the scratch directories cannot be made (a test set-up failure).
    #[must_use]
    pub fn new(output_name: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out_dir = tmp.path().join("out");
        let tmpdir = tmp.path().join("tmp");
        std::fs::create_dir(&out_dir).expect("out dir");
        std::fs::create_dir(&tmpdir).expect("tmp dir");
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, VICTIM_BYTES).expect("victim");
        let last = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(1000);
        let mut planted = BTreeSet::new();
        for pid in last..last + 300 {
            let name = format!(".{output_name}.imagetool-{pid}.tmp");
            std::os::unix::fs::symlink(&victim, out_dir.join(&name)).expect("plant");
            planted.insert(OsString::from(name));
        }
        Self {
            tmp,
            out_dir,
            tmpdir,
            victim,
            planted,
        }
    }

    /// The scratch directory (for the case's own inputs).
    #[must_use]
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Runs `bin args` with `env`, under [`MEMORY_LIMIT_KIB`] and [`TIMEOUT`] (`timeout`
    /// exits 124 when it fires), `$TMPDIR` set to [`Sandbox::tmpdir`], stdin from
    /// `/dev/null`.
    ///
    /// # Panics
    /// When `sh` cannot be run.
    #[must_use]
    pub fn run(&self, bin: &Path, args: &[OsString], env: &[(&str, OsString)]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg("-k")
            .arg("5")
            .arg(TIMEOUT.as_secs().to_string())
            .arg("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" \"$@\""
            ))
            .arg(bin)
            .args(args)
            .env("TMPDIR", &self.tmpdir)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run sh")
    }

    /// What is left behind: entries of the output directory other than the planted ones and
    /// `allowed`, every entry of `$TMPDIR`, and whether the victim changed.
    ///
    /// # Panics
    /// When the directories cannot be listed.
    #[must_use]
    pub fn leftovers(&self, allowed: &[&str]) -> Vec<String> {
        let mut left = Vec::new();
        for e in std::fs::read_dir(&self.out_dir).expect("list out") {
            let name = e.expect("entry").file_name();
            if !self.planted.contains(&name) && !allowed.iter().any(|a| name == **a) {
                left.push(format!("out/{}", name.to_string_lossy()));
            }
        }
        for e in std::fs::read_dir(&self.tmpdir).expect("list tmp") {
            left.push(format!(
                "$TMPDIR/{}",
                e.expect("entry").file_name().to_string_lossy()
            ));
        }
        for name in &self.planted {
            let p = self.out_dir.join(name);
            if std::fs::read_link(&p).ok().as_deref() != Some(self.victim.as_path()) {
                left.push(format!(
                    "planted link {} was changed",
                    name.to_string_lossy()
                ));
            }
        }
        if std::fs::read(&self.victim).ok().as_deref() != Some(VICTIM_BYTES) {
            left.push("the victim file was changed".into());
        }
        left
    }
}

/// Checks a finished run: the exit status is `code`, stderr has every string of `needles`
/// and no panic; returns stderr.
///
/// # Errors
/// A description of what is wrong, with the run's stderr.
pub fn check_run(out: &Output, code: i32, needles: &[&str]) -> Result<String, String> {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut why = Vec::new();
    match out.status.code() {
        Some(124 | 137) => why.push("timed out".to_string()),
        c if c != Some(code) => why.push(format!("exit {c:?}, expected {code}")),
        _ => {}
    }
    if err.contains("panicked") {
        why.push("panicked".into());
    }
    for n in needles {
        if !err.contains(n) {
            why.push(format!("stderr lacks {n:?}"));
        }
    }
    if why.is_empty() {
        Ok(err)
    } else {
        Err(format!("{}\n--- stderr:\n{err}", why.join("; ")))
    }
}
