//! `02_push_test.go`: the push workflow.

use super::*;
use reqwest::Method;

pub(super) async fn push_workflow(ctx: &mut Ctx) {
    let run_push_setup = true;
    let mut last_response: Option<Resp> = None;
    let mut prev_response: Option<Resp> = None;
    let mut empty_layer_manifest_ref = String::new();

    // Blob Upload Streamed.
    spec!(
        ctx,
        "Push/Streamed S1+S2: PATCH request with blob in body should yield 202 response",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                !r.header("Location").is_empty(),
                "S1: POST uploads must return a Location ({})",
                r.brief()
            );
            let r = ctx
                .send(
                    req(Method::PATCH, r.relative_location())
                        .header("Content-Type", OCTET)
                        .body(&ctx.d.blob_a.content),
                )
                .await?;
            check!(
                r.status == 202,
                "S2: streamed PATCH (no Content-Range) must be exactly 202, got {}",
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Streamed S3: PUT request to session URL with digest should yield 201 response",
        {
            let last = earlier(&last_response, "S3: lastResponse must not be nil")?;
            let r = ctx
                .send(
                    req(Method::PUT, last.relative_location())
                        .query("digest", ctx.d.blob_a.digest.clone())
                        .header("Content-Type", OCTET),
                )
                .await?;
            check!(
                r.status == 201,
                "S3: closing PUT (empty body) must be exactly 201, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "S3: closing PUT must return a Location"
            );
        }
    );

    // Blob Upload Monolithic.
    spec!(
        ctx,
        "Push/Monolithic M1: GET nonexistent blob should result in 404 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.dummy_digest))
                .await?;
            check!(
                r.status == 404,
                "M1: GET of a nonexistent blob must be 404, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M2: POST request with digest and blob should yield a 201 or 202",
        {
            let c = &ctx.d.configs[1];
            let r = ctx
                .send(
                    req(Method::POST, ctx.p("blobs/uploads/"))
                        .header("Content-Type", OCTET)
                        .query("digest", c.digest.clone())
                        .body(&c.content),
                )
                .await?;
            check!(
                !r.header("Location").is_empty(),
                "M2: single POST must return a Location ({})",
                r.brief()
            );
            check!(
                r.status == 201 || r.status == 202,
                "M2: single POST with digest must be 201 or 202, got {}",
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(ctx, "Push/Monolithic M3: GET request to blob URL from prior request should yield 200 or 404 based on response code", {
        let last = earlier(&last_response, "M3: lastResponse must not be nil")?;
        let r = ctx.call(Method::GET, &format!("blobs/{}", ctx.d.configs[1].digest)).await?;
        if last.status == 202 {
            check!(r.status == 404, "M3: single POST answered 202, so GET configs[1] must be 404, got {}", r.status);
        } else {
            check!(r.status == 200, "M3: single POST answered {}, so GET configs[1] must be 200, got {}", last.status, r.status);
        }
    });
    spec!(
        ctx,
        "Push/Monolithic M4: POST request should yield a session ID",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                r.status == 202,
                "M4: POST uploads must be exactly 202, got {}",
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M5: PUT upload of a blob should yield a 201 Response",
        {
            let last = earlier(&last_response, "M5: lastResponse is nil (Go would panic)")?;
            let c = &ctx.d.configs[1];
            let r = ctx
                .send(
                    req(Method::PUT, last.relative_location())
                        .header("Content-Type", OCTET)
                        .query("digest", c.digest.clone())
                        .body(&c.content),
                )
                .await?;
            check!(
                !r.header("Location").is_empty(),
                "M5: monolithic PUT must return a Location ({})",
                r.brief()
            );
            check!(
                r.status == 201,
                "M5: monolithic PUT must be exactly 201, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M6: GET request to existing blob should yield 200 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.configs[1].digest))
                .await?;
            check!(
                r.status == 200,
                "M6: GET configs[1] must be 200, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M7: PUT upload of a layer blob should yield a 201 Response",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            let l = &ctx.d.layer;
            let r = ctx
                .send(
                    req(Method::PUT, r.relative_location())
                        .header("Content-Type", OCTET)
                        .query("digest", l.digest.clone())
                        .body(&l.content),
                )
                .await?;
            check!(
                !r.header("Location").is_empty(),
                "M7: layer PUT must return a Location ({})",
                r.brief()
            );
            check!(
                r.status == 201,
                "M7: layer PUT must be exactly 201, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M8: GET request to existing layer should yield 200 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.layer.digest))
                .await?;
            check!(
                r.status == 200,
                "M8: GET layer must be 200, got {}",
                r.brief()
            );
        }
    );

    // Blob Upload Chunked.
    spec!(
        ctx,
        "Push/Chunked C1+C2: Out-of-order blob upload should return 416",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                !r.header("Location").is_empty(),
                "C1: POST uploads must return a Location ({})",
                r.brief()
            );
            let min = r.header("OCI-Chunk-Min-Length");
            if !min.is_empty() {
                let parsed = min.parse::<i64>();
                check!(
                    parsed.is_ok(),
                    "C1: OCI-Chunk-Min-Length {min:?} must be an integer"
                );
                let min = parsed.unwrap_or_default();
                if min > ctx.d.blob_b.chunk1.len() as i64 {
                    ctx.d.blob_b =
                        ChunkedBlob::new((min * 2 - 2) as usize, ctx.seed.wrapping_add(2));
                }
            }
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, r.relative_location())
                        .header("Content-Type", OCTET)
                        .header("Content-Range", b.chunk2_range.clone())
                        .body(&b.chunk2),
                )
                .await?;
            check!(
            r.status == 416,
            "C2: PATCH of chunk2 (Content-Range {}) on a fresh session must be exactly 416, got {}",
            b.chunk2_range,
            r.brief()
        );
        }
    );
    spec!(
        ctx,
        "Push/Chunked C3: PATCH request with first chunk should return 202",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                !r.header("Location").is_empty(),
                "C3: POST uploads must return a Location ({})",
                r.brief()
            );
            let loc = r.relative_location();
            prev_response = Some(r);
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, loc)
                        .header("Content-Type", OCTET)
                        .header("Content-Range", b.chunk1_range.clone())
                        .body(&b.chunk1),
                )
                .await?;
            check!(
                r.status == 202,
                "C3: PATCH of chunk1 must be exactly 202, got {}",
                r.brief()
            );
            let range = r.header("Range");
            check!(
                range == b.chunk1_range,
                "C3: Range after chunk1 must be exactly {:?}, got {range:?}",
                b.chunk1_range
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Chunked C4: Retry previous blob chunk should return 416",
        {
            let prev = earlier(&prev_response, "C4: prevResponse is nil (Go would panic)")?;
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, prev.relative_location())
                        .header("Content-Type", OCTET)
                        .header("Content-Range", b.chunk1_range.clone())
                        .body(&b.chunk1),
                )
                .await?;
            check!(
                r.status == 416,
                "C4: re-sent chunk on stale URL must be 416, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Chunked C5: Get on stale blob upload should return 204 with a range and location",
        {
            let prev = earlier(&prev_response, "C5: prevResponse is nil (Go would panic)")?;
            let r = ctx.send(req(Method::GET, prev.relative_location())).await?;
            check!(
                r.status == 204,
                "C5: GET on the stale upload URL must be exactly 204, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "C5: upload status must carry a Location"
            );
            let range = r.header("Range");
            check!(
                range == ctx.d.blob_b.chunk1_range,
                "C5: upload status Range must be exactly {:?}, got {range:?}",
                ctx.d.blob_b.chunk1_range
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Chunked C6: PATCH request with second chunk should return 202",
        {
            let last = earlier(&last_response, "C6: lastResponse is nil (Go would panic)")?;
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, last.relative_location())
                        .header("Content-Range", b.chunk2_range.clone())
                        .header("Content-Type", OCTET)
                        .body(&b.chunk2),
                )
                .await?;
            check!(
                r.status == 202,
                "C6: PATCH of chunk2 must be exactly 202, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "C6: PATCH of chunk2 must return a Location"
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Chunked C7: PUT request with digest should return 201",
        {
            let last = earlier(&last_response, "C7: lastResponse is nil (Go would panic)")?;
            let r = ctx
                .send(
                    req(Method::PUT, last.relative_location())
                        .header("Content-Type", OCTET)
                        .query("digest", ctx.d.blob_b.blob.digest.clone()),
                )
                .await?;
            check!(
                r.status == 201,
                "C7: closing PUT of the chunked upload must be exactly 201, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "C7: closing PUT must return a Location"
            );
        }
    );

    // Cross-Repository Blob Mount.
    let x = ctx.crossmount.clone();
    spec!(
        ctx,
        "Push/Mount X1: Cross-mounting of a blob without the from argument should yield session id",
        {
            let r = ctx
                .send(
                    req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                        .query("mount", ctx.d.dummy_digest.clone()),
                )
                .await?;
            check!(
            r.status == 202,
            "X1: POST /v2/{x}/blobs/uploads/?mount=<unknown> (no from) must be exactly 202, got {}",
            r.brief()
        );
            check!(
                !r.header("Location").is_empty(),
                "X1: the 202 must carry a Location"
            );
        }
    );
    spec!(
        ctx,
        "Push/Mount X2: POST request to mount another repository's blob should return 201 or 202",
        {
            let r = ctx
                .send(
                    req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                        .query("mount", ctx.d.blob_a.digest.clone())
                        .query("from", ctx.name.clone()),
                )
                .await?;
            check!(
                r.status == 201 || r.status == 202,
                "X2: mount of testBlobA from {} must be 201 or 202, got {}",
                ctx.name,
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Mount X3: GET request to test digest within cross-mount namespace should return 200",
        {
            let last = earlier(&last_response, "X3: lastResponse is nil (Go would panic)")?;
            run_only_if!(last.status == 201);
            let want = format!("/v2/{x}/blobs/{}", ctx.d.blob_a.digest);
            let got = last.relative_location();
            check!(
                got == want,
                "X3: 201 mount Location must be exactly {want:?}, got {got:?}"
            );
            let r = ctx.send(req(Method::GET, got)).await?;
            check!(
                r.status == 200,
                "X3: GET of the mounted blob must be 200, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Mount X4: Cross-mounting of nonexistent blob should yield session id",
        {
            let last = earlier(&last_response, "X4: lastResponse is nil (Go would panic)")?;
            run_only_if!(last.status == 202);
            let prefix = format!("/v2/{x}/blobs/uploads/");
            let got = last.relative_location();
            check!(
                got.starts_with(&prefix),
                "X4: 202 mount Location must start with {prefix:?}, got {got:?}"
            );
        }
    );
    spec!(ctx, "Push/Mount X5: Cross-mounting without from, and automatic content discovery enabled should return a 201", {
        run_only_if!(ctx.run_automatic_crossmount_test);
        let last = earlier(&last_response, "X5: lastResponse is nil (Go would panic)")?;
        run_only_if!(last.status == 201);
        run_only_if!(ctx.automatic_crossmount_enabled);
        let r = ctx
            .send(
                req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                    .query("mount", ctx.d.blob_a.digest.clone()),
            )
            .await?;
        check!(r.status == 201, "X5: automatic cross-mount must be exactly 201, got {}", r.brief());
    });
    spec!(ctx, "Push/Mount X6: Cross-mounting without from, and automatic content discovery disabled should return a 202", {
        run_only_if!(ctx.run_automatic_crossmount_test);
        let last = earlier(&last_response, "X6: lastResponse is nil (Go would panic)")?;
        run_only_if!(last.status == 201);
        run_only_if!(!ctx.automatic_crossmount_enabled);
        let r = ctx
            .send(
                req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                    .query("mount", ctx.d.blob_a.digest.clone()),
            )
            .await?;
        check!(r.status == 202, "X6: mount without from (automatic off) must be exactly 202, got {}", r.brief());
    });

    // Manifest Upload.
    spec!(
        ctx,
        "Push/Manifest U1: GET nonexistent manifest should return 404",
        {
            let r = ctx
                .call(Method::GET, &format!("manifests/{NONEXISTENT_MANIFEST}"))
                .await?;
            check!(
                r.status == 404,
                "U1: GET manifests/{NONEXISTENT_MANIFEST} must be 404, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Manifest U2: PUT should accept a manifest upload",
        {
            for i in 0..4 {
                let tag = format!("test{i}");
                let r = ctx
                    .put_manifest(&tag, OCI_MANIFEST, &ctx.d.manifests[1].content)
                    .await?;
                check!(
                    !r.header("Location").is_empty(),
                    "U2: PUT manifests/{tag} must return a Location ({})",
                    r.brief()
                );
                check!(
                    r.status == 201,
                    "U2: PUT manifests/{tag} must be exactly 201, got {}",
                    r.brief()
                );
            }
        }
    );
    spec!(
        ctx,
        "Push/Manifest U3: Registry should accept a manifest upload with no layers",
        {
            let r = ctx
                .put_manifest(
                    EMPTY_LAYER_TEST_TAG,
                    OCI_MANIFEST,
                    &ctx.d.empty_layer_manifest.content,
                )
                .await?;
            if r.status == 201 {
                let location = r.header("Location");
                empty_layer_manifest_ref = location.clone();
                check!(
                    !location.is_empty(),
                    "U3: 201 for the empty-layer manifest must carry a Location"
                );
            } else {
                eprintln!(
                    "[{}] WARNING: image manifest with no layers is not supported ({})",
                    ctx.backend,
                    r.brief()
                );
            }
        }
    );
    spec!(
        ctx,
        "Push/Manifest U4: GET request to manifest URL (digest) should yield 200 response",
        {
            let r = ctx
                .send(
                    req(
                        Method::GET,
                        ctx.p(&format!("manifests/{}", ctx.d.manifests[1].digest)),
                    )
                    .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "U4: GET manifests[1] by digest must be 200, got {}",
                r.brief()
            );
        }
    );

    // Teardown (manifests first).
    spec!(ctx, "Push/Teardown: Delete manifest created in tests", {
        run_only_if!(run_push_setup);
        ctx.delete(
            "Push teardown",
            "manifests",
            &ctx.d.manifests[1].digest,
            ok_2xx_405,
            "2xx or 405",
        )
        .await?;
        if !empty_layer_manifest_ref.is_empty() {
            ctx.delete(
                "Push teardown",
                "manifests",
                &ctx.d.empty_layer_manifest.digest,
                ok_2xx_405,
                "2xx or 405",
            )
            .await?;
        }
    });
    spec!(ctx, "Push/Teardown: Delete config blob created in tests", {
        run_only_if!(run_push_setup);
        ctx.delete(
            "Push teardown",
            "blobs",
            &ctx.d.configs[1].digest,
            ok_2xx_404_405,
            "2xx, 404 or 405",
        )
        .await?;
    });
    spec!(ctx, "Push/Teardown: Delete layer blob created in setup", {
        run_only_if!(run_push_setup);
        ctx.delete(
            "Push teardown",
            "blobs",
            &ctx.d.layer.digest,
            ok_2xx_404_405,
            "2xx, 404 or 405",
        )
        .await?;
    });
}
