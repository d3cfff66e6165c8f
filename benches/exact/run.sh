#!/usr/bin/env bash
# Issue 13's quality bench: berth's schedules against the exact optimum (CP-SAT).
#
#   benches/exact/run.sh [COUNT] [FIRST_SEED] [TIME_LIMIT_S]
#
# Writes COUNT seeded instances (default 40 from seed 1) with berth's schedule to
# target/schedule-exact/, solves each with CP-SAT (one worker, niced, TIME_LIMIT_S each,
# default 20) and prints berth ÷ optimum per instance and the summary; the rows go to
# target/schedule-exact/results.json. OR-tools is a bench tool, not a dependency of berth:
# it is installed into a virtualenv under ${BERTH_EXACT_VENV:-/tmp/berth-exact-venv}.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-40}
first=${2:-1}
limit=${3:-20}
out=target/schedule-exact
venv=${BERTH_EXACT_VENV:-/tmp/berth-exact-venv}
if ! "$venv/bin/python" -c 'import ortools' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet ortools
fi
rm -rf "$out"
# A debug build of the bench binary is fast enough for instances this small.
cargo test --locked --bench schedule_exact -- "$out" "$count" "$first"
nice "$venv/bin/python" benches/exact/solve.py "$out" --time-limit "$limit" --json "$out/results.json"
