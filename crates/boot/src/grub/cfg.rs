//! `grub.cfg` as NixOS's install-grub.pl writes it.
//!
//! The text follows install-grub.pl (nixpkgs `nixos/modules/system/boot/loader/grub/`) for
//! `fsIdentifier = "uuid"`, no users, fonts, splash image or theme: the header comment, the
//! store and boot `search` lines, the grubenv / `next_entry` / `savedefault` block with
//! `default` and `timeout`, the graphics stack, `extraConfig`, then `"NixOS - Default"`, one
//! entry per specialisation and the `"NixOS - All configurations"` submenu. Drive variables
//! are numbered as install-grub.pl numbers them: the filesystem holding `/boot` is `drive1`,
//! the one holding `/nix/store` (when the kernels are not copied to `/boot`) `drive2`.

use crate::error::{Error, ErrorKind, Result};

/// One boot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    /// The title (`NixOS - Default`, `NixOS - Configuration 1 (1970-01-01 - 25.11…)`).
    pub title: String,
    /// The kernel as GRUB reads it: `($drive2)/nix/store/…/bzImage` or
    /// `($drive1)//kernels/…-bzImage` (see [`GrubConfig::store_file`], [`copied_kernel_name`]).
    pub kernel: String,
    /// The initrds, as GRUB reads them (usually one).
    pub initrds: Vec<String>,
    /// The absolute init path (`<toplevel>/init`), written as `init=…`.
    pub init: String,
    /// The kernel parameters after `init=` (the toplevel's `kernel-params`, space-separated).
    pub params: String,
}

/// Everything grub.cfg says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubConfig {
    /// UUID of the filesystem holding `/boot` (`drive1`).
    pub boot_fs_uuid: String,
    /// UUID of the filesystem holding `/nix/store` (`drive2`), or `None` when the kernels are
    /// copied to `/boot/kernels` (install-grub.pl's `copyKernels`).
    pub store_fs_uuid: Option<String>,
    /// `set default=…` (NixOS: `0`).
    pub default: String,
    /// `set timeout=…` in seconds; `None` waits for a key (`-1`). NixOS's default is 5; 0
    /// boots the default entry at once.
    pub timeout: Option<u32>,
    /// Options of the default entry (NixOS: `--class nixos --unrestricted`).
    pub entry_options: String,
    /// Options of the entries in the configurations submenu (NixOS: `--class nixos`).
    pub sub_entry_options: String,
    /// `boot.loader.grub.extraConfig`, written after the header.
    pub extra_config: String,
    /// `NixOS - Default`.
    pub default_entry: MenuEntry,
    /// One entry per specialisation, in name order (written with no options, as NixOS does).
    pub specialisations: Vec<MenuEntry>,
    /// The submenu `NixOS - All configurations`, newest first.
    pub configurations: Vec<MenuEntry>,
}

impl GrubConfig {
    /// A configuration with NixOS's defaults (default 0, timeout 5, entry options) and one
    /// entry, also listed as configuration 1 in the submenu.
    #[must_use]
    pub fn new(boot_fs_uuid: &str, store_fs_uuid: Option<&str>, default_entry: MenuEntry) -> Self {
        Self {
            boot_fs_uuid: boot_fs_uuid.to_string(),
            store_fs_uuid: store_fs_uuid.map(str::to_string),
            default: "0".to_string(),
            timeout: Some(5),
            entry_options: "--class nixos --unrestricted".to_string(),
            sub_entry_options: "--class nixos".to_string(),
            extra_config: String::new(),
            default_entry,
            specialisations: Vec::new(),
            configurations: Vec::new(),
        }
    }

    /// A store file as GRUB reads it when the kernels are not copied:
    /// `/nix/store/x/bzImage` → `($drive2)/nix/store/x/bzImage`.
    #[must_use]
    pub fn store_file(store_file: &str) -> String {
        format!("($drive2){store_file}")
    }

    fn boot_search(&self) -> String {
        format!("search --set=drive1 --fs-uuid {}", self.boot_fs_uuid)
    }

