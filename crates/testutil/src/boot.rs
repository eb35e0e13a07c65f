//! The QEMU boot runner: boots an image (or a kernel) headless, with the serial console in a
//! file and a hard timeout, and judges the guest by the markers it prints.
//!
//! Firmware: direct kernel boot (`-kernel/-initrd/-append`), SeaBIOS
//! (`/usr/share/seabios/bios-256k.bin`) or OVMF (`OVMF_CODE_4M.fd` read-only on pflash unit 0,
//! a temporary copy of `OVMF_VARS_4M.fd` on unit 1). Machine `q35`, drives as `virtio-blk-pci`
//! with `snapshot=on` (the image is never modified), `-nodefaults -display none -no-reboot`.
//!
//! aarch64 (`qemu-system-aarch64 -M virt -cpu max`, TCG, `-smp` [`BootConfig::cpus`] for
//! multi-threaded TCG): AAVMF (`AAVMF_CODE.fd` on pflash unit 0, a copy of `AAVMF_VARS.fd` on
//! unit 1) or U-Boot (`-bios u-boot.bin`, which boots the disk's `extlinux/extlinux.conf`).
//! The serial console is the PL011 `ttyAMA0`.
//!
//! riscv64 (`qemu-system-riscv64 -M virt -cpu max`, TCG): QEMU's OpenSBI, then EDK II
//! (`RISCV_VIRT_CODE.fd` on pflash unit 0, a copy of `RISCV_VIRT_VARS.fd` on unit 1); the
//! console is the 16550 `ttyS0`.
//!
//! Acceleration: KVM only when `kvm_intel` or `kvm_amd` is loaded and `/dev/kvm` opens
//! read-write (other KVM modules such as `kvm_pvm` hang stock kernels), else TCG with
//! `-cpu max`. `IMAGETOOL_QEMU_ACCEL=tcg|kvm` forces a choice.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{
    AAVMF_CODE, AAVMF_VARS, OVMF_CODE, OVMF_VARS, QEMU_SYSTEM, QEMU_SYSTEM_AARCH64,
    QEMU_SYSTEM_RISCV64, RISCV64_EDK2_CODE, RISCV64_EDK2_VARS, SEABIOS, Tool, UBOOT_QEMU_ARM64,
};
use crate::{Error, ErrorKind, Result, tail};

/// How the guest is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// Direct kernel boot (with SeaBIOS underneath).
    Kernel {
        /// The kernel image (bzImage).
        kernel: PathBuf,
        /// The initrd, if any.
        initrd: Option<PathBuf>,
        /// The kernel command line.
        append: String,
    },
    /// Legacy BIOS boot from the first drive.
    SeaBios,
    /// UEFI boot.
    Ovmf,
    /// UEFI boot of an aarch64 `virt` machine.
    Aavmf,
    /// U-Boot on an aarch64 `virt` machine (its distro boot finds `extlinux/extlinux.conf`).
    UBootArm64,
    /// UEFI boot (EDK II over OpenSBI) of a riscv64 `virt` machine.
    Riscv64Edk2,
}

impl Firmware {
    /// True for the aarch64 `virt` machine's firmwares.
    #[must_use]
    pub fn is_aarch64(&self) -> bool {
        matches!(self, Firmware::Aavmf | Firmware::UBootArm64)
    }

    /// True for the firmwares of a machine that is not x86 (QEMU's `virt`, never KVM here).
    #[must_use]
    pub fn is_foreign(&self) -> bool {
        self.is_aarch64() || *self == Firmware::Riscv64Edk2
    }

    /// The QEMU system emulator this firmware runs on.
    #[must_use]
    pub fn qemu(&self) -> Tool {
        if self.is_aarch64() {
            QEMU_SYSTEM_AARCH64
        } else if *self == Firmware::Riscv64Edk2 {
            QEMU_SYSTEM_RISCV64
        } else {
            QEMU_SYSTEM
        }
    }

