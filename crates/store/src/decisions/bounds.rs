//! What is kept of a decision: a bounded summary. Callers pass whatever they
//! were given (an AdmissionReview's names, a rule's messages built from
//! user input); the store cuts it down here, so no caller can write an
//! unbounded row and a page of the log stays small.
//!
//! Every bound is on bytes as the listing serialises them (JSON, escapes
//! included), so the documented numbers hold for what clients receive.

use serde_json::Value;

/// Largest stored decision, as listed (its JSON object), in bytes. The
/// bounds below add up to about 51 KiB; this is the promise.
pub const MAX_DECISION_BYTES: usize = 64 << 10;
/// Most deny (and, separately, warn) messages kept per decision; past it
/// the last one kept says how many more there were.
pub const MAX_MESSAGES: usize = 16;
/// Largest message kept, in bytes of its JSON string (quotes included).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Largest subject kept, in bytes of its JSON string.
pub const MAX_SUBJECT_BYTES: usize = 1024;
/// Largest repository kept, in bytes of its JSON string (repository names
/// are at most 255 bytes; this only stops callers that pass anything else).
pub const MAX_REPOSITORY_BYTES: usize = 512;
/// Largest point name kept (`push`, `pull`, `admission`).
pub const MAX_POINT_BYTES: usize = 32;
/// Largest detail kept, in bytes of its JSON text; a larger one is replaced
/// by a note saying so, with its small top-level fields.
pub const MAX_DETAIL_BYTES: usize = 16 << 10;
/// Budget for the small top-level fields kept from an oversize detail.
const KEPT_DETAIL_BYTES: usize = MAX_DETAIL_BYTES / 2;
/// Largest top-level field kept from an oversize detail.
const KEPT_FIELD_BYTES: usize = 512;

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes `s` takes as a JSON string, quotes included.
fn json_len(s: &str) -> usize {
    2 + s.chars().map(json_char_len).sum::<usize>()
}

/// `s`, cut so that its JSON string (quotes included) is at most `max`
/// bytes; a cut text ends with a note giving the original length.
pub fn fit(s: &str, max: usize) -> String {
    if json_len(s) <= max {
        return s.to_string();
    }
    let note = format!("…(cut from {} bytes)", s.len());
    let mut room = max.saturating_sub(json_len(&note));
    let mut out = String::new();
    for c in s.chars() {
        let n = json_char_len(c);
        if n > room {
            break;
        }
        room -= n;
        out.push(c);
    }
    // Only when `max` is smaller than the note itself, which no bound is.
    if json_len(&note) <= max {
        out.push_str(&note);
    }
    out
}

/// At most [`MAX_MESSAGES`] messages, each cut to [`MAX_MESSAGE_BYTES`].
pub fn fit_messages(messages: &[String]) -> Vec<String> {
    if messages.len() <= MAX_MESSAGES {
        return messages.iter().map(|m| fit(m, MAX_MESSAGE_BYTES)).collect();
    }
    let kept = MAX_MESSAGES - 1;
    let mut out: Vec<String> = messages[..kept]
        .iter()
        .map(|m| fit(m, MAX_MESSAGE_BYTES))
        .collect();
    out.push(format!(
        "… and {} more messages not kept",
        messages.len() - kept
    ));
    out
}

