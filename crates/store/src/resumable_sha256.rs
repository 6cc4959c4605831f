//! SHA-256 whose running state can be saved and restored: the eight words
//! of the compression function's state, the bytes of the unfinished block,
//! and the count of bytes hashed. An upload session on object storage keeps
//! this with its other state, so whichever replica receives the next chunk
//! continues the hash without reading back a single byte already stored.
//!
//! The sha2 crate hides its running state, so this keeps its own and calls
//! sha2's block function (`compress256`, SHA-NI where the CPU has it); only
//! the padding of the last block is written here (FIPS 180-4, 5.1.1).

use pavilion_oci::{Algorithm, Digest};
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

/// FIPS 180-4 initial hash value.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Bytes per block.
const BLOCK: usize = 64;

/// A SHA-256 computation in progress.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumableSha256 {
    /// The compression function's state after the last full block.
    state: [u32; 8],
    /// Bytes hashed so far (full blocks and the tail).
    len: u64,
    /// The unfinished block (fewer than 64 bytes), hex in saved form.
    #[serde(with = "hex_bytes")]
    tail: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256 {
            state: H0,
            len: 0,
            tail: Vec::new(),
        }
    }
}

/// Feeds whole 64-byte blocks to sha2's block function in one call: one
/// call per block costs 11% (each call checks the CPU's features and
/// reloads and reshuffles the state; 1.61 against 1.80 GB/s in
/// BENCHMARKS.md, "SHA-256 candidates"), and copying the blocks into a
/// buffer of `GenericArray`s to avoid the cast below costs as much.
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    let whole = blocks.len() - blocks.len() % BLOCK;
    debug_assert_eq!(whole, blocks.len());
    sha2::compress256(state, as_blocks(&blocks[..whole]));
}

/// `bytes` (whole blocks only: the length is cut down to a multiple of 64)
/// as a slice of 64-byte blocks, without copying.
#[allow(unsafe_code)]
fn as_blocks(bytes: &[u8]) -> &[GenericArray<u8, U64>] {
    let n = bytes.len() / BLOCK;
    // SAFETY: `GenericArray<u8, U64>` is `#[repr(transparent)]` over
    // `[u8; 64]` (generic-array 0.14), so it has size 64 and alignment 1,
    // like the bytes; the first `n * 64` bytes of `bytes` are in bounds
    // and borrowed for the returned lifetime. sha2 does the same cast the
    // other way round inside `compress256`.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<GenericArray<u8, U64>>(), n) }
}

impl ResumableSha256 {
    /// A fresh computation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < BLOCK {
                return;
            }
            let block = std::mem::take(&mut self.tail);
            compress(&mut self.state, &block);
        }
        // Whole blocks straight from the input, in batches so the block
        // list stays small whatever the chunk size.
        let whole = data.len() - data.len() % BLOCK;
        for batch in data[..whole].chunks(BLOCK * 1024) {
            compress(&mut self.state, batch);
        }
        self.tail.extend_from_slice(&data[whole..]);
    }

    /// The digest of everything fed.
    pub fn finish(&self) -> Digest {
        let mut state = self.state;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % BLOCK != BLOCK - 8 {
            last.push(0);
        }
        last.extend_from_slice(&(self.len * 8).to_be_bytes());
        compress(&mut state, &last);
        let mut out = [0u8; 32];
        for (i, w) in state.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        Digest::from_bytes(Algorithm::Sha256, &out)
    }
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = b.iter().map(|x| format!("{x:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        if !text.len().is_multiple_of(2) || text.len() > 2 * super::BLOCK {
            return Err(serde::de::Error::custom(
                "tail must be under 64 bytes of hex",
            ));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    #[test]
    fn matches_sha2_for_every_split_and_through_a_save() {
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 70_000] {
            let data = bytes(n);
            let want = Digest::sha256(&data);
            for cut in [0, 1, 63, 64, n / 2, n.saturating_sub(1), n] {
                let cut = cut.min(n);
                let mut h = ResumableSha256::new();
                h.update(&data[..cut]);
                // Saved and restored between the two halves, as a session
                // handed to another replica would be.
                let saved = serde_json::to_string(&h).unwrap();
                let mut h: ResumableSha256 = serde_json::from_str(&saved).unwrap();
                h.update(&data[cut..]);
                assert_eq!(h.finish(), want, "n={n} cut={cut}");
                assert_eq!(h.len(), n as u64);
            }
        }
    }

    #[test]
    fn many_blocks_in_one_call_hash_as_one_block_per_call() {
        // Pieces that end mid-block and batches (64 KiB) cut by them, with
        // a save and restore at each piece, against sha2's own digest.
        let data = bytes(300_000);
        for piece in [65_537, 100_003, 4_096 * 17 + 5] {
            let mut h = ResumableSha256::new();
            for p in data.chunks(piece) {
                h.update(p);
                h = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
            }
            assert_eq!(h.finish(), Digest::sha256(&data), "pieces of {piece}");
        }
        // The cast keeps every block's bytes, in order.
        let whole = &data[..64 * 3 + 10];
        let blocks = as_blocks(whole);
        assert_eq!(blocks.len(), 3);
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.as_slice(), &whole[i * 64..(i + 1) * 64]);
        }
        let (mut one_call, mut per_block) = (H0, H0);
        compress(&mut one_call, &data[..64 * 1000]);
        for b in data[..64 * 1000].chunks(64) {
            sha2::compress256(
                &mut per_block,
                std::slice::from_ref(GenericArray::from_slice(b)),
            );
        }
        assert_eq!(one_call, per_block);
    }

    #[test]
    fn small_pieces_and_bad_saved_state() {
        let data = bytes(5000);
        let mut h = ResumableSha256::new();
        for piece in data.chunks(7) {
            h.update(piece);
        }
        assert_eq!(h.finish(), Digest::sha256(&data));
        let bad = r#"{"state":[0,0,0,0,0,0,0,0],"len":3,"tail":"zz"}"#;
        assert!(serde_json::from_str::<ResumableSha256>(bad).is_err());
        let long = format!(
            r#"{{"state":[0,0,0,0,0,0,0,0],"len":3,"tail":"{}"}}"#,
            "00".repeat(65)
        );
        assert!(serde_json::from_str::<ResumableSha256>(&long).is_err());
    }
}
