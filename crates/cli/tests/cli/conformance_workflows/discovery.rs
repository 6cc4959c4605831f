//! `03_discovery_test.go`: the content discovery workflow (tags and referrers).

use super::*;
use reqwest::Method;

/// Checks one referrers response's status, Content-Type and body shape.
pub(super) fn referrers_body(step: &str, r: &Resp) -> Result<Vec<RefDesc>, Fail> {
    check!(
        r.status == 200,
        "{step}: GET referrers must be 200, got {}",
        r.brief()
    );
    let ct = r.header("Content-Type");
    check!(
        ct == OCI_INDEX,
        "{step}: referrers Content-Type must be exactly {OCI_INDEX:?}, got {ct:?}"
    );
    parse_index(&r.body).map_err(|e| {
        Fail::Failed(format!(
            "{step}: referrers body must parse as an image index: {e} ({})",
            r.brief()
        ))
    })
}

/// Every descriptor carries exactly the one annotation of its manifest.
pub(super) fn check_annotations(step: &str, ctx: &Ctx, descs: &[RefDesc]) -> Spec {
    for d in descs {
        check!(
            d.annotations.len() == 1,
            "{step}: descriptor {} must have exactly 1 annotation, got {:?}",
            d.digest,
            d.annotations
        );
        let want = ctx
            .d
            .annotation_values
            .get(&d.digest)
            .cloned()
            .unwrap_or_default();
        let got = d
            .annotations
            .get(ANNOTATION_KEY)
            .cloned()
            .unwrap_or_default();
        check!(
            got == want,
            "{step}: descriptor {} annotation {ANNOTATION_KEY} must be {want:?}, got {got:?}",
            d.digest
        );
    }
    Ok(())
}

