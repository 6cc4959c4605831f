//! Hostile values that pass the grammar checks of the path but must still
//! get a 4xx, never reach the database raw, and change nothing stored.

use crate::common::*;

both_backends! {
    content_range_ending_at_u64_max_is_400_and_keeps_the_session => |s: Server| async move {
        let r = client().post(s.url("/v2/edge/range/blobs/uploads/")).send().await.unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let r = client()
            .patch(s.url(&loc))
            .header("Content-Range", format!("0-{}", u64::MAX))
            .body(vec![1u8; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
        let r = client().get(s.url(&loc)).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(r.headers()["range"], "0-0");
    };

    artifact_type_that_is_not_a_media_type_is_manifest_invalid => |s: Server| async move {
        let config = push_blob(&s, "edge/atype", b"{}").await;
        for bad in [r#""artifactType":"nul\u0000inside","#, r#""artifactType":"no-slash","#] {
            let body = String::from_utf8(image_manifest((&config, 2), &[], "")).unwrap().replacen(
                r#""config""#,
                &format!(r#"{bad}"config""#),
                1,
            );
            let r = client()
                .put(s.url("/v2/edge/atype/manifests/v1"))
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{bad}");
            assert_eq!(error_code(r).await, "MANIFEST_INVALID", "{bad}");
        }
        let r = client().get(s.url("/v2/edge/atype/manifests/v1")).send().await.unwrap();
        assert_eq!(r.status(), 404, "a refused manifest leaves no tag");
    };

    control_characters_in_last_are_400 => |s: Server| async move {
        push_image(&s, "edge/last", "a", "x").await;
        for path in ["/v2/edge/last/tags/list?last=a%00", "/v2/_catalog?last=%01", "/v2/edge/last/tags/list?n=1&last=%0a"] {
            let r = client().get(s.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 400, "{path}");
            assert_eq!(error_code(r).await, "PAGINATION_NUMBER_INVALID", "{path}");
        }
        let r = client().get(s.url("/v2/edge/last/tags/list")).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["tags"], serde_json::json!(["a"]));
    };

    referrers_filter_that_is_not_a_media_type_matches_nothing => |s: Server| async move {
        let subject = push_image(&s, "edge/refs", "v1", "s").await;
        let config = push_blob(&s, "edge/refs", b"{}").await;
        let extra = format!(
            r#","artifactType":"application/vnd.example.sig","subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":1}}"#
        );
        let r = client()
            .put(s.url("/v2/edge/refs/manifests/sig"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(image_manifest((&config, 2), &[], &extra))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let all = client().get(s.url(&format!("/v2/edge/refs/referrers/{subject}"))).send().await.unwrap();
        let v: serde_json::Value = all.json().await.unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
        for filter in ["nul%00type", "%00", "no-slash"] {
            let r = client()
                .get(s.url(&format!("/v2/edge/refs/referrers/{subject}?artifactType={filter}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{filter}");
            assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["manifests"], serde_json::json!([]), "{filter}");
        }
    };
}
