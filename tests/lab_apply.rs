//! `berth apply` (the real binary) on the multi-host KVM lab (docs/lab.md): real libvirtds,
//! real QEMU guests, real live and offline migrations.
//!
//! ```text
//! tests/lab/lab.sh up 3
//! cargo test --test lab_apply -- --ignored --test-threads=1
//! ```
//!
//! Each test defines its own ticker guests (tests/lab/ticker.asm: "tick N" every second on the
//! serial log, powers off on a graceful shutdown), writes a configuration directory for them
//! (es.xml from tests/lab/esxml.sh, main.hcl pointing at the lab), runs `berth apply
//! -auto-approve`, and then checks reality through libvirt (berth's [`Hypervisor`]), the
//! tickers' serial logs, es.xml and the state file. Tests are ignored by default (they need
//! root and the lab) and must run one at a time (they share the hosts).

#[path = "lab/support.rs"]
#[allow(dead_code)] // shared with tests/lab.rs, which uses all of it
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth::apply::hypervisor::{DomainStatus, Hypervisor};
use berth::inventory::{GuestState, esxml, observe_host};
use berth::plan::Plan;
use berth::schedule::StepKind;
use berth::state::{State, StateStore, StepStatus};
use support::{Cleanup, GuestSpec, Lab, START_TIMEOUT, Serial, TICK_TIMEOUT};

/// How long libvirt may take to clean up after a client that was killed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// A ticker guest of a test: started on lab host `host` before berth runs.
struct Ticker {
    name: &'static str,
    memory_mib: u64,
    host: u8,
    bridge: Option<&'static str>,
}

/// One test's guests, their serial logs and berth configuration directory. Dropping it removes
/// the guests and bridges from every lab host (also when the test fails).
struct Scenario {
    lab: Lab,
    dir: tempfile::TempDir,
    serials: BTreeMap<&'static str, Serial>,
    _cleanup: Cleanup,
}

/// What a test's main.hcl says besides reaching the lab.
#[derive(Default)]
struct Intent<'a> {
    /// Gather bridges over SSH while planning (and so create missing ones).
    facts: bool,
    /// Lines of the `defaults` block.
    defaults: &'a str,
    /// Extra lines of host N's block.
    host: [&'a str; 3],
    /// `guest` blocks and anything else at the top level.
    tail: &'a str,
}

impl Scenario {
    /// Cleans the lab of these guests and bridges, checks that the hosts hold nothing else
    /// (berth would see any other domain as drift), creates each bridge on host 1, starts the
    /// tickers and waits for their first tick, then writes es.xml and main.hcl.
    fn new(tickers: &[Ticker], bridges: &[&str], intent: &Intent) -> Scenario {
        let lab = Lab::from_env();
        let names: Vec<&str> = tickers.iter().map(|t| t.name).collect();
        let on_all_hosts: Vec<(u8, &str)> = bridges
            .iter()
            .flat_map(|b| (1..=3).map(move |n| (n, *b)))
            .collect();
        let cleanup = lab.cleanup(&names, &on_all_hosts);
        for h in lab.hosts() {
            let o = observe_host(&h.name, &h.uri).unwrap_or_else(|e| panic!("{e}"));
            let foreign: Vec<&str> = o.domains.iter().map(|d| d.name.as_str()).collect();
            assert!(
                foreign.is_empty(),
                "{} holds domains of no test: {foreign:?}; remove them first",
                h.name
            );
        }
        for bridge in bridges {
            lab.exec(1, &["ip", "link", "add", bridge, "type", "bridge"]);
            lab.exec(1, &["ip", "link", "set", bridge, "up"]);
        }
        let mut serials = BTreeMap::new();
        for t in tickers {
            let serial = lab.fresh_serial(t.name);
            let spec = GuestSpec {
                name: t.name,
                memory_mib: t.memory_mib,
                vcpus: 1,
                ticker_serial: Some(&serial.path),
                bridge: t.bridge,
            };
            let hv = connect(&lab, t.host);
            hv.define(&lab.domxml(&spec))
                .unwrap_or_else(|e| panic!("{e}"));
            hv.start(t.name, START_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}"));
            serials.insert(t.name, serial);
        }
        for serial in serials.values() {
            serial.wait_tick_above(0, TICK_TIMEOUT);
        }

        let dir = tempfile::Builder::new()
            .prefix("berth-lab-apply-")
            .tempdir()
            .unwrap();
        let placement: Vec<String> = (1..=3u8)
            .map(|n| {
                let guests: Vec<String> = tickers
                    .iter()
                    .filter(|t| t.host == n)
                    .map(|t| format!("{}:{}:1", t.name, t.memory_mib))
                    .collect();
                match guests.is_empty() {
                    true => format!("labh{n}"),
                    false => format!("labh{n}={}", guests.join(",")),
                }
            })
            .collect();
        let es = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/esxml.sh"))
            .args(&placement)
            .output();
        let es = es.unwrap_or_else(|e| panic!("cannot run tests/lab/esxml.sh: {e}"));
        assert!(
            es.status.success(),
            "esxml.sh failed: {}",
            String::from_utf8_lossy(&es.stderr)
        );
        std::fs::write(dir.path().join("es.xml"), es.stdout).unwrap();
        let scenario = Scenario {
            lab,
            dir,
            serials,
            _cleanup: cleanup,
        };
        scenario.write_config(intent);
        scenario
    }

    /// One 128 MiB ticker on host 1 that main.hcl moves to labh2 with these `defaults` lines
    /// (at `bandwidth_mib_s = 1` its memory takes seconds to move: time to act mid-migration).
    fn one_slow_move(guest: &'static str, defaults: &str) -> Scenario {
        let tail = format!("guest \"{guest}\" {{ host = \"labh2\" }}");
        let ticker = Ticker {
            name: guest,
            memory_mib: 128,
            host: 1,
            bridge: None,
        };
        let intent = Intent {
            defaults,
            tail: &tail,
            ..Intent::default()
        };
        Scenario::new(&[ticker], &[], &intent)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// (Re)writes main.hcl: the lab's hosts by address (libvirt and migration), SSH with the
    /// lab's key and strict host keys, the lab's shared storage, and `intent`.
    fn write_config(&self, intent: &Intent) {
        let lab = self.lab.dir.display();
        let hosts: String = (1..=3u8)
            .map(|n| {
                let ip = self.lab.host(n).ip;
                let extra = intent.host[usize::from(n) - 1];
                format!(
                    "host \"labh{n}\" {{\n  libvirt_uri   = \"qemu+tcp://{ip}/system\"\n  migration_uri = \"tcp://{ip}\"\n  {extra}\n}}\n"
                )
            })
            .collect();
        let text = format!(
            r#"inventory {{
  es_xml      = "es.xml"
  libvirt_uri = "qemu+tcp://{{host}}/system"
  # Peer-to-peer live migrations: each host's libvirtd reaches the others over SSH with the
  # lab's key and known_hosts (the hosts' /etc/ssh/ssh_config), as a fleet's hosts do.
  peer_uri    = "qemu+ssh://{{host}}/system"
  ssh {{
    user             = "root"
    identity_file    = "{lab}/ssh/id_ed25519"
    known_hosts_file = "{lab}/ssh/known_hosts"
    options          = ["Include={lab}/ssh/ssh_config"]
    allow_command_options = ["Include"]
    gather_facts     = {facts}
  }}
}}

defaults {{
  vcpu_overcommit = 4
  shared_storage  = ["{lab}/shared"]
  {defaults}
}}

{hosts}
{tail}
"#,
            facts = intent.facts,
            defaults = intent.defaults,
            tail = intent.tail,
        );
        std::fs::write(self.path().join("main.hcl"), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("-C").arg(self.path()).args(args).env("NO_COLOR", "1");
        c
    }

