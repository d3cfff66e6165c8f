//! DETACH_INTERFACES and ATTACH_INTERFACES with the real LibvirtRunner on libvirt's test driver
//! (two node files in one process): an offline move of a guest with two SR-IOV interfaces,
//! step by step, re-run, interrupted and resumed, and with no free virtual function.

mod common;

use std::sync::Arc;

use berth::apply::definition::{hostdev_interfaces, stashed_interfaces};
use berth::apply::{
    ApplyReport, Event, ExecOptions, LibvirtRunner, RunnerSettings, StepContext, StepRunner,
    execute,
};
use berth::config::MigrationMode::{Offline, OfflineForce};
use berth::inventory::GuestState;
use berth::plan::Plan;
use berth::schedule::StepKind::{
    AttachInterfaces, DetachInterfaces, MigrateGuest, StartupGuest, StopGuest,
};
use berth::state::{State, StateStore};
use common::{PlanBuilder, local_runner, node, state_on};

const VM01_MACS: [&str; 2] = ["52:54:00:01:01:04", "52:54:00:01:01:05"];
/// adm02's pool, in the order ATTACH_INTERFACES hands VFs out (one per port, alternating).
const ADM02_POOL: [&str; 6] = [
    "0000:3b:02.0",
    "0000:5e:02.0",
    "0000:3b:02.1",
    "0000:5e:02.1",
    "0000:3b:02.2",
    "0000:5e:02.2",
];

fn vf_interface(mac: &str, bus: &str, function: u8, guest_slot: u8) -> String {
    format!(
        "<interface type='hostdev' managed='yes'><mac address='{mac}'/><driver name='vfio'/>\
         <source><address type='pci' domain='0x0000' bus='0x{bus}' slot='0x02' function='0x{function}'/></source>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x{guest_slot:02x}' function='0x0'/></interface>"
    )
}

fn domain(name: &str, uuid: &str, runstate: u8, devices: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>1024</memory><vcpu>1</vcpu>\
         <os><type>hvm</type></os><devices><interface type='bridge'><mac address='52:54:00:00:00:{runstate:02x}'/>\
         <source bridge='vmeth0'/></interface>{devices}</devices><test:runstate>{runstate}</test:runstate></domain>"
    )
}

struct Lab {
    _dir: tempfile::TempDir,
    runner: Arc<LibvirtRunner>,
    store: StateStore,
    state: State,
    plan: Plan,
}

/// vm01 runs on adm01 with two VFs (3b:02.0, 5e:02.0). On adm02, vm02 runs with the same two
/// addresses (adm02's own VFs) and the shut-off scratch01 passes 3b:02.1 through as a plain
/// PCI host device: the first free VFs of adm02's pool are 5e:02.1 and 3b:02.2. Both hosts get
/// `pool`; an empty one configures none.
fn new_lab(pool: &[&str]) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let vm01 = vf_interface(VM01_MACS[0], "3b", 0, 5) + &vf_interface(VM01_MACS[1], "5e", 0, 6);
    let adm01 = node(
        dir.path(),
        "adm01",
        &domain("vm01", "7c1d2e3f-0000-4000-8000-000000000001", 1, &vm01),
    );
    let vm02 = vf_interface("52:54:00:02:02:04", "3b", 0, 5)
        + &vf_interface("52:54:00:02:02:05", "5e", 0, 6);
    let scratch = "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
                   <address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/></source></hostdev>";
    let adm02 = node(
        dir.path(),
        "adm02",
        &(domain("vm02", "7c1d2e3f-0000-4000-8000-000000000002", 1, &vm02)
            + &domain(
                "scratch01",
                "7c1d2e3f-0000-4000-8000-000000000003",
                5,
                scratch,
            )),
    );
    let mut settings = RunnerSettings::default();
    if !pool.is_empty() {
        for host in ["adm01", "adm02"] {
            settings.sriov_vfs.insert(
                host.to_string(),
                pool.iter().map(|v| v.to_string()).collect(),
            );
        }
    }
    let runner = local_runner(&[("adm01", adm01), ("adm02", adm02)], settings);
    let store = StateStore::open(dir.path().join("state.json")).unwrap();
    let items = [
        "0000:3b:02.0 (52:54:00:01:01:04)",
        "0000:5e:02.0 (52:54:00:01:01:05)",
    ];
    let plan = PlanBuilder::new()
        .chain(
            "vm01",
            "adm01",
            "adm02",
            Offline,
            &[
                StopGuest,
                DetachInterfaces,
                MigrateGuest,
                AttachInterfaces,
                StartupGuest,
            ],
        )
        .items("vm01:DETACH_INTERFACES", &items)
        .items("vm01:ATTACH_INTERFACES", &items)
        .build();
    Lab {
        _dir: dir,
        runner,
        store,
        state: State::new(),
        plan,
    }
}

