//! Listings: `GET /v2/`, `/v2/<name>/tags/list`, `/v2/_catalog` and the
//! referrers API `/v2/<name>/referrers/<digest>`, with pagination.

use crate::common::*;
use std::collections::BTreeSet;

/// GET `path`; returns (status, Link header, JSON body).
async fn get_json(s: &Server, path: &str) -> (u16, Option<String>, serde_json::Value) {
    let r = client().get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let link = hdr(&r, "link");
    if status == 200 {
        assert_eq!(
            hdr(&r, "content-type").as_deref().map(|c| c
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_string()),
            Some(if path.contains("/referrers/") {
                OCI_INDEX.to_string()
            } else {
                "application/json".to_string()
            }),
            "Content-Type of {path}"
        );
    }
    let v = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, link, v)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// GET tags/list with `query`; asserts 200 and returns (tags, Link).
async fn tags_page(s: &Server, repo: &str, query: &str) -> (Vec<String>, Option<String>) {
    let (st, link, v) = get_json(s, &format!("/v2/{repo}/tags/list{query}")).await;
    assert_eq!(st, 200, "tags/list{query}: {v}");
    assert_eq!(v["name"], repo);
    (strings(&v["tags"]), link)
}

/// GET _catalog with `query`; asserts 200 and returns (repositories, Link).
async fn catalog_page(s: &Server, query: &str) -> (Vec<String>, Option<String>) {
    let (st, link, v) = get_json(s, &format!("/v2/_catalog{query}")).await;
    assert_eq!(st, 200, "_catalog{query}: {v}");
    (strings(&v["repositories"]), link)
}

/// The URL inside `<...>; rel="next"`.
fn link_target(link: &str) -> String {
    assert!(
        link.starts_with('<') && link.ends_with(">; rel=\"next\""),
        "Link {link}"
    );
    link[1..link.len() - ">; rel=\"next\"".len()].to_string()
}

/// Pushes a manifest by digest and returns its digest.
async fn put_by_digest(s: &Server, repo: &str, ct: &str, body: &[u8]) -> String {
    let d = sha256(body);
    let r = put_manifest(s, repo, &d, Some(ct), body).await;
    assert_eq!(r.status(), 201, "PUT manifest: {}", r.text().await.unwrap());
    d
}

/// Size of manifest `reference` in `repo` (from HEAD).
async fn manifest_size(s: &Server, repo: &str, reference: &str) -> usize {
    let r = head_manifest(s, repo, reference).await;
    assert_eq!(r.status(), 200);
    hdr(&r, "content-length").unwrap().parse().unwrap()
}

/// Pushes an image as the subject; returns (digest, size).
async fn subject(s: &Server, repo: &str, tag: &str) -> (String, usize) {
    let d = push_image(s, repo, tag, tag).await;
    let n = manifest_size(s, repo, &d).await;
    (d, n)
}

