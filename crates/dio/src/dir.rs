//! Writing below a directory without ever following a symbolic link there.
//!
//! A pull writes into a directory that other people (or an earlier
//! artifact) may have touched. A symlink planted at a name the client is
//! about to write (`FILE.partial`, its progress record, a temporary
//! archive) or at a subdirectory would send the bytes elsewhere. So the
//! client opens the output directory once, walks each subdirectory a
//! component at a time (`O_DIRECTORY|O_NOFOLLOW`), and creates, opens,
//! renames and removes files only by a single name relative to such a
//! handle (`openat`/`renameat`/`linkat`/`unlinkat`, `O_NOFOLLOW`, new files
//! with `O_EXCL`). Checking a path and then writing to it by name would
//! leave a window between the two; a handle does not.

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// A symbolic link found where the client writes or walks: the operation
/// is refused rather than followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymlinkRefused {
    /// The link's path.
    pub path: PathBuf,
}

impl std::fmt::Display for SymlinkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is a symbolic link; refusing to write through it",
            self.path.display()
        )
    }
}

impl std::error::Error for SymlinkRefused {}

/// The refusal inside `e`, if `e` is one.
pub fn refused(e: &io::Error) -> Option<&SymlinkRefused> {
    e.get_ref()?.downcast_ref::<SymlinkRefused>()
}

/// A directory opened as a handle; every name given to its methods is one
/// path component, resolved relative to the handle without following a
/// symlink.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn single(name: &OsStr) -> io::Result<()> {
    let mut c = Path::new(name).components();
    match (c.next(), c.next()) {
        (Some(Component::Normal(n)), None) if n == name => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        )),
    }
}

impl Dir {
    /// Opens `path` as the root of what will be written. `path` itself is
    /// the caller's choice (a symlink in it is followed: the user named
    /// it); nothing below it will be.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rfs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at(path, e.into()))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Where this directory is (for messages and cache keys only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory (for messages and cache keys).
    pub fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The error for a failed operation on `name`: a refusal when a
    /// symlink sits there, else `e` naming the path.
    fn fail(&self, name: &OsStr, e: Errno) -> io::Error {
        let is_link = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink);
        if is_link {
            return io::Error::other(SymlinkRefused {
                path: self.join(name),
            });
        }
        at(&self.join(name), e.into())
    }

    /// The directory `rel` below this one, each component opened without
    /// following a symlink (a symlinked component is refused). With
    /// `created`, missing components are made, and each one made is
    /// pushed there (relative to `self`), so a failed pull can remove them.
    pub fn subdir(&self, rel: &Path, mut created: Option<&mut Vec<PathBuf>>) -> io::Result<Dir> {
        let mut cur: Option<Dir> = None;
        let mut walked = PathBuf::new();
        for c in rel.components() {
            let name = match c {
                Component::Normal(n) => n,
                Component::CurDir => continue,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} is not a plain relative path", rel.display()),
                    ))
                }
            };
            let parent = cur.as_ref().unwrap_or(self);
            walked.push(name);
            let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
            let fd = match rfs::openat(&parent.fd, name, flags, Mode::empty()) {
                Err(Errno::NOENT) if created.is_some() => {
                    match rfs::mkdirat(&parent.fd, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) => {
                            if let Some(list) = created.as_deref_mut() {
                                list.push(walked.clone());
                            }
                        }
                        Err(Errno::EXIST) => {} // made meanwhile by someone else
                        Err(e) => return Err(parent.fail(name, e)),
                    }
                    rfs::openat(&parent.fd, name, flags, Mode::empty())
                        .map_err(|e| parent.fail(name, e))?
                }
                r => r.map_err(|e| parent.fail(name, e))?,
            };
            cur = Some(Dir {
                fd,
                path: parent.join(name),
            });
        }
        match cur {
            Some(d) => Ok(d),
            None => self.try_clone(),
        }
    }

    /// Another handle to the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// Creates file `name`, which must not exist (`O_EXCL`: a symlink there
    /// is refused, never followed), opened for reading and writing.
    pub fn create_new(&self, name: &OsStr) -> io::Result<File> {
        single(name)?;
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
        rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o666))
            .map(File::from)
            .map_err(|e| self.fail(name, e))
    }

    /// Creates file `name` afresh: a regular file left there (by an earlier
    /// run) is replaced; a symlink or anything else is refused.
    pub fn create_replacing(&self, name: &OsStr) -> io::Result<File> {
        if let Some(meta) = self.metadata(name)? {
            if meta.file_type().is_symlink() {
                return Err(io::Error::other(SymlinkRefused {
                    path: self.join(name),
                }));
            }
            if !meta.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a regular file",
                        self.join(name).display()
                    ),
                ));
            }
            self.remove_file(name)?;
        }
        self.create_new(name)
    }

    /// Opens the existing regular file `name` (for writing too with
    /// `write`) without following a symlink. Anything but a regular file
    /// is refused (a FIFO would block, a device is not ours), and so is a
    /// file with other hard links when writing (its bytes live elsewhere too).
    pub fn open_file(&self, name: &OsStr, write: bool) -> io::Result<File> {
        let mode = if write { OFlags::RDWR } else { OFlags::RDONLY };
        self.open_with(name, mode, write)
    }

    /// Opens the existing regular file `name` for writing with `O_DIRECT`;
    /// `None` where the filesystem refuses direct I/O. The caller checks
    /// it is the file it already has open ([`same_file`]).
    pub fn open_direct(&self, name: &OsStr) -> Option<File> {
        self.open_with(name, OFlags::WRONLY | OFlags::DIRECT, true)
            .ok()
    }

    fn open_with(&self, name: &OsStr, mode: OFlags, write: bool) -> io::Result<File> {
        single(name)?;
        // NONBLOCK: opening a FIFO must not hang; it is refused below.
        let flags = mode | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let f = rfs::openat(&self.fd, name, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| self.fail(name, e))?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.join(name).display()),
            ));
        }
        if write && meta.nlink() > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} has other hard links; refusing to write to it",
                    self.join(name).display()
                ),
            ));
        }
        Ok(f)
    }

    /// What is at `name` (the link itself for a symlink); `None` when nothing.
    pub fn metadata(&self, name: &OsStr) -> io::Result<Option<Metadata>> {
        single(name)?;
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd).metadata().map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(at(&self.join(name), e.into())),
        }
    }

    /// Renames `from` here to `to` in `to_dir`; whatever is at `to` (a
    /// symlink included) is replaced, never followed.
    pub fn rename(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        single(from)?;
        single(to)?;
        rfs::renameat(&self.fd, from, &to_dir.fd, to).map_err(|e| at(&to_dir.join(to), e.into()))
    }

    /// Hard-links `from` here (a symlink there is linked as itself, not
    /// followed) as the new name `to` in `to_dir`.
    pub fn hard_link(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        single(from)?;
        single(to)?;
        rfs::linkat(&self.fd, from, &to_dir.fd, to, AtFlags::empty())
            .map_err(|e| at(&to_dir.join(to), e.into()))
    }

    /// Removes the name `name` (a symlink is removed, not its target).
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        single(name)?;
        rfs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(|e| at(&self.join(name), e.into()))
    }

    /// Removes the empty directory `name`.
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        single(name)?;
        rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
            .map_err(|e| at(&self.join(name), e.into()))
    }

    /// Bytes an unprivileged writer may still use on this directory's
    /// filesystem; `None` when the filesystem does not say.
    pub fn available(&self) -> Option<u64> {
        let st = rfs::fstatvfs(&self.fd).ok()?;
        (st.f_blocks > 0).then(|| st.f_bavail.saturating_mul(st.f_frsize.max(1)))
    }

    /// Flushes the directory itself (renames in it) to disk.
    pub fn sync(&self) -> io::Result<()> {
        rfs::fsync(&self.fd).map_err(|e| at(&self.path, e.into()))
    }

    /// Removes the directories in `created` (paths relative to this one, as
    /// [`Dir::subdir`] recorded them), deepest first, where still empty.
    pub fn remove_created_dirs(&self, created: &[PathBuf]) {
        for rel in created.iter().rev() {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            if let Ok(d) = self.subdir(parent, None) {
                let _ = d.remove_dir(name);
            }
        }
    }
}

