//! ATTACH_VOLUMES through the LibvirtRunner against a private sshd (DETACH_VOLUMES runs the
//! same code): each placeholder becomes exactly one argument, verbatim, hostile values
//! included; device paths that are not plain absolute paths are refused before anything runs;
//! and a `volume_check_command` makes the step check reality before and after.
//! Heavier than most tests (an sshd and a few SSH round trips each, about a second or two).

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth::apply::{
    ApplyReport, Event, ExecOptions, HostAccess, LibvirtRunner, RunnerSettings, execute,
    volume_argv,
};
use berth::config::MigrationMode::Offline;
use berth::plan::Plan;
use berth::remote::RemoteHost;
use berth::schedule::StepKind::AttachVolumes;
use berth::state::{State, StateStore};
use common::PlanBuilder;
use sshd::Sshd;

struct Lab {
    sshd: Sshd,
    dir: tempfile::TempDir,
    plan: Plan,
    volumes: Vec<String>,
}

impl Lab {
    /// ATTACH_VOLUMES of vm03's `volumes` on adm02 (SSH to the private sshd).
    fn new(volumes: &[&str]) -> Lab {
        let sshd = Sshd::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("volumes.log"), "").unwrap();
        let volumes: Vec<String> = volumes
            .iter()
            .map(|v| v.replace("MARKER", &dir.path().join("pwned").display().to_string()))
            .collect();
        let items: Vec<&str> = volumes.iter().map(String::as_str).collect();
        let plan = PlanBuilder::new()
            .chain("vm03", "adm01", "adm02", Offline, &[AttachVolumes])
            .items("vm03:ATTACH_VOLUMES", &items)
            .build();
        Lab {
            sshd,
            dir,
            plan,
            volumes,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("volumes.log")).unwrap()
    }

    /// A runner whose volume command appends `action|volume|guest|host` to the log (or runs
    /// `command` instead) and, with `check`, whose check command looks for that line.
    fn runner(&self, command: Option<&str>, check: bool) -> Arc<LibvirtRunner> {
        let log = self.dir.path().join("volumes.log").display().to_string();
        // $1 is the action, $2 the `--` before the operands.
        let script = command.map(str::to_string).unwrap_or(format!(
            "a=$1; shift 2; printf '%s|%s|%s|%s\\n' \"$a\" \"$@\" >> '{log}'"
        ));
        let argv = |script: String| {
            [
                "sh", "-c", &script, "sh", "{action}", "--", "{volume}", "{guest}", "{host}",
            ]
            .map(String::from)
            .to_vec()
        };
        let access = HostAccess {
            uri: "test:///default".into(),
            migration_uri: None,
            peer_uri: None,
            ssh: Some(self.sshd.target(self.sshd.known_hosts())),
        };
        let settings = RunnerSettings {
            volume_command: Some(argv(script)),
            volume_check_command: check
                .then(|| argv(format!("grep -qxF -- \"$1|$3|$4|$5\" '{log}'"))),
            ..RunnerSettings::default()
        };
        let hosts = BTreeMap::from([("adm02".to_string(), access)]);
        Arc::new(LibvirtRunner::new(
            hosts,
            settings,
            tokio::runtime::Handle::current(),
        ))
    }

    async fn apply(&self, runner: Arc<LibvirtRunner>, journal: &str) -> (ApplyReport, Vec<Event>) {
        let store = StateStore::open(self.dir.path().join(format!("{journal}.json"))).unwrap();
        let mut state = State::new();
        let mut events = Vec::new();
        let opts = ExecOptions {
            journal_id: Some(journal.into()),
            ..ExecOptions::default()
        };
        let report = execute(&self.plan, runner, &store, &mut state, &opts, &mut |e| {
            events.push(e)
        })
        .await
        .unwrap();
        (report, events)
    }

    fn line(&self, volume: usize) -> String {
        format!("attach|{}|vm03|adm02\n", self.volumes[volume])
    }
}

