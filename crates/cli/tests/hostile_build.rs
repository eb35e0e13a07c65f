//! The hostile-input suite, build/output/signal half (issue 14): every case runs the real
//! binary under `ulimit -v` 1 GiB and a timeout (crates/testutil's `hostile` harness), must end
//! with the expected exit status and a message naming the culprit, and must leave nothing in
//! the output directory or `$TMPDIR`, with the victim of the planted symlinks unchanged.

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use imagetool_fixture::Fixture;
use imagetool_testutil::hostile::{Sandbox, check_run};

const OUT: &str = "nixos.img";

/// One case: what it does to the sandbox, the command, and the expected end.
struct Run {
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    code: i32,
    needles: Vec<String>,
    /// Entries the case itself leaves in the output directory (a committed image, the FIFO it
    /// planted).
    allowed: Vec<&'static str>,
    /// Checked after the run.
    after: Option<Box<After>>,
}

/// A check after the run.
type After = dyn Fn(&Sandbox) -> Result<(), String>;

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o600),
        0,
    )
    .unwrap();
}

/// A sparse file of `len` bytes (an oversized input that costs no disk).
fn sparse(p: &Path, len: u64) {
    std::fs::File::create(p).unwrap().set_len(len).unwrap();
}

/// `build` of the fixture with `--output <out>/<name>` and `extra`.
fn build(fx: &Fixture, sb: &Sandbox, name: &str, extra: &[&str]) -> Vec<OsString> {
    let mut v = os(&["build", "--toplevel", &fx.toplevel, "--progress", "plain"]);
    v.extend([
        "--closure-info".into(),
        fx.dir.clone().into_os_string(),
        "--store-root".into(),
        fx.store_root.clone().into_os_string(),
        "--partition".into(),
        "none".into(),
        "--output".into(),
        sb.out_dir.join(name).into_os_string(),
    ]);
    v.extend(os(extra));
    v
}

/// `build` with a references graph file instead of the fixture's closure-info.
fn build_graph(fx: &Fixture, sb: &Sandbox, graph: &Path) -> Vec<OsString> {
    let mut v = os(&["build", "--toplevel", &fx.toplevel, "--references-graph"]);
    v.extend([
        graph.as_os_str().to_owned(),
        "--store-root".into(),
        fx.store_root.clone().into_os_string(),
        "--partition".into(),
        "none".into(),
        "--output".into(),
        sb.out_dir.join(OUT).into_os_string(),
    ]);
    v
}

fn fail(args: Vec<OsString>, code: i32, needles: &[&str]) -> Run {
    Run {
        args,
        env: Vec::new(),
        code,
        needles: needles.iter().map(|s| (*s).to_string()).collect(),
        allowed: Vec::new(),
        after: None,
    }
}

/// A tiny store under the sandbox: `names` as store paths (`/nix/store/<hash>-<name>`),
/// returned with the store root.
fn tiny_store(sb: &Sandbox) -> PathBuf {
    let root = sb.root().join("store-root");
    std::fs::create_dir_all(root.join("nix/store")).unwrap();
    root
}

fn sp(i: u8, name: &str) -> String {
    let c = char::from(b'0' + i);
    format!(
        "/nix/store/{}-{name}",
        std::iter::repeat_n(c, 32).collect::<String>()
    )
}

fn host(root: &Path, store_path: &str) -> PathBuf {
    root.join(store_path.trim_start_matches('/'))
}

/// A plain references graph of `paths`, none referring to another.
fn graph_of(sb: &Sandbox, paths: &[&str]) -> PathBuf {
    let g = sb.root().join("graph");
    let text: String = paths.iter().map(|p| format!("{p}\n\n0\n")).collect();
    std::fs::write(&g, text).unwrap();
    g
}

/// `build` of a tiny store with a bootloader, so the toplevel's bootspec is read.
fn build_tiny(sb: &Sandbox, root: &Path, toplevel: &str, paths: &[&str]) -> Vec<OsString> {
    let g = graph_of(sb, paths);
    let mut v = os(&["build", "--toplevel", toplevel, "--references-graph"]);
    v.extend([
        g.into_os_string(),
        "--store-root".into(),
        root.as_os_str().to_owned(),
        "--partition".into(),
        "efi".into(),
        "--bootloader".into(),
        "systemd-boot".into(),
        "--output".into(),
        sb.out_dir.join(OUT).into_os_string(),
    ]);
    v
}

