//! Reconciliation on hand-built es.xml systems and libvirt observations.

use super::*;
use crate::inventory::esxml::{EsCluster, EsHost, EsVolume};
use crate::inventory::model::{Disk, HostDev, Interface};

const H1: &str = "exa01adm01.example.com";
const H2: &str = "exa01adm02.example.com";
const H3: &str = "exa01adm03.example.com";
const VM1: &str = "exa01adm01vm01.example.com";
const VM2: &str = "exa01adm01vm02.example.com";
const VM3: &str = "exa01adm02vm01.example.com";

fn es_host(name: &str, guest_ids: &[&str]) -> EsHost {
    EsHost {
        id: format!("{name}_id"),
        name: name.into(),
        physical_memory_mib: Some(524288),
        image_version: Some("25.1.4.0.0.250614".parse().unwrap()),
        guest_ids: guest_ids.iter().map(|g| format!("{g}_id")).collect(),
        line: 1,
    }
}

fn es_guest(name: &str, host: &str, vcpus: u32, memory_mib: u64, clusters: &[&str]) -> EsGuest {
    EsGuest {
        id: format!("{name}_id"),
        name: name.into(),
        host_id: format!("{host}_id"),
        vcpus: Some(vcpus),
        memory_mib: Some(memory_mib),
        image_version: None,
        cluster_ids: clusters.iter().map(|c| format!("{c}_id")).collect(),
        network_ids: vec![],
        volume_ids: vec![],
        line: 1,
    }
}

/// Three hosts; vm01 (cl01) and vm02 on adm01, adm02vm01 (cl01) on adm02, adm03 empty.
fn system() -> EsSystem {
    EsSystem {
        oeda_version: None,
        customer_name: None,
        hosts: vec![
            es_host(H1, &[VM1, VM2]),
            es_host(H2, &[VM3]),
            es_host(H3, &[]),
        ],
        guests: vec![
            es_guest(VM1, H1, 8, 65536, &["exa01cl01"]),
            es_guest(VM2, H1, 4, 32768, &[]),
            es_guest(VM3, H2, 8, 65536, &[]),
        ],
        clusters: vec![EsCluster {
            id: "exa01cl01_id".into(),
            name: "exa01cl01".into(),
            // adm02vm01's membership is recorded only on the cluster side.
            member_ids: vec![format!("{VM3}_id")],
        }],
        networks: vec![],
        volumes: vec![],
        others: vec![],
    }
}

fn domain(
    name: &str,
    state: GuestState,
    vcpus: u32,
    memory_mib: u64,
    bridges: &[&str],
) -> DomainObservation {
    DomainObservation {
        name: name.into(),
        uuid: None,
        state,
        persistent: true,
        vcpus,
        memory_mib,
        interfaces: bridges
            .iter()
            .map(|b| Interface {
                kind: InterfaceKind::Bridge,
                source: (*b).into(),
                mac: None,
            })
            .chain([Interface {
                kind: InterfaceKind::Hostdev,
                source: "0000:3b:02.1".into(),
                mac: None,
            }])
            .collect(),
        disks: vec![Disk {
            target: "sda".into(),
            bus: "scsi".into(),
            source: Some("/dev/exc/sys".into()),
        }],
        hostdevs: vec![],
    }
}

fn host(name: &str, domains: Vec<DomainObservation>) -> Observation {
    Ok(HostObservation {
        host: name.into(),
        uri: format!("test:///nodes/{name}.xml"),
        memory_mib: 524288,
        cpus: 96,
        arch: "x86_64".into(),
        cpu_model: Some("Sapphire Rapids".into()),
        domains,
    })
}

fn down(name: &str) -> Observation {
    Err(LibvirtError {
        host: name.into(),
        uri: format!("qemu+ssh://root@{name}/system"),
        action: "connect".into(),
        message: "Cannot recv data: Connection reset by peer".into(),
    })
}

/// Observations matching [`system`] exactly.
fn consistent() -> Vec<Observation> {
    vec![
        host(
            H1,
            vec![
                domain(
                    VM1,
                    GuestState::Running,
                    8,
                    65536,
                    &["vmbondeth0", "vmbondeth0.110"],
                ),
                domain(
                    VM2,
                    GuestState::ShutOff,
                    4,
                    32768,
                    &["vmbondeth0", "vmbondeth0.120"],
                ),
            ],
        ),
        host(
            H2,
            vec![domain(
                VM3,
                GuestState::Running,
                8,
                65536,
                &["vmbondeth0", "vmbondeth0.110"],
            )],
        ),
        host(H3, vec![]),
    ]
}

