//! `netboot` and `kexec`: the system's kernel and an initrd that carries the whole store.
//!
//! ```text
//!   netboot (installer/netboot/netboot.nix)        kexec (nixos-generators' kexec format)
//!   ├── bzImage       the bootspec's kernel        tarball/<base>.tar.xz
//!   ├── initrd        the bootspec's initrd,        ├── kexec_nixos     sh: kexec -l …; kexec -e
//!   │                 zero-padded to 4 bytes, then  └── kexec/
//!   │                 a newc cpio holding               ├── bzImage, initrd (as netboot's)
//!   │                 /nix-store.squashfs               └── cmdline
//!   └── netboot.ipxe  kernel … initrd=initrd …; initrd initrd; boot
//! ```
//!
//! The store image is the ISO's (`make-squashfs.nix`'s layout: the closure's store paths and
//! `nix-path-registration`, zstd level 19); NixOS' stage 1 (and the fixture's) mounts
//! `/nix-store.squashfs` from the initramfs on `/nix/.ro-store` under an overlay. Upstream's
//! `makeInitrdNG` compresses the appended archive with the initrd's compressor; here it is
//! stored (the squashfs inside is compressed already), which the kernel accepts the same way
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`: concatenated archives,
//! compressed or not).

use std::io::Seek;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use imagetool_archive::Compression;
use imagetool_archive::cpio::CpioWriter;
use imagetool_archive::tar::{Data, Entry, Kind as TarKind, Meta as TarMeta, TarWriter};
use imagetool_blockio::{AtomicFile, Cancel};

use crate::build::{BuildError, Phase, Progress};
use crate::tree_variant::{
    Growing, Loaded, TreeBuild, TreeError, TreeVariant, invalid, io_err, packed,
};

/// The kernel, initrd and command line of the system, from its bootspec.
#[derive(Debug, Clone)]
pub struct BootFiles {
    /// The kernel image on the host.
    pub kernel: PathBuf,
    /// Its file name (`bzImage`, `Image`: the platform's `linux-kernel.target`).
    pub kernel_name: String,
    /// The initrd on the host.
    pub initrd: PathBuf,
    /// `init=<toplevel>/init` and the bootspec's `kernelParams`.
    pub cmdline: String,
}

fn boot_files(tb: &TreeBuild, loaded: &Loaded) -> Result<BootFiles, TreeError> {
    let (store, generation) = loaded.generation(&tb.image.store_root)?;
    let bs = &generation.bootspec;
    let (_, kernel) = store.file(&bs.kernel)?;
    let Some(initrd) = &bs.initrd else {
        return Err(invalid(format!(
            "{}: the bootspec names no initrd; the {} variant's stage 1 needs one",
            generation.file.display(),
            tb.variant
        )));
    };
    let (_, initrd) = store.file(initrd)?;
    let kernel_name = Path::new(&bs.kernel)
        .file_name()
        .map_or_else(|| "bzImage".into(), |n| n.to_string_lossy().into_owned());
    let mut cmdline = format!("init={}", bs.init);
    for p in &bs.kernel_params {
        cmdline.push(' ');
        cmdline.push_str(p);
    }
    Ok(BootFiles {
        kernel,
        kernel_name,
        initrd,
        cmdline,
    })
}

/// netboot.nix's `netboot.ipxe`.
///
/// ```
/// let s = imagetool::netboot::ipxe_script("bzImage", "init=/nix/store/x-nixos/init loglevel=4");
/// assert!(s.starts_with("#!ipxe\n"));
/// assert!(s.contains("kernel bzImage init=/nix/store/x-nixos/init"));
/// ```
#[must_use]
pub fn ipxe_script(kernel_name: &str, cmdline: &str) -> String {
    format!(
        "#!ipxe\n\
         # Use the cmdline variable to allow the user to specify custom kernel params\n\
         # when chainloading this script from other iPXE scripts like netboot.xyz\n\
         kernel {kernel_name} {init} initrd=initrd {params}${{cmdline}}\n\
         initrd initrd\n\
         boot\n",
        init = cmdline.split(' ').next().unwrap_or(""),
        params = cmdline
            .split_once(' ')
            .map(|(_, rest)| format!("{rest} "))
            .unwrap_or_default(),
    )
}

