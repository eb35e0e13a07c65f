//! `cargo xtask cycles`: reports import cycles between the modules of every crate.
//!
//! Each crate's module tree is read from its files (`src/lib.rs` or `src/main.rs`, `mod x;`
//! declarations, `x.rs` / `x/mod.rs`). A module depends on another when its code names it:
//! `use crate::a::b…`, `crate::a::f()`, `super::…`, `self::…` or a declared child (`child::…`).
//! A path resolves to the longest module prefix it names; a name the crate root re-exports
//! (`crate::Plan` with `pub use install::Plan` in lib.rs) resolves to the module it comes
//! from. The crate root itself is not a node (it declares every module), and `#[cfg(test)]`
//! modules are left out (nothing depends on a test). Comments, strings and character
//! literals are removed before the scan, so a doc link is no dependency.
//!
//! A cycle is a strongly connected component of more than one module (Tarjan); each is
//! printed with the edges inside it and the file and line of their first occurrence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// A module: its path from the crate root (`build::plan`; the root is ``) and its file.
#[derive(Debug)]
struct Module {
    file: PathBuf,
    /// The code with comments, strings and test modules blanked.
    code: String,
    /// Declared child modules (`mod x;` and inline `mod x { … }`).
    children: BTreeSet<String>,
}

/// Checks every crate under `crates/`, plus `xtask` and `fuzz`; fails listing the cycles.
pub fn run_cycles() -> Result<()> {
    let root = workspace_root();
    let mut crate_dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .context("crates/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    crate_dirs.push(root.join("xtask"));
    crate_dirs.push(root.join("benches"));
    crate_dirs.sort();
    let mut report = Vec::new();
    let mut checked = 0;
    for dir in crate_dirs {
        for entry in ["src/lib.rs", "src/main.rs"] {
            let file = dir.join(entry);
            if !file.exists() {
                continue;
            }
            let modules = load_tree(&file)?;
            checked += modules.len();
            for cycle in cycles(&modules) {
                report.push(format!(
                    "{}: {}",
                    dir.strip_prefix(&root).unwrap_or(&dir).display(),
                    cycle
                ));
            }
        }
    }
    if report.is_empty() {
        println!("cycles: none among {checked} modules");
        Ok(())
    } else {
        bail!("module import cycles:\n{}", report.join("\n"))
    }
}

/// Reads the module tree rooted at `root_file`.
fn load_tree(root_file: &Path) -> Result<BTreeMap<String, Module>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), root_file.to_path_buf())];
    while let Some((path, file)) = stack.pop() {
        let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        let code = strip_tests(&blank(&text));
        let children = declared_children(&code);
        let dir = if path.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs") {
            file.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            file.with_extension("")
        };
        for (child, inline) in &children {
            if *inline {
                continue;
            }
            let a = dir.join(format!("{child}.rs"));
            let b = dir.join(child).join("mod.rs");
            let f = if a.exists() {
                a
            } else if b.exists() {
                b
            } else {
                continue; // a #[path] or generated module: not followed
            };
            stack.push((join(&path, child), f));
        }
        out.insert(
            path,
            Module {
                file,
                code,
                children: children.into_iter().map(|(c, _)| c).collect(),
            },
        );
    }
    Ok(out)
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}::{child}")
    }
}

