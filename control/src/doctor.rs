//! `s2cs doctor`: what this host gives each data path, with the fix for what falls short.
//! Nothing here changes the host; each check opens at most a loopback socket, loads and unloads
//! the BPF program, or reads sysfs and DPDK's plugin directory (the dpdk engine's checks before
//! EAL, which doctor does not start).

use std::fmt;

use dataplane::quic::udp;

use crate::config::{Config, parse_size};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Works, but slower or less safe than it could; the fix is given.
    Warn,
    /// The path named cannot run.
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "[{tag}] {:<18} {}", self.name, self.detail)
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Runs every check for `cfg`.
pub fn checks(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let online = dataplane::cores::online_cores();
    out.push(match &cfg.cores {
        Some(c) if c.iter().any(|x| !online.contains(x)) => Check {
            name: "cores",
            level: Level::Fail,
            detail: format!("configured cores {c:?}, online {online:?}"),
        },
        _ => Check {
            name: "cores",
            level: Level::Ok,
            detail: format!("online {online:?}"),
        },
    });
    out.extend(quic_checks(cfg));
    out.push(match dataplane::Splicer::load() {
        Ok(_) => Check {
            name: "sockmap",
            level: Level::Ok,
            detail: "the BPF sockmap program loads and attaches".into(),
        },
        Err(e) => Check {
            name: "sockmap",
            level: Level::Warn,
            detail: format!("unavailable ({e}); the copy and splice engines still work"),
        },
    });
    out.extend(crate::dpdk::checks(cfg));
    out
}

/// UDP buffers and offloads for the quic engine.
pub fn quic_checks(cfg: &Config) -> Vec<Check> {
    let requested = match parse_size(&cfg.quic_udp_buffer) {
        Ok(r) => r,
        Err(e) => {
            return vec![Check {
                name: "quic udp buffers",
                level: Level::Fail,
                detail: format!("quic_udp_buffer: {e}"),
            }];
        }
    };
    let p = udp::probe(requested, cfg.quic_udp_force);
    let b = p.buffers;
    let buffers = Check {
        name: "quic udp buffers",
        level: if b.is_short() { Level::Warn } else { Level::Ok },
        detail: format!(
            "asked {}, got receive {} / send {} ({}); rmem_max {} wmem_max {}{}",
            mib(b.requested),
            mib(b.recv),
            mib(b.send),
            match (b.forced, cfg.quic_udp_force) {
                (true, _) => "forced with SO_RCVBUFFORCE",
                (false, true) => "capped by the sysctls: not root",
                (false, false) => "capped by the sysctls: quic_udp_force is off",
            },
            mib(b.rmem_max),
            mib(b.wmem_max),
            if b.is_short() {
                format!(
                    "; datagrams will drop at high rates: run as root with quic_udp_force, or \
                     sysctl -w net.core.rmem_max={r} net.core.wmem_max={r}",
                    r = b.requested
                )
            } else {
                String::new()
            }
        ),
    };
    let offload = Check {
        name: "quic udp offload",
        level: if p.gso_segments > 1 {
            Level::Ok
        } else {
            Level::Warn
        },
        detail: format!(
            "GSO {} datagrams per send, GRO {} per receive{}",
            p.gso_segments,
            p.gro_segments,
            if p.gso_segments > 1 {
                ""
            } else {
                " (no UDP_SEGMENT: QUIC sends cost about 3× more CPU)"
            }
        ),
    };
    let tuning = match crate::server::quic_tuning(cfg) {
        Ok(t) => {
            let w = t.windows();
            let auto = cfg.quic_cc.trim().eq_ignore_ascii_case("auto");
            Check {
                name: "quic tuning",
                level: Level::Ok,
                detail: format!(
                    "{} over {:?}: stream window {}, connection window {}, send window {}, {}{}",
                    cfg.quic_bandwidth,
                    t.rtt,
                    mib(w.stream_receive as usize),
                    mib(w.connection_receive as usize),
                    mib(w.send as usize),
                    t.congestion.name(),
                    if auto {
                        " (auto: as the host's TCP congestion control)"
                    } else {
                        ""
                    }
                ),
            }
        }
        Err(e) => Check {
            name: "quic tuning",
            level: Level::Fail,
            detail: format!("{e:#}"),
        },
    };
    vec![buffers, offload, tuning]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_checks_report_numbers_and_name_bad_values() {
        let cfg = Config::default();
        let c = quic_checks(&cfg);
        assert_eq!(c.len(), 3);
        assert!(c[0].detail.contains("asked 32.0 MiB"), "{}", c[0]);
        assert_eq!(c[2].level, Level::Ok, "{}", c[2]);
        assert!(
            c[2].detail
                .ends_with("(auto: as the host's TCP congestion control)")
        );
        let bad = Config {
            quic_cc: "vegas".into(),
            ..Config::default()
        };
        let c = quic_checks(&bad);
        assert_eq!(c[2].level, Level::Fail);
        assert!(
            c[2].detail
                .contains("unknown congestion controller 'vegas'"),
            "{}",
            c[2]
        );
        let bad = Config {
            quic_udp_buffer: "lots".into(),
            ..Config::default()
        };
        assert_eq!(quic_checks(&bad)[0].level, Level::Fail);
    }
}
