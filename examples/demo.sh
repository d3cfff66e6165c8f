#!/usr/bin/env bash
# Demo: plan the drain of one host on the embedded libvirt test driver (no daemon, no hosts).
# From a fresh Debian 12 machine: installs the packages berth needs, builds it, runs the plan.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/install-deps.sh
cargo build --locked --release --quiet
exec target/release/berth -C examples/plans/drain-host plan "$@"
