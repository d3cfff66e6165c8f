//! Hypervisor operations against libvirt's test driver: two node files opened in one process
//! play two hosts (each file URI has its own independent state).

use std::path::Path;
use std::time::Duration;

use berth::apply::{ApplyError, Hypervisor, migrate_live, move_offline};
use berth::config::LiveOptions;
use berth::inventory::GuestState;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Stall timeout for live migrations in these tests (none of them gets to copy memory).
const STALL: Duration = Duration::from_secs(60);

/// A guest in a node file: name, fixed UUID, libvirt runstate (1 running, 5 shut off).
struct TestGuest(&'static str, &'static str, u8);

fn write_node(dir: &Path, file: &str, guests: &[TestGuest]) -> String {
    let mut xml = String::from("<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n");
    for TestGuest(name, uuid, runstate) in guests {
        xml.push_str(&format!(
            "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>2048</memory>\
             <vcpu>2</vcpu><os><type>hvm</type></os><test:runstate>{runstate}</test:runstate></domain>\n"
        ));
    }
    xml.push_str(
        "<cpu><mhz>2400</mhz><model>x86_64</model><active>16</active><nodes>1</nodes><sockets>1</sockets>\
                  <cores>8</cores><threads>2</threads></cpu><memory>67108864</memory></node>\n",
    );
    let path = dir.join(file);
    std::fs::write(&path, xml).unwrap();
    format!("test://{}", path.display())
}

const VM01_UUID: &str = "4dea22b3-1d52-d8f3-2516-782e98a23fa0";
const OTHER_UUID: &str = "11111111-2222-3333-4444-555555555555";

struct Pair {
    _dir: tempfile::TempDir,
    src: Hypervisor,
    dst: Hypervisor,
}

fn pair(src_guests: &[TestGuest], dst_guests: &[TestGuest]) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let src_uri = write_node(dir.path(), "adm01.xml", src_guests);
    let dst_uri = write_node(dir.path(), "adm02.xml", dst_guests);
    let src = Hypervisor::connect("adm01", &src_uri).unwrap();
    let dst = Hypervisor::connect("adm02", &dst_uri).unwrap();
    Pair {
        _dir: dir,
        src,
        dst,
    }
}

/// The state of `guest` on `host` (`None`: not defined there).
fn state(host: &Hypervisor, guest: &str) -> Option<GuestState> {
    host.domain_state(guest).unwrap()
}

#[test]
fn offline_move_defines_on_target_then_undefines_source_and_is_idempotent() {
    let p = pair(&[TestGuest("vm01", VM01_UUID, 5)], &[]);
    move_offline(&p.src, &p.dst, "vm01").unwrap();
    assert_eq!(state(&p.dst, "vm01"), Some(GuestState::ShutOff));
    assert_eq!(state(&p.src, "vm01"), None);
    let moved = p.dst.migratable_xml("vm01").unwrap();
    assert!(
        moved.contains(VM01_UUID),
        "target definition keeps the UUID:\n{moved}"
    );

    // Re-running after success changes nothing and succeeds.
    move_offline(&p.src, &p.dst, "vm01").unwrap();
    assert_eq!(state(&p.dst, "vm01"), Some(GuestState::ShutOff));
    assert_eq!(state(&p.src, "vm01"), None);

    // The moved guest starts on its new host.
    p.dst.start("vm01", TIMEOUT).unwrap();
    assert_eq!(state(&p.dst, "vm01"), Some(GuestState::Running));
}

#[test]
fn offline_move_interrupted_after_define_is_finished_by_a_rerun() {
    let p = pair(&[TestGuest("vm01", VM01_UUID, 5)], &[]);
    // Simulate a crash between define on the target and undefine on the source.
    p.dst
        .define(&p.src.migratable_xml("vm01").unwrap())
        .unwrap();
    move_offline(&p.src, &p.dst, "vm01").unwrap();
    assert_eq!(state(&p.src, "vm01"), None);
    assert_eq!(state(&p.dst, "vm01"), Some(GuestState::ShutOff));
}

#[test]
fn offline_move_refuses_a_target_holding_another_domain_of_that_name() {
    let p = pair(
        &[TestGuest("vm01", VM01_UUID, 5)],
        &[TestGuest("vm01", OTHER_UUID, 5)],
    );
    let err = move_offline(&p.src, &p.dst, "vm01").unwrap_err();
    assert!(matches!(err, ApplyError::NameTaken { .. }), "{err}");
    assert!(err.to_string().contains(OTHER_UUID), "{err}");
    // The source keeps its guest.
    assert_eq!(state(&p.src, "vm01"), Some(GuestState::ShutOff));
}

#[test]
fn offline_move_of_a_running_guest_is_refused_and_changes_nothing() {
    let p = pair(&[TestGuest("vm01", VM01_UUID, 1)], &[]);
    let err = move_offline(&p.src, &p.dst, "vm01").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("vm01") && text.contains("adm01") && text.contains("running"),
        "{text}"
    );
    assert_eq!(state(&p.src, "vm01"), Some(GuestState::Running));
    assert_eq!(state(&p.dst, "vm01"), None);
}

