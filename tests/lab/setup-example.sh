#!/usr/bin/env bash
# setup-example.sh: puts the lab into the state examples/plans/lab/es.xml describes.
#
#   labh1: labvm1 (running ticker, 64 MiB, 1 vCPU), labvm2 (shut off, 32 MiB, 1 vCPU)
#   labh2: nothing, and no bridge vmbondeth0 (so moving a guest there needs CREATE_BRIDGES)
#   labh3: labvm3 (running ticker, 64 MiB, 2 vCPUs)
#   every guest has one interface on bridge vmbondeth0 (Exadata's client bridge name).
#
#   tests/lab/setup-example.sh          (re)create that state, wherever the guests are now
#   tests/lab/setup-example.sh --clean  remove the example's guests and bridges
#
# Needs a lab of 3 hosts (tests/lab/lab.sh up 3). The tickers write their serial output to
# $LAB/shared/labvmN.serial ("tick N" about every second).
set -euo pipefail

LAB_SH=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lab.sh
LAB=${BERTH_LAB:-/tmp/berth-lab}
BRIDGE=vmbondeth0
GUESTS=(labvm1 labvm2 labvm3)

uri() { echo "qemu+tcp://10.77.0.1$1/system"; }

for n in 1 2 3; do
	"$LAB_SH" exec "$n" true 2>/dev/null || {
		echo "setup-example.sh: lab host labh$n is not up (run: tests/lab/lab.sh up 3)" >&2
		exit 1
	}
done

# Remove the example's guests from every host and the bridge from every host.
for n in 1 2 3; do
	for g in "${GUESTS[@]}"; do
		virsh -c "$(uri "$n")" destroy "$g" >/dev/null 2>&1 || true
		virsh -c "$(uri "$n")" undefine "$g" >/dev/null 2>&1 || true
	done
	"$LAB_SH" exec "$n" ip link del "$BRIDGE" >/dev/null 2>&1 || true
done
rm -f "$LAB"/shared/labvm[0-9].serial
if [[ ${1:-} == --clean ]]; then
	echo "setup-example.sh: example guests and bridges removed"
	exit 0
fi

# define HOST NAME DISK|- MiB VCPUS
define() {
	local n=$1 name=$2 disk=$3 mib=$4 vcpus=$5 serial=- xml
	if [[ $disk != - ]]; then
		serial=$LAB/shared/$name.serial
		: >"$serial"
	fi
	xml=$(mktemp)
	"$LAB_SH" domxml "$name" "" "$disk" "$BRIDGE" "$serial" "$mib" "$vcpus" >"$xml"
	virsh -c "$(uri "$n")" define "$xml" >/dev/null
	rm -f "$xml"
}

for n in 1 3; do
	"$LAB_SH" exec "$n" ip link add "$BRIDGE" type bridge
	"$LAB_SH" exec "$n" ip link set "$BRIDGE" up
done
define 1 labvm1 "$LAB/shared/ticker.img" 64 1
define 1 labvm2 - 32 1
define 3 labvm3 "$LAB/shared/ticker.img" 64 2
virsh -c "$(uri 1)" start labvm1 >/dev/null
virsh -c "$(uri 3)" start labvm3 >/dev/null

for n in 1 2 3; do
	echo "labh$n:"
	virsh -c "$(uri "$n")" list --all | sed -n '3,$p' | sed '/^$/d; s/^/  /'
done
