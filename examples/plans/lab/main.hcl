# berth on the KVM lab: move labvm1 live from labh1 to labh2.
#
#   tests/lab/lab.sh up 3                 # three KVM hosts labh1..3 (10.77.0.11-13)
#   tests/lab/setup-example.sh            # defines labvm1..3 as es.xml says
#   berth plan -C examples/plans/lab
#
# labh2 lacks the bridge vmbondeth0 that labvm1 uses, so the plan creates it there first
# (CREATE_BRIDGES). labvm3 shares labvm1's RAC cluster, so labh3 is not a valid target.
# The paths below assume the lab's default location /tmp/berth-lab (BERTH_LAB).

inventory {
  es_xml      = "es.xml"
  libvirt_uri = "qemu+tcp://{host}/system"

  ssh {
    user             = "root"
    identity_file    = "/tmp/berth-lab/ssh/id_ed25519"
    known_hosts_file = "/tmp/berth-lab/ssh/known_hosts"
    # The lab's ssh_config maps labhN to 10.77.0.1N; host keys stay strictly checked.
    # `Include` reads a file that could run commands, so it needs the explicit opt-in.
    options               = ["Include=/tmp/berth-lab/ssh/ssh_config"]
    allow_command_options = ["Include"]
    gather_facts = true
  }
}

defaults {
  mode = "live"
  # The ticker disks live on the lab's stand-in shared storage.
  shared_storage = ["/tmp/berth-lab/shared"]
}

# The lab's host names resolve only inside the lab: reach libvirt by address, and send live
# migrations' memory to each host's address too.
host "labh1" {
  libvirt_uri   = "qemu+tcp://10.77.0.11/system"
  migration_uri = "tcp://10.77.0.11"
}

host "labh2" {
  libvirt_uri   = "qemu+tcp://10.77.0.12/system"
  migration_uri = "tcp://10.77.0.12"
}

host "labh3" {
  libvirt_uri   = "qemu+tcp://10.77.0.13/system"
  migration_uri = "tcp://10.77.0.13"
}

guest "labvm1" {
  host = "labh2"
}
