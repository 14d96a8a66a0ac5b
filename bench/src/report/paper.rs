//! The paper's measurements ("Evaluating SciStream on FABRIC", reference §5.4–§5.6) as typed
//! data, printed beside ours in `report.md` for orientation. The paper ran on FABRIC with 32-core
//! VMs and ConnectX-6 100 GbE NICs, a ZeroMQ/Python pub/sub that is the bottleneck everywhere
//! (§5.3), one run per point: the numbers compare shapes and ratios, never absolute speed.

/// The paper's twelve sample sizes, bytes (Experiments/CommandExample.txt).
pub(crate) const SIZES: [u64; 12] = [
    512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576,
];

/// One goodput point of §5.4: Gbit/s and the efficiency (received / expected samples, %).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub(crate) gbps: f64,
    pub(crate) efficiency_pct: f64,
}

const fn p(gbps: f64, efficiency_pct: f64) -> Point {
    Point {
        gbps,
        efficiency_pct,
    }
}

/// One FABRIC setup of §5.4, with the WAN profile of ours that corresponds to it.
#[derive(Debug)]
pub(crate) struct Setup {
    /// Our `testbed` WAN profile name (lan, metro, shortwan, wan, longwan).
    pub(crate) profile: &'static str,
    /// The paper's name and site pair.
    pub(crate) name: &'static str,
    /// Average gateway-to-gateway ping RTT (§5.2), ms.
    pub(crate) wan_rtt_ms: f64,
    /// Direct pub → sub, no SciStream; one point per size of [`SIZES`].
    pub(crate) direct: [Point; 12],
    /// Legacy S2DS ("Old SciStream", buffer-and-forward).
    pub(crate) legacy: [Point; 12],
    /// The sockmap proxy ("hS2DS").
    pub(crate) sockmap: [Point; 12],
}

