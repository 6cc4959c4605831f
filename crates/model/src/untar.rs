//! Extraction of tar layers (`application/vnd.cncf.model.*.v1.tar`, what
//! modctl writes): every entry is listed and checked first, and only then
//! are files written, each through `FILE.partial` and a rename. Only
//! regular files and directories are accepted: links, devices and FIFOs in
//! a model are refused, as are paths that are absolute, contain `..` or
//! pass through a symlink. Writes go through directory handles
//! ([`pavilion_dio::Dir`]), so a symlink planted in the output directory
//! (at a subdirectory or an entry's `.partial` name) is refused, never
//! followed, even if it appears after the check.

use crate::paths::{layer_path, PathError};
use pavilion_dio::dir::with_suffix;
use pavilion_dio::Dir;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Why a tar layer was not extracted.
#[derive(Debug, thiserror::Error)]
pub enum UntarError {
    /// Reading the archive or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An entry's path is unsafe.
    #[error("{0}")]
    Path(#[source] PathError),
    /// An entry is neither a regular file nor a directory.
    #[error("tar entry {0:?} is a {1}, which a model layer may not contain")]
    Unsupported(String, &'static str),
    /// An entry's name is not UTF-8.
    #[error("tar entry name is not UTF-8: {0:?}")]
    Name(String),
}

/// A file written from a tar layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Path relative to the output directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// A checked entry of a tar layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Path relative to the output directory.
    pub path: String,
    /// A directory (else a regular file).
    pub dir: bool,
    /// Its size in bytes (0 for a directory), as the archive declares it:
    /// what the pull rules judge before extraction.
    pub size: u64,
}

fn kind_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

/// Walks the archive from its start, calling `each` with every file or
/// directory entry's checked name; refuses anything else.
fn walk(
    archive: &File,
    mut each: impl FnMut(&str, &mut tar::Entry<'_, BufReader<File>>) -> Result<(), UntarError>,
) -> Result<(), UntarError> {
    let mut file = archive.try_clone()?;
    file.seek(SeekFrom::Start(0))?;
    let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw)
            .map_err(|e| UntarError::Name(String::from_utf8_lossy(e.as_bytes()).into_owned()))?;
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let t = entry.header().entry_type();
        match t {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => return Err(UntarError::Unsupported(name, kind_name(other))),
        }
        if name.is_empty() && t == tar::EntryType::Directory {
            continue; // "./" itself
        }
        each(&name, &mut entry)?;
    }
    Ok(())
}

/// Lists and checks every entry of the tar `archive` for extraction under
/// `root` (types, names, symlinks already in `root`); writes nothing.
pub fn list_tar(archive: &File, root: &Path) -> Result<Vec<TarEntry>, UntarError> {
    let mut out = Vec::new();
    walk(archive, |name, entry| {
        layer_path(root, name).map_err(UntarError::Path)?;
        let dir = entry.header().entry_type() == tar::EntryType::Directory;
        out.push(TarEntry {
            path: name.to_string(),
            dir,
            size: if dir { 0 } else { entry.size() },
        });
        Ok(())
    })?;
    Ok(out)
}

/// A refused symlink becomes the unsafe-path error naming the entry.
fn entry_error(name: &str, e: std::io::Error) -> UntarError {
    match pavilion_dio::refused(&e) {
        Some(r) => UntarError::Path(PathError::ThroughSymlink(
            name.to_string(),
            r.path.display().to_string(),
        )),
        None => UntarError::Io(e),
    }
}

/// What one extraction made, to be removed if it fails part way: a tar
/// layer is placed whole or not at all.
#[derive(Default)]
struct Made {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
    partial: Option<(Dir, std::ffi::OsString)>,
}

impl Made {
    fn undo(self, root: &Dir) {
        if let Some((dir, name)) = &self.partial {
            let _ = dir.remove_file(name);
        }
        for f in &self.files {
            if let (Some(parent), Some(name)) = (f.parent(), f.file_name()) {
                if let Ok(d) = root.subdir(parent, None) {
                    let _ = d.remove_file(name);
                }
            }
        }
        root.remove_created_dirs(&self.dirs);
    }
}

