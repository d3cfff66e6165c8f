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
}