/// A toplevel directory in `root` whose boot.json is `doc` (a JSON value) or made by `make`.
fn toplevel_with(root: &Path, make: impl FnOnce(&Path)) -> String {
    let top = sp(1, "nixos-system-hostile");
    let dir = host(root, &top);
    std::fs::create_dir_all(&dir).unwrap();
    make(&dir.join("boot.json"));
    top
}

fn bootspec(kernel: &str, initrd: &str, toplevel: &str) -> String {
    serde_json::json!({
        "org.nixos.bootspec.v1": {
            "system": "x86_64-linux",
            "init": format!("{toplevel}/init"),
            "kernel": kernel,
            "kernelParams": [],
            "label": "hostile",
            "initrd": initrd,
            "toplevel": toplevel,
        }
    })
    .to_string()
}

type Setup = fn(&Fixture, &Sandbox) -> Run;

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<(&'static str, Setup)> {
    vec![
        // ── item 2: special outputs are refused and left in place ──
        ("output is a FIFO", |fx, sb| {
            mkfifo(&sb.out_dir.join(OUT));
            Run {
                allowed: vec![OUT],
                after: Some(Box::new(|sb| {
                    let t = std::fs::symlink_metadata(sb.out_dir.join(OUT))
                        .unwrap()
                        .file_type();
                    if t.is_fifo() {
                        Ok(())
                    } else {
                        Err("the FIFO was replaced".into())
                    }
                })),
                ..fail(build(fx, sb, OUT, &[]), 2, &["nixos.img", "is a FIFO"])
            }
        }),
        ("output is a symlink to a character device", |fx, sb| {
            std::os::unix::fs::symlink("/dev/null", sb.out_dir.join(OUT)).unwrap();
            Run {
                allowed: vec![OUT],
                ..fail(
                    build(fx, sb, OUT, &[]),
                    2,
                    &["symlink to a character device", "--output-device"],
                )
            }
        }),
        ("output is a directory", |fx, sb| {
            std::fs::create_dir(sb.out_dir.join(OUT)).unwrap();
            Run {
                allowed: vec![OUT],
                ..fail(build(fx, sb, OUT, &[]), 2, &["nixos.img", "is a directory"])
            }
        }),
        ("output is a socket", |fx, sb| {
            let l = std::os::unix::net::UnixListener::bind(sb.out_dir.join(OUT)).unwrap();
            std::mem::forget(l);
            Run {
                allowed: vec![OUT],
                ..fail(build(fx, sb, OUT, &[]), 2, &["is a socket"])
            }
        }),
        ("output is a character device named directly", |fx, sb| {
            let mut a = build(fx, sb, OUT, &[]);
            let n = a.len();
            a[n - 1] = "/dev/null".into();
            fail(
                a,
                2,
                &["/dev/null", "is a character device", "--output-device"],
            )
        }),
        ("output is a symlink to a FIFO", |fx, sb| {
            mkfifo(&sb.root().join("fifo"));
            std::os::unix::fs::symlink(sb.root().join("fifo"), sb.out_dir.join(OUT)).unwrap();
            Run {
                allowed: vec![OUT],
                ..fail(build(fx, sb, OUT, &[]), 2, &["is a symlink to a FIFO"])
            }
        }),
        ("--output-device on a regular file", |fx, sb| {
            std::fs::write(sb.out_dir.join(OUT), b"keep").unwrap();
            Run {
                allowed: vec![OUT],
                after: Some(Box::new(|sb| {
                    if std::fs::read(sb.out_dir.join(OUT)).unwrap() == b"keep" {
                        Ok(())
                    } else {
                        Err("the file was written".into())
                    }
                })),
                ..fail(
                    build(fx, sb, OUT, &["--output-device"]),
                    2,
                    &["nixos.img", "not a device"],
                )
            }
        }),
        ("--output-device on a missing path", |fx, sb| {
            fail(
                build(fx, sb, OUT, &["--output-device"]),
                1,
                &["nixos.img", "No such file"],
            )
        }),
        ("--output-device with a container format", |fx, sb| {
            let mut a = build(fx, sb, OUT, &["--output-device", "--format", "qcow2"]);
            let i = a.iter().position(|x| x == "--output").unwrap();
            a[i + 1] = "/dev/null".into();
            fail(a, 2, &["/dev/null", "raw only"])
        }),
        ("output directory does not exist", |fx, sb| {
            fail(
                build(fx, sb, "missing/nixos.img", &[]),
                1,
                &["missing/nixos.img", "No such file"],
            )
        }),
        // ── item 1: planted symlinks never redirect the output ──
        ("output name is a symlink to the victim", |fx, sb| {
            std::os::unix::fs::symlink(&sb.victim, sb.out_dir.join(OUT)).unwrap();
            Run {
                allowed: vec![OUT],
                after: Some(Box::new(|sb| {
                    let m = std::fs::symlink_metadata(sb.out_dir.join(OUT)).unwrap();
                    if m.is_file() && m.len() > 1 << 20 {
                        Ok(())
                    } else {
                        Err("the image did not replace the link".into())
                    }
                })),
                ..fail(build(fx, sb, OUT, &[]), 0, &["convert"])
            }
        }),
        // ── item 5: VMDK descriptor injection ──
        ("vmdk output name with a quote", |fx, sb| {
            fail(
                build(fx, sb, "a\".vmdk", &["--format", "vmdk"]),
                2,
                &["a\".vmdk", "must not contain '\"'"],
            )
        }),
        ("vmdk output name with a newline", |fx, sb| {
            fail(
                build(fx, sb, "a\nRW 1 FLAT \"x\".vmdk", &["--format", "vmdk"]),
                2,
                &["must not contain '\\n'"],
            )
        }),
        ("vmdk-stream output name with a quote", |fx, sb| {
            fail(
                build(fx, sb, "b\".vmdk", &["--format", "vmdk-stream"]),
                2,
                &["must not contain '\"'"],
            )
        }),
        ("convert to a vmdk named with a newline", |_fx, sb| {
            let input = sb.root().join("in.raw");
            sparse(&input, 1 << 20);
            let out = sb.out_dir.join("x\ny.vmdk");
            let mut a = os(&["convert", "--format", "vmdk", "--output"]);
            a.push(out.into_os_string());
            a.push(input.into_os_string());
            fail(a, 2, &["must not contain '\\n'"])
        }),
        // ── other subcommands' outputs ──
        ("convert output is a FIFO", |_fx, sb| {
            let input = sb.root().join("in.raw");
            sparse(&input, 1 << 20);
            mkfifo(&sb.out_dir.join(OUT));
            let mut a = os(&["convert", "--format", "qcow2", "--output"]);
            a.push(sb.out_dir.join(OUT).into_os_string());
            a.push(input.into_os_string());
            Run {
                allowed: vec![OUT],
                ..fail(a, 2, &["nixos.img", "is a FIFO"])
            }
        }),
        ("mkfs ext4 output is a FIFO", |_fx, sb| {
            let src = sb.root().join("src");
            std::fs::create_dir(&src).unwrap();
            mkfifo(&sb.out_dir.join(OUT));
            let mut a = os(&["mkfs", "ext4", "--source"]);
            a.push(src.into_os_string());
            a.push("--output".into());
            a.push(sb.out_dir.join(OUT).into_os_string());
            Run {
                allowed: vec![OUT],
                ..fail(a, 2, &["nixos.img", "is a FIFO"])
            }
        }),
        ("mkfs vfat output is a symlink to /dev/null", |_fx, sb| {
            let src = sb.root().join("src");
            std::fs::create_dir(&src).unwrap();
            std::os::unix::fs::symlink("/dev/null", sb.out_dir.join(OUT)).unwrap();
            let mut a = os(&["mkfs", "vfat", "--source"]);
            a.push(src.into_os_string());
            a.push("--output".into());
            a.push(sb.out_dir.join(OUT).into_os_string());
            Run {
                allowed: vec![OUT],
                ..fail(a, 2, &["symlink to a character device"])
            }
        }),
        ("disk output is a FIFO", |_fx, sb| {
            let rootfs = sb.root().join("root.ext4");
            sparse(&rootfs, 8 << 20);
            mkfifo(&sb.out_dir.join(OUT));
            let mut a = os(&["disk", "--root-fs"]);
            a.push(rootfs.into_os_string());
            a.push("--output".into());
            a.push(sb.out_dir.join(OUT).into_os_string());
            Run {
                allowed: vec![OUT],
                ..fail(a, 2, &["nixos.img", "is a FIFO"])
            }
        }),
        // ── items 8 and 10: closure inputs ──
        ("references graph count 2^64-1", |fx, sb| {
            let g = sb.root().join("graph");
            std::fs::write(&g, format!("{}\n\n18446744073709551615\n", fx.toplevel)).unwrap();
            fail(
                build_graph(fx, sb, &g),
                2,
                &["graph:3", "18446744073709551615 references"],
            )
        }),
        (
            "references graph count 2^63 after a valid record",
            |fx, sb| {
                let g = sb.root().join("graph");
                let p = sp(2, "x");
                std::fs::write(
                    &g,
                    format!("{p}\n\n0\n{}\n\n9223372036854775808\n", fx.toplevel),
                )
                .unwrap();
                fail(
                    build_graph(fx, sb, &g),
                    2,
                    &["graph:6", "more than the file has lines"],
                )
            },
        ),
        ("references graph count is negative", |fx, sb| {
            let g = sb.root().join("graph");
            std::fs::write(&g, format!("{}\n\n-1\n", fx.toplevel)).unwrap();
            fail(build_graph(fx, sb, &g), 2, &["graph:3", "is not a number"])
        }),
        ("references graph is a FIFO", |fx, sb| {
            let g = sb.root().join("graph");
            mkfifo(&g);
            fail(build_graph(fx, sb, &g), 2, &["graph", "is a FIFO"])
        }),
        ("references graph is a directory", |fx, sb| {
            let g = sb.root().join("graph");
            std::fs::create_dir(&g).unwrap();
            fail(build_graph(fx, sb, &g), 2, &["graph", "is a directory"])
        }),
        ("references graph is /dev/zero", |fx, sb| {
            fail(
                build_graph(fx, sb, Path::new("/dev/zero")),
                2,
                &["/dev/zero", "is a character device"],
            )
        }),
        ("references graph larger than the limit", |fx, sb| {
            let g = sb.root().join("graph");
            sparse(&g, (64 << 20) + 1);
            fail(
                build_graph(fx, sb, &g),
                2,
                &["graph", "67108865 bytes is more than"],
            )
        }),
        ("references graph JSON nested 100000 deep", |fx, sb| {
            let g = sb.root().join("graph");
            std::fs::write(&g, "[".repeat(100_000)).unwrap();
            fail(build_graph(fx, sb, &g), 2, &["graph", "not valid JSON"])
        }),
        ("references graph not UTF-8", |fx, sb| {
            let g = sb.root().join("graph");
            std::fs::write(&g, b"\xff\xfe/nix/store\n").unwrap();
            fail(build_graph(fx, sb, &g), 2, &["graph", "not UTF-8"])
        }),
        ("registration is a FIFO", |fx, sb| {
            let info = sb.root().join("info");
            std::fs::create_dir(&info).unwrap();
            mkfifo(&info.join("registration"));
            let mut a = build(fx, sb, OUT, &[]);
            let i = a.iter().position(|x| x == "--closure-info").unwrap();
            a[i + 1] = info.into_os_string();
            fail(a, 2, &["info/registration", "is a FIFO"])
        }),
        ("registration larger than the limit", |fx, sb| {
            let info = sb.root().join("info");
            std::fs::create_dir(&info).unwrap();
            sparse(&info.join("registration"), 1 << 30);
            let mut a = build(fx, sb, OUT, &[]);
            let i = a.iter().position(|x| x == "--closure-info").unwrap();
            a[i + 1] = info.into_os_string();
            fail(
                a,
                2,
                &["info/registration", "1073741824 bytes is more than"],
            )
        }),
        ("registration reference count 2^64-1", |fx, sb| {
            let info = sb.root().join("info");
            std::fs::create_dir(&info).unwrap();
            let reg = format!(
                "{}\nsha256:{}\n1\n\n18446744073709551615\n",
                fx.toplevel,
                "0".repeat(52)
            );
            std::fs::write(info.join("registration"), reg).unwrap();
            let mut a = build(fx, sb, OUT, &[]);
            let i = a.iter().position(|x| x == "--closure-info").unwrap();
            a[i + 1] = info.into_os_string();
            fail(a, 2, &["info/registration:6", "not a path"])
        }),
        // ── item 10: spec and attrs ──
        ("--spec is a FIFO", |_fx, sb| {
            let s = sb.root().join("spec.json");
            mkfifo(&s);
            let mut a = os(&["build", "--spec"]);
            a.push(s.into_os_string());
            fail(a, 2, &["spec.json", "is a FIFO"])
        }),
        ("--spec is /dev/zero", |_fx, _sb| {
            fail(
                os(&["build", "--spec", "/dev/zero"]),
                2,
                &["/dev/zero", "is a character device"],
            )
        }),
        ("--spec larger than the limit", |_fx, sb| {
            let s = sb.root().join("spec.json");
            sparse(&s, 100 << 20);
            let mut a = os(&["build", "--spec"]);
            a.push(s.into_os_string());
            fail(a, 2, &["spec.json", "bytes is more than"])
        }),
        ("--spec nested 100000 deep", |_fx, sb| {
            let s = sb.root().join("spec.json");
            std::fs::write(&s, format!("{{\"a\":{}", "[".repeat(100_000))).unwrap();
            let mut a = os(&["build", "--spec"]);
            a.push(s.into_os_string());
            fail(a, 2, &["spec.json"])
        }),
        ("NIX_ATTRS_JSON_FILE is a FIFO", |_fx, sb| {
            let s = sb.root().join(".attrs.json");
            mkfifo(&s);
            Run {
                env: vec![("NIX_ATTRS_JSON_FILE", s.into_os_string())],
                ..fail(os(&["build"]), 2, &[".attrs.json", "is a FIFO"])
            }
        }),
        ("disk --root-fs is a FIFO", |_fx, sb| {
            let f = sb.root().join("root.ext4");
            mkfifo(&f);
            let mut a = os(&["disk", "--root-fs"]);
            a.push(f.into_os_string());
            a.push("--output".into());
            a.push(sb.out_dir.join(OUT).into_os_string());
            fail(a, 2, &["root.ext4", "is a FIFO"])
        }),
        ("disk --root-fs is /dev/zero", |_fx, sb| {
            let mut a = os(&["disk", "--root-fs", "/dev/zero", "--output"]);
            a.push(sb.out_dir.join(OUT).into_os_string());
            fail(a, 2, &["/dev/zero", "is a character device"])
        }),
        // ── item 3: store containment ──
        ("toplevel is a symlink out of the store root", |_fx, sb| {
            let root = tiny_store(sb);
            let outside = sb.root().join("host-etc");
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(outside.join("boot.json"), bootspec("/k", "/i", "/t")).unwrap();
            let top = sp(1, "nixos-system-hostile");
            std::os::unix::fs::symlink(&outside, host(&root, &top)).unwrap();
            let a = build_tiny(sb, &root, &top, &[&top]);
            fail(a, 2, &[&top, "not in the closure"])
        }),
        ("boot.json is a symlink out of the store root", |_fx, sb| {
            let root = tiny_store(sb);
            let outside = sb.root().join("host-boot.json");
            std::fs::write(&outside, "{}").unwrap();
            let top = toplevel_with(&root, |p| std::os::unix::fs::symlink(&outside, p).unwrap());
            let a = build_tiny(sb, &root, &top, &[&top]);
            fail(a, 2, &["boot.json", "not in the closure"])
        }),
        ("boot.json is a FIFO", |_fx, sb| {
            let root = tiny_store(sb);
            let top = toplevel_with(&root, mkfifo);
            let a = build_tiny(sb, &root, &top, &[&top]);
            // Scanned first (the store is read as a NAR records it): refused by name.
            fail(a, 2, &["boot.json", "FIFO"])
        }),
        ("boot.json larger than the limit", |_fx, sb| {
            let root = tiny_store(sb);
            let top = toplevel_with(&root, |p| sparse(p, 17 << 20));
            let a = build_tiny(sb, &root, &top, &[&top]);
            fail(a, 2, &["boot.json", "bytes is more than"])
        }),
        ("bootspec kernel escapes the store through ..", |_fx, sb| {
            let root = tiny_store(sb);
            let top = sp(1, "nixos-system-hostile");
            let k = "/nix/store/../../etc/passwd".to_string();
            let doc = bootspec(&k, &k, &top);
            let top = toplevel_with(&root, |p| std::fs::write(p, doc).unwrap());
            let a = build_tiny(sb, &root, &top, &[&top]);
            fail(a, 2, &["/etc/passwd"])
        }),
        (
            "bootspec kernel is a symlink out of the store",
            |_fx, sb| {
                let root = tiny_store(sb);
                let top = sp(1, "nixos-system-hostile");
                let kdir = sp(2, "linux");
                std::fs::create_dir_all(host(&root, &kdir)).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", host(&root, &kdir).join("bzImage"))
                    .unwrap();
                let k = format!("{kdir}/bzImage");
                let doc = bootspec(&k, &k, &top);
                let top = toplevel_with(&root, |p| std::fs::write(p, doc).unwrap());
                // A systemd-boot for the installer to find (never run: only copied).
                let sd = sp(3, "systemd");
                let efi = host(&root, &sd).join("lib/systemd/boot/efi");
                std::fs::create_dir_all(&efi).unwrap();
                std::fs::write(efi.join("systemd-bootx64.efi"), b"MZ not really").unwrap();
                let a = build_tiny(sb, &root, &top, &[&top, &kdir, &sd]);
                fail(a, 2, &["bzImage", "/etc/passwd", "not in the closure"])
            },
        ),
        // ── item 9: stdout ──
        ("stdout is /dev/full", |fx, sb| {
            // The image is in place; the report that could not be written is an error.
            Run {
                allowed: vec![OUT],
                ..fail(
                    build(fx, sb, OUT, &[]),
                    1,
                    &["writing the report to stdout", "No space left"],
                )
            }
        }),
        ("$TMPDIR does not exist", |fx, sb| {
            let missing = sb.root().join("no-such-tmp");
            Run {
                env: vec![("TMPDIR", missing.into_os_string())],
                allowed: vec![OUT],
                after: Some(Box::new(|sb| {
                    if sb.root().join("no-such-tmp").exists() {
                        Err("$TMPDIR was created".into())
                    } else {
                        Ok(())
                    }
                })),
                ..fail(build(fx, sb, OUT, &[]), 0, &["convert"])
            }
        }),
    ]
}

#[test]
fn test_hostile_build_inputs_end_cleanly_and_leave_nothing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_imagetool"));
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 35, "{} cases", all.len());
    for (name, setup) in all {
        let sb = Sandbox::new(OUT);
        let run = setup(&fx, &sb);
        let out = if name == "stdout is /dev/full" {
            let mut a: Vec<OsString> =
                vec!["-c".into(), "exec \"$@\" >/dev/full".into(), "sh".into()];
            a.push(bin.clone().into_os_string());
            a.extend(run.args.iter().cloned());
            sb.run(Path::new("/bin/sh"), &a, &run.env)
        } else {
            sb.run(&bin, &run.args, &run.env)
        };
        let needles: Vec<&str> = run.needles.iter().map(String::as_str).collect();
        let mut why = Vec::new();
        if let Err(e) = check_run(&out, run.code, &needles) {
            why.push(e);
        }
        let left = sb.leftovers(&run.allowed);
        if !left.is_empty() {
            why.push(format!("left behind: {left:?}"));
        }
        if let Some(after) = &run.after
            && let Err(e) = after(&sb)
        {
            why.push(e);
        }
        if !why.is_empty() {
            failures.push(format!("[{name}] {}", why.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
