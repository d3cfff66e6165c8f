//! Builders shared by the apply tests.
#![allow(dead_code)]

pub mod cli;
pub mod drain_lab;
pub mod fs;
pub mod held;
pub mod pg;
pub mod schema;

use std::path::Path;

use berth::config::MigrationMode;
use berth::diff::Move;
use berth::plan::{Fingerprints, Plan};
use berth::schedule::{Step, StepKind};

/// One move's steps, chained in the order given; returns the plan-level pieces.
pub struct PlanBuilder {
    moves: Vec<Move>,
    steps: Vec<Step>,
}

impl PlanBuilder {
    pub fn new() -> Self {
        PlanBuilder {
            moves: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Adds a move of `guest` from `from` to `to` with `kinds` chained one after another.
    pub fn chain(
        mut self,
        guest: &str,
        from: &str,
        to: &str,
        mode: MigrationMode,
        kinds: &[StepKind],
    ) -> Self {
        let move_index = self.moves.len();
        self.moves.push(Move {
            guest: guest.into(),
            from: from.into(),
            to: to.into(),
            mode,
            reason: "test".into(),
            memory_mib: 1024,
            vcpus: 1,
            pivot: false,
            kind: Default::default(),
            domain: None,
            transport: None,
        });
        let mut previous: Option<String> = None;
        for &kind in kinds {
            let id = format!("{guest}:{kind}");
            self.steps.push(Step {
                id: id.clone(),
                kind,
                guest: guest.into(),
                from: from.into(),
                to: to.into(),
                move_index,
                depends_on: previous.iter().cloned().collect(),
                detail: String::new(),
                items: Vec::new(),
            });
            previous = Some(id);
        }
        self
    }

    /// Makes step `id` also depend on `on`.
    pub fn edge(mut self, id: &str, on: &str) -> Self {
        let s = self.steps.iter_mut().find(|s| s.id == id).expect("step id");
        s.depends_on.push(on.into());
        self
    }

    /// Sets the items (bridges, volumes, interfaces) of step `id`.
    pub fn items(mut self, id: &str, items: &[&str]) -> Self {
        let s = self.steps.iter_mut().find(|s| s.id == id).expect("step id");
        s.items = items.iter().map(|i| i.to_string()).collect();
        self
    }

    pub fn build(self) -> Plan {
        Plan {
            format_version: berth::plan::FORMAT_VERSION,
            berth_version: env!("CARGO_PKG_VERSION").into(),
            created_at: "2025-01-01T00:00:00Z".into(),
            es_xml_path: "es.xml".into(),
            moves: self.moves,
            steps: self.steps,
            skipped_steps: Vec::new(),
            waves: Vec::new(),
            hosts: Vec::new(),
            drift: Vec::new(),
            errors: Vec::new(),
            rebalances: Vec::new(),
            maintenance: Vec::new(),
            phases: Vec::new(),
            already_serviced: Vec::new(),
            fingerprints: Fingerprints::default(),
            intents: Default::default(),
            es_xml_diff: String::new(),
            timing: None,
        }
    }
}

/// Writes a libvirt test-driver node file `NAME.xml` in `dir` (8 CPUs, 32 GiB) holding
/// `domains`, and returns its `test://` URI.
pub fn node(dir: &Path, name: &str, domains: &str) -> String {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(
        &path,
        format!(
            "<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>{domains}\
             <cpu><mhz>2400</mhz><model>x86_64</model><active>8</active><nodes>1</nodes><sockets>1</sockets>\
             <cores>4</cores><threads>2</threads></cpu><memory>33554432</memory></node>"
        ),
    )
    .unwrap();
    format!("test://{}", path.display())
}

/// A runner over test-driver hosts, `(name, uri)` each, reached without SSH, with `settings`.
pub fn local_runner(
    hosts: &[(&str, String)],
    settings: berth::apply::RunnerSettings,
) -> std::sync::Arc<berth::apply::LibvirtRunner> {
    let hosts = hosts
        .iter()
        .map(|(host, uri)| {
            (
                host.to_string(),
                berth::apply::HostAccess {
                    uri: uri.clone(),
                    migration_uri: None,
                    peer_uri: None,
                    ssh: None,
                },
            )
        })
        .collect();
    std::sync::Arc::new(berth::apply::LibvirtRunner::new(
        hosts,
        settings,
        tokio::runtime::Handle::current(),
    ))
}

/// The state of `guest` on `host` through `runner`'s connection (`None`: not defined there).
pub fn state_on(
    runner: &berth::apply::LibvirtRunner,
    host: &str,
    guest: &str,
) -> Option<berth::inventory::GuestState> {
    runner
        .hypervisor(host)
        .unwrap()
        .domain_state(guest)
        .unwrap()
}
