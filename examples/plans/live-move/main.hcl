# Move one running guest to another host without stopping it. Its VLAN bridge is not yet on
# the target, so the plan creates it first (CREATE_BRIDGES).
#
#   berth -C examples/plans/live-move plan

inventory {
  es_xml      = "es.xml"
  libvirt_uri = "test:nodes/{host}.xml"
}

defaults {
  mode = "live"
  live {
    auto_converge   = true
    max_downtime_ms = 300
  }
}

guest "exa01adm01vm02" {
  host = "exa01adm02"
}
