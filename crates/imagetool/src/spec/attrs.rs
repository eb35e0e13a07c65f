//! A Nix build's structured attributes (`.attrs.json`) read as a spec.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use imagetool_vdisk::Format;

use super::error::read_spec_text;
use super::error::{Error, Result};
use super::schema::Spec;

/// Where a derivation's attribute names end and the spec begins.
const DERIVATION_KEYS: &[&str] = &[
    "builder",
    "args",
    "system",
    "outputs",
    "exportReferencesGraph",
    "requiredSystemFeatures",
    "preferLocalBuild",
    "allowSubstitutes",
    "allowedReferences",
    "allowedRequisites",
    "disallowedReferences",
    "disallowedRequisites",
    "outputChecks",
    "unsafeDiscardReferences",
    "impureEnvVars",
    "outputHash",
    "outputHashAlgo",
    "outputHashMode",
    "passAsFile",
    "env",
];

/// A Nix build's structured attributes (`.attrs.json`), read as a spec.
#[derive(Debug, Clone)]
pub struct StructuredAttrs {
    /// The spec: every attribute that is not the derivation's own; the closure is the
    /// attributes file itself (its `exportReferencesGraph` entries) unless the spec names one.
    pub spec: Spec,
    /// `outputs.out`: the directory the image and `nix-support/` go to.
    pub out: PathBuf,
    /// The image file: `<out>/<baseName>.<ext>`.
    pub image: PathBuf,
}

impl StructuredAttrs {
    /// Reads `.attrs.json` (the file `$NIX_ATTRS_JSON_FILE` names).
    ///
    /// # Errors
    /// [`ErrorKind::Io`](super::ErrorKind::Io) naming the file; [`ErrorKind::InvalidInput`](super::ErrorKind::InvalidInput) naming the key for a
    /// missing `outputs.out`, an `exportReferencesGraph` whose entry is absent, an unknown
    /// attribute or a wrong type.
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_spec_text(path, "reading the structured attributes")?;
        Self::parse(&text, path).map_err(|e| e.in_file(path))
    }

    /// Parses the text of `.attrs.json`, found at `path`.
    ///
    /// # Errors
    /// As [`StructuredAttrs::read`].
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid("structured attributes", e.to_string()))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(Error::invalid("structured attributes", "not a JSON object"));
        };
        let out = map
            .get("outputs")
            .and_then(|o| o.get("out"))
            .and_then(serde_json::Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| Error::invalid("outputs.out", "missing (is this an .attrs.json?)"))?;
        // The exportReferencesGraph names are keys of the attributes file, holding the graphs.
        let mut graphs = BTreeSet::new();
        if let Some(erg) = map.get("exportReferencesGraph") {
            let serde_json::Value::Object(erg) = erg else {
                return Err(Error::invalid(
                    "exportReferencesGraph",
                    "expected an attribute set",
                ));
            };
            for name in erg.keys() {
                match map.get(name) {
                    Some(serde_json::Value::Array(_)) => {
                        graphs.insert(name.clone());
                    }
                    _ => {
                        return Err(Error::invalid(
                            format!("exportReferencesGraph.{name}"),
                            format!("the closure entry {name:?} is missing from the attributes"),
                        ));
                    }
                }
            }
        }
        map.retain(|k, _| {
            !(DERIVATION_KEYS.contains(&k.as_str()) || k.starts_with("__") || graphs.contains(k))
        });
        let mut spec = Spec::from_json(&serde_json::Value::Object(map).to_string())?;
        if spec.closure_info.is_none() && spec.references_graph.is_none() {
            if graphs.is_empty() {
                return Err(Error::invalid(
                    "exportReferencesGraph",
                    "no closure: set exportReferencesGraph.closure = [ toplevel ] (or closureInfo)",
                ));
            }
            spec.references_graph = Some(path.to_path_buf());
        }
        let image = out.join(spec.file_name()?);
        spec.output = Some(image.clone());
        Ok(Self { spec, out, image })
    }

    /// Gets a Nix build ready: `threads` from `$NIX_BUILD_CORES` (the cores Nix grants) when
    /// the spec leaves it at 0 (the thread count never changes the output), and the `out`
    /// directory created.
    ///
    /// # Errors
    /// [`ErrorKind::Io`](super::ErrorKind::Io) naming `out` when it cannot be created.
    pub fn prepare(&mut self) -> Result<()> {
        if self.spec.threads == 0
            && let Some(n) = std::env::var("NIX_BUILD_CORES")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        {
            self.spec.threads = n;
        }
        std::fs::create_dir_all(&self.out).map_err(|e| Error::io(&self.out, "creating", e))
    }

    /// Writes `<out>/nix-support/hydra-build-products` (`file <format>-image <image>`), as
    /// make-disk-image does.
    ///
    /// # Errors
    /// [`ErrorKind::Io`](super::ErrorKind::Io) naming the file.
    pub fn write_build_products(&self) -> Result<()> {
        let dir = self.out.join("nix-support");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "creating", e))?;
        let file = dir.join("hydra-build-products");
        let mut line = String::new();
        for f in self.spec.format.split(',') {
            let f = f.trim();
            let image = match f.parse::<Format>() {
                Ok(fmt) => self.image.with_extension(fmt.extension()),
                Err(_) => self.image.clone(),
            };
            line.push_str(&format!("file {f}-image {}\n", image.display()));
        }
        // As every output: never through a planted symlink, never half-written.
        let out = imagetool_blockio::AtomicFile::create(&file)
            .map_err(|e| Error::io(&file, "writing", e))?;
        std::io::Write::write_all(&mut out.file(), line.as_bytes())
            .and_then(|()| out.commit())
            .map_err(|e| Error::io(&file, "writing", e))
    }
}

/// The structured-attributes file of the Nix build this process runs in, if any:
/// `$NIX_ATTRS_JSON_FILE`, or `$NIX_BUILD_TOP/.attrs.json`. The fallback matters: in a
/// sandboxed build, Nix 2.8 sets `NIX_ATTRS_JSON_FILE` to the build directory's path outside
/// the sandbox, which does not exist inside it.
///
/// ```
/// use imagetool::spec::{StructuredAttrs, attrs_file_from_env};
///
/// // Inside a `__structuredAttrs = true` derivation: its attributes are the build's spec.
/// if let Some(file) = attrs_file_from_env() {
///     let attrs = StructuredAttrs::read(&file)?;
///     # let _ = attrs;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn attrs_file_from_env() -> Option<PathBuf> {
    let named = std::env::var_os("NIX_ATTRS_JSON_FILE").map(PathBuf::from);
    let in_top =
        std::env::var_os("NIX_BUILD_TOP").map(|top| PathBuf::from(top).join(".attrs.json"));
    match (named, in_top) {
        (Some(n), _) if n.is_file() => Some(n),
        (_, Some(t)) if t.is_file() => Some(t),
        (named, _) => named,
    }
}
