# Drain exa01adm01 for maintenance: berth chooses a target for each of its guests
# (RAC anti-affinity, memory and vCPU room, least loaded) and orders the steps so that
# no host is ever overcommitted.
#
#   berth -C examples/plans/drain-host plan

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
