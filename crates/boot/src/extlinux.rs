//! U-Boot's "generic extlinux" boot: what NixOS' `generic-extlinux-compatible` builder
//! (`extlinux-conf-builder.sh`, run by sd-image.nix's `populateRootCommands` as
//! `populateCmd -c <toplevel> -d ./files/boot`) leaves in `/boot` of the root filesystem.
//!
//! ```text
//! boot/extlinux/extlinux.conf            the menu (default entry only: a fresh image has no
//!                                        other generations)
//! boot/nixos/<hash>-<name>-<file>        the kernel and initrd, copied from the store
//! boot/nixos/<hash>-<name>-dtbs/…        the toplevel's `dtbs` directory, when it has one
//! ```
//!
//! The entry's `LINUX`/`INITRD`/`FDTDIR` are relative to `extlinux.conf`
//! (`../nixos/…`); `APPEND` is `init=<toplevel>/init` and the bootspec's `kernelParams`.
//! `TIMEOUT` is in tenths of a second (`boot.loader.timeout * 10`; `0` becomes `-10`, U-Boot's
//! "boot at once", as the builder does). The files are copied (the builder's copy branch), so
//! the image boots even where U-Boot cannot read the store's filesystem layout.

use std::path::Path;

use crate::bootspec::Generation;
use crate::store::Closure;
use crate::{BootFile, Error, ErrorKind, FileSource, Result};

/// Where the builder's `-d` points, relative to the root filesystem.
pub const BOOT_DIR: &str = "boot";

/// The builder's `cleanName`: `/nix/store/<hash>-<name>/<file>` → `<hash>-<name>-<file>`.
#[must_use]
pub fn clean_name(store_path: &str) -> String {
    store_path
        .strip_prefix("/nix/store/")
        .unwrap_or(store_path)
        .replace('/', "-")
}

/// The `TIMEOUT` value for `boot.loader.timeout` seconds.
#[must_use]
pub fn timeout_value(seconds: u32) -> i64 {
    if seconds == 0 {
        -10
    } else {
        i64::from(seconds) * 10
    }
}

