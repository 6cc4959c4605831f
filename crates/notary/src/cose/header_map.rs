//! Header maps: labels (integers or text) and a decoded map in wire order,
//! indexed by label.

use super::bad;
use super::cbor::decode_value;
use crate::envelope::EnvelopeError;
use ciborium::value::{Integer, Value};
use std::collections::HashMap;

/// A header label: an integer or a text string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Label {
    Int(i64),
    Text(String),
}

impl Label {
    /// How [`SignedAttributes`](crate::envelope::SignedAttributes) names it:
    /// text as is, integers in decimal.
    pub(super) fn name(&self) -> String {
        match self {
            Label::Int(i) => i.to_string(),
            Label::Text(s) => s.clone(),
        }
    }

    /// The label a name stands for: a decimal integer in canonical form is
    /// an integer label, anything else a text label.
    pub(super) fn from_name(s: &str) -> Label {
        match s.parse::<i64>() {
            Ok(i) if i.to_string() == s => Label::Int(i),
            _ => Label::Text(s.to_string()),
        }
    }

    pub(super) fn to_value(&self) -> Value {
        match self {
            Label::Int(i) => Value::Integer((*i).into()),
            Label::Text(s) => Value::Text(s.clone()),
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Int(i) => write!(f, "{i}"),
            Label::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A decoded header map, in wire order, indexed by label.
pub(super) struct HeaderMap {
    pub(super) entries: Vec<(Label, Value)>,
    index: HashMap<Label, usize>,
}

impl HeaderMap {
    pub(super) fn empty() -> HeaderMap {
        HeaderMap {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Decodes the CBOR map `b` (a single well-formed item); labels must be
    /// integers or text strings and unique.
    pub(super) fn decode(b: &[u8], what: &str) -> Result<HeaderMap, EnvelopeError> {
        let Value::Map(raw) = decode_value(b, what)? else {
            return Err(bad(format!("{what} is not a map")));
        };
        let mut map = HeaderMap::empty();
        for (k, v) in raw {
            let label = match k {
                Value::Integer(i) => Label::Int(
                    i64::try_from(i)
                        .map_err(|_| bad(format!("{what}: integer label out of range")))?,
                ),
                Value::Text(s) => Label::Text(s),
                _ => {
                    return Err(bad(format!(
                        "{what}: labels must be integers or text strings"
                    )))
                }
            };
            if map.index.contains_key(&label) {
                return Err(bad(format!("{what}: duplicate label {label}")));
            }
            map.index.insert(label.clone(), map.entries.len());
            map.entries.push((label, v));
        }
        Ok(map)
    }

    pub(super) fn get(&self, label: &Label) -> Option<&Value> {
        self.index.get(label).map(|&i| &self.entries[i].1)
    }

    pub(super) fn int(&self, label: i64) -> Option<&Value> {
        self.get(&Label::Int(label))
    }

    pub(super) fn text(&self, label: &str) -> Option<&Value> {
        self.get(&Label::Text(label.to_string()))
    }
}

/// `i` in decimal.
pub(super) fn int_str(i: Integer) -> String {
    i128::from(i).to_string()
}
