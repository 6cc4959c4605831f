//! `01_pull_test.go`: the pull workflow.

use super::*;
use reqwest::Method;

pub(super) async fn pull_workflow(ctx: &mut Ctx) {
    let run_pull_setup = true;
    let mut tag = String::new();

    // Setup.
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test blob (configs[0])",
        {
            run_only_if!(run_pull_setup);
            ctx.setup_upload("Pull setup", &ctx.d.configs[0]).await?;
        }
    );
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test blob (configs[1])",
        {
            run_only_if!(run_pull_setup);
            ctx.setup_upload("Pull setup", &ctx.d.configs[1]).await?;
        }
    );
    spec!(ctx, "Pull/Setup: Populate registry with test layer", {
        run_only_if!(run_pull_setup);
        ctx.setup_upload("Pull setup", &ctx.d.layer).await?;
    });
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test manifest (tag)",
        {
            run_only_if!(run_pull_setup);
            tag = TEST_TAG_NAME.to_string();
            let r = ctx
                .put_manifest(&tag, OCI_MANIFEST, &ctx.d.manifests[0].content)
                .await?;
            check!(
                is_2xx(r.status),
                "Pull setup: PUT manifests/{tag} (manifests[0]) must be 2xx, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test manifest (digest)",
        {
            run_only_if!(run_pull_setup);
            let m = &ctx.d.manifests[1];
            let r = ctx
                .put_manifest(&m.digest, OCI_MANIFEST, &m.content)
                .await?;
            check!(
                is_2xx(r.status),
                "Pull setup: PUT manifests/<manifests[1] digest> must be 2xx, got {}",
                r.brief()
            );
        }
    );
    spec!(ctx, "Pull/Setup: Get tag name from environment", {
        run_only_if!(!run_pull_setup);
    });

    // Pull blobs.
    spec!(
        ctx,
        "Pull/P1: HEAD request to nonexistent blob should result in 404 response",
        {
            let r = ctx
                .call(Method::HEAD, &format!("blobs/{}", ctx.d.dummy_digest))
                .await?;
            check!(
                r.status == 404,
                "P1: HEAD of a nonexistent blob must be exactly 404, got {}",
                r.status
            );
        }
    );
    spec!(
        ctx,
        "Pull/P2: HEAD request to existing blob should yield 200",
        {
            let d = &ctx.d.configs[0].digest;
            let r = ctx.call(Method::HEAD, &format!("blobs/{d}")).await?;
            check!(
                r.status == 200,
                "P2: HEAD of configs[0] must be exactly 200, got {}",
                r.status
            );
            check_content_digest("P2", &r, d)?;
        }
    );
    spec!(
        ctx,
        "Pull/P3: GET nonexistent blob should result in 404 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.dummy_digest))
                .await?;
            check!(
                r.status == 404,
                "P3: GET of a nonexistent blob must be 404, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Pull/P4: GET request to existing blob URL should yield 200",
        {
            let d = &ctx.d.configs[0].digest;
            let r = ctx.call(Method::GET, &format!("blobs/{d}")).await?;
            check!(
                r.status == 200,
                "P4: GET of configs[0] must be 200, got {}",
                r.brief()
            );
        }
    );

    // Pull manifests.
    spec!(
        ctx,
        "Pull/P5: HEAD request to nonexistent manifest should return 404",
        {
            let r = ctx
                .call(Method::HEAD, &format!("manifests/{NONEXISTENT_MANIFEST}"))
                .await?;
            check!(
                r.status == 404,
                "P5: HEAD manifests/{NONEXISTENT_MANIFEST} must be exactly 404, got {}",
                r.status
            );
        }
    );
    for (i, step) in [(0usize, "P6"), (1, "P7")] {
        let name = format!(
            "Pull/{step}: HEAD request to manifest[{i}] path (digest) should yield 200 response"
        );
        spec!(ctx, &name, {
            let d = &ctx.d.manifests[i].digest;
            let r = ctx
                .send(
                    req(Method::HEAD, ctx.p(&format!("manifests/{d}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "{step}: HEAD manifests[{i}] by digest must be 200, got {}",
                r.status
            );
            check_content_digest(step, &r, d)?;
        });
    }
    spec!(
        ctx,
        "Pull/P8: HEAD request to manifest path (tag) should yield 200 response",
        {
            check!(!tag.is_empty(), "P8: tag must not be empty");
            let r = ctx
                .send(
                    req(Method::HEAD, ctx.p(&format!("manifests/{tag}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "P8: HEAD manifests/{tag} must be 200, got {}",
                r.status
            );
            check_content_digest("P8", &r, &ctx.d.manifests[0].digest)?;
        }
    );
    spec!(
        ctx,
        "Pull/P9: GET nonexistent manifest should return 404",
        {
            let r = ctx
                .call(Method::GET, &format!("manifests/{NONEXISTENT_MANIFEST}"))
                .await?;
            check!(
                r.status == 404,
                "P9: GET manifests/{NONEXISTENT_MANIFEST} must be 404, got {}",
                r.brief()
            );
        }
    );
    for i in 0..2usize {
        let name = format!(
            "Pull/P10: GET request to manifest[{i}] path (digest) should yield 200 response"
        );
        spec!(ctx, &name, {
            let d = &ctx.d.manifests[i].digest;
            let r = ctx
                .send(
                    req(Method::GET, ctx.p(&format!("manifests/{d}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "P10: GET manifests[{i}] by digest must be 200, got {}",
                r.brief()
            );
        });
    }
    spec!(
        ctx,
        "Pull/P10: GET request to manifest path (tag) should yield 200 response",
        {
            check!(!tag.is_empty(), "P10: tag must not be empty");
            let r = ctx
                .send(
                    req(Method::GET, ctx.p(&format!("manifests/{tag}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "P10: GET manifests/{tag} must be 200, got {}",
                r.brief()
            );
        }
    );

    // Error codes.
    spec!(
        ctx,
        "Pull/P11: 400 response body should contain OCI-conforming JSON message",
        {
            let r = ctx
                .send(
                    req(Method::GET, ctx.p("manifests/sha256:totallywrong"))
                        .header("Content-Type", OCI_MANIFEST)
                        .body(INVALID_MANIFEST_CONTENT),
                )
                .await?;
            check!(
                r.status == 400 || r.status == 404,
                "P11: GET manifests/sha256:totallywrong (with a body) must be 400 or 404, got {}",
                r.brief()
            );
            if r.status == 400 {
                let codes = parse_error_codes(&r.body);
                check!(
                    codes.is_ok(),
                    "P11: 400 body must parse as OCI errors: {:?} ({})",
                    codes.err(),
                    r.brief()
                );
                let codes = codes.unwrap_or_default();
                check!(
                    !codes.is_empty(),
                    "P11: 400 body must list at least one error: {}",
                    r.brief()
                );
                check!(
                    ERROR_CODES.contains(&codes[0].as_str()),
                    "P11: errors[0].code {:?} is not an OCI error code",
                    codes[0]
                );
            }
        }
    );

    // Teardown (OCI_DELETE_MANIFEST_BEFORE_BLOBS=true: manifests first).
    for i in 0..2usize {
        let name = format!("Pull/Teardown: Delete manifest[{i}] created in setup");
        spec!(ctx, &name, {
            run_only_if!(run_pull_setup);
            ctx.delete(
                "Pull teardown",
                "manifests",
                &ctx.d.manifests[i].digest,
                ok_2xx_405,
                "2xx or 405",
            )
            .await?;
        });
    }
    for (label, blob) in [
        ("config[0] blob", ctx.d.configs[0].digest.clone()),
        ("config[1] blob", ctx.d.configs[1].digest.clone()),
        ("layer blob", ctx.d.layer.digest.clone()),
    ] {
        let name = format!("Pull/Teardown: Delete {label} created in setup");
        spec!(ctx, &name, {
            run_only_if!(run_pull_setup);
            ctx.delete(
                "Pull teardown",
                "blobs",
                &blob,
                ok_2xx_404_405,
                "2xx, 404 or 405",
            )
            .await?;
        });
    }
}