/// The files for `generation`, paths relative to the root filesystem
/// (`boot/extlinux/extlinux.conf`, `boot/nixos/…`).
///
/// # Errors
/// `InvalidInput` when the kernel or initrd is not a file of the closure; `Unsupported` for a
/// generation with no initrd (the builder writes no entry then, leaving nothing to boot) or
/// with `initrdSecrets`; `Io` reading the `dtbs` directory.
pub fn install(generation: &Generation, closure: &Closure, timeout: u32) -> Result<Vec<BootFile>> {
    let doc = &generation.bootspec;
    let mut files = Vec::new();
    let mut copy = |path: &str| -> Result<String> {
        let (real, host) = closure.file(path)?;
        let name = clean_name(&real);
        files.push(BootFile {
            path: format!("{BOOT_DIR}/nixos/{name}"),
            source: FileSource::Host(host),
        });
        Ok(format!("../nixos/{name}"))
    };
    let kernel = copy(&doc.kernel)?;
    let initrd_path = doc.initrd.as_deref().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "extlinux: the toplevel {} has no initrd; NixOS' extlinux builder writes no \
                 entry for it",
                doc.toplevel
            ),
        )
    })?;
    if doc.initrd_secrets.is_some() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "initrdSecrets: appending secrets to the initrd would run a script of the closure \
             on the build host and store the secrets in the image; not supported",
        ));
    }
    let initrd = copy(initrd_path)?;
    let dtbs = match closure.realpath(&format!("{}/dtbs", doc.toplevel)) {
        Ok(real) if closure.host(&real).is_dir() => {
            let name = clean_name(&real);
            add_dir(
                &closure.host(&real),
                &format!("{BOOT_DIR}/nixos/{name}"),
                &mut files,
            )?;
            Some(format!("../nixos/{name}"))
        }
        _ => None,
    };

    let mut conf = String::new();
    conf.push_str("# Generated file, all changes will be lost on nixos-rebuild!\n\n");
    conf.push_str(
        "# Change this to e.g. nixos-42 to temporarily boot to an older configuration.\n",
    );
    conf.push_str("DEFAULT nixos-default\n\n");
    conf.push_str("MENU TITLE ------------------------------------------------------------\n");
    conf.push_str(&format!("TIMEOUT {}\n", timeout_value(timeout)));
    conf.push_str("\nLABEL nixos-default\n");
    conf.push_str("  MENU LABEL NixOS - Default\n");
    conf.push_str(&format!("  LINUX {kernel}\n"));
    conf.push_str(&format!("  INITRD {initrd}\n"));
    conf.push_str(&format!(
        "  APPEND init={} {}\n",
        doc.init,
        doc.kernel_params.join(" ")
    ));
    if let Some(d) = dtbs {
        conf.push_str(&format!("  FDTDIR {d}\n"));
    }
    files.push(BootFile {
        path: format!("{BOOT_DIR}/extlinux/extlinux.conf"),
        source: FileSource::Bytes(conf.into_bytes()),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Every file under `dir` (symlinks followed, as the copy reads them), in name order.
fn add_dir(dir: &Path, prefix: &str, out: &mut Vec<BootFile>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list the dtbs directory", e))?;
    let mut entries = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, "list the dtbs directory", e))?;
        entries.push(e.path());
    }
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = format!("{prefix}/{name}");
        if p.is_dir() {
            add_dir(&p, &rel, out)?;
        } else if p.is_file() {
            out.push(BootFile {
                path: rel,
                source: FileSource::Host(p),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn closure_with(dtbs: bool) -> (tempfile::TempDir, Closure, Generation) {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().join("nix/store");
        for (p, f) in [("k1-linux-6.1", "Image"), ("i1-initrd", "initrd")] {
            fs::create_dir_all(s.join(p)).unwrap();
            fs::write(s.join(p).join(f), p).unwrap();
        }
        let top = s.join("t1-top");
        fs::create_dir_all(&top).unwrap();
        let mut paths = vec![
            "/nix/store/k1-linux-6.1".to_string(),
            "/nix/store/i1-initrd".to_string(),
            "/nix/store/t1-top".to_string(),
        ];
        if dtbs {
            fs::create_dir_all(s.join("d1-dtbs/broadcom")).unwrap();
            fs::write(s.join("d1-dtbs/broadcom/bcm2711-rpi-4-b.dtb"), b"dtb").unwrap();
            std::os::unix::fs::symlink("/nix/store/d1-dtbs", top.join("dtbs")).unwrap();
            paths.push("/nix/store/d1-dtbs".into());
        }
        let doc = serde_json::json!({ "org.nixos.bootspec.v1": {
            "init": "/nix/store/t1-top/init", "initrd": "/nix/store/i1-initrd/initrd",
            "kernel": "/nix/store/k1-linux-6.1/Image",
            "kernelParams": ["console=ttyAMA0", "loglevel=4"],
            "label": "NixOS", "system": "aarch64-linux", "toplevel": "/nix/store/t1-top" }});
        fs::write(top.join("boot.json"), doc.to_string()).unwrap();
        let c = Closure::new(tmp.path(), paths);
        let g = Generation::load(&top).unwrap();
        (tmp, c, g)
    }

    fn text(files: &[BootFile], path: &str) -> String {
        match &files.iter().find(|f| f.path == path).unwrap().source {
            FileSource::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
            FileSource::Host(_) => panic!("{path} is a host file"),
        }
    }

    #[test]
    fn test_extlinux_conf_as_the_builder_writes_it() {
        let (_t, c, g) = closure_with(false);
        let files = install(&g, &c, 5).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "boot/extlinux/extlinux.conf",
                "boot/nixos/i1-initrd-initrd",
                "boot/nixos/k1-linux-6.1-Image"
            ]
        );
        assert_eq!(
            text(&files, "boot/extlinux/extlinux.conf"),
            "# Generated file, all changes will be lost on nixos-rebuild!\n\n\
             # Change this to e.g. nixos-42 to temporarily boot to an older configuration.\n\
             DEFAULT nixos-default\n\n\
             MENU TITLE ------------------------------------------------------------\n\
             TIMEOUT 50\n\n\
             LABEL nixos-default\n  MENU LABEL NixOS - Default\n\
             \x20 LINUX ../nixos/k1-linux-6.1-Image\n\
             \x20 INITRD ../nixos/i1-initrd-initrd\n\
             \x20 APPEND init=/nix/store/t1-top/init console=ttyAMA0 loglevel=4\n"
        );
    }

    #[test]
    fn test_dtbs_are_copied_and_named_by_fdtdir() {
        let (_t, c, g) = closure_with(true);
        let files = install(&g, &c, 0).unwrap();
        assert!(
            files
                .iter()
                .any(|f| f.path == "boot/nixos/d1-dtbs/broadcom/bcm2711-rpi-4-b.dtb")
        );
        let conf = text(&files, "boot/extlinux/extlinux.conf");
        assert!(conf.contains("TIMEOUT -10\n"), "{conf}");
        assert!(conf.ends_with("  FDTDIR ../nixos/d1-dtbs\n"), "{conf}");
    }

    #[test]
    fn test_names_and_timeouts() {
        assert_eq!(
            clean_name("/nix/store/abc-linux-6.1/Image"),
            "abc-linux-6.1-Image"
        );
        assert_eq!(timeout_value(0), -10);
        assert_eq!(timeout_value(3), 30);
    }
}
