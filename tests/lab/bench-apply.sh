#!/usr/bin/env bash
# bench-apply.sh: wall time of `berth apply` moving N running guests live on the KVM lab,
# against a hand-written parallel virsh script doing the same migrations. Not a test: it prints
# the runs, the medians and the ratio berth/virsh (docs/benchmarks-apply.md has the figures).
#
#   tests/lab/lab.sh up 3
#   cargo build --release
#   tests/lab/bench-apply.sh [-n GUESTS] [-r RUNS] [-m MiB] [-f] [-b BERTH]
#
#   -n GUESTS  guests, a multiple of 3 (default 6: two per host)
#   -r RUNS    measured runs of each side (default 7); one warm-up run of each is not counted
#   -m MiB     memory per guest (default 64)
#   -f         berth gathers host facts over SSH while planning (gather_facts = true)
#   -b BERTH   the berth binary (default target/release/berth)
#
# Each guest is a ticker (tests/lab/ticker.asm), so there are dirty pages to copy. Guest i
# starts on labh((i-1) mod 3 + 1). Every run, of either side, moves every guest live to the
# next host (labh1→labh2→labh3→labh1): each host sends N/3 guests and receives N/3. Runs of the
# two sides alternate, so both see the same machine load; between runs nothing is timed:
# berth's es.xml is rewritten from where the guests are, and the desired placement set one
# host further. berth runs with parallelism N and max_inbound/outbound_per_host N/3, so it may
# run every migration at once, as the virsh script does (one `virsh migrate` per guest in the
# background, then `wait`). Both drive libvirt's migration from the client side over
# qemu+tcp with the same migration URI (tcp://10.77.0.1N).
set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
ROOT=$(readlink -f "$HERE/../..")
LAB=${BERTH_LAB:-/tmp/berth-lab}
N=6 RUNS=7 MIB=64 FACTS=false BERTH=$ROOT/target/release/berth
while getopts n:r:m:fb: opt; do
	case $opt in
	n) N=$OPTARG ;;
	r) RUNS=$OPTARG ;;
	m) MIB=$OPTARG ;;
	f) FACTS=true ;;
	b) BERTH=$(readlink -f "$OPTARG") ;;
	*) exit 2 ;;
	esac
done
die() { echo "bench-apply.sh: $*" >&2; exit 1; }
[[ $N =~ ^[0-9]+$ && $N -gt 0 && $((N % 3)) == 0 ]] || die "-n must be a positive multiple of 3"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || die "-r must be a positive number"
[[ -x $BERTH ]] || die "no berth binary at $BERTH (cargo build --release, or -b PATH)"
for n in 1 2 3; do
	virsh -c "qemu+tcp://10.77.0.1$n/system" version >/dev/null 2>&1 || die "lab host labh$n does not answer (tests/lab/lab.sh up 3)"
done

