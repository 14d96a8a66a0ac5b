//! The ports of one gateway, given next to the profile (from the s2cs config): a profile says
//! how a NIC model is driven, a [`PortSpec`] which device is the `lan` or `wan` port and its
//! addresses.
//!
//! In TOML (an array of tables in the s2cs config):
//!
//! ```toml
//! [[ports]]
//! name = "wan"
//! pci = "0000:81:00.1"            # a PCI profile: the port's PCI function
//! ipv4 = "198.51.100.10/24"
//! gateway = "198.51.100.1"        # optional
//! mac = "02:00:00:00:00:01"       # optional: override the device's address
//!
//! [[ports]]
//! name = "lan"
//! devargs = { iface = "gn1-lan" } # a vdev profile: the port's own devargs
//! ipv4 = "172.16.1.1/24"
//! ```
//!
//! Parsing checks syntax (a PCI address is `dddd:bb:dd.f`); whether the ports fit the profile
//! (a PCI address for a PCI PMD, `iface` for af_packet, …) is checked by
//! [`validate_deployment`](crate::validate_deployment).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer};

use crate::devargs::Devargs;

/// One port of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawPortSpec")]
pub struct PortSpec {
    /// What the port is for (`lan`, `wan`); used in logs, errors and field paths.
    pub name: String,
    pub device: PortDevice,
    /// Overrides the device's MAC address.
    pub mac: Option<MacAddr>,
    /// The port's address and on-link prefix (`172.16.1.1/24`).
    pub ipv4: Ipv4Net,
    /// Next hop for destinations outside `ipv4`'s prefix.
    pub gateway: Option<Ipv4Addr>,
}

/// Which device a port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortDevice {
    /// A PCI function, probed with `-a <address>,<profile devargs>`.
    Pci(PciAddress),
    /// A virtual device, created with `--vdev=<pmd><n>,<these devargs>,<profile devargs>`
    /// (`iface=…` for af_packet, af_xdp and tap; `socket=…,role=…` for memif; nothing for
    /// ring and null).
    Vdev(Devargs),
}

impl PortSpec {
    /// A port on a PCI function.
    pub fn pci(name: &str, address: &str, ipv4: &str) -> Result<Self, AddressError> {
        Ok(Self {
            name: name.to_owned(),
            device: PortDevice::Pci(address.parse()?),
            mac: None,
            ipv4: parse_ipv4_net(ipv4)?,
            gateway: None,
        })
    }

    /// A virtual-device port with its own devargs.
    pub fn vdev(name: &str, devargs: Devargs, ipv4: &str) -> Result<Self, AddressError> {
        Ok(Self {
            name: name.to_owned(),
            device: PortDevice::Vdev(devargs),
            mac: None,
            ipv4: parse_ipv4_net(ipv4)?,
            gateway: None,
        })
    }
}

/// An address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error(
        "PCI address {value:?} {problem}; write domain:bus:device.function in hex, e.g. 0000:81:00.0"
    )]
    Pci { value: String, problem: String },
    #[error("MAC address {value:?} {problem}; write six hex bytes, e.g. 02:00:00:00:00:01")]
    Mac { value: String, problem: String },
    #[error("IPv4 address {value:?} {problem}; write address/prefix, e.g. 172.16.1.1/24")]
    Ipv4 { value: String, problem: String },
}

