#!/usr/bin/env bash
# The gateway benchmark on the testbed: direct vs SciStream-RS (copy, copy+TLS, splice, sockmap, dpdk) vs
# haproxy, nginx stream and socat, at 4 KiB and 1 MiB messages, plus session set-up time.
# Extra arguments go to `s2bench gateways` (see `s2bench gateways --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec target/release/s2bench gateways "$@"
