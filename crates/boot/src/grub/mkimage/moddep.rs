//! `moddep.lst`: which modules a module needs, and the order `grub-mkimage` puts them in.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// The dependency lines of `moddep.lst` (`name: dep dep …`), in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModDeps {
    lines: Vec<(String, Vec<String>)>,
}

/// The longest line `grub-mkimage` reads whole (its `fgets` buffer); longer lines are
/// refused rather than split the way GRUB would split them.
const MAX_LINE: usize = 1023;

impl ModDeps {
    /// Parses `moddep.lst`'s text; `path` names the file in errors.
    ///
    /// # Errors
    /// `InvalidInput` for a line without `:` or longer than GRUB reads at once.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.len() + 1 > MAX_LINE {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{} line {}: {} bytes, longer than grub-mkimage reads",
                        path.display(),
                        n + 1,
                        line.len()
                    ),
                )
                .with_path(path));
            }
            let Some((name, deps)) = line.split_once(':') else {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{} line {}: no ':' in {line:?}", path.display(), n + 1),
                )
                .with_path(path));
            };
            lines.push((
                name.to_string(),
                deps.split_ascii_whitespace().map(str::to_string).collect(),
            ));
        }
        Ok(Self { lines })
    }

    /// The modules to load for `wanted`, each after the modules it needs, in the order
    /// `grub-mkimage` lays them out: a depth-first walk of each wanted module's
    /// dependencies, taken in reverse order of their line (GRUB prepends them to a list),
    /// using the last line for a module named twice.
    ///
    /// # Errors
    /// `InvalidInput` for a dependency cycle (GRUB would recurse forever).
    pub fn resolve(&self, wanted: &[&str], path: &Path) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        for w in wanted {
            self.add(w, &mut out, &mut stack, path)?;
        }
        Ok(out)
    }

    fn deps_of(&self, name: &str) -> Option<&[String]> {
        self.lines
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
    }

    fn add(
        &self,
        name: &str,
        out: &mut Vec<String>,
        stack: &mut Vec<String>,
        path: &Path,
    ) -> Result<()> {
        if out.iter().any(|m| m == name) {
            return Ok(());
        }
        if stack.iter().any(|m| m == name) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{}: module dependency cycle {} -> {name}",
                    path.display(),
                    stack.join(" -> ")
                ),
            )
            .with_path(path));
        }
        stack.push(name.to_string());
        if let Some(deps) = self.deps_of(name) {
            for d in deps.iter().rev() {
                self.add(d, out, stack, path)?;
            }
        }
        stack.pop();
        out.push(name.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("moddep.lst")
    }

    #[test]
    fn test_dependencies_come_first_in_reverse_line_order() {
        let d = ModDeps::parse("ext2: fshelp\nfat:\nsearch_fs_uuid:\nbiosdisk:\npart_gpt:\nfshelp:\nnormal: a b c\na:\nb: a\nc:\n", p()).unwrap();
        assert_eq!(
            d.resolve(&["biosdisk", "ext2", "fat"], p()).unwrap(),
            ["biosdisk", "fshelp", "ext2", "fat"]
        );
        // deps taken c, b, a: b pulls a first.
        assert_eq!(
            d.resolve(&["normal"], p()).unwrap(),
            ["c", "a", "b", "normal"]
        );
        // A module not in the file has no dependencies.
        assert_eq!(d.resolve(&["zzz"], p()).unwrap(), ["zzz"]);
    }

    #[test]
    fn test_cycles_and_bad_lines_are_errors() {
        let d = ModDeps::parse("a: b\nb: a\n", p()).unwrap();
        let e = d.resolve(&["a"], p()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = ModDeps::parse("a b\n", p()).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let long = format!("a: {}\n", "b ".repeat(600));
        assert!(ModDeps::parse(&long, p()).is_err());
    }
}
