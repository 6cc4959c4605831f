//! `04_management_test.go`: the content management workflow (deletes).

use super::*;
use reqwest::Method;

pub(super) async fn management_workflow(ctx: &mut Ctx) {
    let run_setup = true;
    let mut tag_to_delete = String::new();
    let mut num_tags: usize = 0;
    let mut blob_delete_allowed = true;

    // Setup.
    spec!(
        ctx,
        "Management/Setup: Populate registry with test config blob (configs[3])",
        {
            run_only_if!(run_setup);
            ctx.setup_upload("Management setup", &ctx.d.configs[3])
                .await?;
        }
    );
    spec!(
        ctx,
        "Management/Setup: Populate registry with test layer",
        {
            run_only_if!(run_setup);
            ctx.setup_upload("Management setup", &ctx.d.layer).await?;
        }
    );
    spec!(ctx, "Management/Setup: Populate registry with test tag", {
        run_only_if!(run_setup);
        tag_to_delete = TEST_TAG_NAME.to_string();
        let r = ctx
            .put_manifest(&tag_to_delete, OCI_MANIFEST, &ctx.d.manifests[3].content)
            .await?;
        check!(
            is_2xx(r.status),
            "Management setup: PUT manifests/{tag_to_delete} (manifests[3]) must be 2xx, got {}",
            r.brief()
        );
    });
    spec!(
        ctx,
        "Management/Setup: Check how many tags there are before anything gets deleted",
        {
            run_only_if!(run_setup);
            let r = ctx.call(Method::GET, "tags/list").await?;
            check!(
                r.status == 200,
                "Management setup: GET tags/list must be exactly 200, got {}",
                r.brief()
            );
            let tags = parse_tag_list(&r.body);
            check!(
                tags.is_ok(),
                "Management setup: tags/list body must parse: {:?}",
                tags.err()
            );
            num_tags = tags.unwrap_or_default().len();
        }
    );

    // Manifest delete.
    spec!(ctx, "Management/CM1: DELETE request to manifest tag should return 202, unless tag deletion is disallowed (400/405)", {
        let r = ctx.call(Method::DELETE, &format!("manifests/{tag_to_delete}")).await?;
        check!(
            r.status == 400 || r.status == 202 || r.status == 405,
            "CM1: DELETE manifests/{tag_to_delete} (a tag) must be 202, 400 or 405, got {}",
            r.brief()
        );
        if r.status == 400 {
            let codes = parse_error_codes(&r.body);
            check!(codes.is_ok(), "CM1: 400 body must parse as OCI errors: {:?}", codes.err());
            let codes = codes.unwrap_or_default();
            check!(!codes.is_empty(), "CM1: 400 body must list an error");
            check!(codes[0] == "UNSUPPORTED", "CM1: a 400 must carry UNSUPPORTED, got {:?}", codes[0]);
        }
    });
    spec!(ctx, "Management/CM2: DELETE request to manifest (digest) should yield 202 response unless already deleted", {
        let d = &ctx.d.manifests[3].digest;
        let r = ctx.call(Method::DELETE, &format!("manifests/{d}")).await?;
        check!(
            r.status == 202 || r.status == 404,
            "CM2: DELETE manifests[3] by digest must be 202 or 404, got {}",
            r.brief()
        );
    });
    spec!(ctx, "Management/CM3: GET request to deleted manifest URL should yield 404 response, unless delete is disallowed", {
        let d = &ctx.d.manifests[3].digest;
        let r = ctx.call(Method::GET, &format!("manifests/{d}")).await?;
        check!(
            r.status == 404 || r.status == 200,
            "CM3: GET of the deleted manifests[3] must be 404 or 200, got {}",
            r.brief()
        );
    });
    spec!(
        ctx,
        "Management/CM4: GET request to tags list should reflect manifest deletion",
        {
            let r = ctx.call(Method::GET, "tags/list").await?;
            check!(
                r.status == 200,
                "CM4: GET tags/list after the deletes must be exactly 200, got {}",
                r.brief()
            );
            let tags = parse_tag_list(&r.body);
            check!(
                tags.is_ok(),
                "CM4: tags/list body must parse: {:?}",
                tags.err()
            );
            let tags = tags.unwrap_or_default();
            check!(
            tags.len() < num_tags,
            "CM4: tags/list must have fewer than {num_tags} tags after the deletes, got {tags:?}"
        );
        }
    );

    // Blob delete.
    spec!(
        ctx,
        "Management/CM5: DELETE request to blob URL should yield 202 response",
        {
            run_only_if!(run_setup);
            let ok = |s: u16| s == 202 || s == 404 || s == 405;
            let d = &ctx.d.configs[3].digest;
            let r = ctx.call(Method::DELETE, &format!("blobs/{d}")).await?;
            check!(
                ok(r.status),
                "CM5: DELETE configs[3] blob must be 202, 404 or 405, got {}",
                r.brief()
            );
            let d = &ctx.d.layer.digest;
            let r = ctx.call(Method::DELETE, &format!("blobs/{d}")).await?;
            check!(
                ok(r.status),
                "CM5: DELETE layer blob must be 202, 404 or 405, got {}",
                r.brief()
            );
            if r.status == 405 {
                blob_delete_allowed = false;
            }
        }
    );
    spec!(
        ctx,
        "Management/CM6: GET request to deleted blob URL should yield 404 response",
        {
            run_only_if!(run_setup);
            run_only_if!(blob_delete_allowed);
            let d = &ctx.d.configs[3].digest;
            let r = ctx.call(Method::GET, &format!("blobs/{d}")).await?;
            check!(
                r.status == 404,
                "CM6: GET of the deleted configs[3] blob must be exactly 404, got {}",
                r.brief()
            );
        }
    );
}
