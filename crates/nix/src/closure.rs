//! Loading a closure: the store paths an image holds, with their registration.
//!
//! A build takes its closure from one of
//!
//! * nixpkgs' `closureInfo` output (a directory with `store-paths` and `registration`);
//! * `exportReferencesGraph` output, either the plain format (Nix's
//!   `makeValidityRegistration` without hashes: path, deriver line, reference count,
//!   references) or structured-attrs JSON (`.attrs.json` / `$NIX_ATTRS_JSON_FILE`, whose
//!   graph entries are arrays of `{path, narHash, narSize, references, …}`).
//!
//! Missing NAR hashes and sizes are computed by serialising the paths (in parallel), extra
//! paths are added closed under their references (found by scanning, as Nix does), and with
//! `verify` every NAR hash is recomputed and compared.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::closure_info::{parse_hash, parse_registration};
use crate::nar::{HashSink, TeeSink, dump_path};
use crate::refscan::RefScanner;
use crate::store_path::{STORE_DIR, StorePath};
use crate::{Error, ErrorKind, PathInfo, Result, base32};

/// Where the closure comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosureInput {
    /// A `closureInfo` output directory (`store-paths` + `registration`).
    ClosureInfo(PathBuf),
    /// An `exportReferencesGraph` file: plain, or structured-attrs JSON.
    ReferencesGraph(PathBuf),
}

/// How to load a closure.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The directory holding `nix/store` (`/` for the host's own store).
    pub store_root: PathBuf,
    /// Paths that must be in the closure (the system toplevel).
    pub roots: Vec<StorePath>,
    /// Extra paths to add, closed under their references.
    pub additional_paths: Vec<StorePath>,
    /// Recompute every NAR hash and fail on a mismatch.
    pub verify: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            store_root: PathBuf::from("/"),
            roots: Vec::new(),
            additional_paths: Vec::new(),
            verify: false,
        }
    }
}

/// A complete closure: every path with its NAR hash, size and references.
#[derive(Debug, Clone, Default)]
pub struct Closure {
    paths: BTreeMap<StorePath, PathInfo>,
    store_root: PathBuf,
    /// Paths whose NAR hash was computed from the store while loading (not taken from the
    /// input): they need no second check.
    hashed: BTreeSet<StorePath>,
}

/// Two closures are equal when they hold the same paths with the same registrations in the
/// same store, however their hashes were obtained.
impl PartialEq for Closure {
    fn eq(&self, other: &Self) -> bool {
        self.paths == other.paths && self.store_root == other.store_root
    }
}

impl Eq for Closure {}

impl Closure {
    /// Whether `path`'s NAR hash was computed from the store contents while loading.
    #[must_use]
    pub fn was_hashed(&self, path: &StorePath) -> bool {
        self.hashed.contains(path)
    }

    /// The paths' registrations, in path order.
    pub fn infos(&self) -> impl ExactSizeIterator<Item = &PathInfo> {
        self.paths.values()
    }

    /// The registration of `path`, when it is in the closure.
    #[must_use]
    pub fn get(&self, path: &StorePath) -> Option<&PathInfo> {
        self.paths.get(path)
    }

    /// The number of store paths.
    #[must_use]
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True for an empty closure.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Where `path`'s contents are on the host.
    #[must_use]
    pub fn host_path(&self, path: &StorePath) -> PathBuf {
        host_path(&self.store_root, path)
    }

    /// The sum of the NAR sizes.
    #[must_use]
    pub fn total_nar_size(&self) -> u64 {
        self.paths.values().map(|p| p.nar_size).sum()
    }
}

/// The host location of `path` under `store_root`.
#[must_use]
pub fn host_path(store_root: &Path, path: &StorePath) -> PathBuf {
    store_root.join(path.as_str().trim_start_matches('/'))
}

/// Reads an untrusted closure description: a regular file of at most
/// [`MAX_GRAPH_BYTES`](imagetool_fstree::input::MAX_GRAPH_BYTES), as UTF-8.
fn read_input(file: &Path) -> Result<String> {
    imagetool_fstree::input::read_limited_string(file, imagetool_fstree::input::MAX_GRAPH_BYTES)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                Error::new(ErrorKind::InvalidInput, e.to_string()).with_path(file)
            }
            _ => Error::io(file, e),
        })
}

