//! The executor with the real LibvirtRunner on libvirt's test driver (two or three node files
//! in one process): offline moves end to end, live moves failing cleanly, offline_force.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use berth::apply::{
    ExecOptions, LibvirtRunner, RunnerSettings, execute, journal_statuses, plan_id,
};
use berth::config::MigrationMode::{Live, Offline, OfflineForce};
use berth::inventory::GuestState;
use berth::plan::Plan;
use berth::schedule::StepKind::{self, CreateBridges, MigrateGuest, StopGuest};
use berth::state::{State, StateStore, StepStatus};
use common::{PlanBuilder, local_runner, node, state_on};

const VM03_UUID: &str = "0b6e5a3c-9d1f-4c55-8a7e-3f2d1c0b9a87";

fn domain(name: &str, uuid: &str, runstate: u8) -> String {
    format!(
        "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>1024</memory><vcpu>1</vcpu>\
         <os><type>hvm</type></os><test:runstate>{runstate}</test:runstate></domain>"
    )
}

struct Lab {
    dir: tempfile::TempDir,
    runner: Arc<LibvirtRunner>,
    store: StateStore,
    state: State,
}

impl Lab {
    fn new() -> Lab {
        Lab::with_vm03(&domain("vm03", VM03_UUID, 5))
    }

    /// The lab with `vm03` (shut off, on adm01) defined by `vm03`.
    fn with_vm03(vm03: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let adm01 = node(
            dir.path(),
            "adm01",
            &(vm03.to_string() + &domain("vm01", "7c1d2e3f-0000-4000-8000-000000000001", 1)),
        );
        let adm02 = node(dir.path(), "adm02", "");
        let adm03 = node(dir.path(), "adm03", "");
        let runner = local_runner(
            &[("adm01", adm01), ("adm02", adm02), ("adm03", adm03)],
            RunnerSettings::default(),
        );
        let store = StateStore::open(dir.path().join("state.json")).unwrap();
        Lab {
            dir,
            runner,
            store,
            state: State::new(),
        }
    }

    fn state_of(&self, host: &str, guest: &str) -> Option<GuestState> {
        state_on(&self.runner, host, guest)
    }

    /// The first move of the offline_force tests: vm03 offline to adm02, which records its
    /// definition in the state.
    async fn move_vm03_to_adm02(&mut self) {
        let first = vm03_offline_to_adm02(&[MigrateGuest]).build();
        assert!(self.apply(&first).await.succeeded());
    }

    async fn apply(&mut self, plan: &Plan) -> berth::apply::ApplyReport {
        let opts = ExecOptions {
            keep_going: true,
            ..ExecOptions::default()
        };
        let mut sink = |_| {};
        execute(
            plan,
            self.runner.clone(),
            &self.store,
            &mut self.state,
            &opts,
            &mut sink,
        )
        .await
        .unwrap()
    }
}

/// vm03 moved offline from adm01 to adm02 by the steps `kinds`.
fn vm03_offline_to_adm02(kinds: &[StepKind]) -> PlanBuilder {
    PlanBuilder::new().chain("vm03", "adm01", "adm02", Offline, kinds)
}

