//! Reading what a weight file is without reading its weights: the format
//! from magic bytes, and for safetensors the parameter count and dominant
//! dtype from the JSON header alone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Largest safetensors header accepted (the reference implementation's cap).
pub const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// A weight file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// Hugging Face safetensors.
    Safetensors,
    /// llama.cpp GGUF.
    Gguf,
    /// PyTorch pickles / zip archives.
    PyTorch,
    /// ONNX protobuf.
    Onnx,
}

impl WeightFormat {
    /// The `config.format` value.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "safetensors",
            WeightFormat::Gguf => "gguf",
            WeightFormat::PyTorch => "pytorch",
            WeightFormat::Onnx => "onnx",
        }
    }
}

/// What a safetensors header says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TensorSummary {
    /// Sum over tensors of the product of their shape.
    pub parameters: u64,
    /// Bytes of tensor data per dtype.
    pub bytes_by_dtype: BTreeMap<String, u64>,
}

/// Detects the format of a weight file from its first bytes and name.
pub fn detect_format(path: &Path) -> io::Result<Option<WeightFormat>> {
    let mut head = [0u8; 9];
    let n = File::open(path)?.read(&mut head)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if n >= 4 && &head[..4] == b"GGUF" {
        return Ok(Some(WeightFormat::Gguf));
    }
    if n == 9
        && head[8] == b'{'
        && u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8])) <= MAX_SAFETENSORS_HEADER
    {
        return Ok(Some(WeightFormat::Safetensors));
    }
    Ok(if name.ends_with(".onnx") {
        Some(WeightFormat::Onnx)
    } else if name.ends_with(".pt")
        || name.ends_with(".pth")
        || (name.ends_with(".bin") && n >= 2 && (head[..2] == *b"PK" || head[0] == 0x80))
    {
        Some(WeightFormat::PyTorch)
    } else {
        None
    })
}

/// Reads the header of a safetensors file.
pub fn safetensors_summary(path: &Path) -> io::Result<TensorSummary> {
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    let mut f = File::open(path)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_SAFETENSORS_HEADER {
        return Err(bad(format!(
            "safetensors header of {len} bytes is implausible"
        )));
    }
    let mut header = Vec::new();
    f.take(len).read_to_end(&mut header)?;
    let tensors = safetensors_header(&header).map_err(bad)?;
    let mut s = TensorSummary::default();
    for t in &tensors {
        s.parameters = s.parameters.saturating_add(t.elements);
        *s.bytes_by_dtype.entry(t.dtype.clone()).or_default() += t.bytes;
    }
    Ok(s)
}

/// One tensor a safetensors header describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name.
    pub name: String,
    /// Its dtype (`BF16`, `F32`...; `UNKNOWN` when absent).
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<u64>,
    /// The product of the shape.
    pub elements: u64,
    /// Bytes of its data (from `data_offsets`).
    pub bytes: u64,
}

/// The tensors of a safetensors JSON header (the bytes after the length),
/// in the header's order; `Err` says what is wrong with it. Used for
/// files on disk here and for stored blobs by the web UI.
pub fn safetensors_header(header: &[u8]) -> Result<Vec<TensorInfo>, String> {
    let v: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| format!("safetensors header is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "safetensors header is not an object".to_string())?;
    let mut out = Vec::with_capacity(obj.len());
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let shape = t
            .get("shape")
            .and_then(|x| x.as_array())
            .ok_or_else(|| format!("tensor {name} has no shape"))?;
        let shape: Option<Vec<u64>> = shape.iter().map(|d| d.as_u64()).collect();
        let shape = shape.ok_or_else(|| format!("tensor {name} has an invalid shape"))?;
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| format!("tensor {name} has an invalid shape"))?;
        let dtype = t
            .get("dtype")
            .and_then(|d| d.as_str())
            .unwrap_or("UNKNOWN")
            .to_string();
        let bytes = t
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| Some(o.get(1)?.as_u64()?.saturating_sub(o.first()?.as_u64()?)))
            .unwrap_or(0);
        out.push(TensorInfo {
            name: name.clone(),
            dtype,
            shape,
            elements,
            bytes,
        });
    }
    Ok(out)
}

/// `paramSize` as the model-spec writes it: at most one decimal and a
/// K/M/B/T scale (`7.6b`, `494.0m`).
///
/// ```
/// use pavilion_model::inspect::param_size;
/// assert_eq!(param_size(7_615_616_512), "7.6b");
/// assert_eq!(param_size(494_032_768), "494.0m");
/// assert_eq!(param_size(999), "999");
/// ```
pub fn param_size(n: u64) -> String {
    for (scale, suffix) in [(1e12, "t"), (1e9, "b"), (1e6, "m"), (1e3, "k")] {
        let v = n as f64 / scale;
        if v >= 1.0 {
            return format!("{v:.1}{suffix}");
        }
    }
    n.to_string()
}

/// The precision name for the dtype holding the most bytes.
pub fn precision(s: &TensorSummary) -> Option<String> {
    let (dtype, _) = s.bytes_by_dtype.iter().max_by_key(|(_, b)| **b)?;
    Some(
        match dtype.as_str() {
            "BF16" => "bf16",
            "F16" => "fp16",
            "F32" => "fp32",
            "F64" => "fp64",
            "I8" | "U8" => "int8",
            "F8_E4M3" | "F8_E5M2" => "fp8",
            other => return Some(other.to_ascii_lowercase()),
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn write_safetensors(path: &Path, tensors: &str) {
        let header = tensors.as_bytes();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header);
        out.extend_from_slice(&[0u8; 64]);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn safetensors_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        write_safetensors(
            &p,
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[4,8],"data_offsets":[0,64]},"b":{"dtype":"F32","shape":[2],"data_offsets":[64,72]},"c":{"dtype":"BF16","shape":[],"data_offsets":[72,74]}}"#,
        );
        assert_eq!(detect_format(&p).unwrap(), Some(WeightFormat::Safetensors));
        let s = safetensors_summary(&p).unwrap();
        assert_eq!(s.parameters, 32 + 2 + 1);
        assert_eq!(precision(&s).as_deref(), Some("bf16"));
        std::fs::write(&p, [255u8; 16]).unwrap();
        assert!(safetensors_summary(&p)
            .unwrap_err()
            .to_string()
            .contains("implausible"));
        let g = dir.path().join("x.gguf");
        std::fs::write(&g, b"GGUF\x03\x00\x00\x00rest").unwrap();
        assert_eq!(detect_format(&g).unwrap(), Some(WeightFormat::Gguf));
    }
}
