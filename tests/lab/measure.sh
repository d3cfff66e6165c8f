#!/usr/bin/env bash
# measure.sh [ROUNDS]: times the lab and its tests; prints the median of ROUNDS runs (default 3)
# and every single run, as used for the figures in docs/lab.md.
#
# Each round: `lab.sh down --purge`, `lab.sh up 3` from nothing, `lab.sh up 3` again (all
# running), `lab.sh selftest`, each test of tests/lab.rs on its own (the compiled test binary,
# so cargo's own start-up is not counted), `lab.sh down`. Leaves the lab down. A step that
# fails is timed all the same and counted in the "failed" column; the exit code is then 1.
# Run as root from the repository root. Uses $BERTH_LAB (default /tmp/berth-lab).
set -euo pipefail

ROUNDS=${1:-3}
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
LAB_SH=$HERE/lab.sh
export BERTH_LAB=${BERTH_LAB:-/tmp/berth-lab}
cd "$HERE/../.."

BIN=$(cargo test --test lab --no-run --message-format=json 2>/dev/null |
	sed -n 's/.*"executable":"\([^"]*\/lab-[0-9a-f]*\)".*/\1/p' | tail -1)
[[ -x $BIN ]] || { echo "measure.sh: cannot build the lab test binary" >&2; exit 1; }
mapfile -t TESTS < <("$BIN" --list --ignored 2>/dev/null | sed -n 's/: test$//p')

OUT=$(mktemp)
declare -A RUNS FAILED
FAILURES=0
now_ms() { echo $(($(date +%s%N) / 1000000)); }
timed() { # timed LABEL CMD…: runs CMD, records its wall time and whether it failed
	local label=$1 t0
	shift
	t0=$(now_ms)
	if ! "$@" >"$OUT" 2>&1; then
		FAILED[$label]=$((${FAILED[$label]:-0} + 1))
		FAILURES=$((FAILURES + 1))
		echo "measure.sh: '$label' failed:" >&2
		tail -20 "$OUT" >&2
	fi
	RUNS[$label]+="$(($(now_ms) - t0)) "
}

trap '"$LAB_SH" down >/dev/null 2>&1 || true; rm -f "$OUT"' EXIT
LABELS=("up 3 (from nothing)" "up 3 (already up)" "selftest")
for t in "${TESTS[@]}"; do LABELS+=("test $t"); done
LABELS+=("down")
for ((r = 1; r <= ROUNDS; r++)); do
	"$LAB_SH" down --purge >/dev/null 2>&1
	timed "up 3 (from nothing)" "$LAB_SH" up 3
	timed "up 3 (already up)" "$LAB_SH" up 3
	timed "selftest" "$LAB_SH" selftest
	for t in "${TESTS[@]}"; do
		timed "test $t" "$BIN" --ignored --exact --test-threads=1 "$t"
	done
	timed "down" "$LAB_SH" down
	echo "round $r/$ROUNDS done" >&2
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
printf '| %-80s | %9s | %-20s | %s |\n' "what" "median ms" "runs (ms)" "failed"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..82})" "-----------" "----------------------" "--------"
for l in "${LABELS[@]}"; do
	printf '| %-80s | %9s | %-20s | %s |\n' "$l" "$(echo "${RUNS[$l]}" | median)" "${RUNS[$l]% }" "${FAILED[$l]:-0}"
done
((FAILURES == 0))
