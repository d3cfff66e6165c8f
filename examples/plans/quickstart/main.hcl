# The example to apply first: drain exa01adm01 on libvirt's embedded test driver, end to end.
# It is drain-host without what only real hosts can do (EDV volumes, which need a
# `volume_command` over SSH, and VLAN bridges missing on the targets, created over SSH), so
# every step runs in-process: STOP_GUEST, DETACH_INTERFACES, MIGRATE_GUEST, ATTACH_INTERFACES,
# STARTUP_GUEST. Apply it on a scratch copy (apply writes es.xml back and keeps a state file):
#
#   examples/demo.sh            # or by hand:
#   cp -r examples/plans/quickstart /tmp/qs && berth -C /tmp/qs apply && berth -C /tmp/qs state list
#
# The test driver keeps what libvirt changed for the life of one berth process only: the next
# berth reads the node files again. What carries over is what berth writes: es.xml and the state.

inventory {
  es_xml = "es.xml"
  # The embedded default: libvirt's built-in test driver, one node file per host.
  libvirt_uri = "test:nodes/{host}.xml"
}

defaults {
  mode            = "offline"
  memory_reserved = "32GiB"
}

host "exa01adm01" {
  drain = true
  # The SR-IOV (RoCE) virtual functions of each host that guests may be given, listed in
  # pairs, one VF of each port: ATTACH_INTERFACES hands out the free ones in this order, so
  # a guest's two RoCE interfaces land on both ports. VFs a domain uses are not free (here
  # exa01adm01's three guests use the first three pairs; the other hosts' guest the first).
  sriov_vfs = [
    "0000:3b:02.0", "0000:5e:02.0",
    "0000:3b:02.1", "0000:5e:02.1",
    "0000:3b:02.2", "0000:5e:02.2",
    "0000:3b:02.3", "0000:5e:02.3",
  ]
}

host "exa01adm02" {
  sriov_vfs = [
    "0000:3b:02.0", "0000:5e:02.0",
    "0000:3b:02.1", "0000:5e:02.1",
    "0000:3b:02.2", "0000:5e:02.2",
    "0000:3b:02.3", "0000:5e:02.3",
  ]
}

host "exa01adm03" {
  sriov_vfs = [
    "0000:3b:02.0", "0000:5e:02.0",
    "0000:3b:02.1", "0000:5e:02.1",
    "0000:3b:02.2", "0000:5e:02.2",
    "0000:3b:02.3", "0000:5e:02.3",
  ]
}
