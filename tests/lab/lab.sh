#!/usr/bin/env bash
# lab.sh: a multi-host KVM/libvirt lab on one machine, built from network namespaces.
#
# Each lab host N is a network + mount + UTS namespace ("labhN", 10.77.0.1N) with its own
# libvirtd, virtlogd and sshd, a private /run, /var, /etc/libvirt and /sys, and a unique
# libvirt host UUID and boot id (a file bind-mounted over /proc/sys/kernel/random/boot_id, which a
# command on the host rewrites to stand in for a reboot). Real QEMU guests run and live-migrate between the hosts. Design,
# measurements and pitfalls: docs/lab.md.
#
#   lab.sh up N          build or repair a lab of N hosts (1..9); idempotent
#   lab.sh down [--purge] stop everything the lab started; --purge also removes $LAB
#   lab.sh status        daemons, reachability, guests, memory
#   lab.sh exec N CMD…   run CMD inside host N (net + mount + UTS namespaces)
#   lab.sh env           print shell exports (BERTH_LAB, PATH with the lab's ssh, IPs, URIs)
#   lab.sh domxml NAME [kvm|qemu] [DISK|-] [BRIDGE|-] [SERIAL|-] [MiB] [VCPUS]
#                        print a test guest's domain XML
#   lab.sh ticker-image PATH  write the ticker boot disk (raw, 1 MiB) to PATH
#   lab.sh selftest      prove the lab works; PASS/FAIL with timings, exit 1 on any FAIL
#
# $LAB is $BERTH_LAB, or /tmp/berth-lab. Guests are KVM when /dev/kvm works, TCG otherwise
# (BERTH_LAB_DOMAIN_TYPE=qemu forces TCG). Run as root. Only 10.77.0.0/24 is used, and only
# between the lab's own namespaces and the root namespace's "labgw" interface.
set -euo pipefail

LAB=${BERTH_LAB:-/tmp/berth-lab}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
NET=10.77.0
GW_IP=$NET.1
SWITCH_NS=labsw
MAX_HOSTS=9

# The ticker boot sector (tests/lab/ticker.asm, `nasm -f bin`), gzip -9n | base64.
# It prints "ticker boot" once, then "tick N" to COM1 about every second, and powers off
# ("ticker off") on the ACPI power button, i.e. on a graceful shutdown.
TICKER_GZ_B64='
H4sIAAAAAAACA/tleKDvRt+FPQw1v//sW1bzIoFhFxPbW14GxvfdcjksX3YxsL1dycBYarUwh0Xz
RvMPoaI3/9mO1uxiEOg7ZPh/J0PDwqM1n1c3HmIQaPzFEFD0at/mmheyDEDBF0oMG7hemDK83rFv
Z80LLoZdLGw7GBTef3n9d03LgRLWF9IMr78d3s3FYHjS8NL3z0GOrQdKv0WwGLxgZnj043BQwK6/
zG9WKJT8jtj1g/ld1OGSzOTs1CKFpPz8Ei4GEEeBASqUn5bGxTAKyAShqwB1xXegAAIAAA==
'