/// An artifact manifest pointing at `subject`: empty config of `config_type`,
/// one empty layer, optional artifactType, one annotation.
async fn artifact(
    s: &Server,
    repo: &str,
    subject: (&str, usize),
    artifact_type: Option<&str>,
    config_type: &str,
    note: &str,
) -> (String, usize, Vec<u8>) {
    let empty = push_blob(s, repo, b"{}").await;
    let at = artifact_type.map_or(String::new(), |t| format!(r#""artifactType":"{t}","#));
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",{at}"config":{{"mediaType":"{config_type}","digest":"{empty}","size":2}},"layers":[{{"mediaType":"{OCI_EMPTY}","digest":"{empty}","size":2}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}},"annotations":{{"org.example.note":"{note}"}}}}"#,
        subject.0, subject.1
    )
    .into_bytes();
    let d = put_by_digest(s, repo, OCI_MANIFEST, &body).await;
    (d, body.len(), body)
}

/// GET referrers; asserts 200, the index shape, returns (manifests, Link, filters header).
async fn referrers(
    s: &Server,
    path: &str,
) -> (Vec<serde_json::Value>, Option<String>, Option<String>) {
    let r = client().get(s.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    assert_eq!(
        hdr(&r, "content-type").as_deref(),
        Some(OCI_INDEX),
        "GET {path}"
    );
    let link = hdr(&r, "link");
    let filters = hdr(&r, "oci-filters-applied");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    let m = v["manifests"]
        .as_array()
        .expect("manifests is an array")
        .clone();
    (m, link, filters)
}

fn digests(list: &[serde_json::Value]) -> BTreeSet<String> {
    list.iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

both_backends! {
    base_endpoint_get_and_head_answer_200 => |s: Server| async move {
        let r = client().get(s.url("/v2/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = client().head(s.url("/v2/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    };

    tags_list_is_in_byte_order => |s: Server| async move {
        let d = push_image(&s, "list/order", "b", "x").await;
        for t in ["a", "B", "A", "_x", "1", "a0", "Z", "a-", "a.", "a_"] {
            let body = get_manifest(&s, "list/order", &d).await.bytes().await.unwrap();
            let r = put_manifest(&s, "list/order", t, Some(OCI_MANIFEST), &body).await;
            assert_eq!(r.status(), 201, "tag {t}");
        }
        let (tags, link) = tags_page(&s, "list/order", "").await;
        let expected = ["1", "A", "B", "Z", "_x", "a", "a-", "a.", "a0", "a_", "b"];
        assert_eq!(tags, expected);
        assert!(link.is_none(), "no Link without n when everything fits: {link:?}");
    };

    tags_pagination_with_n_and_last_gives_exact_link_headers => |s: Server| async move {
        let d = push_image(&s, "list/page", "t1", "p").await;
        let body = get_manifest(&s, "list/page", &d).await.bytes().await.unwrap();
        for t in ["t2", "t3", "t4", "t5"] {
            let r = put_manifest(&s, "list/page", t, Some(OCI_MANIFEST), &body).await;
            assert_eq!(r.status(), 201);
        }
        let (tags, link) = tags_page(&s, "list/page", "?n=2").await;
        assert_eq!(tags, ["t1", "t2"]);
        assert_eq!(link.as_deref(), Some("</v2/list/page/tags/list?n=2&last=t2>; rel=\"next\""));
        let next = link_target(&link.unwrap());
        let (st, link, v) = get_json(&s, &next).await;
        assert_eq!(st, 200);
        assert_eq!(strings(&v["tags"]), ["t3", "t4"]);
        assert_eq!(link.as_deref(), Some("</v2/list/page/tags/list?n=2&last=t4>; rel=\"next\""));
        let (st, link, v) = get_json(&s, &link_target(&link.unwrap())).await;
        assert_eq!(st, 200);
        assert_eq!(strings(&v["tags"]), ["t5"]);
        assert!(link.is_none(), "no Link on the last page: {link:?}");

        // A page that ends exactly at the last tag has no Link either.
        let (tags, link) = tags_page(&s, "list/page", "?n=5").await;
        assert_eq!(tags, ["t1", "t2", "t3", "t4", "t5"]);
        assert!(link.is_none(), "{link:?}");
        let (tags, link) = tags_page(&s, "list/page", "?n=100").await;
        assert_eq!(tags.len(), 5);
        assert!(link.is_none(), "{link:?}");
        // `last` without `n`, and a `last` that is not a tag.
        let (tags, link) = tags_page(&s, "list/page", "?last=t3").await;
        assert_eq!(tags, ["t4", "t5"]);
        assert!(link.is_none(), "{link:?}");
        let (tags, _) = tags_page(&s, "list/page", "?n=2&last=t2a").await;
        assert_eq!(tags, ["t3", "t4"]);
        let (tags, link) = tags_page(&s, "list/page", "?n=2&last=t5").await;
        assert!(tags.is_empty());
        assert!(link.is_none(), "{link:?}");
        let (tags, _) = tags_page(&s, "list/page", "?n=1&last=").await;
        assert_eq!(tags, ["t1"]);
    };

    tags_n_zero_is_an_empty_list_without_link => |s: Server| async move {
        push_image(&s, "list/zero", "v1", "z").await;
        let (tags, link) = tags_page(&s, "list/zero", "?n=0").await;
        assert!(tags.is_empty());
        assert!(link.is_none(), "{link:?}");
        let (tags, link) = tags_page(&s, "list/zero", "?n=0&last=a").await;
        assert!(tags.is_empty());
        assert!(link.is_none(), "{link:?}");
    };

    tags_with_invalid_n_is_400_and_changes_nothing => |s: Server| async move {
        push_image(&s, "list/badn", "v1", "n").await;
        for q in ["?n=abc", "?n=-1", "?n=1.5"] {
            let (st, _, v) = get_json(&s, &format!("/v2/list/badn/tags/list{q}")).await;
            assert_eq!(st, 400, "{q}");
            assert_eq!(v["errors"][0]["code"], "PAGINATION_NUMBER_INVALID", "{q}: {v}");
        }
        let (tags, _) = tags_page(&s, "list/badn", "").await;
        assert_eq!(tags, ["v1"]);
    };

    tags_of_unknown_repository_is_404_name_unknown => |s: Server| async move {
        push_image(&s, "list/known", "v1", "k").await;
        let r = client().get(s.url("/v2/list/unknown/tags/list")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "NAME_UNKNOWN");
        let r = client().get(s.url("/v2/list/unknown/tags/list?n=2")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "NAME_UNKNOWN");
        // A prefix of a known repository is not a repository.
        let r = client().get(s.url("/v2/list/tags/list")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    };

    catalog_lists_repositories_in_byte_order_with_n_last_and_link => |s: Server| async move {
        let repos = ["cat/b", "cat/a", "cat-e", "cat/a/deeper", "cat0", "cat/c"];
        for r in repos {
            push_blob(&s, r, r.as_bytes()).await;
        }
        let mut expected: Vec<String> = repos.iter().map(|r| r.to_string()).collect();
        expected.sort();
        assert_eq!(expected, ["cat-e", "cat/a", "cat/a/deeper", "cat/b", "cat/c", "cat0"]);
        let (all, link) = catalog_page(&s, "").await;
        assert_eq!(all, expected);
        assert!(link.is_none(), "{link:?}");

        let (page, link) = catalog_page(&s, "?n=2").await;
        assert_eq!(page, ["cat-e", "cat/a"]);
        assert_eq!(link.as_deref(), Some("</v2/_catalog?n=2&last=cat/a>; rel=\"next\""));
        let mut seen = page;
        let mut next = link;
        while let Some(l) = next {
            let (st, link, v) = get_json(&s, &link_target(&l)).await;
            assert_eq!(st, 200);
            let page = strings(&v["repositories"]);
            assert!(!page.is_empty() && page.len() <= 2);
            seen.extend(page);
            next = link;
        }
        assert_eq!(seen, expected);

        let (page, link) = catalog_page(&s, "?n=2&last=cat/b").await;
        assert_eq!(page, ["cat/c", "cat0"]);
        assert!(link.is_none(), "{link:?}");
        let (page, link) = catalog_page(&s, "?last=cat/a").await;
        assert_eq!(page, ["cat/a/deeper", "cat/b", "cat/c", "cat0"]);
        assert!(link.is_none(), "{link:?}");
        let (page, link) = catalog_page(&s, "?n=0").await;
        assert!(page.is_empty());
        assert!(link.is_none(), "{link:?}");
        for q in ["?n=abc", "?n=-1"] {
            let (st, _, v) = get_json(&s, &format!("/v2/_catalog{q}")).await;
            assert_eq!(st, 400, "{q}");
            assert_eq!(v["errors"][0]["code"], "PAGINATION_NUMBER_INVALID", "{q}: {v}");
        }
    };

    catalog_of_an_empty_registry_is_an_empty_list => |s: Server| async move {
        let (page, link) = catalog_page(&s, "").await;
        assert!(page.is_empty());
        assert!(link.is_none());
    };

    referrers_list_image_manifests_and_indexes_with_artifact_type_and_annotations => |s: Server| async move {
        let repo = "ref/all";
        let (ds, ns) = subject(&s, repo, "subj").await;
        let (da, na, _) = artifact(&s, repo, (&ds, ns), Some("application/vnd.example.sbom"), OCI_EMPTY, "sbom").await;
        // No artifactType: the config's media type is reported.
        let (db, nb, _) = artifact(&s, repo, (&ds, ns), None, "application/vnd.example.sig.config", "sig").await;
        // An index with a subject.
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","artifactType":"application/vnd.example.bundle","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{da}","size":{na}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{ds}","size":{ns}}},"annotations":{{"org.example.note":"bundle","org.example.more":"yes"}}}}"#
        )
        .into_bytes();
        let dc = put_by_digest(&s, repo, OCI_INDEX, &idx).await;
        // An index with a subject and no artifactType.
        let plain = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{ds}","size":{ns}}}}}"#
        )
        .into_bytes();
        let dp = put_by_digest(&s, repo, OCI_INDEX, &plain).await;
        // A manifest without a subject is not a referrer.
        push_image(&s, repo, "unrelated", "other").await;

        let (list, link, filters) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}")).await;
        assert!(link.is_none());
        assert!(filters.is_none(), "no filter was asked for: {filters:?}");
        assert_eq!(list.len(), 4, "{list:?}");
        assert_eq!(digests(&list), BTreeSet::from([da.clone(), db.clone(), dc.clone(), dp.clone()]));
        for d in &list {
            let dg = d["digest"].as_str().unwrap();
            if dg == dp {
                assert_eq!(d["mediaType"], OCI_INDEX, "{d}");
                assert_eq!(d["size"], plain.len(), "{d}");
                assert!(d.get("artifactType").is_none_or(|v| v.is_null()), "no artifactType: {d}");
                assert!(d.get("annotations").is_none_or(|v| v.is_null()), "no annotations: {d}");
                continue;
            }
            let (mt, size, at, ann) = if dg == da {
                (OCI_MANIFEST, na, "application/vnd.example.sbom", serde_json::json!({"org.example.note": "sbom"}))
            } else if dg == db {
                (OCI_MANIFEST, nb, "application/vnd.example.sig.config", serde_json::json!({"org.example.note": "sig"}))
            } else {
                (OCI_INDEX, idx.len(), "application/vnd.example.bundle", serde_json::json!({"org.example.note": "bundle", "org.example.more": "yes"}))
            };
            assert_eq!(d["mediaType"], mt, "{d}");
            assert_eq!(d["size"], size, "{d}");
            assert_eq!(d["artifactType"], at, "{d}");
            assert_eq!(d["annotations"], ann, "{d}");
        }
    };

    referrers_artifact_type_filter_sets_oci_filters_applied => |s: Server| async move {
        let repo = "ref/filter";
        let (ds, ns) = subject(&s, repo, "subj").await;
        let (da, _, _) = artifact(&s, repo, (&ds, ns), Some("application/vnd.example.sbom"), OCI_EMPTY, "1").await;
        let (db, _, _) = artifact(&s, repo, (&ds, ns), Some("application/vnd.example.sbom"), OCI_EMPTY, "2").await;
        artifact(&s, repo, (&ds, ns), Some("application/vnd.example.sig"), OCI_EMPTY, "3").await;
        let (list, _, filters) =
            referrers(&s, &format!("/v2/{repo}/referrers/{ds}?artifactType=application/vnd.example.sbom")).await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        assert_eq!(digests(&list), BTreeSet::from([da, db]));
        for d in &list {
            assert_eq!(d["artifactType"], "application/vnd.example.sbom");
        }
        // Percent-encoded filter value.
        let (list, _, filters) =
            referrers(&s, &format!("/v2/{repo}/referrers/{ds}?artifactType=application%2Fvnd.example.sig")).await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        assert_eq!(list.len(), 1);
        // A type nobody has: empty, still filtered.
        let (list, _, filters) =
            referrers(&s, &format!("/v2/{repo}/referrers/{ds}?artifactType=application/vnd.none")).await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        assert!(list.is_empty());
        let (list, _, filters) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}")).await;
        assert!(filters.is_none());
        assert_eq!(list.len(), 3);
    };

    referrers_of_missing_subject_is_200_empty_and_early_referrers_are_listed => |s: Server| async move {
        let repo = "ref/early";
        push_blob(&s, repo, b"make the repository exist").await;
        let ghost = sha256(b"subject pushed later");
        let (list, link, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ghost}")).await;
        assert!(list.is_empty());
        assert!(link.is_none());
        // A repository that does not exist at all: still an empty index.
        let (list, _, _) = referrers(&s, &format!("/v2/ref/nothing-here/referrers/{ghost}")).await;
        assert!(list.is_empty());

        // A referrer pushed before its subject exists.
        let (d1, _, _) = artifact(&s, repo, (&ghost, 123), Some("application/vnd.example.early"), OCI_EMPTY, "early").await;
        let (list, _, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ghost}")).await;
        assert_eq!(digests(&list), BTreeSet::from([d1.clone()]));
        // Once the real subject arrives, referrers of it are listed too.
        let (ds, ns) = subject(&s, repo, "real").await;
        let (d2, _, _) = artifact(&s, repo, (&ds, ns), Some("application/vnd.example.late"), OCI_EMPTY, "late").await;
        let (list, _, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}")).await;
        assert_eq!(digests(&list), BTreeSet::from([d2]));
        // Referrers are per repository.
        let (list, _, _) = referrers(&s, &format!("/v2/ref/elsewhere/referrers/{ghost}")).await;
        assert!(list.is_empty());
    };

    deleting_a_referrer_removes_it_from_the_list => |s: Server| async move {
        let repo = "ref/delete";
        let (ds, ns) = subject(&s, repo, "subj").await;
        let (da, _, body_a) = artifact(&s, repo, (&ds, ns), Some("application/vnd.example.a"), OCI_EMPTY, "a").await;
        let (db, _, _) = artifact(&s, repo, (&ds, ns), Some("application/vnd.example.b"), OCI_EMPTY, "b").await;
        // Tag one referrer; deleting only the tag keeps it listed.
        let r = put_manifest(&s, repo, "sig", Some(OCI_MANIFEST), &body_a).await;
        assert_eq!(r.status(), 201);
        let r = client().delete(s.url(&format!("/v2/{repo}/manifests/sig"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let (list, _, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}")).await;
        assert_eq!(digests(&list), BTreeSet::from([da.clone(), db.clone()]));

        let r = client().delete(s.url(&format!("/v2/{repo}/manifests/{da}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let (list, _, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}")).await;
        assert_eq!(digests(&list), BTreeSet::from([db.clone()]));
        let r = client().delete(s.url(&format!("/v2/{repo}/manifests/{db}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let (list, _, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}")).await;
        assert!(list.is_empty());
    };

    referrers_pagination_with_n_gives_link_and_following_it_yields_the_rest => |s: Server| async move {
        let repo = "ref/page";
        let (ds, ns) = subject(&s, repo, "subj").await;
        let mut all = BTreeSet::new();
        for i in 0..5 {
            let t = if i % 2 == 0 { "application/vnd.example.even" } else { "application/vnd.example.odd" };
            let (d, _, _) = artifact(&s, repo, (&ds, ns), Some(t), OCI_EMPTY, &format!("n{i}")).await;
            all.insert(d);
        }
        let first = format!("/v2/{repo}/referrers/{ds}?n=2");
        let (list, link, _) = referrers(&s, &first).await;
        assert_eq!(list.len(), 2);
        let link = link.expect("Link header on a partial page");
        let target = link_target(&link);
        assert!(target.starts_with(&format!("/v2/{repo}/referrers/{ds}?")), "Link {link}");
        assert!(target.contains("n=2"), "Link {link}");
        let mut seen: Vec<String> = list.iter().map(|d| d["digest"].as_str().unwrap().to_string()).collect();
        let mut next = Some(target);
        let mut pages = 1;
        while let Some(url) = next {
            let (list, link, _) = referrers(&s, &url).await;
            assert!(!list.is_empty() && list.len() <= 2, "page {url}");
            seen.extend(list.iter().map(|d| d["digest"].as_str().unwrap().to_string()));
            next = link.map(|l| link_target(&l));
            pages += 1;
            assert!(pages <= 3, "too many pages");
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 5, "no duplicates: {seen:?}");
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);

        // n=0: an empty index and no Link.
        let (list, link, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}?n=0")).await;
        assert!(list.is_empty());
        assert!(link.is_none(), "{link:?}");

        // Pagination combined with a filter keeps the filter in the Link.
        let (list, link, filters) =
            referrers(&s, &format!("/v2/{repo}/referrers/{ds}?n=2&artifactType=application/vnd.example.even")).await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        assert_eq!(list.len(), 2);
        let link = link.expect("Link on a partial filtered page");
        let target = link_target(&link);
        assert!(target.contains("artifactType="), "Link {link}");
        let (rest, link, filters) = referrers(&s, &target).await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        assert_eq!(rest.len(), 1);
        assert!(link.is_none());
        for d in list.iter().chain(rest.iter()) {
            assert_eq!(d["artifactType"], "application/vnd.example.even");
        }
    };

    referrers_with_invalid_digest_or_n_is_400 => |s: Server| async move {
        let repo = "ref/bad";
        let (ds, ns) = subject(&s, repo, "subj").await;
        artifact(&s, repo, (&ds, ns), Some("application/vnd.example.x"), OCI_EMPTY, "x").await;
        let upper = ds.to_uppercase();
        for bad in ["sha256:abc", "notadigest", "md5:d41d8cd98f00b204e9800998ecf8427e", upper.as_str(), "latest"] {
            let r = client().get(s.url(&format!("/v2/{repo}/referrers/{bad}"))).send().await.unwrap();
            assert_eq!(r.status(), 400, "{bad}");
            assert_eq!(error_code(r).await, "DIGEST_INVALID", "{bad}");
        }
        for q in ["?n=abc", "?n=-1"] {
            let r = client().get(s.url(&format!("/v2/{repo}/referrers/{ds}{q}"))).send().await.unwrap();
            assert_eq!(r.status(), 400, "{q}");
            assert_eq!(error_code(r).await, "PAGINATION_NUMBER_INVALID", "{q}");
        }
        let (list, _, _) = referrers(&s, &format!("/v2/{repo}/referrers/{ds}")).await;
        assert_eq!(list.len(), 1);
    };
}
