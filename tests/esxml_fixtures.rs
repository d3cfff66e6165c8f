//! es.xml parsing against the real OEDA fixtures, a catalogue of broken inputs, the guest-move
//! rewrite and the synthetic generator.

#[allow(unused_imports)]
use berth::inventory::esxml::{
    move_guests, parse, parse_with_layout, synthesize, EsSystem, EsXmlError, EsXmlErrorKind, GuestMove, SynthSpec,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/../shared/oeda-fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
}

fn load(name: &str) -> EsSystem {
    parse(name, &fixture(name)).unwrap_or_else(|e| panic!("{name} should load: {e}"))
}

fn host_of<'a>(system: &'a EsSystem, guest_id: &str) -> &'a str {
    &system.guests.iter().find(|g| g.id == guest_id).unwrap_or_else(|| panic!("no guest {guest_id}")).host_id
}

const ELASTIC_H15: &str = "iad103716exdd015.iad103716exd.adminiad1.oraclevcn.com_id";
const ELASTIC_H16: &str = "iad103716exdd016.iad103716exd.adminiad1.oraclevcn.com_id";
const ELASTIC_G15: &str = "iad103716exddu1501.iad103716exd.adminiad1.oraclevcn.com_id";
const ELASTIC_G16: &str = "iad103716exddu1601.iad103716exd.adminiad1.oraclevcn.com_id";

// ---------------------------------------------------------------------------------------------
// Real fixtures

#[test]
fn elastic_sample_loads_hosts_guests_and_cluster() {
    let s = load("elastic_sample.xml");
    assert_eq!(s.oeda_version.as_deref(), Some("17.089.19:00"));
    assert_eq!(s.hosts.len(), 2);
    assert_eq!(s.guests.len(), 2);
    let host_ids: Vec<&str> = s.hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(host_ids, [ELASTIC_H15, ELASTIC_H16]);
    assert_eq!(s.hosts[0].name, "iad103716exdd015.iad103716exd.adminiad1.oraclevcn.com");
    assert_eq!(s.hosts[0].guest_ids, [ELASTIC_G15]);
    assert_eq!(s.hosts[0].line, 201);
    assert_eq!(s.hosts[0].image_version, None);
    assert_eq!(host_of(&s, ELASTIC_G15), ELASTIC_H15);
    assert_eq!(host_of(&s, ELASTIC_G16), ELASTIC_H16);
    for g in &s.guests {
        assert_eq!(g.vcpus, Some(48));
        assert_eq!(g.memory_mib, Some(1_423_360));
        assert_eq!(g.image_version.as_ref().map(|v| v.as_str()), Some("20.1.8.0.0"));
        assert_eq!(g.cluster_ids, ["c6_clusterHome"]);
        assert_eq!(g.network_ids.len(), 6);
    }
    assert_eq!(s.guests[0].name, "iad103716x8mcompexpn15c.clientsubnet.devx8melastic.oraclevcn.com");
    assert_eq!(s.guests[0].line, 259);
    assert_eq!(s.clusters.len(), 1);
    assert_eq!(s.clusters[0].name, "c6-d89");
    assert_eq!(s.clusters[0].member_ids, [ELASTIC_G15, ELASTIC_G16]);
}

#[test]
fn elastic_sample_networks_resolve() {
    let s = load("elastic_sample.xml");
    let net = |suffix: &str| {
        let id = format!("iad103716exddu1501.iad103716exd.adminiad1.oraclevcn.com_{suffix}");
        s.networks.iter().find(|n| n.id == id).unwrap_or_else(|| panic!("no network {id}")).clone()
    };
    let client = net("client");
    assert_eq!((client.network_type.as_str(), client.master.as_deref(), client.vlan_id), ("client", Some("bondeth0"), None));
    let backup = net("backup");
    assert_eq!((backup.network_type.as_str(), backup.master.as_deref(), backup.vlan_id), ("backup", Some("bondeth1"), Some(1)));
    for g in &s.guests {
        for id in &g.network_ids {
            assert!(s.networks.iter().any(|n| &n.id == id), "{id}");
        }
    }
}

#[test]
fn ipv6_sample_loads() {
    let s = load("ipv6_sample.xml");
    assert_eq!((s.hosts.len(), s.guests.len()), (2, 2));
    for g in &s.guests {
        assert_eq!(g.memory_mib, Some(45 * 1024));
        assert_eq!(g.vcpus, Some(30));
        let host = s.hosts.iter().find(|h| h.id == g.host_id).expect("guest's host exists");
        assert_eq!(host.guest_ids, [g.id.clone()]);
        assert!(!g.cluster_ids.is_empty());
    }
    assert_eq!(
        host_of(&s, "iad103716exddu1101.iad103716exd.adminiad1.oraclevcn.com_id"),
        "iad103716exdd011.iad103716exd.adminiad1.oraclevcn.com_id"
    );
    assert_eq!(s.clusters.len(), 1);
    assert_eq!(s.clusters[0].member_ids.len(), 2);
}

#[test]
fn clusterless_loads_eighteen_hosts_without_guests() {
    let s = load("clusterless.xml");
    assert_eq!((s.hosts.len(), s.guests.len(), s.clusters.len()), (18, 0, 0));
    assert!(s.hosts.iter().all(|h| h.physical_memory_mib == Some(1536 * 1024) && h.guest_ids.is_empty()));
    assert_eq!(s.oeda_version.as_deref(), Some("200728"));
}

#[test]
fn xen_fixtures_are_refused() {
    for name in ["fullrack.xml", "minimal.xml"] {
        let err = parse(name, &fixture(name)).expect_err(name);
        assert!(matches!(err.kind, EsXmlErrorKind::Xen { .. }), "{name}: {err}");
        let text = err.to_string();
        assert!(text.starts_with(&format!("{name}:")), "{text}");
        assert!(text.contains("Xen (OVM)") && text.contains("KVM only"), "{text}");
        assert!(err.line().is_some(), "{text}");
    }
}

#[test]
fn libvirt_domain_is_refused_as_wrong_root() {
    let err = parse("kvm_guest.xml", &fixture("kvm_guest.xml")).expect_err("not an es.xml");
    assert!(matches!(&err.kind, EsXmlErrorKind::WrongRoot { found, .. } if found == "domain"), "{err}");
    assert!(err.to_string().starts_with("kvm_guest.xml:1:1: <domain>: the root element is <domain>"), "{err}");
    assert!(err.to_string().contains("libvirt domain"), "{err}");
}