/// The `kexec_nixos` script: loads `kexec/<kernel>` and `kexec/initrd` (beside the script)
/// with the command line, then executes the new kernel, as nixos-generators' script does.
///
/// ```
/// let s = imagetool::netboot::kexec_script("bzImage", "init=/init it's quoted");
/// assert!(s.starts_with("#!/bin/sh\n"));
/// assert!(s.contains("it'\\''s quoted")); // a single quote, shell-escaped
/// ```
#[must_use]
pub fn kexec_script(kernel_name: &str, cmdline: &str) -> String {
    let quoted = cmdline.replace('\'', "'\\''");
    format!(
        "#!/bin/sh\n\
         # NixOS kexec bundle (imagetool; nixos-generators' kexec format): extract anywhere\n\
         # (upstream: tar -xJf … -C /) and run ./kexec_nixos as root.\n\
         set -eu\n\
         here=$(cd \"$(dirname \"$0\")\" && pwd)\n\
         kernel=\"$here/kexec/{kernel_name}\"\n\
         initrd=\"$here/kexec/initrd\"\n\
         cmdline='{quoted}'\n\
         for f in \"$kernel\" \"$initrd\"; do\n\
         \x20   [ -f \"$f\" ] || {{ echo \"kexec_nixos: $f is missing\" >&2; exit 1; }}\n\
         done\n\
         if ! command -v kexec >/dev/null 2>&1; then\n\
         \x20   echo \"kexec_nixos: kexec not found: please install kexec-tools\" >&2\n\
         \x20   exit 1\n\
         fi\n\
         kexec --load \"$kernel\" --initrd=\"$initrd\" --command-line=\"$cmdline\"\n\
         sync\n\
         echo \"kexec_nixos: executing the kernel, filesystems will be improperly unmounted\"\n\
         kexec -e\n"
    )
}

/// Writes the store squashfs into an unnamed temporary beside `near`.
fn store_image(
    loaded: &Loaded,
    epoch: i64,
    threads: usize,
    near: &Path,
) -> Result<(AtomicFile, u64), TreeError> {
    let tree = crate::iso::store_tree(&loaded.closure, epoch)?;
    let mut opts = crate::iso::native_options(crate::squashfs::Compression::Zstd, Some(19));
    opts.hard_links = false;
    opts.threads = threads;
    opts.mkfs_time = imagetool_fstree::Timestamp::from_secs(epoch);
    let tmp_path = near.with_file_name(".nix-store.squashfs");
    let tmp = AtomicFile::create(&tmp_path).map_err(io_err(&tmp_path))?;
    let report = crate::squashfs::write(&tree, &opts, &Growing(tmp.file()))?;
    tmp.file().set_len(report.size).map_err(io_err(&tmp_path))?;
    Ok((tmp, report.size))
}

/// Writes the netboot initrd into `out`: the system's initrd, zero padding to a multiple of 4
/// bytes, then a newc archive holding `nix-store.squashfs` (0444, at `epoch`).
fn write_initrd(
    out: &AtomicFile,
    dest: &Path,
    initrd: &Path,
    squashfs: &AtomicFile,
    squashfs_len: u64,
    epoch: i64,
) -> Result<(), TreeError> {
    let file = out.try_clone_file().map_err(io_err(dest))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut src = std::fs::File::open(initrd).map_err(io_err(initrd))?;
    let n = std::io::copy(&mut src, &mut w).map_err(io_err(initrd))?;
    let pad = (4 - n % 4) % 4;
    std::io::Write::write_all(&mut w, &[0u8; 3][..pad as usize]).map_err(io_err(dest))?;
    let mut c = CpioWriter::new(w);
    let mut sq = squashfs.try_clone_file().map_err(io_err(dest))?;
    sq.rewind().map_err(io_err(dest))?;
    let meta = TarMeta {
        mtime: u64::try_from(epoch).unwrap_or(0),
        ..TarMeta::file(0o444)
    };
    c.append_file("nix-store.squashfs", &meta, squashfs_len, &mut sq)?;
    let mut w = c.finish()?;
    std::io::Write::flush(&mut w).map_err(io_err(dest))?;
    Ok(())
}