/// The code with comments, string and character literals replaced by spaces (newlines kept).
fn blank(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let keep_nl = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend([b' ', b' ']);
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend([b' ', b' ']);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep_nl(b[i]));
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // A raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(b[i..j.min(b.len())].iter().map(|&c| keep_nl(c)));
            i = j;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(keep_nl(b[i]));
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A character literal ('a', '\n', '\u{1F600}') or a lifetime ('a): a literal
            // closes within a few bytes.
            let close = if b.get(i + 1) == Some(&b'\\') {
                (i + 3..(i + 12).min(b.len())).find(|&j| b[j] == b'\'')
            } else {
                let len = std::str::from_utf8(&b[i + 1..(i + 5).min(b.len())])
                    .ok()
                    .or_else(|| std::str::from_utf8(&b[i + 1..(i + 2).min(b.len())]).ok())
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
            };
            match close {
                Some(j) => {
                    out.extend(std::iter::repeat_n(b' ', j + 1 - i));
                    i = j + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The code with every `#[cfg(test)]` item (a test module, a test-only function) blanked.
fn strip_tests(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(pos) = out[from..].find("#[cfg(test)]") {
        let start = from + pos;
        let bytes = out.as_bytes();
        // The item ends at the `;` or the `}` closing its first brace, whichever comes first.
        let mut i = start + "#[cfg(test)]".len();
        let mut depth = 0usize;
        let mut end = out.len();
        while i < bytes.len() {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let blanked: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blanked);
        from = end;
    }
    out
}

/// `mod x;` and `mod x {` declarations at any depth (with whether they are inline).
fn declared_children(code: &str) -> Vec<(String, bool)> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    for w in tokens.windows(3) {
        if w[0] == "mod" && is_name(&w[1]) && (w[2] == ";" || w[2] == "{") {
            out.push((w[1].clone(), w[2] == "{"));
        }
    }
    out
}

fn is_name(t: &str) -> bool {
    t.bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && t.bytes().all(is_ident)
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if is_ident(c) {
            let s = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(code[s..i].to_string());
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push("::".to_string());
            i += 2;
        } else {
            let len = code[i..].chars().next().map_or(1, char::len_utf8);
            out.push(code[i..i + len].to_string());
            i += len;
        }
    }
    out
}

/// Every path the module's code names (as segments), with `use` trees expanded; the line of
/// each is its first token's line.
fn paths(code: &str) -> Vec<(Vec<String>, usize, bool)> {
    // Tokens with their lines.
    let mut toks = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for t in tokens(line) {
            toks.push((t, n + 1));
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (t, line) = (&toks[i].0, toks[i].1);
        let prev_is_sep = i > 0 && toks[i - 1].0 == "::";
        if is_name(t) && !prev_is_sep && toks.get(i + 1).is_some_and(|n| n.0 == "::") {
            let in_use = i > 0 && toks[i - 1].0 == "use";
            // `pub use` or `pub(crate) use` / `pub(super) use` / `pub(in …) use`.
            let is_pub = in_use
                && (i >= 2 && toks[i - 2].0 == "pub"
                    || i >= 3
                        && toks[i - 2].0 == ")"
                        && toks[..i - 2]
                            .iter()
                            .rev()
                            .take(6)
                            .position(|t| t.0 == "pub")
                            .is_some());
            let (found, next) = path_tree(&toks, i, Vec::new(), in_use);
            for p in found {
                out.push((p, line, is_pub));
            }
            i = next.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Parses a path starting at `i` (`a::b::{c, d::e}`), prefixed by `prefix`; returns the
/// complete paths and the index after it. Groups are only expanded in `use` trees.
fn path_tree(
    toks: &[(String, usize)],
    mut i: usize,
    mut prefix: Vec<String>,
    in_use: bool,
) -> (Vec<Vec<String>>, usize) {
    loop {
        let Some((t, _)) = toks.get(i) else {
            return (vec![prefix], i);
        };
        if t == "{" && in_use {
            let mut all = Vec::new();
            i += 1;
            loop {
                match toks.get(i).map(|t| t.0.as_str()) {
                    None => return (all, i),
                    Some("}") => return (all, i + 1),
                    Some(",") => i += 1,
                    Some(_) => {
                        let (found, next) = path_tree(toks, i, prefix.clone(), true);
                        all.extend(found);
                        i = next.max(i + 1);
                    }
                }
            }
        }
        if !is_name(t) && t != "*" {
            return (vec![prefix], i);
        }
        prefix.push(t.clone());
        i += 1;
        if toks.get(i).is_some_and(|n| n.0 == "::") {
            i += 1;
        } else {
            // `as name` or the end.
            if toks.get(i).is_some_and(|n| n.0 == "as") {
                i += 2;
            }
            return (vec![prefix], i);
        }
    }
}

/// The module a path names, seen from module `from`; `None` for other crates, the standard
/// library or the crate root's own items. A name a module re-exports resolves to the module
/// it comes from.
fn resolve(
    modules: &BTreeMap<String, Module>,
    reexports: &BTreeMap<(String, String), String>,
    from: &str,
    path: &[String],
) -> Option<String> {
    let mut cur: Vec<String> = from
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            cur.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                cur.pop()?;
                rest = &rest[1..];
            }
        }
        Some(first)
            if modules
                .get(from)
                .is_some_and(|m| m.children.contains(first)) => {}
        _ => return None,
    }
    // The longest prefix that is a module, then one re-exported name.
    let mut consumed = 0;
    for s in rest {
        let mut next = cur.clone();
        next.push(s.clone());
        if modules.contains_key(&next.join("::")) {
            cur = next;
            consumed += 1;
        } else {
            break;
        }
    }
    let best = cur.join("::");
    if let Some(name) = rest.get(consumed)
        && let Some(m) = reexports.get(&(best.clone(), name.clone()))
    {
        return Some(m.clone());
    }
    if best.is_empty() { None } else { Some(best) }
}

/// Every module's `pub use …::Name` / `pub(…) use …::Name` re-exports:
/// (module, Name) → the module Name comes from (followed through chains of re-exports).
fn all_reexports(modules: &BTreeMap<String, Module>) -> BTreeMap<(String, String), String> {
    let mut out: BTreeMap<(String, String), String> = BTreeMap::new();
    // Resolving through the re-exports found so far: a few rounds settle chains.
    for _ in 0..4 {
        let mut next = BTreeMap::new();
        for (name, m) in modules {
            for (p, _, is_pub_use) in paths(&m.code) {
                if !is_pub_use {
                    continue;
                }
                if let (Some(last), Some(to)) = (p.last(), resolve(modules, &out, name, &p))
                    && last != "*"
                    && last != "self"
                    && to != *name
                {
                    next.insert((name.clone(), last.clone()), to);
                }
            }
        }
        if next == out {
            break;
        }
        out = next;
    }
    out
}

/// The cycles (strongly connected components of two or more modules), described.
fn cycles(modules: &BTreeMap<String, Module>) -> Vec<String> {
    let reexports = all_reexports(modules);
    // edges[a][b] = first (file, line) where a names b
    let mut edges: BTreeMap<&str, BTreeMap<String, (String, usize)>> = BTreeMap::new();
    for (name, m) in modules {
        if name.is_empty() {
            continue;
        }
        let e = edges.entry(name.as_str()).or_default();
        for (p, line, _) in paths(&m.code) {
            let Some(to) = resolve(modules, &reexports, name, &p) else {
                continue;
            };
            // A module naming itself or one of its descendants is no dependency between
            // modules at the same level; an ancestor is (its items are used).
            if to.is_empty() || to == *name || to.starts_with(&format!("{name}::")) {
                continue;
            }
            e.entry(to)
                .or_insert_with(|| (m.file.display().to_string(), line));
        }
    }
    if std::env::var_os("CYCLES_DEBUG").is_some() {
        for (a, bs) in &edges {
            for (b, (file, line)) in bs {
                eprintln!("{a} -> {b}  ({file}:{line})");
            }
        }
    }
    let nodes: Vec<&str> = modules
        .keys()
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .collect();
    let mut out = Vec::new();
    for scc in tarjan(&nodes, &edges) {
        if scc.len() < 2 {
            continue;
        }
        let set: BTreeSet<&str> = scc.iter().copied().collect();
        let mut lines = vec![format!("cycle among {}", scc.join(", "))];
        for a in &scc {
            for (b, (file, line)) in edges.get(a).into_iter().flatten() {
                if set.contains(b.as_str()) {
                    lines.push(format!("    {a} -> {b}  ({file}:{line})"));
                }
            }
        }
        out.push(lines.join("\n"));
    }
    out
}

/// Tarjan's strongly connected components (iterative enough for a crate's module count).
fn tarjan<'a>(
    nodes: &[&'a str],
    edges: &BTreeMap<&str, BTreeMap<String, (String, usize)>>,
) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        on_stack: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(
        v: &'a str,
        nodes: &[&'a str],
        edges: &BTreeMap<&str, BTreeMap<String, (String, usize)>>,
        st: &mut State<'a>,
    ) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on_stack.insert(v);
        for w in edges.get(v).into_iter().flat_map(BTreeMap::keys) {
            let Some(&w) = nodes.iter().find(|n| **n == w.as_str()) else {
                continue;
            };
            if !st.index.contains_key(w) {
                visit(w, nodes, edges, st);
                let lw = st.low[w];
                let lv = st.low[v];
                st.low.insert(v, lv.min(lw));
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low[v];
                st.low.insert(v, lv.min(iw));
            }
        }
        if st.low[v] == st.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                scc.push(w);
                if w == v {
                    break;
                }
            }
            scc.sort_unstable();
            st.out.push(scc);
        }
    }
    let mut st = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on_stack: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for &n in nodes {
        if !st.index.contains_key(n) {
            visit(n, nodes, edges, &mut st);
        }
    }
    st.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_blank_removes_comments_and_strings() {
        let s = blank("a // crate::x\nb \"crate::y\" '\\'' /* crate::z */ c r#\"crate::w\"# 'a");
        assert!(!s.contains("crate"), "{s}");
        assert!(s.contains('a') && s.contains('c'));
        assert_eq!(s.lines().count(), 2);
    }

    #[test]
    fn test_use_trees_expand() {
        let p: Vec<Vec<String>> = paths("use crate::{a::X, b::{self, Y}, c};\nsuper::d::f();")
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
        let s: Vec<String> = p.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            s,
            [
                "crate::a::X",
                "crate::b::self",
                "crate::b::Y",
                "crate::c",
                "super::d::f"
            ]
        );
    }

    #[test]
    fn test_cfg_test_items_are_left_out() {
        let s =
            strip_tests("fn a() {}\n#[cfg(test)]\nmod tests {\n use crate::x; { }\n}\nfn b() {}");
        assert!(!s.contains("crate::x") && s.contains("fn b"), "{s}");
    }
}
