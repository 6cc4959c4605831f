//! Per-repository requests and body bytes, only when the operator asks
//! for them (`[metrics] repository_labels = true`): repository names come
//! from clients, so their number is capped. The first `limit`
//! repositories that answer a request successfully get their own series;
//! every other shares `repository="_other"`. Refused requests (a typo, a
//! scan of made-up names) never take a place, and always count as
//! `_other` unless the repository already has one.

use super::expose::{header, labels};
use crate::routes::Route;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// The label repositories beyond the limit share.
pub const OTHER: &str = "_other";

#[derive(Debug, Default)]
struct Counted {
    by_method: super::counts::FixedMap<&'static str, u64>,
    bytes_in: u64,
    bytes_out: u64,
}

/// The per-repository counters.
#[derive(Debug)]
pub(crate) struct RepoStats {
    limit: usize,
    /// Named repositories (at most `limit`) and `_other`.
    by_repo: Mutex<HashMap<Arc<str>, Counted>>,
}

/// The repository an API path names, if any.
pub(crate) fn repository_of(route: &Route) -> Option<String> {
    match route {
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::UploadStart(n)
        | Route::Upload(n, _)
        | Route::Referrers(n, _) => Some(n.clone()),
        Route::Base | Route::Catalog => None,
    }
}

impl RepoStats {
    pub(crate) fn new(limit: usize) -> RepoStats {
        RepoStats {
            limit,
            by_repo: Mutex::default(),
        }
    }

    /// One request on `repo` ended with `status`.
    pub(crate) fn request(
        &self,
        repo: &str,
        method: &'static str,
        status: u16,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let mut m = self.by_repo.lock().unwrap_or_else(|p| p.into_inner());
        // `_other` is always present once anything is counted, and is not
        // one of the `limit` places.
        let named = m.len() - usize::from(m.contains_key(OTHER));
        let key: &str = if m.contains_key(repo) && repo != OTHER {
            repo
        } else if (200..400).contains(&status) && named < self.limit && repo != OTHER {
            m.insert(Arc::from(repo), Counted::default());
            repo
        } else {
            OTHER
        };
        let c = match m.get_mut(key) {
            Some(c) => c,
            None => m.entry(Arc::from(key)).or_default(),
        };
        *c.by_method.entry(method).or_default() += 1;
        c.bytes_in += bytes_in;
        c.bytes_out += bytes_out;
    }

    pub(crate) fn render(&self, out: &mut String) {
        let m = self.by_repo.lock().unwrap_or_else(|p| p.into_inner());
        let mut repos: Vec<_> = m.iter().collect();
        repos.sort_by(|a, b| a.0.cmp(b.0));
        let name = "pavilion_repository_requests_total";
        header(
            out,
            name,
            "counter",
            "Requests by repository (the first repository_label_limit; the rest as _other) and method.",
        );
        for (repo, c) in &repos {
            let mut methods: Vec<_> = c.by_method.iter().collect();
            methods.sort();
            for (method, n) in methods {
                let l = labels(&[("repository", repo), ("method", method)]);
                let _ = writeln!(out, "{name}{l} {n}");
            }
        }
        let name = "pavilion_repository_body_bytes_total";
        header(
            out,
            name,
            "counter",
            "Request and response body bytes by repository.",
        );
        for (repo, c) in &repos {
            for (dir, n) in [("in", c.bytes_in), ("out", c.bytes_out)] {
                let l = labels(&[("repository", repo), ("direction", dir)]);
                let _ = writeln!(out, "{name}{l} {n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_past_the_limit_and_refusals_share_other() {
        let s = RepoStats::new(2);
        s.request("a", "GET", 200, 0, 5);
        s.request("nope", "GET", 404, 0, 0);
        s.request("b", "PUT", 201, 7, 0);
        s.request("c", "GET", 200, 0, 1);
        s.request("a", "GET", 404, 0, 0);
        let mut out = String::new();
        s.render(&mut out);
        assert!(out.contains("{repository=\"a\",method=\"GET\"} 2"), "{out}");
        assert!(out.contains("{repository=\"b\",method=\"PUT\"} 1"), "{out}");
        assert!(
            out.contains("{repository=\"_other\",method=\"GET\"} 2"),
            "{out}"
        );
        assert!(!out.contains("\"c\"") && !out.contains("nope"), "{out}");
        assert!(
            out.contains("{repository=\"b\",direction=\"in\"} 7"),
            "{out}"
        );
    }
}
