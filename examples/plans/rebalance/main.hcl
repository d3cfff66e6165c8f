# Even out a skewed rack: exa01adm01 holds five guests (80 % of its usable memory), the other
# three hosts one each. berth picks the moves that even the hosts out most, one at a time,
# honouring every rule (RAC anti-affinity by default), until the memory spread is within the
# threshold or the budget is spent.
#
#   berth -C examples/plans/rebalance plan
#
# The same rebalance over every host with default settings is `berth plan -rebalance`.

inventory {
  es_xml      = "es.xml"
  libvirt_uri = "test:nodes/{host}.xml"
}

defaults {
  mode            = "offline"
  memory_reserved = "32GiB"
}

rebalance "rack1" {
  hosts     = ["exa01adm01", "exa01adm02", "exa01adm03", "exa01adm04"]
  on        = "memory"
  threshold = 0.10
  max_moves = 4
  max_moved = "256GiB"
}

# exa01adm01vm03 runs a licence-bound application: it never moves.
rule "pin" "licensed" {
  guests = ["exa01adm01vm03"]
}