/// A PCI function address, `domain:bus:device.function` (`0000:81:00.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = AddressError;

    /// Accepts `dddd:bb:dd.f` (hex), case-insensitive.
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let err = |problem: &str| AddressError::Pci {
            value: s.to_owned(),
            problem: problem.to_owned(),
        };
        let hex_field = |text: &str, digits: usize, what: &str| {
            if text.len() != digits || !text.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(err(&format!(
                    "has {what} {text:?}, not {digits} hex digits"
                )));
            }
            u32::from_str_radix(text, 16).map_err(|_| err(&format!("has a bad {what}")))
        };
        let (domain, rest) = s
            .split_once(':')
            .ok_or_else(|| err("is not domain:bus:device.function"))?;
        let (bus, rest) = rest
            .split_once(':')
            .ok_or_else(|| err("is not domain:bus:device.function"))?;
        let (device, function) = rest
            .split_once('.')
            .ok_or_else(|| err("has no .function"))?;
        let domain = hex_field(domain, 4, "domain")?;
        let bus = hex_field(bus, 2, "bus")?;
        let device = hex_field(device, 2, "device")?;
        if device > 0x1f {
            return Err(err("has device above 1f"));
        }
        let function = hex_field(function, 1, "function")?;
        if function > 7 {
            return Err(err("has function above 7"));
        }
        // The widths were checked above: each value fits its field.
        Ok(Self {
            domain: domain as u16,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    /// The form EAL names PCI devices by (`0000:81:00.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The group bit: multicast and broadcast addresses cannot be a port's address.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl FromStr for MacAddr {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        let err = |problem: &str| AddressError::Mac {
            value: s.to_owned(),
            problem: problem.to_owned(),
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(err("does not have six ':'-separated bytes"));
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(err(&format!("has byte {part:?}, not two hex digits")));
            }
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| err(&format!("has byte {part:?}, not two hex digits")))?;
        }
        Ok(Self(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

fn parse_ipv4_net(s: &str) -> Result<Ipv4Net, AddressError> {
    if !s.contains('/') {
        return Err(AddressError::Ipv4 {
            value: s.to_owned(),
            problem: "has no /prefix".into(),
        });
    }
    s.parse().map_err(|_| AddressError::Ipv4 {
        value: s.to_owned(),
        problem: "is not an IPv4 address with a prefix of 0 to 32".into(),
    })
}

/// The TOML shape: `pci` xor `devargs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortSpec {
    name: String,
    pci: Option<String>,
    devargs: Option<Devargs>,
    mac: Option<String>,
    ipv4: String,
    gateway: Option<Ipv4Addr>,
}

impl TryFrom<RawPortSpec> for PortSpec {
    type Error = String;

    fn try_from(raw: RawPortSpec) -> Result<Self, String> {
        let device = match (raw.pci, raw.devargs) {
            (Some(pci), None) => PortDevice::Pci(pci.parse().map_err(|e| format!("{e}"))?),
            (None, Some(devargs)) => PortDevice::Vdev(devargs),
            (None, None) => PortDevice::Vdev(Devargs::new()),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "port {:?} has both pci and devargs; a PCI port takes its devargs from the \
                     profile (driver.devargs), so remove devargs or pci",
                    raw.name
                ));
            }
        };
        let mac = raw
            .mac
            .map(|m| m.parse())
            .transpose()
            .map_err(|e: AddressError| e.to_string())?;
        Ok(PortSpec {
            name: raw.name,
            device,
            mac,
            ipv4: parse_ipv4_net(&raw.ipv4).map_err(|e| e.to_string())?,
            gateway: raw.gateway,
        })
    }
}

