//! Hand-built configurations and topologies for the diff and schedule unit tests.
//! Every label and value gets its own span so tests can check where an error points.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::config::{
    BalanceOn, Config, Defaults, DisruptionBudget, GuestIntent, HostIntent, InventoryConfig,
    MigrationMode, PlacementRule, RebalanceIntent, RuleKind, SourceFile, Span, Spanned,
    SshSettings, StateConfig,
};
use crate::inventory::{Cluster, Guest, GuestState, Host, Topology};

pub const GIB: u64 = 1024;

pub fn host(name: &str, memory_gib: u64, cpus: u32) -> Host {
    Host {
        name: name.into(),
        machine_id: format!("{name}_id"),
        memory_mib: memory_gib * GIB,
        cpus,
        arch: Some("x86_64".into()),
        cpu_model: Some("Icelake-Server".into()),
        image_version: Some("24.1.0".parse().expect("valid version")),
        bridges: Some(BTreeSet::new()),
        bridges_in_use: BTreeSet::new(),
        unmanaged_memory_mib: 0,
        unmanaged_vcpus: 0,
        reachable: true,
        domains: BTreeSet::new(),
        vfs_in_use: BTreeSet::new(),
    }
}

pub fn guest(name: &str, host: &str, memory_gib: u64, vcpus: u32) -> Guest {
    Guest {
        name: name.into(),
        machine_id: format!("{name}_id"),
        domain: None,
        es_host: None,
        host: host.into(),
        state: GuestState::Running,
        vcpus,
        memory_mib: memory_gib * GIB,
        image_version: None,
        clusters: Vec::new(),
        interfaces: Vec::new(),
        disks: Vec::new(),
        volumes: Vec::new(),
        hostdevs: Vec::new(),
    }
}

pub fn topology(hosts: Vec<Host>, guests: Vec<Guest>) -> Topology {
    Topology {
        hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
        guests: guests.into_iter().map(|g| (g.name.clone(), g)).collect(),
        clusters: BTreeMap::new(),
        other_machines: BTreeMap::new(),
    }
}

pub fn add_cluster(topo: &mut Topology, name: &str, members: &[&str]) {
    for member in members {
        if let Some(g) = topo.guests.get_mut(*member) {
            g.clusters.push(name.into());
        }
    }
    let cluster = Cluster {
        id: format!("{name}_id"),
        name: name.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    };
    topo.clusters.insert(cluster.id.clone(), cluster);
}

/// A configuration whose spans are distinct, increasing offsets in one file.
pub struct ConfigBuilder {
    pub config: Config,
    next: Cell<usize>,
}

impl ConfigBuilder {
    pub fn new() -> Self {
        let config = Config {
            dir: PathBuf::from("."),
            files: vec![SourceFile::new("main.hcl", "")],
            inventory: InventoryConfig {
                es_xml: Spanned {
                    value: PathBuf::from("es.xml"),
                    span: Span::default(),
                },
                libvirt_uri: Spanned {
                    value: "test:///default".into(),
                    span: Span::default(),
                },
                peer_uri: None,
                connect_timeout_s: InventoryConfig::DEFAULT_CONNECT_TIMEOUT_S,
                ssh: SshSettings::default(),
                drift_source: None,
                domain_name: None,
                volume_command: None,
                volume_check_command: None,
                es_xml_out: None,
            },
            defaults: Defaults::default(),
            state: StateConfig::default_in(std::path::Path::new(".")),
            guests: BTreeMap::new(),
            hosts: BTreeMap::new(),
            rebalances: Vec::new(),
            rules: Vec::new(),
            disruption_budgets: Vec::new(),
            rolling: None,
            command_line: Default::default(),
        };
        ConfigBuilder {
            config,
            next: Cell::new(0),
        }
    }

    fn spanned(&self, value: &str) -> Spanned<String> {
        let start = self.next.get();
        self.next.set(start + value.len() + 10);
        Spanned {
            value: value.into(),
            span: Span {
                file: 0,
                range: start..start + value.len(),
            },
        }
    }

    pub fn mode(mut self, mode: MigrationMode) -> Self {
        self.config.defaults.mode.value = mode;
        self
    }

    pub fn guest(mut self, label: &str, host: Option<&str>, mode: Option<MigrationMode>) -> Self {
        let name = self.spanned(label);
        let host = host.map(|h| self.spanned(h));
        let mode = mode.map(|m| Spanned {
            value: m,
            span: Span::default(),
        });
        let span = name.span.clone();
        self.config.guests.insert(
            label.into(),
            GuestIntent {
                name,
                host,
                mode,
                span,
            },
        );
        self
    }

    pub fn host(mut self, label: &str, edit: impl FnOnce(&mut HostIntent)) -> Self {
        let mut intent = HostIntent::unset(self.spanned(label));
        edit(&mut intent);
        self.config.hosts.insert(label.into(), intent);
        self
    }

    pub fn drain(self, label: &str) -> Self {
        self.host(label, |h| h.drain = true)
    }

    pub fn evacuate(self, label: &str) -> Self {
        self.host(label, |h| h.evacuate = true)
    }

    /// A `rule "KIND" "NAME"` block; `hosts` only matters for bans.
    pub fn rule(mut self, kind: RuleKind, name: &str, guests: &[&str], hosts: &[&str]) -> Self {
        let name = self.spanned(name);
        let guests = guests.iter().map(|g| self.spanned(g)).collect();
        let hosts = hosts.iter().map(|h| self.spanned(h)).collect();
        let span = name.span.clone();
        self.config.rules.push(PlacementRule {
            kind,
            name,
            guests,
            hosts,
            span,
        });
        self
    }

    /// A `rebalance "NAME"` block over `hosts` (all when empty), memory, default threshold.
    pub fn rebalance(
        mut self,
        name: &str,
        hosts: &[&str],
        edit: impl FnOnce(&mut RebalanceIntent),
    ) -> Self {
        let name = self.spanned(name);
        let hosts = (!hosts.is_empty()).then(|| hosts.iter().map(|h| self.spanned(h)).collect());
        let span = name.span.clone();
        let mut intent = RebalanceIntent {
            name,
            hosts,
            on: BalanceOn::Memory,
            threshold: RebalanceIntent::DEFAULT_THRESHOLD,
            max_moves: None,
            max_moved_mib: None,
            mode: None,
            span,
        };
        edit(&mut intent);
        self.config.rebalances.push(intent);
        self
    }

    /// A disruption budget over a RAC cluster.
    pub fn cluster_budget(mut self, name: &str, cluster: &str, max_unavailable: u32) -> Self {
        let name = self.spanned(name);
        let cluster = Some(self.spanned(cluster));
        let span = name.span.clone();
        let max_unavailable = Spanned {
            value: max_unavailable,
            span: Span::default(),
        };
        self.config.disruption_budgets.push(DisruptionBudget {
            name,
            cluster,
            guests: Vec::new(),
            max_unavailable,
            span,
        });
        self
    }
}
