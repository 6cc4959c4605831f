//! Where a pulled layer may be written: a relative path inside the output
//! directory, checked before any byte is written.

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
}
