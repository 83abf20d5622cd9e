//! The receiver's file side. A name from the network is never trusted as a
//! path: it must be one plain file name, and the file lands in the
//! receiving directory ([`ReceiveDir`], opened once at start) and nowhere
//! else. Content goes to a file without a name (`O_TMPFILE`), so no peer
//! and no other user can name it, replace it or find it after a crash; it
//! is linked under its final name only once its SHA-256 was verified, so no
//! partial or corrupt file ever exists under that name. Without
//! `--overwrite` the link fails if the name is taken; with it, the content
//! is linked under a random hidden name and renamed over the old file, and
//! the name is checked to hold our content afterwards.

mod dir;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, renameat};
use nix::sys::stat::fstatat;
use nix::unistd::linkat;

pub use dir::{DirError, ReceiveDir};

pub use super::name::check_name;
use super::name::{TEMP_PREFIX, TEMP_SUFFIX};

/// The permissions of a stored file: readable by all, writable by its owner.
const FILE_MODE: u32 = 0o644;

/// Bytes gathered before a write to the file; the buffer grows to this
/// only when content comes faster than one block at a time.
const WRITE_BUFFER: usize = 1 << 20;

/// Where the content waits until it is verified.
#[derive(Debug)]
enum Staging {
    /// A file without a name (`O_TMPFILE`).
    Anonymous(File),
    /// A named, locked temporary file, on filesystems without `O_TMPFILE`.
    Named(dir::NamedTemp),
}

impl Staging {
    fn file(&self) -> &File {
        match self {
            Staging::Anonymous(file) => file,
            Staging::Named(temp) => &temp.file,
        }
    }
}

/// A file being received.
#[derive(Debug)]
pub struct Incoming {
    dir: Arc<ReceiveDir>,
    name: String,
    overwrite: bool,
    /// `None` once committed or given up.
    staging: Option<Staging>,
    pending: Vec<u8>,
}

impl Incoming {
    /// Starts receiving `name` into `dir`; `size`, when the sender announced
    /// it, must fit in the space left.
    ///
    /// # Errors
    /// Why the file is refused (a bad name, an existing file without
    /// `overwrite`, no room, a directory that cannot be written), for the
    /// sender: it never holds the receiver's paths.
    pub fn create(
        dir: &Arc<ReceiveDir>,
        name: &str,
        overwrite: bool,
        size: Option<u64>,
    ) -> Result<Self, String> {
        check_name(name)?;
        if !overwrite && dir.contains(name) {
            return Err(format!(
                "'{name}' already exists on the receiver; send it under another --name, or start the receiver with --overwrite"
            ));
        }
        if let (Some(size), Ok(available)) = (size, dir.available())
            && size > available
        {
            return Err(format!("the file is {size} bytes and the receiver has room for {available}"));
        }
        let cannot =
            |e: io::Error| format!("the receiver cannot create a file: {}", crate::net::describe(&e));
        let staging = if dir.has_anonymous_files() {
            Staging::Anonymous(dir.anonymous_file().map_err(|e| cannot(e.into()))?)
        } else {
            Staging::Named(dir.named_file().map_err(cannot)?)
        };
        Ok(Incoming {
            dir: Arc::clone(dir),
            name: name.to_owned(),
            overwrite,
            staging: Some(staging),
            pending: Vec::new(),
        })
    }

