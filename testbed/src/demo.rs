//! `s2testbed demo`: the two-gateway demo, narrated for a person at a terminal.

use anyhow::Result;
use testbed::require_root;
use testbed::scenario::{Scenario, ScenarioOptions};
use testbed::topology::{
    CONS_APP_IP, GN1_CTL_IP, GN1_LAN_IP, GN1_WAN_IP, GN2_CTL_IP, GN2_LAN_IP, GN2_WAN_IP,
    PROD_APP_IP,
};

const SEED: u64 = 42;

pub(crate) fn run(
    options: ScenarioOptions,
    streams: usize,
    bytes: u64,
    reverse_bytes: u64,
    two_step: bool,
) -> Result<()> {
    anyhow::ensure!(
        (1..=64).contains(&streams),
        "--streams must be between 1 and 64"
    );
    require_root()?;
    println!("SciStream-RS two-gateway demo");
    println!(
        "  building the testbed '{}' (network namespaces, MTU {})",
        options.prefix, options.mtu
    );
    if let Some(link) = &options.wan {
        println!("  emulated WAN between the gateways: {}", link.describe());
    }
    let engine = options.engine.clone();
    let scenario = Scenario::start(options)?;
    println!(
        "  producer {PROD_APP_IP} -- GN1 {GN1_LAN_IP} | {GN1_WAN_IP} == WAN == {GN2_WAN_IP} | GN2 \
         {GN2_LAN_IP} -- consumer {CONS_APP_IP}"
    );
    println!(
        "  s2cs running on GN1 ({GN1_CTL_IP}:5000) and GN2 ({GN2_CTL_IP}:5000), TLS control \
         channel, token auth, {engine} engine"
    );
    let ports: Vec<u16> = (0..streams).map(|i| 7000 + i as u16).collect();
    let session = if two_step {
        scenario.two_step(streams, &ports)?
    } else {
        scenario.connect(streams, &ports)?
    };
    println!(
        "  {} set up {streams} streams in {:.1} ms; WAN leg: {}",
        if two_step {
            "s2uc inbound-request + outbound-request"
        } else {
            "s2uc connect"
        },
        session.setup_ms,
        session.wan_security
    );
    let listeners: Vec<String> = session
        .cons_listeners
        .iter()
        .map(ToString::to_string)
        .collect();
    println!("  consumer app connects to {}", listeners.join(", "));
    let t = scenario.transfer(&session, &ports, bytes, reverse_bytes, SEED)?;
    let status = scenario.status(&session, "gn2")?;
    let counted: u64 = status["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["bytes_from_target"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "  streamed {streams} x {} producer -> consumer and {streams} x {} back in {:.2} s",
        human(bytes),
        human(reverse_bytes),
        t.elapsed_secs
    );
    println!(
        "  goodput producer -> consumer: {:.2} Gbit/s (aggregate)",
        t.goodput_down_gbps
    );
    println!(
        "  integrity: SHA-256 equal on all {} stream directions; GN2 counted {} to the consumer",
        2 * streams,
        human(counted)
    );
    scenario.release(&session)?;
    drop(scenario);
    println!("  released the session on both gateways; testbed removed. OK");
    Ok(())
}

fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
