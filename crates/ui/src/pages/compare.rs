//! `/ui/r/<name>/-/compare?a=&b=`: two versions side by side: files added,
//! removed and changed, and the size difference.

use super::{card_data, query_param};
use crate::api::Viewer;
use crate::chrome::Chrome;
use crate::respond;
use crate::view;
use crate::{Page, Ui};
use askama::Template;
use http::StatusCode;
use pavilion_oci::Reference;
use std::collections::BTreeMap;

struct Change {
    path: String,
    what: &'static str,
    class: &'static str,
    before: String,
    after: String,
    delta: String,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    c: Chrome,
    name: String,
    name_href: String,
    a: String,
    b: String,
    a_href: String,
    b_href: String,
    a_size: String,
    b_size: String,
    delta: String,
    changes: Vec<Change>,
    same: usize,
}

/// The page.
pub async fn page(ui: &Ui, viewer: &Viewer, name: &str, query: &str) -> Page {
    let refs = (query_param(query, "a"), query_param(query, "b"));
    let (Some(a), Some(b)) = refs else {
        return respond::error(
            ui,
            viewer,
            StatusCode::BAD_REQUEST,
            "compare needs two versions: ?a=TAG&b=TAG",
        );
    };
    for r in [&a, &b] {
        if let Err(e) = Reference::parse(r) {
            return respond::error(
                ui,
                viewer,
                StatusCode::BAD_REQUEST,
                &format!("{:?} is not a tag or digest: {e}", view::clip(r, 80)),
            );
        }
    }
    let ma = match card_data::manifest(ui, viewer, name, &a).await {
        Ok(m) => m,
        Err(f) => return respond::failure(ui, viewer, &f),
    };
    let mb = match card_data::manifest(ui, viewer, name, &b).await {
        Ok(m) => m,
        Err(f) => return respond::failure(ui, viewer, &f),
    };
    let fa = by_path(&card_data::files(&ma.info));
    let fb = by_path(&card_data::files(&mb.info));
    let (changes, same) = diff(&fa, &fb);
    let size = |m: &card_data::Manifest| m.size + m.info.blobs.iter().map(|d| d.size).sum::<u64>();
    let (sa, sb) = (size(&ma), size(&mb));
    let name_path = view::path_part(name);
    let page = ComparePage {
        c: Chrome::new(ui, viewer, format!("Compare · {name}"), "repos"),
        name_href: format!("/ui/r/{name_path}"),
        a_href: format!("/ui/r/{name_path}/-/v/{}", view::path_part(&a)),
        b_href: format!("/ui/r/{name_path}/-/v/{}", view::path_part(&b)),
        name: name.to_string(),
        a,
        b,
        a_size: view::bytes(sa),
        b_size: view::bytes(sb),
        delta: view::bytes_delta(i128::from(sb) - i128::from(sa)),
        changes,
        same,
    };
    respond::html(StatusCode::OK, page.render())
}

/// Path to (digest, size).
type Files = BTreeMap<String, (String, u64)>;

fn by_path(files: &[card_data::File]) -> Files {
    files
        .iter()
        .map(|f| (f.path.clone(), (f.digest.clone(), f.size)))
        .collect()
}

/// What changed from `a` to `b`, by path, and how many files are the same.
fn diff(a: &Files, b: &Files) -> (Vec<Change>, usize) {
    let mut out = Vec::new();
    let mut same = 0;
    let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for p in paths {
        let change = |what, class, before: Option<u64>, after: Option<u64>| Change {
            path: view::clip(p, 300),
            what,
            class,
            before: before.map(view::bytes).unwrap_or_default(),
            after: after.map(view::bytes).unwrap_or_default(),
            delta: view::bytes_delta(
                i128::from(after.unwrap_or(0)) - i128::from(before.unwrap_or(0)),
            ),
        };
        match (a.get(p), b.get(p)) {
            (Some(x), Some(y)) if x.0 == y.0 => same += 1,
            (Some(x), Some(y)) => out.push(change("changed", "warn", Some(x.1), Some(y.1))),
            (Some(x), None) => out.push(change("removed", "bad", Some(x.1), None)),
            (None, Some(y)) => out.push(change("added", "ok", None, Some(y.1))),
            (None, None) => {}
        }
    }
    (out, same)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_by_path() {
        let a: Files = [
            ("a".to_string(), ("d1".to_string(), 10)),
            ("b".to_string(), ("d2".to_string(), 20)),
            ("c".to_string(), ("d3".to_string(), 30)),
        ]
        .into();
        let b: Files = [
            ("a".to_string(), ("d1".to_string(), 10)),
            ("b".to_string(), ("d9".to_string(), 25)),
            ("d".to_string(), ("d4".to_string(), 40)),
        ]
        .into();
        let (changes, same) = diff(&a, &b);
        assert_eq!(same, 1);
        let got: Vec<(&str, &str, &str)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.what, c.delta.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("b", "changed", "+5 B"),
                ("c", "removed", "-30 B"),
                ("d", "added", "+40 B")
            ]
        );
    }
}
