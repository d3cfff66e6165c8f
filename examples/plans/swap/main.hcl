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

# SR-IOV (RoCE) virtual functions guests may be given, one pair per guest. The guests of each
# host use the first two pairs; a guest moving in needs a pair nobody uses when the move
# starts (the departing guest's pair is not counted as free).
host "exa01adm01" {
  sriov_vfs = [
    "0000:3b:02.0", "0000:5e:02.0",
    "0000:3b:02.1", "0000:5e:02.1",
    "0000:3b:02.2", "0000:5e:02.2",
  ]
}

host "exa01adm02" {
  sriov_vfs = [
    "0000:3b:02.0", "0000:5e:02.0",
    "0000:3b:02.1", "0000:5e:02.1",
    "0000:3b:02.2", "0000:5e:02.2",
  ]
}

guest "exa01adm01vm01" {
  host = "exa01adm02"
}

guest "exa01adm02vm01" {
  host = "exa01adm01"
}
