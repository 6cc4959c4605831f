//! Media types Pavilion recognises.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI empty JSON descriptor media type (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker Image Manifest V2, Schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Media types accepted at `PUT /v2/<name>/manifests/<ref>`.
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// True for the index-like types (whose entries are manifests, not blobs).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether layers of `media_type` are non-distributable: the image-spec's
/// (deprecated) `nondistributable` layer types and Docker's foreign layers,
/// whose bytes come from the descriptor's `urls`, not from the registry.
///
/// ```
/// use pavilion_oci::media_type::is_non_distributable;
/// assert!(is_non_distributable("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"));
/// assert!(is_non_distributable("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"));
/// assert!(!is_non_distributable("application/vnd.oci.image.layer.v1.tar+gzip"));
/// ```
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// Whether `s` is a media type `type/subtype` with RFC 6838 restricted names
/// (what the image-spec requires of `artifactType`).
///
/// ```
/// use pavilion_oci::media_type::is_valid;
/// assert!(is_valid("application/vnd.cncf.model.manifest.v1+json"));
/// assert!(!is_valid("application"));
/// assert!(!is_valid("a/b\u{0}"));
/// ```
pub fn is_valid(s: &str) -> bool {
    fn restricted_name(p: &str) -> bool {
        let b = p.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(c))
    }
    matches!(s.split_once('/'), Some((t, sub)) if restricted_name(t) && restricted_name(sub))
}