/// The command-line form: `name=wan,ipv4=172.16.1.1/24,iface=gn1-wan` — keys `name`, `ipv4`
/// (required), `pci`, `mac`, `gateway`; every other key is one of the port's own devargs.
impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut raw = RawPortSpec {
            name: String::new(),
            pci: None,
            devargs: None,
            mac: None,
            ipv4: String::new(),
            gateway: None,
        };
        let mut devargs = Vec::new();
        for pair in s.split(',').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!(
                    "port setting {pair:?} has no value; write key=value pairs separated by \
                     commas, e.g. name=wan,ipv4=172.16.1.1/24,iface=gn1-wan"
                ));
            };
            match k {
                "name" => raw.name = v.to_owned(),
                "ipv4" => raw.ipv4 = v.to_owned(),
                "pci" => raw.pci = Some(v.to_owned()),
                "mac" => raw.mac = Some(v.to_owned()),
                "gateway" => {
                    raw.gateway = Some(v.parse().map_err(|_| {
                        format!("gateway {v:?} is not an IPv4 address (e.g. 198.51.100.1)")
                    })?);
                }
                _ => devargs.push(pair),
            }
        }
        if raw.name.is_empty() || raw.ipv4.is_empty() {
            return Err(format!(
                "port {s:?} needs name= and ipv4=, e.g. name=wan,ipv4=172.16.1.1/24,iface=gn1-wan"
            ));
        }
        if !devargs.is_empty() {
            raw.devargs = Some(devargs.join(",").parse()?);
        }
        raw.try_into()
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_parse_and_print_in_eal_form() {
        let a: PciAddress = "0000:81:00.1".parse().unwrap();
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 0x81,
                device: 0,
                function: 1
            }
        );
        assert_eq!(a.to_string(), "0000:81:00.1");
        assert_eq!(
            "0000:AF:1f.7".parse::<PciAddress>().unwrap().to_string(),
            "0000:af:1f.7"
        );
    }

    #[test]
    fn bad_pci_addresses_say_what_is_wrong() {
        let e = |s: &str| s.parse::<PciAddress>().unwrap_err().to_string();
        assert_eq!(
            e("0000:81:00"),
            "PCI address \"0000:81:00\" has no .function; write domain:bus:device.function in \
             hex, e.g. 0000:81:00.0"
        );
        assert_eq!(
            e("81:00.0"),
            "PCI address \"81:00.0\" is not domain:bus:device.function; write \
             domain:bus:device.function in hex, e.g. 0000:81:00.0"
        );
        assert!(e("0000:81:20.0").contains("has device above 1f"));
        assert!(e("0000:81:00.8").contains("has function above 7"));
        assert!(e("000g:81:00.0").contains("has domain \"000g\", not 4 hex digits"));
        assert!(e("0000:1:00.0").contains("has bus \"1\", not 2 hex digits"));
    }

    #[test]
    fn macs_parse_and_multicast_is_recognised() {
        let m: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:00:01");
        assert!(!m.is_multicast());
        assert!(
            "01:00:5e:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        assert!("02:00:00:00:01".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn ports_deserialize_from_the_s2cs_shape() {
        #[derive(Debug, Deserialize)]
        struct Cfg {
            ports: Vec<PortSpec>,
        }
        let cfg: Cfg = toml::from_str(
            r#"
            [[ports]]
            name = "wan"
            pci = "0000:81:00.1"
            ipv4 = "198.51.100.10/24"
            gateway = "198.51.100.1"
            mac = "02:00:00:00:00:01"

            [[ports]]
            name = "lan"
            devargs = { iface = "gn1-lan" }
            ipv4 = "172.16.1.1/24"
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.ports[0].device,
            PortDevice::Pci("0000:81:00.1".parse().unwrap())
        );
        assert_eq!(cfg.ports[0].gateway, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(cfg.ports[0].ipv4.prefix_len(), 24);
        let PortDevice::Vdev(d) = &cfg.ports[1].device else {
            panic!("lan is a vdev");
        };
        assert_eq!(d.get("iface").and_then(|v| v.as_text()), Some("gn1-lan"));

        let bad = toml::from_str::<Cfg>(
            "[[ports]]\nname = \"wan\"\npci = \"0000:81:00\"\nipv4 = \"10.0.0.1/24\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("PCI address \"0000:81:00\" has no .function"),
            "{bad}"
        );
        let both = toml::from_str::<Cfg>(
            "[[ports]]\nname = \"wan\"\npci = \"0000:81:00.0\"\ndevargs = { iface = \"x\" }\nipv4 = \"10.0.0.1/24\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("has both pci and devargs"), "{both}");
        let no_prefix = PortSpec::pci("wan", "0000:81:00.0", "10.0.0.1").unwrap_err();
        assert_eq!(
            no_prefix.to_string(),
            "IPv4 address \"10.0.0.1\" has no /prefix; write address/prefix, e.g. 172.16.1.1/24"
        );
    }
}

#[cfg(test)]
mod cli_form_tests {
    use super::*;

    #[test]
    fn command_line_form() {
        let p: PortSpec = "name=wan,ipv4=172.16.1.1/24,iface=gn1-wan,gateway=172.16.1.254"
            .parse()
            .unwrap();
        assert_eq!(p.name, "wan");
        assert_eq!(p.ipv4.to_string(), "172.16.1.1/24");
        assert_eq!(p.gateway, Some(Ipv4Addr::new(172, 16, 1, 254)));
        assert_eq!(p.device, PortDevice::Vdev("iface=gn1-wan".parse().unwrap()));
        let pci: PortSpec = "name=lan,pci=0000:81:00.0,ipv4=10.0.0.1/24"
            .parse()
            .unwrap();
        assert!(matches!(pci.device, PortDevice::Pci(_)));
        let err = "name=wan,iface=x".parse::<PortSpec>().unwrap_err();
        assert!(err.contains("needs name= and ipv4="), "{err}");
        let err = "name=wan,ipv4=1.2.3.4,iface=x"
            .parse::<PortSpec>()
            .unwrap_err();
        assert!(err.contains("has no /prefix"), "{err}");
        let err = "name=wan,ipv4=1.2.3.4/8,pci=0000:81:00.0,iface=x"
            .parse::<PortSpec>()
            .unwrap_err();
        assert!(err.contains("both pci and devargs"), "{err}");
    }
}
