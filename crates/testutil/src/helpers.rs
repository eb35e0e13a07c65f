//! Small helpers every test suite needs, in one place: deterministic test data, comparing two
//! large files, whether the tests run as root, and the one runner of the `imagetool` CLI.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

/// `len` incompressible bytes from a xorshift32 stream seeded with `seed` (0 acts as 1).
#[must_use]
pub fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A xorshift64 generator for test data (names, sizes, contents): the same sequence for the
/// same seed on every machine.
#[derive(Debug, Clone)]
pub struct Xorshift64(u64);

impl Xorshift64 {
    /// A generator from `seed` (0 acts as 1: xorshift has no zero state).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Where two files first differ: `Ok(())` when their bytes are the same, else a message with
/// the offset (or the two sizes). Reads both in 1 MiB blocks, so disk images need not fit in
/// memory twice.
///
/// # Errors
/// The message above, or the I/O error naming the file.
pub fn same_bytes(a: &Path, b: &Path) -> Result<(), String> {
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let len = |f: &std::fs::File, p: &Path| {
        f.metadata()
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let (la, lb) = (len(&fa, a)?, len(&fb, b)?);
    if la != lb {
        return Err(format!(
            "{} has {la} bytes, {} has {lb} bytes",
            a.display(),
            b.display()
        ));
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0u64;
    while off < la {
        let n = (la - off).min(1 << 20) as usize;
        fa.read_exact(&mut x[..n])
            .map_err(|e| format!("{}: {e}", a.display()))?;
        fb.read_exact(&mut y[..n])
            .map_err(|e| format!("{}: {e}", b.display()))?;
        if let Some(i) = x[..n].iter().zip(&y[..n]).position(|(p, q)| p != q) {
            return Err(format!(
                "{} and {} differ at byte {}",
                a.display(),
                b.display(),
                off + i as u64
            ));
        }
        off += n as u64;
    }
    Ok(())
}

/// True when the tests run as root (they can chown, mknod and read any file).
#[must_use]
pub fn is_root() -> bool {
    // The effective UID: the second number of /proc/self/status' `Uid:` line.
    std::fs::read_to_string("/proc/self/status").is_ok_and(|st| {
        st.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

/// The one runner of the `imagetool` binary in the CLI's tests: `bin` is
/// `env!("CARGO_BIN_EXE_imagetool")`. The environment the CLI reads is cleared first
/// (`SOURCE_DATE_EPOCH`, `NIX_ATTRS_JSON_FILE`, `NIX_BUILD_TOP`), so a test sees only what it
/// sets.
#[derive(Debug)]
pub struct Imagetool {
    cmd: Command,
}

impl Imagetool {
    /// A run of `bin` with a cleared environment.
    #[must_use]
    pub fn new(bin: impl AsRef<OsStr>) -> Self {
        let mut cmd = Command::new(bin);
        cmd.env_remove("SOURCE_DATE_EPOCH")
            .env_remove("NIX_ATTRS_JSON_FILE")
            .env_remove("NIX_BUILD_TOP");
        Self { cmd }
    }

    /// Sets `SOURCE_DATE_EPOCH`.
    #[must_use]
    pub fn epoch(self, secs: i64) -> Self {
        self.env("SOURCE_DATE_EPOCH", secs.to_string())
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Runs with `args` and returns its output, whatever its status.
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn run<S: AsRef<OsStr>>(mut self, args: &[S]) -> Output {
        self.cmd.args(args);
        self.cmd
            .output()
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_same_bytes_names_the_first_difference() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        let data = noise(7, 3 << 20);
        std::fs::write(&a, &data).unwrap();
        std::fs::write(&b, &data).unwrap();
        let mut other = data.clone();
        other[(2 << 20) + 5] ^= 1;
        std::fs::write(&c, &other).unwrap();
        assert_eq!(same_bytes(&a, &b), Ok(()));
        let e = same_bytes(&a, &c).unwrap_err();
        assert!(
            e.ends_with(&format!("differ at byte {}", (2 << 20) + 5)),
            "{e}"
        );
        std::fs::write(&c, &data[..10]).unwrap();
        assert!(same_bytes(&a, &c).unwrap_err().contains("has 10 bytes"));
    }

    #[test]
    fn test_noise_is_seeded() {
        assert_eq!(noise(3, 64), noise(3, 64));
        assert_ne!(noise(3, 64), noise(4, 64));
        let mut r = Xorshift64::new(9);
        let first = r.next_u64();
        assert_ne!(first, r.next_u64());
        assert_eq!(Xorshift64::new(9).next_u64(), first);
    }
}
