use std::time::Instant;
fn main() {
    let mut data = vec![0u8; 256 << 20];
    for (i, b) in data.iter_mut().enumerate() { *b = (i * 131 + i / 251) as u8; }
    let (blocks, _) = data.as_chunks::<64>();
    let mut best = [f64::INFINITY; 2];
    let mut digests = [[0u32; 8]; 2];
    for _ in 0..5 {
        for k in 0..2 {
            let mut st = [0x6a09e667u32, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
            let t = Instant::now();
            for b in blocks.chunks(16 << 20 >> 6) {
                if k == 0 {
                    use sha2::digest::generic_array::GenericArray;
                    let b = unsafe { std::slice::from_raw_parts(b.as_ptr() as *const GenericArray<u8, sha2::digest::consts::U64>, b.len()) };
                    sha2::compress256(&mut st, b);
                } else {
                    sha2_asm::compress256(&mut st, b);
                }
            }
            best[k] = best[k].min(t.elapsed().as_secs_f64());
            digests[k] = st;
        }
    }
    assert_eq!(digests[0], digests[1]);
    let g = |t: f64| data.len() as f64 / t / 1e9;
    println!("no SHA-NI, 256 MiB in 16 MiB batches, best of 5 wall: sha2 0.10 force-soft {:.2} GB/s, sha2-asm 0.6 {:.2} GB/s", g(best[0]), g(best[1]));
}
