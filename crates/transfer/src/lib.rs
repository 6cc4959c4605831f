//! Model transfer as a library: what `pavilion push` and `pavilion pull`
//! do, for any program that moves models (the CLI, a node agent, a web
//! page). The caller builds a [`pavilion_client::Client`] (credentials,
//! TLS, a `ProgressFn` for the bytes on the wire), sets up a [`Push`] or a
//! [`Pull`], and runs it with a [`Progress`] that shows what it wants.
//!
//! - [`push`]: a model directory as CNCF ModelPack, or plain files
//!   ORAS-style; each file read once, known ones skipped or mounted.
//! - [`pull`]: signatures and pull rules decided first, every path checked
//!   before a byte is written, files placed from the content cache or
//!   downloaded as parallel verified ranges; [`place`] puts them there.
//! - [`document`]: the policy input of a remote artifact (also what
//!   `policy eval --ref` judges).
//!
//! Failures are a [`TransferError`], typed down to the client's, the
//! verifier's and the model crate's own errors; [`TransferError::kind`]
//! says which kind of failure one is.

pub mod document;
mod error;
pub mod place;
pub mod progress;
pub mod pull;
pub mod push;

pub use document::{artifact_document, Remote};
pub use error::{TransferError, UsageError, VerificationError};
pub use place::Source;
pub use progress::{Event, Progress, Quiet};
pub use pull::{Pull, PullReport, PulledFile};
pub use push::{Content, Push, PushReport, Sent};

#[cfg(test)]
mod tests {
    /// The client names a layer's file by the same annotations, in the same
    /// order, as the policy input shows it to the rules (two copies of one
    /// list: neither crate may depend on the other).
    #[test]
    fn the_client_and_the_rules_name_files_alike() {
        use pavilion_model::media;
        use pavilion_policy::input;
        assert_eq!(media::FILE_PATH_ANNOTATIONS, input::FILE_PATH_ANNOTATIONS);
        let keys = media::FILE_PATH_ANNOTATIONS;
        for n in 0..(1 << keys.len()) {
            let annotations: std::collections::BTreeMap<String, String> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| n & (1 << i) != 0)
                .map(|(i, k)| (k.to_string(), format!("file{i}")))
                .collect();
            let layer = serde_json::json!({"mediaType": "application/octet-stream",
                "digest": format!("sha256:{}", "a".repeat(64)), "size": 1, "annotations": annotations});
            let descriptor: pavilion_oci::Descriptor =
                serde_json::from_value(layer.clone()).unwrap();
            assert_eq!(
                media::layer_filepath(&descriptor),
                input::layer_file_path(&layer),
                "{annotations:?}"
            );
        }
    }
}