pub(super) async fn discovery_workflow(ctx: &mut Ctx) {
    let run_setup = true;
    let mut num_tags: usize = 4;
    let mut tag_list: Vec<String> = Vec::new();

    // Setup.
    spec!(
        ctx,
        "Discovery/Setup: Populate registry with test blob (configs[2])",
        {
            run_only_if!(run_setup);
            ctx.setup_upload("Discovery setup", &ctx.d.configs[2])
                .await?;
        }
    );
    spec!(ctx, "Discovery/Setup: Populate registry with test layer", {
        run_only_if!(run_setup);
        ctx.setup_upload("Discovery setup", &ctx.d.layer).await?;
    });
    spec!(ctx, "Discovery/Setup: Populate registry with test tags", {
        run_only_if!(run_setup);
        for i in 0..num_tags {
            let tag = format!("test{i}");
            tag_list.push(tag.clone());
            let r = ctx
                .put_manifest(&tag, OCI_MANIFEST, &ctx.d.manifests[2].content)
                .await?;
            check!(
                is_2xx(r.status),
                "Discovery setup: PUT manifests/{tag} (manifests[2]) must be 2xx, got {}",
                r.brief()
            );
        }
        let r = ctx.call(Method::GET, "tags/list").await?;
        tag_list = get_tag_list(&r.body);
    });
    spec!(
        ctx,
        "Discovery/Setup: Populate registry with test tags (no push)",
        {
            run_only_if!(!run_setup);
        }
    );
    spec!(ctx, "Discovery/Setup: References setup", {
        run_only_if!(run_setup);
        let d = &ctx.d;
        check!(
            d.empty_json.digest == EMPTY_JSON_DIGEST,
            "References setup: emptyJSON digest must be {EMPTY_JSON_DIGEST}"
        );
        ctx.setup_upload("References setup (emptyJSON)", &d.empty_json)
            .await?;
        ctx.setup_upload("References setup (refBlobA)", &d.ref_blob_a)
            .await?;
        let subject4 = &d.manifests[4].digest;
        for (label, m, ct) in [
            ("A-config", &d.refs_a_config, OCI_MANIFEST),
            ("A-layer", &d.refs_a_layer, OCI_MANIFEST),
            ("index", &d.refs_index, OCI_INDEX),
        ] {
            let r = ctx.put_manifest(&m.digest, ct, &m.content).await?;
            check!(
                is_2xx(r.status),
                "References setup: PUT {label} (subject manifests[4] not pushed yet) must be 2xx, got {}",
                r.brief()
            );
            let h = r.header("OCI-Subject");
            check!(
                &h == subject4,
                "References setup: PUT {label} must answer OCI-Subject {subject4}, got {h:?}"
            );
        }
        ctx.setup_upload("References setup (configs[4])", &d.configs[4])
            .await?;
        ctx.setup_upload("References setup (layer)", &d.layer)
            .await?;
        let r = ctx
            .put_manifest(TEST_TAG_NAME, OCI_MANIFEST, &d.manifests[4].content)
            .await?;
        check!(
            is_2xx(r.status),
            "References setup: PUT manifests/{TEST_TAG_NAME} (manifests[4]) must be 2xx, got {}",
            r.brief()
        );
        ctx.setup_upload("References setup (refBlobB)", &d.ref_blob_b)
            .await?;
        for (label, m) in [("B-config", &d.refs_b_config), ("B-layer", &d.refs_b_layer)] {
            let r = ctx
                .put_manifest(&m.digest, OCI_MANIFEST, &m.content)
                .await?;
            check!(
                is_2xx(r.status),
                "References setup: PUT {label} must be 2xx, got {}",
                r.brief()
            );
            let h = r.header("OCI-Subject");
            check!(
                &h == subject4,
                "References setup: PUT {label} must answer OCI-Subject {subject4}, got {h:?}"
            );
        }
        let m = &d.refs_c_layer;
        let r = ctx
            .put_manifest(&m.digest, OCI_MANIFEST, &m.content)
            .await?;
        check!(
            is_2xx(r.status),
            "References setup: PUT C-layer (subject manifests[3] never pushed) must be 2xx, got {}",
            r.brief()
        );
        let h = r.header("OCI-Subject");
        let subject3 = &d.manifests[3].digest;
        check!(
            &h == subject3,
            "References setup: PUT C-layer must answer OCI-Subject {subject3}, got {h:?}"
        );
    });

    // Listing tags.
    spec!(
        ctx,
        "Discovery/D1: GET request to list tags should yield 200 response",
        {
            let r = ctx.call(Method::GET, "tags/list").await?;
            check!(
                r.status == 200,
                "D1: GET tags/list must be exactly 200, got {}",
                r.brief()
            );
            tag_list = get_tag_list(&r.body);
            num_tags = tag_list.len();
            eprintln!("[{}] D1: tags = {tag_list:?}", ctx.backend);
        }
    );
    spec!(
        ctx,
        "Discovery/D2: GET number of tags should be limitable by `n` query parameter",
        {
            let n = num_tags / 2;
            let r = ctx
                .send(req(Method::GET, ctx.p("tags/list")).query("n", n.to_string()))
                .await?;
            check!(
                r.status == 200,
                "D2: GET tags/list?n={n} must be 200, got {}",
                r.brief()
            );
            tag_list = get_tag_list(&r.body);
            check!(
                tag_list.len() == n,
                "D2: tags/list?n={n} must return exactly {n} tags, got {tag_list:?}"
            );
        }
    );
    spec!(
        ctx,
        "Discovery/D3: GET start of tag is set by `last` query parameter",
        {
            let n = num_tags / 2;
            let r = ctx
                .send(req(Method::GET, ctx.p("tags/list")).query("n", n.to_string()))
                .await?;
            tag_list = get_tag_list(&r.body);
            check!(
            n >= 1 && tag_list.len() >= n,
            "D3: tags/list?n={n} returned {tag_list:?}; tagList[n-1] is out of range (Go panics)"
        );
            let last = tag_list[n - 1].clone();
            let r = ctx
                .send(
                    req(Method::GET, ctx.p("tags/list"))
                        .query("n", n.to_string())
                        .query("last", last.clone()),
                )
                .await?;
            check!(
                r.status == 200,
                "D3: GET tags/list?n={n}&last={last} must be 200, got {}",
                r.brief()
            );
            check!(
                tag_list.len() <= n,
                "D3: the first tags/list?n={n} must return at most {n} tags, got {tag_list:?}"
            );
            check!(tag_list.contains(&last), "D3: tag list must contain {last}");
        }
    );

    // Listing references.
    spec!(
        ctx,
        "Discovery/R1: GET request to nonexistent blob should result in empty 200 response",
        {
            let r = ctx
                .call(Method::GET, &format!("referrers/{}", ctx.d.dummy_digest))
                .await?;
            let descs = referrers_body("R1", &r)?;
            check!(
                descs.is_empty(),
                "R1: referrers of an unknown digest must be empty, got {} ({})",
                descs.len(),
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Discovery/R2: GET request to existing blob should yield 200",
        {
            let r = ctx
                .call(
                    Method::GET,
                    &format!("referrers/{}", ctx.d.manifests[4].digest),
                )
                .await?;
            let descs = referrers_body("R2", &r)?;
            check!(
                descs.len() == 5,
                "R2: referrers of manifests[4] must list exactly 5 descriptors, got {} ({})",
                descs.len(),
                r.brief()
            );
            check!(
                descs[0].digest != descs[1].digest,
                "R2: the first two descriptors must differ"
            );
            check_annotations("R2", ctx, &descs)?;
        }
    );
    spec!(
        ctx,
        "Discovery/R3: GET request to existing blob with filter should yield 200",
        {
            let r = ctx
                .send(
                    req(
                        Method::GET,
                        ctx.p(&format!("referrers/{}", ctx.d.manifests[4].digest)),
                    )
                    .query("artifactType", ARTIFACT_TYPE_A),
                )
                .await?;
            let descs = referrers_body("R3", &r)?;
            let applied = r.header("OCI-Filters-Applied");
            if !applied.is_empty() {
                check!(
                descs.len() == 2,
                "R3: filtered referrers (OCI-Filters-Applied set) must list exactly 2, got {} ({})",
                descs.len(),
                r.brief()
            );
                check!(
                applied == ARTIFACT_TYPE_FILTER,
                "R3: OCI-Filters-Applied must be exactly {ARTIFACT_TYPE_FILTER:?}, got {applied:?}"
            );
            } else {
                check!(
                    descs.len() == 5,
                    "R3: unfiltered referrers (no OCI-Filters-Applied) must list 5, got {}",
                    descs.len()
                );
            }
            check_annotations("R3", ctx, &descs)?;
            if applied.is_empty() {
                eprintln!(
                    "[{}] WARNING: filtering by artifact-type is not implemented",
                    ctx.backend
                );
            }
        }
    );
    spec!(
        ctx,
        "Discovery/R4: GET request to missing manifest should yield 200",
        {
            let r = ctx
                .call(
                    Method::GET,
                    &format!("referrers/{}", ctx.d.manifests[3].digest),
                )
                .await?;
            let descs = referrers_body("R4", &r)?;
            check!(
                descs.len() == 1,
                "R4: referrers of the unpushed manifests[3] must list exactly 1, got {} ({})",
                descs.len(),
                r.brief()
            );
            check!(
                descs[0].digest == ctx.d.refs_c_layer.digest,
                "R4: the referrer must be C-layer {}, got {}",
                ctx.d.refs_c_layer.digest,
                descs[0].digest
            );
        }
    );

    // Teardown (manifests first).
    spec!(
        ctx,
        "Discovery/Teardown: Delete created manifest & associated tags",
        {
            run_only_if!(run_setup);
            let d = &ctx.d;
            for reference in [
                d.refs_index.digest.as_str(),
                d.manifests[2].digest.as_str(),
                d.manifests[4].digest.as_str(),
                d.refs_a_config.digest.as_str(),
                d.refs_a_layer.digest.as_str(),
                TEST_TAG_NAME,
                d.refs_b_config.digest.as_str(),
                d.refs_b_layer.digest.as_str(),
                d.refs_c_layer.digest.as_str(),
            ] {
                ctx.delete(
                    "Discovery teardown",
                    "manifests",
                    reference,
                    ok_2xx_404_405,
                    "2xx, 404 or 405",
                )
                .await?;
            }
        }
    );
    spec!(
        ctx,
        "Discovery/Teardown: Delete config blob created in tests",
        {
            run_only_if!(run_setup);
            ctx.delete(
                "Discovery teardown",
                "blobs",
                &ctx.d.configs[2].digest,
                ok_2xx_405,
                "2xx or 405 (404 fails)",
            )
            .await?;
        }
    );
    spec!(
        ctx,
        "Discovery/Teardown: Delete layer blob created in setup",
        {
            run_only_if!(run_setup);
            ctx.delete(
                "Discovery teardown",
                "blobs",
                &ctx.d.layer.digest,
                ok_2xx_405,
                "2xx or 405 (404 fails)",
            )
            .await?;
        }
    );
    spec!(ctx, "Discovery/Teardown: References teardown", {
        run_only_if!(run_setup);
        let d = &ctx.d;
        for m in [
            &d.refs_index,
            &d.refs_a_config,
            &d.refs_a_layer,
            &d.manifests[4],
            &d.refs_b_config,
            &d.refs_b_layer,
        ] {
            ctx.delete(
                "References teardown",
                "manifests",
                &m.digest,
                ok_2xx_404_405,
                "2xx, 404 or 405",
            )
            .await?;
        }
        for b in [&d.configs[4], &d.ref_blob_a, &d.ref_blob_b, &d.empty_json] {
            ctx.delete(
                "References teardown",
                "blobs",
                &b.digest,
                ok_2xx_404_405,
                "2xx, 404 or 405",
            )
            .await?;
        }
    });
}
