//! PEM (RFC 7468), once for the crate: the certificates of a trust store
//! file, of a signing chain given to `sign`, of generated test PKIs.

/// Why a PEM text was refused: which certificate block (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate {index}: {why}")]
pub struct PemError {
    /// The CERTIFICATE block concerned, counted from 1.
    pub index: usize,
    /// What is wrong with it.
    pub why: String,
}

const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PEM_DASHES: &[u8] = b"-----";

/// True when `bytes` hold a PEM boundary (else they may be DER).
pub fn is_pem(bytes: &[u8]) -> bool {
    find(bytes, PEM_BEGIN).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The contents of the `CERTIFICATE` blocks of a PEM file (RFC 7468): the
/// text between `-----BEGIN CERTIFICATE-----` and the matching END line,
/// base64 with whitespace ignored. Text outside blocks is ignored (it is
/// allowed by RFC 7468 as explanatory text).
pub fn certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    use base64::Engine as _;
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut index = 0;
    while let Some(start) = find(rest, PEM_BEGIN) {
        let after = &rest[start + PEM_BEGIN.len()..];
        let label_end = find(after, PEM_DASHES).ok_or_else(|| PemError {
            index: index + 1,
            why: "unterminated PEM BEGIN line".to_string(),
        })?;
        let label = &after[..label_end];
        let body_start = &after[label_end + PEM_DASHES.len()..];
        let mut end_line = b"-----END ".to_vec();
        end_line.extend_from_slice(label);
        end_line.extend_from_slice(PEM_DASHES);
        let body_end = find(body_start, &end_line).ok_or_else(|| PemError {
            index: index + 1,
            why: format!(
                "PEM block {:?} has no END line",
                String::from_utf8_lossy(label)
            ),
        })?;
        let body = &body_start[..body_end];
        rest = &body_start[body_end + end_line.len()..];
        if label != b"CERTIFICATE" {
            continue;
        }
        index += 1;
        let b64: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .map_err(|e| PemError {
                index,
                why: format!("PEM CERTIFICATE block is not valid base64: {e}"),
            })?;
        out.push(der);
    }
    Ok(out)
}