/// `detail` when its JSON text is at most [`MAX_DETAIL_BYTES`]; otherwise
/// an object whose `truncated` field says what happened, with those
/// top-level fields of the original that are small (ids, operation,
/// digest), so the log still says what the decision was about.
pub fn fit_detail(detail: &Value) -> Value {
    let text_len = detail.to_string().len();
    if text_len <= MAX_DETAIL_BYTES {
        return detail.clone();
    }
    let mut out = serde_json::Map::new();
    out.insert(
        "truncated".into(),
        format!("detail of {text_len} bytes was over the {MAX_DETAIL_BYTES}-byte limit; only its small fields were kept").into(),
    );
    if let Value::Object(fields) = detail {
        let mut used = 0;
        for (k, v) in fields {
            if k == "truncated" {
                continue;
            }
            let n = json_len(k) + v.to_string().len() + 2;
            if n <= KEPT_FIELD_BYTES && used + n <= KEPT_DETAIL_BYTES {
                used += n;
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A decision as stored: every text bounded, lists serialised.
pub(super) struct Summary {
    pub point: String,
    pub repository: Option<String>,
    pub subject: String,
    pub deny: String,
    pub warn: String,
    pub detail: String,
}

impl Summary {
    /// The bounded form of a decision.
    pub fn new(
        point: &str,
        repository: Option<&str>,
        subject: &str,
        deny: &[String],
        warn: &[String],
        detail: &Value,
    ) -> Summary {
        let list = |m: &[String]| {
            serde_json::to_string(&fit_messages(m)).unwrap_or_else(|_| "[]".to_string())
        };
        // PostgreSQL text cannot hold NUL; these three are stored as plain
        // text (the lists and the detail are JSON, where NUL is escaped).
        let text = |s: &str, max| fit(&s.replace('\0', "\u{fffd}"), max);
        Summary {
            point: text(point, MAX_POINT_BYTES),
            repository: repository.map(|r| text(r, MAX_REPOSITORY_BYTES)),
            subject: text(subject, MAX_SUBJECT_BYTES),
            deny: list(deny),
            warn: list(warn),
            detail: fit_detail(detail).to_string(),
        }
    }

    /// Bytes the row holds, as retention by size counts them: its texts
    /// plus a fixed allowance for the numbers and the database's overhead.
    pub fn size(&self) -> i64 {
        let texts = self.point.len()
            + self.repository.as_ref().map_or(0, String::len)
            + self.subject.len()
            + self.deny.len()
            + self.warn.len()
            + self.detail.len();
        (texts + ROW_OVERHEAD) as i64
    }
}

/// Bytes counted per row beyond its texts.
pub const ROW_OVERHEAD: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_string_len(s: &str) -> usize {
        serde_json::to_string(s).unwrap().len()
    }

    #[test]
    fn fit_counts_escapes_as_serde_json_writes_them() {
        for s in [
            "plain",
            "q\"b\\",
            "\n\t\r\u{8}\u{c}",
            "\u{1}\u{1f}\u{7f}",
            "é€𝄞",
        ] {
            assert_eq!(json_len(s), json_string_len(s), "{s:?}");
        }
        assert_eq!(fit("short", 100), "short");
        let hostile = "\u{1}\"é\n".repeat(10_000);
        for max in [64, 100, 1024, 4096] {
            let cut = fit(&hostile, max);
            assert!(
                json_string_len(&cut) <= max,
                "{max}: {}",
                json_string_len(&cut)
            );
            assert!(cut.ends_with(&format!("…(cut from {} bytes)", hostile.len())));
            assert!(json_string_len(&cut) > max - 8, "the room is used");
        }
    }

    #[test]
    fn messages_are_capped_in_number_and_length() {
        let many: Vec<String> = (0..100)
            .map(|i| format!("{i} {}", "x".repeat(5000)))
            .collect();
        let kept = fit_messages(&many);
        assert_eq!(kept.len(), MAX_MESSAGES);
        assert!(kept[0].starts_with("0 xxx"));
        assert_eq!(kept[MAX_MESSAGES - 1], "… and 85 more messages not kept");
        assert!(kept.iter().all(|m| json_string_len(m) <= MAX_MESSAGE_BYTES));
        let few = vec!["a".to_string(), "b".to_string()];
        assert_eq!(fit_messages(&few), few);
    }

    #[test]
    fn an_oversize_detail_becomes_a_note_with_its_small_fields() {
        let small = json!({"uid": "u1", "images": ["a", "b"]});
        assert_eq!(fit_detail(&small), small);
        let big = json!({"uid": "u1", "operation": "CREATE", "truncated": false,
            "images": vec!["x".repeat(100); 1000], "huge": "y".repeat(MAX_DETAIL_BYTES)});
        let cut = fit_detail(&big);
        assert_eq!(cut["uid"], "u1");
        assert_eq!(cut["operation"], "CREATE");
        assert!(cut.get("images").is_none() && cut.get("huge").is_none());
        let note = cut["truncated"].as_str().unwrap();
        assert!(note.contains("over the 16384-byte limit"), "{note}");
        let many_keys: serde_json::Map<String, Value> =
            (0..10_000).map(|i| (format!("k{i}"), json!(i))).collect();
        let cut = fit_detail(&Value::Object(many_keys));
        assert!(cut.to_string().len() <= MAX_DETAIL_BYTES);
        assert!(fit_detail(&json!(vec![1; 100_000])).to_string().len() <= MAX_DETAIL_BYTES);
    }

    #[test]
    fn the_worst_summary_is_within_the_decision_bound() {
        let hostile = "\u{1}\"\n\0".repeat(100_000);
        let msgs = vec![hostile.clone(); 1000];
        let detail = json!({"a": hostile.clone()});
        let s = Summary::new(&hostile, Some(&hostile), &hostile, &msgs, &msgs, &detail);
        // The listing's form: the texts plus the fixed fields.
        let listed = json!({
            "id": i64::MAX, "at": i64::MAX, "point": s.point, "repository": s.repository,
            "subject": s.subject, "allowed": false,
            "deny": serde_json::from_str::<Value>(&s.deny).unwrap(),
            "warn": serde_json::from_str::<Value>(&s.warn).unwrap(),
            "detail": serde_json::from_str::<Value>(&s.detail).unwrap(),
        });
        let n = listed.to_string().len();
        assert!(n <= MAX_DECISION_BYTES, "{n}");
        assert!(s.size() as usize <= MAX_DECISION_BYTES);
    }
}
