//! The test data `setup.go`'s `init()` generates: configs, layers,
//! manifests, chunked blobs and the referrers' manifests and index.

use super::*;
use std::collections::HashMap;

/// `TestBlob`: content and digest.
#[derive(Clone)]
pub(super) struct TestBlob {
    pub(super) content: Vec<u8>,
    pub(super) digest: String,
}

impl TestBlob {
    pub(super) fn new(content: Vec<u8>) -> Self {
        let digest = sha256(&content);
        TestBlob { content, digest }
    }
}

/// `testBlobB` and its two chunks (`setupChunkedBlob`).
pub(super) struct ChunkedBlob {
    pub(super) blob: TestBlob,
    pub(super) chunk1: Vec<u8>,
    pub(super) chunk2: Vec<u8>,
    pub(super) chunk1_range: String,
    pub(super) chunk2_range: String,
}

impl ChunkedBlob {
    pub(super) fn new(size: usize, seed: u64) -> Self {
        let blob = TestBlob::new(random_blob(size, seed));
        let split = size / 2 + 1;
        let chunk1 = blob.content[..split].to_vec();
        let chunk2 = blob.content[split..].to_vec();
        ChunkedBlob {
            chunk1_range: format!("0-{}", chunk1.len() - 1),
            chunk2_range: format!("{}-{}", chunk1.len(), size - 1),
            blob,
            chunk1,
            chunk2,
        }
    }
}

/// `descriptor`: `mediaType`, `digest`, `size`, `data` (omitempty) and the
/// always-present `newUnspecifiedField` (null when unset).
pub(super) fn descriptor(
    media_type: &str,
    b: &TestBlob,
    data: Option<&[u8]>,
    unspecified: Option<&[u8]>,
) -> J {
    let mut f = vec![
        ("mediaType", s(media_type)),
        ("digest", s(&b.digest)),
        ("size", J::N(b.content.len() as i64)),
    ];
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        f.push(("data", J::S(base64(d))));
    }
    f.push((
        "newUnspecifiedField",
        unspecified.map_or(J::Null, |u| J::S(base64(u))),
    ));
    J::O(f)
}

pub(super) fn annotations(value: Option<&str>) -> Option<J> {
    value.map(|v| J::O(vec![(ANNOTATION_KEY, s(v))]))
}

/// `manifest`: schemaVersion, mediaType?, artifactType?, config, layers,
/// subject?, annotations?.
pub(super) fn manifest_json(
    media_type: Option<&str>,
    artifact_type: Option<&str>,
    config: J,
    layers: Vec<J>,
    subject: Option<J>,
    annotation: Option<&str>,
) -> TestBlob {
    let mut f = vec![("schemaVersion", J::N(2))];
    if let Some(m) = media_type {
        f.push(("mediaType", s(m)));
    }
    if let Some(a) = artifact_type {
        f.push(("artifactType", s(a)));
    }
    f.push(("config", config));
    f.push(("layers", J::A(layers)));
    if let Some(sub) = subject {
        f.push(("subject", sub));
    }
    if let Some(a) = annotations(annotation) {
        f.push(("annotations", a));
    }
    TestBlob::new(go_marshal_indent(&J::O(f)))
}

/// Everything `init()` generates; new random values every run.
pub(super) struct Data {
    pub(super) configs: Vec<TestBlob>,
    pub(super) layer: TestBlob,
    pub(super) manifests: Vec<TestBlob>,
    pub(super) empty_layer_manifest: TestBlob,
    pub(super) blob_a: TestBlob,
    pub(super) blob_b: ChunkedBlob,
    pub(super) empty_json: TestBlob,
    pub(super) ref_blob_a: TestBlob,
    pub(super) ref_blob_b: TestBlob,
    pub(super) refs_a_config: TestBlob,
    pub(super) refs_b_config: TestBlob,
    pub(super) refs_a_layer: TestBlob,
    pub(super) refs_b_layer: TestBlob,
    pub(super) refs_c_layer: TestBlob,
    pub(super) refs_index: TestBlob,
    /// `testAnnotationValues`: referrer digest → annotation value.
    pub(super) annotation_values: HashMap<String, String>,
    pub(super) dummy_digest: String,
}

