//! The state file: atomic writes, permissions, serial and lineage, the lock, and the schema.

#[path = "common/schema.rs"]
mod schema;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth::inventory::GuestState;
use berth::schedule::StepKind;
use berth::state::{
    DetachedInterface, GuestRecord, JournalEntry, State, StateError, StateStore, StepStatus,
    state_schema,
};

const SCHEMA_PATH: &str = "schemas/state.schema.json";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sample_state() -> State {
    let mut s = State::new();
    s.topology.insert(
        "exa01vm01".into(),
        GuestRecord {
            host: "exa01adm02".into(),
            state: GuestState::Running,
            last_definition_xml: Some("<domain/>".into()),
            detached_interfaces: vec![DetachedInterface {
                mac: Some("52:54:00:01:01:04".into()),
                source: "0000:3b:02.0".into(),
                xml: "<interface type='hostdev' managed='yes'><mac address='52:54:00:01:01:04'/></interface>".into(),
            }],
        },
    );
    s.journal.push(JournalEntry {
        plan_id: "3f2a9c".into(),
        step_id: "exa01vm01:MIGRATE_GUEST".into(),
        kind: StepKind::MigrateGuest,
        guest: "exa01vm01".into(),
        from: "exa01adm01".into(),
        to: "exa01adm02".into(),
        status: StepStatus::Done,
        started_at: Some(chrono::Utc::now()),
        finished_at: Some(chrono::Utc::now()),
        error: None,
        boot_id: None,
        once_marker: None,
    });
    s.journal.push(JournalEntry {
        plan_id: "3f2a9c".into(),
        step_id: "exa01adm01:HOST_COMMAND".into(),
        kind: StepKind::HostCommand,
        guest: String::new(),
        from: "exa01adm01".into(),
        to: "exa01adm01".into(),
        status: StepStatus::Running,
        started_at: Some(chrono::Utc::now()),
        finished_at: None,
        error: None,
        boot_id: Some("6f1c2a54-1b0e-4d4e-9a43-0d3f2b7c9e11".into()),
        once_marker: Some("berth-once-5b0c8f7e2d3a4c1b9e6f0a7d8c2b1e4f".into()),
    });
    s
}

#[test]
fn save_is_atomic_private_and_counts_serials() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("berth.tfstate")).unwrap();
    assert!(store.load().unwrap().is_none());

    let mut state = sample_state();
    let lineage = state.lineage;
    store.save(&mut state).unwrap();
    assert_eq!(state.serial, 1);
    store.save(&mut state).unwrap();
    assert_eq!(state.serial, 2);

    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["berth.tfstate"], "no temporary file is left behind");
    assert_eq!(mode(store.path()), 0o600);

    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded, state);
    assert_eq!((loaded.serial, loaded.lineage), (2, lineage));
}

#[test]
fn a_write_based_on_an_old_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    let mut first = State::new();
    store.save(&mut first).unwrap();
    let mut a = store.load().unwrap().unwrap();
    let mut b = store.load().unwrap().unwrap();
    store.save(&mut a).unwrap();
    let err = store.save(&mut b).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Stale {
                on_disk: 2,
                ours: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(b.serial, 1, "a refused save leaves the state untouched");
}

#[test]
fn a_file_of_another_lineage_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    store.save(&mut State::new()).unwrap();
    let before = std::fs::read_to_string(store.path()).unwrap();
    let err = store.save(&mut State::new()).unwrap_err();
    assert!(matches!(err, StateError::LineageMismatch { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), before);
}

#[test]
fn unreadable_files_are_reported_with_path_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let store = StateStore::open(&path).unwrap();
    std::fs::write(&path, "{\n  \"version\": 1,\n  \"serial\": \"x\"\n}").unwrap();
    let text = store.load().unwrap_err().to_string();
    assert!(text.contains("s.json") && text.contains("line 3"), "{text}");

    std::fs::write(&path, r#"{"version": 99}"#).unwrap();
    let err = store.load().unwrap_err();
    assert!(
        matches!(
            err,
            StateError::UnsupportedVersion {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );

    assert!(StateStore::open(dir.path().join("missing/s.json")).is_err());
}

#[test]
fn a_second_lock_names_the_holder_and_the_guard_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    let guard = store.lock("apply").unwrap();
    assert_eq!(mode(store.lock_path()), 0o600);
    let info = guard.info().clone();
    assert_eq!(info.pid, std::process::id());

    let err = store.lock("apply").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StateError::Locked { .. }), "{text}");
    for part in [
        info.owner.as_str(),
        &format!("pid {}", info.pid),
        "`apply`",
        info.id.as_str(),
    ] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    assert_eq!(store.lock_info().unwrap(), Some(info));

    drop(guard);
    assert!(!store.lock_path().exists());
    assert!(store.lock_info().unwrap().is_none());
    drop(store.lock("plan").unwrap());
}

/// A write killed between creating its temp file and renaming it leaves `.s.json.<random>.tmp`
/// (mode 0600) beside the intact state. The next berth to take the lock removes it; one that
/// is refused the lock leaves it (the holder may be writing it right now).
#[test]
fn the_lock_taker_removes_the_temp_file_a_killed_write_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let store = StateStore::open(&path).unwrap();
    let mut state = sample_state();
    store.save(&mut state).unwrap();
    let before = std::fs::read(&path).unwrap();
    let holder = StateStore::open(&path).unwrap().lock("apply").unwrap();
    // The holder's write in progress, or killed: the same file either way.
    let left = dir.path().join(".s.json.Xk3vQ9.tmp");
    std::fs::write(&left, "{\"half\": ").unwrap();
    std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(store.lock("plan").is_err());
    assert!(
        left.exists(),
        "removed by a berth that did not get the lock"
    );
    drop(holder);

    let guard = store.lock("apply").unwrap();
    assert!(!left.exists(), "the leftover is still there");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the state file changed"
    );
    drop(guard);
}

