//! The toplevel's bootspec (`boot.json`, RFC 0125): `org.nixos.bootspec.v1`, its
//! specialisations (`org.nixos.specialisation.v1`) and the other extensions as raw JSON.
//!
//! Parsed with `serde_json` into a map and read key by key, so an error names the file and the
//! key (`…/boot.json: "org.nixos.bootspec.v1"."kernel": missing`). The `bootspec` crate does
//! the same parse but its errors name neither, and it has no notion of the closure check
//! below, which is the point of reading the bootspec here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{Error, ErrorKind, Result};

/// The bootspec document key.
pub const V1: &str = "org.nixos.bootspec.v1";
/// The specialisation extension key.
pub const SPECIALISATION_V1: &str = "org.nixos.specialisation.v1";
/// systemd-boot's extension (`sortKey`, `devicetree`).
pub const SYSTEMD_BOOT_EXT: &str = "org.nixos.systemd-boot";
/// The file name in a toplevel.
pub const FILE_NAME: &str = "boot.json";

/// One bootspec document: `org.nixos.bootspec.v1` and the extensions beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct BootSpec {
    /// `system` (`x86_64-linux`).
    pub system: String,
    /// `init`: the stage-2 init (`<toplevel>/init`).
    pub init: String,
    /// `initrd`, when the system has one.
    pub initrd: Option<String>,
    /// `initrdSecrets`: a script that appends secrets to a copied initrd.
    pub initrd_secrets: Option<String>,
    /// `kernel`.
    pub kernel: String,
    /// `kernelParams`.
    pub kernel_params: Vec<String>,
    /// `label` (`NixOS 25.11… (Linux 6.1…)`).
    pub label: String,
    /// `toplevel`.
    pub toplevel: String,
    /// Every other key of the document (extensions), raw.
    pub extensions: BTreeMap<String, Value>,
}

impl BootSpec {
    /// systemd-boot's `sortKey` extension, `nixos` when absent (systemd-boot.nix's default).
    #[must_use]
    pub fn sort_key(&self) -> &str {
        self.extensions
            .get(SYSTEMD_BOOT_EXT)
            .and_then(|e| e.get("sortKey"))
            .and_then(Value::as_str)
            .unwrap_or("nixos")
    }

    /// Every store file the document names, with its key: `kernel`, `initrd`, `init`,
    /// `toplevel`, `initrdSecrets`.
    #[must_use]
    pub fn named_paths(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![
            ("kernel", self.kernel.as_str()),
            ("init", self.init.as_str()),
            ("toplevel", self.toplevel.as_str()),
        ];
        if let Some(i) = &self.initrd {
            v.push(("initrd", i));
        }
        if let Some(s) = &self.initrd_secrets {
            v.push(("initrdSecrets", s));
        }
        v
    }
}

/// A generation: its bootspec and its specialisations by name (sorted).
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The file it was read from (for error messages).
    pub file: PathBuf,
    /// The generation's own document.
    pub bootspec: BootSpec,
    /// `org.nixos.specialisation.v1`: name → document.
    pub specialisations: BTreeMap<String, BootSpec>,
}

impl Generation {
    /// Reads `<toplevel_on_host>/boot.json`.
    ///
    /// # Errors
    /// `Missing` when the file does not exist (a toplevel built without bootspec), `Io`,
    /// `InvalidInput` naming the file and the key for malformed documents.
    pub fn load(toplevel_on_host: &Path) -> Result<Self> {
        Self::load_file(&toplevel_on_host.join(FILE_NAME))
    }

