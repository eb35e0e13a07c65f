//! The files of nixpkgs' `closureInfo` (`pkgs/build-support/closure-info.nix`): `store-paths`
//! (one path per line) and `registration`, the input of `nix-store --load-db`.
//!
//! A `registration` is a sequence of records sorted by path, each the lines
//!
//! ```text
//! <path>
//! sha256:<nix32 NAR hash>
//! <NAR size>
//!                              (the deriver: always empty)
//! <number of references>
//! <reference>...               (sorted; a self-reference included)
//! ```
//! Every line ends in `\n`; `closureInfo` removes the one extra line `jq -r` adds with
//! `head -n -1`, so there is no blank line at the end.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::base32;
use crate::store_path::StorePath;
use crate::{Error, ErrorKind, Result};

/// One valid path of a closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The store path.
    pub path: StorePath,
    /// sha256 of its NAR serialisation.
    pub nar_hash: [u8; 32],
    /// Length of its NAR serialisation.
    pub nar_size: u64,
    /// The deriver (empty in `closureInfo` output).
    pub deriver: Option<StorePath>,
    /// Its references, including itself when it refers to itself.
    pub references: BTreeSet<StorePath>,
}

fn sorted(infos: &[PathInfo]) -> Vec<&PathInfo> {
    let mut v: Vec<&PathInfo> = infos.iter().collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// The `store-paths` file for `infos` (sorted by path).
#[must_use]
pub fn write_store_paths(infos: &[PathInfo]) -> String {
    let mut out = String::new();
    for i in sorted(infos) {
        out.push_str(i.path.as_str());
        out.push('\n');
    }
    out
}

/// The `registration` file for `infos` (sorted by path), byte-identical to `closureInfo`'s.
#[must_use]
pub fn write_registration(infos: &[PathInfo]) -> String {
    let mut out = String::new();
    for i in sorted(infos) {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{}\nsha256:{}\n{}\n{}\n{}\n",
            i.path,
            base32::encode(&i.nar_hash),
            i.nar_size,
            i.deriver.as_ref().map_or("", StorePath::as_str),
            i.references.len()
        );
        for r in &i.references {
            out.push_str(r.as_str());
            out.push('\n');
        }
    }
    out
}

/// Parses a `registration` file (as `nix-store --load-db` reads it).
///
/// # Errors
/// [`ErrorKind::Corrupt`] with the 1-based line number for a malformed record: a bad path,
/// hash, size or count, or a file that ends inside a record.
pub fn parse_registration(text: &str) -> Result<Vec<PathInfo>> {
    let mut lines = text.split('\n').enumerate().peekable();
    let mut infos = Vec::new();
    let corrupt = |line: usize, why: String| {
        Error::new(ErrorKind::Corrupt, format!("registration: {why}")).at_line(line as u64 + 1)
    };
    while let Some((n, path)) = lines.next() {
        if path.is_empty() && lines.peek().is_none() {
            break;
        }
        let path = StorePath::parse(path).map_err(|e| corrupt(n, e.to_string()))?;
        let mut next = |what: &str| {
            lines
                .next()
                .ok_or_else(|| corrupt(n, format!("record of {path} ends before its {what}")))
        };
        let (hn, hash) = next("hash")?;
        let nar_hash = parse_hash(hash).map_err(|e| corrupt(hn, e))?;
        let (sn, size) = next("size")?;
        let nar_size = size
            .parse::<u64>()
            .map_err(|_| corrupt(sn, format!("NAR size {size:?} is not a number")))?;
        let (dn, deriver) = next("deriver")?;
        let deriver = if deriver.is_empty() {
            None
        } else {
            Some(StorePath::parse(deriver).map_err(|e| corrupt(dn, e.to_string()))?)
        };
        let (cn, count) = next("reference count")?;
        let count = count
            .parse::<usize>()
            .map_err(|_| corrupt(cn, format!("reference count {count:?} is not a number")))?;
        let mut references = BTreeSet::new();
        for _ in 0..count {
            let (rn, r) = next("references")?;
            references.insert(StorePath::parse(r).map_err(|e| corrupt(rn, e.to_string()))?);
        }
        infos.push(PathInfo {
            path,
            nar_hash,
            nar_size,
            deriver,
            references,
        });
    }
    Ok(infos)
}

pub(crate) fn parse_hash(s: &str) -> Result<[u8; 32], String> {
    let digits = s
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("hash {s:?} is not sha256:<nix32>"))?;
    let bytes = base32::decode(digits, 32).map_err(|e| format!("hash {s:?}: {e}"))?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> StorePath {
        StorePath::parse(s).unwrap()
    }

    fn sample() -> Vec<PathInfo> {
        let a = sp("/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-top");
        let b = sp("/nix/store/00000000000000000000000000000000-dep");
        vec![
            PathInfo {
                path: a.clone(),
                nar_hash: [1; 32],
                nar_size: 1234,
                deriver: None,
                references: [a.clone(), b.clone()].into_iter().collect(),
            },
            PathInfo {
                path: b,
                nar_hash: [0; 32],
                nar_size: 120,
                deriver: None,
                references: BTreeSet::new(),
            },
        ]
    }

    #[test]
    fn test_registration_golden_bytes() {
        // The nix32 of [1; 32] is what `nix-hash --type sha256 --to-base32 0101…01` prints.
        let text = write_registration(&sample());
        let want = "/nix/store/00000000000000000000000000000000-dep\n\
            sha256:0000000000000000000000000000000000000000000000000000\n120\n\n0\n\
            /nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-top\n\
            sha256:0081040h2081040h2081040h2081040h2081040h2081040h2081\n1234\n\n2\n\
            /nix/store/00000000000000000000000000000000-dep\n\
            /nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-top\n";
        assert_eq!(text, want);
        assert_eq!(
            write_store_paths(&sample()),
            "/nix/store/00000000000000000000000000000000-dep\n\
             /nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-top\n"
        );
    }

    #[test]
    fn test_registration_roundtrip_and_empty() {
        let mut infos = sample();
        infos.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            parse_registration(&write_registration(&infos)).unwrap(),
            infos
        );
        assert!(parse_registration("").unwrap().is_empty());
        assert_eq!(write_registration(&[]), "");
    }

    #[test]
    fn test_registration_truncated_is_corrupt_with_line() {
        let text = write_registration(&sample());
        let cut = &text[..text.len() - 50];
        let err = parse_registration(cut).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        let err = parse_registration(&text.replace("\n120\n", "\nabc\n")).unwrap_err();
        assert_eq!((err.kind(), err.line()), (ErrorKind::Corrupt, Some(3)));
    }
}
