//! The example topologies (examples/plans/*/nodes) read through libvirt's real test driver,
//! and reconciled against es.xml systems built to match them.

use std::collections::BTreeMap;

use berth::inventory::esxml::{EsCluster, EsGuest, EsHost, EsSystem};
use berth::inventory::{
    DriftKind, DriftPolicy, GuestState, HostObservation, InterfaceKind, InventorySpec,
    LibvirtError, load, observe_host, observe_hosts, reconcile,
};

const ADM01: &str = "exa01adm01.example.com";
const ADM02: &str = "exa01adm02.example.com";
const ADM03: &str = "exa01adm03.example.com";

fn example_dir(example: &str) -> String {
    format!("{}/examples/plans/{example}", env!("CARGO_MANIFEST_DIR"))
}

fn node_uri(example: &str, host: &str) -> String {
    format!("test://{}/nodes/{host}.xml", example_dir(example))
}

fn observe(example: &str, host: &str) -> HostObservation {
    observe_host(host, &node_uri(example, host)).unwrap_or_else(|e| panic!("{e}"))
}

fn bridges(o: &HostObservation, domain: &str) -> Vec<String> {
    let d = o.domains.iter().find(|d| d.name == domain).unwrap();
    d.interfaces
        .iter()
        .filter(|i| i.kind == InterfaceKind::Bridge)
        .map(|i| i.source.clone())
        .collect()
}

fn running_memory_mib(o: &HostObservation) -> u64 {
    o.domains
        .iter()
        .filter(|d| d.state.holds_resources())
        .map(|d| d.memory_mib)
        .sum()
}

#[test]
fn drain_host_adm01_as_written() {
    let o = observe("drain-host", ADM01);
    assert_eq!(o.host, ADM01);
    assert_eq!(o.uri, node_uri("drain-host", ADM01));
    assert_eq!(
        (o.memory_mib, o.cpus, o.arch.as_str()),
        (512 * 1024, 96, "x86_64")
    );
    assert_eq!(
        o.cpu_model, None,
        "the test driver reports no host CPU model"
    );

    let summary: Vec<(&str, GuestState, u32, u64)> = o
        .domains
        .iter()
        .map(|d| (d.name.as_str(), d.state, d.vcpus, d.memory_mib))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "exa01adm01vm01.example.com",
                GuestState::Running,
                8,
                64 * 1024
            ),
            (
                "exa01adm01vm02.example.com",
                GuestState::Running,
                16,
                128 * 1024
            ),
            (
                "exa01adm01vm03.example.com",
                GuestState::ShutOff,
                4,
                32 * 1024
            ),
        ]
    );
    let vm01 = &o.domains[0];
    assert_eq!(
        vm01.uuid.as_deref(),
        Some("b3a70001-0000-4000-8000-000000000001")
    );
    assert!(vm01.persistent);
    assert_eq!(
        bridges(&o, "exa01adm01vm01.example.com"),
        vec!["vmeth0", "vmbondeth0", "vmbondeth0.110"]
    );
    assert_eq!(
        bridges(&o, "exa01adm01vm02.example.com"),
        vec!["vmeth0", "vmbondeth0", "vmbondeth0.120"]
    );
    let vfs: Vec<&str> = vm01
        .interfaces
        .iter()
        .filter(|i| i.kind == InterfaceKind::Hostdev)
        .map(|i| i.source.as_str())
        .collect();
    assert_eq!(vfs, vec!["0000:3b:02.0", "0000:5e:02.0"]);
    let disks: Vec<(&str, &str, Option<&str>)> = vm01
        .disks
        .iter()
        .map(|d| (d.target.as_str(), d.bus.as_str(), d.source.as_deref()))
        .collect();
    assert_eq!(
        disks,
        vec![
            ("sda", "scsi", Some("/dev/exc/exa01adm01vm01_sys")),
            ("sdb", "scsi", Some("/dev/exc/exa01adm01vm01_u01")),
        ]
    );
    assert!(vm01.hostdevs.is_empty());
    // 64 + 128 GiB running; the shut-off 32 GiB guest holds nothing.
    assert_eq!(running_memory_mib(&o), 192 * 1024);
}

#[test]
fn drain_host_targets_have_room() {
    for (host, guest, used_gib) in [
        (ADM02, "exa01adm02vm01.example.com", 64),
        (ADM03, "exa01adm03vm01.example.com", 128),
    ] {
        let o = observe("drain-host", host);
        assert_eq!((o.memory_mib, o.cpus), (512 * 1024, 96));
        let names: Vec<&str> = o.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec![guest]);
        assert_eq!(running_memory_mib(&o), used_gib * 1024);
    }
}

