# es.xml says one guest is on exa01adm01, libvirt finds it on exa01adm02. Without a
# `drift_source`, berth refuses to plan on a picture it cannot trust and says why.
#
#   berth -C examples/plans/drift plan        # exits 1 and lists the drift

inventory {
  es_xml      = "es.xml"
  libvirt_uri = "test:nodes/{host}.xml"
}

host "exa01adm01" {
  drain = true
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