/// §5.4 goodput tables, all five setups.
pub(crate) const SETUPS: [Setup; 5] = [
    Setup {
        profile: "lan",
        name: "LAN UTAH–SALT",
        wan_rtt_ms: 0.253,
        direct: [
            p(0.940, 100.0),
            p(1.416, 100.0),
            p(2.677, 100.0),
            p(3.871, 100.0),
            p(6.706, 100.0),
            p(6.739, 100.0),
            p(8.211, 100.0),
            p(10.755, 100.0),
            p(11.892, 100.0),
            p(13.872, 100.0),
            p(15.372, 100.0),
            p(14.926, 100.0),
        ],
        legacy: [
            p(1.039, 100.0),
            p(1.624, 100.0),
            p(2.762, 100.0),
            p(4.385, 99.98),
            p(7.103, 100.0),
            p(8.599, 100.0),
            p(10.291, 100.0),
            p(11.178, 99.86),
            p(11.380, 100.0),
            p(11.345, 100.0),
            p(9.721, 100.0),
            p(11.410, 100.0),
        ],
        sockmap: [
            p(0.856, 100.0),
            p(1.236, 99.99),
            p(2.672, 100.0),
            p(4.798, 100.0),
            p(7.185, 99.96),
            p(9.098, 100.0),
            p(10.644, 100.0),
            p(11.824, 100.0),
            p(13.225, 100.0),
            p(11.793, 100.0),
            p(11.878, 100.0),
            p(13.500, 100.0),
        ],
    },
    Setup {
        profile: "metro",
        name: "Metro MICH–STAR",
        wan_rtt_ms: 5.293,
        direct: [
            p(0.777, 100.0),
            p(1.193, 100.0),
            p(1.959, 100.0),
            p(4.069, 100.0),
            p(5.800, 100.0),
            p(7.486, 100.0),
            p(10.286, 100.0),
            p(11.564, 100.0),
            p(13.417, 100.0),
            p(14.767, 100.0),
            p(14.408, 100.0),
            p(12.075, 100.0),
        ],
        legacy: [
            p(0.770, 100.0),
            p(1.221, 99.99),
            p(2.220, 100.0),
            p(3.790, 99.98),
            p(4.813, 100.0),
            p(5.799, 100.0),
            p(7.960, 99.90),
            p(10.086, 100.0),
            p(9.878, 100.0),
            p(9.563, 100.0),
            p(11.413, 100.0),
            p(10.977, 100.0),
        ],
        sockmap: [
            p(0.820, 100.0),
            p(1.360, 100.0),
            p(2.756, 100.0),
            p(4.011, 100.0),
            p(4.466, 100.0),
            p(5.769, 100.0),
            p(9.897, 100.0),
            p(13.405, 100.0),
            p(15.140, 100.0),
            p(15.720, 100.0),
            p(15.727, 100.0),
            p(15.249, 100.0),
        ],
    },
    Setup {
        profile: "shortwan",
        name: "Short WAN STAR–DALL",
        wan_rtt_ms: 23.998,
        direct: [
            p(0.729, 100.0),
            p(1.091, 100.0),
            p(2.327, 100.0),
            p(4.727, 100.0),
            p(6.806, 100.0),
            p(7.696, 100.0),
            p(9.932, 100.0),
            p(11.369, 100.0),
            p(12.576, 100.0),
            p(13.039, 100.0),
            p(13.093, 100.0),
            p(12.836, 100.0),
        ],
        legacy: [
            p(0.843, 100.0),
            p(1.015, 100.0),
            p(2.057, 99.66),
            p(3.928, 100.0),
            p(6.168, 100.0),
            p(6.839, 98.03),
            p(8.298, 100.0),
            p(9.174, 100.0),
            p(9.790, 100.0),
            p(10.339, 100.0),
            p(10.792, 100.0),
            p(10.276, 100.0),
        ],
        sockmap: [
            p(0.828, 100.0),
            p(1.482, 100.0),
            p(3.008, 100.0),
            p(4.462, 100.0),
            p(5.824, 100.0),
            p(6.913, 100.0),
            p(12.257, 100.0),
            p(12.822, 100.0),
            p(11.894, 100.0),
            p(12.438, 100.0),
            p(12.504, 100.0),
            p(12.582, 100.0),
        ],
    },
    Setup {
        profile: "wan",
        name: "WAN UTAH–MAX",
        wan_rtt_ms: 57.848,
        direct: [
            p(0.957, 100.0),
            p(1.439, 100.0),
            p(2.647, 100.0),
            p(4.157, 100.0),
            p(5.296, 100.0),
            p(6.884, 100.0),
            p(5.909, 100.0),
            p(6.463, 100.0),
            p(7.718, 100.0),
            p(6.578, 100.0),
            p(6.603, 100.0),
            p(6.621, 100.0),
        ],
        legacy: [
            p(0.802, 100.0),
            p(1.012, 99.56),
            p(3.265, 100.0),
            p(4.140, 100.0),
            p(6.590, 100.0),
            p(7.569, 100.0),
            p(7.510, 100.0),
            p(7.547, 100.0),
            p(7.389, 100.0),
            p(7.663, 100.0),
            p(7.682, 100.0),
            p(7.826, 100.0),
        ],
        sockmap: [
            p(0.810, 100.0),
            p(1.210, 100.0),
            p(2.047, 100.0),
            p(3.723, 100.0),
            p(5.635, 100.0),
            p(7.778, 100.0),
            p(7.385, 100.0),
            p(7.436, 100.0),
            p(7.420, 100.0),
            p(6.589, 100.0),
            p(6.610, 100.0),
            p(6.647, 100.0),
        ],
    },
    Setup {
        profile: "longwan",
        name: "Long WAN MICH–TACC",
        wan_rtt_ms: 143.37,
        direct: [
            p(1.046, 100.0),
            p(1.607, 100.0),
            p(2.940, 100.0),
            p(3.767, 100.0),
            p(4.576, 100.0),
            p(6.096, 100.0),
            p(6.833, 100.0),
            p(6.851, 100.0),
            p(6.698, 100.0),
            p(6.054, 100.0),
            p(6.072, 100.0),
            p(6.103, 100.0),
        ],
        legacy: [
            p(0.833, 100.0),
            p(1.326, 100.0),
            p(2.510, 100.0),
            p(4.663, 100.0),
            p(5.592, 100.0),
            p(6.247, 100.0),
            p(6.889, 100.0),
            p(7.059, 100.0),
            p(7.297, 100.0),
            p(6.928, 100.0),
            p(7.050, 100.0),
            p(6.929, 94.93),
        ],
        sockmap: [
            p(1.062, 100.0),
            p(1.134, 100.0),
            p(2.976, 100.0),
            p(4.827, 100.0),
            p(5.501, 100.0),
            p(6.860, 100.0),
            p(6.873, 100.0),
            p(6.867, 100.0),
            p(6.915, 100.0),
            p(6.077, 100.0),
            p(6.079, 100.0),
            p(6.055, 100.0),
        ],
    },
];

