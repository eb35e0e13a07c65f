//! Store paths: `/nix/store/<32 nix32 characters>-<name>`, their validation, and how Nix derives
//! the hash part of a content-addressed path (`makeStorePath` in `src/libstore/store-api.cc`).
//!
//! ```text
//! fingerprint = "<type>:sha256:<hex digest>:/nix/store:<name>"
//! hash part   = nix32(compress20(sha256(fingerprint)))
//! type        = "source" [":" ref]... [":self"]    (NAR-hashed with sha256, as addToStore does)
//! ```

use std::fmt;

use crate::base32::{self, is_nix32_char};
use crate::{Error, ErrorKind, Result, hex, sha256};

/// The logical store directory.
pub const STORE_DIR: &str = "/nix/store";

/// Length of the hash part in characters.
pub const HASH_PART_LEN: usize = 32;

/// Longest name Nix accepts.
pub const MAX_NAME_LEN: usize = 211;

/// A valid store path, kept as its full string (`/nix/store/<hash>-<name>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath(String);

impl StorePath {
    /// Parses and validates a full store path.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming what is wrong: not under `/nix/store`, a bad hash part
    /// (length or characters), or a bad name.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::new(ErrorKind::InvalidInput, format!("{s:?}: {why}"));
        let base = s
            .strip_prefix(STORE_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad("not a path directly under /nix/store"))?;
        Self::from_base_name(base).map_err(|e| bad(&e.to_string()))
    }

    /// Builds a store path from its base name `<hash>-<name>`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad hash part or name.
    pub fn from_base_name(base: &str) -> Result<Self> {
        let bytes = base.as_bytes();
        if bytes.len() < HASH_PART_LEN + 2 || bytes[HASH_PART_LEN] != b'-' {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "expected <32 nix32 characters>-<name>",
            ));
        }
        if !bytes[..HASH_PART_LEN].iter().all(|&c| is_nix32_char(c)) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "hash part is not 32 nix32 characters",
            ));
        }
        validate_name(&base[HASH_PART_LEN + 1..])?;
        Ok(Self(format!("{STORE_DIR}/{base}")))
    }

    /// The full path.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<hash>-<name>`.
    #[must_use]
    pub fn base_name(&self) -> &str {
        &self.0[STORE_DIR.len() + 1..]
    }

    /// The 32-character hash part.
    #[must_use]
    pub fn hash_part(&self) -> &str {
        &self.base_name()[..HASH_PART_LEN]
    }

    /// The name after the hash part.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.base_name()[HASH_PART_LEN + 1..]
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a store path name: 1 to 211 characters from `A-Za-z0-9+-._?=`, not starting with `.`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] saying which rule is broken.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: String| Err(Error::new(ErrorKind::InvalidInput, why));
    if name.is_empty() {
        return bad("empty store path name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!(
            "store path name of {} characters, at most {MAX_NAME_LEN} allowed",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return bad(format!("store path name {name:?} starts with a period"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c)))
    {
        return bad(format!("store path name {name:?} contains {c:?}"));
    }
    Ok(())
}

/// Folds a hash to `size` bytes by XOR, as Nix's `compressHash`.
#[must_use]
pub fn compress_hash(hash: &[u8], size: usize) -> Vec<u8> {
    let mut out = vec![0u8; size];
    if size == 0 {
        return out;
    }
    for (i, b) in hash.iter().enumerate() {
        out[i % size] ^= b;
    }
    out
}

/// The store path of an object of type `ty` whose (inner) sha256 is `sha256` and named `name`
/// (Nix's `makeStorePath`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a bad name.
pub fn make_store_path(ty: &str, sha256_digest: &[u8; 32], name: &str) -> Result<StorePath> {
    validate_name(name)?;
    let fingerprint = format!("{ty}:sha256:{}:{STORE_DIR}:{name}", hex(sha256_digest));
    let hash = compress_hash(&sha256(fingerprint.as_bytes()), 20);
    Ok(StorePath(format!(
        "{STORE_DIR}/{}-{name}",
        base32::encode(&hash)
    )))
}

/// The type string of a NAR-hashed (recursive, sha256) source path with references, as
/// `addToStore` builds it: `source`, then `:<path>` for each other reference in sorted order,
/// then `:self` when the path refers to itself.
#[must_use]
pub fn source_type<'a>(
    references: impl IntoIterator<Item = &'a StorePath>,
    self_ref: bool,
) -> String {
    let mut refs: Vec<&StorePath> = references.into_iter().collect();
    refs.sort();
    refs.dedup();
    let mut ty = String::from("source");
    for r in refs {
        ty.push(':');
        ty.push_str(r.as_str());
    }
    if self_ref {
        ty.push_str(":self");
    }
    ty
}

/// The store path `nix-store --add` (or `builtins.path`) gives a tree whose NAR has sha256
/// `nar_sha256`, with the given other references and optional self-reference.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a bad name.
pub fn make_source_path<'a>(
    nar_sha256: &[u8; 32],
    name: &str,
    references: impl IntoIterator<Item = &'a StorePath>,
    self_ref: bool,
) -> Result<StorePath> {
    make_store_path(&source_type(references, self_ref), nar_sha256, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_valid_path_parts() {
        let p =
            StorePath::parse("/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1").unwrap();
        assert_eq!(p.hash_part(), "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz");
        assert_eq!(p.name(), "hello-2.12.1");
        assert_eq!(
            p.base_name(),
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1"
        );
    }

    #[test]
    fn test_parse_rejects_bad_paths() {
        for bad in [
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxle-hello",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxl-hello",
            "/nix/stor/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-.hidden",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a b",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a/b",
        ] {
            let err = StorePath::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        }
        assert!(validate_name(&"a".repeat(211)).is_ok());
        assert!(validate_name(&"a".repeat(212)).is_err());
    }

    #[test]
    fn test_compress_hash_xor_folds() {
        let h: Vec<u8> = (0u8..32).collect();
        let c = compress_hash(&h, 20);
        assert_eq!(c[0], 20);
        assert_eq!(c[11], 11 ^ 31);
        assert_eq!(c[12], 12);
    }

    #[test]
    fn test_make_store_path_golden_from_nix() {
        // `printf 'hello\n' > hello.txt` (mode 0644): `nix-hash --type sha256 hello.txt` and
        // `nix-store --store <root> --add hello.txt` from Debian's Nix 2.8.
        let nar_hash: [u8; 32] = [
            0x1c, 0x37, 0xd0, 0x1a, 0xf4, 0x0b, 0xe2, 0xe8, 0x06, 0x91, 0xde, 0x3c, 0xc3, 0xdf,
            0x44, 0x37, 0x7a, 0x69, 0x9a, 0xfb, 0xb1, 0x7c, 0x68, 0xf0, 0x80, 0x96, 0x4b, 0x2f,
            0xd0, 0x71, 0xfc, 0x13,
        ];
        let p = make_source_path(&nar_hash, "hello.txt", [], false).unwrap();
        assert_eq!(
            p.as_str(),
            "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
        );
    }

    #[test]
    fn test_source_type_sorts_references_and_marks_self() {
        let a = StorePath::parse("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a").unwrap();
        let b = StorePath::parse("/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b").unwrap();
        assert_eq!(
            source_type([&b, &a], true),
            "source:/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a:/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b:self"
        );
        assert_eq!(source_type([], false), "source");
    }
}
