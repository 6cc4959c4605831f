//! Distinguished names (RFC 4514, as notation reads them) and the
//! `trustedIdentities` entries built on them.

use super::*;

/// Why a distinguished name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    /// Nothing but spaces.
    #[error("the distinguished name is empty")]
    Empty,
    /// An RDN without `type=value` (e.g. `,,`, a trailing `,`, `CN`).
    #[error("incomplete attribute at byte {at}: expected type=value")]
    Incomplete {
        /// Byte offset in the DN.
        at: usize,
    },
    /// The attribute type is neither a keyword nor a dotted OID.
    #[error("invalid attribute type {0:?}")]
    InvalidType(String),
    /// An attribute with an empty value.
    #[error("attribute {0} has an empty value")]
    EmptyValue(String),
    /// A `#`-prefixed (hex BER) value, which notation does not support.
    #[error("attribute {0} has a #-encoded (BER) value, which is not supported")]
    HexValue(String),
    /// A `\` not followed by a special character or two hex digits.
    #[error("invalid escape at byte {at}")]
    BadEscape {
        /// Byte offset in the DN.
        at: usize,
    },
    /// Hex escapes that do not form UTF-8.
    #[error("attribute {0} value is not valid UTF-8 once unescaped")]
    NotUtf8(String),
    /// `A=x+B=y`: multi-valued RDNs are not supported (by notation either).
    #[error("multi-valued RDN ({0}+...) is not supported")]
    MultiValued(String),
    /// The same attribute type twice.
    #[error("attribute {0} appears more than once")]
    Duplicate(String),
    /// A trusted identity without C, ST (or S) or O.
    #[error("mandatory attribute {0} is missing (C, ST or S, and O are required)")]
    MissingMandatory(&'static str),
}

/// A distinguished name: (type, value) attribute pairs, one per RDN, in
/// written order. Types are normalized so that spellings of one attribute
/// compare equal: keywords upper-cased (RFC 4514 keywords are
/// case-insensitive), `S` read as `ST` (the specification allows both),
/// well-known OIDs replaced by their keyword. Values are unescaped and
/// compared exactly, as notation compares them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DistinguishedName {
    attributes: Vec<(String, String)>,
}

/// Keywords for the OIDs of the attributes certificate subjects commonly
/// carry (RFC 4514 section 3 and Go's `pkix.Name`).
const OID_KEYWORDS: [(&str, &str); 11] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.17", "POSTALCODE"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The canonical form of an attribute type name (see
/// [`DistinguishedName`]); `None` if it is neither a keyword nor an OID.
pub fn normalize_attribute_type(ty: &str) -> Option<String> {
    let ty = ty.trim();
    let first = ty.bytes().next()?;
    if first.is_ascii_alphabetic() {
        if !ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        let up = ty.to_ascii_uppercase();
        return Some(if up == "S" { "ST".to_string() } else { up });
    }
    // numericoid: number 1*("." number), number without leading zeros.
    let parts: Vec<&str> = ty.split('.').collect();
    let numeric = parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    if !numeric {
        return None;
    }
    Some(
        OID_KEYWORDS
            .iter()
            .find(|(oid, _)| *oid == ty)
            .map_or_else(|| ty.to_string(), |(_, k)| k.to_string()),
    )
}