/// Extracts the tar `archive` under `root` after checking every entry; on
/// failure, what this call wrote is removed.
pub fn extract_tar(archive: &File, root: &Dir) -> Result<Vec<Extracted>, UntarError> {
    list_tar(archive, root.path())?;
    let mut made = Made::default();
    let mut out = Vec::new();
    let result = walk(archive, |name, entry| {
        // Checked again: an earlier entry of this archive may not create a
        // symlink (they are refused), but the directory may have changed.
        layer_path(root.path(), name).map_err(UntarError::Path)?;
        let rel = Path::new(name);
        if entry.header().entry_type() == tar::EntryType::Directory {
            root.subdir(rel, Some(&mut made.dirs))
                .map_err(|e| entry_error(name, e))?;
            return Ok(());
        }
        let (Some(parent), Some(file_name)) = (rel.parent(), rel.file_name()) else {
            return Err(UntarError::Path(PathError::NotRelative(name.to_string())));
        };
        let dir = root
            .subdir(parent, Some(&mut made.dirs))
            .map_err(|e| entry_error(name, e))?;
        let partial = with_suffix(file_name, ".partial");
        let mut f = dir
            .create_replacing(&partial)
            .map_err(|e| entry_error(name, e))?;
        made.partial = Some((dir.try_clone()?, partial.clone()));
        let size = std::io::copy(&mut entry.take(u64::MAX), &mut f)?;
        f.sync_all()?;
        if dir
            .metadata(file_name)?
            .is_some_and(|m| m.file_type().is_symlink())
        {
            return Err(UntarError::Path(PathError::ThroughSymlink(
                name.to_string(),
                dir.join(file_name).display().to_string(),
            )));
        }
        dir.rename(&partial, &dir, file_name)?;
        made.partial = None;
        made.files.push(rel.to_path_buf());
        out.push(Extracted {
            path: name.to_string(),
            size,
        });
        Ok(())
    });
    match result {
        Ok(()) => Ok(out),
        Err(e) => {
            made.undo(root);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn archive(dir: &Path, entries: &[(&str, tar::EntryType, &[u8])]) -> std::path::PathBuf {
        let p = dir.join("layer.tar");
        let mut b = tar::Builder::new(File::create(&p).unwrap());
        for (name, t, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *t == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            // Raw name bytes, so malicious names reach the reader unchanged.
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.finish().unwrap();
        p
    }

    #[test]
    fn extracts_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let a = archive(
            dir.path(),
            &[
                ("sub/", tar::EntryType::Directory, b""),
                ("sub/config.json", tar::EntryType::Regular, b"{}"),
                ("./README.md", tar::EntryType::Regular, b"# hi"),
            ],
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let files = extract_tar(&File::open(&a).unwrap(), &Dir::open(&out).unwrap()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(std::fs::read(out.join("sub/config.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(out.join("README.md")).unwrap(), b"# hi");
    }

    #[test]
    fn refuses_unsafe_entries_before_writing_anything() {
        for bad in [
            ("../escape", tar::EntryType::Regular),
            ("/etc/evil", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
            ("dev", tar::EntryType::Char),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let a = archive(
                dir.path(),
                &[
                    ("first.txt", tar::EntryType::Regular, b"x"),
                    (bad.0, bad.1, b""),
                ],
            );
            let out = dir.path().join("out");
            std::fs::create_dir(&out).unwrap();
            let root = Dir::open(&out).unwrap();
            assert!(
                extract_tar(&File::open(&a).unwrap(), &root).is_err(),
                "{bad:?} accepted"
            );
            assert!(
                !out.join("first.txt").exists(),
                "{bad:?}: wrote before checking"
            );
        }
    }

    #[test]
    fn a_planted_symlink_is_refused_and_the_layer_undone() {
        let dir = tempfile::tempdir().unwrap();
        let a = archive(
            dir.path(),
            &[
                ("a.txt", tar::EntryType::Regular, b"first"),
                ("sub/b.txt", tar::EntryType::Regular, b"second"),
            ],
        );
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("sub")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, out.join("sub/b.txt.partial")).unwrap();
        let e = extract_tar(&File::open(&a).unwrap(), &Dir::open(&out).unwrap()).unwrap_err();
        assert!(
            matches!(e, UntarError::Path(PathError::ThroughSymlink(..))),
            "{e}"
        );
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert!(
            !out.join("a.txt").exists(),
            "the layer is placed whole or not at all"
        );
    }
}
