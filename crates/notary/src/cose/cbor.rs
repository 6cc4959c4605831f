//! Raw CBOR structure: item heads and spans, checked before ciborium
//! decodes; and the encoding side: item heads, byte strings, the
//! Sig_structure, and values through ciborium.

use super::bad;
use crate::envelope::EnvelopeError;
use ciborium::value::Value;

/// Deepest nesting of arrays, maps and tags accepted.
const MAX_DEPTH: usize = 64;

/// CBOR major types.
pub(super) mod major {
    pub const UINT: u8 = 0;
    pub const NINT: u8 = 1;
    pub const BYTES: u8 = 2;
    pub const TEXT: u8 = 3;
    pub const ARRAY: u8 = 4;
    pub const MAP: u8 = 5;
    pub const TAG: u8 = 6;
    pub const SIMPLE: u8 = 7;
}

/// The simple value `null`.
pub(super) const SIMPLE_NULL: u64 = 22;

/// A decoded item head: major type, argument, and where the content starts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    pub(super) major: u8,
    pub(super) arg: u64,
    pub(super) next: usize,
}

/// Reads the head of the item at `pos`. Indefinite lengths (and the break
/// code) are refused, as go-cose refuses them.
pub(super) fn head(b: &[u8], pos: usize) -> Result<Head, String> {
    let ib = *b.get(pos).ok_or("truncated CBOR (expected another item)")?;
    let (major, info) = (ib >> 5, ib & 0x1f);
    let extra = match info {
        0..=23 => 0,
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 => return Err("indefinite-length CBOR items are not allowed".into()),
        _ => return Err(format!("invalid CBOR initial byte 0x{ib:02x}")),
    };
    let start = pos + 1;
    let end = start
        .checked_add(extra)
        .filter(|&e| e <= b.len())
        .ok_or("truncated CBOR (item head)")?;
    let arg = if extra == 0 {
        u64::from(info)
    } else {
        b[start..end]
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    };
    Ok(Head {
        major,
        arg,
        next: end,
    })
}

/// Checks the item at `pos` is well formed and returns where it ends.
pub(super) fn skip(b: &[u8], pos: usize, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err(format!("CBOR nested deeper than {MAX_DEPTH} levels"));
    }
    let h = head(b, pos)?;
    match h.major {
        major::UINT | major::NINT | major::SIMPLE => Ok(h.next),
        major::BYTES | major::TEXT => usize::try_from(h.arg)
            .ok()
            .and_then(|n| h.next.checked_add(n))
            .filter(|&e| e <= b.len())
            .ok_or_else(|| "truncated CBOR (string longer than the input)".to_string()),
        major::ARRAY | major::MAP => {
            let per_entry = if h.major == major::MAP { 2 } else { 1 };
            let mut p = h.next;
            // Every item takes at least one byte: a count larger than the
            // input ends in a truncation error before this loop runs long.
            for _ in 0..h.arg {
                for _ in 0..per_entry {
                    p = skip(b, p, depth + 1)?;
                }
            }
            Ok(p)
        }
        _ => skip(b, h.next, depth + 1), // tag: one enclosed item
    }
}

/// `b` is exactly one well-formed item; returns its head.
pub(super) fn single_item(b: &[u8]) -> Result<Head, String> {
    let end = skip(b, 0, 0)?;
    if end != b.len() {
        return Err(format!("{} trailing bytes", b.len() - end));
    }
    head(b, 0)
}

/// Appends a definite-length item head.
pub(super) fn push_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    // The casts below are exact: each arm bounds `arg` first.
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend([m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(arg.to_be_bytes());
        }
    }
}

pub(super) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_head(out, major::BYTES, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The CBOR encoding of `Sig_structure = ["Signature1", protected, h'',
/// payload]`, where `protected_item` is the protected header's bstr item
/// as it appears in the envelope (head included).
pub(super) fn sig_structure(protected_item: &[u8], payload: &[u8]) -> Vec<u8> {
    const CONTEXT: &[u8] = b"Signature1";
    let mut out = Vec::with_capacity(protected_item.len() + payload.len() + 24);
    push_head(&mut out, major::ARRAY, 4);
    push_head(&mut out, major::TEXT, CONTEXT.len() as u64);
    out.extend_from_slice(CONTEXT);
    out.extend_from_slice(protected_item);
    push_bytes(&mut out, &[]); // external_aad
    push_bytes(&mut out, payload);
    out
}

pub(super) fn decode_value(b: &[u8], what: &str) -> Result<Value, EnvelopeError> {
    ciborium::de::from_reader(b).map_err(|e| bad(format!("{what}: {e}")))
}

pub(super) fn encode_value(v: &Value) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| bad(format!("encoding CBOR: {e}")))?;
    Ok(out)
}