impl DistinguishedName {
    /// Parses an RFC 4514 string representation, with the leniencies
    /// notation has (it parses with go-ldap): spaces around types and values
    /// are ignored unless escaped, `;` separates RDNs like `,`, and `"`,
    /// `<`, `>` are accepted unescaped. Escapes are `\` followed by one of
    /// `` "#+,;<=>\`` or a space, or by two hex digits (one UTF-8 byte).
    ///
    /// Refused: multi-valued RDNs (`+`), a type given twice (`S` and `ST`
    /// are the same type), empty values, `#`-encoded values (notation
    /// refuses them), and anything malformed.
    pub fn parse(s: &str) -> Result<Self, DnError> {
        let b = s.as_bytes();
        if b.iter().all(|c| *c == b' ') {
            return Err(DnError::Empty);
        }
        let mut attributes: Vec<(String, String)> = Vec::new();
        let mut i = 0;
        loop {
            // Type: up to '='.
            let type_start = i;
            while i < b.len() && b[i] != b'=' {
                if matches!(b[i], b',' | b';' | b'+') {
                    return Err(DnError::Incomplete { at: type_start });
                }
                i += 1;
            }
            if i >= b.len() {
                return Err(DnError::Incomplete { at: type_start });
            }
            let raw_type = s[type_start..i].trim_matches(' ');
            if raw_type.is_empty() {
                return Err(DnError::Incomplete { at: type_start });
            }
            let ty = normalize_attribute_type(raw_type)
                .ok_or_else(|| DnError::InvalidType(raw_type.to_string()))?;
            i += 1; // '='

            // Value: up to an unescaped ',', ';' or '+'.
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i < b.len() && b[i] == b'#' {
                return Err(DnError::HexValue(ty));
            }
            let mut value: Vec<u8> = Vec::new();
            let mut trailing_spaces = 0usize;
            let mut separator = None;
            while i < b.len() {
                let c = b[i];
                match c {
                    b'\\' => {
                        let next = *b.get(i + 1).ok_or(DnError::BadEscape { at: i })?;
                        if matches!(
                            next,
                            b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\'
                        ) {
                            value.push(next);
                            i += 2;
                        } else {
                            let hex = s.get(i + 1..i + 3).ok_or(DnError::BadEscape { at: i })?;
                            let byte = u8::from_str_radix(hex, 16)
                                .ok()
                                .filter(|_| hex.bytes().all(|h| h.is_ascii_hexdigit()))
                                .ok_or(DnError::BadEscape { at: i })?;
                            value.push(byte);
                            i += 3;
                        }
                        trailing_spaces = 0;
                    }
                    b',' | b';' | b'+' => {
                        separator = Some(c);
                        i += 1;
                        break;
                    }
                    b' ' => {
                        value.push(c);
                        trailing_spaces += 1;
                        i += 1;
                    }
                    _ => {
                        value.push(c);
                        trailing_spaces = 0;
                        i += 1;
                    }
                }
            }
            value.truncate(value.len() - trailing_spaces);
            if value.is_empty() {
                return Err(DnError::EmptyValue(ty));
            }
            let value = String::from_utf8(value).map_err(|_| DnError::NotUtf8(ty.clone()))?;
            if separator == Some(b'+') {
                return Err(DnError::MultiValued(ty));
            }
            if attributes.iter().any(|(t, _)| *t == ty) {
                return Err(DnError::Duplicate(ty));
            }
            attributes.push((ty, value));
            match separator {
                None => break,
                Some(_) if i >= b.len() || b[i..].iter().all(|c| *c == b' ') => {
                    // A trailing separator leaves an empty RDN.
                    return Err(DnError::Incomplete { at: i });
                }
                Some(_) => {}
            }
        }
        Ok(DistinguishedName { attributes })
    }

    /// Parses the DN of an `x509.subject:` trusted identity: a valid DN
    /// that has C, ST (or S) and O, the specification's minimum (a subject
    /// that pins less than country, state and organization would trust too
    /// broad a set of certificates from a public CA).
    pub fn parse_identity(s: &str) -> Result<Self, DnError> {
        let dn = DistinguishedName::parse(s)?;
        for m in ["C", "ST", "O"] {
            if dn.get(m).is_none() {
                return Err(DnError::MissingMandatory(m));
            }
        }
        Ok(dn)
    }

