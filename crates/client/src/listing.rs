//! Lists: tags of a repository, repositories of a registry, and the
//! referrers of a manifest (with the tag-schema fallback for registries
//! that do not implement the referrers API).

use crate::client::{check, scope, Client};
use crate::error::{read_capped, ClientError, MAX_LIST_BYTES, MAX_PAGE_BYTES};
use pavilion_oci::{media_type, Descriptor, Digest, ImageRef, Tag};
use reqwest::{header, StatusCode};

/// Upper bound on pages followed, so a registry whose `Link` loops cannot
/// keep us forever. Each page is read up to [`MAX_PAGE_BYTES`], and all the
/// pages of one listing up to [`MAX_LIST_BYTES`] together.
const MAX_PAGES: usize = 10_000;

/// Counts the bytes of a listing's pages against [`MAX_LIST_BYTES`].
struct ListBudget {
    used: u64,
    what: &'static str,
}

impl ListBudget {
    fn new(what: &'static str) -> Self {
        ListBudget { used: 0, what }
    }

    /// Reads one page within both limits.
    async fn page(
        &mut self,
        resp: reqwest::Response,
        registry: &str,
    ) -> Result<bytes::Bytes, ClientError> {
        let what = self.what;
        let body = read_capped(resp, MAX_PAGE_BYTES, || {
            format!("a {what} page from {registry}")
        })
        .await?;
        self.used = self.used.saturating_add(body.len() as u64);
        if self.used > MAX_LIST_BYTES {
            return Err(ClientError::TooLarge {
                what: format!("the {what} from {registry}"),
                limit: MAX_LIST_BYTES,
            });
        }
        Ok(body)
    }
}

/// The `<...>` target of a `Link: <url>; rel="next"` header.
fn next_link(resp: &reqwest::Response) -> Option<String> {
    let link = resp.headers().get(header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        Some(
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        )
    })
}

/// Percent-encodes a query value: media types may hold `+`, which a query
/// string would read as a space.
fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The fallback tag under which a registry without the referrers API keeps
/// an index of `subject`'s referrers (`sha256-<hex>`).
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

impl Client {
    /// Follows `Link` pages from `first`, collecting the strings under `key`.
    async fn paged(
        &self,
        registry: &str,
        scope: &str,
        first: String,
        key: &'static str,
    ) -> Result<Vec<String>, ClientError> {
        let mut out = Vec::new();
        let mut url = first;
        let mut budget = ListBudget::new(if key == "tags" {
            "tag list"
        } else {
            "repository list"
        });
        for _ in 0..MAX_PAGES {
            let u = self.registry_url(registry, &url);
            let resp = check(self.send_to(registry, scope, |c| c.get(&u)).await?).await?;
            let next = next_link(&resp);
            let body = budget.page(resp, registry).await?;
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                ClientError::Protocol(format!("{registry} answered a list that is not JSON: {e}"))
            })?;
            if let Some(items) = v.get(key).and_then(|t| t.as_array()) {
                out.extend(items.iter().filter_map(|t| t.as_str().map(str::to_string)));
            }
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
        Err(ClientError::Protocol(format!(
            "{registry} returned more than {MAX_PAGES} pages"
        )))
    }

    /// Every tag of `r`'s repository, in the registry's order.
    pub async fn list_tags(&self, r: &ImageRef) -> Result<Vec<String>, ClientError> {
        let first = format!("/v2/{}/tags/list", r.repository);
        self.paged(&r.registry, &scope(r, false), first, "tags")
            .await
    }

    /// Every repository of a registry (`/v2/_catalog`).
    pub async fn catalog(&self, registry: &str) -> Result<Vec<String>, ClientError> {
        self.paged(
            registry,
            "registry:catalog:*",
            "/v2/_catalog".to_string(),
            "repositories",
        )
        .await
    }

    /// Manifests whose `subject` is `subject` in `r`'s repository, optionally
    /// only those of `artifact_type`. Uses the referrers API, and the
    /// `sha256-<hex>` tag when the registry answers 404 for it.
    pub async fn referrers(
        &self,
        r: &ImageRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let mut path = format!("/v2/{}/referrers/{subject}", r.repository);
        if let Some(t) = artifact_type {
            path.push_str(&format!("?artifactType={}", query_escape(t)));
        }
        let mut list = Vec::new();
        let mut budget = ListBudget::new("referrers list");
        for _ in 0..MAX_PAGES {
            let url = self.url(r, &path);
            let resp = self.send(r, &scope(r, false), |c| c.get(&url)).await?;
            if resp.status() == StatusCode::NOT_FOUND && list.is_empty() {
                list = self.referrers_from_tag(r, subject).await?;
                break;
            }
            let resp = check(resp).await?;
            let next = next_link(&resp);
            list.extend(index_manifests(&budget.page(resp, &r.registry).await?)?);
            match next {
                Some(n) => path = n,
                None => break,
            }
        }
        // Registries that ignore the filter (and the tag schema) return all.
        if let Some(t) = artifact_type {
            list.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(list)
    }

    /// The referrers kept in the fallback tag's index (empty if none).
    async fn referrers_from_tag(
        &self,
        r: &ImageRef,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let tagged = fallback_ref(r, subject)?;
        match self.get_manifest(&tagged).await {
            Ok(m) => index_manifests(&m.bytes),
            Err(ClientError::Registry { status: 404, .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Adds `referrer` to the fallback tag index of `subject` (the tag
    /// schema), for registries that did not take the referrer themselves.
    pub(crate) async fn add_fallback_referrer(
        &self,
        r: &ImageRef,
        subject: &Digest,
        referrer: Descriptor,
    ) -> Result<(), ClientError> {
        let mut list = self.referrers_from_tag(r, subject).await?;
        if list.iter().any(|d| d.digest == referrer.digest) {
            return Ok(());
        }
        list.push(referrer);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": list,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let tagged = fallback_ref(r, subject)?;
        self.put_manifest_plain(&tagged, media_type::OCI_INDEX, bytes.into())
            .await?;
        Ok(())
    }
}

fn fallback_ref(r: &ImageRef, subject: &Digest) -> Result<ImageRef, ClientError> {
    let tag =
        Tag::new(&referrers_tag(subject)).map_err(|e| ClientError::Protocol(e.to_string()))?;
    Ok(ImageRef {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        tag: Some(tag),
        digest: None,
    })
}

/// The `manifests` of an image index body.
fn index_manifests(body: &[u8]) -> Result<Vec<Descriptor>, ClientError> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Index>(body)
        .map(|i| i.manifests)
        .map_err(|e| ClientError::Protocol(format!("referrers list is not an image index: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn media_types_survive_the_query_string() {
        assert_eq!(
            super::query_escape("application/vnd.oci.image.manifest.v1+json"),
            "application/vnd.oci.image.manifest.v1%2Bjson"
        );
        assert_eq!(super::query_escape("a b&c"), "a%20b%26c");
    }
}
