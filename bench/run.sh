#!/usr/bin/env bash
# The testbed benchmarks (`cargo xtask bench [SUITE] [ARGS]`):
#   gateways (default)  direct vs SciStream-RS (copy, copy+TLS, splice, sockmap, dpdk) vs haproxy,
#                       nginx stream and socat, at 4 KiB and 1 MiB messages, plus session set-up
#   matrix              the paper's evaluation: ZeroMQ pub/sub over emulated WAN RTTs, plots and
#                       report (`matrix --quick` takes a few minutes; docs/evaluation.md)
#   report, compare, dpdk-rx (lcore receive path vs testpmd), dpdk-relay (TCP per lcore over memif)
# Extra arguments go to `s2bench SUITE` (see `s2bench SUITE --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  gateways|matrix|report|compare|dpdk-rx|dpdk-relay) exec target/release/s2bench "$@" ;;
  *) exec target/release/s2bench gateways "$@" ;;
esac
