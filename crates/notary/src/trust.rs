//! The bridge from notation's files to a verification: load the trust
//! policy document, select the statement for a repository, and read the
//! certificates of the trust stores it names.

use crate::trust_policy::{default_oci_policy_path, load_oci};
use crate::truststore::{StoreType, TrustStore};
use crate::verify::Requirements;
use std::path::Path;

pub use crate::truststore::notation_config_dir;

/// What the trust policy says for one repository.
#[derive(Debug)]
pub enum Resolved {
    /// The statement's level is `skip`.
    Skip {
        /// Statement name.
        policy: String,
    },
    /// Signatures must be verified with these requirements.
    Verify {
        /// Statement name.
        policy: String,
        /// The statement and its certificates.
        requirements: Box<Requirements>,
    },
}

/// Loads the trust policy (`policy_path`, else notation's file), selects
/// the statement for `scope` (`registry/repository`) and reads its trust
/// stores (under `store_root`, else notation's trust store).
pub fn load_requirements(
    policy_path: Option<&Path>,
    store_root: Option<&Path>,
    scope: &str,
) -> Result<Resolved, String> {
    let path = match policy_path {
        Some(p) => p.to_path_buf(),
        None => default_oci_policy_path()
            .ok_or("no notation configuration directory (set HOME or XDG_CONFIG_HOME)")?,
    };
    let policies = load_oci(&path).map_err(|e| e.to_string())?;
    let statement = policies.select(scope).map_err(|e| e.to_string())?.clone();
    if statement.is_skip() {
        return Ok(Resolved::Skip {
            policy: statement.name,
        });
    }
    let store = match store_root {
        Some(r) => TrustStore::new(r),
        None => TrustStore::notation_default()
            .ok_or("no notation configuration directory (set HOME or XDG_CONFIG_HOME)")?,
    };
    let load = |kind: StoreType| -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        for r in statement.stores_of(kind) {
            out.extend(store.certificates(r).map_err(|e| e.to_string())?);
        }
        Ok(out)
    };
    let (ca, signing_authority, tsa) = (
        load(StoreType::Ca)?,
        load(StoreType::SigningAuthority)?,
        load(StoreType::Tsa)?,
    );
    Ok(Resolved::Verify {
        policy: statement.name.clone(),
        requirements: Box::new(Requirements {
            policy: statement,
            ca,
            signing_authority,
            tsa,
        }),
    })
}
