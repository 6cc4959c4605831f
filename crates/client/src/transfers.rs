//! A Pavilion registry's blob transfers in flight
//! (`GET /pavilion/v1/transfers`), the numbers `pavilion top` shows. Only
//! Pavilion answers it; another registry's 404 becomes a plain message.

use crate::client::{check, Client};
use crate::error::{read_capped, ClientError};
pub use pavilion_oci::transfers::{Transfer, TransferList};

/// Largest document read: a full list (10,000 transfers) is about 3 MiB.
const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

impl Client {
    /// The transfers in flight on the replica that answers at `registry`.
    /// Needs `registry:catalog:*` (the list names repositories).
    pub async fn transfers(&self, registry: &str) -> Result<TransferList, ClientError> {
        let url = self.registry_url(registry, "/pavilion/v1/transfers");
        let resp = self
            .send_to(registry, "registry:catalog:*", |c| c.get(&url))
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ClientError::Protocol(format!(
                "{registry} does not list its transfers (GET /pavilion/v1/transfers answered 404: not a Pavilion registry, or an older one)"
            )));
        }
        let resp = check(resp).await?;
        let body = read_capped(resp, MAX_DOCUMENT_BYTES, || {
            format!("the transfer list from {registry}")
        })
        .await?;
        serde_json::from_slice(&body).map_err(|e| {
            ClientError::Protocol(format!(
                "{registry} answered a transfer list that does not parse: {e}"
            ))
        })
    }
}
