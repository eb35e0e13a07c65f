//! The crate's error type: the layers' shared shape ([`imagetool_blockio::error`]).

use std::path::Path;

use imagetool_blockio::error::Error as Shape;
pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error of this crate: a kind, a message naming the file, option or offset, and the
    /// source.
    new(kind, message)
);

impl Error {
    /// An I/O error on `path`: the message names the path and what was being done.
    pub(crate) fn io(path: &Path, doing: &str, source: std::io::Error) -> Self {
        Self(Shape::io(format!("{}: {doing}", path.display()), source).with_path(path))
    }

    /// Attaches the file the error is about.
    #[must_use]
    pub(crate) fn with_path(self, path: &Path) -> Self {
        Self(self.0.with_path(path))
    }

    /// The file the error is about, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.0.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_io_error_names_path_and_keeps_source() {
        let e = Error::io(
            Path::new("/x/boot.json"),
            "read",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.to_string(), "/x/boot.json: read");
        assert_eq!(e.path(), Some(Path::new("/x/boot.json")));
        assert!(std::error::Error::source(&e).is_some());
        let e = Error::new(ErrorKind::Missing, "no GRUB modules")
            .with_path(Path::new("/p"))
            .with_source(std::fmt::Error);
        assert_eq!(e.kind(), ErrorKind::Missing);
        assert!(e.path().is_some());
    }
}