impl Lab {
    fn definition(&self, host: &str, guest: &str) -> Option<String> {
        self.runner
            .hypervisor(host)
            .unwrap()
            .persistent_xml(guest)
            .unwrap()
    }

    /// (MAC, host PCI source) of the SR-IOV interfaces of `guest`'s definition on `host`.
    fn vfs(&self, host: &str, guest: &str) -> Vec<(String, String)> {
        let xml = self.definition(host, guest).expect("defined");
        hostdev_interfaces(&xml)
            .unwrap()
            .into_iter()
            .map(|i| (i.mac.unwrap_or_default(), i.source))
            .collect()
    }

    async fn run(&mut self, opts: ExecOptions) -> (ApplyReport, Vec<Event>) {
        let mut events = Vec::new();
        let report = execute(
            &self.plan,
            self.runner.clone(),
            &self.store,
            &mut self.state,
            &opts,
            &mut |e| events.push(e),
        )
        .await
        .unwrap();
        (report, events)
    }

    async fn step(&mut self, id: &str) -> (ApplyReport, Vec<Event>) {
        self.run(ExecOptions {
            single_step: Some(format!("vm01:{id}")),
            ..ExecOptions::default()
        })
        .await
    }

    /// Whether reality shows step `id` done, as a re-run would ask first.
    fn is_done(&self, id: &str) -> bool {
        let step = self
            .plan
            .steps
            .iter()
            .find(|s| s.id == format!("vm01:{id}"))
            .unwrap();
        let ctx = StepContext::for_step(&self.state, &self.plan, step).unwrap();
        self.runner.is_done(step, &ctx).unwrap()
    }

    fn state_of(&self, host: &str, guest: &str) -> Option<GuestState> {
        state_on(&self.runner, host, guest)
    }
}

