//! Single-thread SHA-256 throughput of the candidates for Pavilion (issue 15,
//! item 1), plus the resumable-midstate paths. Hashes a pre-filled 1 GiB
//! buffer in 16 MiB and 1 MiB updates; best of N interleaved rounds.
//!
//! Usage: sha-bench [rounds] [filter]

use std::hint::black_box;
use std::time::Instant;

const GIB: usize = 1 << 30;
const BLOCK: usize = 64;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Padding and output from a raw state (FIPS 180-4 5.1.1); `compress` is the
/// block function of the path under test.
fn finish_raw(
    mut state: [u32; 8],
    len: u64,
    tail: &[u8],
    compress: impl Fn(&mut [u32; 8], &[[u8; 64]]),
) -> [u8; 32] {
    let mut last = tail.to_vec();
    last.push(0x80);
    while last.len() % BLOCK != BLOCK - 8 {
        last.push(0);
    }
    last.extend_from_slice(&(len * 8).to_be_bytes());
    compress(&mut state, last.as_chunks::<64>().0);
    let mut out = [0u8; 32];
    for (i, w) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// Block functions

fn c_sha2_10(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: GenericArray<u8, U64> has the layout of [u8; 64] (sha2 does
    // the same cast the other way round inside compress256).
    let b = unsafe {
        std::slice::from_raw_parts(
            blocks.as_ptr() as *const sha2_10::digest::generic_array::GenericArray<u8, sha2_10::digest::consts::U64>,
            blocks.len(),
        )
    };
    sha2_10::compress256(state, b);
}

/// No unsafe: blocks copied into a small reused buffer of GenericArrays
/// (256 blocks = 16 KiB, stays in L1/L2), one compress256 call per buffer.
fn c_sha2_10_copy(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    use sha2_10::digest::generic_array::GenericArray;
    use sha2_10::digest::consts::U64;
    thread_local!(static BUF: std::cell::RefCell<Vec<GenericArray<u8, U64>>> = std::cell::RefCell::new(Vec::with_capacity(256)));
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        for chunk in blocks.chunks(256) {
            buf.clear();
            buf.extend(chunk.iter().map(|x| *GenericArray::from_slice(x)));
            sha2_10::compress256(state, &buf);
        }
    });
}

/// Exactly what resumable_sha256.rs does today: one block per call.
fn c_sha2_10_one_per_call(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    use sha2_10::digest::generic_array::GenericArray;
    for b in blocks {
        sha2_10::compress256(state, std::slice::from_ref(GenericArray::from_slice(b)));
    }
}

fn c_sha2_11(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    sha2_11::block_api::compress256(state, blocks);
}

fn c_sha2_asm(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    sha2_asm::compress256(state, blocks);
}

fn c_awslc(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    unsafe { aws_lc_sys::SHA256_TransformBlocks(state.as_mut_ptr(), blocks.as_ptr().cast(), blocks.len()) }
}

// ---------------------------------------------------------------------------
// A resumable hasher over any block function: state words, byte count and the
// unfinished block are plain data (what Pavilion saves with an upload).

#[derive(Clone)]
struct Resumable<F: Fn(&mut [u32; 8], &[[u8; 64]]) + Copy> {
    state: [u32; 8],
    len: u64,
    tail: Vec<u8>,
    /// Blocks per call to the block function (Pavilion today: 1024 blocks
    /// per batch, one block per call).
    batch: usize,
    f: F,
}

impl<F: Fn(&mut [u32; 8], &[[u8; 64]]) + Copy> Resumable<F> {
    fn new(f: F, batch: usize) -> Self {
        Resumable { state: H0, len: 0, tail: Vec::with_capacity(64), batch, f }
    }
    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < BLOCK {
                return;
            }
            (self.f)(&mut self.state, self.tail.as_chunks::<64>().0);
            self.tail.clear();
        }
        let (blocks, rest) = data.as_chunks::<64>();
        for batch in blocks.chunks(self.batch) {
            (self.f)(&mut self.state, batch);
        }
        self.tail.extend_from_slice(rest);
    }
    fn save(&self) -> ([u32; 8], u64, Vec<u8>) {
        (self.state, self.len, self.tail.clone())
    }
    fn restore(f: F, batch: usize, s: ([u32; 8], u64, Vec<u8>)) -> Self {
        Resumable { state: s.0, len: s.1, tail: s.2, batch, f }
    }
    fn finish(&self) -> [u8; 32] {
        finish_raw(self.state, self.len, &self.tail, self.f)
    }
}