fn note(events: &[Event]) -> Option<String> {
    events
        .iter()
        .find_map(|e| {
            if let Event::Done { note, .. } = e {
                Some(note.clone())
            } else {
                None
            }
        })
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_steps_are_checked_before_and_after() {
    let lab = Lab::new(&["/dev/exc/vm03_u01", "/dev/exc/vm03_sys"]);
    // An apply killed half-way attached the first volume: only the second is attached now.
    std::fs::write(lab.dir.path().join("volumes.log"), lab.line(0)).unwrap();
    let runner = lab.runner(None, true);
    let (report, events) = lab.apply(runner.clone(), "first").await;
    assert!(report.succeeded(), "{report:?}\n{}", lab.sshd.log());
    assert_eq!(
        note(&events),
        Some(format!("already attached: {}", lab.volumes[0]))
    );
    assert_eq!(lab.log(), lab.line(0) + &lab.line(1));

    // Checked against reality first: a second apply finds the step done and runs nothing.
    let (report, events) = lab.apply(runner, "second").await;
    assert_eq!(
        (report.done.len(), note(&events)),
        (1, Some("already done".to_string()))
    );
    assert_eq!(lab.log(), lab.line(0) + &lab.line(1));
}

/// A device path with spaces, quotes, `;` or `$(…)` (an edited plan file) is refused before
/// any command runs, with or without a check command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_device_paths_are_refused_before_anything_runs() {
    for hostile in [
        "/dev/exc/it's `id`",
        "/dev/exc/vm03 sys;$(touch MARKER)",
        "/dev/exc/../../etc/passwd",
        "-rf",
    ] {
        let lab = Lab::new(&["/dev/exc/vm03_u01", hostile]);
        for check in [true, false] {
            let (report, _) = lab
                .apply(lab.runner(None, check), &format!("c{check}"))
                .await;
            let (id, message) = &report.failed[0];
            assert_eq!(id, "vm03:ATTACH_VOLUMES");
            assert!(
                message.contains("is not a device path berth passes to a command"),
                "{message}"
            );
            assert_eq!(lab.log(), "", "a command ran for {hostile:?}");
            assert!(!lab.dir.path().join("pwned").exists());
        }
    }
}

/// Over a real sshd, each placeholder arrives as exactly one argument, unchanged: spaces,
/// quotes, `;`, `$(…)`, a line break, a leading `-`, and a value that looks like another
/// placeholder (substituting one after another would have replaced it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_placeholder_is_one_argument_verbatim_over_ssh() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let volume = format!("vm03 sys;$(touch {}) it's \"q\"", marker.display());
    let guest = "{host}\n`touch x`";
    let host = "-rf {volume}";
    let template: Vec<String> = [
        "printf",
        "%s\\0",
        "--volume={volume}",
        "{action}",
        "--",
        "{volume}",
        "{guest}",
        "{host}",
    ]
    .map(String::from)
    .to_vec();
    let argv = volume_argv(&template, "attach", &volume, guest, host);
    let remote = RemoteHost::connect(&sshd.target(sshd.known_hosts()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    let out = remote.run_checked(&argv).await.unwrap();
    remote.close().await.unwrap();
    let got: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .strip_suffix('\0')
        .unwrap()
        .split('\0')
        .collect();
    assert_eq!(
        got,
        [
            "--volume={volume}",
            "attach",
            "--",
            volume.as_str(),
            guest,
            host
        ]
    );
    assert!(
        !marker.exists(),
        "a command substitution ran on the remote side"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_does_not_do_what_the_check_expects_fails_the_step() {
    let lab = Lab::new(&["/dev/exc/vm03_u01"]);
    let (report, _) = lab.apply(lab.runner(Some("true"), true), "noop").await;
    let (id, message) = &report.failed[0];
    assert_eq!(id, "vm03:ATTACH_VOLUMES");
    assert!(
        message.contains(
            "`volume_command` succeeded for volume `/dev/exc/vm03_u01` on host `adm02`, but `volume_check_command` still says it is not attached"
        ),
        "{message}"
    );

    // Without a check berth cannot know, and runs the command every time.
    let runner = lab.runner(None, false);
    assert!(lab.apply(runner.clone(), "once").await.0.succeeded());
    assert!(lab.apply(runner, "twice").await.0.succeeded());
    assert_eq!(lab.log(), lab.line(0).repeat(2));
}
