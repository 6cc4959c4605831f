//! Verification levels: the predefined levels, the validations and their
//! actions, and a statement's effective level with its overrides.

use super::*;

/// The predefined verification levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Every validation enforced.
    Strict,
    /// Integrity and authenticity enforced; the rest logged.
    Permissive,
    /// Integrity enforced; the rest logged.
    Audit,
    /// No verification at all.
    Skip,
}

impl Level {
    /// Every level.
    pub const ALL: [Level; 4] = [Level::Strict, Level::Permissive, Level::Audit, Level::Skip];

    /// The name used in policies.
    pub fn name(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        }
    }

    /// The level with this exact name (case-sensitive, as notation).
    pub fn from_name(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The validations of signature verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validation {
    /// The artifact and the signature are unaltered.
    Integrity,
    /// The signer is trusted (trust store and trusted identities).
    Authenticity,
    /// The signature was made while the certificates were valid.
    AuthenticTimestamp,
    /// The signature's expiry time has not passed.
    Expiry,
    /// No certificate of the chain is revoked.
    Revocation,
}

impl Validation {
    /// Every validation, in the specification's table order.
    pub const ALL: [Validation; 5] = [
        Validation::Integrity,
        Validation::Authenticity,
        Validation::AuthenticTimestamp,
        Validation::Expiry,
        Validation::Revocation,
    ];

    /// The name used in `override` maps.
    pub fn name(self) -> &'static str {
        match self {
            Validation::Integrity => "integrity",
            Validation::Authenticity => "authenticity",
            Validation::AuthenticTimestamp => "authenticTimestamp",
            Validation::Expiry => "expiry",
            Validation::Revocation => "revocation",
        }
    }

    /// The validation with this exact name.
    pub fn from_name(s: &str) -> Option<Validation> {
        Validation::ALL.into_iter().find(|v| v.name() == s)
    }

    /// The actions an `override` may set for this validation: integrity is
    /// never overridable (without it nothing else means anything); only
    /// revocation may be skipped (it may need the network, and offline
    /// verification is a legitimate need); the others may be enforced or
    /// logged.
    pub fn overridable_to(self) -> &'static [Action] {
        match self {
            Validation::Integrity => &[],
            Validation::Revocation => &[Action::Enforce, Action::Log, Action::Skip],
            _ => &[Action::Enforce, Action::Log],
        }
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens to a validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A failure fails the verification.
    Enforce,
    /// A failure is logged and verification continues.
    Log,
    /// The validation is not performed.
    Skip,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 3] = [Action::Enforce, Action::Log, Action::Skip];

    /// The name used in `override` maps.
    pub fn name(self) -> &'static str {
        match self {
            Action::Enforce => "enforce",
            Action::Log => "log",
            Action::Skip => "skip",
        }
    }

    /// The action with this exact name.
    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The effective action of every validation for one statement: its level's
/// preset (the specification's table) with the statement's overrides
/// applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationLevel {
    /// The level the statement names.
    pub level: Level,
    /// Integrity: enforced, except at `skip`.
    pub integrity: Action,
    /// Authenticity.
    pub authenticity: Action,
    /// Authentic timestamp.
    pub authentic_timestamp: Action,
    /// Expiry.
    pub expiry: Action,
    /// Revocation.
    pub revocation: Action,
}

impl VerificationLevel {
    /// The specification's table for a level, without overrides.
    pub fn preset(level: Level) -> Self {
        use Action::{Enforce as E, Log as L, Skip as S};
        let (i, a, t, x, r) = match level {
            Level::Strict => (E, E, E, E, E),
            Level::Permissive => (E, E, L, L, L),
            Level::Audit => (E, L, L, L, L),
            Level::Skip => (S, S, S, S, S),
        };
        VerificationLevel {
            level,
            integrity: i,
            authenticity: a,
            authentic_timestamp: t,
            expiry: x,
            revocation: r,
        }
    }

    /// Resolves a `signatureVerification` level name and `override` map.
    /// The error is the reason, without the statement's name.
    pub fn resolve(level: &str, overrides: &BTreeMap<String, String>) -> Result<Self, String> {
        if level.is_empty() {
            return Err(
                "signatureVerification.level is missing (strict, permissive, audit or skip)"
                    .to_string(),
            );
        }
        let base = Level::from_name(level).ok_or_else(|| {
            format!("unknown verification level {level:?} (strict, permissive, audit or skip)")
        })?;
        let mut out = VerificationLevel::preset(base);
        if overrides.is_empty() {
            return Ok(out);
        }
        if base == Level::Skip {
            return Err("the skip level cannot be customized with override".to_string());
        }
        for (key, value) in overrides {
            let v = Validation::from_name(key).ok_or_else(|| {
                format!(
                    "override names unknown validation {key:?} (authenticity, authenticTimestamp, expiry or revocation)"
                )
            })?;
            let a = Action::from_name(value).ok_or_else(|| {
                format!("override sets {key} to unknown action {value:?} (enforce, log or skip)")
            })?;
            let allowed = v.overridable_to();
            if allowed.is_empty() {
                return Err(format!("{key} cannot be overridden"));
            }
            if !allowed.contains(&a) {
                let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
                return Err(format!(
                    "override cannot set {key} to {value} (allowed: {})",
                    names.join(", ")
                ));
            }
            *out.action_mut(v) = a;
        }
        Ok(out)
    }

    /// The action for one validation.
    pub fn action(&self, v: Validation) -> Action {
        match v {
            Validation::Integrity => self.integrity,
            Validation::Authenticity => self.authenticity,
            Validation::AuthenticTimestamp => self.authentic_timestamp,
            Validation::Expiry => self.expiry,
            Validation::Revocation => self.revocation,
        }
    }

    fn action_mut(&mut self, v: Validation) -> &mut Action {
        match v {
            Validation::Integrity => &mut self.integrity,
            Validation::Authenticity => &mut self.authenticity,
            Validation::AuthenticTimestamp => &mut self.authentic_timestamp,
            Validation::Expiry => &mut self.expiry,
            Validation::Revocation => &mut self.revocation,
        }
    }

    /// Whether overrides changed anything from the level's preset.
    pub fn is_custom(&self) -> bool {
        *self != VerificationLevel::preset(self.level)
    }
}

/// When the timestamp countersignature is verified (when a `tsa` store is
/// configured at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerifyTimestamp {
    /// Always (the default).
    #[default]
    Always,
    /// Only when some certificate of the signing chain has expired.
    AfterCertExpiry,
}

impl VerifyTimestamp {
    /// Parses the policy value. Absent or empty means `always`: notation
    /// cannot tell an empty string from an absent member, so it accepts
    /// both, and so does this.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or("") {
            "" | "always" => Ok(VerifyTimestamp::Always),
            "afterCertExpiry" => Ok(VerifyTimestamp::AfterCertExpiry),
            other => Err(format!(
                "verifyTimestamp must be \"always\" or \"afterCertExpiry\", not {other:?}"
            )),
        }
    }

    /// The policy value.
    pub fn name(self) -> &'static str {
        match self {
            VerifyTimestamp::Always => "always",
            VerifyTimestamp::AfterCertExpiry => "afterCertExpiry",
        }
    }
}
