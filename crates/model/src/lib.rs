//! Model directories as CNCF ModelPack artifacts (modelpack/model-spec v1).
//!
//! - [`classify`]: which layer class a file belongs to (weight, weight
//!   config, doc, code, dataset).
//! - [`inspect`]: weight format detection and parameter counts read from
//!   safetensors headers and GGUF magic, without reading the weights.
//! - [`pack`]: a directory becomes a deterministic plan of raw layers plus
//!   the config document; the client uploads it.
//! - [`paths`]: the layer file paths a pull may write, checked first.
//!
//! Planning a push (the upload itself is `pavilion_transfer::Push`):
//!
//! ```
//! use pavilion_model::{media, pack_directory, FileClass, ModelInfo};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("config.json"), br#"{"architectures":["Llama"]}"#)?;
//! std::fs::write(dir.path().join("README.md"), b"# a model")?;
//! let given = ModelInfo {
//!     name: Some("llama".into()),
//!     ..Default::default()
//! };
//! let plan = pack_directory(dir.path(), given)?;
//! let files: Vec<(&str, FileClass)> =
//!     plan.layers.iter().map(|l| (l.rel.as_str(), l.class)).collect();
//! // Layers in the model-spec's order: weight configs before docs.
//! assert_eq!(files, [("config.json", FileClass::WeightConfig), ("README.md", FileClass::Doc)]);
//! assert!(plan.layers.iter().all(|l| l.media_type.starts_with("application/vnd.cncf.model.")));
//! assert_eq!(plan.info.name.as_deref(), Some("llama"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod classify;
pub mod inspect;
pub mod media;
pub mod pack;
pub mod paths;
pub mod untar;

pub use classify::FileClass;
pub use pack::{pack_directory, LayerPlan, ModelInfo, PackError, PackPlan};
pub use paths::{layer_path, PathError, PathSet};
pub use untar::{extract_tar, list_tar, Extracted, TarEntry, UntarError};