    /// Runs berth to the end.
    fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts berth, its output going to files in the configuration directory.
    fn spawn(&self, args: &[&str], name: &str) -> Child {
        let out = std::fs::File::create(self.path().join(format!("{name}.out"))).unwrap();
        let err = std::fs::File::create(self.path().join(format!("{name}.err"))).unwrap();
        self.command(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap()
    }

    /// What a spawned berth printed.
    fn spawned_output(&self, name: &str) -> String {
        let read = |ext| {
            std::fs::read_to_string(self.path().join(format!("{name}.{ext}"))).unwrap_or_default()
        };
        format!("stdout:\n{}\nstderr:\n{}", read("out"), read("err"))
    }

    fn state(&self) -> State {
        let store = StateStore::open(self.path().join("state/berth.state.json")).unwrap();
        store.load().unwrap().expect("berth wrote a state file")
    }

    /// The host es.xml puts `guest` on.
    fn es_host(&self, guest: &str) -> String {
        let text = std::fs::read_to_string(self.path().join("es.xml")).unwrap();
        let es = esxml::parse("es.xml", &text).unwrap_or_else(|e| panic!("{e}"));
        let g = es.guests.iter().find(|g| g.name == guest).unwrap();
        es.hosts
            .iter()
            .find(|h| h.id == g.host_id)
            .unwrap()
            .name
            .clone()
    }

    fn serial(&self, guest: &str) -> &Serial {
        &self.serials[guest]
    }

    /// Every host's copy of `guest`, by host name.
    fn copies(&self, guest: &str) -> BTreeMap<String, DomainStatus> {
        (1..=3u8)
            .filter_map(|n| {
                let status = connect(&self.lab, n)
                    .domain_status(guest)
                    .unwrap_or_else(|e| panic!("{e}"));
                status.map(|s| (format!("labh{n}"), s))
            })
            .collect()
    }

    /// `guest` is defined on exactly one host, running and persistent there; returns the host.
    #[track_caller]
    fn running_once(&self, guest: &str) -> String {
        let copies = self.copies(guest);
        assert_eq!(
            copies.len(),
            1,
            "{guest} must be defined on exactly one host: {copies:?}"
        );
        let (host, status) = copies.into_iter().next().unwrap();
        assert_eq!(
            status.state,
            GuestState::Running,
            "{guest} on {host}: {status:?}"
        );
        assert!(status.persistent, "{guest} on {host} is not persistent");
        host
    }

    /// `guest` kept running through everything: booted once, ticks 1, 2, 3, … with no gap,
    /// and it still ticks.
    #[track_caller]
    fn ticked_on(&self, guest: &str) {
        let serial = self.serial(guest);
        let last = serial.last_tick();
        serial.wait_tick_above(last + 1, TICK_TIMEOUT);
        assert_eq!(serial.boots(), 1, "{guest} rebooted:\n{}", serial.text());
        let ticks = serial.ticks();
        assert_eq!(
            ticks,
            (1..=ticks.len() as u32).collect::<Vec<_>>(),
            "{guest}'s ticks must count on"
        );
    }

    /// The state has no plan in progress and every journal entry is done.
    #[track_caller]
    fn journal_all_done(&self) -> State {
        let state = self.state();
        assert!(
            state.in_progress.is_none(),
            "a plan is still in progress: {:?}",
            state.in_progress
        );
        assert!(!state.journal.is_empty(), "nothing was journaled");
        let open: Vec<_> = state
            .journal
            .iter()
            .filter(|e| e.status != StepStatus::Done)
            .collect();
        assert!(open.is_empty(), "journal entries not done: {open:#?}");
        state
    }

    /// `berth plan --detailed-exitcode` says there is nothing left to do (and no drift).
    #[track_caller]
    fn converged(&self) {
        let out = self.berth(&["plan", "--detailed-exitcode"]);
        assert_exit(&out, 0);
    }
}

fn connect(lab: &Lab, n: u8) -> Hypervisor {
    let h = lab.host(n);
    Hypervisor::connect(&h.name, &h.uri).unwrap_or_else(|e| panic!("{e}"))
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
}

/// Polls `ready` every 10 ms until it holds; panics after `timeout` saying `what`.
fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for berth to exit; panics (after killing it) if it runs longer than `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("berth (pid {}) still runs after {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// (a) ------------------------------------------------------------------------------------------

/// `host "labh1" { drain = true }` empties labh1 of three running guests, live: each ends up
/// running on another host and never stopped (its ticks count on from the same boot), the
/// bridge they use is created on the targets first, es.xml is written back, every journal
/// entry is done, and a new plan has nothing left to do.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn drain_moves_three_running_guests_live_off_a_host() {
    const BRIDGE: &str = "br-ladrain";
    let guests = ["la-drain1", "la-drain2", "la-drain3"];
    let tickers: Vec<Ticker> = guests
        .iter()
        .zip([64, 48, 32])
        .map(|(&name, mib)| Ticker {
            name,
            memory_mib: mib,
            host: 1,
            bridge: Some(BRIDGE),
        })
        .collect();
    let s = Scenario::new(
        &tickers,
        &[BRIDGE],
        &Intent {
            facts: true,
            defaults: "mode = \"live\"",
            host: ["drain = true", "", ""],
            ..Intent::default()
        },
    );

    let started = Instant::now();
    let out = s.berth(&["apply", "-auto-approve"]);
    eprintln!("berth apply took {:?}", started.elapsed());
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Apply complete!"), "{}", text(&out));

    let mut targets = BTreeSet::new();
    for guest in guests {
        let host = s.running_once(guest);
        assert_ne!(host, "labh1", "{guest} is still on the drained host");
        assert_eq!(
            s.es_host(guest),
            host,
            "es.xml must put {guest} where libvirt has it"
        );
        s.ticked_on(guest);
        targets.insert(host);
    }
    // The targets lacked the guests' bridge: CREATE_BRIDGES made it there (over SSH).
    for host in &targets {
        let n: u8 = host.trim_start_matches("labh").parse().unwrap();
        let link = s.lab.exec(n, &["ip", "-o", "link", "show", BRIDGE]);
        assert!(
            String::from_utf8_lossy(&link.stdout).contains(BRIDGE),
            "no {BRIDGE} on {host}"
        );
    }
    let state = s.journal_all_done();
    let kinds: BTreeMap<StepKind, usize> =
        state.journal.iter().fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.kind).or_default() += 1;
            m
        });
    assert_eq!(kinds.get(&StepKind::MigrateGuest), Some(&3), "{kinds:?}");
    // One per move: the second move onto a host finds the bridge there already.
    assert_eq!(kinds.get(&StepKind::CreateBridges), Some(&3), "{kinds:?}");
    for guest in guests {
        assert_eq!(
            state.topology[guest].host,
            s.es_host(guest),
            "state topology of {guest}"
        );
    }
    let backups = std::fs::read_dir(s.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("es.xml.berth-backup-")
        })
        .count();
    assert_eq!(backups, 1, "the es.xml the plan was made from is kept once");
    s.converged();
}

// (b) ------------------------------------------------------------------------------------------

/// Two running guests swap hosts offline between two hosts that each have room for only one
/// of them (memory_reserved leaves 100 MiB for guests; each guest has 64 MiB). The plan starts
/// neither guest on its new host before the other one has stopped there, the apply (of the
/// saved plan) keeps to that (libvirt is watched throughout: never both running on one host),
/// and both end up running on the other host, each rebooted exactly once by a graceful stop.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn offline_swap_between_two_full_hosts_never_overcommits() {
    const A: &str = "la-swap1";
    const B: &str = "la-swap2";
    let lab = Lab::from_env();
    let reserve = |n: u8| {
        let h = lab.host(n);
        let memory = observe_host(&h.name, &h.uri)
            .unwrap_or_else(|e| panic!("{e}"))
            .memory_mib;
        format!("memory_reserved = \"{}MiB\"", memory - 100)
    };
    let (r1, r2) = (reserve(1), reserve(2));
    drop(lab);
    let s = Scenario::new(
        &[
            Ticker {
                name: A,
                memory_mib: 64,
                host: 1,
                bridge: None,
            },
            Ticker {
                name: B,
                memory_mib: 64,
                host: 2,
                bridge: None,
            },
        ],
        &[],
        &Intent {
            defaults: "mode = \"offline\"",
            host: [&r1, &r2, "disabled = true"],
            tail: "guest \"la-swap1\" { host = \"labh2\" }\nguest \"la-swap2\" { host = \"labh1\" }",
            ..Intent::default()
        },
    );

    let saved = s.path().join("swap.berth");
    assert_exit(
        &s.berth(&[
            "plan",
            "-out",
            saved.to_str().unwrap(),
            "--detailed-exitcode",
        ]),
        2,
    );
    let plan: Plan = berth::plan::file::load(&saved).unwrap_or_else(|e| panic!("{e}"));
    let moves: Vec<(&str, &str, &str)> = plan
        .moves
        .iter()
        .map(|m| (m.guest.as_str(), m.from.as_str(), m.to.as_str()))
        .collect();
    assert_eq!(moves, [(A, "labh1", "labh2"), (B, "labh2", "labh1")]);
    for (guest, other) in [(A, B), (B, A)] {
        let (start, stop) = (
            format!("{guest}:STARTUP_GUEST"),
            format!("{other}:STOP_GUEST"),
        );
        assert!(
            depends_on(&plan, &start, &stop),
            "{start} must wait for {stop}: {:#?}",
            plan.steps
        );
    }

    let mut apply = s.spawn(&["apply", saved.to_str().unwrap()], "apply");
    let (h1, h2) = (connect(&s.lab, 1), connect(&s.lab, 2));
    let running =
        |h: &Hypervisor, g: &str| h.domain_state(g).ok().flatten() == Some(GuestState::Running);
    let mut observations = 0;
    let status = loop {
        for (h, name) in [(&h1, "labh1"), (&h2, "labh2")] {
            assert!(
                !(running(h, A) && running(h, B)),
                "{A} and {B} both run on {name}"
            );
        }
        observations += 1;
        if let Some(status) = apply.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{}", s.spawned_output("apply"));
    eprintln!("watched both hosts {observations} times during the apply");

    assert_eq!(s.running_once(A), "labh2");
    assert_eq!(s.running_once(B), "labh1");
    let state = s.journal_all_done();
    let entry = |guest: &str, kind: StepKind| {
        state
            .journal
            .iter()
            .find(|e| e.guest == guest && e.kind == kind)
            .unwrap_or_else(|| panic!("{guest} {kind}"))
    };
    for (guest, other) in [(A, B), (B, A)] {
        let started = entry(guest, StepKind::StartupGuest).started_at.unwrap();
        let other_stopped = entry(other, StepKind::StopGuest).finished_at.unwrap();
        assert!(
            started >= other_stopped,
            "{guest} started at {started} before {other} stopped ({other_stopped})"
        );
    }
    for guest in [A, B] {
        assert_eq!(s.es_host(guest), state.topology[guest].host);
        let serial = s.serial(guest);
        wait_until(
            &format!("{guest} boots on its new host"),
            TICK_TIMEOUT,
            || {
                serial.boots() == 2
                    && serial
                        .text()
                        .rsplit("ticker boot")
                        .next()
                        .is_some_and(|l| l.contains("tick 1"))
            },
        );
        let log = serial.text();
        assert_eq!(
            log.matches("ticker off").count(),
            1,
            "{guest} was shut down gracefully once:\n{log}"
        );
        assert_eq!(
            serial.boots(),
            2,
            "{guest} booted on its source and again on its target:\n{log}"
        );
    }
    s.converged();
}

/// Whether step `id` depends on step `on`, directly or through other steps.
fn depends_on(plan: &Plan, id: &str, on: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![id.to_string()];
    while let Some(current) = todo.pop() {
        let Some(step) = plan.steps.iter().find(|s| s.id == current) else {
            continue;
        };
        for dep in &step.depends_on {
            if dep == on {
                return true;
            }
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    false
}

// (c) ------------------------------------------------------------------------------------------

/// When the test kills berth during a live migration.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// After half the guest's memory has been copied (the source's job statistics say so).
    MemoryMoved,
    /// This many milliseconds after the source paused the guest for the last pages: the
    /// window in which a client-managed migration leaves the guest running nowhere.
    SourcePaused(u64),
    /// As soon as the target runs the guest: libvirt has finished there, and the source may
    /// still wait for the confirmation (its copy paused).
    TargetRunning,
}

/// Spawns `berth apply`, moving `guest` live from host `from` to host `to`, and kills it (-9)
/// at `at`. Returns when it is dead.
fn kill_during_migration(s: &Scenario, guest: &str, from: u8, to: u8, at: KillAt, name: &str) {
    let (src, dst) = (connect(&s.lab, from), connect(&s.lab, to));
    let mut apply = s.spawn(&["apply", "-auto-approve"], name);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Polled without pause: the paused window lasts only as long as the last pages take.
    loop {
        if let Ok(Some(_)) = apply.try_wait() {
            panic!(
                "berth ended before the kill at {at:?}:\n{}",
                s.spawned_output(name)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{guest}'s migration never reached {at:?}"
        );
        let reached = match at {
            KillAt::MemoryMoved => src
                .migration_progress(guest)
                .unwrap()
                .is_some_and(|p| p.percent.unwrap_or(0.0) >= 50.0),
            KillAt::SourcePaused(_) => src
                .domain_status(guest)
                .unwrap()
                .is_some_and(|st| st.paused_by_migration),
            KillAt::TargetRunning => dst
                .domain_status(guest)
                .unwrap()
                .is_some_and(|st| st.runs() && st.persistent),
        };
        if reached {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if let KillAt::SourcePaused(ms) = at {
        std::thread::sleep(Duration::from_millis(ms));
    }
    apply.kill().unwrap();
    apply.wait().unwrap();
}

/// Waits until `serial` logs `n` more ticks (of whatever boot: an offline move reboots the
/// guest, and its counter starts again at 1).
fn wait_more_ticks(serial: &Serial, n: usize) {
    let before = serial.ticks().len();
    wait_until(
        &format!("{n} more ticks in {}", serial.path.display()),
        TICK_TIMEOUT,
        || serial.ticks().len() >= before + n,
    );
}

/// Right after a kill: once libvirt has ended the migration and removed any half-built copy,
/// the guest runs on at most one host (libvirt's states), and its serial log shows no doubled
/// ticks: had two copies run at once, both would have logged. Returns every host's copy.
fn check_after_kill(s: &Scenario, guest: &str) -> BTreeMap<String, DomainStatus> {
    let mut copies = BTreeMap::new();
    wait_until(
        "libvirt has ended the migration and cleaned up after the killed berth",
        SETTLE_TIMEOUT,
        || {
            copies = s.copies(guest);
            // No job, no copy libvirt is tearing down, and no source copy of a completed
            // migration that libvirt is about to undefine.
            copies
                .values()
                .all(|c| !c.job_active && !c.is_leftover() && !c.migrated_away)
        },
    );
    let running: Vec<&String> = copies
        .iter()
        .filter(|(_, c)| c.runs())
        .map(|(h, _)| h)
        .collect();
    assert!(
        running.len() <= 1,
        "{guest} must run on at most one host after the kill: {copies:?}"
    );
    let serial = s.serial(guest);
    if running.len() == 1 {
        // Two more ticks: time for a second copy, if there were one, to log too.
        wait_more_ticks(serial, 2);
    }
    assert_eq!(
        serial.doubled_ticks(),
        Vec::<u32>::new(),
        "{guest} ran twice (its ticks repeat):\n{}",
        serial.text()
    );
    assert!(copies.len() <= 2, "{copies:?}");
    copies
}

/// berth is killed (-9) in the middle of a live migration: after half the memory has moved,
/// a few milliseconds after the source paused the guest for the last pages, and just as the
/// target runs the guest. After each kill the guest runs on at most one host and never ran
/// twice (its serial log has no doubled ticks); the dead berth's lock went with it (an OS file
/// lock), and `berth apply` then converges: the guest is defined once, runs on the target, and
/// never rebooted.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn apply_killed_during_a_live_migration_resumes_and_converges() {
    const GUEST: &str = "la-kill";
    // 1 MiB/s makes a 128 MiB ticker take about two seconds to move: time to pick the moment.
    let defaults = |transport: &str| {
        format!(
            "mode = \"live\"\n  live {{\n    bandwidth_mib_s = 1\n    transport = \"{transport}\"\n  }}"
        )
    };
    let p2p = defaults("peer_to_peer");
    let s = Scenario::one_slow_move(GUEST, &p2p);

    // Peer-to-peer (the default) at every instant, then client-managed in its worst window.
    let rounds = [
        (KillAt::MemoryMoved, "peer_to_peer", 1u8, 2u8),
        (KillAt::SourcePaused(3), "peer_to_peer", 2, 1),
        (KillAt::TargetRunning, "peer_to_peer", 1, 2),
        (KillAt::SourcePaused(3), "client", 2, 1),
    ];
    for (round, (at, transport, from, to)) in rounds.into_iter().enumerate() {
        if round > 0 {
            let tail = format!("guest \"{GUEST}\" {{ host = \"labh{to}\" }}");
            s.write_config(&Intent {
                defaults: &defaults(transport),
                tail: &tail,
                ..Intent::default()
            });
        }
        eprintln!("round {round}: {transport}, kill at {at:?}, labh{from} -> labh{to}");
        let name = format!("killed{round}");
        kill_during_migration(&s, GUEST, from, to, at, &name);
        let copies = check_after_kill(&s, GUEST);
        eprintln!("{transport} {at:?}: after the kill: {copies:?}");
        // The dead berth's lock went with it (an OS file lock): no force-unlock is needed.

        let resumed = s.berth(&["apply", "-auto-approve"]);
        assert_exit(&resumed, 0);
        let said = String::from_utf8_lossy(&resumed.stdout);
        assert!(
            said.contains("Continuing the unfinished apply"),
            "{}",
            text(&resumed)
        );
        // Peer-to-peer, the source libvirtd goes on driving the migration after berth died and
        // may finish or roll it back before the resume looks: then there is nothing to settle.
        // Client-managed, nothing drives it, and the resume must say what it did.
        if transport == "client" && copies.len() == 2 {
            assert!(
                said.contains("removed that copy"),
                "the settling is reported:\n{}",
                text(&resumed)
            );
        } else if transport == "client" && copies.values().all(|c| !c.runs()) {
            assert!(
                said.contains("resumed it there"),
                "the resumed source copy is reported:\n{}",
                text(&resumed)
            );
        }
        assert_eq!(
            s.running_once(GUEST),
            format!("labh{to}"),
            "{}",
            text(&resumed)
        );
        assert_eq!(s.es_host(GUEST), format!("labh{to}"));
        s.ticked_on(GUEST);
        s.journal_all_done();
        s.converged();
    }
}

// (d) ------------------------------------------------------------------------------------------

/// Two applies at once: while the first migrates, the second is refused (exit 1) and names the
/// first as the lock's holder (user@host, pid, operation, lock id); a plan is refused too unless
/// `-lock=false`. The first completes untouched.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn a_second_apply_is_refused_while_the_first_runs() {
    const GUEST: &str = "la-lock";
    let s = Scenario::one_slow_move(
        GUEST,
        "mode = \"live\"\n  live {\n    bandwidth_mib_s = 1\n  }",
    );
    let src = connect(&s.lab, 1);
    let mut first = s.spawn(&["apply", "-auto-approve"], "first");
    wait_until("the first apply migrates", Duration::from_secs(60), || {
        src.domain_status(GUEST)
            .unwrap()
            .is_some_and(|st| st.job_active)
    });

    let second = s.berth(&["apply", "-auto-approve"]);
    let plan = s.berth(&["plan"]);
    let unlocked_plan = s.berth(&["plan", "-lock=false", "--detailed-exitcode"]);
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path().join("state/berth.state.json.lock")).unwrap(),
    )
    .unwrap();
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first apply must still run while the second is refused"
    );

    assert_exit(&second, 1);
    let err = String::from_utf8_lossy(&second.stderr).into_owned();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    for needle in [
        "is locked".to_string(),
        format!("(pid {})", first.id()),
        "for `apply`".to_string(),
        format!("@{host}"),
        format!("lock id {}", lock["id"].as_str().unwrap()),
    ] {
        assert!(
            err.contains(&needle),
            "the refusal must name the holder ({needle}):\n{err}"
        );
    }
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("started"),
        "{}",
        text(&second)
    );
    assert_exit(&plan, 1);
    assert!(
        String::from_utf8_lossy(&plan.stderr).contains(&format!("(pid {})", first.id())),
        "{}",
        text(&plan)
    );
    // Without the lock, planning reads libvirt mid-migration; it must not fail on the lock.
    assert!(
        !String::from_utf8_lossy(&unlocked_plan.stderr).contains("is locked"),
        "{}",
        text(&unlocked_plan)
    );

    let status = wait_exit(&mut first, Duration::from_secs(120));
    assert!(status.success(), "{}", s.spawned_output("first"));
    assert!(
        !s.path().join("state/berth.state.json.lock").exists(),
        "the first apply released its lock"
    );
    assert_eq!(s.running_once(GUEST), "labh2");
    s.ticked_on(GUEST);
    s.journal_all_done();
    s.converged();
}

// (e) ------------------------------------------------------------------------------------------

/// Takes lab host N's link to the switch down (`ip -n labsw link set hN down`): the host is cut
/// off from berth and from the other hosts, but keeps running. Dropping the guard brings the
/// link back, also when the test fails.
struct LinkDown {
    port: String,
}

impl LinkDown {
    fn new(n: u8) -> LinkDown {
        let port = format!("h{n}");
        set_switch_port(&port, "down");
        LinkDown { port }
    }
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        set_switch_port(&self.port, "up");
    }
}

fn set_switch_port(port: &str, state: &str) {
    let out = Command::new("ip")
        .args(["-n", "labsw", "link", "set", port, state])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n labsw link set {port} {state}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Host N's libvirt through its UNIX socket: reachable from the root namespace while the
/// host's network link is down.
fn connect_local(lab: &Lab, n: u8) -> Hypervisor {
    let uri = format!(
        "qemu:///system?socket={}/hosts/h{n}/run/libvirt/libvirt-sock",
        lab.dir.display()
    );
    Hypervisor::connect(&format!("labh{n}"), &uri).unwrap_or_else(|e| panic!("{e}"))
}

/// The source host's link goes down while its guest migrates live (peer-to-peer): berth does
/// not hang. It ends with a failure that names the guest, both hosts and what stopped (a
/// stalled migration, or the connection libvirt's keepalive closed), releases its lock and
/// exits 1. Once the source's libvirtd has given up on the target and the link is back, the
/// guest runs on its source only, never ran twice, and the state file parses.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn a_partitioned_source_ends_in_a_named_failure_with_the_guest_on_its_source() {
    const GUEST: &str = "la-part";
    let s = Scenario::one_slow_move(
        GUEST,
        "mode = \"live\"\n  live {\n    bandwidth_mib_s = 1\n    stall_timeout_s = 5\n  }",
    );
    let src = connect_local(&s.lab, 1);
    let mut apply = s.spawn(&["apply", "-auto-approve"], "partitioned");
    wait_until("memory moves", Duration::from_secs(60), || {
        src.migration_progress(GUEST)
            .unwrap()
            .is_some_and(|p| p.percent.unwrap_or(0.0) >= 10.0)
    });
    let link = LinkDown::new(1);
    // Bounded by the stall timeout and libvirt's keepalive (5 s x 3), not by TCP.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = apply.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = apply.kill();
            panic!(
                "berth still runs 90 s after the link went down:\n{}",
                s.spawned_output("partitioned")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = s.spawned_output("partitioned");
    assert_eq!(status.code(), Some(1), "{said}");
    for needle in [GUEST, "labh1", "labh2"] {
        assert!(said.contains(needle), "the failure names {needle}:\n{said}");
    }
    assert!(
        said.contains("stalled") || said.contains("keepalive"),
        "the failure says what stopped:\n{said}"
    );
    assert!(
        !s.path().join("state/berth.state.json.lock").exists(),
        "the failed apply released its lock"
    );
    // The source's libvirtd gives up on the unreachable target on its own (its keepalive);
    // only then does the link come back, so the migration cannot resume and complete.
    wait_until(
        "the source's libvirtd ends the migration job",
        Duration::from_secs(120),
        || {
            src.domain_status(GUEST)
                .unwrap()
                .is_some_and(|st| !st.job_active)
        },
    );
    drop(link);
    wait_until(
        "labh2 has removed its half-received copy",
        SETTLE_TIMEOUT,
        || connect(&s.lab, 2).domain_status(GUEST).unwrap().is_none(),
    );
    assert_eq!(s.running_once(GUEST), "labh1");
    s.ticked_on(GUEST);
    let state = s.state();
    eprintln!(
        "partitioned apply said:\n{said}\njournal: {:?}",
        state.journal
    );
}

// (f) ------------------------------------------------------------------------------------------

/// Sends `signal` (`INT`, `TERM`) to berth.
/// Lets `guest`'s running live migration switch over: raises the downtime limit of its job on
/// the source, which the test's config set to 1 ms so that it could not finish on its own.
fn let_finish(src: &Hypervisor, guest: &str) {
    src.connection()
        .lookup_domain_by_name(guest)
        .and_then(|d| d.migrate_set_max_downtime(10_000, 0))
        .unwrap_or_else(|e| panic!("raising {guest}'s downtime limit: {e}"));
}

fn signal(child: &Child, signal: &str) {
    let out = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "kill -{signal} {}", child.id());
}

/// Ctrl-C on `berth apply` (the binary, SIGINT) while a guest migrates live. Twice: berth
/// aborts the running migration, the guest stays running on its source, the step fails as
/// aborted. Once: berth starts nothing new but lets the running migration finish, and the guest
/// runs on its target. Each time berth exits 1 with its summary, its lock is gone, the state
/// file parses, the guest never ran twice, and the next `berth apply` converges.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn ctrl_c_lets_running_steps_settle_and_a_second_one_aborts_migrations() {
    const GUEST: &str = "la-intr";
    const OTHER: &str = "la-intr2";
    // Two guests, one migration at a time out of labh1: the second waits, so the first Ctrl-C
    // has a step to hold back. A 1 ms downtime limit at 1 MiB/s keeps every migration copying
    // (the ticker dirties 256 KiB a second, never sent in 1 ms): one cannot finish on its own
    // between the test's look and its signals, which made the abort race the switch-over. The
    // test lets a migration finish by raising the limit on the running job (`let_finish`).
    let defaults = "mode = \"live\"\n  max_outbound_per_host = 1\n  live {\n    bandwidth_mib_s = 1\n    max_downtime_ms = 1\n  }";
    let tail = "guest \"la-intr\" { host = \"labh2\" }\nguest \"la-intr2\" { host = \"labh2\" }";
    let s = Scenario::new(
        &[
            Ticker {
                name: GUEST,
                memory_mib: 128,
                host: 1,
                bridge: None,
            },
            Ticker {
                name: OTHER,
                memory_mib: 128,
                host: 1,
                bridge: None,
            },
        ],
        &[],
        &Intent {
            defaults,
            tail,
            ..Intent::default()
        },
    );
    let src = connect(&s.lab, 1);
    let migrating = |src: &Hypervisor| {
        [GUEST, OTHER].into_iter().find(|g| {
            src.migration_progress(g)
                .unwrap()
                .is_some_and(|p| p.percent.unwrap_or(0.0) >= 10.0)
        })
    };
    let lock = s.path().join("state/berth.state.json.lock");

    // Twice: the running migration is aborted; the guest stays on labh1.
    let mut apply = s.spawn(&["apply", "-auto-approve"], "twice");
    let mut first = None;
    wait_until("a migration copies memory", Duration::from_secs(60), || {
        first = migrating(&src);
        first.is_some()
    });
    let first = first.unwrap();
    signal(&apply, "INT");
    wait_until(
        "berth says it was interrupted",
        Duration::from_secs(10),
        || {
            s.spawned_output("twice")
                .contains("Interrupted: no new step starts")
        },
    );
    signal(&apply, "INT");
    let status = wait_exit(&mut apply, Duration::from_secs(60));
    let said = s.spawned_output("twice");
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("aborted on the second interrupt"), "{said}");
    assert!(said.contains("Apply interrupted"), "{said}");
    assert!(!lock.exists(), "the lock is released:\n{said}");
    let state = s.state();
    assert!(state.in_progress.is_some(), "the plan stays unfinished");
    for g in [GUEST, OTHER] {
        assert_eq!(s.running_once(g), "labh1", "{g}:\n{said}");
        assert_eq!(s.serial(g).doubled_ticks(), Vec::<u32>::new(), "{g}");
    }
    eprintln!("two interrupts while {first} migrated:\n{said}");

    // Once: the running migration finishes, the other one does not start.
    let mut apply = s.spawn(&["apply", "-auto-approve"], "once");
    let mut moving = None;
    wait_until("a migration copies memory", Duration::from_secs(60), || {
        moving = migrating(&src);
        moving.is_some()
    });
    let moving = moving.unwrap();
    let waiting = if moving == GUEST { OTHER } else { GUEST };
    signal(&apply, "INT");
    wait_until(
        "berth says it was interrupted",
        Duration::from_secs(10),
        || {
            s.spawned_output("once")
                .contains("Interrupted: no new step starts")
        },
    );
    let_finish(&src, moving);
    let status = wait_exit(&mut apply, Duration::from_secs(120));
    let said = s.spawned_output("once");
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("Apply interrupted"), "{said}");
    assert!(!lock.exists(), "the lock is released:\n{said}");
    assert!(s.state().in_progress.is_some(), "the plan stays unfinished");
    assert_eq!(s.running_once(moving), "labh2", "{said}");
    assert_eq!(s.running_once(waiting), "labh1", "{said}");
    eprintln!("one interrupt while {moving} migrated:\n{said}");

    // The next apply continues and converges.
    let mut resumed = s.spawn(&["apply", "-auto-approve"], "resumed");
    wait_until(
        "the last migration copies memory",
        Duration::from_secs(60),
        || migrating(&src) == Some(waiting),
    );
    let_finish(&src, waiting);
    let status = wait_exit(&mut resumed, Duration::from_secs(120));
    assert_eq!(status.code(), Some(0), "{}", s.spawned_output("resumed"));
    for g in [GUEST, OTHER] {
        assert_eq!(s.running_once(g), "labh2");
        s.ticked_on(g);
    }
    s.journal_all_done();
    s.converged();
}

// (g) ------------------------------------------------------------------------------------------

/// A small seeded generator (splitmix64) for the chaos test's kill instants: the seed is
/// printed, and `BERTH_CHAOS_SEED` replays a run.
struct Chaos(u64);

impl Chaos {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// Chaos: `berth apply` is killed (-9) at random instants, at least 30 times, across drains
/// that move three tickers (dirtying memory) off labh1 and back, two live (peer-to-peer) and
/// one offline. After every kill, once libvirt has settled, each guest runs on at most one host
/// and its serial log shows no doubled ticks. After every resumed apply (`berth apply`, no
/// force-unlock: the dead berth's lock went with it), every guest runs exactly where the configuration wants it, and the state
/// file parses. The kills, their instants and what each resume found are printed.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn chaos_kills_during_drains_never_run_a_guest_twice_and_always_converge() {
    const GUESTS: [&str; 3] = ["la-chaos1", "la-chaos2", "la-chaos3"];
    let kills: usize = std::env::var("BERTH_CHAOS_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("BERTH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos: {kills} kills, seed {seed} (BERTH_CHAOS_SEED={seed} replays it)");
    let mut rng = Chaos(seed);
    let tickers: Vec<Ticker> = GUESTS
        .iter()
        .map(|&name| Ticker {
            name,
            memory_mib: 32,
            host: 1,
            bridge: None,
        })
        .collect();
    // la-chaos3 moves offline; the others live.
    let guests = "guest \"la-chaos3\" { mode = \"offline\" }";
    let defaults = "mode = \"live\"\n  live {\n    bandwidth_mib_s = 64\n  }";
    let drain_h1 = ["drain = true", "", ""];
    let drain_others = ["", "drain = true", "drain = true"];
    let s = Scenario::new(
        &tickers,
        &[],
        &Intent {
            defaults,
            host: drain_h1,
            tail: guests,
            ..Intent::default()
        },
    );
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for kill in 0..kills {
        // Odd rounds bring the guests back, so that every kill finds work in flight.
        let off_h1 = kill % 2 == 0;
        s.write_config(&Intent {
            defaults,
            host: if off_h1 { drain_h1 } else { drain_others },
            tail: guests,
            ..Intent::default()
        });
        let name = format!("chaos{kill}");
        let mut apply = s.spawn(&["apply", "-auto-approve"], &name);
        let after = rng.millis(300, 3000);
        std::thread::sleep(Duration::from_millis(after));
        let ended_first = apply.try_wait().unwrap().is_some();
        let _ = apply.kill();
        apply.wait().unwrap();

        // After the kill: libvirt settles, no guest runs twice.
        let mut running = BTreeMap::new();
        for g in GUESTS {
            let copies = check_after_kill(&s, g);
            let on: Vec<String> = copies
                .iter()
                .filter(|(_, c)| c.runs())
                .map(|(h, _)| h.clone())
                .collect();
            running.insert(g, on);
        }
        eprintln!(
            "kill {kill}: at +{after} ms{}; running: {running:?}",
            if ended_first {
                " (berth had already ended)"
            } else {
                ""
            }
        );

        // Resume: the dead berth's lock went with it (an OS file lock); apply again, converge.
        let resumed = s.berth(&["apply", "-auto-approve"]);
        assert_exit(&resumed, 0);
        let said = String::from_utf8_lossy(&resumed.stdout);
        let what = if said.contains("removed that copy") {
            "removed a paused source copy"
        } else if said.contains("resumed it there") {
            "resumed a paused source copy"
        } else if said.contains("Continuing the unfinished apply") {
            "continued the plan"
        } else {
            "planned afresh"
        };
        *outcomes.entry(what.to_string()).or_default() += 1;
        for g in GUESTS {
            let host = s.running_once(g);
            assert_eq!(
                host == "labh1",
                !off_h1,
                "{g} runs on {host} after kill {kill}:\n{}",
                text(&resumed)
            );
            let serial = s.serial(g);
            wait_more_ticks(serial, 1);
            assert_eq!(
                serial.doubled_ticks(),
                Vec::<u32>::new(),
                "{g} ran twice (kill {kill}):\n{}",
                serial.text()
            );
        }
        let state = s.state();
        assert!(
            state.in_progress.is_none(),
            "kill {kill}: {:?}",
            state.in_progress
        );
    }
    if kills > 0 {
        s.converged();
    }
    eprintln!("chaos: {kills} kills survived; resumes: {outcomes:?}");
}

// (h) ------------------------------------------------------------------------------------------

/// The host command of the rolling maintenance test, run by berth over SSH inside a lab host:
/// a stand-in for "patch and reboot" that restarts the host's libvirtd (its running guests
/// keep running, as QEMU outlives libvirtd). It records each run in `runs-<host>` (`started`,
/// then `done` once the new libvirtd answers), and when `hold-<host>` exists it waits for
/// `go-<host>` first, so a test can kill berth while the command runs. It ignores SIGHUP and
/// writes to its own log, so it finishes even when the SSH session that started it dies.
/// The rolling lab test's "reboot" of a lab host, run there by berth over SSH. Like
/// `shutdown -r +2s`, the command returns before the reboot: in the background, once the
/// command has exited and two more seconds passed, it records the host's domains as the reboot
/// finds them, gives the host a new boot id (tests/lab/lab.sh bind-mounts a file over
/// /proc/sys/kernel/random/boot_id in each host) and restarts its libvirtd. With `hold-HOST`
/// present the command itself waits for `go-HOST` first.
const RESTART_LIBVIRTD: &str = r#"#!/bin/sh
trap '' HUP
dir=$(dirname "$0")
host=$(hostname)
exec >>"$dir/command-$host.log" 2>&1 </dev/null
echo started >>"$dir/runs-$host"
if [ -e "$dir/hold-$host" ]; then
  while [ ! -e "$dir/go-$host" ]; do sleep 0.1; done
fi
command=$$
(
  while kill -0 "$command" 2>/dev/null; do sleep 0.1; done
  sleep 2
  virsh -c qemu:///system list --all --name | sed '/^$/d' >"$dir/defined-at-reboot-$host"
  virsh -c qemu:///system list --name | sed '/^$/d' >"$dir/running-at-reboot-$host"
  cat /proc/sys/kernel/random/uuid >/proc/sys/kernel/random/boot_id
  old=$(cat /run/libvirtd.pid)
  kill -TERM "$old"
  while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
  setsid perl "$dir/reaper.pl" libvirtd --listen </dev/null >>"$dir/libvirtd-$host.out" 2>&1 &
  until virsh -c qemu:///system version >/dev/null 2>&1; do sleep 0.1; done
  echo done >>"$dir/runs-$host"
) &
"#;

fn boot_id(lab: &support::Lab, n: u8) -> String {
    let out = lab.exec(n, &["cat", "/proc/sys/kernel/random/boot_id"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The lines of a file the host command's "reboot" wrote (see [`RESTART_LIBVIRTD`]).
fn at_reboot(s: &Scenario, what: &str, host: &str) -> Vec<String> {
    std::fs::read_to_string(s.path().join(format!("{what}-at-reboot-{host}")))
        .unwrap_or_else(|e| panic!("{what}-at-reboot-{host}: {e}"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// tests/lab/lab.sh's child subreaper for libvirtd (see docs/lab.md, pitfall 4), as a file.
const REAPER_PL: &str = r#"use strict; use warnings;
syscall(157, 36, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_CHILD_SUBREAPER): $!\n";
my $child = fork() // die "fork: $!\n";
if ($child == 0) { exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n"; }
$SIG{TERM} = $SIG{INT} = sub { kill "TERM", $child; };
while (1) { my $pid = waitpid(-1, 0); next if $pid > 0; last if $!{ECHILD}; }
"#;

fn libvirtd_pid(lab: &support::Lab, n: u8) -> String {
    let out = lab.exec(n, &["cat", "/run/libvirtd.pid"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn runs(s: &Scenario, host: &str) -> Vec<String> {
    std::fs::read_to_string(s.path().join(format!("runs-{host}")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Rolling maintenance of labh1, labh2, labh3 with six running tickers: one movable guest per
/// host (moved live, never stopped) and one member per host of a three-guest anti-affinity
/// group (nowhere to go: stopped in place during its own host's phase only). The host command
/// "reboots" the host (new boot id, libvirtd restarted) a few seconds after it has returned,
/// and `back_when = "rebooted"` (the default) makes WAIT_HOST wait for that.
///
/// 1. `plan -rolling` shows three phases in order, each moving its host's movable guest off and
///    back and stopping its group member in place;
/// 2. `apply --stop-after-phase 1` services labh1 only (its libvirtd restarted once, its
///    member stopped and started again) and leaves the plan unfinished;
/// 3. `berth apply` continues with phase 2 and is killed while labh2's host command runs;
/// 4. the next `berth apply` resumes phase 2 without running that command again, waits for
///    labh2 (the "reboot" comes only after the resumed apply started, and WAIT_HOST compares
///    with the boot id the killed apply journaled), and finishes phases 2 and 3.
///
/// No guest is back on a host before its reboot: when each host "reboots", it runs no guest
/// and has only its stopped group member defined; every WAIT_HOST names the old and new boot
/// ids.
///
/// Throughout, the movable guests tick on from one boot; each member is rebooted exactly once,
/// in its own host's phase; every host command ran once; es.xml ends as it began, every
/// journal entry is done, and a new plan has nothing to do.
#[test]
#[ignore = "needs the KVM lab: tests/lab/lab.sh up 3"]
fn rolling_maintenance_services_hosts_in_phases_stops_after_a_phase_and_resumes_a_killed_one() {
    let tickers = [
        Ticker {
            name: "lr-m1",
            memory_mib: 64,
            host: 1,
            bridge: None,
        },
        Ticker {
            name: "lr-m2",
            memory_mib: 64,
            host: 2,
            bridge: None,
        },
        Ticker {
            name: "lr-m3",
            memory_mib: 64,
            host: 3,
            bridge: None,
        },
        Ticker {
            name: "lr-r1",
            memory_mib: 64,
            host: 1,
            bridge: None,
        },
        Ticker {
            name: "lr-r2",
            memory_mib: 64,
            host: 2,
            bridge: None,
        },
        Ticker {
            name: "lr-r3",
            memory_mib: 64,
            host: 3,
            bridge: None,
        },
    ];
    let movable = ["lr-m1", "lr-m2", "lr-m3"];
    let members = ["lr-r1", "lr-r2", "lr-r3"];
    let s = Scenario::new(&tickers, &[], &Intent::default());
    // The lab's libvirtds are restarted by the test's host command: whatever happens, `lab.sh
    // up 3` at the end brings back any that a failure left down.
    let _restart = s.lab.restart_on_drop();
    let script = s.path().join("restart-libvirtd.sh");
    std::fs::write(&script, RESTART_LIBVIRTD).unwrap();
    std::fs::write(s.path().join("reaper.pl"), REAPER_PL).unwrap();
    let tail = format!(
        r#"rule "anti_affinity" "rac" {{
  guests = ["lr-r1", "lr-r2", "lr-r3"]
}}