#[test]
fn live_move_target_lacks_the_vlan_bridge() {
    let source = observe("live-move", ADM01);
    let target = observe("live-move", ADM02);
    let moving = "exa01adm01vm02.example.com";
    assert_eq!(
        source
            .domains
            .iter()
            .find(|d| d.name == moving)
            .unwrap()
            .state,
        GuestState::Running
    );
    assert!(bridges(&source, moving).contains(&"vmbondeth0.120".to_string()));
    let in_use: Vec<String> = target
        .domains
        .iter()
        .flat_map(|d| bridges(&target, &d.name))
        .collect();
    assert!(
        !in_use.contains(&"vmbondeth0.120".to_string()),
        "{in_use:?}"
    );
    assert!(in_use.contains(&"vmbondeth0".to_string()));
}

#[test]
fn swap_hosts_cannot_hold_both_big_guests() {
    let a = observe("swap", ADM01);
    let b = observe("swap", ADM02);
    for o in [&a, &b] {
        assert_eq!((o.memory_mib, o.cpus), (256 * 1024, 64));
        assert!(o.domains.iter().all(|d| d.state == GuestState::Running));
        assert_eq!(running_memory_mib(o), 224 * 1024);
    }
    let big = |o: &HostObservation| o.domains.iter().map(|d| d.memory_mib).max().unwrap();
    assert_eq!((big(&a), big(&b)), (192 * 1024, 192 * 1024));
    assert!(big(&a) + big(&b) > a.memory_mib);
    // Room on either host while its own big guest still runs there: 32 GiB.
    assert!(a.memory_mib - running_memory_mib(&a) < big(&b));
}

#[test]
fn drift_example_has_vm02_on_adm02() {
    let adm01 = observe("drift", ADM01);
    let adm02 = observe("drift", ADM02);
    assert!(
        !adm01
            .domains
            .iter()
            .any(|d| d.name == "exa01adm01vm02.example.com")
    );
    assert!(
        adm02
            .domains
            .iter()
            .any(|d| d.name == "exa01adm01vm02.example.com")
    );
}

#[test]
fn observe_hosts_keeps_order_and_isolates_failures() {
    let hosts = vec![
        (ADM01.to_string(), node_uri("drain-host", ADM01)),
        (ADM02.to_string(), "test:///nonexistent.xml".to_string()),
        (ADM03.to_string(), node_uri("drain-host", ADM03)),
    ];
    for parallelism in [0, 1, 2, 8] {
        let results = observe_hosts(&hosts, parallelism);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap().host, ADM01);
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(
            (err.host.as_str(), err.uri.as_str()),
            (ADM02, "test:///nonexistent.xml")
        );
        let text = err.to_string();
        assert!(
            text.contains(ADM02) && text.contains("test:///nonexistent.xml"),
            "{text}"
        );
        assert_eq!(results[2].as_ref().unwrap().domains.len(), 1);
    }
}

/// The es.xml of drain-host (and of drift, which differs only in libvirt), as the parser
/// would produce it.
fn drain_host_es() -> EsSystem {
    let host = |name: &str, guests: &[&str]| EsHost {
        id: format!("{name}_id"),
        name: name.into(),
        physical_memory_mib: Some(512 * 1024),
        image_version: None,
        guest_ids: guests.iter().map(|g| format!("{g}_id")).collect(),
        line: 0,
    };
    let guest = |name: &str, host: &str, vcpus: u32, gib: u64, cluster: Option<&str>| EsGuest {
        id: format!("{name}_id"),
        name: name.into(),
        host_id: format!("{host}_id"),
        vcpus: Some(vcpus),
        memory_mib: Some(gib * 1024),
        image_version: None,
        cluster_ids: cluster.map(|c| vec![format!("{c}_id")]).unwrap_or_default(),
        network_ids: vec![],
        volume_ids: vec![],
        line: 0,
    };
    let (vm1, vm2, vm3) = (
        "exa01adm01vm01.example.com",
        "exa01adm01vm02.example.com",
        "exa01adm01vm03.example.com",
    );
    let (a2, a3) = ("exa01adm02vm01.example.com", "exa01adm03vm01.example.com");
    EsSystem {
        oeda_version: None,
        customer_name: None,
        hosts: vec![
            host(ADM01, &[vm1, vm2, vm3]),
            host(ADM02, &[a2]),
            host(ADM03, &[a3]),
        ],
        guests: vec![
            guest(vm1, ADM01, 8, 64, Some("exa01cl01")),
            guest(vm2, ADM01, 16, 128, Some("exa01cl02")),
            guest(vm3, ADM01, 4, 32, None),
            guest(a2, ADM02, 8, 64, Some("exa01cl01")),
            guest(a3, ADM03, 16, 128, Some("exa01cl02")),
        ],
        clusters: ["exa01cl01", "exa01cl02"]
            .map(|c| EsCluster {
                id: format!("{c}_id"),
                name: c.into(),
                member_ids: vec![],
            })
            .into(),
        networks: vec![],
        volumes: vec![],
        others: vec![],
    }
}

