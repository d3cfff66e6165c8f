#!/usr/bin/env bash
# Installs the Debian 12 packages berth needs to build, test and run its lab. Idempotent; as root.
#   build:   libvirt-dev pkg-config          (the virt crate links libvirt; no clang needed)
#   run:     libvirt0 openssh-client         (in-process test driver; ssh for host commands)
#   tests:   openssh-server graphviz         (a real sshd for SSH tests; dot checks DOT output)
#            postgresql                      (a private PostgreSQL server for the state backend tests)
#            zsh fish                        (the completion scripts are run in the real shells)
#   lab:     libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 iproute2 procps util-linux
set -euo pipefail

packages=(libvirt-dev pkg-config libvirt0 openssh-client openssh-server graphviz postgresql zsh fish
          libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
          iproute2 procps util-linux)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "berth: missing Debian packages: ${missing[*]} (run this script as root)" >&2
    exit 1
  fi
  echo "berth: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # qemu-system-x86 must not be asked for together with qemu-utils: some images carry a
  # backported qemu-utils that conflicts; apt replaces it when qemu-system-x86 comes alone.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "berth: cargo (Rust 1.89 or newer) is required; install it with rustup" >&2
  exit 1
fi
# tests/run.sh checks formatting and lints before testing.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    rustup component add rustfmt clippy
  else
    echo "berth: cargo fmt and cargo clippy are required (rustup component add rustfmt clippy)" >&2
    exit 1
  fi
fi
