//! The summary of a model's safetensors headers the card shows, and where
//! a file's bytes start inside a tar layer (modctl packs files as tars).

use pavilion_model::inspect::TensorInfo;
use std::collections::BTreeMap;

/// Largest tensors listed.
const LARGEST: usize = 8;

/// What the card says about the tensors.
#[derive(Debug, Default)]
pub struct Summary {
    /// Files whose header was read.
    pub files: usize,
    /// Tensors in them.
    pub tensors: usize,
    /// Elements over all tensors.
    pub parameters: u64,
    /// Per dtype: tensors, bytes, and the bytes written for people.
    pub dtypes: Vec<(String, usize, u64, String)>,
    /// The largest tensors: name, dtype, shape (`4096 × 11008`), elements.
    pub largest: Vec<(String, String, String, u64)>,
}

/// Sums the headers' tensors.
pub fn summarize(files: &[Vec<TensorInfo>]) -> Summary {
    let mut by_dtype: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let mut all: Vec<&TensorInfo> = Vec::new();
    let mut s = Summary {
        files: files.len(),
        ..Summary::default()
    };
    for t in files.iter().flatten() {
        s.tensors += 1;
        s.parameters = s.parameters.saturating_add(t.elements);
        let e = by_dtype.entry(&t.dtype).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(t.bytes);
        all.push(t);
    }
    s.dtypes = by_dtype
        .into_iter()
        .map(|(d, (n, b))| (d.to_string(), n, b, crate::view::bytes(b)))
        .collect();
    s.dtypes.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    all.sort_by(|a, b| b.elements.cmp(&a.elements).then(a.name.cmp(&b.name)));
    s.largest = all
        .into_iter()
        .take(LARGEST)
        .map(|t| {
            let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            (
                crate::view::clip(&t.name, 120),
                crate::view::clip(&t.dtype, 16),
                shape.join(" × "),
                t.elements,
            )
        })
        .collect();
    s
}

/// Where the first regular file's bytes start in a tar whose first
/// blocks are `head`, skipping pax and GNU long-name entries: `None` when
/// `head` does not show it.
pub fn tar_data_offset(head: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    // A pax header or a long name precedes the file's own header; more
    // than a few is not a model file.
    for _ in 0..4 {
        let block = head.get(at..at + 512)?;
        let size = octal(&block[124..136])?;
        let data = at as u64 + 512;
        match block[156] {
            b'0' | 0 => return Some(data),
            b'x' | b'g' | b'L' | b'K' => {
                let skip = size.div_ceil(512) * 512;
                at = usize::try_from(data + skip).ok()?;
            }
            _ => return None,
        }
    }
    None
}

/// A tar header's octal number field.
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dtype: &str, shape: &[u64]) -> TensorInfo {
        let elements = shape.iter().product();
        TensorInfo {
            name: name.into(),
            dtype: dtype.into(),
            shape: shape.to_vec(),
            elements,
            bytes: elements * 2,
        }
    }

    #[test]
    fn summaries_add_up() {
        let s = summarize(&[
            vec![
                tensor("embed", "BF16", &[32000, 4096]),
                tensor("norm", "F32", &[4096]),
            ],
            vec![tensor("lm_head", "BF16", &[4096, 32000])],
        ]);
        assert_eq!(s.files, 2);
        assert_eq!(s.tensors, 3);
        assert_eq!(s.parameters, 2 * 32000 * 4096 + 4096);
        assert_eq!(s.dtypes[0].0, "BF16");
        assert_eq!(s.dtypes[0].1, 2);
        assert_eq!(s.dtypes[0].3, "500.0 MiB");
        assert_eq!(s.largest[0].0, "embed");
        assert_eq!(s.largest[0].2, "32000 × 4096");
        assert_eq!(s.largest[2].0, "norm");
    }

    fn header(name: &str, size: u64, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let sz = format!("{size:011o}\0");
        h[124..136].copy_from_slice(sz.as_bytes());
        h[156] = kind;
        h
    }

    #[test]
    fn tar_offsets() {
        let mut t = header("model.safetensors", 100, b'0');
        assert_eq!(tar_data_offset(&t), Some(512));
        // A pax entry of 30 bytes, padded to a block, then the file.
        t = header("PaxHeaders/x", 30, b'x');
        t.extend_from_slice(&[0u8; 512]);
        t.extend_from_slice(&header("x", 100, b'0'));
        assert_eq!(tar_data_offset(&t), Some(1536));
        assert_eq!(tar_data_offset(&header("dir/", 0, b'5')), None);
        assert_eq!(tar_data_offset(&[0u8; 100]), None);
    }
}