fn kinds(r: &Reconciled) -> Vec<DriftKind> {
    r.drift.iter().map(|d| d.kind).collect()
}

#[test]
fn consistent_inputs_give_no_drift_and_a_full_topology() {
    let mut es = system();
    es.volumes = vec![
        EsVolume {
            id: "v1".into(),
            name: Some("vm01_sys".into()),
            device_path: Some("/dev/exc/vm01_sys".into()),
            volume_type: None,
        },
        EsVolume {
            id: "v2".into(),
            name: Some("vm01_u01".into()),
            device_path: None,
            volume_type: None,
        },
    ];
    es.guests[0].volume_ids = vec!["v1".into(), "v2".into()];
    let r = reconcile(&es, &consistent(), DriftPolicy::StopOnDrift);
    assert_eq!(r.drift, vec![]);

    let h1 = &r.topology.hosts[H1];
    assert_eq!(h1.machine_id, format!("{H1}_id"));
    assert_eq!(
        (h1.memory_mib, h1.cpus, h1.arch.as_deref()),
        (524288, 96, Some("x86_64"))
    );
    assert_eq!(h1.cpu_model.as_deref(), Some("Sapphire Rapids"));
    assert_eq!(
        h1.image_version.as_ref().map(|v| v.as_str()),
        Some("25.1.4.0.0.250614")
    );
    assert!(h1.reachable);
    assert_eq!(h1.bridges, None);
    assert_eq!(
        h1.bridges_in_use
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["vmbondeth0", "vmbondeth0.110", "vmbondeth0.120"]
    );
    assert!(r.topology.hosts[H3].bridges_in_use.is_empty());

    let vm1 = &r.topology.guests[VM1];
    assert_eq!(
        (vm1.host.as_str(), vm1.state, vm1.vcpus, vm1.memory_mib),
        (H1, GuestState::Running, 8, 65536)
    );
    assert_eq!(vm1.machine_id, format!("{VM1}_id"));
    assert_eq!(vm1.clusters, vec!["exa01cl01"]);
    assert_eq!(vm1.volumes, vec!["/dev/exc/vm01_sys", "/dev/exc/vm01_u01"]);
    assert_eq!(vm1.interfaces.len(), 3);
    assert_eq!(vm1.disks[0].bus, "scsi");
    assert_eq!(r.topology.guests[VM2].state, GuestState::ShutOff);
    assert_eq!(r.topology.guests[VM3].clusters, vec!["exa01cl01"]);

    let cl = &r.topology.clusters["exa01cl01"];
    assert_eq!(cl.id, "exa01cl01_id");
    assert_eq!(cl.members, vec![VM1, VM3]);
    assert_eq!(
        r.topology.memory_used_mib(H1),
        65536,
        "the shut-off vm02 holds nothing"
    );
}

#[test]
fn wrong_host_follows_the_policy() {
    let mut obs = consistent();
    // vm02 is defined on adm03, not on adm01 as es.xml says.
    obs[0] = host(
        H1,
        vec![domain(VM1, GuestState::Running, 8, 65536, &["vmbondeth0"])],
    );
    obs[2] = host(
        H3,
        vec![domain(
            VM2,
            GuestState::Running,
            4,
            32768,
            &["vmbondeth0.120"],
        )],
    );

    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(kinds(&r), vec![DriftKind::WrongHost]);
    let d = &r.drift[0];
    assert_eq!(
        (d.guest.as_deref(), d.host.as_deref()),
        (Some(VM2), Some(H3))
    );
    assert_eq!((d.es_xml.as_str(), d.libvirt.as_str()), (H1, H3));
    assert_eq!(
        d.message,
        format!("guest {VM2} is on host {H3} (running) but es.xml puts it on host {H1}")
    );
    assert_eq!(r.topology.guests[VM2].host, H3);
    assert_eq!(r.topology.guests[VM2].state, GuestState::Running);
    assert_eq!(r.topology.memory_used_mib(H3), 32768);

    let r = reconcile(&system(), &obs, DriftPolicy::StopOnDrift);
    assert_eq!(kinds(&r), vec![DriftKind::WrongHost]);
    assert_eq!(
        r.topology.guests[VM2].host, H3,
        "stop-on-drift shows what runs where"
    );

    // es.xml winning does not pretend the guest runs elsewhere: it is where libvirt runs it,
    // and `es_host` says where es.xml wants it back (the plan moves it there).
    let r = reconcile(&system(), &obs, DriftPolicy::PreferEsXml);
    assert_eq!(kinds(&r), vec![DriftKind::WrongHost]);
    assert_eq!(r.topology.guests[VM2].host, H3);
    assert_eq!(r.topology.guests[VM2].es_host.as_deref(), Some(H1));
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(r.topology.guests[VM2].es_host, None);
    // The host's bridges are what libvirt shows there, whichever side placement follows.
    assert!(
        r.topology.hosts[H3]
            .bridges_in_use
            .contains("vmbondeth0.120")
    );
}

