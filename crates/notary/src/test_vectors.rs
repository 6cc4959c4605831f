//! Where the Notary Project's interoperability vectors are
//! (`shared/notary-vectors`, kept beside the checkout, not in it): the
//! `PAVILION_NOTARY_VECTORS` variable, else the first `shared/notary-vectors`
//! found going up from this crate's directory. Used by the tests.

use std::path::PathBuf;

/// The vectors directory; panics with instructions when it cannot be found
/// (tests that need it cannot run without it).
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PAVILION_NOTARY_VECTORS").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        let candidate = dir.join("shared/notary-vectors");
        if candidate.join("README.txt").is_file() {
            return candidate;
        }
    }
    panic!(
        "Notary vectors not found: set PAVILION_NOTARY_VECTORS or keep shared/notary-vectors beside the checkout ({})",
        start.display()
    )
}
