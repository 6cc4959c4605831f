//! Smallest end-to-end check that the harness and server work on both backends.

use crate::common::*;

both_backends! {
    base_and_push_pull => |s: Server| async move {
        let r = client().get(s.url("/v2/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");
        let d = push_image(&s, "smoke/repo", "v1", "a").await;
        let r = client().get(s.url("/v2/smoke/repo/manifests/v1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    };
}
