//! What can go wrong with a profile, and how it is reported.
//!
//! Loading fails with a [`ProfileError`]. Semantic problems are collected, not stopped at: one
//! [`ProfileError::Invalid`] (the profile on its own) or [`ProfileError::Deployment`] (the
//! profile with its ports and lcores) carries every [`Violation`] found, so an operator fixes a
//! file in one pass. Each violation names the field path (`queues.rx_descriptors`), the value,
//! the rule it breaks and the fix. Things that work but are probably not what was meant are
//! [`Warning`]s, returned next to the result for the caller to log.

use std::fmt;
use std::path::PathBuf;

/// Where a profile came from; every error names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A profile shipped in this crate (`profiles/<name>.toml`).
    Builtin(&'static str),
    /// A profile file given by path.
    File(PathBuf),
    /// Text handed to [`Profile::from_toml_str`](crate::Profile::from_toml_str), with the
    /// caller's label (a config key, "test", …).
    Text(String),
}

impl Default for Origin {
    fn default() -> Self {
        Origin::Text("inline".into())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin(name) => write!(f, "builtin NIC profile {name:?}"),
            Origin::File(path) => write!(f, "NIC profile file {}", path.display()),
            Origin::Text(label) => write!(f, "NIC profile {label}"),
        }
    }
}

/// One broken rule: which field, which value, what is wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path of the field, as written in the TOML (`queues.rx_descriptors`,
    /// `ports.wan.devargs.iface`).
    pub field: String,
    /// The offending value as TOML would spell it; `None` when the field is missing.
    pub value: Option<String>,
    /// The rule, stated with the numbers that matter.
    pub problem: String,
    /// What to change.
    pub fix: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {v}: {}; {}", self.field, self.problem, self.fix),
            None => write!(
                f,
                "{} is not set: {}; {}",
                self.field, self.problem, self.fix
            ),
        }
    }
}

/// A setting that works but is probably not what was meant (logged by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Dotted field path, as in [`Violation::field`].
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a profile could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("reading {} failed: {source}; check the path, or name a builtin profile ({})", Origin::File(.path.clone()), .builtins.join(", "))]
    Read {
        path: PathBuf,
        builtins: Vec<&'static str>,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, a field of the wrong type, or an unknown field (typo). The TOML error carries
    /// the line, the column and the offending text.
    #[error("{origin} is not a valid profile: {source}")]
    Parse {
        origin: Origin,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("there is no builtin NIC profile {name:?}; builtin profiles: {}; or give the path of a profile file", .builtins.join(", "))]
    UnknownBuiltin {
        name: String,
        builtins: Vec<&'static str>,
    },
    /// The profile breaks rules on its own.
    #[error("{origin} is invalid:{}", bullets(.violations))]
    Invalid {
        origin: Origin,
        violations: Vec<Violation>,
    },
    /// The ports, lcores or extra EAL arguments do not fit the profile.
    #[error("the ports and lcores given do not fit {origin}:{}", bullets(.violations))]
    Deployment {
        origin: Origin,
        violations: Vec<Violation>,
    },
}

impl ProfileError {
    /// The violations of an [`Invalid`](Self::Invalid) or [`Deployment`](Self::Deployment)
    /// error (empty for the others).
    pub fn violations(&self) -> &[Violation] {
        match self {
            ProfileError::Invalid { violations, .. }
            | ProfileError::Deployment { violations, .. } => violations,
            _ => &[],
        }
    }
}

/// One violation stays on the line; several become an indented list.
fn bullets(violations: &[Violation]) -> String {
    match violations {
        [one] => format!(" {one}"),
        many => many.iter().map(|v| format!("\n  - {v}")).collect(),
    }
}

/// A violation's value: text, or `None` for a missing field.
pub(crate) trait FieldValue {
    fn into_value(self) -> Option<String>;
}

impl FieldValue for &str {
    fn into_value(self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl FieldValue for String {
    fn into_value(self) -> Option<String> {
        Some(self)
    }
}

impl FieldValue for Option<String> {
    fn into_value(self) -> Option<String> {
        self
    }
}

/// Collects violations and warnings while a check walks a profile.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) violations: Vec<Violation>,
    pub(crate) warnings: Vec<Warning>,
}

impl Findings {
    pub(crate) fn fail(
        &mut self,
        field: impl Into<String>,
        value: impl FieldValue,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.violations.push(Violation {
            field: field.into(),
            value: value.into_value(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub(crate) fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            field: field.into(),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_violation_stays_on_the_line_several_become_a_list() {
        let v = |field: &str| Violation {
            field: field.into(),
            value: Some("1".into()),
            problem: "is wrong".into(),
            fix: "set 2".into(),
        };
        let one = ProfileError::Invalid {
            origin: Origin::Builtin("ring"),
            violations: vec![v("mtu")],
        };
        assert_eq!(
            one.to_string(),
            "builtin NIC profile \"ring\" is invalid: mtu = 1: is wrong; set 2"
        );
        let two = ProfileError::Deployment {
            origin: Origin::File("/etc/nic.toml".into()),
            violations: vec![v("mtu"), v("queues.burst")],
        };
        assert_eq!(
            two.to_string(),
            "the ports and lcores given do not fit NIC profile file /etc/nic.toml:\n  \
             - mtu = 1: is wrong; set 2\n  - queues.burst = 1: is wrong; set 2"
        );
        let missing = Violation {
            field: "ports.wan.devargs.iface".into(),
            value: None,
            problem: "p".into(),
            fix: "f".into(),
        };
        assert_eq!(
            missing.to_string(),
            "ports.wan.devargs.iface is not set: p; f"
        );
    }
}
