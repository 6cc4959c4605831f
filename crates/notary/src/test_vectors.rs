//! Where the Notary Project's interoperability vectors are: vendored in this
//! crate's `testdata/notary-vectors` (sources, commits and licence in its
//! SOURCE.md), so a plain clone tests with nothing beside it. Used by the
//! tests of this crate and of the CLI.

use std::path::PathBuf;

/// The vectors directory. Panics when it is missing, which only happens in a
/// packaged copy of the crate that left the test data out.
pub fn dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/notary-vectors");
    assert!(
        dir.join("SOURCE.md").is_file(),
        "Notary vectors missing at {} (they are part of the repository)",
        dir.display()
    );
    dir
}