#[test]
fn missing_domain_keeps_es_xml_numbers() {
    let mut obs = consistent();
    obs[0] = host(
        H1,
        vec![domain(VM1, GuestState::Running, 8, 65536, &["vmbondeth0"])],
    );
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(kinds(&r), vec![DriftKind::MissingDomain]);
    assert_eq!(r.drift[0].guest.as_deref(), Some(VM2));
    assert_eq!(r.drift[0].host.as_deref(), Some(H1));
    assert!(
        r.drift[0].message.contains(VM2) && r.drift[0].message.contains(H1),
        "{}",
        r.drift[0].message
    );
    let vm2 = &r.topology.guests[VM2];
    assert_eq!(
        (vm2.host.as_str(), vm2.state, vm2.vcpus, vm2.memory_mib),
        (H1, GuestState::Unknown, 4, 32768)
    );
    assert!(vm2.interfaces.is_empty());
}

#[test]
fn unreachable_host_reports_once_and_falls_back_to_es_xml() {
    let mut obs = consistent();
    obs[0] = down(H1);
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    // Its guests are not reported missing: they are probably on the host that did not answer.
    assert_eq!(kinds(&r), vec![DriftKind::HostUnreachable]);
    let d = &r.drift[0];
    assert_eq!(d.host.as_deref(), Some(H1));
    assert_eq!(d.guest, None);
    assert_eq!(
        d.message,
        format!(
            "libvirt on host {H1} could not be read: cannot connect at qemu+ssh://root@{H1}/system: \
             Cannot recv data: Connection reset by peer"
        )
    );
    let h1 = &r.topology.hosts[H1];
    assert!(!h1.reachable);
    assert_eq!(
        (h1.memory_mib, h1.cpus, h1.arch.as_deref()),
        (524288, 0, None)
    );
    let vm1 = &r.topology.guests[VM1];
    assert_eq!(
        (vm1.host.as_str(), vm1.state, vm1.vcpus, vm1.memory_mib),
        (H1, GuestState::Unknown, 8, 65536)
    );
}

#[test]
fn host_without_any_observation_is_unreachable() {
    let obs = consistent().into_iter().take(2).collect::<Vec<_>>();
    let r = reconcile(&system(), &obs, DriftPolicy::StopOnDrift);
    assert_eq!(kinds(&r), vec![DriftKind::HostUnreachable]);
    assert_eq!(r.drift[0].host.as_deref(), Some(H3));
    assert_eq!(r.drift[0].libvirt, "not read");
}

#[test]
fn extra_domain_is_reported_not_placed() {
    let mut obs = consistent();
    obs[2] = host(
        H3,
        vec![domain(
            "scratch01",
            GuestState::Paused,
            2,
            4096,
            &["virbr0"],
        )],
    );
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(kinds(&r), vec![DriftKind::ExtraDomain]);
    let d = &r.drift[0];
    assert_eq!(
        (d.guest.as_deref(), d.host.as_deref()),
        (Some("scratch01"), Some(H3))
    );
    assert_eq!(
        d.message,
        format!(
            "domain scratch01 on host {H3} (paused, 4096 MiB, 2 vCPUs) is not a guest in es.xml"
        )
    );
    assert!(!r.topology.guests.contains_key("scratch01"));
    assert!(r.topology.hosts[H3].bridges_in_use.contains("virbr0"));
    // It is never moved, but it holds room the planner must not hand out.
    assert_eq!(
        (
            r.topology.hosts[H3].unmanaged_memory_mib,
            r.topology.hosts[H3].unmanaged_vcpus
        ),
        (4096, 2)
    );
}

#[test]
fn shut_off_extra_domain_holds_no_room() {
    let mut obs = consistent();
    obs[2] = host(
        H3,
        vec![domain("scratch01", GuestState::ShutOff, 2, 4096, &[])],
    );
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(kinds(&r), vec![DriftKind::ExtraDomain]);
    assert_eq!(
        (
            r.topology.hosts[H3].unmanaged_memory_mib,
            r.topology.hosts[H3].unmanaged_vcpus
        ),
        (0, 0)
    );
}

