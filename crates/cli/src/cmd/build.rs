//! `imagetool build`: a NixOS closure to a disk image (make-disk-image without the VM).
//!
//! The settings come from flags, from `--spec FILE.json` (make-disk-image's argument names), or
//! from a Nix build's structured attributes (`--spec .attrs.json`, or `$NIX_ATTRS_JSON_FILE`
//! when no settings are given at all). Flags and JSON fill the same [`Spec`], so the same
//! settings give the same image either way.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use imagetool::build::{BuildReport, build_cancellable};
use imagetool::nix::root::Content;
use imagetool::spec::{ContentSpec, Spec, SpecFile, StructuredAttrs};

use super::build_progress::{Bars, Json, Plain, ProgressMode, Quiet, emit};
use super::usage;

/// The flags `--spec` excludes (the settings a spec carries).
const SETTINGS: &[&str] = &[
    "toplevel",
    "closure_info",
    "references_graph",
    "store_root",
    "additional_paths",
    "verify_closure",
    "no_verify",
    "partition",
    "disk_size",
    "additional_space",
    "boot_size",
    "boot_size_rounding",
    "root_guid",
    "seed",
    "label",
    "root_fs_uuid",
    "config_file",
    "contents",
    "channel",
    "only_nix_store",
    "bootloader",
    "format",
    "compression",
    "variant",
    "archive_compression",
    "firmware_dir",
    "raw_write",
    "sd_bootable",
];

/// Arguments of `build`.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  imagetool build --toplevel /nix/store/…-nixos-system-… --closure-info ./closure-info \\
      --store-root / --partition efi --disk-size auto --format qcow2 --output nixos.qcow2
  imagetool build --spec image.json --output nixos.img
  imagetool build --variant amazon --toplevel … --closure-info … --output out/
  imagetool build --format iso --toplevel … --closure-info … --output nixos.iso")]