    /// Builds a DN from (type, value) pairs such as a certificate's subject
    /// attributes, normalizing the types. `None` if a type is invalid or
    /// repeated, or a value is empty.
    pub fn from_attributes(attrs: &[(String, String)]) -> Option<Self> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (t, v) in attrs {
            let t = normalize_attribute_type(t)?;
            if v.is_empty() || out.iter().any(|(o, _)| *o == t) {
                return None;
            }
            out.push((t, v.clone()));
        }
        Some(DistinguishedName { attributes: out })
    }

    /// The (normalized type, value) pairs, in written order.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// The value of an attribute (type normalized first).
    pub fn get(&self, ty: &str) -> Option<&str> {
        let ty = normalize_attribute_type(ty)?;
        self.attributes
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| v.as_str())
    }

    /// Whether every attribute of `self` is in `other` with the same value:
    /// how a trusted identity matches a certificate subject.
    pub fn is_subset_of(&self, other: &DistinguishedName) -> bool {
        self.attributes
            .iter()
            .all(|(t, v)| other.attributes.iter().any(|(ot, ov)| ot == t && ov == v))
    }

    /// Whether some certificate subject could match both DNs: they agree on
    /// every attribute type they both have. This is the specification's
    /// definition of overlapping identities ("there exists a certificate
    /// for which multiple DNs evaluate true"); it covers the subset case
    /// that notation checks, and also two identities that pin different
    /// optional attributes under the same C, ST and O.
    pub fn overlaps(&self, other: &DistinguishedName) -> bool {
        self.attributes.iter().all(|(t, v)| {
            other
                .attributes
                .iter()
                .find(|(ot, _)| ot == t)
                .is_none_or(|(_, ov)| ov == v)
        })
    }
}

impl fmt::Display for DistinguishedName {
    /// RFC 4514 form, `, `-separated, escaping what needs escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (t, v)) in self.attributes.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{t}=")?;
            let last = v.chars().count().saturating_sub(1);
            for (k, c) in v.chars().enumerate() {
                match c {
                    ' ' if k == 0 || k == last => f.write_str("\\ ")?,
                    '#' if k == 0 => f.write_str("\\#")?,
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => write!(f, "\\{c}")?,
                    c if c.is_control() => {
                        let mut buf = [0u8; 4];
                        for byte in c.encode_utf8(&mut buf).bytes() {
                            write!(f, "\\{byte:02x}")?;
                        }
                    }
                    c => write!(f, "{c}")?,
                }
            }
        }
        Ok(())
    }
}

/// One entry of `trustedIdentities`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrustedIdentity {
    /// `*`: any signer whose chain leads to a certificate of the policy's
    /// `ca`/`signingAuthority` stores.
    Any,
    /// `x509.subject: <DN>`: signers whose leaf certificate subject contains
    /// all these attributes.
    X509Subject(DistinguishedName),
}

impl TrustedIdentity {
    /// Parses an entry. Only `*` and `x509.subject:` are accepted: notation
    /// accepts other `prefix:value` entries at load time but ignores them
    /// when verifying (they are meant for plugins), so a policy relying on
    /// one could never authenticate a signer here. Refusing it says so when
    /// the policy is loaded rather than at every verification.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry.is_empty() {
            return Err("empty trusted identity".to_string());
        }
        if entry == WILDCARD {
            return Ok(TrustedIdentity::Any);
        }
        let (prefix, value) = entry.split_once(':').ok_or_else(|| {
            format!("missing separator: the format is \"{X509_SUBJECT}: <DN>\" or \"*\"")
        })?;
        if prefix != X509_SUBJECT {
            return Err(format!(
                "unsupported identity type {prefix:?} (only {X509_SUBJECT:?} and \"*\")"
            ));
        }
        if value.trim_matches(' ').is_empty() {
            return Err("x509.subject without a distinguished name".to_string());
        }
        DistinguishedName::parse_identity(value)
            .map(TrustedIdentity::X509Subject)
            .map_err(|e| format!("invalid distinguished name: {e}"))
    }
}

impl fmt::Display for TrustedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedIdentity::Any => f.write_str(WILDCARD),
            TrustedIdentity::X509Subject(dn) => write!(f, "{X509_SUBJECT}: {dn}"),
        }
    }
}
