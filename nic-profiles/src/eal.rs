//! The EAL command line for a profile, its ports and lcores.
//!
//! [`eal_args`] validates the deployment, then builds `argv` in this order:
//!
//! 1. `scistream`, `-l <lcores>`, `--main-lcore <main>`;
//! 2. `--no-pci` when no port is a PCI device: EAL otherwise probes every PCI device it can
//!    see (on the development VM its own virtio-net, which fails);
//! 3. per port, in port order: `-a <PCI address>[,<devargs>]`, or
//!    `--vdev=<pmd><n>,<devargs>` where `n` counts the vdev ports from 0, so each vdev of a
//!    PMD gets a unique name; devargs are the port's own, then the profile's, each sorted
//!    by key ([`crate::devargs`]);
//! 4. memory: nothing for hugepages (plus `-m` if `eal.memory_mb` is set), `--no-huge -m <mb>`,
//!    or `--in-memory` (plus `-m`). `--in-memory` with `--no-huge` is refused, as EAL does;
//! 5. `--file-prefix <prefix>`, or `--no-shconf` without one (not with `--in-memory`, which
//!    implies it);
//! 6. `--iova-mode=va|pa` unless `auto`; `--log-level=…` per `eal.log_levels`;
//! 7. `eal.extra`, then the caller's `extra`.
//!
//! EAL names the ethdev ports by device ([`device_names`]); the DPDK layer looks the port ids
//! up by these names (`rte_eth_dev_get_port_by_name`) rather than assuming an order, since
//! the PCI bus probes in address order, not in `-a` order.

use crate::devargs::{self, Devargs};
use crate::error::ProfileError;
use crate::lcores::LcoreLayout;
use crate::port::{PortDevice, PortSpec};
use crate::profile::{Iova, Memory, Profile};

/// `argv[0]` of the EAL command line.
pub const PROGRAM: &str = "scistream";

/// The EAL arguments for `profile` driving `ports` on `layout`, with the caller's `extra`
/// appended. Fails with every violation of [`validate_deployment`](crate::validate_deployment)
/// (whose warnings it drops: call that first to log them) and with EAL options in `extra`
/// that this function derives or that conflict with the profile's memory mode.
pub fn eal_args(
    profile: &Profile,
    ports: &[PortSpec],
    layout: &LcoreLayout,
    extra: &[String],
) -> Result<Vec<String>, ProfileError> {
    crate::validate_deployment(profile, ports, layout)?;
    crate::validate::extra_args(profile, extra)?;
    let mut args = vec![
        PROGRAM.to_owned(),
        "-l".to_owned(),
        layout.eal_list(),
        "--main-lcore".to_owned(),
        layout.main.to_string(),
    ];
    if !ports.iter().any(|p| matches!(p.device, PortDevice::Pci(_))) {
        args.push("--no-pci".to_owned());
    }
    let names = device_names(profile, ports);
    for (port, name) in ports.iter().zip(&names) {
        let own = match &port.device {
            PortDevice::Pci(_) => Devargs::new(),
            PortDevice::Vdev(d) => d.clone(),
        };
        let pairs = render(profile, &own);
        let device = if pairs.is_empty() {
            name.clone()
        } else {
            format!("{name},{pairs}")
        };
        match port.device {
            PortDevice::Pci(_) => {
                args.push("-a".to_owned());
                args.push(device);
            }
            PortDevice::Vdev(_) => args.push(format!("--vdev={device}")),
        }
    }
    let eal = &profile.eal;
    match eal.memory {
        Memory::Hugepages => {}
        Memory::NoHuge => args.push("--no-huge".to_owned()),
        Memory::InMemory => args.push("--in-memory".to_owned()),
    }
    if let Some(mb) = eal.effective_memory_mb() {
        args.push("-m".to_owned());
        args.push(mb.to_string());
    }
    match &eal.file_prefix {
        Some(prefix) => {
            args.push("--file-prefix".to_owned());
            args.push(prefix.clone());
        }
        None if eal.memory != Memory::InMemory => args.push("--no-shconf".to_owned()),
        None => {}
    }
    match eal.iova {
        Iova::Auto => {}
        Iova::Va => args.push("--iova-mode=va".to_owned()),
        Iova::Pa => args.push("--iova-mode=pa".to_owned()),
    }
    args.extend(eal.log_levels.iter().map(|l| format!("--log-level={l}")));
    args.extend(eal.extra.iter().cloned());
    args.extend(extra.iter().cloned());
    Ok(args)
}

