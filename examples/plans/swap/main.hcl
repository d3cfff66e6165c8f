# Swap two guests between two full hosts. Neither host can hold both guests at once, so
# berth stops both guests before starting either on its new host (offline mode).
#
#   berth -C examples/plans/swap plan

inventory {
  es_xml      = "es.xml"
  libvirt_uri = "test:nodes/{host}.xml"
}

defaults {
  mode = "offline"
}

guest "exa01adm01vm01" {
  host = "exa01adm02"
}

guest "exa01adm02vm01" {
  host = "exa01adm01"
}