# libvirt double-forks QEMU, so a QEMU process's parent becomes PID 1, which may reap late;
# libvirt then waits about 2 s on every destroy or migration for the zombie to go. This tiny
# child-subreaper runs libvirtd as its child and reaps every orphan at once.
# shellcheck disable=SC2016 # perl source, expanded by perl
REAPER_PL='
use strict; use warnings;
syscall(157, 36, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_CHILD_SUBREAPER): $!\n";
my $child = fork() // die "fork: $!\n";
if ($child == 0) { exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n"; }
$SIG{TERM} = $SIG{INT} = sub { kill "TERM", $child; };
while (1) {
    my $pid = waitpid(-1, 0);
    next if $pid > 0;
    last if $!{ECHILD};
}
'

die() { echo "lab.sh: $*" >&2; exit 1; }
log() { echo "lab: $*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

host_ip() { echo "$NET.1$1"; }
host_name() { echo "labh$1"; }
host_dir() { echo "$LAB/hosts/h$1"; }
tcp_uri() { echo "qemu+tcp://$(host_ip "$1")/system"; }

check_lab_path() {
	[[ $LAB == /* && $LAB =~ ^[A-Za-z0-9._/-]+$ ]] ||
		die "BERTH_LAB must be an absolute path of [A-Za-z0-9._/-] (got '$LAB')"
	# Hosts get their own /run, /var, /sys and /etc/libvirt: the lab cannot live below them.
	case $LAB/ in
	/run/* | /var/* | /sys/* | /proc/* | /etc/libvirt/*) die "BERTH_LAB cannot be under /run, /var, /sys, /proc or /etc/libvirt (got '$LAB')" ;;
	esac
}

require_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

# Hosts that exist: the numbers N of $LAB/hosts/hN whose network namespace is present.
existing_hosts() {
	local d n
	for d in "$LAB"/hosts/h*; do
		[[ -d $d ]] || continue
		n=${d##*/h}
		[[ $n =~ ^[1-9]$ ]] || continue
		[[ -e /run/netns/$(host_name "$n") ]] && echo "$n"
	done | sort -n
}

# --- packages -------------------------------------------------------------------------

ensure_packages() {
	local missing=() cmd
	for cmd in libvirtd virtlogd virsh qemu-system-x86_64 /usr/sbin/sshd ssh ssh-keygen ip \
		nsenter unshare perl gzip base64 truncate; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
	done
	((${#missing[@]} == 0)) && return 0
	command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
	log "installing packages (missing: ${missing[*]})"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# qemu-utils is deliberately not requested: the lab needs no qemu-img.
	apt-get install -y -qq --no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu \
		libvirt-clients qemu-system-x86 openssh-server openssh-client iproute2 procps util-linux \
		>/dev/null
}

# kvm when /dev/kvm really works for QEMU, qemu (TCG) otherwise.
probe_domain_type() {
	if [[ -c /dev/kvm ]] && echo quit | timeout 20 qemu-system-x86_64 -machine none,accel=kvm \
		-nodefaults -display none -monitor stdio >/dev/null 2>&1; then
		echo kvm
	else
		echo qemu
	fi
}

# BERTH_LAB_DOMAIN_TYPE=qemu forces TCG guests even where KVM works.
domain_type() {
	if [[ -n ${BERTH_LAB_DOMAIN_TYPE:-} ]]; then
		echo "$BERTH_LAB_DOMAIN_TYPE"
	elif [[ -s $LAB/domain-type ]]; then
		cat "$LAB/domain-type"
	else
		probe_domain_type
	fi
}

# --- namespaces and processes --------------------------------------------------------------

# Run a command inside host N: its network, mount and UTS namespaces (not `ip netns exec`,
# which builds a fresh mount namespace and so misses the host's private /run).
in_host() {
	local n=$1
	shift
	nsenter --net="/run/netns/$(host_name "$n")" --mount="$LAB/ns/h$n.mnt" \
		--uts="$LAB/ns/h$n.uts" --wd="$PWD" -- "$@"
}

# PIDs of processes in host N's network namespace with the given command name.
host_pids_named() {
	local n=$1 comm=$2 pid
	for pid in $(ip netns pids "$(host_name "$n")" 2>/dev/null); do
		[[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && echo "$pid"
	done
	return 0
}

daemon_running() { [[ -n $(host_pids_named "$1" "$2") ]]; }

# Stop every process in host N's network namespace: all were started by the lab (daemons,
# their QEMU guests, shells opened with `exec`). TERM, wait up to 3 s, then KILL.
kill_host_processes() {
	local ns pids i
	ns=$(host_name "$1")
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	[[ -z $pids ]] && return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[[ -z $pids ]] && return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		[[ -z $(ip netns pids "$ns" 2>/dev/null || true) ]] && return 0
		sleep 0.1
	done
	log "warning: processes left in $ns: $(ip netns pids "$ns" | tr '\n' ' ')"
}

# --- files -------------------------------------------------------------------------------

write_ssh_files() {
	local n ip name d
	mkdir -p "$LAB/ssh" "$LAB/bin" "$LAB/etc"
	chmod 700 "$LAB/ssh"
	[[ -s $LAB/ssh/id_ed25519 ]] ||
		ssh-keygen -q -t ed25519 -N '' -C berth-lab -f "$LAB/ssh/id_ed25519"
	cp "$LAB/ssh/id_ed25519.pub" "$LAB/ssh/authorized_keys"
	{
		echo "# berth lab: written by lab.sh up"
		for n in $(seq 1 "$MAX_HOSTS"); do
			echo "Host $(host_name "$n")"
			echo "    HostName $(host_ip "$n")"
		done
		cat <<-EOF
			Host labh* $NET.*
			    User root
			    IdentityFile $LAB/ssh/id_ed25519
			    IdentitiesOnly yes
			    UserKnownHostsFile $LAB/ssh/known_hosts
			    GlobalKnownHostsFile /dev/null
			    StrictHostKeyChecking yes
			    BatchMode yes
			    ConnectTimeout 5
			    LogLevel ERROR
		EOF
	} >"$LAB/ssh/ssh_config.new"
	# Rewrite in place: hosts bind-mount this inode as their /etc/ssh/ssh_config.
	cat "$LAB/ssh/ssh_config.new" >"$LAB/ssh/ssh_config"
	rm -f "$LAB/ssh/ssh_config.new"
	cat >"$LAB/bin/ssh" <<-EOF
		#!/bin/sh
		# berth lab: ssh with the lab's key, known_hosts and strict host key checking.
		exec /usr/bin/ssh -F $LAB/ssh/ssh_config "\$@"
	EOF
	chmod 755 "$LAB/bin/ssh"
	: >"$LAB/ssh/known_hosts.new"
	for d in "$LAB"/hosts/h*; do
		[[ -s $d/ssh/ssh_host_ed25519_key.pub ]] || continue
		n=${d##*/h}
		name=$(host_name "$n")
		ip=$(host_ip "$n")
		echo "$name,$ip $(cut -d' ' -f1,2 "$d/ssh/ssh_host_ed25519_key.pub")" >>"$LAB/ssh/known_hosts.new"
	done
	mv "$LAB/ssh/known_hosts.new" "$LAB/ssh/known_hosts"
}

write_etc_hosts() {
	local n
	{
		echo "127.0.0.1 localhost"
		echo "$GW_IP labgw"
		for n in $(seq 1 "$MAX_HOSTS"); do echo "$(host_ip "$n") $(host_name "$n")"; done
	} >"$LAB/etc/hosts.new"
	# Rewrite in place: hosts bind-mount this inode as their /etc/hosts.
	cat "$LAB/etc/hosts.new" >"$LAB/etc/hosts"
	rm -f "$LAB/etc/hosts.new"
}

write_host_files() {
	local n=$1 h ip
	h=$(host_dir "$n")
	ip=$(host_ip "$n")
	mkdir -p "$h"/{run,var.upper,var.work,etc-libvirt/qemu,ssh}
	cat >"$h/etc-libvirt/libvirtd.conf" <<-EOF
		# berth lab host $(host_name "$n")
		listen_tls = 0
		listen_tcp = 1
		listen_addr = "$ip"
		auth_tcp = "none"
		auth_unix_ro = "none"
		auth_unix_rw = "none"
		host_uuid = "4c616268-0000-4000-8000-00000000000$n"
		log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
	EOF
	cat >"$h/etc-libvirt/qemu.conf" <<-EOF
		# berth lab host $(host_name "$n")
		user = "root"
		group = "root"
		security_driver = "none"
		remember_owner = 0
		cgroup_controllers = [ ]
		migration_host = "$ip"
		migration_address = "$ip"
	EOF
	cat >"$h/etc-libvirt/virtlogd.conf" <<-EOF
		log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
	EOF
	# libvirt resolves its compiled-in default user "libvirt-qemu" before it reads qemu.conf;
	# without libvirt-daemon-system that user does not exist. Hosts see these copies instead.
	# root's home is the host's own (empty) directory: bash run by sshd sources ~/.bashrc even
	# for a plain command, and the machine's may be slow (pyenv init: 0.5 s per command).
	# Written in place (not renamed over), so that a running host's bind mount sees it.
	mkdir -p "$h/root"
	sed "s|^root:\([^:]*\):0:0:\([^:]*\):[^:]*:|root:\1:0:0:\2:$h/root:|" /etc/passwd >"$h/passwd"
	cp /etc/group "$h/group"
	grep -q '^libvirt-qemu:' "$h/passwd" ||
		echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >>"$h/passwd"
	grep -q '^libvirt-qemu:' "$h/group" || echo 'libvirt-qemu:x:64055:' >>"$h/group"
	grep -q '^kvm:' "$h/group" || echo 'kvm:x:64056:' >>"$h/group"
	[[ -s $h/ssh/ssh_host_ed25519_key ]] ||
		ssh-keygen -q -t ed25519 -N '' -C "$(host_name "$n")" -f "$h/ssh/ssh_host_ed25519_key"
	cat >"$h/ssh/sshd_config" <<-EOF
		# berth lab host $(host_name "$n")
		ListenAddress $ip:22
		HostKey $h/ssh/ssh_host_ed25519_key
		PidFile /run/sshd.pid
		AuthorizedKeysFile $LAB/ssh/authorized_keys
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		PrintMotd no
		PrintLastLog no
		Subsystem sftp internal-sftp
	EOF
}

# Write the ticker boot disk: the 512-byte boot sector padded to 1 MiB (SeaBIOS does not boot
# a virtio disk of a single sector). Raw format, so no qemu-img is needed.
write_ticker_image() {
	local out=$1
	echo "$TICKER_GZ_B64" | base64 -d | gzip -dc >"$out.tmp"
	[[ $(stat -c %s "$out.tmp") == 512 ]] || die "embedded ticker boot sector is not 512 bytes"
	truncate -s 1M "$out.tmp"
	mv "$out.tmp" "$out"
}

# Whether the disk at $1 holds the embedded boot sector (an older lab may have an older ticker).
ticker_image_current() {
	[[ -s $1 ]] && cmp -s -n 512 "$1" <(echo "$TICKER_GZ_B64" | base64 -d | gzip -dc)
}

# --- building -------------------------------------------------------------------------------

ensure_switch() {
	mkdir -p "$LAB/ns"
	# nsfs files can only be bind-mounted on a private mount (matters where / is shared).
	if ! mountpoint -q "$LAB/ns"; then
		mount --bind "$LAB/ns" "$LAB/ns"
		mount --make-private "$LAB/ns"
	fi
	if [[ ! -e /run/netns/$SWITCH_NS ]]; then
		ip netns add "$SWITCH_NS"
		no_ipv6 "$SWITCH_NS"
	fi
	ip -n "$SWITCH_NS" link show br0 >/dev/null 2>&1 || ip -n "$SWITCH_NS" link add br0 type bridge
	ip -n "$SWITCH_NS" link set br0 up
	if ! ip link show labgw >/dev/null 2>&1; then
		ip link add labgw type veth peer name gw netns "$SWITCH_NS"
		sysctl -qw net.ipv6.conf.labgw.disable_ipv6=1
		ip addr add "$GW_IP/24" dev labgw
	fi
	ip link set labgw up
	ip -n "$SWITCH_NS" link set gw master br0 up
}

# The lab speaks IPv4 on 10.77.0.0/24 only: no IPv6 (not even link-local) on any interface
# created in namespace NS from now on.
no_ipv6() {
	ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
}

# Runs inside host N's fresh mount + UTS namespaces (internal subcommand).
host_mounts() {
	local n=$1 h
	h=$(host_dir "$n")
	hostname "$(host_name "$n")"
	mount -t sysfs sysfs /sys # shows this network namespace's interfaces
	mount --bind "$h/run" /run
	mount -t overlay overlay -o "lowerdir=/var,upperdir=$h/var.upper,workdir=$h/var.work" /var
	mkdir -p /etc/libvirt
	mount --bind "$h/etc-libvirt" /etc/libvirt
	mount --bind "$LAB/etc/hosts" /etc/hosts
	mount --bind "$LAB/ssh/ssh_config" /etc/ssh/ssh_config
	mount --bind "$h/passwd" /etc/passwd
	mount --bind "$h/group" /etc/group
	# The host's own boot id: a fresh one per (re)built host, and a command run on the host
	# "reboots" it by writing a new one (as a rolling maintenance's host command does in
	# tests/lab_apply.rs; berth's WAIT_HOST waits for the change).
	cat /proc/sys/kernel/random/uuid >"$h/boot_id"
	mount --bind "$h/boot_id" /proc/sys/kernel/random/boot_id
	mkdir -p /run/sshd /var/log/libvirt
	# Do not pin the other hosts' namespace files.
	umount -l "$LAB/ns"
}

create_host() {
	local n=$1 name ip
	name=$(host_name "$n")
	ip=$(host_ip "$n")
	# A half-built host (e.g. interrupted `up`) is rebuilt from scratch.
	if [[ -e /run/netns/$name ]] && ! mountpoint -q "$LAB/ns/h$n.mnt"; then
		destroy_host "$n"
	fi
	[[ -e /run/netns/$name ]] && return 0
	ip netns add "$name"
	no_ipv6 "$name"
	ip -n "$SWITCH_NS" link add "h$n" type veth peer name eth0 netns "$name"
	ip -n "$SWITCH_NS" link set "h$n" master br0 up
	ip -n "$name" link set lo up
	ip -n "$name" addr add "$ip/24" dev eth0
	ip -n "$name" link set eth0 up
	rm -rf "$(host_dir "$n")/run"/* "$(host_dir "$n")/var.work"/*
	touch "$LAB/ns/h$n.mnt" "$LAB/ns/h$n.uts"
	nsenter --net="/run/netns/$name" unshare --mount="$LAB/ns/h$n.mnt" --uts="$LAB/ns/h$n.uts" \
		--propagation private "$SELF" __host-mounts "$n"
}

start_daemons() {
	local n=$1 h
	h=$(host_dir "$n")
	if ! daemon_running "$n" virtlogd; then
		in_host "$n" virtlogd -d </dev/null >>"$h/virtlogd.out" 2>&1
	fi
	if ! daemon_running "$n" libvirtd; then
		in_host "$n" setsid perl -e "$REAPER_PL" -- libvirtd --listen \
			</dev/null >>"$h/libvirtd.out" 2>&1 &
	fi
	if ! daemon_running "$n" sshd; then
		in_host "$n" /usr/sbin/sshd -f "$h/ssh/sshd_config" -E "$h/sshd.log" </dev/null
	fi
}

wait_host_ready() {
	local n=$1 ip i
	ip=$(host_ip "$n")
	for ((i = 0; i < 300; i++)); do
		if virsh -c "$(tcp_uri "$n")" version >/dev/null 2>&1 &&
			timeout 1 bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "host $(host_name "$n") did not come up in 30 s (see $(host_dir "$n")/libvirtd.out, sshd.log)"
}

# libvirt probes QEMU's capabilities lazily: the first define or incoming migration on a
# fresh daemon takes seconds. Probe all hosts now, in parallel.
warm_up() {
	local n pids=() type
	type=$(domain_type)
	for n in "$@"; do
		virsh -c "$(tcp_uri "$n")" domcapabilities --virttype "$type" >/dev/null 2>&1 &
		pids+=($!)
	done
	for n in "${pids[@]}"; do wait "$n" || true; done
}

cmd_up() {
	local count=${1:-3} n t0 hosts
	[[ $count =~ ^[1-9]$ ]] || die "up: number of hosts must be 1..$MAX_HOSTS"
	require_root
	check_lab_path
	t0=$(now_ms)
	ensure_packages
	mkdir -p "$LAB"/{hosts,shared,bin,etc,ns}
	[[ -s $LAB/domain-type ]] || probe_domain_type >"$LAB/domain-type"
	for n in $(seq 1 "$count"); do write_host_files "$n"; done
	write_ssh_files
	write_etc_hosts
	ticker_image_current "$LAB/shared/ticker.img" || write_ticker_image "$LAB/shared/ticker.img"
	ensure_switch
	hosts=$(existing_hosts; seq 1 "$count")
	hosts=$(echo "$hosts" | sort -nu)
	for n in $hosts; do
		create_host "$n"
		start_daemons "$n"
	done
	for n in $hosts; do wait_host_ready "$n"; done
	# shellcheck disable=SC2086
	warm_up $hosts
	log "up: $(echo "$hosts" | wc -w) hosts ($(domain_type)) in $(($(now_ms) - t0)) ms; \`$SELF env\` prints the exports"
}

# --- teardown ----------------------------------------------------------------------------------

destroy_host() {
	local n=$1
	kill_host_processes "$n"
	mountpoint -q "$LAB/ns/h$n.mnt" && umount "$LAB/ns/h$n.mnt"
	mountpoint -q "$LAB/ns/h$n.uts" && umount "$LAB/ns/h$n.uts"
	rm -f "$LAB/ns/h$n.mnt" "$LAB/ns/h$n.uts"
	[[ -e /run/netns/$(host_name "$n") ]] && ip netns del "$(host_name "$n")"
	rm -rf "$(host_dir "$n")/run"/* "$(host_dir "$n")/var.work"/*
	return 0
}

cmd_down() {
	local purge=0 n t0
	[[ ${1:-} == --purge ]] && purge=1
	require_root
	check_lab_path
	t0=$(now_ms)
	for n in $(seq 1 "$MAX_HOSTS"); do
		if [[ -e /run/netns/$(host_name "$n") || -e $LAB/ns/h$n.mnt ]]; then destroy_host "$n"; fi
	done
	[[ -e /run/netns/$SWITCH_NS ]] && ip netns del "$SWITCH_NS"
	ip link show labgw >/dev/null 2>&1 && ip link del labgw
	if [[ -d $LAB/ns ]] && mountpoint -q "$LAB/ns"; then umount "$LAB/ns"; fi
	if ((purge)) && [[ -d $LAB ]]; then
		# Refuse to remove a directory the lab did not make.
		[[ -d $LAB/hosts && -d $LAB/shared ]] || die "down --purge: $LAB does not look like a lab"
		rm -rf "$LAB"
	fi
	log "down$( ((purge)) && echo ' --purge') in $(($(now_ms) - t0)) ms"
}

# --- inspection ----------------------------------------------------------------------------------

cmd_status() {
	local n d pids rss pid kb state=0
	check_lab_path
	if [[ -z $(existing_hosts) ]]; then
		echo "lab at $LAB: down"
		return 1
	fi
	echo "lab at $LAB ($(domain_type) guests)"
	for n in $(existing_hosts); do
		printf '%s %s:' "$(host_name "$n")" "$(host_ip "$n")"
		for d in libvirtd virtlogd sshd; do
			if daemon_running "$n" "$d"; then printf ' %s=up' "$d"; else printf ' %s=DOWN' "$d"; state=1; fi
		done
		if "$LAB/bin/ssh" "$(host_name "$n")" true 2>/dev/null; then printf ' ssh=ok'; else printf ' ssh=FAIL'; state=1; fi
		rss=0
		pids=$(ip netns pids "$(host_name "$n")" 2>/dev/null || true)
		for pid in $pids; do
			kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
			rss=$((rss + ${kb:-0}))
		done
		printf ' rss=%dMiB\n' $((rss / 1024))
		virsh -c "$(tcp_uri "$n")" list --all 2>&1 | sed -n '3,$p' | sed '/^$/d; s/^/    /'
	done
	return "$state"
}

cmd_env() {
	local n names=""
	check_lab_path
	echo "export BERTH_LAB=$LAB"
	echo "export PATH=$LAB/bin:\$PATH"
	echo "export LAB_DOMAIN_TYPE=$(domain_type)"
	for n in $(existing_hosts); do
		names+="${names:+ }$(host_name "$n")"
		echo "export LAB_H${n}_IP=$(host_ip "$n")"
		echo "export LAB_H${n}_URI=$(tcp_uri "$n")"
		echo "export LAB_H${n}_SSH_URI=qemu+ssh://$(host_name "$n")/system"
	done
	echo "export LAB_HOSTS='$names'"
}

cmd_exec() {
	local n=${1:-}
	[[ $n =~ ^[1-9]$ ]] || die "exec: host number 1..$MAX_HOSTS expected"
	shift
	(($# > 0)) || die "exec: command expected"
	mountpoint -q "$LAB/ns/h$n.mnt" || die "exec: host $(host_name "$n") is not up"
	in_host "$n" "$@"
}

xml_escape() { sed -e 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/'"'"'/\&apos;/g'; }

cmd_domxml() {
	local name=${1:-} type=${2:-} disk=${3:--} bridge=${4:--} serial=${5:--} mib=${6:-64} vcpus=${7:-1}
	[[ -n $name ]] || die "domxml: NAME expected"
	[[ -z $type || $type == - ]] && type=$(domain_type)
	[[ $type == kvm || $type == qemu ]] || die "domxml: type must be kvm or qemu"
	[[ $mib =~ ^[0-9]+$ && $vcpus =~ ^[0-9]+$ ]] || die "domxml: MiB and VCPUS must be numbers"
	name=$(printf '%s' "$name" | xml_escape)
	cat <<-EOF
		<domain type='$type'>
		  <name>$name</name>
		  <memory unit='MiB'>$mib</memory>
		  <vcpu>$vcpus</vcpu>
		  <os>
		    <type arch='x86_64' machine='pc'>hvm</type>
		    <boot dev='hd'/>
		  </os>
		  <features>
		    <acpi/>
		  </features>
		  <on_poweroff>destroy</on_poweroff>
		  <on_reboot>restart</on_reboot>
		  <on_crash>destroy</on_crash>
		  <devices>
		    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	EOF
	# A read-only disk counts as safe for live migration, so no --unsafe is needed.
	[[ $disk != - ]] && cat <<-EOF
		    <disk type='file' device='disk'>
		      <driver name='qemu' type='raw'/>
		      <source file='$(printf '%s' "$disk" | xml_escape)'/>
		      <target dev='vda' bus='virtio'/>
		      <readonly/>
		    </disk>
	EOF
	[[ $bridge != - ]] && cat <<-EOF
		    <interface type='bridge'>
		      <source bridge='$(printf '%s' "$bridge" | xml_escape)'/>
		      <model type='virtio'/>
		      <rom enabled='no'/>
		    </interface>
	EOF
	# append='on': the target's QEMU appends after a migration, so the whole history stays.
	[[ $serial != - ]] && cat <<-EOF
		    <serial type='file'>
		      <source path='$(printf '%s' "$serial" | xml_escape)' append='on'/>
		      <target port='0'/>
		    </serial>
	EOF
	cat <<-EOF
		    <controller type='usb' model='none'/>
		    <memballoon model='none'/>
		  </devices>
		</domain>
	EOF
}

# --- selftest ----------------------------------------------------------------------------------

FAILS=0
check() { # check NAME CMD…: run CMD, print PASS/FAIL with its duration
	local name=$1 t0 rc out
	shift
	t0=$(now_ms)
	set +e
	out=$(set -e; "$@" 2>&1)
	rc=$?
	set -e
	if ((rc == 0)); then
		printf 'PASS %-44s %6d ms\n' "$name" $(($(now_ms) - t0))
		[[ -n $out ]] && printf '%s\n' "$out" | sed '/^$/d; s/^/     | /'
	else
		printf 'FAIL %-44s %6d ms\n' "$name" $(($(now_ms) - t0))
		[[ -n $out ]] && printf '%s\n' "$out" | sed '/^$/d; s/^/     | /'
		FAILS=$((FAILS + 1))
	fi
	return 0
}

st_daemons() {
	local d
	for d in libvirtd virtlogd sshd; do
		daemon_running "$1" "$d" || { echo "$d not running in $(host_name "$1")"; return 1; }
	done
	[[ $(virsh -c "$(tcp_uri "$1")" hostname) == "$(host_name "$1")" ]]
}

st_ssh() {
	local name got
	name=$(host_name "$1")
	got=$("$LAB/bin/ssh" "$name" hostname) || return 1
	[[ $got == "$name" ]] || { echo "ssh $name ran on '$got'"; return 1; }
	# Strict host key checking: an empty known_hosts must refuse the connection.
	if "$LAB/bin/ssh" -o UserKnownHostsFile=/dev/null "$name" true 2>/dev/null; then
		echo "ssh accepted an unknown host key"
		return 1
	fi
}

st_unique_uuids() {
	local n uuids
	uuids=$(for n in $(existing_hosts); do
		virsh -c "$(tcp_uri "$n")" capabilities | sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' | head -1
	done)
	echo "$uuids"
	[[ $(echo "$uuids" | sort -u | wc -l) == $(existing_hosts | wc -l) ]]
}

st_define_start() {
	local uri xml
	uri=$(tcp_uri "$1")
	xml=$(mktemp)
	cmd_domxml selftest-plain "" - - - 32 >"$xml"
	virsh -c "$uri" define "$xml" >/dev/null
	rm -f "$xml"
	virsh -c "$uri" start selftest-plain >/dev/null
	[[ $(virsh -c "$uri" domstate selftest-plain) == running ]]
	virsh -c "$uri" destroy selftest-plain >/dev/null
	virsh -c "$uri" undefine selftest-plain >/dev/null
}

last_tick() { sed -n 's/^tick \([0-9][0-9]*\)$/\1/p' "$1" | tail -1; }

wait_tick_above() { # FILE MIN: wait up to 20 s for a tick above MIN
	local i t
	for ((i = 0; i < 200; i++)); do
		t=$(last_tick "$1")
		[[ -n $t ]] && ((t > $2)) && return 0
		sleep 0.1
	done
	echo "no tick above $2 in $1 (last: ${t:-none})"
	return 1
}

st_ticker_start() {
	local uri xml
	uri=$(tcp_uri 1)
	: >"$LAB/shared/selftest-ticker.serial"
	xml=$(mktemp)
	cmd_domxml selftest-ticker "" "$LAB/shared/ticker.img" - "$LAB/shared/selftest-ticker.serial" 64 >"$xml"
	virsh -c "$uri" define "$xml" >/dev/null
	rm -f "$xml"
	virsh -c "$uri" start selftest-ticker >/dev/null
	wait_tick_above "$LAB/shared/selftest-ticker.serial" 1
}

# Checks run in subshells: the tick seen before the migration is passed on in a file.
st_ticker_migrate() {
	last_tick "$LAB/shared/selftest-ticker.serial" >"$LAB/shared/selftest-ticker.before"
	virsh -c "$(tcp_uri 1)" migrate --live --persistent --undefinesource selftest-ticker "$(tcp_uri 2)"
	[[ $(virsh -c "$(tcp_uri 2)" domstate selftest-ticker) == running ]]
	! virsh -c "$(tcp_uri 1)" domstate selftest-ticker >/dev/null 2>&1
}

st_ticker_continues() {
	local serial=$LAB/shared/selftest-ticker.serial boots before
	before=$(cat "$LAB/shared/selftest-ticker.before")
	wait_tick_above "$serial" $((before + 2))
	boots=$(grep -c '^ticker boot$' "$serial")
	[[ $boots == 1 ]] || { echo "ticker booted $boots times"; cat "$serial"; return 1; }
	echo "tick $before before migration, $(last_tick "$serial") after, 1 boot"
}

st_bridge() {
	local uri xml
	uri=$(tcp_uri "$1")
	in_host "$1" ip link add br-selftest type bridge
	in_host "$1" ip link set br-selftest up
	in_host "$1" test -d /sys/class/net/br-selftest/bridge
	if [[ -e /sys/class/net/br-selftest ]]; then echo "bridge leaked into the root namespace"; return 1; fi
	xml=$(mktemp)
	cmd_domxml selftest-bridged "" - br-selftest - 32 >"$xml"
	virsh -c "$uri" create "$xml" >/dev/null
	rm -f "$xml"
	# The guest's tap device is enslaved to the bridge inside this host.
	[[ -n $(in_host "$1" ls /sys/class/net/br-selftest/brif) ]]
	virsh -c "$uri" destroy selftest-bridged >/dev/null
	in_host "$1" ip link del br-selftest
}

selftest_cleanup() {
	local n g
	for n in $(existing_hosts); do
		for g in selftest-plain selftest-ticker selftest-bridged; do
			virsh -c "$(tcp_uri "$n")" destroy "$g" >/dev/null 2>&1 || true
			virsh -c "$(tcp_uri "$n")" undefine "$g" >/dev/null 2>&1 || true
		done
		in_host "$n" ip link del br-selftest >/dev/null 2>&1 || true
	done
	rm -f "$LAB/shared"/selftest-ticker.*
}

cmd_selftest() {
	local n t0 hosts
	require_root
	check_lab_path
	hosts=$(existing_hosts)
	[[ $(echo "$hosts" | wc -w) -ge 2 ]] || die "selftest needs a lab of at least 2 hosts (lab.sh up 3)"
	t0=$(now_ms)
	echo "selftest: lab at $LAB, hosts: $(echo "$hosts" | tr '\n' ' ')guests: $(domain_type)"
	trap selftest_cleanup EXIT
	for n in $hosts; do check "daemons up on $(host_name "$n")" st_daemons "$n"; done
	for n in $hosts; do check "ssh strict to $(host_name "$n")" st_ssh "$n"; done
	check "unique host UUIDs" st_unique_uuids
	check "define/start/destroy on labh1" st_define_start 1
	check "ticker started on labh1" st_ticker_start
	check "live migrate ticker labh1 -> labh2" st_ticker_migrate
	check "ticker continues on labh2, no reboot" st_ticker_continues
	check "bridge + bridged guest on labh2" st_bridge 2
	selftest_cleanup
	trap - EXIT
	echo "selftest: $FAILS failed, $(($(now_ms) - t0)) ms"
	((FAILS == 0))
}

# --- main ----------------------------------------------------------------------------------

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status ;;
	exec) cmd_exec "$@" ;;
	env) cmd_env ;;
	domxml) cmd_domxml "$@" ;;
	ticker-image) write_ticker_image "${1:?ticker-image: PATH expected}" ;;
	selftest) cmd_selftest ;;
	__host-mounts) host_mounts "$@" ;;
	*) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
}

main "$@"