impl Data {
    pub(super) fn new(rng: &mut Rng, seed: u64) -> Self {
        // One config per workflow (and one for the referrers subject), each
        // with a random author so that digests are new every run.
        let configs: Vec<TestBlob> = (0..5)
            .map(|_| {
                let config = J::O(vec![
                    ("author", J::S(rng.string(16))),
                    ("architecture", s("amd64")),
                    ("os", s("linux")),
                    (
                        "rootfs",
                        J::O(vec![("type", s("layers")), ("diff_ids", J::A(vec![]))]),
                    ),
                ]);
                TestBlob::new(go_marshal_indent(&config))
            })
            .collect();
        let layer = TestBlob::new(b64_decode(LAYER_BASE64).expect("layer base64"));
        let layers = vec![descriptor(LAYER_MT, &layer, None, None)];
        let config_desc =
            |c: &TestBlob| descriptor(CONFIG_MT, c, Some(&c.content), Some(b"hello world"));
        let manifests: Vec<TestBlob> = configs
            .iter()
            .map(|c| {
                manifest_json(
                    Some(OCI_MANIFEST),
                    None,
                    config_desc(c),
                    layers.clone(),
                    None,
                    None,
                )
            })
            .collect();
        // No mediaType field and no layers.
        let empty_layer_manifest =
            manifest_json(None, None, config_desc(&configs[1]), vec![], None, None);

        let blob_a = TestBlob::new(random_blob(42, seed.wrapping_add(1)));
        let blob_b = ChunkedBlob::new(42, seed.wrapping_add(2));

        let empty_json = TestBlob::new(b"{}".to_vec());
        let empty_desc = descriptor(OCI_EMPTY, &empty_json, None, None);
        let ref_blob_a = TestBlob::new(b"NHL Peanut Butter on my NHL bagel".to_vec());
        let ref_blob_b = TestBlob::new(b"NBA Strawberry Jam on my NBA croissant".to_vec());
        let subject4 = descriptor(OCI_MANIFEST, &manifests[4], None, None);
        let subject3 = descriptor(OCI_MANIFEST, &manifests[3], None, None);

        // config.mediaType = artifact type; layers = [emptyJSON].
        let config_referrer = |artifact_type: &str, blob: &TestBlob, note: &str| {
            manifest_json(
                Some(OCI_MANIFEST),
                None,
                descriptor(artifact_type, blob, None, None),
                vec![empty_desc.clone()],
                Some(subject4.clone()),
                Some(note),
            )
        };
        // artifactType set; config = emptyJSON.
        let layer_referrer =
            |artifact_type: &str, blob: &TestBlob, subject: &J, note: Option<&str>| {
                manifest_json(
                    Some(OCI_MANIFEST),
                    Some(artifact_type),
                    empty_desc.clone(),
                    vec![descriptor(artifact_type, blob, None, None)],
                    Some(subject.clone()),
                    note,
                )
            };
        let refs_a_config = config_referrer(ARTIFACT_TYPE_A, &ref_blob_a, "test config a");
        let refs_b_config = config_referrer(ARTIFACT_TYPE_B, &ref_blob_b, "test config b");
        let refs_a_layer = layer_referrer(
            ARTIFACT_TYPE_A,
            &ref_blob_a,
            &subject4,
            Some("test layer a"),
        );
        let refs_b_layer = layer_referrer(
            ARTIFACT_TYPE_B,
            &ref_blob_b,
            &subject4,
            Some("test layer b"),
        );
        // Like B-layer, but on a subject that is never pushed, no annotations.
        let refs_c_layer = layer_referrer(ARTIFACT_TYPE_B, &ref_blob_b, &subject3, None);
        let mut idx = vec![
            ("schemaVersion", J::N(2)),
            ("mediaType", s(OCI_INDEX)),
            ("artifactType", s(ARTIFACT_TYPE_INDEX)),
            (
                "manifests",
                J::A(vec![
                    descriptor(OCI_MANIFEST, &refs_a_config, None, None),
                    descriptor(OCI_MANIFEST, &refs_a_layer, None, None),
                ]),
            ),
            ("subject", subject4),
        ];
        idx.push((
            "annotations",
            annotations(Some("test index")).expect("some"),
        ));
        let refs_index = TestBlob::new(go_marshal_indent(&J::O(idx)));

        let annotation_values = [
            (&refs_a_config, "test config a"),
            (&refs_b_config, "test config b"),
            (&refs_a_layer, "test layer a"),
            (&refs_b_layer, "test layer b"),
            (&refs_index, "test index"),
        ]
        .into_iter()
        .map(|(b, v)| (b.digest.clone(), v.to_string()))
        .collect();

        Data {
            configs,
            layer,
            manifests,
            empty_layer_manifest,
            blob_a,
            blob_b,
            empty_json,
            ref_blob_a,
            ref_blob_b,
            refs_a_config,
            refs_b_config,
            refs_a_layer,
            refs_b_layer,
            refs_c_layer,
            refs_index,
            annotation_values,
            dummy_digest: sha256(b"hello world"),
        }
    }
}
