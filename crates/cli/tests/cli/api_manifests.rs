//! Manifest endpoints: `PUT`/`GET`/`HEAD`/`DELETE /v2/<name>/manifests/<reference>`
//! for every supported manifest type, and every way a manifest can be refused.

use crate::common::*;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// PUT that must succeed; checks the 201 headers and returns the digest.
async fn put_ok(s: &Server, repo: &str, reference: &str, ct: &str, body: &[u8]) -> String {
    let r = put_manifest(s, repo, reference, Some(ct), body).await;
    let d = sha256(body);
    let status = r.status();
    let loc = hdr(&r, "location");
    let dcd = hdr(&r, "docker-content-digest");
    assert_eq!(
        status,
        201,
        "PUT {repo}:{reference}: {}",
        r.text().await.unwrap()
    );
    assert_eq!(loc, Some(format!("/v2/{repo}/manifests/{d}")));
    assert_eq!(dcd.as_deref(), Some(d.as_str()));
    d
}

/// GET and HEAD (by `reference`) serve exactly `body` as `ct` with `digest`.
async fn assert_served(
    s: &Server,
    repo: &str,
    reference: &str,
    ct: &str,
    body: &[u8],
    digest: &str,
) {
    let r = get_manifest(s, repo, reference).await;
    assert_eq!(r.status(), 200, "GET {repo}:{reference}");
    assert_eq!(
        hdr(&r, "content-type").as_deref(),
        Some(ct),
        "GET {repo}:{reference}"
    );
    assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(digest));
    assert_eq!(hdr(&r, "content-length"), Some(body.len().to_string()));
    assert!(
        r.bytes().await.unwrap().as_ref() == body,
        "GET {repo}:{reference}: bytes differ"
    );
    let r = head_manifest(s, repo, reference).await;
    assert_eq!(r.status(), 200, "HEAD {repo}:{reference}");
    assert_eq!(hdr(&r, "content-type").as_deref(), Some(ct));
    assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(digest));
    assert_eq!(hdr(&r, "content-length"), Some(body.len().to_string()));
    assert!(r.bytes().await.unwrap().is_empty(), "HEAD has no body");
}

/// GET and HEAD of `reference` answer 404 (GET with MANIFEST_UNKNOWN).
async fn assert_manifest_absent(s: &Server, repo: &str, reference: &str) {
    let r = get_manifest(s, repo, reference).await;
    assert_eq!(r.status(), 404, "GET {repo}:{reference} should be absent");
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    assert_eq!(head_manifest(s, repo, reference).await.status(), 404);
}

/// Tag list of `repo`: Some(tags) on 200, None on 404.
async fn tags_of(s: &Server, repo: &str) -> Option<Vec<String>> {
    let r = client()
        .get(s.url(&format!("/v2/{repo}/tags/list")))
        .send()
        .await
        .unwrap();
    if r.status() == 404 {
        return None;
    }
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["name"], repo);
    Some(
        v["tags"]
            .as_array()
            .expect("tags is an array")
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
    )
}

/// Config and one layer pushed to `repo`: ((digest, size), (digest, size)).
async fn push_parts(s: &Server, repo: &str, seed: &str) -> ((String, usize), (String, usize)) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer of {seed}");
    let cd = push_blob(s, repo, config.as_bytes()).await;
    let ld = push_blob(s, repo, layer.as_bytes()).await;
    ((cd, config.len()), (ld, layer.len()))
}

/// An OCI image manifest over freshly pushed blobs, with `extra` top-level JSON.
async fn oci_manifest(s: &Server, repo: &str, seed: &str, extra: &str) -> Vec<u8> {
    let ((cd, cn), (ld, ln)) = push_parts(s, repo, seed).await;
    image_manifest((&cd, cn), &[(&ld, ln)], extra)
}

fn index_of(media_type: &str, entries: &[(&str, &str, usize)], extra: &str) -> Vec<u8> {
    let m: Vec<String> = entries
        .iter()
        .map(|(mt, d, n)| {
            format!(r#"{{"mediaType":"{mt}","digest":"{d}","size":{n},"platform":{{"architecture":"amd64","os":"linux"}}}}"#)
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]{extra}}}"#,
        m.join(",")
    )
    .into_bytes()
}