// ---------------------------------------------------------------------------
// OpenSSL low-level SHA256_CTX: a plain C struct (h[8], Nl, Nh, data[16], num,
// md_len), so the midstate can be read out and written back.

#[allow(deprecated)]
mod ossl {
    use openssl_sys as ffi;
    use std::mem::MaybeUninit;

    pub struct Ctx(pub ffi::SHA256_CTX);

    impl Ctx {
        pub fn new() -> Self {
            unsafe {
                let mut c = MaybeUninit::<ffi::SHA256_CTX>::zeroed();
                assert_eq!(ffi::SHA256_Init(c.as_mut_ptr()), 1);
                Ctx(c.assume_init())
            }
        }
        pub fn update(&mut self, d: &[u8]) {
            unsafe { ffi::SHA256_Update(&mut self.0, d.as_ptr().cast(), d.len()) };
        }
        pub fn finish(mut self) -> [u8; 32] {
            let mut out = [0u8; 32];
            unsafe { ffi::SHA256_Final(out.as_mut_ptr(), &mut self.0) };
            out
        }
        /// (state words, bytes hashed, unfinished block)
        pub fn save(&self) -> ([u32; 8], u64, Vec<u8>) {
            let c = &self.0;
            let bits = ((c.Nh as u64) << 32) | c.Nl as u64;
            let num = c.num as usize;
            // data[] holds the pending bytes in input order (memcpy'd).
            let bytes = unsafe { std::slice::from_raw_parts(c.data.as_ptr() as *const u8, 64) };
            (c.h, bits / 8, bytes[..num].to_vec())
        }
        pub fn restore(s: ([u32; 8], u64, Vec<u8>)) -> Self {
            let mut c = Ctx::new();
            let bits = s.1 * 8;
            c.0.h = s.0;
            c.0.Nl = bits as u32;
            c.0.Nh = (bits >> 32) as u32;
            let bytes = unsafe { std::slice::from_raw_parts_mut(c.0.data.as_mut_ptr() as *mut u8, 64) };
            bytes[..s.2.len()].copy_from_slice(&s.2);
            c.0.num = s.2.len() as _;
            c
        }
    }
}

// ---------------------------------------------------------------------------

type Runner = Box<dyn Fn(&[u8], usize) -> [u8; 32]>;