    /// The firmware files this boot reads (code and variable template).
    #[must_use]
    pub fn files(&self) -> Vec<Tool> {
        match self {
            Firmware::Ovmf => vec![OVMF_CODE, OVMF_VARS],
            Firmware::Aavmf => vec![AAVMF_CODE, AAVMF_VARS],
            Firmware::UBootArm64 => vec![UBOOT_QEMU_ARM64],
            Firmware::Riscv64Edk2 => vec![RISCV64_EDK2_CODE, RISCV64_EDK2_VARS],
            Firmware::Kernel { .. } | Firmware::SeaBios => vec![SEABIOS],
        }
    }
}

/// A disk container format QEMU reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// Raw.
    Raw,
    /// qcow2.
    Qcow2,
    /// VirtualBox VDI.
    Vdi,
    /// VHD (`vpc` in QEMU).
    Vpc,
    /// VHDX.
    Vhdx,
    /// VMDK.
    Vmdk,
}

impl DiskFormat {
    /// QEMU's name of the format.
    #[must_use]
    pub fn qemu_name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
            Self::Vdi => "vdi",
            Self::Vpc => "vpc",
            Self::Vhdx => "vhdx",
            Self::Vmdk => "vmdk",
        }
    }
}

/// How a removable medium is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// A CD-ROM drive on the machine's AHCI controller (`ide-cd`), read-only.
    Cdrom,
    /// A USB stick (`usb-storage` on an xHCI controller), raw, with `snapshot=on`.
    UsbStick,
}

/// The accelerator a boot ran with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Emulation.
    Tcg,
}

/// Everything about one boot.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// How to start the guest.
    pub firmware: Firmware,
    /// Drives, attached in order as virtio-blk-pci (the first has boot index 0).
    pub drives: Vec<(PathBuf, DiskFormat)>,
    /// Raw removable media (CD-ROMs, USB sticks), attached after the drives, boot indexes
    /// following theirs.
    pub media: Vec<(PathBuf, Media)>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// QEMU is killed after this long.
    pub timeout: Duration,
    /// Stop QEMU early once the serial log contains every one of these strings (for guests
    /// that do not power off).
    pub stop_when: Vec<String>,
    /// Stop QEMU early once the serial log contains any of these strings (the guest reported
    /// a failure). Default: `IMAGETOOL-BOOT-FAIL`, what the fixture's stages print.
    pub fail_when: Vec<String>,
    /// Forced accelerator (`None`: detect, or `IMAGETOOL_QEMU_ACCEL`).
    pub accel: Option<Accel>,
    /// Virtual CPUs (`-smp`; more than one lets TCG run them on several host threads).
    pub cpus: u32,
    /// OVMF/AAVMF: the variable store to start from (copied; default the firmware's template).
    pub vars: Option<PathBuf>,
}