/// One QUIC proxy point of §5.5; `measured` is false for the Long-WAN filler values that have no
/// source run (the reference's † marks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuicPoint {
    pub(crate) gbps: f64,
    pub(crate) measured: bool,
}

const fn q(gbps: f64, measured: bool) -> QuicPoint {
    QuicPoint { gbps, measured }
}

/// §5.5 QUIC direct vs proxy for one setup, per size of [`SIZES`], with the CSV's mean and
/// standard deviation rows (the paper's QUIC figure plots those).
#[derive(Debug)]
pub(crate) struct QuicSetup {
    pub(crate) profile: &'static str,
    pub(crate) direct: [f64; 12],
    pub(crate) proxy: [QuicPoint; 12],
    pub(crate) direct_mean_std: (f64, f64),
    /// For Long WAN this rests on filler values (only 512 B was measured).
    pub(crate) proxy_mean_std: (f64, f64),
}

/// §5.5 QUIC direct / proxy goodput, Gbit/s.
pub(crate) const QUIC: [QuicSetup; 5] = [
    QuicSetup {
        profile: "lan",
        direct: [
            0.924, 0.998, 0.985, 1.022, 1.012, 1.004, 1.000, 0.992, 1.017, 0.995, 1.022, 1.003,
        ],
        proxy: [
            q(0.942, true),
            q(0.948, true),
            q(0.941, true),
            q(0.938, true),
            q(0.944, true),
            q(0.933, true),
            q(0.928, true),
            q(0.880, true),
            q(0.914, true),
            q(0.927, true),
            q(0.942, true),
            q(0.953, true),
        ],
        direct_mean_std: (0.998, 0.026),
        proxy_mean_std: (0.932, 0.020),
    },
    QuicSetup {
        profile: "metro",
        direct: [
            0.773, 0.912, 0.933, 0.965, 0.937, 0.946, 0.958, 0.965, 0.942, 0.990, 0.993, 0.993,
        ],
        proxy: [
            q(0.888, true),
            q(0.893, true),
            q(0.894, true),
            q(0.905, true),
            q(0.912, true),
            q(0.916, true),
            q(0.913, true),
            q(0.920, true),
            q(0.928, true),
            q(0.920, true),
            q(0.924, true),
            q(0.925, true),
        ],
        direct_mean_std: (0.942, 0.059),
        proxy_mean_std: (0.911, 0.014),
    },
    QuicSetup {
        profile: "shortwan",
        direct: [
            0.817, 0.933, 0.855, 0.890, 0.674, 0.957, 0.962, 0.961, 0.955, 0.766, 0.916, 0.753,
        ],
        proxy: [
            q(0.607, true),
            q(0.876, true),
            q(0.880, true),
            q(0.865, true),
            q(0.891, true),
            q(0.909, true),
            q(0.904, true),
            q(0.872, true),
            q(0.923, true),
            q(0.750, true),
            q(0.883, true),
            q(0.879, true),
        ],
        direct_mean_std: (0.870, 0.097),
        proxy_mean_std: (0.853, 0.089),
    },
    QuicSetup {
        profile: "wan",
        direct: [
            0.682, 0.696, 0.714, 0.719, 0.721, 0.722, 0.686, 0.720, 0.697, 0.720, 0.652, 0.708,
        ],
        proxy: [
            q(0.697, true),
            q(0.604, true),
            q(0.718, true),
            q(0.721, true),
            q(0.722, true),
            q(0.723, true),
            q(0.723, true),
            q(0.722, true),
            q(0.570, true),
            q(0.695, true),
            q(0.720, true),
            q(0.721, true),
        ],
        direct_mean_std: (0.703, 0.021),
        proxy_mean_std: (0.695, 0.052),
    },
    QuicSetup {
        profile: "longwan",
        direct: [
            0.295, 0.331, 0.317, 0.310, 0.313, 0.321, 0.343, 0.347, 0.319, 0.317, 0.309, 0.311,
        ],
        proxy: [
            q(0.301, true),
            q(0.322, false),
            q(0.407, false),
            q(0.427, false),
            q(0.520, false),
            q(0.446, false),
            q(0.434, false),
            q(0.361, false),
            q(0.352, false),
            q(0.292, false),
            q(0.280, false),
            q(0.359, false),
        ],
        direct_mean_std: (0.319, 0.015),
        proxy_mean_std: (0.375, 0.073),
    },
];