/// Builds `netboot` (`paths`: kernel, initrd, script; the kernel's name is set from the
/// bootspec) or `kexec` (`paths[0]`: the tarball). Returns the uncommitted outputs and the
/// number of store paths in the squashfs.
pub(crate) fn write(
    tb: &TreeBuild,
    loaded: &Loaded,
    paths: &mut [PathBuf],
    c: Compression,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<(Vec<AtomicFile>, usize), TreeError> {
    let files = boot_files(tb, loaded)?;
    let epoch = tb.image.timestamp.secs;
    let stop = || -> Result<(), TreeError> {
        cancel
            .check()
            .map_err(|_| TreeError::Build(BuildError::Cancelled))
    };
    progress.started(Phase::Convert);
    let t0 = Instant::now();
    let first = paths[0].clone();
    if let Some(dir) = first.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let (squashfs, squashfs_len) = store_image(loaded, epoch, tb.image.threads, &first)?;
    stop()?;
    let outs = match tb.variant {
        TreeVariant::Netboot => {
            paths[0] = first.with_file_name(&files.kernel_name);
            let kernel = AtomicFile::create(&paths[0]).map_err(io_err(&paths[0]))?;
            let mut src = std::fs::File::open(&files.kernel).map_err(io_err(&files.kernel))?;
            let mut dst = kernel.try_clone_file().map_err(io_err(&paths[0]))?;
            std::io::copy(&mut src, &mut dst).map_err(io_err(&paths[0]))?;
            let initrd = AtomicFile::create(&paths[1]).map_err(io_err(&paths[1]))?;
            write_initrd(
                &initrd,
                &paths[1],
                &files.initrd,
                &squashfs,
                squashfs_len,
                epoch,
            )?;
            let script = AtomicFile::create(&paths[2]).map_err(io_err(&paths[2]))?;
            let mut f = script.try_clone_file().map_err(io_err(&paths[2]))?;
            std::io::Write::write_all(
                &mut f,
                ipxe_script(&files.kernel_name, &files.cmdline).as_bytes(),
            )
            .map_err(io_err(&paths[2]))?;
            vec![kernel, initrd, script]
        }
        _ => {
            let initrd_tmp = first.with_file_name(".initrd");
            let initrd = AtomicFile::create(&initrd_tmp).map_err(io_err(&initrd_tmp))?;
            write_initrd(
                &initrd,
                &initrd_tmp,
                &files.initrd,
                &squashfs,
                squashfs_len,
                epoch,
            )?;
            stop()?;
            let initrd_host = PathBuf::from(format!("/proc/self/fd/{}", initrd.file().as_raw_fd()));
            let meta = |mode| TarMeta {
                mtime: u64::try_from(epoch).unwrap_or(0),
                uname: String::new(),
                gname: String::new(),
                ..TarMeta::file(mode)
            };
            let script = kexec_script(&files.kernel_name, &files.cmdline);
            let cmdline = format!("{}\n", files.cmdline);
            let tar = packed(&first, c, |w| {
                let mut t = TarWriter::new(w);
                // In name order, as `tar --sort=name`.
                let mut entries = vec![
                    Entry {
                        path: "kexec".into(),
                        kind: TarKind::Dir,
                        meta: meta(0o755),
                    },
                    Entry::bytes("kexec/cmdline", meta(0o644), cmdline.as_bytes()),
                    Entry {
                        path: "kexec/initrd".into(),
                        kind: TarKind::File(Data::Host(initrd_host)),
                        meta: meta(0o444),
                    },
                    Entry {
                        path: format!("kexec/{}", files.kernel_name),
                        kind: TarKind::File(Data::Host(files.kernel.clone())),
                        meta: meta(0o444),
                    },
                    Entry::bytes("kexec_nixos", meta(0o755), script.as_bytes()),
                ];
                entries.sort_by(|a, b| a.path.cmp(&b.path));
                for e in &entries {
                    t.append(e)?;
                }
                Ok(t.finish()?)
            })?;
            drop(initrd);
            vec![tar]
        }
    };
    progress.finished(
        Phase::Convert,
        t0.elapsed(),
        &format!(
            "store squashfs {} MiB, {} store paths",
            squashfs_len >> 20,
            loaded.closure.len()
        ),
    );
    drop(squashfs);
    Ok((outs, loaded.closure.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ipxe_script_is_netboot_nixs() {
        let s = ipxe_script(
            "bzImage",
            "init=/nix/store/x-system/init console=ttyS0 quiet",
        );
        assert_eq!(
            s.lines().collect::<Vec<_>>(),
            [
                "#!ipxe",
                "# Use the cmdline variable to allow the user to specify custom kernel params",
                "# when chainloading this script from other iPXE scripts like netboot.xyz",
                "kernel bzImage init=/nix/store/x-system/init initrd=initrd console=ttyS0 quiet ${cmdline}",
                "initrd initrd",
                "boot",
            ]
        );
        let bare = ipxe_script("Image", "init=/x/init");
        assert!(
            bare.contains("kernel Image init=/x/init initrd=initrd ${cmdline}\n"),
            "{bare}"
        );
    }

    #[test]
    fn test_kexec_script_quotes_the_command_line() {
        let s = kexec_script("bzImage", "init=/x/init a='b'");
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(s.contains("cmdline='init=/x/init a='\\''b'\\'''\n"), "{s}");
        assert!(s.contains("kernel=\"$here/kexec/bzImage\"\n"), "{s}");
        assert!(s.contains("kexec -e\n"), "{s}");
    }
}
