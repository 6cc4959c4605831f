//! The JSON body of an error answer (distribution-spec, "Error Codes"):
//! written by the registry, read by the client, one type for both.
//!
//! ```
//! use pavilion_oci::error_body::{Code, ErrorBody};
//! use pavilion_oci::ErrorCode;
//!
//! let body: ErrorBody = serde_json::from_str(
//!     r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":"v1"}]}"#,
//! )
//! .unwrap();
//! assert_eq!(body.errors[0].code, Code::Known(ErrorCode::ManifestUnknown));
//! ```

use crate::ErrorCode;
use serde::{Deserialize, Serialize};

/// `{"errors": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The errors, most important first (clients show the first).
    pub errors: Vec<ErrorEntry>,
}

/// One error of an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// The error code.
    pub code: Code,
    /// A message for people (may be empty; read as empty when a registry
    /// sends `null` or something other than a string).
    #[serde(default, deserialize_with = "lenient_text")]
    pub message: String,
    /// Unstructured in the spec: a string or any JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// A string, or empty for anything else (a registry's `"message": null`
/// must not cost the client the error's code).
fn lenient_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        _ => String::new(),
    })
}

/// The first error of a body, as leniently as clients read them: the other
/// entries are not looked at, so one malformed entry after it does not
/// hide it. `None` when the body has no readable first error.
pub fn first_error(body: &[u8]) -> Option<ErrorEntry> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<serde_json::Value>,
    }
    let first = serde_json::from_slice::<Errors>(body)
        .ok()?
        .errors
        .into_iter()
        .next()?;
    serde_json::from_value(first).ok()
}

/// An error code as a registry sent it: one of the spec's, or another
/// registry's own string (kept, so it can be shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Code {
    /// A code of the spec's table.
    Known(ErrorCode),
    /// Any other string.
    Other(String),
}

impl Code {
    /// The spec's code, when it is one.
    pub fn known(&self) -> Option<ErrorCode> {
        match self {
            Code::Known(c) => Some(*c),
            Code::Other(_) => None,
        }
    }

    /// The code string.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Known(c) => c.as_str(),
            Code::Other(s) => s,
        }
    }
}

impl From<ErrorCode> for Code {
    fn from(c: ErrorCode) -> Self {
        Code::Known(c)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// Why a Pavilion registry's policy refused a request: the `detail` of a
/// `DENIED` error, `{"reason": "policy", "deny": [...]}` (docs/POLICY.md).
/// Clients tell a policy refusal from an authorisation failure by this
/// detail, never by the message's wording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDenial {
    /// Always [`DenialReason::Policy`].
    pub reason: DenialReason,
    /// The rules' messages (absent: none listed).
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The `reason` of a [`PolicyDenial`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DenialReason {
    /// The registry's policy (`serve --policy`) refused.
    #[serde(rename = "policy")]
    Policy,
}

impl PolicyDenial {
    /// A denial carrying the rules' messages.
    pub fn new(deny: Vec<String>) -> Self {
        PolicyDenial {
            reason: DenialReason::Policy,
            deny,
        }
    }
}

impl ErrorEntry {
    /// The policy denial this error carries: a `DENIED` code with a
    /// [`PolicyDenial`] detail; `None` for anything else.
    pub fn policy_denial(&self) -> Option<PolicyDenial> {
        if self.code.known() != Some(ErrorCode::Denied) {
            return None;
        }
        serde_json::from_value(self.detail.clone()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> ErrorEntry {
        serde_json::from_str::<ErrorBody>(json)
            .unwrap()
            .errors
            .remove(0)
    }

    #[test]
    fn codes_outside_the_table_are_kept_as_sent() {
        let e = entry(r#"{"errors":[{"code":"QUOTA_EXCEEDED"}]}"#);
        assert_eq!(e.code, Code::Other("QUOTA_EXCEEDED".into()));
        assert_eq!(e.code.known(), None);
        assert_eq!(e.message, "");
        assert_eq!(e.detail, None);
    }

    #[test]
    fn a_policy_denial_is_told_by_its_code_and_detail_only() {
        let denial = r#"{"errors":[{"code":"DENIED","message":"x","detail":{"reason":"policy","deny":["unsigned"]}}]}"#;
        assert_eq!(
            entry(denial).policy_denial(),
            Some(PolicyDenial::new(vec!["unsigned".into()]))
        );
        // The wording of the message does not make a denial...
        let words = r#"{"errors":[{"code":"DENIED","message":"denied by policy: unsigned"}]}"#;
        assert_eq!(entry(words).policy_denial(), None);
        // ...nor does the detail under another code, or another reason.
        let other_code =
            r#"{"errors":[{"code":"UNAUTHORIZED","detail":{"reason":"policy","deny":[]}}]}"#;
        assert_eq!(entry(other_code).policy_denial(), None);
        let other_reason =
            r#"{"errors":[{"code":"DENIED","detail":{"reason":"quota","deny":[]}}]}"#;
        assert_eq!(entry(other_reason).policy_denial(), None);
    }

    #[test]
    fn the_first_error_is_read_leniently() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":null},{"code":7}]}"#;
        let e = first_error(body).unwrap();
        assert_eq!(e.code, Code::Known(ErrorCode::BlobUnknown));
        assert_eq!(e.message, "");
        let e = first_error(br#"{"errors":[{"code":"X_UNKNOWN","message":{"a":1}}]}"#).unwrap();
        assert_eq!(e.code, Code::Other("X_UNKNOWN".into()));
        assert_eq!(e.message, "");
        assert!(first_error(br#"{"errors":[{"message":"no code"}]}"#).is_none());
        assert!(first_error(br#"{"errors":[]}"#).is_none());
        assert!(first_error(b"<html>502</html>").is_none());
        // A denial without its list is still a policy denial.
        let e = first_error(br#"{"errors":[{"code":"DENIED","detail":{"reason":"policy"}}]}"#);
        assert_eq!(e.unwrap().policy_denial(), Some(PolicyDenial::new(vec![])));
    }

    #[test]
    fn the_body_round_trips() {
        let body = ErrorBody {
            errors: vec![ErrorEntry {
                code: ErrorCode::Denied.into(),
                message: "m".into(),
                detail: Some(serde_json::to_value(PolicyDenial::new(vec!["r".into()])).unwrap()),
            }],
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(
            text,
            r#"{"errors":[{"code":"DENIED","message":"m","detail":{"deny":["r"],"reason":"policy"}}]}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&text).unwrap(), body);
    }
}