#[test]
fn force_unlock_needs_the_right_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    let stale = store.lock("apply").unwrap();
    let id = stale.info().id.clone();

    let err = store.force_unlock("not-the-id").unwrap_err();
    assert!(matches!(err, StateError::LockIdMismatch { .. }), "{err}");
    assert!(store.lock_path().exists(), "a wrong id removes nothing");

    assert_eq!(store.force_unlock(&id).unwrap().id, id);
    assert!(!store.lock_path().exists());
    assert!(matches!(
        store.force_unlock(&id).unwrap_err(),
        StateError::NotLocked { .. }
    ));

    // A new holder's lock survives the old guard going away.
    let fresh = store.lock("apply").unwrap();
    drop(stale);
    assert_eq!(
        store.lock_info().unwrap().map(|i| i.id),
        Some(fresh.info().id.clone())
    );
}

#[test]
#[allow(clippy::incompatible_msrv)] // File::lock: Rust 1.89, as berth needs
fn a_corrupt_lock_is_taken_over_when_nobody_holds_it_and_reported_when_someone_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    // Held (an OS lock on it) with a record nobody can read: reported, left alone.
    std::fs::write(store.lock_path(), "garbage").unwrap();
    let holder = std::fs::File::open(store.lock_path()).unwrap();
    holder.lock().unwrap();
    let err = store.lock("apply").unwrap_err();
    assert!(matches!(err, StateError::LockUnreadable { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(store.lock_path()).unwrap(),
        "garbage"
    );
    // Its holder gone, the file is only a leftover: the next berth takes the lock.
    drop(holder);
    let guard = store.lock("apply").unwrap();
    assert_eq!(store.lock_info().unwrap().as_ref(), Some(guard.info()));
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&state_schema()).unwrap() + "\n";
    schema::assert_committed(SCHEMA_PATH, &generated, "state_store");
}

#[test]
fn a_saved_state_file_validates_against_the_committed_schema() {
    let validator = schema::committed_validator(SCHEMA_PATH);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    store.save(&mut sample_state()).unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.path()).unwrap()).unwrap();
    schema::assert_valid(&validator, "the saved state", &file);

    let mut broken = file.clone();
    broken["journal"][0]["status"] = "teleported".into();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn recorded_definitions_are_written_without_their_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("berth.tfstate")).unwrap();
    let mut state = sample_state();
    let record = state.topology.get_mut("exa01vm01").unwrap();
    record.last_definition_xml = Some(
        "<domain type='kvm'><devices><graphics type='vnc' passwd='s3cret'/></devices></domain>"
            .into(),
    );
    state.topology.insert(
        "broken".into(),
        GuestRecord {
            last_definition_xml: Some("<domain passwd='s3cret'><open></domain>".into()),
            ..record_clone(&state)
        },
    );
    store.save(&mut state).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    let loaded = store.load().unwrap().unwrap();
    let kept = loaded.topology["exa01vm01"]
        .last_definition_xml
        .as_deref()
        .unwrap();
    assert!(kept.contains("passwd=\"berth:removed\""), "{kept}");
    assert_eq!(
        loaded.topology["broken"].last_definition_xml, None,
        "a definition that cannot be read is not recorded"
    );
}

fn record_clone(state: &State) -> GuestRecord {
    state.topology["exa01vm01"].clone()
}

/// A symbolic link planted where the lock goes (a state directory others can write to) is
/// refused, naming the path: berth never opens, truncates or creates the file it points to,
/// and leaves the link for the operator to look at.
#[test]
fn a_symlink_planted_at_the_lock_path_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    let victim = dir.path().join("precious.txt");
    std::fs::write(&victim, "precious").unwrap();
    let missing = dir.path().join("would-be-created");
    for target in [&victim, &missing] {
        let _ = std::fs::remove_file(store.lock_path());
        std::os::unix::fs::symlink(target, store.lock_path()).unwrap();
        let err = store.lock("apply").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&store.lock_path().display().to_string())
                && text.contains("symbolic link"),
            "{text}"
        );
        assert!(
            std::fs::symlink_metadata(store.lock_path())
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link stays"
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!missing.exists(), "nothing created through a dangling link");
    // Once the link is gone, the lock works again.
    std::fs::remove_file(store.lock_path()).unwrap();
    drop(store.lock("apply").unwrap());
}

/// `-lock-timeout` as long as a duration goes (`18446744073709551615s`) while another berth
/// holds the lock: berth waits (it panicked computing the deadline) and takes the lock once the
/// holder lets go.
#[test]
fn a_lock_timeout_past_the_end_of_time_waits_for_the_holder() {
    use berth::state::Backend;
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("s.json")).unwrap();
    let held = store.lock("apply").unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn({
        let store = StateStore::open(dir.path().join("s.json")).unwrap();
        move || {
            started_tx.send(()).unwrap();
            Backend::lock(&store, "plan", std::time::Duration::MAX)
                .map(|g| g.info().operation.clone())
        }
    });
    started_rx.recv().unwrap();
    drop(held);
    assert_eq!(waiter.join().expect("no panic").unwrap(), "plan");
}

/// A state path that is a device (`berth state push /dev/zero` would be read until memory runs
/// out; `/dev/null` here) is refused at once, naming the path.
#[test]
fn a_state_that_is_a_device_is_refused_before_reading() {
    let store = StateStore::open("/dev/null").unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(
        err.contains("/dev/null") && err.contains("a device, socket or directory"),
        "{err}"
    );
}