uri() { echo "qemu+tcp://10.77.0.1$1/system"; }
guest() { echo "bench-$1"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# HOST[i]: the lab host (1..3) guest i is on now; LAST_MS: wall time of the last run.
declare -a HOST
LAST_MS=0
cleanup() {
	for n in 1 2 3; do
		for ((i = 1; i <= N; i++)); do
			virsh -c "$(uri "$n")" destroy "$(guest "$i")" >/dev/null 2>&1 || true
			virsh -c "$(uri "$n")" undefine "$(guest "$i")" >/dev/null 2>&1 || true
		done
	done
	rm -f "$LAB"/shared/bench-*.serial
	if [[ -n ${DIR:-} ]]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT
cleanup
DIR=$(mktemp -d /tmp/berth-bench-apply.XXXXXX)

for ((i = 1; i <= N; i++)); do
	HOST[i]=$(((i - 1) % 3 + 1))
	serial=$LAB/shared/$(guest "$i").serial
	: >"$serial"
	"$HERE/lab.sh" domxml "$(guest "$i")" "" "$LAB/shared/ticker.img" - "$serial" "$MIB" 1 >"$DIR/domain.xml"
	virsh -c "$(uri "${HOST[i]}")" define "$DIR/domain.xml" >/dev/null
	virsh -c "$(uri "${HOST[i]}")" start "$(guest "$i")" >/dev/null
done
next() { echo $(($1 % 3 + 1)); }

# es.xml where the guests are, main.hcl asking for every guest one host further.
write_config() {
	local specs=() n i list
	for n in 1 2 3; do
		list=()
		for ((i = 1; i <= N; i++)); do
			[[ ${HOST[i]} == "$n" ]] && list+=("$(guest "$i"):$MIB:1")
		done
		specs+=("labh$n=$(IFS=,; echo "${list[*]}")")
	done
	"$HERE/esxml.sh" "${specs[@]}" >"$DIR/es.xml"
	{
		cat <<-EOF
			inventory {
			  es_xml      = "es.xml"
			  libvirt_uri = "qemu+tcp://{host}/system"
			  ssh {
			    user             = "root"
			    identity_file    = "$LAB/ssh/id_ed25519"
			    known_hosts_file = "$LAB/ssh/known_hosts"
			    options          = ["Include=$LAB/ssh/ssh_config"]
			    allow_command_options = ["Include"]
			    gather_facts     = $FACTS
			  }
			}
			defaults {
			  mode                  = "live"
			  parallelism           = $N
			  max_inbound_per_host  = $((N / 3))
			  max_outbound_per_host = $((N / 3))
			  vcpu_overcommit       = $N
			  shared_storage        = ["$LAB/shared"]
			}
		EOF
		for n in 1 2 3; do
			printf 'host "labh%s" {\n  libvirt_uri   = "%s"\n  migration_uri = "tcp://10.77.0.1%s"\n}\n' "$n" "$(uri "$n")" "$n"
		done
		for ((i = 1; i <= N; i++)); do
			printf 'guest "%s" { host = "labh%s" }\n' "$(guest "$i")" "$(next "${HOST[i]}")"
		done
	} >"$DIR/main.hcl"
}

rotate() {
	for ((i = 1; i <= N; i++)); do HOST[i]=$(next "${HOST[i]}"); done
}

# The guests are where HOST says, each running on exactly one host.
check_placement() {
	local i n state
	for ((i = 1; i <= N; i++)); do
		for n in 1 2 3; do
			state=$(virsh -c "$(uri "$n")" domstate "$(guest "$i")" 2>/dev/null || true)
			if [[ $n == "${HOST[i]}" ]]; then
				[[ $state == running ]] || die "$(guest "$i") is not running on labh$n (${state:-undefined})"
			else
				[[ -z $state ]] || die "$(guest "$i") is still defined on labh$n ($state)"
			fi
		done
	done
}

run_berth() {
	write_config
	local start end
	start=$(now_ms)
	"$BERTH" -C "$DIR" apply -auto-approve >"$DIR/berth.out" 2>&1 || {
		cat "$DIR/berth.out" >&2
		die "berth apply failed"
	}
	end=$(now_ms)
	rotate
	check_placement
	LAST_MS=$((end - start))
}

run_virsh() {
	local start end i to pids=() failed=0
	start=$(now_ms)
	for ((i = 1; i <= N; i++)); do
		to=$(next "${HOST[i]}")
		virsh -c "$(uri "${HOST[i]}")" migrate --live --persistent --undefinesource \
			"$(guest "$i")" "$(uri "$to")" "tcp://10.77.0.1$to" >/dev/null &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	end=$(now_ms)
	((failed == 0)) || die "a virsh migration failed"
	rotate
	check_placement
	LAST_MS=$((end - start))
}

# The tickers boot in 2-3 s; migrate them once they run their loop.
sleep 4
echo "bench-apply: $N guests of $MIB MiB, $RUNS runs each, gather_facts=$FACTS, berth $("$BERTH" --version 2>/dev/null || echo "$BERTH")"
run_berth
run_virsh
berth_ms=() virsh_ms=()
for ((r = 1; r <= RUNS; r++)); do
	run_berth
	berth_ms+=("$LAST_MS")
	run_virsh
	virsh_ms+=("$LAST_MS")
	echo "run $r: berth ${berth_ms[-1]} ms, virsh ${virsh_ms[-1]} ms"
done
mb=$(printf '%s\n' "${berth_ms[@]}" | median)
mv=$(printf '%s\n' "${virsh_ms[@]}" | median)
echo "berth runs (ms): ${berth_ms[*]}"
echo "virsh runs (ms): ${virsh_ms[*]}"
echo "median berth ${mb} ms, median virsh ${mv} ms, ratio berth/virsh $(awk -v b="$mb" -v v="$mv" 'BEGIN { printf "%.2f", b / v }')"
for ((i = 1; i <= N; i++)); do
	serial=$LAB/shared/$(guest "$i").serial
	boots=$(grep -c '^ticker boot' "$serial" || true)
	[[ $boots == 1 ]] || die "$(guest "$i") booted $boots times: a migration was not live"
done
echo "every guest booted once: all $(((RUNS + 1) * 2)) rounds of migrations were live"
