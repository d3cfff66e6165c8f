#!/usr/bin/env bash
# esxml.sh: prints a minimal OEDA es.xml for lab hosts and the guests they hold, so that a lab
# test or benchmark can describe its own placement to berth.
#
#   esxml.sh SPEC...        SPEC = HOST[=GUEST:MiB:VCPUS[,GUEST:MiB:VCPUS]...]
#   esxml.sh labh1=la-a:64:1,la-b:32:1 labh2 labh3=la-c:64:2 > es.xml
#
# Every host is a KVM host (machineType compute, osType LinuxKVM); every guest a LinuxKVMGuest
# whose hostName is its libvirt domain name, with guestMemory and guestCores as given (they must
# match the domain's, or berth reports drift). No networks and no clusters: lab tests that need
# anti-affinity use examples/plans/lab instead.
set -euo pipefail

die() { echo "esxml.sh: $*" >&2; exit 1; }

[[ $# -gt 0 ]] || die "usage: esxml.sh HOST[=GUEST:MiB:VCPUS[,…]]..."

name_re='^[A-Za-z0-9][A-Za-z0-9.-]*$'
hosts=()
guests=() # "GUEST MiB VCPUS"
declare -A guests_of=()
for spec in "$@"; do
	host=${spec%%=*}
	[[ $host =~ $name_re ]] || die "bad host name \`$host\` in \`$spec\`"
	hosts+=("$host")
	guests_of[$host]=""
	[[ $spec == *=* ]] || continue
	IFS=, read -ra list <<<"${spec#*=}"
	for g in "${list[@]}"; do
		IFS=: read -r name mib vcpus extra <<<"$g"
		[[ $name =~ $name_re && $mib =~ ^[0-9]+$ && $vcpus =~ ^[0-9]+$ && -z $extra ]] ||
			die "bad guest \`$g\` in \`$spec\` (GUEST:MiB:VCPUS expected)"
		guests+=("$name $mib $vcpus")
		guests_of[$host]+=" $name"
	done
done

cat <<'EOF'
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!-- Written by tests/lab/esxml.sh for a berth lab test. -->
<engineeredSystem xmlns="model" id="4c616268-0000-4000-8000-0000000000e6" oedaversion="200728" filetype="PAAS">
    <customerName>berth-lab</customerName>
    <machines>
EOF
for host in "${hosts[@]}"; do
	echo "        <machine id=\"${host}_id\">"
	echo "            <hostName>$host</hostName>"
	echo "            <machineType>compute</machineType>"
	echo "            <virtual>false</virtual>"
	echo "            <osType>LinuxKVM</osType>"
	for g in ${guests_of[$host]}; do
		echo "            <machine id=\"${g}_id\" />"
	done
	echo "        </machine>"
done
for g in "${guests[@]}"; do
	read -r name mib vcpus <<<"$g"
	echo "        <machine id=\"${name}_id\">"
	echo "            <hostName>$name</hostName>"
	echo "            <machineType>compute</machineType>"
	echo "            <virtual>true</virtual>"
	echo "            <osType>LinuxKVMGuest</osType>"
	echo "            <guestCores>$vcpus</guestCores>"
	echo "            <guestMemory>${mib}MB</guestMemory>"
	echo "        </machine>"
done
cat <<'EOF'
    </machines>
</engineeredSystem>
EOF