    fn store_search(&self) -> Option<String> {
        self.store_fs_uuid
            .as_ref()
            .map(|u| format!("search --set=drive2 --fs-uuid {u}"))
    }
}

/// The name install-grub.pl gives a copied kernel or initrd in `/boot/kernels`: the store
/// path below `/nix/store/` with `/` replaced by `-` (`/nix/store/abc-linux-6.6/bzImage` →
/// `abc-linux-6.6-bzImage`). `None` for a path outside `/nix/store/`.
#[must_use]
pub fn copied_kernel_name(store_file: &str) -> Option<String> {
    let rest = store_file.strip_prefix("/nix/store/")?;
    (!rest.is_empty()).then(|| rest.replace('/', "-"))
}

fn check_line(what: &str, s: &str) -> Result<()> {
    if s.contains(['\n', '\r']) {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("grub.cfg: {what} {s:?} contains a line break"),
        ))
    } else {
        Ok(())
    }
}

fn check_uuid(what: &str, s: &str) -> Result<()> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("grub.cfg: {what} {s:?} is not hex digits and dashes"),
        ))
    }
}

/// A menu title in GRUB's double quotes (`\`, `"` and `$` escaped).
fn quote(title: &str) -> String {
    let mut q = String::with_capacity(title.len() + 2);
    q.push('"');
    for c in title.chars() {
        if matches!(c, '\\' | '"' | '$') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn entry(conf: &mut String, cfg: &GrubConfig, e: &MenuEntry, options: &str) -> Result<()> {
    for (what, s) in [
        ("title", &e.title),
        ("kernel", &e.kernel),
        ("init", &e.init),
        ("kernel parameters", &e.params),
    ] {
        check_line(what, s)?;
    }
    for i in &e.initrds {
        check_line("initrd", i)?;
    }
    if e.kernel.is_empty() || e.initrds.is_empty() || e.init.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "grub.cfg: entry {:?} needs a kernel, an initrd and an init",
                e.title
            ),
        ));
    }
    conf.push_str(&format!("menuentry {} {options} {{\n", quote(&e.title)));
    conf.push_str(&cfg.boot_search());
    conf.push('\n');
    if let Some(s) = cfg.store_search() {
        conf.push_str(&s);
        conf.push('\n');
    }
    conf.push_str(&format!(
        "  linux {} init={} {}\n",
        e.kernel, e.init, e.params
    ));
    conf.push_str(&format!("  initrd {}\n", e.initrds.join(" ")));
    conf.push_str("}\n\n");
    Ok(())
}

