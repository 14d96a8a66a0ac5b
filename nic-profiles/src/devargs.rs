//! Device arguments (`key=value` pairs after the device on the EAL command line) and how they
//! are written for DPDK.
//!
//! In TOML they are a table of strings, integers and booleans. They render as DPDK's kvargs
//! parser expects: integers in decimal, strings as they are, booleans as `1`/`0`, except for
//! the few keys whose PMD parses `yes`/`no` (memif's `socket-abstract` and `zero-copy`; see
//! [`DevargKind::YesNo`]).
//!
//! **Order:** a device's arguments are rendered as the port's own devargs first, then the
//! profile's `driver.devargs`, each group sorted by key. Sorting makes the command line
//! independent of how a file was edited (and of TOML table order, which serde does not keep);
//! putting the per-port keys first keeps the device's identity (`iface=…`, `socket=…`) next to
//! its name. DPDK itself does not care about the order.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// One devarg value as written in TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevargValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl DevargValue {
    /// The text DPDK gets, for a key of `kind` (`None`: a key of an unknown PMD).
    pub fn render(&self, kind: Option<DevargKind>) -> String {
        match (self, kind) {
            (DevargValue::Bool(b), Some(DevargKind::YesNo)) => {
                if *b { "yes" } else { "no" }.to_owned()
            }
            (DevargValue::Bool(b), _) => u8::from(*b).to_string(),
            (DevargValue::Int(i), _) => i.to_string(),
            (DevargValue::Text(s), _) => s.clone(),
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            DevargValue::Int(i) => Some(*i),
            DevargValue::Bool(b) => Some(i64::from(*b)),
            DevargValue::Text(_) => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            DevargValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// TOML spelling, for error messages.
impl fmt::Display for DevargValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevargValue::Bool(b) => write!(f, "{b}"),
            DevargValue::Int(i) => write!(f, "{i}"),
            DevargValue::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<bool> for DevargValue {
    fn from(b: bool) -> Self {
        DevargValue::Bool(b)
    }
}

impl From<i64> for DevargValue {
    fn from(i: i64) -> Self {
        DevargValue::Int(i)
    }
}

impl From<&str> for DevargValue {
    fn from(s: &str) -> Self {
        DevargValue::Text(s.to_owned())
    }
}

impl From<String> for DevargValue {
    fn from(s: String) -> Self {
        DevargValue::Text(s)
    }
}

impl<'de> Deserialize<'de> for DevargValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DevargValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an integer or a boolean (DPDK devargs are key=value text)")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<DevargValue, E> {
                Ok(DevargValue::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<DevargValue, E> {
                Ok(DevargValue::Int(i))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<DevargValue, E> {
                i64::try_from(u)
                    .map(DevargValue::Int)
                    .map_err(|_| E::custom(format!("{u} is too large for a devarg")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DevargValue, E> {
                Ok(DevargValue::Text(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The devargs of a device: key → value, iterated in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Devargs(BTreeMap<String, DevargValue>);

impl Devargs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`, returning the value it replaces.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<DevargValue>,
    ) -> Option<DevargValue> {
        self.0.insert(key.into(), value.into())
    }

    pub fn get(&self, key: &str) -> Option<&DevargValue> {
        self.0.get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DevargValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<DevargValue>> FromIterator<(K, V)> for Devargs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Parses the command-line form `iface=gn1-wan,qpairs=1`: decimal values become integers,
/// `true`/`false` booleans, anything else text.
impl FromStr for Devargs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Devargs::new();
        for pair in s.split(',').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!(
                    "devarg {pair:?} has no value; write key=value pairs separated by commas, e.g. iface=gn1-wan,qpairs=1"
                ));
            };
            let value = match v {
                "true" => DevargValue::Bool(true),
                "false" => DevargValue::Bool(false),
                _ => v
                    .parse::<i64>()
                    .map_or_else(|_| DevargValue::Text(v.to_owned()), DevargValue::Int),
            };
            if out.insert(k, value).is_some() {
                return Err(format!("devarg {k:?} is given twice in {s:?}"));
            }
        }
        Ok(out)
    }
}

/// What values a known devarg takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevargKind {
    /// A decimal integer (a boolean renders as 1/0).
    Int,
    /// 0 or 1 (or a boolean).
    Flag,
    /// `yes`/`no` (or a boolean): the PMD matches these words, not 1/0.
    YesNo,
    /// Free text (names, paths, masks like `0x1f`).
    Text,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// A devarg a PMD accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevargSpec {
    pub key: &'static str,
    pub kind: DevargKind,
}

/// Checks a key's spelling: DPDK's kvargs split on `,` and `=`.
pub(crate) fn key_problem(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (!ok).then(|| format!("devarg key {key:?} must be letters, digits, '_' or '-'"))
}

/// Checks a value against its kind; returns the problem and a fix.
pub(crate) fn value_problem(
    key: &str,
    value: &DevargValue,
    kind: Option<DevargKind>,
) -> Option<(String, String)> {
    if let DevargValue::Text(s) = value {
        if s.is_empty() {
            return Some((
                "an empty value".into(),
                format!("give {key} a value or remove it"),
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| matches!(c, ',' | '=') || c.is_whitespace())
        {
            return Some((
                format!("contains {c:?}, which DPDK's devargs parser treats as a separator"),
                format!("use a {key} value without ',', '=' or spaces"),
            ));
        }
    }
    match (kind?, value) {
        (DevargKind::Int, DevargValue::Text(_)) => Some((
            "must be an integer".into(),
            format!("write it without quotes, e.g. {key} = 1"),
        )),
        (DevargKind::Flag, DevargValue::Int(i)) if !matches!(i, 0 | 1) => Some((
            "must be 0 or 1".into(),
            format!("set {key} = true or {key} = false"),
        )),
        (DevargKind::Flag, DevargValue::Text(_)) => Some((
            "must be 0/1 or true/false".into(),
            format!("set {key} = true or {key} = false"),
        )),
        (DevargKind::YesNo, DevargValue::Text(s)) if !matches!(s.as_str(), "yes" | "no") => Some((
            "must be yes or no".into(),
            format!("set {key} = true or {key} = false"),
        )),
        (DevargKind::YesNo, DevargValue::Int(_)) => Some((
            "must be yes or no; this PMD does not read 1/0 here".into(),
            format!("set {key} = true or {key} = false"),
        )),
        (DevargKind::Text, DevargValue::Bool(_)) => Some((
            "must be text".into(),
            format!("quote it, e.g. {key} = \"…\""),
        )),
        (DevargKind::OneOf(words), v) if !words.contains(&v.as_text().unwrap_or("")) => Some((
            format!("must be one of {}", words.join(", ")),
            format!("set {key} = \"{}\"", words[0]),
        )),
        _ => None,
    }
}

/// Renders `first` then `second`, each in key order, as `k=v,k=v` (empty when both are).
pub(crate) fn render_pairs(
    first: &Devargs,
    second: &Devargs,
    kind: impl Fn(&str) -> Option<DevargKind>,
) -> String {
    first
        .iter()
        .chain(second.iter())
        .map(|(k, v)| format!("{k}={}", v.render(kind(k))))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_dpdk_expects() {
        assert_eq!(DevargValue::Bool(true).render(Some(DevargKind::Flag)), "1");
        assert_eq!(DevargValue::Bool(false).render(None), "0");
        assert_eq!(
            DevargValue::Bool(true).render(Some(DevargKind::YesNo)),
            "yes"
        );
        assert_eq!(
            DevargValue::Bool(false).render(Some(DevargKind::YesNo)),
            "no"
        );
        assert_eq!(DevargValue::Int(-5).render(Some(DevargKind::Int)), "-5");
        assert_eq!(DevargValue::from("/run/x.sock").render(None), "/run/x.sock");
    }

    #[test]
    fn pairs_render_port_keys_first_then_profile_keys_each_sorted() {
        let port: Devargs = [("iface", "gn1-wan")].into_iter().collect();
        let mut profile = Devargs::new();
        profile.insert("qpairs", 1);
        profile.insert("framesz", 2048);
        profile.insert("qdisc_bypass", true);
        profile.insert("blocksz", 4096);
        assert_eq!(
            render_pairs(&port, &profile, |_| None),
            "iface=gn1-wan,blocksz=4096,framesz=2048,qdisc_bypass=1,qpairs=1"
        );
        assert_eq!(render_pairs(&Devargs::new(), &Devargs::new(), |_| None), "");
    }

    #[test]
    fn toml_tables_become_devargs_and_other_types_are_refused() {
        let d: Devargs = toml::from_str("a = 1\nb = true\nc = \"x\"").unwrap();
        assert_eq!(d.get("a"), Some(&DevargValue::Int(1)));
        assert_eq!(d.get("b"), Some(&DevargValue::Bool(true)));
        assert_eq!(d.get("c"), Some(&DevargValue::Text("x".into())));
        let err = toml::from_str::<Devargs>("a = 1.5")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a string, an integer or a boolean"),
            "{err}"
        );
    }

    #[test]
    fn command_line_form_parses() {
        let d: Devargs = "iface=gn1-wan,qpairs=2,copy=true".parse().unwrap();
        assert_eq!(d.get("iface"), Some(&DevargValue::from("gn1-wan")));
        assert_eq!(d.get("qpairs"), Some(&DevargValue::Int(2)));
        assert_eq!(d.get("copy"), Some(&DevargValue::Bool(true)));
        assert!("iface".parse::<Devargs>().is_err());
        assert!("a=1,a=2".parse::<Devargs>().is_err());
    }

    #[test]
    fn values_are_checked_against_their_kind() {
        let p = |v: DevargValue, k| value_problem("k", &v, Some(k)).map(|(p, _)| p);
        assert_eq!(
            p("x".into(), DevargKind::Int).as_deref(),
            Some("must be an integer")
        );
        assert_eq!(
            p(DevargValue::Int(2), DevargKind::Flag).as_deref(),
            Some("must be 0 or 1")
        );
        assert_eq!(p(DevargValue::Bool(true), DevargKind::Flag), None);
        assert_eq!(p("yes".into(), DevargKind::YesNo), None);
        assert_eq!(
            p("client".into(), DevargKind::OneOf(&["server", "client"])),
            None
        );
        assert_eq!(
            p("peer".into(), DevargKind::OneOf(&["server", "client"])).as_deref(),
            Some("must be one of server, client")
        );
        assert!(
            p("a,b".into(), DevargKind::Text)
                .unwrap()
                .contains("separator")
        );
        assert!(key_problem("socket-abstract").is_none());
        assert!(key_problem("bad key").is_some());
    }
}
