//! The WAN profiles (the paper's five testbed setups) and the WAN link a
//! testbed can emulate between GN1 and GN2.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::line::LineConfig;

/// A named WAN setup, by the gateway-to-gateway round-trip time the paper
/// measured (SciStream, HPDC '22, §5.1–5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WanProfile {
    /// Today's direct veth between GN1 and GN2: no emulation.
    None,
    /// Same site, 0.44 ms.
    Lan,
    /// Metropolitan area, 5.5 ms.
    Metro,
    /// Short WAN, 24.3 ms.
    ShortWan,
    /// WAN, 58.2 ms.
    Wan,
    /// Long WAN, 143.7 ms.
    LongWan,
}

impl WanProfile {
    /// Every profile, shortest RTT first.
    pub const ALL: [WanProfile; 6] = [
        WanProfile::None,
        WanProfile::Lan,
        WanProfile::Metro,
        WanProfile::ShortWan,
        WanProfile::Wan,
        WanProfile::LongWan,
    ];

    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            WanProfile::None => "none",
            WanProfile::Lan => "lan",
            WanProfile::Metro => "metro",
            WanProfile::ShortWan => "shortwan",
            WanProfile::Wan => "wan",
            WanProfile::LongWan => "longwan",
        }
    }

    /// The gateway-to-gateway round-trip time the profile emulates (zero
    /// for `none`).
    pub fn rtt(self) -> Duration {
        let us = match self {
            WanProfile::None => 0,
            WanProfile::Lan => 440,
            WanProfile::Metro => 5_500,
            WanProfile::ShortWan => 24_300,
            WanProfile::Wan => 58_200,
            WanProfile::LongWan => 143_700,
        };
        Duration::from_micros(us)
    }

    /// The delay added in each direction: half the RTT.
    pub fn one_way_delay(self) -> Duration {
        self.rtt() / 2
    }

    /// The emulated link of this profile with no rate cap and no loss;
    /// `None` for [`WanProfile::None`].
    pub fn link(self) -> Option<WanLink> {
        (self != WanProfile::None).then(|| WanLink {
            profile: Some(self),
            delay: self.one_way_delay(),
            rate_bps: None,
            loss: 0.0,
            limit_bytes: None,
            seed: 1,
        })
    }

    /// The valid names, comma-separated, for error messages and help texts.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for WanProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown WAN profile {name:?}; valid profiles: {valid}", valid = WanProfile::names())]
pub struct UnknownProfile {
    /// The name given.
    pub name: String,
}

impl FromStr for WanProfile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.name() == lower)
            .ok_or_else(|| UnknownProfile { name: s.to_owned() })
    }
}

/// The emulated WAN between GN1 and GN2: the same delay, rate cap and loss
/// in both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct WanLink {
    /// The profile this link came from, if any (for reports).
    pub profile: Option<WanProfile>,
    /// One-way delay, added in each direction.
    pub delay: Duration,
    /// Rate cap per direction in bit/s; `None` for no cap.
    pub rate_bps: Option<u64>,
    /// Frame-loss probability per direction, in `[0, 1]`.
    pub loss: f64,
    /// Queue limit per direction in bytes; `None` for the BDP bound.
    pub limit_bytes: Option<usize>,
    /// Seed of the loss RNG (the b → a direction uses a derived seed).
    pub seed: u64,
}

// `loss` is validated to lie in [0, 1] (never NaN) before a link is used, so
// equality is total.
impl Eq for WanLink {}

impl WanLink {
    /// The round-trip time the link adds.
    pub fn rtt(&self) -> Duration {
        self.delay * 2
    }

    /// The configuration of the a → b direction (`b_to_a` uses another
    /// seed, so the two directions lose different frames).
    pub fn a_to_b(&self) -> LineConfig {
        LineConfig {
            delay: self.delay,
            rate_bps: self.rate_bps,
            loss: self.loss,
            limit_bytes: self.limit_bytes,
            seed: self.seed,
        }
    }

    /// The configuration of the b → a direction.
    pub fn b_to_a(&self) -> LineConfig {
        LineConfig {
            seed: self.seed ^ 0x5bd1_e995_5bd1_e995,
            ..self.a_to_b()
        }
    }