/// vm03 defined on adm03 from the state's copy, adm02 (where it is) taken as unreachable.
fn force_vm03_from_adm02_to_adm03() -> Plan {
    PlanBuilder::new()
        .chain("vm03", "adm02", "adm03", OfflineForce, &[MigrateGuest])
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_move_of_a_shut_off_guest_runs_end_to_end_and_resumes_idempotently() {
    let mut lab = Lab::new();
    let plan = vm03_offline_to_adm02(&[StopGuest, MigrateGuest])
        .chain("vm01", "adm01", "adm02", Live, &[MigrateGuest])
        .build();
    let report = lab.apply(&plan).await;

    // STOP_GUEST found the guest already shut off; MIGRATE_GUEST moved the definition.
    assert_eq!(report.done, ["vm03:STOP_GUEST", "vm03:MIGRATE_GUEST"]);
    assert_eq!(lab.state_of("adm02", "vm03"), Some(GuestState::ShutOff));
    assert_eq!(lab.state_of("adm01", "vm03"), None);
    let record = &lab.state.topology["vm03"];
    assert_eq!(record.host, "adm02");
    assert!(
        record
            .last_definition_xml
            .as_deref()
            .unwrap()
            .contains(VM03_UUID)
    );

    // The test driver cannot migrate live: the step fails with libvirt's reason, vm01 stays.
    assert_eq!(report.failed.len(), 1);
    let (id, message) = &report.failed[0];
    assert_eq!(id, "vm01:MIGRATE_GUEST");
    assert!(
        message.contains("vm01:MIGRATE_GUEST") && message.contains("not supported"),
        "{message}"
    );
    assert_eq!(lab.state_of("adm01", "vm01"), Some(GuestState::Running));
    let statuses = journal_statuses(&lab.state, &plan_id(&plan));
    assert_eq!(statuses["vm03:MIGRATE_GUEST"], StepStatus::Done);
    assert_eq!(statuses["vm01:MIGRATE_GUEST"], StepStatus::Failed);

    // A second apply of the same plan skips what is done and retries only the failure.
    let again = lab.apply(&plan).await;
    assert_eq!(again.skipped.len(), 2);
    assert!(again.done.is_empty());
    assert_eq!(again.failed.len(), 1);
    assert_eq!(lab.state_of("adm02", "vm03"), Some(GuestState::ShutOff));
    assert_eq!(lab.store.load().unwrap().unwrap(), lab.state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_force_defines_from_the_recorded_definition() {
    let mut lab = Lab::new();
    lab.move_vm03_to_adm02().await;

    // adm02 is now "unreachable": the guest is defined on adm03 from the state's copy.
    let forced = force_vm03_from_adm02_to_adm03();
    let report = lab.apply(&forced).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(lab.state_of("adm03", "vm03"), Some(GuestState::ShutOff));
    assert_eq!(lab.state.topology["vm03"].host, "adm03");
    assert!(
        lab.runner
            .hypervisor("adm03")
            .unwrap()
            .migratable_xml("vm03")
            .unwrap()
            .contains(VM03_UUID)
    );
}

/// The state file is data: a recorded definition naming another domain (here vm01, which
/// runs on adm01) is refused, and nothing is defined on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_force_refuses_a_recorded_definition_of_another_domain() {
    let mut lab = Lab::new();
    lab.move_vm03_to_adm02().await;
    let record = lab.state.topology.get_mut("vm03").unwrap();
    let xml = record.last_definition_xml.take().unwrap();
    let edited = xml.replacen("<name>vm03</name>", "<name>vm01</name>", 1);
    assert_ne!(edited, xml, "{xml}");
    record.last_definition_xml = Some(edited);

    let forced = force_vm03_from_adm02_to_adm03();
    let report = lab.apply(&forced).await;
    assert!(!report.succeeded(), "{report:?}");
    let why = format!("{:?}", report.failed);
    assert!(
        why.contains("names domain `vm01`, not vm03: refusing to define it"),
        "{why}"
    );
    assert_eq!(lab.state_of("adm03", "vm01"), None);
    assert_eq!(lab.state_of("adm03", "vm03"), None);
}

/// The state file keeps no console password, yet knows there was one: an offline_force move
/// from the state as read back from disk gives the console a fresh random password instead of
/// leaving it open, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_force_locks_a_console_whose_password_the_state_did_not_keep() {
    let vm03 = domain("vm03", VM03_UUID, 5).replace(
        "<os>",
        "<devices><graphics type='vnc' port='-1' autoport='yes' passwd='s3cret'/></devices><os>",
    );
    let mut lab = Lab::with_vm03(&vm03);
    lab.move_vm03_to_adm02().await;
    let on_disk = std::fs::read_to_string(lab.store.path()).unwrap();
    assert!(!on_disk.contains("s3cret"), "{on_disk}");
    assert!(on_disk.contains("berth:removed"), "{on_disk}");

    // A later berth reads the state from disk; adm02 is "unreachable".
    lab.state = lab.store.load().unwrap().unwrap();
    let forced = force_vm03_from_adm02_to_adm03();
    let mut notes = Vec::new();
    let report = execute(
        &forced,
        lab.runner.clone(),
        &lab.store,
        &mut lab.state,
        &ExecOptions::default(),
        &mut |e| {
            if let berth::apply::Event::Done { note: Some(n), .. } = e {
                notes.push(n)
            }
        },
    )
    .await
    .unwrap();
    assert!(report.succeeded(), "{report:?}");
    let xml = lab
        .runner
        .hypervisor("adm03")
        .unwrap()
        .persistent_xml("vm03")
        .unwrap()
        .unwrap();
    let passwd = xml
        .split("passwd='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("the console was left without a password:\n{xml}"));
    assert!(
        passwd != "s3cret" && passwd != "berth:removed" && passwd.len() >= 8,
        "{passwd}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("1 console password(s) set to a random value")),
        "{notes:?}"
    );
    assert!(
        !std::fs::read_to_string(lab.store.path())
            .unwrap()
            .contains(passwd)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_side_steps_without_ssh_fail_with_a_clear_reason() {
    let mut lab = Lab::new();
    let plan = vm03_offline_to_adm02(&[CreateBridges, MigrateGuest])
        .items("vm03:CREATE_BRIDGES", &["vmbondeth0"])
        .build();
    let report = lab.apply(&plan).await;
    let failed: HashMap<_, _> = report.failed.iter().cloned().collect();
    let message = &failed["vm03:CREATE_BRIDGES"];
    assert!(
        message.contains("SSH") && message.contains("adm02"),
        "{message}"
    );
    assert_eq!(
        report.skipped.len(),
        1,
        "the migration waits for the bridges"
    );
    assert_eq!(lab.state_of("adm01", "vm03"), Some(GuestState::ShutOff));
    assert!(lab.dir.path().join("state.json").exists());
}
