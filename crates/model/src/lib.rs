//! Model directories as CNCF ModelPack artifacts (modelpack/model-spec v1).
//!
//! - [`classify`]: which layer class a file belongs to (weight, weight
//!   config, doc, code, dataset).
//! - [`inspect`]: weight format detection and parameter counts read from
//!   safetensors headers and GGUF magic, without reading the weights.
//! - [`pack`]: a directory becomes a deterministic plan of raw layers plus
//!   the config document; the client uploads it.
//! - [`paths`]: the layer file paths a pull may write, checked first.

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