    /// Reads the bootspec document `file`: a regular file of at most
    /// [`MAX_DOCUMENT_BYTES`](imagetool_fstree::input::MAX_DOCUMENT_BYTES).
    ///
    /// # Errors
    /// As [`Generation::load`]; `InvalidInput` for a file that is not regular or too large.
    pub fn load_file(file: &Path) -> Result<Self> {
        let file = file.to_path_buf();
        let limit = imagetool_fstree::input::MAX_DOCUMENT_BYTES;
        let bytes = imagetool_fstree::input::read_limited(&file, limit).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::Missing,
                    format!(
                        "{}: no bootspec in the toplevel (a NixOS system built with \
                         boot.bootspec.enable = true has one); cannot install a bootloader",
                        file.display()
                    ),
                )
                .with_path(&file)
                .with_source(e)
            } else if e.kind() == std::io::ErrorKind::InvalidInput {
                Error::new(ErrorKind::InvalidInput, format!("bootspec: {e}")).with_path(&file)
            } else {
                Error::io(&file, "cannot read the bootspec", e)
            }
        })?;
        Self::parse(&bytes, &file)
    }

    /// Parses a `boot.json` document; `file` names it in errors.
    ///
    /// # Errors
    /// `InvalidInput` naming `file` and the key at fault.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{}: not valid JSON: {e}", file.display()),
            )
            .with_path(file)
        })?;
        let Value::Object(mut top) = value else {
            return Err(invalid(file, "", "not a JSON object"));
        };
        let specs = top.remove(SPECIALISATION_V1);
        let bootspec = document(top, file, "")?;
        let mut specialisations = BTreeMap::new();
        match specs {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (name, doc) in m {
                    let at = format!("{SPECIALISATION_V1:?}.{name:?}.");
                    check_specialisation_name(&name, file, &at)?;
                    let Value::Object(mut doc) = doc else {
                        return Err(invalid(file, &at, "not a JSON object"));
                    };
                    // Specialisations of specialisations are not booted (NixOS does not
                    // list them either): dropped.
                    doc.remove(SPECIALISATION_V1);
                    specialisations.insert(name.clone(), document(doc, file, &at)?);
                }
            }
            Some(_) => {
                return Err(invalid(
                    file,
                    "",
                    &format!("{SPECIALISATION_V1:?} is not a JSON object"),
                ));
            }
        }
        Ok(Self {
            file: file.to_path_buf(),
            bootspec,
            specialisations,
        })
    }

    /// Checks that every store path the documents name belongs to the closure.
    /// `closure` holds the closure's store paths (`/nix/store/<hash>-<name>`).
    ///
    /// # Errors
    /// `InvalidInput` naming the file, the key and the path: a kernel outside the closure
    /// would be missing from the image.
    pub fn check_closure(&self, closure: &BTreeSet<String>) -> Result<()> {
        let docs = std::iter::once((String::new(), &self.bootspec)).chain(
            self.specialisations
                .iter()
                .map(|(n, d)| (format!("{SPECIALISATION_V1:?}.{n:?}."), d)),
        );
        for (at, doc) in docs {
            for (key, path) in doc.named_paths() {
                let inside = store_path_of(path).is_some_and(|sp| closure.contains(sp));
                if !inside {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{}: {at}{V1:?}.{key:?} names {path}, which is not in the closure",
                            self.file.display()
                        ),
                    )
                    .with_path(&self.file));
                }
            }
        }
        Ok(())
    }
}

/// The store path (`/nix/store/<hash>-<name>`) a path lies in, if any.
#[must_use]
pub fn store_path_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/nix/store/")?;
    let name_len = rest.find('/').unwrap_or(rest.len());
    if name_len == 0 || rest[..name_len].starts_with('.') {
        return None;
    }
    Some(&path[..STORE_DIR_LEN + name_len])
}

const STORE_DIR_LEN: usize = "/nix/store/".len();

fn check_specialisation_name(name: &str, file: &Path, at: &str) -> Result<()> {
    // The name becomes part of a file name on the ESP and a GRUB menu title.
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            file,
            at,
            "a specialisation name must be non-empty ASCII letters, digits, - _ . +",
        ))
    }
}

fn invalid(file: &Path, at: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{}: {at}{what}", file.display()),
    )
    .with_path(file)
}