#[test]
fn offline_move_of_an_unknown_guest_names_both_hosts() {
    let p = pair(&[], &[]);
    let text = move_offline(&p.src, &p.dst, "ghost")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("ghost") && text.contains("adm01") && text.contains("adm02"),
        "{text}"
    );
}

#[test]
fn shutdown_and_start_wait_for_the_state_and_are_idempotent() {
    let p = pair(&[TestGuest("vm01", VM01_UUID, 1)], &[]);
    p.src.shutdown("vm01", TIMEOUT, false).unwrap();
    assert_eq!(state(&p.src, "vm01"), Some(GuestState::ShutOff));
    p.src.shutdown("vm01", TIMEOUT, false).unwrap();
    p.src.start("vm01", TIMEOUT).unwrap();
    assert_eq!(state(&p.src, "vm01"), Some(GuestState::Running));
    p.src.start("vm01", TIMEOUT).unwrap();
    assert_eq!(state(&p.src, "vm01"), Some(GuestState::Running));
}

#[test]
fn operations_on_a_missing_guest_name_guest_and_host() {
    let p = pair(&[], &[]);
    assert_eq!(state(&p.src, "vm09"), None);
    for err in [
        p.src.start("vm09", TIMEOUT).unwrap_err(),
        p.src.undefine("vm09").unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains("vm09") && text.contains("adm01"), "{text}");
    }
}

#[test]
fn define_reports_libvirts_message_with_the_guest_name() {
    let p = pair(&[], &[]);
    let err = p
        .src
        .define("<domain type='test'><name>vm07</name><memory>bogus</memory></domain>")
        .unwrap_err();
    let ApplyError::Libvirt {
        action,
        guest,
        host,
        message,
    } = &err
    else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(
        (*action, guest.as_str(), host.as_str()),
        ("define", "vm07", "adm01")
    );
    assert!(!message.is_empty());
}

#[test]
fn connect_failure_carries_uri_and_libvirt_message() {
    let err = Hypervisor::connect("adm09", "test:///nonexistent/berth/node.xml").unwrap_err();
    let ApplyError::Connect { host, uri, message } = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(
        (host.as_str(), uri.as_str()),
        ("adm09", "test:///nonexistent/berth/node.xml")
    );
    assert!(!message.is_empty(), "{err}");
}

/// vm01 migrated live from adm01 to adm02, which must fail: the error, and how many progress
/// reports came before it.
fn live_migration_error(p: &Pair) -> (ApplyError, usize) {
    let mut reports = 0;
    let err = migrate_live(
        &p.src,
        &p.dst,
        "vm01",
        &LiveOptions::default(),
        STALL,
        &mut |_| reports += 1,
    )
    .unwrap_err();
    (err, reports)
}

#[test]
fn live_migration_on_the_test_driver_fails_cleanly_and_leaves_the_guest_on_the_source() {
    let p = pair(&[TestGuest("vm01", VM01_UUID, 1)], &[]);
    let (err, reports) = live_migration_error(&p);
    let ApplyError::Migration {
        guest,
        from,
        to,
        message,
    } = &err
    else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(
        (guest.as_str(), from.as_str(), to.as_str()),
        ("vm01", "adm01", "adm02")
    );
    assert!(
        message.contains("not supported"),
        "libvirt's reason is kept: {message}"
    );
    assert_eq!(reports, 0, "the test driver has no job statistics");
    assert_eq!(state(&p.src, "vm01"), Some(GuestState::Running));
    assert_eq!(state(&p.dst, "vm01"), None);
}

#[test]
fn live_migration_of_a_shut_off_guest_is_refused_before_libvirt_is_asked() {
    let p = pair(&[TestGuest("vm01", VM01_UUID, 5)], &[]);
    let (err, _) = live_migration_error(&p);
    assert!(
        matches!(
            err,
            ApplyError::WrongState {
                state: GuestState::ShutOff,
                ..
            }
        ),
        "{err}"
    );
}

/// apply's connections are bounded too: a libvirt that accepts and never answers is a connect
/// error naming the host, after the timeout, not a hang.
#[test]
fn a_host_that_never_answers_is_a_connect_error_after_the_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!(
        "qemu+tcp://127.0.0.1:{}/system",
        silent.local_addr().unwrap().port()
    );
    let err = Hypervisor::connect_within("adm07", &uri, Duration::from_millis(500)).unwrap_err();
    let ApplyError::Connect {
        host,
        uri: at,
        message,
    } = &err
    else {
        panic!("unexpected {err:?}")
    };
    assert_eq!((host.as_str(), at.as_str()), ("adm07", uri.as_str()));
    assert!(message.contains("no answer within 0.5 s"), "{err}");
    drop(silent);
}
