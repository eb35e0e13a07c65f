//! Spec files as `imagetool build --spec` reads them.

use std::path::Path;

use super::attrs::StructuredAttrs;
use super::error::{Result, read_spec_text};
use super::schema::Spec;

/// A spec file as `imagetool build --spec` reads it: a plain spec, or a Nix build's
/// structured attributes (recognised by their `outputs` attribute, which no spec has).
#[derive(Debug, Clone)]
pub enum SpecFile {
    /// A plain spec.
    Plain(Spec),
    /// A Nix build's `.attrs.json`.
    Attrs(StructuredAttrs),
}

impl SpecFile {
    /// Reads `path` as a spec or as structured attributes.
    ///
    /// # Errors
    /// The errors of [`Spec::read`] and [`StructuredAttrs::read`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_spec_text(path, "reading the spec")?;
        let is_attrs = serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v.get("outputs").is_some_and(serde_json::Value::is_object));
        if is_attrs {
            StructuredAttrs::parse(&text, path)
                .map(SpecFile::Attrs)
                .map_err(|e| e.in_file(path))
        } else {
            Spec::from_json(&text)
                .map(SpecFile::Plain)
                .map_err(|e| e.in_file(path))
        }
    }
}
