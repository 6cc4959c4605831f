//! Go-compatible helpers the suite's client relies on: its random data,
//! base64, `url.QueryEscape`, path unescaping and `json.MarshalIndent`.

use super::*;
use std::time::{SystemTime, UNIX_EPOCH};

/// xorshift64*, seeded from the clock.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        // splitmix64 so that nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }

    /// `randomString(n)` from setup.go's alphabet.
    pub(super) fn string(&mut self, n: usize) -> String {
        const LETTERS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";
        (0..n)
            .map(|_| LETTERS[(self.next() % LETTERS.len() as u64) as usize] as char)
            .collect()
    }

    /// A random UUID-shaped string (what `uuid.New()` prints).
    pub(super) fn uuid(&mut self) -> String {
        let h = hex::encode(self.bytes(16));
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

pub(super) fn time_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    t ^ (u64::from(std::process::id()) << 32)
}

/// `randomBlob(size, seed)`: reproducible random bytes.
pub(super) fn random_blob(size: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(size)
}

/// Go's `base64.StdEncoding.DecodeString` (padding required; CR/LF ignored).
pub(super) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s: Vec<u8> = s.bytes().filter(|c| *c != b'\r' && *c != b'\n').collect();
    if s.chunks(4).any(|c| c.len() != 4) {
        return None;
    }
    let mut out = Vec::new();
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                BASE64_ALPHABET.iter().position(|x| x == c)? as u32
            };
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Go's `url.QueryEscape`.
pub(super) fn go_query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-decoding as `url.Parse` does for `URL.Path`; None on a bad escape.
pub(super) fn go_path_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A JSON value with Go struct field order.
#[derive(Clone)]
pub(super) enum J {
    S(String),
    N(i64),
    Null,
    A(Vec<J>),
    O(Vec<(&'static str, J)>),
}

/// Go's `json.MarshalIndent(v, "", "\t")`.
pub(super) fn go_marshal_indent(v: &J) -> Vec<u8> {
    pub(super) fn esc(s: &str) -> String {
        serde_json::to_string(s)
            .expect("string")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    }
    pub(super) fn write(v: &J, depth: usize, out: &mut String) {
        let pad = |d: usize| "\t".repeat(d);
        match v {
            J::S(s) => out.push_str(&esc(s)),
            J::N(n) => out.push_str(&n.to_string()),
            J::Null => out.push_str("null"),
            J::A(items) if items.is_empty() => out.push_str("[]"),
            J::A(items) => {
                out.push_str("[\n");
                for (i, it) in items.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    write(it, depth + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push(']');
            }
            J::O(fields) if fields.is_empty() => out.push_str("{}"),
            J::O(fields) => {
                out.push_str("{\n");
                for (i, (k, it)) in fields.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    out.push_str(&esc(k));
                    out.push_str(": ");
                    write(it, depth + 1, out);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    write(v, 0, &mut out);
    out.into_bytes()
}

pub(super) fn s(v: &str) -> J {
    J::S(v.to_string())
}
