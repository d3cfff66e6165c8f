//! Host facts gathered over SSH from a real (private) sshd, recorded into a topology.

#[path = "common/sshd.rs"]
mod sshd;

use std::collections::BTreeSet;

use berth::inventory::facts::{self, FactsError};
use berth::inventory::{Host, Topology};
use sshd::{Sshd, local_bridges};

fn topology_with(host: &str) -> Topology {
    let mut topo = Topology::default();
    topo.hosts.insert(
        host.into(),
        Host {
            name: host.into(),
            machine_id: format!("{host}_id"),
            memory_mib: 1024,
            cpus: 2,
            arch: None,
            cpu_model: None,
            image_version: None,
            bridges: None,
            bridges_in_use: BTreeSet::new(),
            domains: BTreeSet::new(),
            vfs_in_use: BTreeSet::new(),
            unmanaged_memory_mib: 0,
            unmanaged_vcpus: 0,
            reachable: true,
        },
    );
    topo
}

#[test]
fn facts_over_ssh_replace_the_unknown_bridge_set() {
    let sshd = Sshd::start();
    let target = sshd.target(sshd.known_hosts());
    let gathered = facts::gather(&[("adm01".to_string(), target)], 2);
    assert_eq!(gathered.len(), 1);
    let f = gathered[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert_eq!(f.bridges, local_bridges());

    let mut topo = topology_with("adm01");
    facts::record(&mut topo, gathered).unwrap();
    // Before: unknown (None); after: exactly what the host has, even when that is nothing.
    assert_eq!(topo.hosts["adm01"].bridges.as_ref(), Some(&local_bridges()));
}

#[test]
fn an_unknown_host_key_stops_fact_gathering_and_names_the_host() {
    let sshd = Sshd::start();
    let empty = sshd.path("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let gathered = facts::gather(&[("adm07".to_string(), sshd.target(empty))], 1);
    let mut topo = topology_with("adm07");
    let err = facts::record(&mut topo, gathered).unwrap_err();
    assert!(matches!(err, FactsError::Remote { .. }));
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(text.contains("adm07"), "{text}");
    assert!(text.to_lowercase().contains("host key"), "{text}");
    assert_eq!(topo.hosts["adm07"].bridges, None);
}
