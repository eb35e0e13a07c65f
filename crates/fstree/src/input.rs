//! Reading small untrusted input files (specs, references graphs, registrations, bootspecs)
//! with the checks every reader needs: a regular file (a FIFO or a device would block or
//! never end), no larger than a stated limit (checked before anything is allocated).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// The limit of a references graph, a registration or a structured-attributes file: a NixOS
/// closure of 5000 store paths has a registration of about 3 MiB.
pub const MAX_GRAPH_BYTES: u64 = 64 << 20;
/// The limit of a JSON spec or a bootspec document.
pub const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// Opens `path` for reading without blocking on a FIFO, and refuses anything but a regular
/// file.
///
/// # Errors
/// `InvalidInput` naming the path and what it is when it is not a regular file; any error
/// opening it.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    // O_NONBLOCK: opening a FIFO with no writer must not wait for one.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| named(e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| named(e.into()))?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        let what = match t {
            FileType::Fifo => "a FIFO",
            FileType::CharacterDevice => "a character device",
            FileType::BlockDevice => "a block device",
            FileType::Socket => "a socket",
            FileType::Directory => "a directory",
            _ => "not a regular file",
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: is {what}; a regular file is needed", path.display()),
        ));
    }
    // Back to blocking reads for a regular file (O_NONBLOCK has no effect on them anyway).
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| named(e.into()))?;
    Ok(File::from(fd))
}

/// Reads the regular file `path`, refusing one larger than `limit` bytes.
///
/// # Errors
/// As [`open_regular`]; `InvalidInput` naming the path, its size and the limit when it is
/// larger; any read error.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let len = f.metadata().map_err(named)?.len();
    let too_big = |n: u64| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: {n} bytes is more than the {limit} bytes imagetool reads from this input",
                path.display()
            ),
        )
    };
    if len > limit {
        return Err(too_big(len));
    }
    let mut out = Vec::with_capacity(len as usize);
    // The file may grow while read: never read more than the limit.
    f.take(limit + 1).read_to_end(&mut out).map_err(named)?;
    if out.len() as u64 > limit {
        return Err(too_big(out.len() as u64));
    }
    Ok(out)
}

/// [`read_limited`] as UTF-8 text.
///
/// # Errors
/// As [`read_limited`]; `InvalidData` naming the path when the text is not UTF-8.
pub fn read_limited_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not UTF-8 text ({e})", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fifo_and_directory_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        let e = read_limited(&fifo, 10).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = read_limited(d.path(), 10).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn test_limit_is_checked_before_reading() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_limited(&f, 10).unwrap(), b"0123456789");
        let e = read_limited(&f, 9).unwrap_err();
        assert!(e.to_string().contains("10 bytes is more than the 9"), "{e}");
    }
}
