//! The `imagetool` command: argument parsing, progress rendering and exit codes only; all the
//! work is done by the `imagetool` library.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// Build NixOS disk images natively: no VM, no KVM, no root.
#[derive(Debug, Parser)]
#[command(name = "imagetool", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // Cancelled by SIGINT/SIGTERM: whatever the error says, nothing was committed.
        Err(_) if cmd::cancel().is_cancelled() => {
            eprintln!("imagetool: interrupted: nothing was written");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("imagetool: error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 2 when the request cannot be honoured as given (bad input, unsupported, a missing tool), 130
/// when cancelled, 1 for everything else (I/O, a full disk, a failing tool, internal errors),
/// from the library's error kind. (clap's usage errors exit with 2 too.)
fn exit_code(err: &anyhow::Error) -> u8 {
    use imagetool::build::BuildError;
    use imagetool::disk::DiskError;
    use imagetool::mkfs::MkfsError;
    for cause in err.chain() {
        let kind = if let Some(e) = cause.downcast_ref::<BuildError>() {
            e.kind()
        } else if let Some(e) = cause.downcast_ref::<DiskError>() {
            e.kind()
        } else if let Some(e) = cause.downcast_ref::<MkfsError>() {
            e.kind()
        } else if let Some(e) = cause.downcast_ref::<imagetool::spec::Error>() {
            e.kind().into()
        } else if let Some(e) = cause.downcast_ref::<imagetool::vdisk::Error>() {
            e.kind().into()
        } else if let Some(e) = cause.downcast_ref::<imagetool::fat::Error>() {
            e.kind().into()
        } else if let Some(e) = cause.downcast_ref::<imagetool::tarball::TreeError>() {
            e.kind()
        } else {
            continue;
        };
        return kind.exit_code();
    }
    1
}
