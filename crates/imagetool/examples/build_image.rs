//! A NixOS image from a closure, through the library alone: a JSON spec with make-disk-image's
//! argument names (or the builder methods of `ImageSpec`), `build`, and a `Progress` that prints
//! one line per phase.
//!
//! ```text
//! cargo run -p imagetool --example build_image -- SPEC.json
//! cargo run -p imagetool --example build_image -- TOPLEVEL CLOSURE_INFO_DIR STORE_ROOT OUTPUT.qcow2
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use imagetool::build::{ImageSpec, Phase, Progress, build};
use imagetool::nix::closure::ClosureInput;
use imagetool::ptable::TableType;
use imagetool::spec::Spec;
use imagetool::vdisk::Format;

/// Prints each finished phase, and the bytes of the long ones.
struct Print;

impl Progress for Print {
    fn bytes(&mut self, phase: Phase, done: u64, total: u64) {
        if done == total {
            eprintln!("{:<10} {} of {} bytes", phase.name(), done, total);
        }
    }
    fn finished(&mut self, phase: Phase, elapsed: Duration, detail: &str) {
        eprintln!(
            "{:<10} {:>6.2}s {detail}",
            phase.name(),
            elapsed.as_secs_f64()
        );
    }
}

fn spec_from_args(args: &[String]) -> Result<ImageSpec, String> {
    match args {
        // Every setting from JSON, exactly as `imagetool build --spec` reads it.
        [file] => Spec::read(file.as_ref())
            .and_then(|s| s.resolve(315_532_800))
            .map_err(|e| e.to_string()),
        // The same through the builder methods.
        [toplevel, closure_info, store_root, output] => Ok(ImageSpec::new(
            Some(toplevel.clone()),
            ClosureInput::ClosureInfo(PathBuf::from(closure_info)),
            PathBuf::from(output),
        )
        .store_root(PathBuf::from(store_root))
        .partition(TableType::Hybrid)
        .format(Format::Qcow2)
        .label("nixos")),
        _ => Err("usage: build_image SPEC.json | TOPLEVEL CLOSURE_INFO STORE_ROOT OUTPUT".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = spec_from_args(&args).and_then(|spec| {
        build(&spec, &mut Print).map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        })
    });
    match result {
        Ok(report) => {
            println!(
                "{}: {} {} table, {} MiB, {} store paths",
                report.output.display(),
                report.format,
                report.layout.table,
                report.disk_size >> 20,
                report.store_paths
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("build_image: {e}");
            ExitCode::FAILURE
        }
    }
}