#[test]
fn duplicate_domain_names_both_hosts_and_uses_the_live_copy() {
    let mut obs = consistent();
    // A stale shut-off copy of vm01 left on adm02, e.g. after a manual migration.
    obs[1] = host(
        H2,
        vec![
            domain(VM1, GuestState::ShutOff, 8, 65536, &["vmbondeth0"]),
            domain(VM3, GuestState::Running, 8, 65536, &["vmbondeth0"]),
        ],
    );
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(kinds(&r), vec![DriftKind::DuplicateDomain]);
    let d = &r.drift[0];
    assert_eq!(d.guest.as_deref(), Some(VM1));
    assert_eq!(d.libvirt, format!("{H1} (running), {H2} (shut off)"));
    assert_eq!(
        d.message,
        format!(
            "guest {VM1} is defined on 2 hosts: {H1} (running) and {H2} (shut off); es.xml puts it on {H1}"
        )
    );
    assert_eq!(r.topology.guests[VM1].host, H1);
    assert_eq!(r.topology.guests[VM1].state, GuestState::Running);

    // The live copy is on the other host: that is also a wrong host.
    obs[0] = host(
        H1,
        vec![
            domain(VM1, GuestState::ShutOff, 8, 65536, &["vmbondeth0"]),
            domain(VM2, GuestState::ShutOff, 4, 32768, &["vmbondeth0"]),
        ],
    );
    obs[1] = host(
        H2,
        vec![
            domain(VM1, GuestState::Running, 8, 65536, &["vmbondeth0"]),
            domain(VM3, GuestState::Running, 8, 65536, &["vmbondeth0"]),
        ],
    );
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(
        kinds(&r),
        vec![DriftKind::DuplicateDomain, DriftKind::WrongHost]
    );
    assert_eq!(r.topology.guests[VM1].host, H2);
}

#[test]
fn memory_and_vcpu_mismatches_name_the_numbers() {
    let mut obs = consistent();
    obs[1] = host(
        H2,
        vec![domain(VM3, GuestState::Running, 12, 98304, &["vmbondeth0"])],
    );
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    assert_eq!(
        kinds(&r),
        vec![DriftKind::MemoryMismatch, DriftKind::VcpuMismatch]
    );
    let (mem, cpu) = (&r.drift[0], &r.drift[1]);
    assert_eq!(
        (mem.es_xml.as_str(), mem.libvirt.as_str()),
        ("65536 MiB", "98304 MiB")
    );
    assert_eq!(
        mem.message,
        format!("guest {VM3}: es.xml says 65536 MiB of memory, libvirt on host {H2} has 98304 MiB")
    );
    assert_eq!(
        (cpu.es_xml.as_str(), cpu.libvirt.as_str()),
        ("8 vCPUs", "12 vCPUs")
    );
    assert_eq!(
        cpu.message,
        format!("guest {VM3}: es.xml says 8 vCPUs, libvirt on host {H2} has 12")
    );
    // Placement works from what libvirt has.
    let vm3 = &r.topology.guests[VM3];
    assert_eq!((vm3.vcpus, vm3.memory_mib), (12, 98304));
}

#[test]
fn es_xml_without_sizes_is_not_a_mismatch() {
    let mut es = system();
    es.guests[2].vcpus = None;
    es.guests[2].memory_mib = None;
    let mut obs = consistent();
    obs[1] = host(
        H2,
        vec![domain(VM3, GuestState::Running, 12, 98304, &["vmbondeth0"])],
    );
    assert_eq!(reconcile(&es, &obs, DriftPolicy::StopOnDrift).drift, vec![]);
}

#[test]
fn drift_comes_in_a_fixed_order() {
    let obs = vec![
        host(
            H1,
            vec![domain("zz-extra", GuestState::Running, 1, 1024, &[])],
        ),
        down(H2),
        host(
            H3,
            vec![
                domain(VM2, GuestState::Running, 4, 32768, &[]),
                domain("aa-extra", GuestState::Running, 1, 1024, &[]),
            ],
        ),
    ];
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    let summary: Vec<(DriftKind, Option<&str>)> = r
        .drift
        .iter()
        .map(|d| (d.kind, d.guest.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (DriftKind::HostUnreachable, None),
            (DriftKind::MissingDomain, Some(VM1)),
            (DriftKind::WrongHost, Some(VM2)),
            (DriftKind::ExtraDomain, Some("zz-extra")),
            (DriftKind::ExtraDomain, Some("aa-extra")),
        ]
    );
}

