//! The profiles shipped in `profiles/`, compiled in so a binary needs no data files.

/// Name and text of each builtin profile; the name is the file's stem and the profile's `name`.
const BUILTINS: &[(&str, &str)] = &[
    ("connectx6dx", include_str!("../profiles/connectx6dx.toml")),
    ("connectx5", include_str!("../profiles/connectx5.toml")),
    ("e810", include_str!("../profiles/e810.toml")),
    ("virtio", include_str!("../profiles/virtio.toml")),
    ("af_packet", include_str!("../profiles/af_packet.toml")),
    (
        "af_packet_jumbo",
        include_str!("../profiles/af_packet_jumbo.toml"),
    ),
    ("af_xdp", include_str!("../profiles/af_xdp.toml")),
    ("memif", include_str!("../profiles/memif.toml")),
    ("tap", include_str!("../profiles/tap.toml")),
    ("ring", include_str!("../profiles/ring.toml")),
    ("null", include_str!("../profiles/null.toml")),
];

const NAMES: &[&str] = &[
    "connectx6dx",
    "connectx5",
    "e810",
    "virtio",
    "af_packet",
    "af_packet_jumbo",
    "af_xdp",
    "memif",
    "tap",
    "ring",
    "null",
];

/// Names of the builtin profiles: hardware first, then the virtual devices used in tests.
pub fn builtin_names() -> &'static [&'static str] {
    NAMES
}

pub(crate) fn find(name: &str) -> Option<(&'static str, &'static str)> {
    BUILTINS.iter().copied().find(|(n, _)| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LcoreLayout, PortSpec, Profile, validate_deployment};

    #[test]
    fn names_list_every_builtin_in_order() {
        let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, NAMES);
    }

    #[test]
    fn every_builtin_loads_validates_without_warnings_and_is_named_after_its_file() {
        for name in builtin_names() {
            let p = Profile::builtin(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, *name);
            assert!(p.warnings().is_empty(), "{name}: {:?}", p.warnings());
            assert!(!p.description.is_empty(), "{name} has no description");
            let (_, text) = find(name).unwrap();
            assert!(
                text.starts_with("# "),
                "{name}: the file starts with a comment"
            );
        }
    }

    #[test]
    fn every_builtin_fits_a_two_port_gateway() {
        for name in builtin_names() {
            let p = Profile::builtin(name).unwrap();
            let ports = match p.driver.bus {
                crate::Bus::Pci => vec![
                    PortSpec::pci("lan", "0000:81:00.0", "172.16.1.1/24").unwrap(),
                    PortSpec::pci("wan", "0000:81:00.1", "198.51.100.10/24").unwrap(),
                ],
                crate::Bus::Vdev => ["lan", "wan"]
                    .iter()
                    .map(|port| {
                        let devargs = p
                            .pmd()
                            .unwrap()
                            .port_devargs
                            .iter()
                            .map(|k| {
                                let v = match *k {
                                    "role" if *port == "lan" => "server".to_owned(),
                                    "role" => "client".to_owned(),
                                    "socket" => "/run/scistream/memif.sock".to_owned(),
                                    _ => format!("gn1-{port}"),
                                };
                                (*k, v)
                            })
                            .collect();
                        let net = if *port == "lan" {
                            "172.16.1.1/24"
                        } else {
                            "198.51.100.10/24"
                        };
                        PortSpec::vdev(port, devargs, net).unwrap()
                    })
                    .collect(),
            };
            let layout = LcoreLayout::from_profile(&p, &(0..16).collect::<Vec<_>>()).unwrap();
            let warnings =
                validate_deployment(&p, &ports, &layout).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(warnings.is_empty(), "{name}: {warnings:?}");
        }
    }
}