pub struct Args {
    /// Every setting from a JSON file with make-disk-image's argument names, or a Nix build's
    /// structured attributes (.attrs.json). Excludes the other settings flags; --output,
    /// --threads and --progress still apply.
    #[arg(long, conflicts_with_all = SETTINGS)]
    spec: Option<PathBuf>,
    /// The system toplevel store path (config.system.build.toplevel).
    #[arg(long)]
    toplevel: Option<String>,
    /// A closureInfo output directory (store-paths + registration).
    #[arg(long, conflicts_with = "references_graph")]
    closure_info: Option<PathBuf>,
    /// An exportReferencesGraph file (plain, or structured-attrs JSON).
    #[arg(long)]
    references_graph: Option<PathBuf>,
    /// The directory holding nix/store with the closure's contents.
    #[arg(long, default_value = "/")]
    store_root: PathBuf,
    /// An extra store path for the image, with everything it refers to (repeatable).
    #[arg(long = "additional-path")]
    additional_paths: Vec<String>,
    /// Recompute every NAR hash of the closure; fail on a mismatch.
    #[arg(long)]
    verify_closure: bool,
    /// Do not check the store against the registration while reading it (NAR hash and size
    /// of every path) nor that no file read changed during the build.
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    layout: super::layout_args::LayoutArgs,
    /// Root filesystem label (default nixos; nix-store with --only-nix-store).
    #[arg(long)]
    label: Option<String>,
    /// The ext4 UUID (make-disk-image's rootFSUID; default: the root partition GUID).
    #[arg(long)]
    root_fs_uuid: Option<String>,
    /// Copied to /etc/nixos/configuration.nix.
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// SOURCE:TARGET[:MODE[:USER:GROUP]] copied into the image (repeatable; `*` globs).
    #[arg(long = "contents")]
    contents: Vec<String>,
    /// A channel store path for root's channels profile.
    #[arg(long)]
    channel: Option<String>,
    /// The image is the contents of /nix/store only (label nix-store).
    #[arg(long)]
    only_nix_store: bool,
    /// Bootloader: auto (systemd-boot for EFI when the closure has it, else GRUB; GRUB for
    /// BIOS; extlinux for sd-card; none for --partition none), systemd-boot, grub, extlinux
    /// or none.
    /// [default: auto]
    #[arg(long)]
    bootloader: Option<String>,
    /// raw, qcow2, qcow2-compressed, vdi, vpc, vhd-fixed, vhdx, vmdk, vmdk-stream, or iso (the
    /// live/installer ISO; with --compression zstd an .iso.zst) [default: raw, or the
    /// variant's]. Comma-separated (`qcow2,vhdx`) writes each from one plan, the others next to
    /// --output with their own extension.
    #[arg(long)]
    format: Option<String>,
    /// Build a nixpkgs image variant (`imagetool variants` lists them): its module's table,
    /// format, sizes and packaging are the defaults, and --output is the directory ($out) that
    /// receives the artifact under the module's name.
    #[arg(long)]
    variant: Option<String>,
    /// The codec of a variant's compressed package: gzip, bzip2, zstd or xz.
    #[arg(long, requires = "variant")]
    archive_compression: Option<String>,
    /// --format iso: a store squashfs made elsewhere (the closure's store paths and
    /// nix-path-registration) [default: written natively, as make-squashfs.nix lays it out].
    #[arg(long)]
    store_image: Option<PathBuf>,
    /// --format iso: the native store image's compressor: gzip, xz, lz4 or zstd [default: zstd,
    /// upstream's isoImage.squashfsCompression].
    #[arg(long)]
    squashfs_comp: Option<String>,
    /// --format iso: the native store image's compression level [default: 19 for zstd, else the
    /// compressor's default].
    #[arg(long)]
    squashfs_level: Option<u32>,
    /// --format iso: the volume ID (default nixos-<release>-<arch>), the label stage 1 finds.
    #[arg(long)]
    volume_id: Option<String>,
    /// --format iso: the boot menu timeout in seconds (default 10, as upstream; 0 boots at once).
    #[arg(long)]
    menu_timeout: Option<u32>,
    /// Codec of qcow2-compressed: deflate or zstd.
    #[arg(long)]
    compression: Option<String>,
    /// --partition sd-card: copy this directory's files into the FIRMWARE partition.
    #[arg(long)]
    firmware_dir: Option<PathBuf>,
    /// Write FILE raw into the disk at byte OFFSET (U-Boot, an SPL), as FILE@OFFSET;
    /// repeatable.
    #[arg(long, value_name = "FILE@OFFSET")]
    raw_write: Vec<String>,
    /// --partition sd-card: the partition marked bootable, firmware (sd-image.nix's) or root
    /// (U-Boot's distro boot then finds /boot/extlinux on the root).
    #[arg(long)]
    sd_bootable: Option<String>,
    /// touchEFIVars: also write the OVMF variable store efi-vars.fd beside the image (in the
    /// output directory with --variant), holding the boot entry the bootloader's installer
    /// registers (tables hybrid, efi, efixbootldr, legacy+gpt).
    #[arg(long)]
    touch_efi_vars: bool,
    /// efiVariables: the OVMF variable file efi-vars.fd starts from (e.g.
    /// /usr/share/OVMF/OVMF_VARS_4M.fd) [default: an empty store of the OVMF 4 MiB layout].
    #[arg(long, value_name = "FILE", requires = "touch_efi_vars")]
    efi_vars_template: Option<PathBuf>,
    /// Data-copy and compression threads (0: one per core); never changes the output.
    #[arg(long)]
    threads: Option<usize>,
    /// The image file to write (with --spec: overrides the spec's `output`).
    #[arg(long)]
    output: Option<PathBuf>,
    /// --output names an existing block or character device to write the raw image to, in
    /// place (no temporary, no rename; a failed or interrupted build leaves the device partly
    /// written). Without it, an existing output that is not a regular file is refused.
    #[arg(long)]
    output_device: bool,
    /// Write a JSON manifest of the outputs (file, format, variant, sizes, sha256, partitions
    /// with their GUIDs) to this file.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// How progress is shown: bar (default on a terminal), plain (one line per phase with
    /// sizes and times: the default otherwise, e.g. in a Nix build log), json (one object per
    /// event on stdout) or none.
    #[arg(long, value_enum)]
    progress: Option<ProgressMode>,
    /// Print the build report as one JSON document on stdout (schema
    /// docs/imagetool-output.schema.json); progress stays on stderr.
    #[arg(long)]
    json: bool,
    /// Plan the image and print the plan (partitions, filesystem sizes, what goes where)
    /// without writing anything; the store is listed, not hashed.
    #[arg(long, conflicts_with = "manifest")]
    dry_run: bool,
}