/// The EAL device name of each port, in port order: the PCI address (`0000:81:00.0`) or
/// `<pmd><n>` (`net_af_packet0`), n counting the vdev ports.
pub fn device_names(profile: &Profile, ports: &[PortSpec]) -> Vec<String> {
    let mut vdevs = 0;
    ports
        .iter()
        .map(|port| match &port.device {
            PortDevice::Pci(addr) => addr.to_string(),
            PortDevice::Vdev(_) => {
                let name = format!("{}{vdevs}", profile.driver.pmd);
                vdevs += 1;
                name
            }
        })
        .collect()
}

/// The devargs of one device: the port's, then the profile's.
fn render(profile: &Profile, own: &Devargs) -> String {
    let pmd = profile.pmd();
    devargs::render_pairs(own, &profile.driver.devargs, |key| {
        pmd.and_then(|p| p.devarg_kind(key))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::DataplaneLcores;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn af_packet_ports() -> Vec<PortSpec> {
        vec![
            PortSpec::vdev(
                "lan",
                [("iface", "gn1-lan")].into_iter().collect(),
                "172.16.1.1/24",
            )
            .unwrap(),
            PortSpec::vdev(
                "wan",
                [("iface", "gn1-wan")].into_iter().collect(),
                "198.51.100.10/24",
            )
            .unwrap(),
        ]
    }

    #[test]
    fn two_af_packet_ports() {
        let p = Profile::builtin("af_packet").unwrap();
        let layout = LcoreLayout::new(0, vec![1]);
        let args = eal_args(&p, &af_packet_ports(), &layout, &[]).unwrap();
        assert_eq!(
            args,
            strings(&[
                "scistream",
                "-l",
                "0,1",
                "--main-lcore",
                "0",
                "--no-pci",
                "--vdev=net_af_packet0,iface=gn1-lan,blocksz=4096,framecnt=512,framesz=2048,qdisc_bypass=1,qpairs=1",
                "--vdev=net_af_packet1,iface=gn1-wan,blocksz=4096,framecnt=512,framesz=2048,qdisc_bypass=1,qpairs=1",
                "--no-huge",
                "-m",
                "256",
                "--no-shconf",
                "--log-level=lib.eal:error",
            ])
        );
        assert_eq!(
            device_names(&p, &af_packet_ports()),
            ["net_af_packet0", "net_af_packet1"]
        );
    }

    #[test]
    fn two_connectx6dx_ports() {
        let p = Profile::builtin("connectx6dx").unwrap();
        let ports = vec![
            PortSpec::pci("lan", "0000:81:00.0", "172.16.1.1/24").unwrap(),
            PortSpec::pci("wan", "0000:81:00.1", "198.51.100.10/24").unwrap(),
        ];
        let layout = LcoreLayout::new(0, vec![2, 4, 6, 8]);
        let devargs = "dv_flow_en=1,mprq_en=1,mprq_log_stride_num=6,mprq_log_stride_size=11,\
                       rxq_pkt_pad_en=1,rxqs_min_mprq=1,txq_inline_mpw=128,txqs_min_inline=4";
        let args = eal_args(
            &p,
            &ports,
            &layout,
            &strings(&["--log-level=pmd.net.mlx5:info"]),
        )
        .unwrap();
        assert_eq!(
            args,
            strings(&[
                "scistream",
                "-l",
                "0,2,4,6,8",
                "--main-lcore",
                "0",
                "-a",
                &format!("0000:81:00.0,{devargs}"),
                "-a",
                &format!("0000:81:00.1,{devargs}"),
                "--file-prefix",
                "scistream",
                "--iova-mode=va",
                "--log-level=pmd.net.mlx5:info",
            ])
        );
        assert_eq!(device_names(&p, &ports), ["0000:81:00.0", "0000:81:00.1"]);
    }

    #[test]
    fn memif_renders_yes_no_and_in_memory_has_no_shconf() {
        let mut p = Profile::builtin("memif").unwrap();
        p.eal.memory = Memory::InMemory;
        p.eal.memory_mb = None;
        let ports = vec![
            PortSpec::vdev(
                "lan",
                [("socket", "/run/s2/lan.sock"), ("role", "server")]
                    .into_iter()
                    .collect(),
                "172.16.1.1/24",
            )
            .unwrap(),
        ];
        let args = eal_args(&p, &ports, &LcoreLayout::new(0, vec![1]), &[]).unwrap();
        assert_eq!(
            args[5..],
            strings(&[
                "--no-pci",
                "--vdev=net_memif0,role=server,socket=/run/s2/lan.sock,socket-abstract=no,zero-copy=no",
                "--in-memory",
                "--log-level=lib.eal:error",
            ])
        );
    }

    #[test]
    fn ring_ports_have_only_a_name() {
        let p = Profile::builtin("ring").unwrap();
        let ports = vec![
            PortSpec::vdev("lan", Devargs::new(), "10.0.0.1/24").unwrap(),
            PortSpec::vdev("wan", Devargs::new(), "10.0.1.1/24").unwrap(),
        ];
        let args = eal_args(&p, &ports, &LcoreLayout::new(0, vec![1]), &[]).unwrap();
        assert_eq!(
            args[6..8],
            strings(&["--vdev=net_ring0", "--vdev=net_ring1"])
        );
    }

    #[test]
    fn in_memory_with_no_huge_is_refused() {
        let mut p = Profile::builtin("af_packet").unwrap();
        p.eal.memory = Memory::InMemory;
        p.eal.memory_mb = None;
        let err = eal_args(
            &p,
            &af_packet_ports(),
            &LcoreLayout::new(0, vec![1]),
            &strings(&["--no-huge"]),
        )
        .unwrap_err();
        assert_eq!(
            err.violations()[0].to_string(),
            "extra[0] = \"--no-huge\": conflicts with eal.memory = \"in-memory\": EAL refuses \
             --in-memory with --no-huge (\"Option --legacy-mem is not compatible with \
             --in-memory\"); remove it, or set eal.memory = \"no-huge\" instead of \"in-memory\""
        );
        // The same in the profile's own extras, the other way round.
        let mut p = Profile::builtin("af_packet").unwrap();
        p.eal.extra = strings(&["--in-memory"]);
        let err = p.validate().unwrap_err();
        assert_eq!(
            err.violations()[0].to_string(),
            "eal.extra[0] = \"--in-memory\": conflicts with eal.memory = \"no-huge\": EAL \
             refuses --in-memory with --no-huge (\"Option --legacy-mem is not compatible with \
             --in-memory\"); remove it, or set eal.memory = \"in-memory\" instead of \"no-huge\""
        );
    }

    #[test]
    fn derived_options_are_refused_in_extra() {
        let p = Profile::builtin("af_packet").unwrap();
        let err = eal_args(
            &p,
            &af_packet_ports(),
            &LcoreLayout::new(0, vec![1]),
            &strings(&["-l0-1", "--vdev=net_null0", "--telemetry"]),
        )
        .unwrap_err();
        let v: Vec<String> = err.violations().iter().map(ToString::to_string).collect();
        assert_eq!(
            v,
            [
                "extra[0] = \"-l0-1\": -l is derived from lcores.main and lcores.dataplane (or \
                 s2cs --cores); remove it and set lcores.main and lcores.dataplane (or s2cs \
                 --cores)",
                "extra[1] = \"--vdev=net_null0\": --vdev is derived from the ports' devargs and \
                 driver.devargs; remove it and set the ports' devargs and driver.devargs",
            ]
        );
    }

    #[test]
    fn a_count_layout_from_the_profile_works_on_this_shape_of_host() {
        let mut p = Profile::builtin("ring").unwrap();
        p.lcores.dataplane = DataplaneLcores::Count(1);
        let layout = LcoreLayout::from_profile(&p, &[0, 1]).unwrap();
        let ports = vec![PortSpec::vdev("lan", Devargs::new(), "10.0.0.1/24").unwrap()];
        let args = eal_args(&p, &ports, &layout, &[]).unwrap();
        assert_eq!(
            args[..5],
            strings(&["scistream", "-l", "0,1", "--main-lcore", "0"])
        );
    }
}