fn document(mut doc: Map<String, Value>, file: &Path, at: &str) -> Result<BootSpec> {
    let Some(v1) = doc.remove(V1) else {
        return Err(invalid(file, at, &format!("{V1:?}: missing")));
    };
    let Value::Object(mut v1) = v1 else {
        return Err(invalid(file, at, &format!("{V1:?}: not a JSON object")));
    };
    let at1 = format!("{at}{V1:?}.");
    let mut string = |key: &str, required: bool| -> Result<Option<String>> {
        match v1.remove(key) {
            Some(Value::String(s)) => {
                if s.is_empty() || s.contains('\0') || s.contains('\n') {
                    Err(invalid(
                        file,
                        &at1,
                        &format!("{key:?}: empty or contains a NUL or newline"),
                    ))
                } else {
                    Ok(Some(s))
                }
            }
            None | Some(Value::Null) if !required => Ok(None),
            None => Err(invalid(file, &at1, &format!("{key:?}: missing"))),
            Some(_) => Err(invalid(file, &at1, &format!("{key:?}: not a string"))),
        }
    };
    let system = string("system", true)?;
    let init = string("init", true)?;
    let initrd = string("initrd", false)?;
    let initrd_secrets = string("initrdSecrets", false)?;
    let kernel = string("kernel", true)?;
    let label = string("label", true)?;
    let toplevel = string("toplevel", true)?;
    let kernel_params = match v1.remove("kernelParams") {
        Some(Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::String(s) if !s.contains('\n') && !s.contains('\0') => Ok(s),
                _ => Err(invalid(
                    file,
                    &at1,
                    &format!("\"kernelParams\"[{i}]: not a single-line string"),
                )),
            })
            .collect::<Result<Vec<_>>>()?,
        None => return Err(invalid(file, &at1, "\"kernelParams\": missing")),
        Some(_) => return Err(invalid(file, &at1, "\"kernelParams\": not an array")),
    };
    let (Some(system), Some(init), Some(kernel), Some(label), Some(toplevel)) =
        (system, init, kernel, label, toplevel)
    else {
        return Err(invalid(file, &at1, "a required key is missing"));
    };
    Ok(BootSpec {
        system,
        init,
        initrd,
        initrd_secrets,
        kernel,
        kernel_params,
        label,
        toplevel,
        extensions: doc.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
      "org.nixos.bootspec.v1": {
        "init": "/nix/store/aaaa-nixos-system-x/init",
        "initrd": "/nix/store/bbbb-initrd-linux/initrd",
        "kernel": "/nix/store/cccc-linux/bzImage",
        "kernelParams": ["console=ttyS0", "loglevel=4"],
        "label": "NixOS 25.11 (Linux 6.1)",
        "system": "x86_64-linux",
        "toplevel": "/nix/store/aaaa-nixos-system-x"
      },
      "org.nixos.systemd-boot": { "sortKey": "zz" },
      "org.nixos.specialisation.v1": {
        "debug": {
          "org.nixos.bootspec.v1": {
            "init": "/nix/store/dddd-nixos-system-x-debug/init",
            "kernel": "/nix/store/cccc-linux/bzImage",
            "kernelParams": ["debug"],
            "label": "NixOS debug",
            "system": "x86_64-linux",
            "toplevel": "/nix/store/dddd-nixos-system-x-debug"
          }
        }
      }
    }"#;

    fn parse(s: &str) -> Result<Generation> {
        Generation::parse(s.as_bytes(), Path::new("/t/boot.json"))
    }

    #[test]
    fn test_parse_full_document_with_extension_and_specialisation() {
        let g = parse(DOC).unwrap();
        assert_eq!(g.bootspec.kernel, "/nix/store/cccc-linux/bzImage");
        assert_eq!(g.bootspec.kernel_params, ["console=ttyS0", "loglevel=4"]);
        assert_eq!(
            g.bootspec.initrd.as_deref(),
            Some("/nix/store/bbbb-initrd-linux/initrd")
        );
        assert_eq!(g.bootspec.sort_key(), "zz");
        assert!(g.bootspec.extensions.contains_key(SYSTEMD_BOOT_EXT));
        let d = &g.specialisations["debug"];
        assert_eq!(d.initrd, None);
        assert_eq!(d.sort_key(), "nixos");
        assert_eq!(d.kernel_params, ["debug"]);
    }

    #[test]
    fn test_errors_name_file_and_key() {
        let e = parse(&DOC.replace(
            "\"kernel\": \"/nix/store/cccc-linux/bzImage\",\n        \"kernelParams\": [\"console",
            "\"kernelParams\": [\"console",
        ))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let m = e.to_string();
        assert!(
            m.contains("/t/boot.json") && m.contains("\"kernel\": missing"),
            "{m}"
        );

        let e = parse(&DOC.replace("[\"debug\"]", "[1]")).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("\"debug\"") && m.contains("\"kernelParams\"[0]"),
            "{m}"
        );
        let e = parse("{}").unwrap_err();
        assert!(e.to_string().contains("\"org.nixos.bootspec.v1\": missing"));
        assert!(
            parse("[")
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
        let e = parse(&DOC.replace("\"debug\": {", "\"de bug\": {")).unwrap_err();
        assert!(e.to_string().contains("specialisation name"), "{e}");
    }

    #[test]
    fn test_closure_check() {
        let g = parse(DOC).unwrap();
        let mut closure: BTreeSet<String> = [
            "/nix/store/aaaa-nixos-system-x",
            "/nix/store/bbbb-initrd-linux",
            "/nix/store/cccc-linux",
            "/nix/store/dddd-nixos-system-x-debug",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        g.check_closure(&closure).unwrap();
        closure.remove("/nix/store/cccc-linux");
        let e = g.check_closure(&closure).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let m = e.to_string();
        assert!(
            m.contains("\"kernel\"")
                && m.contains("/nix/store/cccc-linux/bzImage")
                && m.contains("not in the closure"),
            "{m}"
        );
    }

    #[test]
    fn test_store_path_of() {
        assert_eq!(
            store_path_of("/nix/store/abc-linux/bzImage"),
            Some("/nix/store/abc-linux")
        );
        assert_eq!(
            store_path_of("/nix/store/abc-linux"),
            Some("/nix/store/abc-linux")
        );
        assert_eq!(store_path_of("/boot/bzImage"), None);
        assert_eq!(store_path_of("/nix/store/"), None);
        assert_eq!(store_path_of("/nix/store/../etc/passwd"), None);
    }

    #[test]
    fn test_load_missing_file_is_missing_kind() {
        let d = tempfile::tempdir().unwrap();
        let e = Generation::load(d.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(e.to_string().contains("boot.json"));
    }
}