impl Args {
    /// The spec the flags describe.
    fn flags_spec(&self) -> Result<Spec> {
        let contents = self
            .contents
            .iter()
            .map(|c| {
                let c = Content::parse(c).map_err(|e| usage!("--contents {c:?}: {e}"))?;
                let (user, group) = c.owner.map_or((None, None), |(u, g)| (Some(u), Some(g)));
                Ok(ContentSpec {
                    source: c.source,
                    target: c.target,
                    mode: c.mode.map(|m| format!("{m:o}")),
                    user,
                    group,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let base = match &self.variant {
            Some(v) => Spec::from_json(&serde_json::json!({ "variant": v }).to_string())?,
            None => Spec::default(),
        };
        let mut spec = Spec {
            toplevel: self.toplevel.clone(),
            closure_info: self.closure_info.clone(),
            references_graph: self.references_graph.clone(),
            store_root: Some(self.store_root.clone()),
            additional_paths: self.additional_paths.clone(),
            verify_closure: self.verify_closure,
            verify: !self.no_verify,
            label: self.label.clone(),
            root_fsuid: self.root_fs_uuid.clone(),
            config_file: self.config_file.clone(),
            contents,
            channel: self.channel.clone(),
            only_nix_store: self.only_nix_store,
            bootloader: Some(self.bootloader.clone().unwrap_or_else(|| "auto".into())),
            format: self.format.clone().unwrap_or(base.format.clone()),
            compression: self.compression.clone(),
            output: self.output.clone(),
            archive_compression: self.archive_compression.clone(),
            firmware_dir: self.firmware_dir.clone(),
            raw_writes: self.raw_write.clone(),
            sd_bootable: self.sd_bootable.clone(),
            touch_efi_vars: self.touch_efi_vars,
            efi_variables: self
                .efi_vars_template
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            ..base
        };
        self.layout.fill_spec(&mut spec)?;
        Ok(spec)
    }

    /// `--progress`, or its default for where stderr goes and `-q`/`-v`.
    fn progress_mode(&self) -> ProgressMode {
        self.progress.unwrap_or(match super::verbosity() {
            super::Verbosity::Quiet => ProgressMode::None,
            super::Verbosity::Verbose => ProgressMode::Plain,
            super::Verbosity::Normal if std::io::stderr().is_terminal() => ProgressMode::Bar,
            super::Verbosity::Normal => ProgressMode::Plain,
        })
    }

    /// The ISO command's arguments (`--format iso` from flags).
    fn iso_args(self) -> super::iso::IsoArgs {
        super::iso::IsoArgs {
            toplevel: self.toplevel,
            closure_info: self.closure_info,
            references_graph: self.references_graph,
            store_root: self.store_root,
            output: self.output,
            volume_id: self.volume_id,
            store_image: self.store_image,
            squashfs_comp: self.squashfs_comp,
            squashfs_level: self.squashfs_level,
            compression: self.compression,
            timeout: self.menu_timeout,
            json: self.json,
        }
    }

    /// Whether any settings flag was given (then `$NIX_ATTRS_JSON_FILE` is not used).
    fn has_settings(&self) -> bool {
        self.toplevel.is_some() || self.closure_info.is_some() || self.references_graph.is_some()
    }
}

/// Where the settings came from.
enum Source {
    Flags,
    Spec,
    Attrs(Box<StructuredAttrs>),
}

pub fn run(a: Args) -> Result<()> {
    // 1. Checks that need no input.
    check_flags(&a)?;
    // 2. An ISO from flags has its own command.
    if a.format.as_deref() == Some("iso") && a.spec.is_none() {
        return super::iso::run(a.iso_args());
    }
    // 3. The settings: flags, a spec file or a Nix build's structured attributes.
    let (spec, source) = settings(&a)?;
    // 4. A variant: its own artifacts.
    if spec.variant.is_some() {
        let out_dir = match &source {
            Source::Attrs(attrs) => attrs.out.clone(),
            _ => spec
                .output
                .clone()
                .ok_or_else(|| usage!("--output DIR is required with --variant"))?,
        };
        return super::variants::run_build(
            &spec,
            &out_dir,
            a.progress_mode(),
            a.manifest.as_deref(),
            a.json,
        );
    }
    // 5. The image: planned only (--dry-run) or built.
    let mut image = spec
        .resolve(super::source_date_epoch()?)
        .map_err(|e| match source {
            Source::Flags => name_flag(e),
            _ => e.into(),
        })?;
    if a.output_device {
        image.format_options.output_mode = imagetool::blockio::OutputMode::Device;
    }
    let mode = a.progress_mode();
    if a.dry_run {
        return dry_run(&image, mode, a.json);
    }
    super::cancel_on_signals()?;
    let cancel = super::cancel();
    let output = image.output.clone();
    let result = match mode {
        ProgressMode::Plain => build_cancellable(&image, &mut Plain::default(), cancel),
        ProgressMode::Bar => build_cancellable(&image, &mut Bars::default(), cancel),
        ProgressMode::Json => build_cancellable(&image, &mut Json, cancel),
        ProgressMode::None => build_cancellable(&image, &mut Quiet, cancel),
    };
    let report = result.with_context(|| format!("building {}", output.display()))?;
    // 6. What the build leaves beside the image, and the report.
    if let Source::Attrs(attrs) = &source {
        attrs.write_build_products()?;
    }
    if let Some(path) = &a.manifest {
        write_manifest(&image, &report, path)?;
    }
    if a.json {
        super::json_out("build", report.to_json())
    } else if mode == ProgressMode::Json {
        emit(&report_json(&report));
        Ok(())
    } else {
        super::out(format_args!(
            "{}: {} {} table, {} MiB, {} store paths",
            report.output.display(),
            report.format,
            report.layout.table,
            report.disk_size >> 20,
            report.store_paths
        ))
    }
}

/// The checks of the flags alone, before any input is read.
fn check_flags(a: &Args) -> Result<()> {
    if a.json && a.progress == Some(ProgressMode::Json) {
        return Err(usage!(
            "--json and --progress json both write to stdout: give one (--progress json ends \
             with a \"done\" event)"
        ));
    }
    if let Some(o) = &a.output
        && a.variant.is_none()
        && !a.output_device
    {
        super::check_output_dir("--output", o)?;
    }
    if a.dry_run && a.format.as_deref() == Some("iso") {
        return Err(usage!(
            "--dry-run plans disk images; it does not plan an ISO (--format iso)"
        ));
    }
    Ok(())
}

/// The spec from `--spec FILE`, `$NIX_ATTRS_JSON_FILE` or the flags, with `--output` and
/// `--threads` applied, and where it came from.
fn settings(a: &Args) -> Result<(Spec, Source)> {
    let attrs_env = imagetool::spec::attrs_file_from_env();
    let spec_file = match (&a.spec, attrs_env) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) if !a.has_settings() => Some(p),
        _ => None,
    };
    let (mut spec, source) = match &spec_file {
        None => {
            if a.closure_info.is_none() && a.references_graph.is_none() {
                return Err(usage!(
                    "give --closure-info or --references-graph (or --spec)"
                ));
            }
            if a.output.is_none() {
                return Err(usage!("--output is required (or --spec)"));
            }
            (a.flags_spec()?, Source::Flags)
        }
        Some(path) => match SpecFile::read(path)? {
            SpecFile::Plain(s) => (s, Source::Spec),
            SpecFile::Attrs(mut attrs) => {
                if a.output.is_some() {
                    return Err(usage!(
                        "--output: a Nix build writes $out/<baseName>.<ext> (from {})",
                        path.display()
                    ));
                }
                attrs.prepare()?;
                (attrs.spec.clone(), Source::Attrs(Box::new(attrs)))
            }
        },
    };
    if !matches!(source, Source::Flags)
        && let Some(o) = &a.output
    {
        spec.output = Some(o.clone());
    }
    if let Some(t) = a.threads {
        spec.threads = t;
    }
    if a.dry_run && spec.variant.is_some() {
        return Err(usage!(
            "--dry-run plans disk images; it does not plan a variant's artifacts (--variant)"
        ));
    }
    Ok((spec, source))
}

/// `--dry-run`: the plan as text, as `--json`, or as a `plan` event (`--progress json`).
fn dry_run(image: &imagetool::build::ImageSpec, mode: ProgressMode, json: bool) -> Result<()> {
    let plan = match mode {
        ProgressMode::Plain => imagetool::build::plan(image, &mut Plain::default()),
        ProgressMode::Bar => imagetool::build::plan(image, &mut Bars::default()),
        ProgressMode::Json => imagetool::build::plan(image, &mut Json),
        ProgressMode::None => imagetool::build::plan(image, &mut Quiet),
    }
    .with_context(|| format!("planning {}", image.output.display()))?;
    if mode == ProgressMode::Json {
        let mut doc = plan.to_json();
        if let Some(m) = doc.as_object_mut() {
            m.insert("event".into(), "plan".into());
        }
        emit(&doc);
        return Ok(());
    }
    if json {
        return super::json_out("build", plan.to_json());
    }
    super::out(format_args!(
        "{}",
        super::build_plan::text(&plan).trim_end()
    ))
}

/// `--manifest FILE`: every output with its format, sizes, sha256 and partitions.
fn write_manifest(
    image: &imagetool::build::ImageSpec,
    report: &BuildReport,
    path: &std::path::Path,
) -> Result<()> {
    let outputs: Vec<imagetool::manifest::Output> =
        std::iter::once((image.format, image.output.clone()))
            .chain(image.also.iter().cloned())
            .map(|(f, file)| imagetool::manifest::Output {
                file,
                format: f.name().to_string(),
                variant: None,
            })
            .collect();
    let m = imagetool::manifest::manifest(report, &outputs)?;
    std::fs::write(path, format!("{m:#}\n")).with_context(|| format!("writing {}", path.display()))
}

/// The flag of each spec key a flag fills (the library names keys; the CLI names flags).
const FLAG_OF_KEY: &[(&str, &str)] = &[
    ("toplevel", "--toplevel"),
    ("closureInfo", "--closure-info"),
    ("referencesGraph", "--references-graph"),
    ("storeRoot", "--store-root"),
    ("additionalPaths", "--additional-path"),
    ("partitionTableType", "--partition"),
    ("diskSize", "--disk-size"),
    ("additionalSpace", "--additional-space"),
    ("bootSize", "--boot-size"),
    ("bootSizeRounding", "--boot-size-rounding"),
    ("rootGPUID", "--root-guid"),
    ("seed", "--seed"),
    ("label", "--label"),
    ("rootFSUID", "--root-fs-uuid"),
    ("configFile", "--config-file"),
    ("contents", "--contents"),
    ("channel", "--channel"),
    ("bootloader", "--bootloader"),
    ("format", "--format"),
    ("compression", "--compression"),
    ("output", "--output"),
    ("firmwareDir", "--firmware-dir"),
    ("rawWrites", "--raw-write"),
    ("sdBootable", "--sd-bootable"),
    ("archiveCompression", "--archive-compression"),
    ("variant", "--variant"),
];

/// A spec error from settings given as flags, naming the flag instead of the key
/// (`diskSize: …` becomes `--disk-size: …`); I/O errors and keys without a flag pass through.
fn name_flag(e: imagetool::spec::Error) -> anyhow::Error {
    let Some(key) = e.key().map(str::to_string) else {
        return e.into();
    };
    let root = key.split(['[', '.']).next().unwrap_or(&key).to_string();
    match FLAG_OF_KEY.iter().find(|(k, _)| *k == root) {
        Some((_, flag)) if e.kind() != imagetool::spec::ErrorKind::Io => {
            let text = e.to_string();
            let rest = text
                .strip_prefix(key.as_str())
                .and_then(|r| r.strip_prefix(": "))
                .unwrap_or(&text);
            usage!("{flag}{}: {rest}", &key[root.len()..])
        }
        _ => e.into(),
    }
}

fn report_json(r: &BuildReport) -> serde_json::Value {
    serde_json::json!({
        "event": "done",
        "output": r.output,
        "format": r.format.name(),
        "table": r.layout.table.name(),
        "diskSize": r.disk_size,
        "allocated": r.allocated,
        "storePaths": r.store_paths,
        "timings": r.timings.iter().map(|(p, d)| (p.name().to_string(), d.as_secs_f64().into()))
            .collect::<serde_json::Map<_, _>>(),
    })
}
