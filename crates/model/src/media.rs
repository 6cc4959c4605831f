//! ModelPack media types and annotation keys, current and legacy.

/// `artifactType` of a model manifest.
pub const MODEL_MANIFEST: &str = "application/vnd.cncf.model.manifest.v1+json";
/// Media type of the model config document.
pub const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// Layer annotation: the file's path relative to the model root.
pub const ANNOTATION_FILEPATH: &str = "org.cncf.model.filepath";
/// Layer annotation: the file's metadata as a JSON string.
pub const ANNOTATION_FILE_METADATA: &str = "org.cncf.model.file.metadata+json";
/// The key ORAS and friends use to name a file.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// What older tools wrote instead of [`ANNOTATION_FILEPATH`].
pub const LEGACY_ANNOTATION_FILEPATH: &str = "org.cnai.model.filepath";
/// The annotations naming a layer's file, first present wins. The policy
/// input (`pavilion_policy::input::FILE_PATH_ANNOTATIONS`) holds the same
/// list, so a rule sees the name the client writes; neither crate may
/// depend on the other, and a test in the CLI (`commands::pull`) pins the
/// two lists together.
pub const FILE_PATH_ANNOTATIONS: [&str; 3] = [
    ANNOTATION_FILEPATH,
    LEGACY_ANNOTATION_FILEPATH,
    ANNOTATION_TITLE,
];

/// Maps a legacy `vnd.cnai.model.*` media type to its `vnd.cncf.model.*` name.
pub fn normalize(media_type: &str) -> String {
    match media_type.strip_prefix("application/vnd.cnai.model.") {
        Some(rest) => format!("application/vnd.cncf.model.{rest}"),
        None => media_type.to_string(),
    }
}

/// True for a layer whose blob is the file itself (not a tar).
pub fn is_raw_layer(media_type: &str) -> bool {
    let m = normalize(media_type);
    m.starts_with("application/vnd.cncf.model.") && m.ends_with(".raw")
}

/// The file path a layer carries (ModelPack's annotation, its legacy name,
/// or ORAS's title), if the layer is a file at all.
pub fn layer_filepath(layer: &pavilion_oci::Descriptor) -> Option<&str> {
    let ann = layer.annotations.as_ref()?;
    FILE_PATH_ANNOTATIONS
        .iter()
        .find_map(|k| ann.get(*k))
        .map(String::as_str)
}

/// True for a layer whose blob is an uncompressed tar of files (the layout
/// modctl writes by default).
pub fn is_tar_layer(media_type: &str) -> bool {
    let m = normalize(media_type);
    m.starts_with("application/vnd.cncf.model.") && m.ends_with(".tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names() {
        assert_eq!(
            normalize("application/vnd.cnai.model.weight.v1.raw"),
            "application/vnd.cncf.model.weight.v1.raw"
        );
        assert!(is_raw_layer("application/vnd.cnai.model.doc.v1.raw"));
        assert!(!is_raw_layer("application/vnd.cncf.model.weight.v1.tar"));
        assert!(is_tar_layer("application/vnd.cnai.model.weight.v1.tar"));
        assert!(!is_tar_layer(
            "application/vnd.cncf.model.weight.v1.tar+gzip"
        ));
        assert_eq!(normalize(MODEL_CONFIG), MODEL_CONFIG);
    }
}