    /// Appends content.
    ///
    /// # Errors
    /// When the disk refuses it.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(staging) = &self.staging else { return Err(io::Error::other("the file is gone")) };
        let mut file: &File = staging.file();
        file.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    /// Flushes the content to disk and gives it its final name.
    ///
    /// # Errors
    /// Why it could not be stored (for the sender: no paths); nothing is
    /// left under a temporary name.
    pub fn commit(mut self) -> Result<PathBuf, String> {
        let failed = |e: io::Error| format!("writing the file failed: {}", crate::net::describe(&e));
        self.flush().map_err(failed)?;
        let Some(staging) = self.staging.take() else { return Err("the file is gone".to_owned()) };
        let file = staging.file();
        // A temporary file is private (0600); the stored one is an ordinary file.
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE)).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        let ours = file.metadata().map_err(failed)?;
        let linked = match &staging {
            Staging::Anonymous(file) if !self.overwrite => self.link(file, &self.name),
            Staging::Anonymous(file) => self.link_and_rename(file),
            Staging::Named(temp) if !self.overwrite => {
                // A hard link fails when the name is taken; the temporary name then goes.
                let linked = linkat(
                    self.dir.fd(),
                    temp.name.as_str(),
                    self.dir.fd(),
                    self.name.as_str(),
                    AtFlags::empty(),
                );
                let _ = self.dir.unlink(&temp.name);
                linked
            }
            Staging::Named(temp) => {
                let renamed = renameat(self.dir.fd(), temp.name.as_str(), self.dir.fd(), self.name.as_str());
                if renamed.is_err() {
                    let _ = self.dir.unlink(&temp.name);
                }
                renamed
            }
        };
        linked.map_err(|e| match e {
            Errno::EEXIST => format!("'{}' appeared on the receiver while it was being received", self.name),
            e => format!("cannot name the file '{}': {}", self.name, crate::net::describe(&e.into())),
        })?;
        // What holds the name now must be what we wrote: no one swapped it in between.
        let named = fstatat(self.dir.fd(), self.name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
        if !named.is_ok_and(|n| n.st_ino == ours.ino() && n.st_dev == ours.dev()) {
            return Err(format!("'{}' was replaced by someone else while it was being stored", self.name));
        }
        // The new name is durable once the directory is.
        let _ = nix::unistd::fsync(self.dir.fd());
        Ok(self.dir.path().join(&self.name))
    }

    /// Links an anonymous file under `name` (fails if the name is taken).
    fn link(&self, file: &File, name: &str) -> nix::Result<()> {
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        linkat(AT_FDCWD, path.as_str(), self.dir.fd(), name, AtFlags::AT_SYMLINK_FOLLOW)
    }

    /// Links an anonymous file under a random hidden name, then renames it
    /// over whatever holds the final name.
    fn link_and_rename(&self, file: &File) -> nix::Result<()> {
        loop {
            let random = getrandom::u64().map_err(|_| Errno::EIO)?;
            let hidden = format!("{TEMP_PREFIX}{random:016x}{TEMP_SUFFIX}");
            match self.link(file, &hidden) {
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(e),
                Ok(()) => {
                    let renamed = renameat(self.dir.fd(), hidden.as_str(), self.dir.fd(), self.name.as_str());
                    if renamed.is_err() {
                        let _ = self.dir.unlink(&hidden);
                    }
                    return renamed;
                }
            }
        }
    }
}

impl Drop for Incoming {
    /// An abandoned file leaves nothing behind: an anonymous one vanishes
    /// with its descriptor, a named one is removed.
    fn drop(&mut self) {
        if let Some(Staging::Named(temp)) = self.staging.take() {
            let _ = self.dir.unlink(&temp.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Arc<ReceiveDir> {
        Arc::new(ReceiveDir::open(path, 0o700).unwrap())
    }

    #[test]
    fn content_appears_under_its_name_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = Incoming::create(&open(dir.path()), "out.bin", false, Some(11)).unwrap();
        file.write(b"hello ").unwrap();
        file.write(b"world").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "visible before it was verified");
        let path = file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, FILE_MODE);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn existing_files_are_kept_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let receive = open(dir.path());
        std::fs::write(dir.path().join("keep.txt"), b"mine").unwrap();
        assert!(Incoming::create(&receive, "keep.txt", false, None).unwrap_err().contains("already exists"));
        let mut file = Incoming::create(&receive, "keep.txt", true, None).unwrap();
        file.write(b"theirs").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("keep.txt")).unwrap(), b"theirs");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no hidden name left");
        // Taken between the start and the end of a transfer: refused, nothing replaced.
        let mut late = Incoming::create(&receive, "late.txt", false, None).unwrap();
        std::fs::write(dir.path().join("late.txt"), b"first come").unwrap();
        late.write(b"second").unwrap();
        assert!(late.commit().unwrap_err().contains("appeared on the receiver"));
        assert_eq!(std::fs::read(dir.path().join("late.txt")).unwrap(), b"first come");
    }

    #[test]
    fn an_abandoned_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = Incoming::create(&open(dir.path()), "gone.bin", false, None).unwrap();
        file.write(b"partial").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_link_planted_under_the_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let receive = open(dir.path());
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("link")).unwrap();
        assert!(Incoming::create(&receive, "link", false, None).is_err());
        let mut file = Incoming::create(&receive, "link", true, None).unwrap();
        file.write(b"attack").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "the link's target was written");
    }

    #[test]
    fn a_file_larger_than_the_free_space_is_refused_without_paths() {
        let dir = tempfile::tempdir().unwrap();
        let refused = Incoming::create(&open(dir.path()), "huge.bin", false, Some(1 << 63)).unwrap_err();
        assert!(refused.contains("has room for"), "{refused}");
        assert!(!refused.contains(dir.path().to_str().unwrap()), "a path reached the sender: {refused}");
    }

    #[test]
    fn the_named_fallback_stores_and_cleans_up_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut receive = ReceiveDir::open(dir.path(), 0o700).unwrap();
        receive.force_named_files();
        let receive = Arc::new(receive);
        let mut file = Incoming::create(&receive, "named.bin", false, None).unwrap();
        file.write(b"content").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file");
        file.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("named.bin")).unwrap(), b"content");
        drop(Incoming::create(&receive, "dropped.bin", false, None).unwrap());
        let mut over = Incoming::create(&receive, "named.bin", true, None).unwrap();
        over.write(b"again").unwrap();
        over.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("named.bin")).unwrap(), b"again");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the stored file");
    }
}
