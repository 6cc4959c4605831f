//! Query strings as the handlers read them (`n`, `last`, `digest`,
//! `mount`, `from`, `tag`...), percent-decoded by `pavilion_oci::percent`.

use pavilion_oci::percent;

/// Query parameters in order, percent-decoded (`+` is a space).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// One query component (key or value) as the handlers read it.
pub fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent::decode(&spaced).unwrap_or(spaced)
}

/// First value of query parameter `key`.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
