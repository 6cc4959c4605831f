//! Extraction of tar layers (`application/vnd.cncf.model.*.v1.tar`, what
//! modctl writes): every entry is listed and checked first, and only then
//! are files written, each through `FILE.partial` and a rename. Only
//! regular files and directories are accepted: links, devices and FIFOs in
//! a model are refused, as are paths that are absolute, contain `..` or
//! pass through a symlink.

use crate::paths::{layer_path, PathError};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

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

fn kind_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

/// Walks the archive, calling `each` with every file or directory entry's
/// checked name; refuses anything else.
fn walk(
    archive: &Path,
    mut each: impl FnMut(&str, &mut tar::Entry<'_, BufReader<File>>) -> Result<(), UntarError>,
) -> Result<(), UntarError> {
    let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, File::open(archive)?));
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

/// Extracts the tar at `archive` under `root` after checking every entry.
pub fn extract_tar(archive: &Path, root: &Path) -> Result<Vec<Extracted>, UntarError> {
    walk(archive, |name, _| {
        layer_path(root, name).map(|_| ()).map_err(UntarError::Path)
    })?;
    let mut out = Vec::new();
    walk(archive, |name, entry| {
        // Checked again: an earlier entry of this archive may not create a
        // symlink (they are refused), but the directory may have changed.
        let dest = layer_path(root, name).map_err(UntarError::Path)?;
        if entry.header().entry_type() == tar::EntryType::Directory {
            std::fs::create_dir_all(&dest)?;
            return Ok(());
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut partial = dest.as_os_str().to_os_string();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let mut f = File::create(&partial)?;
        let size = std::io::copy(&mut entry.take(u64::MAX), &mut f)?;
        f.sync_all()?;
        std::fs::rename(&partial, &dest)?;
        out.push(Extracted {
            path: name.to_string(),
            size,
        });
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let files = extract_tar(&a, &out).unwrap();
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
            assert!(extract_tar(&a, &out).is_err(), "{bad:?} accepted");
            assert!(
                !out.join("first.txt").exists(),
                "{bad:?}: wrote before checking"
            );
        }
    }
}