fn observe_example(example: &str) -> Vec<Result<HostObservation, LibvirtError>> {
    let hosts: Vec<(String, String)> = [ADM01, ADM02, ADM03]
        .iter()
        .map(|h| (h.to_string(), node_uri(example, h)))
        .collect();
    observe_hosts(&hosts, 3)
}

#[test]
fn drain_host_reconciles_without_drift() {
    let r = reconcile(
        &drain_host_es(),
        &observe_example("drain-host"),
        DriftPolicy::StopOnDrift,
    );
    assert_eq!(r.drift, vec![]);
    let t = &r.topology;
    assert_eq!(t.memory_used_mib(ADM01), 192 * 1024);
    assert_eq!(t.vcpus_used(ADM01), 24);
    assert_eq!(
        t.clusters["exa01cl01"].members,
        vec!["exa01adm01vm01.example.com", "exa01adm02vm01.example.com"]
    );
    let in_use: Vec<&str> = t.hosts[ADM03]
        .bridges_in_use
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(in_use, vec!["vmbondeth0", "vmbondeth0.120", "vmeth0"]);
}

#[test]
fn drift_example_reports_the_wrong_host() {
    let r = reconcile(
        &drain_host_es(),
        &observe_example("drift"),
        DriftPolicy::StopOnDrift,
    );
    assert_eq!(r.drift.len(), 1, "{:#?}", r.drift);
    let d = &r.drift[0];
    assert_eq!(d.kind, DriftKind::WrongHost);
    assert_eq!(
        d.message,
        format!(
            "guest exa01adm01vm02.example.com is on host {ADM02} (running) but es.xml puts it on host {ADM01}"
        )
    );
    assert_eq!(r.topology.guests["exa01adm01vm02.example.com"].host, ADM02);
}

/// The examples' es.xml files against their node files, through the real es.xml parser.
#[test]
fn examples_load_end_to_end() {
    let expected_drift = BTreeMap::from([
        ("drain-host", 0),
        ("drift", 1),
        ("live-move", 0),
        ("swap", 0),
    ]);
    for (example, drift) in expected_drift {
        let spec = InventorySpec {
            es_xml_path: format!("{}/es.xml", example_dir(example)).into(),
            uri_template: format!("test://{}/nodes/{{host}}.xml", example_dir(example)),
            uri_overrides: BTreeMap::new(),
            policy: DriftPolicy::StopOnDrift,
            parallelism: 3,
            ssh: Default::default(),
            domain_naming: Default::default(),
            connect_timeout: berth::inventory::libvirt::connect::DEFAULT_CONNECT_TIMEOUT,
        };
        let inv = load(&spec).unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_eq!(inv.drift.len(), drift, "{example}: {:#?}", inv.drift);
        assert!(
            inv.topology.hosts.values().all(|h| h.reachable),
            "{example}"
        );
        for g in inv.topology.guests.values() {
            assert_eq!(g.volumes.len(), 3, "{example}: {}", g.name);
            // Three bridges and two SR-IOV VFs each, but the live-move guest has no VFs
            // (passthrough devices cannot migrate live).
            let vfs = if example == "live-move" && g.name.starts_with("exa01adm01vm02") {
                0
            } else {
                2
            };
            assert_eq!(g.interfaces.len(), 3 + vfs, "{example}: {}", g.name);
        }
    }
}

/// A host that accepts the connection and never answers (a listening socket nobody reads:
/// the kernel completes the TCP handshake) would hang `virConnectOpen` for good, on the
/// plain TCP transport and on the ssh binary's (which waits for the server's banner). The
/// read gives up after its timeout with the host's own connect error, naming host and URI.
#[test]
fn a_host_that_never_answers_is_given_up_after_the_connect_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for uri in [
        format!("qemu+tcp://127.0.0.1:{port}/system"),
        format!("qemu+ssh://root@127.0.0.1:{port}/system?no_verify=0"),
    ] {
        let err = berth::inventory::libvirt::observe_host_within(
            "exa01adm07.example.com",
            &uri,
            std::time::Duration::from_millis(500),
        )
        .unwrap_err();
        assert_eq!(
            (err.host.as_str(), err.uri.as_str(), err.action.as_str()),
            ("exa01adm07.example.com", uri.as_str(), "connect"),
            "{err}"
        );
        assert!(err.message.contains("no answer within 0.5 s"), "{err}");
    }
    drop(silent);
}
