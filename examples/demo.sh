#!/usr/bin/env bash
# Demo: plan → apply → state list, on libvirt's embedded test driver (no daemon, no hosts), on a
# scratch copy of examples/plans/quickstart (apply writes es.xml back and keeps a state file;
# the example in the repository is never changed).
#
# From a fresh Debian 12 machine it installs the packages berth needs and builds berth. With
# BERTH=/path/to/berth it uses that binary instead (no install, no build).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${BERTH:-}" ]]; then
  tests/install-deps.sh
  cargo build --locked --release --quiet
  BERTH=target/release/berth
fi
BERTH=$(realpath "$BERTH")

scratch=$(mktemp -d "${TMPDIR:-/tmp}/berth-demo.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -R examples/plans/quickstart/. "$scratch/"
echo "Working on a scratch copy: $scratch"

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

step berth plan -out plan.berth
"$BERTH" -C "$scratch" plan -out "$scratch/plan.berth"
step berth apply plan.berth
"$BERTH" -C "$scratch" apply "$scratch/plan.berth"
step berth state list
"$BERTH" -C "$scratch" state list
step diff -u quickstart/es.xml es.xml "   # what apply wrote back"
diff -u examples/plans/quickstart/es.xml "$scratch/es.xml" || true
