//! The receiving directory, opened once at start: every file is created,
//! named and checked relative to this open descriptor, so renaming or
//! replacing the directory's path while the receiver runs changes nothing.

use std::fs::{DirBuilder, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::transfer::name::{TEMP_PREFIX, TEMP_SUFFIX, is_temp_name};

/// A receiving directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Something else has that path.
    #[error("{} is not a directory; pick one with --dir", .0.display())]
    NotADirectory(PathBuf),
    /// It could not be created or opened.
    #[error("cannot open the directory {}: {}", .path.display(), crate::net::describe(.source))]
    Open {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The receiver could not create a file in it.
    #[error("cannot write into {}: {}; pick a directory this user can write with --dir", .path.display(), crate::net::describe(.source))]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// The directory files land in, and how temporary files are made there.
#[derive(Debug)]
pub struct ReceiveDir {
    path: PathBuf,
    fd: File,
    anonymous: bool,
    cleaned: usize,
}

impl ReceiveDir {
    /// Opens `path`, creating it (and its parents) with `mode` when missing;
    /// checks that a file can be created in it, and removes temporary files
    /// left by receivers that were killed.
    ///
    /// # Errors
    /// When the path is not a directory, cannot be created or opened, or
    /// does not let this user create files.
    pub fn open(path: &Path, mode: u32) -> Result<Self, DirError> {
        let open_error = |source| DirError::Open { path: path.to_owned(), source };
        if path.exists() && !path.is_dir() {
            return Err(DirError::NotADirectory(path.to_owned()));
        }
        DirBuilder::new().recursive(true).mode(mode).create(path).map_err(open_error)?;
        let path = path.canonicalize().map_err(open_error)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(nix::fcntl::AT_FDCWD, &path, flags, Mode::empty())
            .map_err(|e| DirError::Open { path: path.clone(), source: e.into() })?;
        let mut dir = ReceiveDir { path, fd: File::from(fd), anonymous: true, cleaned: 0 };
        // Writable, and can it make anonymous files? One probe answers both.
        match dir.anonymous_file() {
            Ok(_) => {}
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => dir.anonymous = false,
            Err(e) => return Err(DirError::NotWritable { path: dir.path, source: e.into() }),
        }
        if !dir.anonymous {
            let probe = dir
                .named_file()
                .map_err(|source| DirError::NotWritable { path: dir.path.clone(), source })?;
            drop(probe);
        }
        dir.cleaned = dir.remove_stale();
        Ok(dir)
    }

    /// The directory, as an absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many stale temporary files the start removed.
    pub fn cleaned(&self) -> usize {
        self.cleaned
    }

    /// True when temporary files are anonymous (`O_TMPFILE`): they have no
    /// name anyone could guess, and vanish if the receiver is killed.
    pub fn has_anonymous_files(&self) -> bool {
        self.anonymous
    }

    /// Makes named temporary files, as on a filesystem without `O_TMPFILE`.
    #[cfg(test)]
    pub(super) fn force_named_files(&mut self) {
        self.anonymous = false;
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes this user may still write on the directory's filesystem.
    ///
    /// # Errors
    /// When the filesystem cannot tell.
    pub fn available(&self) -> io::Result<u64> {
        let stats = nix::sys::statvfs::fstatvfs(&self.fd)?;
        Ok(stats.blocks_available().saturating_mul(stats.fragment_size()))
    }

    /// True when something (a file, a link, anything) has `name` in the directory.
    pub fn contains(&self, name: &str) -> bool {
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// A new file without a name, private to this user, in the directory.
    pub(super) fn anonymous_file(&self) -> Result<File, Errno> {
        let flags = OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        openat(&self.fd, ".", flags, Mode::from_bits_truncate(0o600)).map(File::from)
    }

    /// A new temporary file with a random name, locked for as long as it is
    /// open so that [`ReceiveDir::open`] of another receiver leaves it alone.
    pub(super) fn named_file(&self) -> io::Result<NamedTemp> {
        loop {
            let name =
                format!("{TEMP_PREFIX}{:016x}{TEMP_SUFFIX}", getrandom::u64().map_err(io::Error::other)?);
            let flags =
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
            match openat(&self.fd, name.as_str(), flags, Mode::from_bits_truncate(0o600)) {
                Ok(fd) => {
                    let file = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock)
                        .map_err(|(_, e)| io::Error::from(e))?;
                    return Ok(NamedTemp { name, file });
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes `name` from the directory, whatever it is (never what a link points to).
    pub(super) fn unlink(&self, name: &str) -> nix::Result<()> {
        unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
    }

    /// Removes the temporary files no live receiver holds: their receiver
    /// was killed before it could clean up. Returns how many.
    fn remove_stale(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.path) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| is_temp_name(n)) else { continue };
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
            let Ok(fd) = openat(&self.fd, name, flags, Mode::empty()) else { continue };
            let file = File::from(fd);
            let Ok(meta) = file.metadata() else { continue };
            // Only a regular file whose lock nobody holds.
            if !meta.is_file() {
                continue;
            }
            let Ok(locked) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else { continue };
            let same = fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|now| now.st_ino == meta.ino() && now.st_dev == meta.dev());
            if same && self.unlink(name).is_ok() {
                removed += 1;
            }
            drop(locked);
        }
        removed
    }
}

/// A named temporary file, locked while open.
#[derive(Debug)]
pub(super) struct NamedTemp {
    pub(super) name: String,
    pub(super) file: Flock<File>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_missing_directory_is_created_private() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("a/b");
        let dir = ReceiveDir::open(&path, 0o700).unwrap();
        assert!(dir.has_anonymous_files(), "ext4 and tmpfs make O_TMPFILE files");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let file = parent.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(ReceiveDir::open(&file, 0o700), Err(DirError::NotADirectory(_))));
    }

    #[test]
    fn stale_temporary_files_go_and_live_ones_stay() {
        let path = tempfile::tempdir().unwrap();
        let dir = ReceiveDir::open(path.path(), 0o700).unwrap();
        let live = dir.named_file().unwrap();
        let stale = format!("{TEMP_PREFIX}0123456789abcdef{TEMP_SUFFIX}");
        std::fs::write(path.path().join(&stale), b"left by a killed receiver").unwrap();
        std::fs::write(path.path().join("keep.part"), b"not ours").unwrap();
        let again = ReceiveDir::open(path.path(), 0o700).unwrap();
        assert_eq!(again.cleaned(), 1);
        assert!(!path.path().join(&stale).exists());
        assert!(path.path().join(&live.name).exists(), "a live receiver's file was removed");
        assert!(path.path().join("keep.part").exists());
    }
}