#[test]
fn facts_fill_bridges_and_image_version() {
    let mut r = reconcile(&system(), &consistent(), DriftPolicy::StopOnDrift);
    let bridges: BTreeSet<String> = ["vmbondeth0", "vmbondeth0.110", "vmeth0"]
        .map(String::from)
        .into();
    apply_facts(
        &mut r.topology,
        H2,
        bridges.clone(),
        Some("25.2.0.0.0.251001".parse().unwrap()),
    )
    .unwrap();
    let h2 = &r.topology.hosts[H2];
    assert_eq!(h2.bridges.as_ref(), Some(&bridges));
    assert_eq!(
        h2.image_version.as_ref().map(|v| v.as_str()),
        Some("25.2.0.0.0.251001")
    );

    apply_facts(&mut r.topology, H3, BTreeSet::new(), None).unwrap();
    assert_eq!(
        r.topology.hosts[H3]
            .image_version
            .as_ref()
            .map(|v| v.as_str()),
        Some("25.1.4.0.0.250614")
    );

    let err = apply_facts(
        &mut r.topology,
        "exa09adm01.example.com",
        BTreeSet::new(),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "host exa09adm01.example.com is not a KVM host in es.xml"
    );
}

#[test]
fn only_stop_on_drift_stops() {
    assert!(DriftPolicy::StopOnDrift.stops_on_drift());
    assert!(!DriftPolicy::PreferLibvirt.stops_on_drift());
    assert!(!DriftPolicy::PreferEsXml.stops_on_drift());
    assert_eq!(DriftPolicy::default(), DriftPolicy::StopOnDrift);
}

#[test]
fn pci_devices_of_every_domain_count_as_in_use() {
    let mut obs = consistent();
    let mut scratch = domain("scratch01", GuestState::ShutOff, 2, 4096, &[]);
    scratch.interfaces[0].source = "0000:5e:02.3".into();
    scratch.hostdevs = vec![
        HostDev {
            kind: "pci".into(),
            address: "0000:af:00.2".into(),
        },
        HostDev {
            kind: "usb".into(),
            address: "0x1234:0xbeef".into(),
        },
    ];
    obs[2] = host(H3, vec![scratch]);
    let r = reconcile(&system(), &obs, DriftPolicy::PreferLibvirt);
    let in_use = |h: &str| {
        r.topology.hosts[h]
            .vfs_in_use
            .iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    // adm01's two guests both use 0000:3b:02.1 in the fixture: listed once.
    assert_eq!(in_use(H1), ["0000:3b:02.1"]);
    // A domain es.xml does not know, even shut off, holds its devices.
    assert_eq!(in_use(H3), ["0000:5e:02.3", "0000:af:00.2"]);
}

#[test]
fn reconciling_owned_observations_moves_devices_and_gives_what_borrowing_gives() {
    let short = DomainNaming::parse("short_name").unwrap();
    let mut duplicate = consistent();
    duplicate[1] = host(
        H2,
        vec![
            domain(VM1, GuestState::Running, 8, 65536, &["vmbondeth0.130"]),
            domain(VM3, GuestState::Running, 8, 65536, &["vmbondeth0"]),
        ],
    );
    let mut one_down = consistent();
    one_down[1] = down(H2);
    let mut short_named = consistent();
    for o in short_named.iter_mut().flatten() {
        for d in &mut o.domains {
            d.name = d.name.split('.').next().unwrap().to_string();
        }
    }
    // Two es.xml guests whose short names are one domain: both are reconciled with it, so its
    // devices are copied into one and moved into the other.
    let mut twins = system();
    let mut twin = es_guest("exa01adm01vm01.other.example.com", H1, 8, 65536, &[]);
    twin.id = "twin_id".into();
    twins.guests.push(twin);
    twins.hosts[0].guest_ids.push("twin_id".into());
    let cases = [
        (system(), consistent(), DomainNaming::default()),
        (system(), duplicate, DomainNaming::default()),
        (system(), one_down, DomainNaming::default()),
        (system(), short_named.clone(), short.clone()),
        (twins, short_named, short),
    ];
    for (i, (es, obs, naming)) in cases.into_iter().enumerate() {
        for policy in [DriftPolicy::PreferLibvirt, DriftPolicy::PreferEsXml] {
            let borrowed = reconcile_named(&es, &obs, policy, &naming);
            let owned = reconcile_owned(&es, obs.clone(), policy, &naming);
            assert_eq!(owned, borrowed, "case {i}, {policy:?}");
            assert!(
                owned
                    .topology
                    .guests
                    .values()
                    .filter(|g| g.state != GuestState::Unknown)
                    .all(|g| !g.interfaces.is_empty() && !g.disks.is_empty()),
                "case {i}: every guest with a domain has its devices"
            );
        }
    }
}