/// A NAR hash and size.
type NarId = ([u8; 32], u64);

/// One path as an input describes it, before hashes are filled in.
#[derive(Debug, Clone)]
struct Partial {
    nar: Option<NarId>,
    deriver: Option<StorePath>,
    references: BTreeSet<StorePath>,
}

/// Loads the closure `input` describes, completing and checking it per `opts`.
///
/// # Errors
/// [`ErrorKind::Io`] naming the file or store path that cannot be read;
/// [`ErrorKind::Corrupt`] for a malformed input file (with its line) or, with `verify`, a
/// NAR hash that does not match the contents; [`ErrorKind::InvalidInput`] when a root is not
/// in the closure or a reference points outside it.
pub fn load(input: &ClosureInput, opts: &LoadOptions) -> Result<Closure> {
    let mut partial = match input {
        ClosureInput::ClosureInfo(dir) => {
            let file = dir.join("registration");
            let text = read_input(&file)?;
            parse_registration(&text)
                .map_err(|e| e.with_path(&file))?
                .into_iter()
                .map(|i| {
                    let p = Partial {
                        nar: Some((i.nar_hash, i.nar_size)),
                        deriver: i.deriver,
                        references: i.references,
                    };
                    (i.path, p)
                })
                .collect()
        }
        ClosureInput::ReferencesGraph(file) => {
            let text = read_input(file)?;
            if text.trim_start().starts_with(['{', '[']) {
                parse_json_graph(&text).map_err(|e| e.with_path(file))?
            } else {
                parse_plain_graph(&text).map_err(|e| e.with_path(file))?
            }
        }
    };
    add_paths(&mut partial, &opts.additional_paths, &opts.store_root)?;

    // Every reference and root must be inside the closure.
    for (path, p) in &partial {
        if let Some(r) = p.references.iter().find(|r| !partial.contains_key(*r)) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{path} refers to {r}, which is not in the closure"),
            ));
        }
    }
    for root in &opts.roots {
        if !partial.contains_key(root) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{root} is not in the closure"),
            ));
        }
    }

    // Hash what must be hashed (missing, or everything when verifying), in parallel; check
    // that every other path at least exists.
    let results: Vec<(StorePath, Option<NarId>)> = partial
        .par_iter()
        .map(|(path, p)| {
            let host = host_path(&opts.store_root, path);
            if p.nar.is_none() || opts.verify {
                // Files of one path are read in parallel too: one path of 300,000 files
                // keeps every core busy.
                let got = crate::scan::nar_hash(&crate::scan::scan(&host)?)?;
                Ok((path.clone(), Some(got)))
            } else {
                std::fs::symlink_metadata(&host).map_err(|e| Error::io(&host, e))?;
                Ok((path.clone(), None))
            }
        })
        .collect::<Result<_>>()?;
    let mut paths = BTreeMap::new();
    let mut hashed = BTreeSet::new();
    for (path, computed) in results {
        if computed.is_some() {
            hashed.insert(path.clone());
        }
        let p = &partial[&path];
        let (nar_hash, nar_size) = match (p.nar, computed) {
            (Some(given), Some(got)) if given != got => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "{path}: the registration says narHash sha256:{} ({} bytes), the \
                         contents hash to sha256:{} ({} bytes)",
                        base32::encode(&given.0),
                        given.1,
                        base32::encode(&got.0),
                        got.1
                    ),
                ));
            }
            (Some(given), _) => given,
            (None, Some(got)) => got,
            (None, None) => unreachable_hash(&path)?,
        };
        let info = PathInfo {
            path: path.clone(),
            nar_hash,
            nar_size,
            deriver: p.deriver.clone(),
            references: p.references.clone(),
        };
        paths.insert(path, info);
    }
    Ok(Closure {
        paths,
        store_root: opts.store_root.clone(),
        hashed,
    })
}

fn unreachable_hash(path: &StorePath) -> Result<NarId> {
    // Paths without a hash were hashed above; reaching this is a logic error, reported as one.
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{path}: no NAR hash was computed"),
    ))
}