fn candidates() -> Vec<(&'static str, Runner)> {
    let mut v: Vec<(&'static str, Runner)> = Vec::new();
    v.push(("sha2 0.10 Sha256 (Pavilion today)", Box::new(|d, s| {
        use sha2_10::Digest;
        let mut h = sha2_10::Sha256::new();
        for c in d.chunks(s) { h.update(c) }
        h.finalize().into()
    })));
    v.push(("sha2 0.11 Sha256", Box::new(|d, s| {
        use sha2_11::Digest;
        let mut h = sha2_11::Sha256::new();
        for c in d.chunks(s) { h.update(c) }
        h.finalize().into()
    })));
    v.push(("ring 0.17 digest::Context", Box::new(|d, s| {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for c in d.chunks(s) { h.update(c) }
        h.finish().as_ref().try_into().unwrap()
    })));
    v.push(("aws-lc-rs 1.19 digest::Context", Box::new(|d, s| {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for c in d.chunks(s) { h.update(c) }
        h.finish().as_ref().try_into().unwrap()
    })));
    v.push(("openssl 0.10 sha::Sha256", Box::new(|d, s| {
        let mut h = openssl::sha::Sha256::new();
        for c in d.chunks(s) { h.update(c) }
        h.finish()
    })));
    v.push(("openssl 0.10 hash::Hasher (EVP)", Box::new(|d, s| {
        let mut h = openssl::hash::Hasher::new(openssl::hash::MessageDigest::sha256()).unwrap();
        for c in d.chunks(s) { h.update(c).unwrap() }
        h.finish().unwrap().as_ref().try_into().unwrap()
    })));
    // Resumable paths.
    v.push(("resumable: Pavilion today (sha2 0.10 compress256, 1 block/call)", Box::new(|d, s| {
        let mut h = Resumable::new(c_sha2_10_one_per_call, 1024);
        for c in d.chunks(s) { h.update(c) }
        h.finish()
    })));
    v.push(("resumable: sha2 0.10 compress256, copied 256 blocks per call (no unsafe)", Box::new(|d, s| {
        let mut h = Resumable::new(c_sha2_10_copy, usize::MAX);
        for c in d.chunks(s) { h.update(c) }
        h.finish()
    })));
    v.push(("resumable: sha2 0.10 compress256, whole update per call", Box::new(|d, s| {
        let mut h = Resumable::new(c_sha2_10, usize::MAX);
        for c in d.chunks(s) { h.update(c) }
        h.finish()
    })));
    v.push(("resumable: sha2 0.11 compress256, whole update per call", Box::new(|d, s| {
        let mut h = Resumable::new(c_sha2_11, usize::MAX);
        for c in d.chunks(s) { h.update(c) }
        h.finish()
    })));
    v.push(("resumable: sha2 0.11 Sha256 + SerializableState", Box::new(|d, s| {
        // Same speed as sha2 0.11 Sha256; here a save/restore at every update
        // to show its cost is nil.
        use sha2_11::Digest;
        use sha2_11::digest::common::hazmat::SerializableState;
        let mut h = sha2_11::Sha256::new();
        for c in d.chunks(s) {
            h.update(c);
            let st = h.serialize();
            h = sha2_11::Sha256::deserialize(&st).unwrap();
        }
        h.finalize().into()
    })));
    v.push(("resumable: aws-lc-sys SHA256_TransformBlocks, whole update", Box::new(|d, s| {
        let mut h = Resumable::new(c_awslc, usize::MAX);
        for c in d.chunks(s) { h.update(c) }
        h.finish()
    })));
    v.push(("resumable: openssl-sys SHA256_CTX (save/restore each update)", Box::new(|d, s| {
        let mut h = ossl::Ctx::new();
        for c in d.chunks(s) {
            h.update(c);
            h = ossl::Ctx::restore(h.save());
        }
        h.finish()
    })));
    v.push(("block fn: sha2-asm 0.6 compress256 (no SHA-NI; sha2 `asm` fallback)", Box::new(|d, s| {
        let mut h = Resumable::new(c_sha2_asm, usize::MAX);
        for c in d.chunks(s) { h.update(c) }
        h.finish()
    })));
    v
}

/// Save mid-stream at awkward cuts, restore into a fresh value, continue:
/// must give the one-shot digest.
fn midstate_checks() {
    let data: Vec<u8> = (0..(1 << 20) + 77).map(|i: usize| (i * 131 + i / 251) as u8).collect();
    let want: [u8; 32] = openssl::sha::sha256(&data);
    for cut in [0usize, 1, 55, 63, 64, 65, 1000, 1 << 19, (1 << 20) + 13, data.len()] {
        let (a, b) = data.split_at(cut);
        macro_rules! check_res {
            ($name:expr, $f:expr, $batch:expr) => {{
                let mut h = Resumable::new($f, $batch);
                h.update(a);
                let saved = h.save();
                let mut h = Resumable::restore($f, $batch, saved);
                h.update(b);
                assert_eq!(h.finish(), want, "{} cut={cut}", $name);
            }};
        }
        check_res!("sha2 0.10 1/call", c_sha2_10_one_per_call, 1024);
        check_res!("sha2 0.10 batched", c_sha2_10, usize::MAX);
        check_res!("sha2 0.11 batched", c_sha2_11, usize::MAX);
        check_res!("aws-lc TransformBlocks", c_awslc, usize::MAX);
        check_res!("sha2-asm", c_sha2_asm, usize::MAX);
        // openssl SHA256_CTX
        let mut h = ossl::Ctx::new();
        h.update(a);
        let saved = h.save();
        let mut h = ossl::Ctx::restore(saved);
        h.update(b);
        assert_eq!(h.finish(), want, "openssl ctx cut={cut}");
        // cross-implementation: openssl midstate resumed by sha2 0.11 and back
        let mut h = ossl::Ctx::new();
        h.update(a);
        let mut r = Resumable::restore(c_sha2_11, usize::MAX, h.save());
        r.update(b);
        assert_eq!(r.finish(), want, "openssl->sha2 cut={cut}");
        let mut r = Resumable::new(c_awslc, usize::MAX);
        r.update(a);
        let mut h = ossl::Ctx::restore(r.save());
        h.update(b);
        assert_eq!(h.finish(), want, "aws-lc->openssl cut={cut}");
        // sha2 0.11 SerializableState
        {
            use sha2_11::Digest;
            use sha2_11::digest::common::hazmat::SerializableState;
            let mut h = sha2_11::Sha256::new();
            h.update(a);
            let st = h.serialize();
            let mut h = sha2_11::Sha256::deserialize(&st).unwrap();
            h.update(b);
            let got: [u8; 32] = h.finalize().into();
            assert_eq!(got, want, "sha2 0.11 serialize cut={cut}");
        }
    }
    {
        use sha2_11::digest::common::hazmat::SerializableState;
        use sha2_11::Digest;
        let st = sha2_11::Sha256::new().serialize();
        println!("midstate checks: all paths resume to the one-shot digest (sha2 0.11 serialized state = {} bytes)", st.len());
    }
}

/// CPU time of this thread: unlike wall time, not inflated when the other
/// build running on this 2-core machine preempts us.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let filter = args.get(2).cloned().unwrap_or_default();

    println!(
        "sha2 0.10 built with `asm` feature: {}",
        cfg!(feature = "sha2-asm-feature")
    );
    println!("SHA-NI (is_x86_feature_detected!(\"sha\")): {}", std::arch::is_x86_feature_detected!("sha"));
    midstate_checks();

    let mut data = vec![0u8; GIB];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for c in data.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    let want = openssl::sha::sha256(&data);
    println!("reference digest of the 1 GiB buffer: {}", hex::encode(want));

    let cands: Vec<_> = candidates().into_iter().filter(|(n, _)| n.contains(&filter)).collect();
    // Optional third argument: update sizes in bytes, comma-separated
    // (three of them); default 16 MiB, 1 MiB, 64 KiB.
    let sizes: [usize; 3] = match args.get(3) {
        Some(s) => s.split(',').map(|x| x.parse().unwrap()).collect::<Vec<_>>().try_into().unwrap(),
        None => [16usize << 20, 1 << 20, 64 << 10],
    };
    let mut best = vec![[f64::INFINITY; 3]; cands.len()];
    let mut best_wall = vec![[f64::INFINITY; 3]; cands.len()];
    for r in 0..rounds {
        for (i, (name, run)) in cands.iter().enumerate() {
            for (j, &s) in sizes.iter().enumerate() {
                let t = Instant::now();
                let c0 = thread_cpu();
                let d = run(black_box(&data), s);
                let e = thread_cpu() - c0;
                best_wall[i][j] = best_wall[i][j].min(t.elapsed().as_secs_f64());
                assert_eq!(d, want, "{name} at {s}");
                black_box(d);
                best[i][j] = best[i][j].min(e);
            }
        }
        eprintln!("round {}/{} done", r + 1, rounds);
    }
    println!("\nbest of {rounds} interleaved rounds, GB/s = 1.073741824 GB / best thread CPU time (wall-clock best in brackets)");
    println!("\n| candidate | {} B updates | {} B updates | {} B updates |", sizes[0], sizes[1], sizes[2]);
    println!("|---|---|---|---|");
    let g = |t: f64| GIB as f64 / t / 1e9;
    for (i, (name, _)) in cands.iter().enumerate() {
        println!(
            "| {name} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.2} ({:.2}) |",
            g(best[i][0]), g(best_wall[i][0]),
            g(best[i][1]), g(best_wall[i][1]),
            g(best[i][2]), g(best_wall[i][2]),
        );
    }
}