/// The text of `grub.cfg`.
///
/// # Errors
/// `InvalidInput` for a UUID that is not hex digits and dashes, a line break in any field,
/// or an entry without kernel, initrd or init.
pub fn grub_cfg(cfg: &GrubConfig) -> Result<String> {
    check_uuid("boot filesystem UUID", &cfg.boot_fs_uuid)?;
    if let Some(u) = &cfg.store_fs_uuid {
        check_uuid("store filesystem UUID", u)?;
    }
    for (what, s) in [
        ("default", &cfg.default),
        ("entry options", &cfg.entry_options),
        ("submenu entry options", &cfg.sub_entry_options),
    ] {
        check_line(what, s)?;
    }
    let timeout = cfg
        .timeout
        .map_or_else(|| "-1".to_string(), |t| t.to_string());
    let mut conf = String::from("# Automatically generated.  DO NOT EDIT THIS FILE!\n");
    if let Some(s) = cfg.store_search() {
        conf.push_str("\n            ");
        conf.push_str(&s);
    }
    conf.push_str("\n        ");
    conf.push_str(&cfg.boot_search());
    conf.push_str(&format!(
        r#"
        if [ -s $prefix/grubenv ]; then
          load_env
        fi

        # ‘grub-reboot’ sets a one-time saved entry, which we process here and
        # then delete.
        if [ "${{next_entry}}" ]; then
          set default="${{next_entry}}"
          set next_entry=
          save_env next_entry
          set timeout=1
          set boot_once=true
        else
          set default={default}
          set timeout={timeout}
        fi

        function savedefault {{
            if [ -z "${{boot_once}}"]; then
            saved_entry="${{chosen}}"
            save_env saved_entry
            fi
        }}

        # Setup the graphics stack for bios and efi systems
        if [ "${{grub_platform}}" = "efi" ]; then
          insmod efi_gop
          insmod efi_uga
        else
          insmod vbe
        fi
    "#,
        default = cfg.default
    ));
    conf.push_str(&cfg.extra_config);
    conf.push('\n');
    conf.push('\n');
    entry(&mut conf, cfg, &cfg.default_entry, &cfg.entry_options)?;
    for s in &cfg.specialisations {
        entry(&mut conf, cfg, s, "")?;
    }
    conf.push_str("submenu \"NixOS - All configurations\" --class submenu {\n");
    for c in &cfg.configurations {
        entry(&mut conf, cfg, c, &cfg.sub_entry_options)?;
    }
    conf.push_str("}\n");
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(title: &str, n: u32) -> MenuEntry {
        MenuEntry {
            title: title.to_string(),
            kernel: GrubConfig::store_file(&format!("/nix/store/k{n}-linux/bzImage")),
            initrds: vec![GrubConfig::store_file(&format!(
                "/nix/store/i{n}-initrd/initrd"
            ))],
            init: format!("/nix/store/t{n}-nixos-system/init"),
            params: "console=ttyS0 panic=-1".to_string(),
        }
    }

    /// A small reader for what grub_cfg writes: (menuentry title, linux line, initrd line,
    /// search lines, inside-submenu) per entry.
    #[derive(Debug)]
    struct Parsed {
        title: String,
        linux: String,
        initrd: String,
        searches: Vec<String>,
        in_submenu: bool,
    }

    fn parse(text: &str) -> Vec<Parsed> {
        let mut out = Vec::new();
        let mut in_submenu = false;
        let mut cur: Option<Parsed> = None;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("submenu ") {
                in_submenu = true;
            } else if let Some(rest) = t.strip_prefix("menuentry \"") {
                let mut title = String::new();
                let mut chars = rest.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => title.push(chars.next().unwrap()),
                        '"' => break,
                        c => title.push(c),
                    }
                }
                cur = Some(Parsed {
                    title,
                    linux: String::new(),
                    initrd: String::new(),
                    searches: Vec::new(),
                    in_submenu,
                });
            } else if let Some(p) = cur.as_mut() {
                if let Some(l) = t.strip_prefix("linux ") {
                    p.linux = l.to_string();
                } else if let Some(l) = t.strip_prefix("initrd ") {
                    p.initrd = l.to_string();
                } else if t.starts_with("search ") {
                    p.searches.push(t.to_string());
                } else if t == "}" {
                    out.push(cur.take().unwrap());
                }
            } else if t == "}" {
                in_submenu = false;
            }
        }
        out
    }

    #[test]
    fn test_structure_of_a_nixos_grub_cfg() {
        let mut cfg = GrubConfig::new("b-1", Some("5-2"), e("NixOS - Default", 1));
        cfg.specialisations
            .push(e("NixOS - (debug - 1970-01-01 - 25.11)", 2));
        cfg.configurations
            .push(e("NixOS - Configuration 1 (1970-01-01 - 25.11)", 1));
        let text = grub_cfg(&cfg).unwrap();
        assert!(text.starts_with("# Automatically generated.  DO NOT EDIT THIS FILE!\n\n            search --set=drive2 --fs-uuid 5-2\n        search --set=drive1 --fs-uuid b-1\n        if [ -s $prefix/grubenv ]; then\n          load_env\n        fi\n"), "{text}");
        assert!(text.contains("\n          set default=0\n          set timeout=5\n"));
        assert!(text.contains("if [ \"${next_entry}\" ]; then"));
        assert!(text.contains("menuentry \"NixOS - Default\" --class nixos --unrestricted {\nsearch --set=drive1 --fs-uuid b-1\nsearch --set=drive2 --fs-uuid 5-2\n  linux ($drive2)/nix/store/k1-linux/bzImage init=/nix/store/t1-nixos-system/init console=ttyS0 panic=-1\n  initrd ($drive2)/nix/store/i1-initrd/initrd\n}\n\n"), "{text}");
        assert!(text.contains("menuentry \"NixOS - (debug - 1970-01-01 - 25.11)\"  {\n"));
        assert!(text.ends_with("submenu \"NixOS - All configurations\" --class submenu {\nmenuentry \"NixOS - Configuration 1 (1970-01-01 - 25.11)\" --class nixos {\nsearch --set=drive1 --fs-uuid b-1\nsearch --set=drive2 --fs-uuid 5-2\n  linux ($drive2)/nix/store/k1-linux/bzImage init=/nix/store/t1-nixos-system/init console=ttyS0 panic=-1\n  initrd ($drive2)/nix/store/i1-initrd/initrd\n}\n\n}\n"), "{text}");

        let p = parse(&text);
        let titles: Vec<&str> = p.iter().map(|x| x.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "NixOS - Default",
                "NixOS - (debug - 1970-01-01 - 25.11)",
                "NixOS - Configuration 1 (1970-01-01 - 25.11)"
            ]
        );
        assert_eq!(
            p.iter().map(|x| x.in_submenu).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            p[1].linux,
            "($drive2)/nix/store/k2-linux/bzImage init=/nix/store/t2-nixos-system/init console=ttyS0 panic=-1"
        );
        assert_eq!(p[1].initrd, "($drive2)/nix/store/i2-initrd/initrd");
        assert!(p.iter().all(|x| x.searches.len() == 2));
    }

    #[test]
    fn test_copied_kernels_have_no_store_search_and_timeout_variants() {
        let mut d = e("NixOS - Default", 1);
        d.kernel = format!(
            "($drive1)//kernels/{}",
            copied_kernel_name("/nix/store/k1-linux/bzImage").unwrap()
        );
        d.initrds = vec![format!(
            "($drive1)//kernels/{}",
            copied_kernel_name("/nix/store/i1-initrd/initrd").unwrap()
        )];
        let mut cfg = GrubConfig::new("ABCD-1234", None, d);
        cfg.timeout = Some(0);
        let text = grub_cfg(&cfg).unwrap();
        assert!(!text.contains("drive2"), "{text}");
        assert!(text.contains("set timeout=0\n"));
        assert!(text.contains("linux ($drive1)//kernels/k1-linux-bzImage init="));
        let p = parse(&text);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].searches, ["search --set=drive1 --fs-uuid ABCD-1234"]);
        cfg.timeout = None;
        assert!(grub_cfg(&cfg).unwrap().contains("set timeout=-1\n"));
    }

    #[test]
    fn test_titles_are_quoted() {
        let cfg = GrubConfig::new("b", None, e("NixOS - \"x\" $y \\z", 1));
        let text = grub_cfg(&cfg).unwrap();
        assert!(
            text.contains(r#"menuentry "NixOS - \"x\" \$y \\z" --class"#),
            "{text}"
        );
        assert_eq!(parse(&text)[0].title, "NixOS - \"x\" $y \\z");
    }

    #[test]
    fn test_bad_fields_are_refused() {
        let mut bad = e("NixOS - Default", 1);
        bad.params.push_str("\nreboot");
        let err = grub_cfg(&GrubConfig::new("b", None, bad)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = grub_cfg(&GrubConfig::new("b c", None, e("x", 1))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let mut no_initrd = e("x", 1);
        no_initrd.initrds.clear();
        let err = grub_cfg(&GrubConfig::new("b", None, no_initrd)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn test_copied_kernel_name() {
        assert_eq!(
            copied_kernel_name("/nix/store/abc-linux-6.6/bzImage").as_deref(),
            Some("abc-linux-6.6-bzImage")
        );
        assert_eq!(copied_kernel_name("/boot/bzImage"), None);
        assert_eq!(copied_kernel_name("/nix/store/"), None);
    }
}