    /// A short description, e.g. `metro (RTT 5.5 ms, 200 Mbit/s, loss 0)`.
    pub fn describe(&self) -> String {
        let name = self.profile.map_or("custom", WanProfile::name);
        let rate = self
            .rate_bps
            .map_or_else(|| "no rate cap".to_owned(), format_rate);
        format!(
            "{name} (RTT {:.2} ms, {rate}, loss {})",
            self.rtt().as_secs_f64() * 1e3,
            self.loss
        )
    }
}

/// An unparsable rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {input:?}: expected a number of bit/s with an optional unit kbit, mbit, gbit \
     or tbit (decimal, as in tc), e.g. 200mbit or 10gbit"
)]
pub struct ParseRateError {
    /// The input given.
    pub input: String,
}

/// Parses a rate in bit/s: `10gbit`, `200mbit`, `1.5gbit`, `64kbit`,
/// `1000000` (units are decimal and case-insensitive; `bit` alone and a
/// bare number are bit/s).
pub fn parse_rate(input: &str) -> Result<u64, ParseRateError> {
    let err = || ParseRateError {
        input: input.to_owned(),
    };
    let s = input.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| err())?;
    let scale = match unit {
        "" | "bit" => 1e0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        _ => return Err(err()),
    };
    let bps = value * scale;
    if !bps.is_finite() || bps < 1.0 || bps > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bps.round() as u64)
}

/// `200000000` → `200 Mbit/s`.
pub fn format_rate(bps: u64) -> String {
    let b = bps as f64;
    if b >= 1e9 {
        format!("{} Gbit/s", b / 1e9)
    } else if b >= 1e6 {
        format!("{} Mbit/s", b / 1e6)
    } else if b >= 1e3 {
        format!("{} kbit/s", b / 1e3)
    } else {
        format!("{bps} bit/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_by_name() {
        for p in WanProfile::ALL {
            assert_eq!(p.name().parse::<WanProfile>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!("Metro".parse::<WanProfile>(), Ok(WanProfile::Metro));
        assert_eq!(" longwan ".parse::<WanProfile>(), Ok(WanProfile::LongWan));
        let err = "mars".parse::<WanProfile>().unwrap_err().to_string();
        assert!(
            err.contains("\"mars\"") && err.contains("none, lan, metro, shortwan, wan, longwan"),
            "{err}"
        );
    }

    #[test]
    fn profile_delays_are_half_the_paper_rtts() {
        let ms = |p: WanProfile| p.one_way_delay().as_secs_f64() * 1e3;
        assert_eq!(WanProfile::Lan.one_way_delay(), Duration::from_micros(220));
        assert_eq!(
            WanProfile::Metro.one_way_delay(),
            Duration::from_micros(2750)
        );
        assert!((ms(WanProfile::ShortWan) - 12.15).abs() < 1e-9);
        assert!((ms(WanProfile::Wan) - 29.1).abs() < 1e-9);
        assert!((ms(WanProfile::LongWan) - 71.85).abs() < 1e-9);
        assert_eq!(WanProfile::None.link(), None);
        let link = WanProfile::Wan.link().unwrap();
        assert_eq!(link.rtt(), Duration::from_micros(58_200));
        assert_eq!((link.rate_bps, link.loss), (None, 0.0));
        assert_ne!(link.a_to_b().seed, link.b_to_a().seed);
        assert_eq!(link.a_to_b().delay, link.b_to_a().delay);
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10gbit"), Ok(10_000_000_000));
        assert_eq!(parse_rate("200Mbit"), Ok(200_000_000));
        assert_eq!(parse_rate("1.5gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("64kbit"), Ok(64_000));
        assert_eq!(parse_rate("1000000"), Ok(1_000_000));
        assert_eq!(parse_rate("9600bit"), Ok(9600));
        for bad in ["", "fast", "10gbps", "-1mbit", "0", "1..2mbit", "10 gbit"] {
            let err = parse_rate(bad).unwrap_err().to_string();
            assert!(err.contains("200mbit"), "{bad:?}: {err}");
        }
        assert_eq!(format_rate(200_000_000), "200 Mbit/s");
        assert_eq!(format_rate(10_000_000_000), "10 Gbit/s");
    }
}
