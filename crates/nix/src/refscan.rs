//! Reference scanning: which candidate store paths does a byte stream mention?
//!
//! Nix decides a path's references by searching its NAR serialisation (file contents, symlink
//! targets and names) for the 32-character hash parts of the candidate paths
//! (`RefScanSink` in `src/libstore/references.cc`). [`RefScanner`] does the same as an
//! `io::Write` sink: it tracks the current run of nix32 characters and, whenever the run is at
//! least 32 long, looks its last 32 characters up in a hash set. That is linear in the input
//! and needs no buffering beyond 31 bytes across writes.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};

use crate::base32::is_nix32_char;
use crate::store_path::{HASH_PART_LEN, StorePath};

/// A sink that records which of its candidates' hash parts occur in what is written.
#[derive(Debug, Clone)]
pub struct RefScanner {
    candidates: HashMap<[u8; HASH_PART_LEN], usize>,
    paths: Vec<StorePath>,
    found: Vec<bool>,
    /// The last (up to 32) bytes of the current run of nix32 characters.
    window: [u8; HASH_PART_LEN],
    run: usize,
}

impl RefScanner {
    /// A scanner looking for the hash parts of `candidates`.
    #[must_use]
    pub fn new<'a>(candidates: impl IntoIterator<Item = &'a StorePath>) -> Self {
        let mut map = HashMap::new();
        let mut paths = Vec::new();
        for p in candidates {
            let mut key = [0u8; HASH_PART_LEN];
            key.copy_from_slice(p.hash_part().as_bytes());
            if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(key) {
                slot.insert(paths.len());
                paths.push(p.clone());
            }
        }
        let found = vec![false; paths.len()];
        Self {
            candidates: map,
            paths,
            found,
            window: [0; HASH_PART_LEN],
            run: 0,
        }
    }

    /// The candidates seen so far, sorted.
    #[must_use]
    pub fn found(&self) -> BTreeSet<StorePath> {
        self.paths
            .iter()
            .zip(&self.found)
            .filter(|(_, f)| **f)
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn scan(&mut self, data: &[u8]) {
        if self.candidates.is_empty() {
            return;
        }
        for &c in data {
            if !is_nix32_char(c) {
                self.run = 0;
                continue;
            }
            self.window.copy_within(1.., 0);
            self.window[HASH_PART_LEN - 1] = c;
            self.run += 1;
            if self.run >= HASH_PART_LEN
                && let Some(&i) = self.candidates.get(&self.window)
            {
                self.found[i] = true;
            }
        }
    }
}

impl Write for RefScanner {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.scan(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> StorePath {
        StorePath::parse(s).unwrap()
    }

    #[test]
    fn test_scan_finds_hash_parts_across_writes() {
        let a = sp("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-a");
        let b = sp("/nix/store/zyxwvsrqpnmlkjihgfdcba9876543210-b");
        let c = sp("/nix/store/00000000000000000000000000000000-c");
        let mut s = RefScanner::new([&a, &b, &c]);
        let text = format!("#!{}/bin/sh\nexec {}x", a.as_str(), b.hash_part());
        for chunk in text.as_bytes().chunks(5) {
            s.write_all(chunk).unwrap();
        }
        let found: Vec<StorePath> = s.found().into_iter().collect();
        assert_eq!(found, vec![a, b]);
    }

    #[test]
    fn test_scan_inside_longer_run() {
        let a = sp("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-a");
        let mut s = RefScanner::new([&a]);
        s.write_all(format!("zz{}zz", a.hash_part()).as_bytes())
            .unwrap();
        assert_eq!(s.found().len(), 1);
        let mut s = RefScanner::new([&a]);
        s.write_all(&a.hash_part().as_bytes()[..31]).unwrap();
        s.write_all(b"-").unwrap();
        assert!(s.found().is_empty());
    }
}