/// §5.6 single-run jitter, mean / median over the 12 sizes, µs, for direct, legacy S2DS and
/// sockmap (in that order), per setup profile.
pub(crate) const JITTER_MEAN_MEDIAN_US: [(&str, [(f64, f64); 3]); 5] = [
    ("lan", [(151.0, 31.0), (216.0, 54.0), (161.0, 42.0)]),
    ("metro", [(42.0, 29.0), (155.0, 38.0), (154.0, 47.0)]),
    ("shortwan", [(163.0, 55.0), (242.0, 54.0), (96.0, 59.0)]),
    ("wan", [(304.0, 182.0), (286.0, 166.0), (287.0, 156.0)]),
    ("longwan", [(594.0, 360.0), (625.0, 319.0), (552.0, 342.0)]),
];

/// The §5.4 setup for one of our WAN profiles (none for `none` or unknown names).
pub(crate) fn setup(profile: &str) -> Option<&'static Setup> {
    SETUPS.iter().find(|s| s.profile == profile)
}

/// The §5.5 QUIC data for one of our WAN profiles.
pub(crate) fn quic(profile: &str) -> Option<&'static QuicSetup> {
    QUIC.iter().find(|s| s.profile == profile)
}

/// The §5.6 jitter summary for one of our WAN profiles.
pub(crate) fn jitter(profile: &str) -> Option<&'static [(f64, f64); 3]> {
    JITTER_MEAN_MEDIAN_US
        .iter()
        .find(|(p, _)| *p == profile)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_reference_summary() {
        // §5.4 summary: peak direct goodput per setup, and the Long-WAN legacy 1 MiB efficiency.
        let peaks: Vec<f64> = SETUPS
            .iter()
            .map(|s| s.direct.iter().map(|p| p.gbps).fold(0.0, f64::max))
            .collect();
        assert_eq!(peaks, [15.372, 14.767, 13.093, 7.718, 6.851]);
        assert_eq!(setup("longwan").unwrap().legacy[11], p(6.929, 94.93));
        let lw = quic("longwan").unwrap();
        assert!(lw.proxy[0].measured);
        assert_eq!(lw.proxy.iter().filter(|q| !q.measured).count(), 11);
        assert!(QUIC[..4].iter().all(|s| s.proxy.iter().all(|q| q.measured)));
        assert!(setup("none").is_none());
    }
}