rolling_maintenance {{
  host_command            = ["/bin/sh", "{}"]
  back_timeout_s          = 60
  host_command_expected_s = 5
}}
"#,
        script.display()
    );
    s.write_config(&Intent {
        facts: true,
        defaults: "mode = \"live\"",
        tail: &tail,
        ..Intent::default()
    });
    let hosts = ["labh1", "labh2", "labh3"];
    let pids_before: Vec<String> = (1..=3).map(|n| libvirtd_pid(&s.lab, n)).collect();
    let boots_before: Vec<String> = (1..=3).map(|n| boot_id(&s.lab, n)).collect();

    // 1. The plan: three phases, in the order given.
    let out = s.berth(&["plan", "-rolling", "labh1,labh2,labh3", "-json"]);
    assert_exit(&out, 0);
    let plan: Plan = serde_json::from_slice(&out.stdout).unwrap();
    let order: Vec<&str> = plan.phases.iter().map(|p| p.host.as_str()).collect();
    assert_eq!(order, hosts);
    for (p, (m, r)) in plan.phases.iter().zip(movable.iter().zip(members)) {
        let moved: Vec<&str> = p
            .guests
            .iter()
            .filter(|g| g.action == berth::plan::MaintenanceAction::Moved)
            .map(|g| g.guest.as_str())
            .collect();
        let stopped: Vec<&str> = p
            .guests
            .iter()
            .filter(|g| g.action == berth::plan::MaintenanceAction::StoppedInPlace)
            .map(|g| g.guest.as_str())
            .collect();
        assert_eq!((moved, stopped), (vec![*m], vec![r]), "phase {}", p.number);
        assert_eq!(p.moves, 2, "phase {}: off and back home", p.number);
    }
    let text = String::from_utf8_lossy(&s.berth(&["plan", "-rolling", "labh1,labh2,labh3"]).stdout)
        .to_string();
    assert!(text.contains("Phase 2: labh2"), "{text}");

    // 2. Phase 1 only.
    let out = s.berth(&[
        "apply",
        "-auto-approve",
        "-rolling",
        "labh1,labh2,labh3",
        "--stop-after-phase",
        "1",
    ]);
    assert_exit(&out, 0);
    assert!(
        text_of(&out).contains("Stopped after phase 1"),
        "{}",
        text_of(&out)
    );
    assert_eq!(runs(&s, "labh1"), ["started", "done"]);
    assert!(runs(&s, "labh2").is_empty() && runs(&s, "labh3").is_empty());
    assert_ne!(boot_id(&s.lab, 1), boots_before[0], "labh1 rebooted");
    assert!(
        text_of(&out).contains(&format!(
            "rebooted (boot id {} → {})",
            boots_before[0],
            boot_id(&s.lab, 1)
        )),
        "{}",
        text_of(&out)
    );
    assert_ne!(
        libvirtd_pid(&s.lab, 1),
        pids_before[0],
        "labh1's libvirtd was restarted"
    );
    assert_eq!(libvirtd_pid(&s.lab, 2), pids_before[1]);
    assert!(
        s.state().in_progress.is_some(),
        "phases 2 and 3 are left to do"
    );
    for guest in movable.iter().chain(&members) {
        let home = &tickers.iter().find(|t| t.name == *guest).unwrap().host;
        assert_eq!(
            s.running_once(guest),
            format!("labh{home}"),
            "{guest} is home"
        );
    }
    stopped_and_started_once(&s, "lr-r1");
    for guest in ["lr-r2", "lr-r3"] {
        assert_eq!(
            s.serial(guest).boots(),
            1,
            "{guest} is not touched in phase 1"
        );
    }

    // 3. Continue; kill berth while labh2's host command runs (it waits for `go-labh2`).
    std::fs::write(s.path().join("hold-labh2"), "").unwrap();
    let mut child = s.spawn(&["apply", "-auto-approve"], "phase2");
    wait_until(
        "labh2's host command started",
        Duration::from_secs(120),
        || !runs(&s, "labh2").is_empty(),
    );
    signal(&child, "KILL");
    let _ = wait_exit(&mut child, SETTLE_TIMEOUT);
    // Mid-phase 2: labh2's member is stopped, labh2's movable guest is away, the others run.
    let copies = s.copies("lr-r2");
    assert_eq!(
        copies.get("labh2").map(|c| c.state),
        Some(GuestState::ShutOff),
        "{copies:?}"
    );
    assert_ne!(s.running_once("lr-m2"), "labh2");
    for guest in ["lr-r1", "lr-r3"] {
        s.running_once(guest);
    }
    assert_eq!(
        s.serial("lr-r3").boots(),
        1,
        "lr-r3 is not touched before phase 3"
    );
    assert_eq!(
        boot_id(&s.lab, 2),
        boots_before[1],
        "labh2 has not rebooted yet"
    );
    let journaled = s
        .state()
        .journal
        .iter()
        .find(|e| e.step_id == "labh2:HOST_COMMAND")
        .and_then(|e| e.boot_id.clone());
    assert_eq!(
        journaled.as_deref(),
        Some(boots_before[1].as_str()),
        "the killed apply journaled labh2's boot id with the command's start"
    );

    // 4. Resume: phase 2 goes on from its host command (not run again), then phase 3. labh2
    //    "reboots" only once the resumed apply runs: its WAIT_HOST has to wait for it.
    let mut child = s.spawn(&["apply", "-auto-approve"], "resume");
    std::fs::write(s.path().join("go-labh2"), "").unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(600));
    let said = s.spawned_output("resume");
    assert!(status.success(), "{said}");
    assert_eq!(runs(&s, "labh2"), ["started", "done"]);
    assert!(said.contains("The rolling maintenance is done"), "{said}");
    assert!(
        said.contains("labh2: HOST_COMMAND done (started by an earlier apply that was killed (its start marker `berth-once-")
            && said.contains("` is on the host): not run again"),
        "the resumed apply asked labh2 and does not run its command again: {said}"
    );
    assert_eq!(
        runs(&s, "labh2"),
        ["started", "done"],
        "labh2's command ran once"
    );
    assert_eq!(runs(&s, "labh3"), ["started", "done"]);
    assert_eq!(runs(&s, "labh1"), ["started", "done"]);
    // Every host rebooted once, and no guest was back on it before: at its reboot it ran no
    // guest and had only its stopped group member defined.
    for (n, host) in hosts.iter().enumerate() {
        let now = boot_id(&s.lab, n as u8 + 1);
        assert_ne!(now, boots_before[n], "{host} rebooted");
        assert!(
            at_reboot(&s, "running", host).is_empty(),
            "{host} ran {:?} when it rebooted",
            at_reboot(&s, "running", host)
        );
        assert_eq!(at_reboot(&s, "defined", host), [members[n]], "{host}");
        if n > 0 {
            assert!(
                said.contains(&format!("rebooted (boot id {} → {now})", boots_before[n])),
                "{host}: {said}"
            );
        }
    }
    let state = s.journal_all_done();
    let command_entries: Vec<&str> = state
        .journal
        .iter()
        .filter(|e| e.kind == StepKind::HostCommand)
        .map(|e| e.step_id.as_str())
        .collect();
    assert_eq!(
        command_entries,
        [
            "labh1:HOST_COMMAND",
            "labh2:HOST_COMMAND",
            "labh3:HOST_COMMAND"
        ],
        "every phase ran, in order"
    );
    // Phases in order: every step of phase n finished before any of phase n+1 started.
    let finished_by_phase = |n: usize| {
        let ids: BTreeSet<&str> = plan.phases[n].steps.iter().map(String::as_str).collect();
        let entries: Vec<_> = state
            .journal
            .iter()
            .filter(|e| ids.contains(e.step_id.as_str()))
            .collect();
        (
            entries.iter().filter_map(|e| e.started_at).min().unwrap(),
            entries.iter().filter_map(|e| e.finished_at).max().unwrap(),
        )
    };
    for n in 0..2 {
        assert!(
            finished_by_phase(n).1 <= finished_by_phase(n + 1).0,
            "phase {} ended before phase {} began",
            n + 1,
            n + 2
        );
    }
    for guest in movable {
        s.ticked_on(guest);
    }
    for (n, guest) in members.iter().enumerate() {
        stopped_and_started_once(&s, guest);
        assert_eq!(s.running_once(guest), format!("labh{}", n + 1));
    }
    for t in &tickers {
        assert_eq!(s.es_host(t.name), format!("labh{}", t.host));
    }
    s.converged();
    // Hand the hosts back with libvirtds started by lab.sh (as every other test expects), not
    // by this test's host command: stopped here, started again by `_restart` (`lab.sh up 3`),
    // which drops before the scenario's cleanup removes the guests.
    for n in 1..=3 {
        s.lab.stop_libvirtd(n);
    }
}

/// `guest` was shut down gracefully once and booted again: waits for its second boot's first
/// tick (libvirt says "running" before the boot sector prints).
#[track_caller]
fn stopped_and_started_once(s: &Scenario, guest: &str) {
    let serial = s.serial(guest);
    wait_until(
        &format!("{guest} ticks after its second boot"),
        TICK_TIMEOUT,
        || {
            serial.boots() >= 2
                && serial
                    .text()
                    .rsplit("ticker boot")
                    .next()
                    .is_some_and(|l| l.contains("tick 1"))
        },
    );
    let log = serial.text();
    assert_eq!(log.matches("ticker off").count(), 1, "{guest}:\n{log}");
    assert_eq!(serial.boots(), 2, "{guest}:\n{log}");
}

fn text_of(o: &Output) -> String {
    text(o)
}
