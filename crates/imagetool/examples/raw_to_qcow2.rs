//! `qemu-img convert -O qcow2` done by the library, reading only the raw image's data extents.
//!
//! ```text
//! cargo run -p imagetool --example raw_to_qcow2 -- INPUT.img OUTPUT.qcow2 [--compress]
//! ```

use std::path::Path;
use std::process::ExitCode;

use imagetool::blockio::SparseFile;
use imagetool::vdisk::{self, Format};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output, compress) = match args.as_slice() {
        [i, o] => (i, o, false),
        [i, o, flag] if flag == "--compress" => (i, o, true),
        _ => {
            eprintln!("usage: raw_to_qcow2 INPUT.img OUTPUT.qcow2 [--compress]");
            return ExitCode::from(2);
        }
    };
    let format = if compress {
        Format::Qcow2Compressed
    } else {
        Format::Qcow2
    };
    let result = SparseFile::open(Path::new(input))
        .map_err(|e| e.to_string())
        .and_then(|raw| {
            vdisk::convert(&raw, format, Path::new(output), &vdisk::Options::default())
                .map_err(|e| format!("{output}: {e}"))
        });
    match result {
        Ok(report) => {
            println!("{output}: {format} ({report:?})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raw_to_qcow2: {e}");
            ExitCode::FAILURE
        }
    }
}