fn notes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| {
            if let Event::Done { note, .. } = e {
                note.clone()
            } else {
                None
            }
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_move_gives_the_guest_free_vfs_of_the_target_and_keeps_its_macs() {
    let mut lab = new_lab(&ADM02_POOL);
    let original = lab.vfs("adm01", "vm01");
    assert_eq!(
        original,
        pairs(&[
            (VM01_MACS[0], "0000:3b:02.0"),
            (VM01_MACS[1], "0000:5e:02.0")
        ])
    );

    assert!(lab.step("STOP_GUEST").await.0.succeeded());
    assert!(!lab.is_done("DETACH_INTERFACES"));
    let (report, events) = lab.step("DETACH_INTERFACES").await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        notes(&events),
        [
            "took out 52:54:00:01:01:04 (0000:3b:02.0), 52:54:00:01:01:05 (0000:5e:02.0); recorded in the definition's metadata and the state file"
        ]
    );
    // The source definition has no SR-IOV interface left; the state file and the definition's
    // metadata both know them.
    assert_eq!(lab.vfs("adm01", "vm01"), vec![]);
    let recorded = &lab.state.topology["vm01"].detached_interfaces;
    assert_eq!(
        recorded
            .iter()
            .map(|i| (i.mac.clone().unwrap(), i.source.clone()))
            .collect::<Vec<_>>(),
        original
    );
    let stashed = stashed_interfaces(&lab.definition("adm01", "vm01").unwrap()).unwrap();
    assert_eq!(
        stashed
            .iter()
            .map(|i| (i.mac.clone().unwrap(), i.source.clone()))
            .collect::<Vec<_>>(),
        original
    );
    assert!(
        recorded[0].xml.contains("<driver name='vfio'/>")
            && recorded[0].xml.contains("slot='0x05'"),
        "{recorded:?}"
    );
    assert_eq!(
        lab.store.load().unwrap().unwrap().topology["vm01"].detached_interfaces,
        *recorded
    );
    assert!(lab.is_done("DETACH_INTERFACES"), "re-running it is a no-op");

    assert!(lab.step("MIGRATE_GUEST").await.0.succeeded());
    assert!(!lab.is_done("ATTACH_INTERFACES"));
    let (report, events) = lab.step("ATTACH_INTERFACES").await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        notes(&events),
        ["gave back 52:54:00:01:01:04 → 0000:5e:02.1, 52:54:00:01:01:05 → 0000:3b:02.2"]
    );
    // The original MACs, with the first VFs of adm02's pool that vm02 and scratch01 leave free.
    assert_eq!(
        lab.vfs("adm02", "vm01"),
        pairs(&[
            (VM01_MACS[0], "0000:5e:02.1"),
            (VM01_MACS[1], "0000:3b:02.2")
        ])
    );
    let target = lab.definition("adm02", "vm01").unwrap();
    assert!(stashed_interfaces(&target).unwrap().is_empty() && !target.contains("urn:berth"));
    assert!(
        target.contains("slot='0x05'") || target.contains("slot=\"0x05\""),
        "the guest-side address is kept"
    );
    let record = &lab.state.topology["vm01"];
    assert!(record.detached_interfaces.is_empty());
    assert_eq!(record.host, "adm02");
    assert!(
        record
            .last_definition_xml
            .as_deref()
            .unwrap()
            .contains("0x5e"),
        "the definition as attached"
    );
    assert!(lab.is_done("ATTACH_INTERFACES"), "re-running it is a no-op");

    assert!(lab.step("STARTUP_GUEST").await.0.succeeded());
    assert_eq!(lab.state_of("adm02", "vm01"), Some(GuestState::Running));
    assert_eq!(lab.state_of("adm01", "vm01"), None);

    // The whole plan again under a fresh journal: every step finds itself done, nothing moves.
    let before = (lab.definition("adm02", "vm01"), lab.vfs("adm02", "vm02"));
    let (report, events) = lab
        .run(ExecOptions {
            journal_id: Some("again".into()),
            ..ExecOptions::default()
        })
        .await;
    assert_eq!(report.done.len(), 5, "{report:?}");
    assert_eq!(notes(&events), vec!["already done".to_string(); 5]);
    assert_eq!(
        (lab.definition("adm02", "vm01"), lab.vfs("adm02", "vm02")),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_between_detach_and_attach_resumes_from_what_was_recorded() {
    let mut lab = new_lab(&ADM02_POOL);
    for id in ["STOP_GUEST", "DETACH_INTERFACES", "MIGRATE_GUEST"] {
        assert!(lab.step(id).await.0.succeeded(), "{id}");
    }
    // berth dies here. The restarted one continues with the state file as saved.
    let saved = lab.store.load().unwrap().unwrap();
    assert_eq!(saved.topology["vm01"].detached_interfaces.len(), 2);

    // Worst case: the definition lost berth's metadata meanwhile; the state file still knows.
    let stripped = {
        let xml = lab.definition("adm02", "vm01").unwrap();
        let start = xml.find("<metadata>").unwrap();
        let end = xml.find("</metadata>").unwrap() + "</metadata>".len();
        format!("{}{}", &xml[..start], &xml[end..])
    };
    lab.runner
        .hypervisor("adm02")
        .unwrap()
        .define(&stripped)
        .unwrap();
    assert!(
        stashed_interfaces(&lab.definition("adm02", "vm01").unwrap())
            .unwrap()
            .is_empty()
    );

    lab.state = saved;
    let (report, _) = lab.run(ExecOptions::default()).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        report.done,
        ["vm01:ATTACH_INTERFACES", "vm01:STARTUP_GUEST"]
    );
    assert_eq!(
        lab.vfs("adm02", "vm01"),
        pairs(&[
            (VM01_MACS[0], "0000:5e:02.1"),
            (VM01_MACS[1], "0000:3b:02.2")
        ])
    );
    assert_eq!(lab.state_of("adm02", "vm01"), Some(GuestState::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_free_vfs_the_attach_fails_clearly_and_the_guest_keeps_its_record() {
    // The pool's only VF vm02 and scratch01 leave free is 5e:02.1.
    let mut lab = new_lab(&ADM02_POOL[..4]);
    let (report, _) = lab.run(ExecOptions::default()).await;
    assert_eq!(
        report.done,
        [
            "vm01:STOP_GUEST",
            "vm01:DETACH_INTERFACES",
            "vm01:MIGRATE_GUEST"
        ]
    );
    let (id, message) = &report.failed[0];
    assert_eq!(id, "vm01:ATTACH_INTERFACES");
    assert!(
        message.contains(
            "guest `vm01` needs 2 SR-IOV VFs on host `adm02`, but its `sriov_vfs` pool has 1 of 4 free (the others are passed through to domains defined there)"
        ),
        "{message}"
    );
    assert_eq!(report.not_run, ["vm01:STARTUP_GUEST"]);
    // Nothing half-done: no VF given, the record kept in the definition and the state file.
    assert_eq!(lab.vfs("adm02", "vm01"), vec![]);
    assert_eq!(
        stashed_interfaces(&lab.definition("adm02", "vm01").unwrap())
            .unwrap()
            .len(),
        2
    );
    assert_eq!(lab.state.topology["vm01"].detached_interfaces.len(), 2);
    assert_eq!(lab.state_of("adm02", "vm01"), Some(GuestState::ShutOff));

    // A host without a pool says so.
    let mut bare = new_lab(&[]);
    let (report, _) = bare.run(ExecOptions::default()).await;
    let (id, message) = &report.failed[0];
    assert_eq!(id, "vm01:ATTACH_INTERFACES");
    assert!(
        message
            .contains("host `adm02` has no `sriov_vfs` pool in the configuration, and vm01 needs 2 of its SR-IOV VFs"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_guest_keeps_its_interfaces() {
    let lab = new_lab(&ADM02_POOL);
    let step = lab
        .plan
        .steps
        .iter()
        .find(|s| s.id == "vm01:DETACH_INTERFACES")
        .unwrap();
    let ctx = StepContext::for_step(&lab.state, &lab.plan, step).unwrap();
    let message = lab
        .runner
        .run(step, &ctx, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("guest `vm01` is running on host `adm01`")
            && message.contains("STOP_GUEST comes first"),
        "{message}"
    );
    assert_eq!(lab.vfs("adm01", "vm01").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_force_gives_the_recorded_definition_vfs_of_the_new_host() {
    let mut lab = new_lab(&ADM02_POOL);
    assert!(lab.run(ExecOptions::default()).await.0.succeeded());
    assert_eq!(
        lab.vfs("adm02", "vm01"),
        pairs(&[
            (VM01_MACS[0], "0000:5e:02.1"),
            (VM01_MACS[1], "0000:3b:02.2")
        ])
    );

    // adm02 stops answering: vm01 is defined on adm01 from the state file's definition, whose
    // interfaces name adm02's VFs; they wait in the metadata and get adm01's free VFs.
    lab.plan = PlanBuilder::new()
        .chain(
            "vm01",
            "adm02",
            "adm01",
            OfflineForce,
            &[MigrateGuest, AttachInterfaces],
        )
        .items(
            "vm01:ATTACH_INTERFACES",
            &[
                "0000:5e:02.1 (52:54:00:01:01:04)",
                "0000:3b:02.2 (52:54:00:01:01:05)",
            ],
        )
        .build();
    let (report, events) = lab.step("MIGRATE_GUEST").await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        notes(&events),
        [
            "2 SR-IOV interfaces of the recorded definition wait for VFs of adm01 (ATTACH_INTERFACES)"
        ]
    );
    assert_eq!(
        lab.vfs("adm01", "vm01"),
        vec![],
        "no VF of the dead host is defined on the new one"
    );
    assert_eq!(
        stashed_interfaces(&lab.definition("adm01", "vm01").unwrap())
            .unwrap()
            .len(),
        2
    );
    assert!(lab.step("ATTACH_INTERFACES").await.0.succeeded());
    assert_eq!(
        lab.vfs("adm01", "vm01"),
        pairs(&[
            (VM01_MACS[0], "0000:3b:02.0"),
            (VM01_MACS[1], "0000:5e:02.0")
        ])
    );
}
