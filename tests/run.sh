#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, unit and integration tests, then the
# multi-host KVM lab (libvirtd + QEMU + sshd per host in network namespaces) and the tests that
# migrate real guests on it. The lab is always torn down, even when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/install-deps.sh

echo "== cargo fmt --check, cargo clippy (warnings are errors)"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo test (unit, integration, examples, property tests)"
cargo test --locked
# Benches are not built by `cargo test`; type-check them so they cannot rot unnoticed.
cargo check --locked --benches

echo "== KVM lab"
export BERTH_LAB=${BERTH_LAB:-/tmp/berth-lab}
trap 'tests/lab/lab.sh down >/dev/null 2>&1 || true' EXIT
# A fresh lab every run: domains an interrupted earlier run left defined in a host's libvirt
# configuration would be drift to the first tests (a purged lab comes back in about 4 s).
tests/lab/lab.sh down --purge
tests/lab/lab.sh up 3
cargo test --locked --test lab -- --ignored --test-threads=1
cargo test --locked --test lab_apply -- --ignored --test-threads=1
