//! A small model directory as the push and pull tests make it, and a
//! directory's files read back to compare with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::xorshift_bytes;

/// A small model directory: a 2 MiB safetensors weight (1,048,576 BF16
/// parameters, so a 1 MiB disk cannot hold it), configs, code and docs;
/// five files, each packed as a layer of its own.
pub fn make_model(dir: &Path) {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    let header = br#"{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[1024,1024],"data_offsets":[0,2097152]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend(xorshift_bytes(2 << 20, 5, 1, 11));
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"model_type":"tiny"}"#).unwrap();
    std::fs::write(dir.join("tokenizer.json"), br#"{"v":1}"#).unwrap();
    std::fs::write(dir.join("README.md"), b"# tiny\n").unwrap();
    std::fs::write(dir.join("scripts/run.py"), b"print('hi')\n").unwrap();
}

/// Every regular file under `dir` (relative path -> bytes), in path order.
/// Panics when `dir` or a directory below it cannot be read: a test that
/// expects a directory to be absent says so itself.
pub fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display()));
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Runs GNU tar in `dir` with `args`, returning the archive bytes (an
/// archive made as modctl's tar layers are).
pub fn gnu_tar(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .current_dir(dir)
        .args(["-cf", "-"])
        .args(args)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
