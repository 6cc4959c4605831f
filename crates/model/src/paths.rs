//! Where a pulled layer may be written: a relative path inside the output
//! directory, checked before any byte is written, and named only once in
//! an artifact.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Why a layer's file path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Absolute, empty, or with `..` / root components.
    #[error("layer file path {0:?} is not a plain relative path")]
    NotRelative(String),
    /// An existing component of the path is a symbolic link.
    #[error("layer file path {0:?} would write through the symbolic link {1}")]
    ThroughSymlink(String, String),
    /// Two layers (or tar entries) of one artifact name the same file.
    #[error("layer file path {0:?} appears more than once in the artifact (the later would replace the earlier)")]
    Duplicate(String),
    /// One layer names a file where another puts a directory.
    #[error("layer file path {0:?} is both a file and a directory in the artifact")]
    FileAndDirectory(String),
    /// A name the client uses for its temporary files.
    #[error("layer file path {0:?} has a name pull reserves for its temporary files (*.partial, *.partial.json, .pavilion-layer-*)")]
    Reserved(String),
}

/// The suffixes of the partial file and its progress record that a
/// download writes beside its destination.
const TEMPORARY_SUFFIXES: [&str; 2] = [".partial", ".partial.json"];
/// The prefix of the temporary archives tar layers are fetched to.
const TEMPORARY_PREFIX: &str = ".pavilion-layer-";

/// Whether `name` (one path component) could be one of the client's
/// temporary files, which would replace it or be replaced or deleted by it.
fn reserved(name: &str) -> bool {
    name.starts_with(TEMPORARY_PREFIX) || TEMPORARY_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The files and directories one artifact writes. A path named twice is
/// refused (the later layer would silently replace the earlier), and so is
/// a path that is a file for one layer and a directory for another, and
/// any component named like the client's temporary files (`a.partial`
/// would be replaced while `a` downloads; `.pavilion-layer-*` is removed
/// by the cleanup).
#[derive(Debug, Default)]
pub struct PathSet {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

/// `rel` spelled one way (`a//b/` is `a/b`), with its proper ancestors.
fn normalized(rel: &str) -> (String, Vec<String>) {
    let parts: Vec<&str> = Path::new(rel)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect();
    let ancestors = (1..parts.len()).map(|i| parts[..i].join("/")).collect();
    (parts.join("/"), ancestors)
}

impl PathSet {
    /// Adds the file `rel` (a path [`layer_path`] accepted).
    pub fn add_file(&mut self, rel: &str) -> Result<(), PathError> {
        let (key, ancestors) = normalized(rel);
        refuse_reserved(&key)?;
        if self.files.contains(&key) {
            return Err(PathError::Duplicate(key));
        }
        if self.dirs.contains(&key) {
            return Err(PathError::FileAndDirectory(key));
        }
        self.add_ancestors(ancestors)?;
        self.files.insert(key);
        Ok(())
    }

    /// Adds the directory `rel` (a tar layer's directory entry).
    pub fn add_dir(&mut self, rel: &str) -> Result<(), PathError> {
        let (key, mut ancestors) = normalized(rel);
        refuse_reserved(&key)?;
        ancestors.push(key);
        self.add_ancestors(ancestors)
    }

    fn add_ancestors(&mut self, dirs: Vec<String>) -> Result<(), PathError> {
        if let Some(file) = dirs.iter().find(|d| self.files.contains(*d)) {
            return Err(PathError::FileAndDirectory(file.clone()));
        }
        self.dirs.extend(dirs);
        Ok(())
    }
}

fn refuse_reserved(key: &str) -> Result<(), PathError> {
    match key.split('/').any(reserved) {
        true => Err(PathError::Reserved(key.to_string())),
        false => Ok(()),
    }
}

/// The destination of layer file `rel` under `root`, refusing paths that
/// escape `root` or pass through a symlink that already exists there.
///
/// ```
/// use pavilion_model::layer_path;
/// let root = std::env::temp_dir();
/// assert!(layer_path(&root, "weights/model.safetensors").is_ok());
/// assert!(layer_path(&root, "../etc/passwd").is_err());
/// assert!(layer_path(&root, "/etc/passwd").is_err());
/// assert!(layer_path(&root, "").is_err());
/// ```
pub fn layer_path(root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let p = Path::new(rel);
    let plain = !rel.is_empty()
        && !rel.contains('\0')
        && !rel.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(PathError::NotRelative(rel.to_string()));
    }
    let mut at = root.to_path_buf();
    for c in p.components() {
        at.push(c);
        if at
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(PathError::ThroughSymlink(
                rel.to_string(),
                at.display().to_string(),
            ));
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["a/../../x", "./a", "a//b/..", "C:\\x", "a\0b"] {
            assert!(layer_path(dir.path(), bad).is_err(), "{bad:?}");
        }
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).unwrap();
        assert!(matches!(
            layer_path(dir.path(), "link/x"),
            Err(PathError::ThroughSymlink(..))
        ));
        assert!(matches!(
            layer_path(dir.path(), "link"),
            Err(PathError::ThroughSymlink(..))
        ));
        assert_eq!(
            layer_path(dir.path(), "a/b").unwrap(),
            dir.path().join("a/b")
        );
    }

    #[test]
    fn a_path_is_named_once() {
        let mut s = PathSet::default();
        s.add_file("a/b.bin").unwrap();
        s.add_dir("a").unwrap();
        s.add_dir("a/c").unwrap();
        s.add_file("a/c/d").unwrap();
        assert_eq!(
            s.add_file("a//b.bin/"),
            Err(PathError::Duplicate("a/b.bin".into()))
        );
        assert_eq!(
            s.add_file("a"),
            Err(PathError::FileAndDirectory("a".into()))
        );
        assert_eq!(
            s.add_file("a/b.bin/x"),
            Err(PathError::FileAndDirectory("a/b.bin".into()))
        );
        assert_eq!(
            s.add_dir("a/b.bin"),
            Err(PathError::FileAndDirectory("a/b.bin".into()))
        );
    }

    #[test]
    fn the_clients_temporary_names_are_refused() {
        let mut s = PathSet::default();
        for bad in [
            "a.partial",
            "d/a.partial.json",
            ".pavilion-layer-0123.tar",
            "x.partial/y",
            "d/.pavilion-layer-z",
        ] {
            assert!(
                matches!(s.add_file(bad), Err(PathError::Reserved(_))),
                "{bad}"
            );
            assert!(
                matches!(s.add_dir(bad), Err(PathError::Reserved(_))),
                "{bad}"
            );
        }
        for good in [
            "a.partials",
            "partial",
            "a.partial.jsonl",
            "pavilion-layer-1",
            "a.json",
        ] {
            s.add_file(good).unwrap();
        }
    }
}
