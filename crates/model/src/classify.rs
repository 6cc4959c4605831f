//! Which ModelPack layer class a file belongs to, by its name (the same
//! order of tests as modctl, so both tools pack a directory alike): weight
//! configuration first, then weights, code, docs; anything else is a weight
//! when large and code when small.

/// The layer classes of the model-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileClass {
    /// Configuration of the weights: config.json, tokenizer files...
    WeightConfig,
    /// Weights.
    Weight,
    /// Code.
    Code,
    /// Documentation.
    Doc,
    /// Data sets.
    Dataset,
}

/// Files above this size whose name says nothing are taken as weights.
pub const WEIGHT_SIZE_THRESHOLD: u64 = 128 << 20;

const CONFIG_EXT: &[&str] = &[
    "json",
    "jsonl",
    "json5",
    "jsonc",
    "yaml",
    "yml",
    "toml",
    "ini",
    "config",
    "cfg",
    "conf",
    "properties",
    "xml",
    "modelcard",
    "hparams",
    "params",
    "hyperparams",
];
const WEIGHT_EXT: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "pte",
    "pt2",
    "ptl",
    "mar",
    "tflite",
    "h5",
    "hdf5",
    "pb",
    "gguf",
    "ggml",
    "ckpt",
    "checkpoint",
    "onnx",
    "msgpack",
    "model",
    "pkl",
    "pickle",
    "keras",
    "npy",
    "npz",
    "engine",
    "trt",
    "mlmodel",
    "llamafile",
    "caffemodel",
    "weights",
    "tensor",
];
const CODE_EXT: &[&str] = &[
    "py", "ipynb", "sh", "bash", "zsh", "c", "h", "cc", "cpp", "hpp", "cu", "cuh", "rs", "go",
    "java", "js", "ts", "rb", "jl", "lua", "sql", "zig", "r", "scala", "swift", "kt", "so",
    "dylib", "dll", "a", "patch", "mk", "cmake",
];
const DOC_EXT: &[&str] = &[
    "md", "txt", "pdf", "rst", "html", "png", "jpg", "jpeg", "gif", "svg", "webp", "mp4", "log",
];
const DATASET_EXT: &[&str] = &["parquet", "arrow", "csv", "tsv"];

/// The class of a file from its base name and size.
///
/// ```
/// use pavilion_model::FileClass;
/// use pavilion_model::classify::classify;
/// assert_eq!(classify("model-00001-of-00002.safetensors", 1 << 30), FileClass::Weight);
/// assert_eq!(classify("tokenizer.json", 10), FileClass::WeightConfig);
/// assert_eq!(classify("tokenizer.model", 10), FileClass::WeightConfig);
/// assert_eq!(classify("README.md", 10), FileClass::Doc);
/// assert_eq!(classify("requirements.txt", 10), FileClass::Code);
/// assert_eq!(classify("blob.xyz", 1 << 30), FileClass::Weight);
/// ```
pub fn classify(name: &str, size: u64) -> FileClass {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if CONFIG_EXT.contains(&ext) || lower.contains("tokenizer.model") {
        return FileClass::WeightConfig;
    }
    if WEIGHT_EXT.contains(&ext) {
        return FileClass::Weight;
    }
    let build_file = ["makefile", "dockerfile", "cmakelists.txt"]
        .iter()
        .any(|p| lower.starts_with(p))
        || lower.starts_with("requirements");
    if CODE_EXT.contains(&ext) || build_file {
        return FileClass::Code;
    }
    if DOC_EXT.contains(&ext) || lower.starts_with("license") || lower.starts_with("readme") {
        return FileClass::Doc;
    }
    if DATASET_EXT.contains(&ext) {
        return FileClass::Dataset;
    }
    if size > WEIGHT_SIZE_THRESHOLD {
        FileClass::Weight
    } else {
        FileClass::Code
    }
}

impl FileClass {
    /// The class's name inside media types.
    pub fn media_name(self) -> &'static str {
        match self {
            FileClass::WeightConfig => "weight.config",
            FileClass::Weight => "weight",
            FileClass::Code => "code",
            FileClass::Doc => "doc",
            FileClass::Dataset => "dataset",
        }
    }

    /// Media type of a raw (unarchived) layer of this class.
    pub fn raw_media_type(self) -> String {
        format!("application/vnd.cncf.model.{}.v1.raw", self.media_name())
    }
}

/// Files a packer leaves out: hidden files and directories, the Modelfile,
/// Python caches.
pub fn is_ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || lower == "modelfile"
        || lower == "__pycache__"
        || [".pyc", ".pyo", ".pyd", ".partial", ".partial.json"]
            .iter()
            .any(|e| lower.ends_with(e))
}
