//! The receiver's file side. A name from the network is never trusted as a
//! path: it must be one plain file name, and the file lands in the
//! receiving directory and nowhere else. Content goes to a temporary file in
//! that directory and takes its final name (an atomic rename, which never
//! follows a link) only once its SHA-256 was verified, so no partial or
//! corrupt file ever exists under the final name.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::packet::MAX_NAME;

/// The permissions of a stored file: readable by all, writable by its owner.
const FILE_MODE: u32 = 0o644;

/// Bytes buffered before a write to the temporary file.
const WRITE_BUFFER: usize = 1 << 20;

/// Checks a file name from the network.
///
/// # Errors
/// Why the name cannot be used, for the sender to read.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("'{name}' is not a file name"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!("'{name}' is a path, not a plain file name"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("the file name is {} bytes long; names are at most {MAX_NAME}", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err("the file name holds control characters".to_owned());
    }
    if name.chars().any(is_invisible_format) {
        return Err(
            "the file name holds invisible formatting characters (such as a right-to-left override, \
                    which can disguise a file's extension)"
                .to_owned(),
        );
    }
    Ok(())
}

/// Unicode format characters that change how a name is shown without being
/// seen: bidirectional controls, zero-width characters, the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A file being received.
#[derive(Debug)]
pub struct Incoming {
    target: PathBuf,
    overwrite: bool,
    writer: BufWriter<NamedTempFile>,
}

impl Incoming {
    /// Starts receiving `name` into `dir`.
    ///
    /// # Errors
    /// Why the file is refused (a bad name, an existing file without
    /// `overwrite`, a directory that cannot be written), for the sender.
    pub fn create(dir: &Path, name: &str, overwrite: bool) -> Result<Self, String> {
        check_name(name)?;
        let target = dir.join(name);
        if !overwrite && target.symlink_metadata().is_ok() {
            return Err(format!(
                "'{name}' already exists on the receiver; send it under another --name, or start the receiver with --overwrite"
            ));
        }
        let temp = tempfile::Builder::new()
            .prefix(".socketeer-")
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|e| format!("the receiver cannot create a file: {e}"))?;
        Ok(Incoming { target, overwrite, writer: BufWriter::with_capacity(WRITE_BUFFER, temp) })
    }

    /// Appends content.
    ///
    /// # Errors
    /// When the disk refuses it.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer.write_all(data)
    }

    /// Flushes the content to disk and gives it its final name.
    ///
    /// # Errors
    /// Why it could not be stored; the temporary file is removed.
    pub fn commit(self) -> Result<PathBuf, String> {
        let temp = self.writer.into_inner().map_err(|e| format!("writing the file failed: {}", e.error()))?;
        // A temporary file is private (0600); the stored one is an ordinary file.
        let readable = std::fs::Permissions::from_mode(FILE_MODE);
        temp.as_file().set_permissions(readable).map_err(|e| format!("writing the file failed: {e}"))?;
        temp.as_file().sync_all().map_err(|e| format!("writing the file failed: {e}"))?;
        let stored =
            if self.overwrite { temp.persist(&self.target) } else { temp.persist_noclobber(&self.target) };
        stored.map_err(|e| format!("cannot name the file {}: {}", self.target.display(), e.error))?;
        // The rename is durable once the directory is.
        if let Some(dir) = self.target.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_accepted() {
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "bell\u{7}",
            "a\u{202E}fdp.exe",
            &long,
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["report.pdf", ".hidden", "naïve café.txt", "..dots", &"a".repeat(255)] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn content_appears_under_its_name_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = Incoming::create(dir.path(), "out.bin", false).unwrap();
        file.write(b"hello ").unwrap();
        file.write(b"world").unwrap();
        assert!(!dir.path().join("out.bin").exists(), "visible before it was verified");
        let path = file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, FILE_MODE);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn existing_files_are_kept_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"mine").unwrap();
        assert!(Incoming::create(dir.path(), "keep.txt", false).unwrap_err().contains("already exists"));
        let mut file = Incoming::create(dir.path(), "keep.txt", true).unwrap();
        file.write(b"theirs").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("keep.txt")).unwrap(), b"theirs");
    }

    #[test]
    fn an_abandoned_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = Incoming::create(dir.path(), "gone.bin", false).unwrap();
        file.write(b"partial").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_link_planted_under_the_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("link")).unwrap();
        assert!(Incoming::create(dir.path(), "link", false).is_err());
        let mut file = Incoming::create(dir.path(), "link", true).unwrap();
        file.write(b"attack").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "the link's target was written");
    }
}