both_backends! {
    oci_manifest_put_by_tag_is_201_and_get_head_return_identical_bytes => |s: Server| async move {
        let body = oci_manifest(&s, "man/oci", "a", r#","annotations":{"k":"v"}"#).await;
        let d = put_ok(&s, "man/oci", "v1", OCI_MANIFEST, &body).await;
        assert_served(&s, "man/oci", "v1", OCI_MANIFEST, &body, &d).await;
        assert_served(&s, "man/oci", &d, OCI_MANIFEST, &body, &d).await;
        assert_eq!(tags_of(&s, "man/oci").await, Some(vec!["v1".to_string()]));
        // No subject, no OCI-Subject header.
        let r = put_manifest(&s, "man/oci", "v1", Some(OCI_MANIFEST), &body).await;
        assert_eq!(r.status(), 201, "re-pushing identical bytes");
        assert!(hdr(&r, "oci-subject").is_none());
    };

    manifest_put_by_digest_is_201_and_creates_no_tag => |s: Server| async move {
        let body = oci_manifest(&s, "man/bydigest", "b", "").await;
        let d = sha256(&body);
        assert_eq!(put_ok(&s, "man/bydigest", &d, OCI_MANIFEST, &body).await, d);
        assert_served(&s, "man/bydigest", &d, OCI_MANIFEST, &body, &d).await;
        assert_eq!(tags_of(&s, "man/bydigest").await, Some(vec![]));
    };

    manifest_put_by_sha512_digest_is_201_and_served_by_that_digest => |s: Server| async move {
        let body = oci_manifest(&s, "man/sha512", "c", "").await;
        let d = sha512(&body);
        let r = put_manifest(&s, "man/sha512", &d, Some(OCI_MANIFEST), &body).await;
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "location"), Some(format!("/v2/man/sha512/manifests/{d}")));
        assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d.as_str()));
        assert_served(&s, "man/sha512", &d, OCI_MANIFEST, &body, &d).await;
    };

    oci_index_put_and_get_keep_bytes_and_content_type => |s: Server| async move {
        let m1 = oci_manifest(&s, "man/index", "amd", "").await;
        let m2 = oci_manifest(&s, "man/index", "arm", "").await;
        let d1 = put_ok(&s, "man/index", &sha256(&m1), OCI_MANIFEST, &m1).await;
        let d2 = put_ok(&s, "man/index", &sha256(&m2), OCI_MANIFEST, &m2).await;
        let idx = index_of(OCI_INDEX, &[(OCI_MANIFEST, &d1, m1.len()), (OCI_MANIFEST, &d2, m2.len())], "");
        let di = put_ok(&s, "man/index", "multi", OCI_INDEX, &idx).await;
        assert_served(&s, "man/index", "multi", OCI_INDEX, &idx, &di).await;
        assert_served(&s, "man/index", &di, OCI_INDEX, &idx, &di).await;
        // An index of indexes, and an empty index.
        let outer = index_of(OCI_INDEX, &[(OCI_INDEX, &di, idx.len())], "");
        let dout = put_ok(&s, "man/index", "outer", OCI_INDEX, &outer).await;
        assert_served(&s, "man/index", "outer", OCI_INDEX, &outer, &dout).await;
        let empty = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#).into_bytes();
        let de = put_ok(&s, "man/index", "empty", OCI_INDEX, &empty).await;
        assert_served(&s, "man/index", "empty", OCI_INDEX, &empty, &de).await;
    };

    docker_schema2_manifest_and_manifest_list_keep_bytes_and_content_type => |s: Server| async move {
        let ((cd, cn), (ld, ln)) = push_parts(&s, "man/docker", "d").await;
        // Docker's own key order and whitespace must survive byte for byte.
        let m = format!(
            "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{DOCKER_MANIFEST}\",\n   \"config\": {{\n      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n      \"size\": {cn},\n      \"digest\": \"{cd}\"\n   }},\n   \"layers\": [\n      {{\n         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n         \"size\": {ln},\n         \"digest\": \"{ld}\"\n      }}\n   ]\n}}"
        )
        .into_bytes();
        let dm = put_ok(&s, "man/docker", "v2", DOCKER_MANIFEST, &m).await;
        assert_served(&s, "man/docker", "v2", DOCKER_MANIFEST, &m, &dm).await;
        assert_served(&s, "man/docker", &dm, DOCKER_MANIFEST, &m, &dm).await;

        let list = index_of(DOCKER_LIST, &[(DOCKER_MANIFEST, &dm, m.len())], "");
        let dl = put_ok(&s, "man/docker", "list", DOCKER_LIST, &list).await;
        assert_served(&s, "man/docker", "list", DOCKER_LIST, &list, &dl).await;
        assert_served(&s, "man/docker", &dl, DOCKER_LIST, &list, &dl).await;
    };

    manifest_without_media_type_field_takes_the_content_type_header => |s: Server| async move {
        let ((cd, cn), (ld, ln)) = push_parts(&s, "man/nomt", "e").await;
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cn}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{ln}}}]}}"#
        )
        .into_bytes();
        let d = put_ok(&s, "man/nomt", "plain", OCI_MANIFEST, &m).await;
        assert_served(&s, "man/nomt", "plain", OCI_MANIFEST, &m, &d).await;
        // Parameters of the Content-Type are not part of the media type.
        let m2 = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cn}}},"layers":[]}}"#
        )
        .into_bytes();
        let r = put_manifest(&s, "man/nomt", "params", Some(&format!("{OCI_MANIFEST}; charset=utf-8")), &m2).await;
        assert_eq!(r.status(), 201);
        assert_served(&s, "man/nomt", "params", OCI_MANIFEST, &m2, &sha256(&m2)).await;
        // An index without mediaType, typed by its header.
        let idx = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{}}}]}}"#, m.len()).into_bytes();
        let di = put_ok(&s, "man/nomt", "idx", OCI_INDEX, &idx).await;
        assert_served(&s, "man/nomt", "idx", OCI_INDEX, &idx, &di).await;
    };

    manifest_descriptors_with_unknown_fields_and_data_are_accepted => |s: Server| async move {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let cd = push_blob(&s, "man/extra", config).await;
        let layer = b"layer with data field";
        let ld = push_blob(&s, "man/extra", layer).await;
        // base64 of the config bytes, computed without a dependency.
        let b64 = base64(config);
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","x-vendor":{{"nested":[1,2,3]}},"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{},"data":"{b64}","x-unknown":true,"annotations":{{"a":"b"}}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{},"urls":["https://example.invalid/x"],"platform":{{"os":"linux"}},"another":null}}],"annotations":{{"org.opencontainers.image.title":"x"}}}}"#,
            config.len(),
            layer.len()
        )
        .into_bytes();
        let d = put_ok(&s, "man/extra", "x", OCI_MANIFEST, &m).await;
        assert_served(&s, "man/extra", "x", OCI_MANIFEST, &m, &d).await;
    };

    manifest_referencing_missing_blob_is_400_manifest_blob_unknown_and_nothing_stored => |s: Server| async move {
        let ((cd, cn), (ld, ln)) = push_parts(&s, "man/missing", "f").await;
        // An existing tag that bad pushes must not move.
        let good = image_manifest((&cd, cn), &[(&ld, ln)], "");
        let dg = put_ok(&s, "man/missing", "stable", OCI_MANIFEST, &good).await;
        let absent = sha256(b"no such blob");
        let elsewhere = push_blob(&s, "man/other", b"only in another repository").await;
        let unlinked = push_blob(&s, "man/missing", b"deleted before the push").await;
        let r = client().delete(s.url(&format!("/v2/man/missing/blobs/{unlinked}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let bad = [
            // missing layer
            image_manifest((&cd, cn), &[(&ld, ln), (&absent, 12)], ""),
            // missing config
            image_manifest((&absent, 12), &[(&ld, ln)], ""),
            // a blob of another repository
            image_manifest((&cd, cn), &[(&elsewhere, 26)], ""),
            // a blob deleted from this repository
            image_manifest((&cd, cn), &[(&unlinked, 23)], ""),
        ];
        for (i, m) in bad.iter().enumerate() {
            let d = sha256(m);
            for reference in ["stable", "newtag", d.as_str()] {
                let r = put_manifest(&s, "man/missing", reference, Some(OCI_MANIFEST), m).await;
                assert_eq!(r.status(), 400, "case {i} as {reference}");
                assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN", "case {i} as {reference}");
            }
            assert_manifest_absent(&s, "man/missing", &d).await;
        }
        assert_manifest_absent(&s, "man/missing", "newtag").await;
        assert_served(&s, "man/missing", "stable", OCI_MANIFEST, &good, &dg).await;
        assert_eq!(tags_of(&s, "man/missing").await, Some(vec!["stable".to_string()]));
    };

    index_referencing_missing_manifest_is_400_manifest_blob_unknown_and_nothing_stored => |s: Server| async move {
        let m = oci_manifest(&s, "man/idxmissing", "g", "").await;
        let dm = put_ok(&s, "man/idxmissing", &sha256(&m), OCI_MANIFEST, &m).await;
        let foreign = oci_manifest(&s, "man/idxother", "h", "").await;
        let df = put_ok(&s, "man/idxother", "t", OCI_MANIFEST, &foreign).await;
        let absent = sha256(b"no such manifest");
        // A blob is not a manifest.
        let blob = push_blob(&s, "man/idxmissing", b"a plain blob").await;
        let cases = [
            index_of(OCI_INDEX, &[(OCI_MANIFEST, &dm, m.len()), (OCI_MANIFEST, &absent, 100)], ""),
            index_of(OCI_INDEX, &[(OCI_MANIFEST, &df, foreign.len())], ""),
            index_of(OCI_INDEX, &[(OCI_MANIFEST, &blob, 12)], ""),
            index_of(DOCKER_LIST, &[(DOCKER_MANIFEST, &absent, 100)], ""),
        ];
        for (i, idx) in cases.iter().enumerate() {
            let ct = if i == 3 { DOCKER_LIST } else { OCI_INDEX };
            let r = put_manifest(&s, "man/idxmissing", "idx", Some(ct), idx).await;
            assert_eq!(r.status(), 400, "case {i}");
            assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN", "case {i}");
            assert_manifest_absent(&s, "man/idxmissing", &sha256(idx)).await;
        }
        assert_manifest_absent(&s, "man/idxmissing", "idx").await;
        assert_eq!(tags_of(&s, "man/idxmissing").await, Some(vec![]));
    };

    descriptor_size_not_matching_the_blob_is_400_manifest_invalid => |s: Server| async move {
        let ((cd, cn), (ld, ln)) = push_parts(&s, "man/size", "i").await;
        let m = image_manifest((&cd, cn), &[(&ld, ln + 1)], "");
        let r = put_manifest(&s, "man/size", "t", Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
        assert_manifest_absent(&s, "man/size", "t").await;
        assert_manifest_absent(&s, "man/size", &sha256(&m)).await;
        let good = image_manifest((&cd, cn), &[(&ld, ln)], "");
        let dg = put_ok(&s, "man/size", &sha256(&good), OCI_MANIFEST, &good).await;
        let idx = index_of(OCI_INDEX, &[(OCI_MANIFEST, &dg, good.len() - 1)], "");
        let r = put_manifest(&s, "man/size", "t", Some(OCI_INDEX), &idx).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
        assert_manifest_absent(&s, "man/size", "t").await;
    };

    put_by_digest_whose_body_does_not_match_is_400_digest_invalid => |s: Server| async move {
        let m = oci_manifest(&s, "man/wrongdigest", "j", "").await;
        let other = sha256(b"some other manifest");
        let r = put_manifest(&s, "man/wrongdigest", &other, Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        let r = put_manifest(&s, "man/wrongdigest", &sha512(b"other"), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_manifest_absent(&s, "man/wrongdigest", &other).await;
        assert_manifest_absent(&s, "man/wrongdigest", &sha256(&m)).await;
        assert_manifest_absent(&s, "man/wrongdigest", &sha512(&m)).await;
        assert_eq!(tags_of(&s, "man/wrongdigest").await, Some(vec![]));
    };

    invalid_manifest_json_is_400_manifest_invalid_and_nothing_stored => |s: Server| async move {
        let ((cd, cn), (ld, ln)) = push_parts(&s, "man/badjson", "k").await;
        let cfg = format!(r#"{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cn}}}"#);
        let lay = format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{ln}}}"#);
        let cases: Vec<String> = vec![
            String::new(),
            "not json".into(),
            "{".into(),
            "[]".into(),
            "null".into(),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[{lay}]"#),
            // wrong schemaVersion / missing schemaVersion
            format!(r#"{{"schemaVersion":1,"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[{lay}]}}"#),
            format!(r#"{{"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[{lay}]}}"#),
            format!(r#"{{"schemaVersion":"2","mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[{lay}]}}"#),
            // missing config / layers not an array / missing layers
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[{lay}]}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":{lay}}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{cfg}}}"#),
            // descriptors with a bad digest, a negative size, no mediaType
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[{{"mediaType":"a/b","digest":"sha256:abc","size":1}}]}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[{{"mediaType":"a/b","digest":"{ld}","size":-1}}]}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[{{"digest":"{ld}","size":{ln}}}]}}"#),
            // an image manifest with an index's manifests array
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{cfg},"layers":[],"manifests":[]}}"#),
        ];
        for (i, body) in cases.iter().enumerate() {
            let r = put_manifest(&s, "man/badjson", "t", Some(OCI_MANIFEST), body.as_bytes()).await;
            assert_eq!(r.status(), 400, "case {i}: {body}");
            assert_eq!(error_code(r).await, "MANIFEST_INVALID", "case {i}: {body}");
            assert_manifest_absent(&s, "man/badjson", &sha256(body.as_bytes())).await;
        }
        // Index-shaped errors.
        let idx_cases: Vec<String> = vec![
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"config":{cfg}}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"layers":[]}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":{{}}}}"#),
        ];
        for (i, body) in idx_cases.iter().enumerate() {
            let r = put_manifest(&s, "man/badjson", "t", Some(OCI_INDEX), body.as_bytes()).await;
            assert_eq!(r.status(), 400, "index case {i}: {body}");
            assert_eq!(error_code(r).await, "MANIFEST_INVALID", "index case {i}: {body}");
            assert_manifest_absent(&s, "man/badjson", &sha256(body.as_bytes())).await;
        }
        assert_manifest_absent(&s, "man/badjson", "t").await;
        assert_eq!(tags_of(&s, "man/badjson").await, Some(vec![]));
    };

    media_type_and_content_type_mismatch_is_400_manifest_invalid => |s: Server| async move {
        let m = oci_manifest(&s, "man/mismatch", "l", "").await;
        for ct in [OCI_INDEX, DOCKER_MANIFEST, "application/json", "text/plain"] {
            let r = put_manifest(&s, "man/mismatch", "t", Some(ct), &m).await;
            assert_eq!(r.status(), 400, "Content-Type {ct}");
            assert_eq!(error_code(r).await, "MANIFEST_INVALID", "Content-Type {ct}");
        }
        assert_manifest_absent(&s, "man/mismatch", "t").await;
        assert_manifest_absent(&s, "man/mismatch", &sha256(&m)).await;
        assert_eq!(tags_of(&s, "man/mismatch").await, Some(vec![]));
        // The same bytes under their own type are fine.
        put_ok(&s, "man/mismatch", "t", OCI_MANIFEST, &m).await;
    };

    manifest_of_unsupported_or_unknown_media_type_is_400_manifest_invalid => |s: Server| async move {
        let ((cd, cn), (ld, ln)) = push_parts(&s, "man/mediatype", "m").await;
        let no_mt = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cn}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{ln}}}]}}"#
        );
        // Neither a mediaType field nor a Content-Type header.
        let r = put_manifest(&s, "man/mediatype", "t", None, no_mt.as_bytes()).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
        // A header that is not a manifest type.
        for ct in ["application/json", "application/octet-stream", "application/vnd.docker.distribution.manifest.v1+json"] {
            let r = put_manifest(&s, "man/mediatype", "t", Some(ct), no_mt.as_bytes()).await;
            assert_eq!(r.status(), 400, "{ct}");
            assert_eq!(error_code(r).await, "MANIFEST_INVALID", "{ct}");
        }
        // A body mediaType that is not a manifest type, with a matching header.
        let weird = no_mt.replacen('{', r#"{"mediaType":"application/vnd.example.thing","#, 1);
        let r = put_manifest(&s, "man/mediatype", "t", Some("application/vnd.example.thing"), weird.as_bytes()).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
        assert_manifest_absent(&s, "man/mediatype", "t").await;
        assert_eq!(tags_of(&s, "man/mediatype").await, Some(vec![]));
    };

    manifest_larger_than_4_mib_with_content_length_is_413_and_nothing_stored => |s: Server| async move {
        let m = oversized_manifest(&s, "man/big").await;
        let r = client()
            .put(s.url("/v2/man/big/manifests/big"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await;
        let status = status_or_error(&r);
        assert_eq!(status, Ok(413), "the client must receive the 413 (not a reset connection)");
        assert_manifest_absent(&s, "man/big", "big").await;
        assert_manifest_absent(&s, "man/big", &sha256(&m)).await;
        assert_eq!(tags_of(&s, "man/big").await, Some(vec![]));
    };

    manifest_larger_than_4_mib_streamed_without_content_length_is_413_and_nothing_stored => |s: Server| async move {
        let m = oversized_manifest(&s, "man/bigstream").await;
        let r = client()
            .put(s.url("/v2/man/bigstream/manifests/big"))
            .header("Content-Type", OCI_MANIFEST)
            .body(streamed(m.chunks(256 * 1024).map(|c| c.to_vec()).collect()))
            .send()
            .await;
        let status = status_or_error(&r);
        assert_eq!(status, Ok(413), "the client must receive the 413 (not a reset connection)");
        assert_manifest_absent(&s, "man/bigstream", "big").await;
        assert_manifest_absent(&s, "man/bigstream", &sha256(&m)).await;
        assert_eq!(tags_of(&s, "man/bigstream").await, Some(vec![]));
    };

    manifest_of_3_9_mb_and_of_exactly_4_mib_is_accepted => |s: Server| async move {
        let ((cd, cn), (ld, ln)) = push_parts(&s, "man/large", "o").await;
        let base = image_manifest((&cd, cn), &[(&ld, ln)], r#","annotations":{"pad":""}"#).len();
        for (tag, size) in [("mb39", 3_900_000usize), ("mib4", 4 * 1024 * 1024)] {
            let pad = "y".repeat(size - base);
            let m = image_manifest((&cd, cn), &[(&ld, ln)], &format!(r#","annotations":{{"pad":"{pad}"}}"#));
            assert_eq!(m.len(), size);
            let d = put_ok(&s, "man/large", tag, OCI_MANIFEST, &m).await;
            assert_served(&s, "man/large", tag, OCI_MANIFEST, &m, &d).await;
        }
    };

    invalid_tag_on_put_is_400_tag_invalid_and_nothing_stored => |s: Server| async move {
        let m = oci_manifest(&s, "man/badtag", "p", "").await;
        let long = "a".repeat(129);
        for tag in ["-bad", ".bad", long.as_str(), "a%20b", "%C3%A9t%C3%A9"] {
            let r = put_manifest(&s, "man/badtag", tag, Some(OCI_MANIFEST), &m).await;
            assert_eq!(r.status(), 400, "tag {tag}");
            assert_eq!(error_code(r).await, "TAG_INVALID", "tag {tag}");
        }
        assert_manifest_absent(&s, "man/badtag", &sha256(&m)).await;
        assert_eq!(tags_of(&s, "man/badtag").await, Some(vec![]));
        // The 128-character boundary is a valid tag.
        let ok = "a".repeat(128);
        put_ok(&s, "man/badtag", &ok, OCI_MANIFEST, &m).await;
        assert_eq!(tags_of(&s, "man/badtag").await, Some(vec![ok]));
    };

    get_of_invalid_or_unknown_reference_is_404_manifest_unknown => |s: Server| async move {
        let m = oci_manifest(&s, "man/badref", "q", "").await;
        let d = put_ok(&s, "man/badref", "real", OCI_MANIFEST, &m).await;
        let long = "a".repeat(129);
        let upper = d.to_uppercase();
        for reference in ["-bad", ".bad", long.as_str(), "sha256:xyz", "md5:d41d8cd98f00b204e9800998ecf8427e", upper.as_str(), "nosuchtag"] {
            assert_manifest_absent(&s, "man/badref", reference).await;
        }
        assert_manifest_absent(&s, "man/badref", &sha256(b"unknown")).await;
        // A manifest of another repository is not visible here.
        assert_manifest_absent(&s, "man/badref-other", &d).await;
        assert_manifest_absent(&s, "man/badref-other", "real").await;
        assert_served(&s, "man/badref", "real", OCI_MANIFEST, &m, &d).await;
    };

    manifest_with_subject_answers_oci_subject_header => |s: Server| async move {
        let subject = oci_manifest(&s, "man/subject", "r", "").await;
        let ds = put_ok(&s, "man/subject", "base", OCI_MANIFEST, &subject).await;
        let extra = format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{ds}","size":{}}}"#, subject.len());
        let referrer = oci_manifest(&s, "man/subject", "s", &extra).await;
        let r = put_manifest(&s, "man/subject", &sha256(&referrer), Some(OCI_MANIFEST), &referrer).await;
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "oci-subject").as_deref(), Some(ds.as_str()));
        // A subject that does not exist (yet) is accepted too, with the header.
        let ghost = sha256(b"ghost subject");
        let extra = format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{ghost}","size":10}}"#);
        let early = oci_manifest(&s, "man/subject", "t", &extra).await;
        let r = put_manifest(&s, "man/subject", "early", Some(OCI_MANIFEST), &early).await;
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "oci-subject").as_deref(), Some(ghost.as_str()));
        assert_served(&s, "man/subject", "early", OCI_MANIFEST, &early, &sha256(&early)).await;
        // An index with a subject.
        let idx = index_of(OCI_INDEX, &[(OCI_MANIFEST, &ds, subject.len())], &format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{ds}","size":{}}}"#, subject.len()));
        let r = put_manifest(&s, "man/subject", "idx", Some(OCI_INDEX), &idx).await;
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "oci-subject").as_deref(), Some(ds.as_str()));
    };

    tag_overwrite_moves_the_tag_and_keeps_the_old_manifest_by_digest => |s: Server| async move {
        let m1 = oci_manifest(&s, "man/retag", "u1", "").await;
        let m2 = oci_manifest(&s, "man/retag", "u2", "").await;
        let d1 = put_ok(&s, "man/retag", "latest", OCI_MANIFEST, &m1).await;
        assert_served(&s, "man/retag", "latest", OCI_MANIFEST, &m1, &d1).await;
        let d2 = put_ok(&s, "man/retag", "latest", OCI_MANIFEST, &m2).await;
        assert_served(&s, "man/retag", "latest", OCI_MANIFEST, &m2, &d2).await;
        assert_served(&s, "man/retag", &d1, OCI_MANIFEST, &m1, &d1).await;
        assert_eq!(tags_of(&s, "man/retag").await, Some(vec!["latest".to_string()]));
        // And back again.
        put_ok(&s, "man/retag", "latest", OCI_MANIFEST, &m1).await;
        assert_served(&s, "man/retag", "latest", OCI_MANIFEST, &m1, &d1).await;
    };

    delete_by_tag_is_202_and_removes_only_the_tag => |s: Server| async move {
        let m = oci_manifest(&s, "man/deltag", "v", "").await;
        let d = put_ok(&s, "man/deltag", "one", OCI_MANIFEST, &m).await;
        put_ok(&s, "man/deltag", "two", OCI_MANIFEST, &m).await;
        let r = client().delete(s.url("/v2/man/deltag/manifests/one")).send().await.unwrap();
        assert_eq!(r.status(), 202);
        assert_manifest_absent(&s, "man/deltag", "one").await;
        assert_served(&s, "man/deltag", &d, OCI_MANIFEST, &m, &d).await;
        assert_served(&s, "man/deltag", "two", OCI_MANIFEST, &m, &d).await;
        assert_eq!(tags_of(&s, "man/deltag").await, Some(vec!["two".to_string()]));
        let r = client().delete(s.url("/v2/man/deltag/manifests/one")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    };

    delete_by_digest_is_202_and_removes_its_tags_leaving_an_empty_tag_list => |s: Server| async move {
        let m = oci_manifest(&s, "man/deldigest", "w", "").await;
        let d = put_ok(&s, "man/deldigest", "a", OCI_MANIFEST, &m).await;
        put_ok(&s, "man/deldigest", "b", OCI_MANIFEST, &m).await;
        let r = client().delete(s.url(&format!("/v2/man/deldigest/manifests/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        assert_manifest_absent(&s, "man/deldigest", &d).await;
        assert_manifest_absent(&s, "man/deldigest", "a").await;
        assert_manifest_absent(&s, "man/deldigest", "b").await;
        let r = client().get(s.url("/v2/man/deldigest/tags/list")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["name"], "man/deldigest");
        assert_eq!(v["tags"], serde_json::json!([]));
        let r = client().delete(s.url(&format!("/v2/man/deldigest/manifests/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
        // Pushing it again brings it back.
        put_ok(&s, "man/deldigest", "c", OCI_MANIFEST, &m).await;
        assert_served(&s, "man/deldigest", "c", OCI_MANIFEST, &m, &d).await;
        assert_eq!(tags_of(&s, "man/deldigest").await, Some(vec!["c".to_string()]));
    };

    delete_of_unknown_or_invalid_reference_is_404_manifest_unknown => |s: Server| async move {
        let m = oci_manifest(&s, "man/delunknown", "x", "").await;
        let d = put_ok(&s, "man/delunknown", "keep", OCI_MANIFEST, &m).await;
        for reference in ["nosuchtag".to_string(), sha256(b"nothing"), "-bad".to_string(), "sha256:abc".to_string()] {
            let r = client().delete(s.url(&format!("/v2/man/delunknown/manifests/{reference}"))).send().await.unwrap();
            assert_eq!(r.status(), 404, "{reference}");
            assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN", "{reference}");
        }
        // Deleting by digest in another repository does not touch this one.
        let r = client().delete(s.url(&format!("/v2/man/delunknown-other/manifests/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_served(&s, "man/delunknown", "keep", OCI_MANIFEST, &m, &d).await;
    };
}

/// A valid image manifest of 4 MiB + 1 byte whose blobs exist in `repo`.
async fn oversized_manifest(s: &Server, repo: &str) -> Vec<u8> {
    let ((cd, cn), (ld, ln)) = push_parts(s, repo, "big").await;
    let limit = 4 * 1024 * 1024;
    let base = image_manifest((&cd, cn), &[(&ld, ln)], r#","annotations":{"pad":""}"#).len();
    let pad = "x".repeat(limit + 1 - base);
    let m = image_manifest(
        (&cd, cn),
        &[(&ld, ln)],
        &format!(r#","annotations":{{"pad":"{pad}"}}"#),
    );
    assert_eq!(m.len(), limit + 1);
    m
}
