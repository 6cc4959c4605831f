//! `--storage` URLs for object storage: `s3://BUCKET[/PREFIX]`,
//! `az://CONTAINER[/PREFIX]`, `gs://BUCKET[/PREFIX]`. Settings come from the
//! usual environment variables of each cloud (`AWS_*`, `AZURE_*`,
//! `GOOGLE_*`, read by `object_store`'s builders) and from query pairs
//! named like object_store's configuration keys (`?endpoint=...&region=...`,
//! `?use_emulator=true`, `?allow_http=true`). Ours: `part_size` (bytes),
//! and `max_retries` / `retry_timeout_secs`, how long a failing request to
//! the store (a part upload answered 5xx or cut) is retried before the
//! registry gives up and answers 503 (object_store's defaults: 10 tries
//! within 180 s).

use crate::error::StoreError;
use crate::object::{Backend, ObjectBlobStore};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::signer::Signer;
use object_store::{ClientConfigKey, RetryConfig};
use std::str::FromStr;
use std::sync::Arc;

/// Default part size: 64 MiB (memory per upload in flight).
pub const DEFAULT_PART_SIZE: u64 = 64 << 20;

/// A parsed object storage URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrl {
    /// `s3`, `az` or `gs`.
    pub scheme: String,
    /// Bucket or container.
    pub bucket: String,
    /// Key prefix (no leading or trailing `/`).
    pub prefix: String,
    /// Query pairs, in order.
    pub options: Vec<(String, String)>,
}

fn bad(url: &str, why: &str) -> StoreError {
    StoreError::Backend(format!("storage URL {url:?}: {why}"))
}

impl StorageUrl {
    /// Parses `scheme://bucket/prefix?k=v&...`.
    pub fn parse(url: &str) -> Result<StorageUrl, StoreError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(url, "expected s3://, az:// or gs://"))?;
        if !["s3", "az", "gs"].contains(&scheme) {
            return Err(bad(url, "expected file://, s3://, az:// or gs://"));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(bad(url, "no bucket or container name"));
        }
        let mut options = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(url, &format!("query pair {pair:?} has no '='")))?;
            options.push((k.to_string(), pavilion_oci::percent::decode_lenient(v)));
        }
        Ok(StorageUrl {
            scheme: scheme.to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            options,
        })
    }

    /// The URL without its query (which may hold secrets), for messages.
    pub fn display(&self) -> String {
        format!("{}://{}/{}", self.scheme, self.bucket, self.prefix)
    }
}

/// Opens the object store a URL names (no request is made yet).
pub fn open(url: &str) -> Result<ObjectBlobStore, StoreError> {
    let u = StorageUrl::parse(url)?;
    let mut part_size = DEFAULT_PART_SIZE;
    let mut retry = RetryConfig::default();
    let unknown = |k: &str| bad(url, &format!("unknown option {k:?}"));
    // The three builders differ only in their types: the same steps each.
    macro_rules! build {
        ($builder:expr, $key:ty) => {{
            let mut b = $builder;
            for (k, v) in &u.options {
                if k == "part_size" {
                    part_size = parse_size(url, v)?;
                } else if k == "max_retries" {
                    retry.max_retries = parse_count(url, k, v)? as usize;
                } else if k == "retry_timeout_secs" {
                    retry.retry_timeout = std::time::Duration::from_secs(parse_count(url, k, v)?);
                } else if let Ok(key) = <$key>::from_str(k) {
                    b = b.with_config(key, v);
                } else if let Ok(key) = ClientConfigKey::from_str(k) {
                    b = b.with_client_options(client_option(key, v));
                } else {
                    return Err(unknown(k));
                }
            }
            let store = Arc::new(
                b.with_retry(retry.clone())
                    .build()
                    .map_err(|e| bad(url, &e.to_string()))?,
            );
            (store.clone() as Arc<dyn Backend>, store as Arc<dyn Signer>)
        }};
    }
    let (backend, signer) = match u.scheme.as_str() {
        "s3" => build!(
            AmazonS3Builder::from_env().with_bucket_name(&u.bucket),
            AmazonS3ConfigKey
        ),
        "az" => build!(
            MicrosoftAzureBuilder::from_env().with_container_name(&u.bucket),
            AzureConfigKey
        ),
        _ => build!(
            GoogleCloudStorageBuilder::from_env().with_bucket_name(&u.bucket),
            GoogleConfigKey
        ),
    };
    Ok(ObjectBlobStore::new(backend, &u.prefix, part_size).with_signer(signer))
}

fn client_option(key: ClientConfigKey, v: &str) -> object_store::ClientOptions {
    object_store::ClientOptions::new().with_config(key, v)
}

fn parse_count(url: &str, key: &str, v: &str) -> Result<u64, StoreError> {
    v.parse::<u64>()
        .map_err(|_| bad(url, &format!("{key} must be a whole number, not {v:?}")))
}

fn parse_size(url: &str, v: &str) -> Result<u64, StoreError> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n >= 5 << 20)
        .ok_or_else(|| {
            bad(
                url,
                "part_size must be a number of bytes, at least 5 MiB (5242880)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_clearly() {
        let u =
            StorageUrl::parse("s3://models/reg/a?endpoint=http%3A%2F%2F127.0.0.1%3A7480&region=x")
                .unwrap();
        assert_eq!(u.bucket, "models");
        assert_eq!(u.prefix, "reg/a");
        assert_eq!(
            u.options[0],
            ("endpoint".into(), "http://127.0.0.1:7480".into())
        );
        assert_eq!(u.display(), "s3://models/reg/a");
        for bad in ["models", "ftp://x", "s3://", "s3://b?novalue"] {
            let e = StorageUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let e = open("s3://b?nonsense=1").err().unwrap().to_string();
        assert!(e.contains("unknown option \"nonsense\""), "{e}");
        let e = open("az://c?part_size=10").err().unwrap().to_string();
        assert!(e.contains("part_size"), "{e}");
        let e = open("s3://b?max_retries=-1").err().unwrap().to_string();
        assert!(e.contains("max_retries must be a whole number"), "{e}");
        let e = open("s3://b?retry_timeout_secs=soon")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("retry_timeout_secs"), "{e}");
        assert_eq!(
            pavilion_oci::percent::decode_lenient("a%2Fb%zz%4"),
            "a/b%zz%4"
        );
    }
}