/// Whether `a` and `b` are the same file (device and inode).
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// `name` with `suffix` appended (`w.bin` -> `w.bin.partial`).
pub fn with_suffix(name: &OsStr, suffix: &str) -> OsString {
    let mut s = name.to_os_string();
    s.push(suffix);
    s
}

/// `e` with the path it concerns in its message.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("pavilion-dio-dir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn never_follows_a_symlink_below_the_root() {
        let d = scratch("links");
        let outside = d.join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        let root_path = d.join("root");
        std::fs::create_dir(&root_path).unwrap();
        symlink(&outside, root_path.join("f")).unwrap();
        symlink(&d, root_path.join("sub")).unwrap();
        let root = Dir::open(&root_path).unwrap();
        let name = OsStr::new("f");
        for e in [
            root.create_new(name).unwrap_err(),
            root.create_replacing(name).unwrap_err(),
            root.open_file(name, true).unwrap_err(),
            root.open_file(name, false).unwrap_err(),
            root.subdir(Path::new("sub/x"), Some(&mut Vec::new()))
                .unwrap_err(),
        ] {
            assert!(refused(&e).is_some(), "{e}");
        }
        assert!(root
            .metadata(name)
            .unwrap()
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert!(root.create_new(OsStr::new("a/b")).is_err(), "one name only");
        assert!(root.create_new(OsStr::new("..")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn creates_walks_renames_and_cleans_up() {
        let d = scratch("ops");
        let root = Dir::open(&d).unwrap();
        let mut made = Vec::new();
        let sub = root.subdir(Path::new("a/b"), Some(&mut made)).unwrap();
        assert_eq!(made, [PathBuf::from("a"), PathBuf::from("a/b")]);
        let mut f = sub.create_new(OsStr::new("x.partial")).unwrap();
        f.write_all(b"bytes").unwrap();
        assert!(sub.create_new(OsStr::new("x.partial")).is_err(), "O_EXCL");
        sub.rename(OsStr::new("x.partial"), &sub, OsStr::new("x"))
            .unwrap();
        let mut s = String::new();
        sub.open_file(OsStr::new("x"), false)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "bytes");
        sub.hard_link(OsStr::new("x"), &root, OsStr::new("y"))
            .unwrap();
        assert!(
            sub.open_file(OsStr::new("x"), true).is_err(),
            "a file with other links is not written"
        );
        root.remove_file(OsStr::new("y")).unwrap();
        sub.remove_file(OsStr::new("x")).unwrap();
        root.remove_created_dirs(&made);
        assert!(!d.join("a").exists());
        assert!(root.available().is_some_and(|n| n > 0));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