/// Adds `extra` and everything they refer to (found by scanning their NAR serialisation for
/// the hash parts of the paths in the host store), as `nix copy` would bring them along.
fn add_paths(
    partial: &mut BTreeMap<StorePath, Partial>,
    extra: &[StorePath],
    store_root: &Path,
) -> Result<()> {
    let mut queue: VecDeque<StorePath> = extra
        .iter()
        .filter(|p| !partial.contains_key(*p))
        .cloned()
        .collect();
    if queue.is_empty() {
        return Ok(());
    }
    let store = store_root.join(STORE_DIR.trim_start_matches('/'));
    let mut candidates = Vec::new();
    for entry in std::fs::read_dir(&store).map_err(|e| Error::io(&store, e))? {
        let entry = entry.map_err(|e| Error::io(&store, e))?;
        if let Some(name) = entry.file_name().to_str()
            && let Ok(p) = StorePath::from_base_name(name)
        {
            candidates.push(p);
        }
    }
    candidates.sort();
    while let Some(path) = queue.pop_front() {
        if partial.contains_key(&path) {
            continue;
        }
        let host = host_path(store_root, &path);
        let mut sink = TeeSink {
            a: HashSink::new(),
            b: RefScanner::new(&candidates),
        };
        dump_path(&host, &mut sink).map_err(|e| e.with_path(&host))?;
        let references = sink.b.found();
        for r in &references {
            if !partial.contains_key(r) && *r != path {
                queue.push_back(r.clone());
            }
        }
        let nar = sink.a.finish();
        partial.insert(
            path,
            Partial {
                nar: Some(nar),
                deriver: None,
                references,
            },
        );
    }
    Ok(())
}

/// Parses the plain `exportReferencesGraph` format.
fn parse_plain_graph(text: &str) -> Result<BTreeMap<StorePath, Partial>> {
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    let corrupt = |line: usize, why: String| {
        Error::new(ErrorKind::Corrupt, format!("references graph: {why}")).at_line(line as u64 + 1)
    };
    let parse_path = |n: usize, s: &str| StorePath::parse(s).map_err(|e| corrupt(n, e.to_string()));
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        let path = parse_path(i, lines[i])?;
        let cut = || corrupt(start, format!("the record of {path} is cut short"));
        let deriver_line = *lines.get(i + 1).ok_or_else(cut)?;
        let count_line = *lines.get(i + 2).ok_or_else(cut)?;
        let count: usize = count_line.parse().map_err(|_| {
            corrupt(
                i + 2,
                format!("reference count {count_line:?} is not a number"),
            )
        })?;
        // Checked: a count near 2^64 must not wrap around (it cannot fit the file anyway).
        let end = match count.checked_add(i + 3) {
            Some(end) if end <= lines.len() => end,
            _ => {
                return Err(corrupt(
                    i + 2,
                    format!(
                        "the record of {path} says {count} references, more than the file \
                         has lines"
                    ),
                ));
            }
        };
        let mut references = BTreeSet::new();
        for (k, r) in lines[i + 3..end].iter().enumerate() {
            references.insert(parse_path(i + 3 + k, r)?);
        }
        let deriver = if deriver_line.is_empty() {
            None
        } else {
            Some(parse_path(i + 1, deriver_line)?)
        };
        out.insert(
            path,
            Partial {
                nar: None,
                deriver,
                references,
            },
        );
        i = end;
    }
    Ok(out)
}

