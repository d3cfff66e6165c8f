//! The result of diffing desired placement against the current topology.

use serde::{Deserialize, Serialize};

use crate::config::{LiveTransport, MigrationMode};

/// One guest changing host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Move {
    pub guest: String,
    pub from: String,
    pub to: String,
    pub mode: MigrationMode,
    /// Why this move exists and, for chosen targets, why this target won.
    pub reason: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// True for a hop through a pivot host that breaks a live swap cycle.
    pub pivot: bool,
    /// What the move does: a migration (absent in JSON), or, for maintenance, stopping the
    /// guest where it is (`from` = `to`) or starting it again where it was stopped.
    #[serde(default, skip_serializing_if = "MoveKind::is_migrate")]
    pub kind: MoveKind,
    /// The guest's libvirt domain name when `inventory { domain_name }` names it otherwise
    /// than `guest`; apply acts on this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Who drives a live move (`defaults.live.transport`); absent for offline moves and in
    /// plans made before berth offered a choice (those run peer-to-peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<LiveTransport>,
}

impl Move {
    /// The mode as plans show it: `live (peer_to_peer)`, `live (client)`, `offline`.
    pub fn mode_label(&self) -> String {
        match self.transport {
            Some(t) => format!("{} ({t})", self.mode),
            None => self.mode.to_string(),
        }
    }

    /// The name of the guest's libvirt domain.
    pub fn domain_name(&self) -> &str {
        self.domain.as_deref().unwrap_or(&self.guest)
    }
}

/// What a [`Move`] does to its guest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// From one host to another (the MIGRATE GUEST steps).
    #[default]
    Migrate,
    /// Maintenance: shut down on its host, left defined there (STOP_GUEST only); no host
    /// could take it.
    StopInPlace,
    /// End of maintenance: started on the host it was stopped on (STARTUP_GUEST only).
    StartInPlace,
    /// Rolling maintenance: the host itself is serviced (HOST_COMMAND, WAIT_HOST); `guest` is
    /// empty, `from` = `to` = the host, `memory_mib` / `vcpus` what the plan counts the host
    /// to have when it is back.
    HostService,
}

impl MoveKind {
    pub fn is_migrate(&self) -> bool {
        *self == MoveKind::Migrate
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::Migrate => "migrate",
            MoveKind::StopInPlace => "stop in place",
            MoveKind::StartInPlace => "start in place",
            MoveKind::HostService => "service host",
        }
    }
}

/// A prerequisite a move fails, explained per move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveProblem {
    /// Short stable code, e.g. `memory`, `image_version`, `name_taken`, `hostdev`.
    pub code: String,
    pub guest: String,
    pub from: String,
    pub to: String,
    pub message: String,
}

/// How one `rebalance` ended in this plan. A rebalance stopped by its budget is not done: the
/// next plan continues it; one that stopped for any other reason proposes nothing next time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RebalanceOutcome {
    /// The rebalance's name (`rebalance "NAME"`; `all` for `-rebalance`).
    pub name: String,
    /// Per balanced resource (memory first): the spread before and after the plan.
    pub spreads: Vec<ResourceSpread>,
    /// The spread it aims to stay within (fraction: 0.10 = 10 points).
    pub threshold: f64,
    /// Guests this plan moves for it.
    pub moves: usize,
    pub stop: RebalanceStop,
    /// The limits that stopped it (`max_moves = 2`, `max_moved = 128 GiB`), when `stop` is
    /// `budget`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget: Vec<String>,
    /// How far the widest spread after the plan stays above the threshold (fraction; 0 within).
    pub above_threshold: f64,
    /// All of the above in one sentence, as the text plan shows it.
    pub message: String,
}

/// One balanced resource's spread (most used host's utilisation minus the least used one's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResourceSpread {
    /// `memory` or `vcpus`.
    pub resource: String,
    pub before: f64,
    pub after: f64,
}

/// Why a rebalance stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RebalanceStop {
    /// The spread is within the threshold: balanced.
    WithinThreshold,
    /// Above the threshold, but no move evens the hosts out by more than the margin (or every
    /// such move breaks a rule): as balanced as it gets; the next plan proposes nothing.
    NoGain,
    /// `max_moves` or `max_moved` stopped it above the threshold: the next plan continues.
    Budget,
}