impl BootConfig {
    /// A config with 512 MiB, no drives, and the timeout from `IMAGETOOL_BOOT_TIMEOUT`
    /// (seconds) or 300 s.
    #[must_use]
    pub fn new(firmware: Firmware) -> Self {
        let timeout = std::env::var("IMAGETOOL_BOOT_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(300), Duration::from_secs);
        Self {
            firmware,
            drives: Vec::new(),
            media: Vec::new(),
            memory_mib: 512,
            timeout,
            stop_when: Vec::new(),
            fail_when: vec![FAIL_MARKER.to_string()],
            accel: None,
            cpus: 1,
            vars: None,
        }
    }

    /// Adds a drive.
    #[must_use]
    pub fn drive(mut self, path: &Path, format: DiskFormat) -> Self {
        self.drives.push((path.to_path_buf(), format));
        self
    }

    /// Starts OVMF/AAVMF from a copy of `path` as its variable store (pflash unit 1) instead of
    /// the firmware's empty template.
    #[must_use]
    pub fn vars(mut self, path: &Path) -> Self {
        self.vars = Some(path.to_path_buf());
        self
    }

    /// Adds a removable medium (a raw image as a CD-ROM or a USB stick).
    #[must_use]
    pub fn medium(mut self, path: &Path, media: Media) -> Self {
        self.media.push((path.to_path_buf(), media));
        self
    }
}

/// The line prefix a fixture stage prints when it gives up.
pub const FAIL_MARKER: &str = "IMAGETOOL-BOOT-FAIL";

/// What a boot produced.
#[derive(Debug, Clone)]
pub struct BootResult {
    /// Everything the guest wrote to its serial port.
    pub log: String,
    /// Wall-clock time from QEMU's start to its exit (or kill).
    pub elapsed: Duration,
    /// The accelerator used.
    pub accel: Accel,
    /// True when QEMU was killed by the timeout.
    pub timed_out: bool,
    /// True when QEMU was stopped because `stop_when` or `fail_when` matched.
    pub stopped: bool,
    /// QEMU's own stderr (errors starting the machine).
    pub qemu_stderr: String,
    /// The QEMU command line.
    pub command: Vec<OsString>,
}

/// True when KVM can run a stock kernel here: `kvm_intel`/`kvm_amd` loaded and `/dev/kvm`
/// opens read-write.
#[must_use]
pub fn kvm_usable() -> bool {
    let module =
        Path::new("/sys/module/kvm_intel").exists() || Path::new("/sys/module/kvm_amd").exists();
    module
        && OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
}

/// The accelerator to use: `IMAGETOOL_QEMU_ACCEL` if set, else KVM when [`kvm_usable`].
#[must_use]
pub fn detect_accel() -> Accel {
    match std::env::var("IMAGETOOL_QEMU_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        _ if kvm_usable() => Accel::Kvm,
        _ => Accel::Tcg,
    }
}

/// QEMU's `-drive` syntax doubles commas inside values.
fn escape(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// The QEMU arguments (without the program) for `cfg`, with the serial log at `log` and the
/// OVMF variable copy at `vars`.
#[must_use]
pub fn qemu_args(cfg: &BootConfig, accel: Accel, log: &Path, vars: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    push("-nodefaults");
    push("-no-user-config");
    push("-machine");
    let foreign = cfg.firmware.is_foreign();
    // A foreign guest never runs on KVM.
    let accel = if foreign { Accel::Tcg } else { accel };
    push(if foreign { "virt" } else { "q35" });
    if cfg.cpus > 1 {
        push("-smp");
        push(&cfg.cpus.to_string());
    }
    match accel {
        Accel::Kvm => ["-accel", "kvm", "-cpu", "host"]
            .iter()
            .for_each(|s| push(s)),
        Accel::Tcg => ["-accel", "tcg", "-cpu", "max"]
            .iter()
            .for_each(|s| push(s)),
    }
    push("-m");
    push(&cfg.memory_mib.to_string());
    push("-display");
    push("none");
    push("-no-reboot");
    push("-serial");
    push(&format!("file:{}", log.display()));
    match &cfg.firmware {
        Firmware::Kernel {
            kernel,
            initrd,
            append,
        } => {
            push("-bios");
            push(SEABIOS.name);
            push("-kernel");
            push(&kernel.to_string_lossy());
            if let Some(i) = initrd {
                push("-initrd");
                push(&i.to_string_lossy());
            }
            push("-append");
            push(append);
        }
        Firmware::SeaBios => {
            push("-bios");
            push(SEABIOS.name);
        }
        Firmware::UBootArm64 => {
            push("-bios");
            push(UBOOT_QEMU_ARM64.name);
        }
        Firmware::Ovmf | Firmware::Aavmf | Firmware::Riscv64Edk2 => {
            let code = match cfg.firmware {
                Firmware::Aavmf => AAVMF_CODE,
                Firmware::Riscv64Edk2 => RISCV64_EDK2_CODE,
                _ => OVMF_CODE,
            };
            push("-drive");
            push(&format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                escape(Path::new(code.name))
            ));
            push("-drive");
            push(&format!(
                "if=pflash,format=raw,unit=1,file={}",
                escape(vars)
            ));
        }
    }
    for (i, (path, fmt)) in cfg.drives.iter().enumerate() {
        push("-drive");
        push(&format!(
            "file={},format={},if=none,id=disk{i},snapshot=on",
            escape(path),
            fmt.qemu_name()
        ));
        push("-device");
        // Direct kernel boot takes boot index 0 for its loader ROM: no index for the drives.
        if matches!(cfg.firmware, Firmware::Kernel { .. }) {
            push(&format!("virtio-blk-pci,drive=disk{i}"));
        } else {
            push(&format!("virtio-blk-pci,drive=disk{i},bootindex={i}"));
        }
    }
    if cfg.media.iter().any(|(_, m)| *m == Media::UsbStick) {
        push("-device");
        push("qemu-xhci,id=xhci");
    }
    for (j, (path, media)) in cfg.media.iter().enumerate() {
        let index = cfg.drives.len() + j;
        let boot = if matches!(cfg.firmware, Firmware::Kernel { .. }) {
            String::new()
        } else {
            format!(",bootindex={index}")
        };
        push("-drive");
        match media {
            Media::Cdrom => {
                push(&format!(
                    "file={},format=raw,if=none,id=media{j},media=cdrom,readonly=on",
                    escape(path)
                ));
                push("-device");
                push(&format!("ide-cd,drive=media{j}{boot}"));
            }
            Media::UsbStick => {
                push(&format!(
                    "file={},format=raw,if=none,id=media{j},snapshot=on",
                    escape(path)
                ));
                push("-device");
                push(&format!("usb-storage,bus=xhci.0,drive=media{j}{boot}"));
            }
        }
    }
    a
}

/// Boots `cfg` and returns the serial log. Never fails because of what the guest did: a
/// timeout is reported in [`BootResult::timed_out`].
///
/// # Errors
/// `ToolMissing` (QEMU, firmware); `ToolFailed` when QEMU cannot start or exits with an error
/// before the guest ran; `Io`.
pub fn boot(cfg: &BootConfig) -> Result<BootResult> {
    let qemu = cfg.firmware.qemu().path()?;
    for f in cfg.firmware.files() {
        f.path()?;
    }
    for p in cfg
        .drives
        .iter()
        .map(|d| &d.0)
        .chain(cfg.media.iter().map(|m| &m.0))
    {
        if !p.is_file() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                p.display(),
                "drive image does not exist",
            ));
        }
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
    let log = tmp.path().join("serial.log");
    let vars = tmp.path().join("OVMF_VARS.fd");
    let template = match (&cfg.firmware, &cfg.vars) {
        (Firmware::Ovmf | Firmware::Aavmf | Firmware::Riscv64Edk2, Some(v)) => Some(v.as_path()),
        (Firmware::Ovmf, None) => Some(Path::new(OVMF_VARS.name)),
        (Firmware::Aavmf, None) => Some(Path::new(AAVMF_VARS.name)),
        (Firmware::Riscv64Edk2, None) => Some(Path::new(RISCV64_EDK2_VARS.name)),
        _ => None,
    };
    if let Some(t) = template {
        std::fs::copy(t, &vars).map_err(|e| Error::io(&vars, e))?;
    }
    let stderr_path = tmp.path().join("qemu.stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| Error::io(&stderr_path, e))?;
    let accel = if cfg.firmware.is_foreign() {
        Accel::Tcg
    } else {
        cfg.accel.unwrap_or_else(detect_accel)
    };
    let args = qemu_args(cfg, accel, &log, &vars);
    let mut command = vec![qemu.clone().into_os_string()];
    command.extend(args.iter().cloned());

    let start = Instant::now();
    let mut child = Command::new(&qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| Error::new(ErrorKind::ToolFailed, qemu.display(), e.to_string()))?;
    let (mut timed_out, mut stopped) = (false, false);
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| Error::io(&qemu, e))? {
            break Some(st);
        }
        if start.elapsed() >= cfg.timeout {
            timed_out = true;
            break None;
        }
        if !cfg.stop_when.is_empty() || !cfg.fail_when.is_empty() {
            let text = read_lossy(&log);
            let done = !cfg.stop_when.is_empty()
                && cfg.stop_when.iter().all(|s| text.contains(s.as_str()));
            if done || cfg.fail_when.iter().any(|s| text.contains(s.as_str())) {
                stopped = true;
                break None;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.is_none() {
        // Hard stop: SIGKILL, then reap.
        let _ = child.kill();
        let _ = child.wait();
    }
    let elapsed = start.elapsed();
    let qemu_stderr = read_lossy(&stderr_path);
    let log_text = read_lossy(&log);
    if let Some(st) = status
        && !st.success()
        && log_text.is_empty()
    {
        return Err(Error::new(
            ErrorKind::ToolFailed,
            cfg.firmware.qemu().name,
            format!("exited with {st} before the guest wrote anything\n{qemu_stderr}"),
        ));
    }
    Ok(BootResult {
        log: log_text,
        elapsed,
        accel,
        timed_out,
        stopped,
        qemu_stderr,
        command,
    })
}

fn read_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The markers the fixture's stage 2 prints.
#[must_use]
pub fn markers(toplevel: &str, manifest_sha256: &str) -> [String; 2] {
    [
        format!("IMAGETOOL-BOOT-OK {toplevel}"),
        format!("IMAGETOOL-MANIFEST {manifest_sha256}"),
    ]
}

/// Checks that `log` shows `IMAGETOOL-BOOT-OK <toplevel>` and `IMAGETOOL-MANIFEST <hash>`.
///
/// # Errors
/// `Mismatch` naming what is missing (and a different manifest hash when one was printed),
/// with the log's last 60 lines.
pub fn expect_markers(r: &BootResult, toplevel: &str, manifest_sha256: &str) -> Result<()> {
    let [ok, manifest] = markers(toplevel, manifest_sha256);
    let lines: Vec<Vec<String>> = r.log.lines().map(tokens).collect();
    let has_line = |m: &str| {
        let want: Vec<&str> = m.split_whitespace().collect();
        lines
            .iter()
            .any(|t| t.windows(want.len()).any(|w| w == want.as_slice()))
    };
    let mut problems = Vec::new();
    if let Some(f) = r.log.lines().find(|l| l.contains(FAIL_MARKER)) {
        problems.push(format!("the guest reported {:?}", f.trim()));
    }
    if !has_line(&ok) {
        problems.push(format!("no line {ok:?}"));
    }
    if !has_line(&manifest) {
        match r.log.lines().find(|l| l.contains("IMAGETOOL-MANIFEST ")) {
            Some(other) => problems.push(format!(
                "manifest differs: got {:?}, expected {manifest:?}",
                other.trim()
            )),
            None => problems.push(format!("no line {manifest:?}")),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let state = if r.timed_out {
        format!("QEMU killed after the {:?} timeout", r.elapsed)
    } else {
        format!("QEMU ran {:.1?}", r.elapsed)
    };
    Err(Error::new(
        ErrorKind::Mismatch,
        "boot",
        format!(
            "{} ({state}, {:?})\n--- serial log tail ---\n{}\n--- qemu stderr ---\n{}",
            problems.join("; "),
            r.accel,
            tail(&r.log, 60),
            r.qemu_stderr.trim_end()
        ),
    ))
}

/// The whitespace-separated words of a log line, with ANSI escape sequences (firmware consoles
/// print them) removed.
fn tokens(line: &str) -> Vec<String> {
    let mut clean = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates up to a final byte in @..~.
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            clean.push(' ');
        } else {
            clean.push(c);
        }
    }
    clean.split_whitespace().map(String::from).collect()
}

/// Boots and checks the markers; stops QEMU as soon as both markers are in the log.
///
/// # Errors
/// Any error of [`boot`] and [`expect_markers`].
pub fn boot_and_expect(
    cfg: &BootConfig,
    toplevel: &str,
    manifest_sha256: &str,
) -> Result<BootResult> {
    let mut cfg = cfg.clone();
    cfg.stop_when.extend(markers(toplevel, manifest_sha256));
    let r = boot(&cfg)?;
    expect_markers(&r, toplevel, manifest_sha256)?;
    Ok(r)
}

/// Boots raw disk `img` under `firmware` (2 CPUs, at least `min_timeout`) to the fixture's
/// markers (`toplevel`, `manifest_sha256`), printing the time it took as `what boot: …`.
///
/// # Panics
/// When QEMU cannot run or the markers do not appear: this is a test's assertion.
pub fn boot_raw_to_markers(
    firmware: Firmware,
    img: &Path,
    toplevel: &str,
    manifest_sha256: &str,
    min_timeout: std::time::Duration,
    what: &str,
) {
    let mut cfg = BootConfig::new(firmware).drive(img, DiskFormat::Raw);
    cfg.cpus = 2;
    cfg.timeout = cfg.timeout.max(min_timeout);
    cfg.stop_when = markers(toplevel, manifest_sha256).to_vec();
    let res = boot(&cfg).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{what} boot: {:.1} s ({:?})",
        res.elapsed.as_secs_f64(),
        res.accel
    );
    expect_markers(&res, toplevel, manifest_sha256).unwrap_or_else(|e| panic!("{e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(cfg: &BootConfig, accel: Accel) -> Vec<String> {
        qemu_args(
            cfg,
            accel,
            Path::new("/t/serial.log"),
            Path::new("/t/vars.fd"),
        )
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
    }

    #[test]
    fn direct_kernel_command_line() {
        let cfg = BootConfig::new(Firmware::Kernel {
            kernel: "/k/bzImage".into(),
            initrd: Some("/k/initrd".into()),
            append: "console=ttyS0 init=/x".into(),
        })
        .drive(Path::new("/img/a,b.qcow2"), DiskFormat::Qcow2);
        let a = args_of(&cfg, Accel::Tcg).join(" ");
        assert!(a.contains("-machine q35 -accel tcg -cpu max -m 512"), "{a}");
        assert!(
            a.contains("-kernel /k/bzImage -initrd /k/initrd -append console=ttyS0 init=/x"),
            "{a}"
        );
        assert!(a.contains("-serial file:/t/serial.log"), "{a}");
        assert!(
            a.ends_with("-drive file=/img/a,,b.qcow2,format=qcow2,if=none,id=disk0,snapshot=on -device virtio-blk-pci,drive=disk0"),
            "{a}"
        );
        assert!(
            a.contains("-no-reboot") && a.contains("-display none"),
            "{a}"
        );
    }

    #[test]
    fn ovmf_uses_two_pflash_units() {
        let cfg = BootConfig::new(Firmware::Ovmf)
            .drive(Path::new("/a.vhdx"), DiskFormat::Vhdx)
            .drive(Path::new("/b.vmdk"), DiskFormat::Vmdk);
        let a = args_of(&cfg, Accel::Kvm).join(" ");
        assert!(a.contains("format=vhdx,if=none,id=disk0,snapshot=on -device virtio-blk-pci,drive=disk0,bootindex=0"), "{a}");
        assert!(a.contains("format=vmdk,if=none,id=disk1,snapshot=on -device virtio-blk-pci,drive=disk1,bootindex=1"), "{a}");
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        assert!(
            a.contains(
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
            ),
            "{a}"
        );
        assert!(
            a.contains("if=pflash,format=raw,unit=1,file=/t/vars.fd"),
            "{a}"
        );
        assert!(!a.contains("-bios"), "{a}");
    }

    #[test]
    fn markers_must_match_exactly() {
        let r = BootResult {
            log:
                "boot\r\nIMAGETOOL-BOOT-OK /nix/store/x-nixos-system\r\nIMAGETOOL-MANIFEST abc\r\n"
                    .into(),
            elapsed: Duration::from_secs(1),
            accel: Accel::Tcg,
            timed_out: false,
            stopped: false,
            qemu_stderr: String::new(),
            command: vec![],
        };
        assert!(expect_markers(&r, "/nix/store/x-nixos-system", "abc").is_ok());
        let e = expect_markers(&r, "/nix/store/x-nixos-system", "abd").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Mismatch);
        assert!(e.message().contains("manifest differs"), "{e}");
        assert!(expect_markers(&r, "/nix/store/y", "abc").is_err());
        assert!(expect_markers(&r, "/nix/store/x-nixos-syste", "abc").is_err());
        assert!(expect_markers(&r, "/nix/store/x-nixos-system", "ab").is_err());
    }
}