/// Parses structured-attrs JSON: a bare array of graph entries, or an object whose values
/// include arrays of graph entries (`.attrs.json`, where the `exportReferencesGraph` names are
/// keys beside the derivation's other attributes).
fn parse_json_graph(text: &str) -> Result<BTreeMap<StorePath, Partial>> {
    let bad = |why: String| Error::new(ErrorKind::Corrupt, format!("references graph: {why}"));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let is_graph = |v: &serde_json::Value| {
        v.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter()
                    .all(|e| e.get("path").is_some_and(serde_json::Value::is_string))
        })
    };
    let graphs: Vec<(&str, &Vec<serde_json::Value>)> = match &value {
        serde_json::Value::Array(a) => vec![("(top level)", a)],
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| is_graph(v))
            .filter_map(|(k, v)| v.as_array().map(|a| (k.as_str(), a)))
            .collect(),
        _ => Vec::new(),
    };
    if graphs.is_empty() {
        return Err(bad(
            "no exportReferencesGraph entry (an array of {\"path\", \"references\", …}) found"
                .into(),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, entries) in graphs {
        for (n, e) in entries.iter().enumerate() {
            let at = |why: String| bad(format!("{key}[{n}]: {why}"));
            let path_text = e.get("path").and_then(|v| v.as_str()).unwrap_or_default();
            let path = StorePath::parse(path_text).map_err(|err| at(err.to_string()))?;
            let references = match e.get("references") {
                Some(serde_json::Value::Array(refs)) => refs
                    .iter()
                    .map(|r| {
                        r.as_str()
                            .ok_or_else(|| at("a reference is not a string".into()))
                            .and_then(|s| StorePath::parse(s).map_err(|err| at(err.to_string())))
                    })
                    .collect::<Result<BTreeSet<_>>>()?,
                Some(_) => return Err(at("\"references\" is not an array".into())),
                None => return Err(at("no \"references\"".into())),
            };
            let hash = match e.get("narHash") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => {
                    let s = v
                        .as_str()
                        .ok_or_else(|| at("\"narHash\" is not a string".into()))?;
                    Some(parse_any_hash(s).map_err(at)?)
                }
            };
            let size = match e.get("narSize") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| at("\"narSize\" is not a number".into()))?,
                ),
            };
            let nar = match (hash, size) {
                (Some(h), Some(s)) => Some((h, s)),
                _ => None,
            };
            let deriver = match e.get("deriver").and_then(|v| v.as_str()) {
                Some(d) if !d.is_empty() => {
                    Some(StorePath::parse(d).map_err(|err| at(err.to_string()))?)
                }
                _ => None,
            };
            out.insert(
                path,
                Partial {
                    nar,
                    deriver,
                    references,
                },
            );
        }
    }
    Ok(out)
}

/// `sha256:<nix32>` (what Nix writes) or `sha256:<base16>`.
fn parse_any_hash(s: &str) -> std::result::Result<[u8; 32], String> {
    match s.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 => {
            let mut out = [0u8; 32];
            for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
                let text = std::str::from_utf8(pair).unwrap_or("");
                out[i] = u8::from_str_radix(text, 16)
                    .map_err(|_| format!("narHash {s:?} is not sha256:<base16>"))?;
            }
            Ok(out)
        }
        _ => parse_hash(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/00000000000000000000000000000000-a";
    const B: &str = "/nix/store/11111111111111111111111111111111-b";

    #[test]
    fn test_plain_graph_parses_records_and_reports_lines() {
        let text = format!("{A}\n\n0\n{B}\n\n2\n{A}\n{B}\n");
        let g = parse_plain_graph(&text).unwrap();
        assert_eq!(g.len(), 2);
        let b = &g[&StorePath::parse(B).unwrap()];
        assert_eq!(b.references.len(), 2);
        assert!(b.nar.is_none());
        let err = parse_plain_graph(&format!("{A}\n\nx\n")).unwrap_err();
        assert_eq!(err.line(), Some(3), "{err}");
        let err = parse_plain_graph(&format!("{A}\n\n2\n{B}\n")).unwrap_err();
        assert!(
            err.to_string().contains("more than the file has lines"),
            "{err}"
        );
        let err = parse_plain_graph(&format!("{A}\n\n")).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    #[test]
    fn test_json_graph_from_attrs_file() {
        let h = base32::encode(&[3u8; 32]);
        let text = format!(
            r#"{{"name":"img","closure":[{{"path":"{A}","narHash":"sha256:{h}","narSize":120,"references":[]}},
               {{"path":"{B}","references":["{A}","{B}"]}}],"other":[1,2]}}"#
        );
        let g = parse_json_graph(&text).unwrap();
        assert_eq!(g[&StorePath::parse(A).unwrap()].nar, Some(([3u8; 32], 120)));
        assert!(g[&StorePath::parse(B).unwrap()].nar.is_none());
        let err = parse_json_graph(r#"{"closure":[{"path":"/nix/store/x"}]}"#).unwrap_err();
        assert!(err.to_string().contains("closure[0]"), "{err}");
        assert!(parse_json_graph(r#"{"a":1}"#).is_err());
    }

    #[test]
    fn test_hex_and_nix32_hashes() {
        let hex = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_any_hash(&hex).unwrap(), [0xab; 32]);
        let n = format!("sha256:{}", base32::encode(&[9; 32]));
        assert_eq!(parse_any_hash(&n).unwrap(), [9; 32]);
        assert!(parse_any_hash("md5:abc").is_err());
    }
}
