//! How long each step is expected to take, and how many may run at once.
//!
//! Fixed costs (shutting down, booting, SSH round trips, volume calls) are estimates per step
//! kind. A live MIGRATE_GUEST moves bytes over the hosts' migration links with pre-copy: the
//! first round sends all memory, each further round re-sends what the guest dirtied meanwhile,
//! so with memory `M`, bandwidth `B` and dirty rate `D` (ratio `r = D / B`) the volume sent
//! after `n` rounds is `M · (1 − rⁿ) / (1 − r)`, bounded by `M / (1 − r)`; when `r ≥ 1` pre-copy
//! never converges and the round cap decides (`M · n`). The volume is computed at the
//! bandwidth the migration would get alone; under contention it is sent at the shared rate
//! (extra dirtying caused by contention is not modelled, so contended predictions are a little
//! optimistic). An offline MIGRATE_GUEST only moves the definition: a small fixed cost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Defaults, MigrationMode};
use crate::diff::Move;

use super::model::StepKind;

/// The duration model: fixed costs per step kind and the parameters of live migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DurationModel {
    /// Graceful guest shutdown (STOP_GUEST), seconds.
    pub stop_guest_s: f64,
    /// Guest boot (STARTUP_GUEST), seconds.
    pub startup_guest_s: f64,
    /// An SSH round trip to a host (CREATE_BRIDGES and the (de)attach steps pay one, plus one
    /// per bridge, interface or volume), seconds.
    pub ssh_round_trip_s: f64,
    /// One bridge created, seconds.
    pub per_bridge_s: f64,
    /// One SR-IOV interface detached or attached, seconds.
    pub per_interface_s: f64,
    /// One Exascale volume detached or attached, seconds.
    pub per_volume_s: f64,
    /// Moving a definition (offline MIGRATE_GUEST), seconds.
    pub define_s: f64,
    /// Set-up and switch-over of a live migration, around the transfer, seconds.
    pub live_overhead_s: f64,
    /// Pre-copy rounds before libvirt gives up converging.
    pub max_precopy_rounds: u32,
    /// Migration link bandwidth of every host, MiB/s.
    pub link_bandwidth_mib_s: f64,
    /// Per host, replacing [`DurationModel::link_bandwidth_mib_s`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_link_bandwidth_mib_s: BTreeMap<String, f64>,
    /// libvirt's bandwidth cap on one live migration, MiB/s (`live.bandwidth_mib_s`; 0 = none).
    pub live_cap_mib_s: f64,
    /// Memory a running guest dirties per second, MiB/s, when known (0 = not known).
    pub dirty_rate_mib_s: f64,
    /// Per guest, replacing [`DurationModel::dirty_rate_mib_s`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guest_dirty_rate_mib_s: BTreeMap<String, f64>,
    /// Rolling maintenance: how long a HOST_COMMAND and the host's return are expected to
    /// take (`rolling_maintenance.host_command_expected_s`); absent in other plans.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub host_command_s: f64,
}

fn is_zero(s: &f64) -> bool {
    *s == 0.0
}

impl Default for DurationModel {
    fn default() -> Self {
        DurationModel {
            stop_guest_s: 90.0,
            startup_guest_s: 120.0,
            ssh_round_trip_s: 2.0,
            per_bridge_s: 1.0,
            per_interface_s: 2.0,
            per_volume_s: 3.0,
            define_s: 5.0,
            live_overhead_s: 3.0,
            max_precopy_rounds: 30,
            link_bandwidth_mib_s: 1100.0,
            host_link_bandwidth_mib_s: BTreeMap::new(),
            live_cap_mib_s: 0.0,
            dirty_rate_mib_s: 0.0,
            guest_dirty_rate_mib_s: BTreeMap::new(),
            host_command_s: 0.0,
        }
    }
}

/// What one step costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Work {
    /// A fixed time, seconds.
    Fixed(f64),
    /// A live migration: `mib` over the links of `from` and `to`, at most `cap_mib_s` (∞ for no
    /// cap), then `tail_s` of fixed cost.
    Transfer {
        mib: f64,
        cap_mib_s: f64,
        tail_s: f64,
    },
}

impl DurationModel {
    /// The model the configuration's defaults describe (fixed costs keep their defaults).
    pub fn from_defaults(defaults: &Defaults) -> Self {
        DurationModel {
            link_bandwidth_mib_s: defaults.link_bandwidth_mib_s.max(1) as f64,
            live_cap_mib_s: defaults.live.bandwidth_mib_s as f64,
            dirty_rate_mib_s: defaults.dirty_rate_mib_s as f64,
            ..DurationModel::default()
        }
    }

    /// Bandwidth of `host`'s migration link, MiB/s (never below 1).
    pub fn link_bandwidth(&self, host: &str) -> f64 {
        self.host_link_bandwidth_mib_s
            .get(host)
            .copied()
            .unwrap_or(self.link_bandwidth_mib_s)
            .max(1.0)
    }

    /// The per-migration cap, MiB/s (∞ when there is none).
    pub fn cap(&self) -> f64 {
        if self.live_cap_mib_s > 0.0 {
            self.live_cap_mib_s
        } else {
            f64::INFINITY
        }
    }

    /// MiB a live migration of `memory_mib` sends at `bandwidth_mib_s` when the guest dirties
    /// `dirty_mib_s` (see the module docs).
    pub fn live_volume_mib(&self, memory_mib: f64, dirty_mib_s: f64, bandwidth_mib_s: f64) -> f64 {
        let rounds = f64::from(self.max_precopy_rounds.max(1));
        let r = (dirty_mib_s / bandwidth_mib_s.max(f64::MIN_POSITIVE)).max(0.0);
        if r >= 1.0 {
            return memory_mib * rounds;
        }
        memory_mib * (1.0 - r.powf(rounds)) / (1.0 - r)
    }

    /// What step `kind` of move `mv` costs; `items` are the bridges, interfaces or volumes it
    /// touches.
    pub fn work(&self, kind: StepKind, mv: &Move, items: usize) -> Work {
        let items = items as f64;
        let seconds = match kind {
            StepKind::StopGuest => self.stop_guest_s,
            StepKind::StartupGuest => self.startup_guest_s,
            StepKind::CreateBridges => self.ssh_round_trip_s + items * self.per_bridge_s,
            StepKind::DetachInterfaces | StepKind::AttachInterfaces => {
                self.ssh_round_trip_s + items * self.per_interface_s
            }
            StepKind::DetachVolumes | StepKind::AttachVolumes => {
                self.ssh_round_trip_s + items * self.per_volume_s
            }
            StepKind::MigrateGuest if mv.mode == MigrationMode::Live => {
                let alone = self
                    .cap()
                    .min(self.link_bandwidth(&mv.from))
                    .min(self.link_bandwidth(&mv.to));
                let dirty = self
                    .guest_dirty_rate_mib_s
                    .get(&mv.guest)
                    .copied()
                    .unwrap_or(self.dirty_rate_mib_s);
                let mib = self.live_volume_mib(mv.memory_mib as f64, dirty, alone);
                return Work::Transfer {
                    mib,
                    cap_mib_s: self.cap(),
                    tail_s: self.live_overhead_s,
                };
            }
            StepKind::MigrateGuest => self.define_s,
            StepKind::HostCommand => self.host_command_s,
            // One libvirt connection and node info, plus the facts over SSH.
            StepKind::WaitHost => self.ssh_round_trip_s,
        };
        Work::Fixed(seconds)
    }

    /// How long `work` takes with nothing else on the links of `from` and `to`: a lower bound
    /// on its duration under any schedule.
    pub fn alone_seconds(&self, work: Work, from: &str, to: &str) -> f64 {
        match work {
            Work::Fixed(s) => s,
            Work::Transfer {
                mib,
                cap_mib_s,
                tail_s,
            } => {
                mib / cap_mib_s
                    .min(self.link_bandwidth(from))
                    .min(self.link_bandwidth(to))
                    + tail_s
            }
        }
    }
}

/// How many steps may run at once: over all hosts, and migrations (MIGRATE_GUEST, any mode)
/// into and out of one host, as the executor enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Concurrency {
    pub parallelism: u32,
    pub max_inbound_per_host: u32,
    pub max_outbound_per_host: u32,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency::from_defaults(&Defaults::default())
    }
}

impl Concurrency {
    pub fn from_defaults(defaults: &Defaults) -> Self {
        Concurrency {
            parallelism: defaults.parallelism.max(1),
            max_inbound_per_host: defaults.max_inbound_per_host.max(1),
            max_outbound_per_host: defaults.max_outbound_per_host.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(mode: MigrationMode, memory_mib: u64) -> Move {
        Move {
            guest: "vm1".into(),
            from: "a".into(),
            to: "b".into(),
            mode,
            reason: String::new(),
            memory_mib,
            vcpus: 4,
            pivot: false,
            kind: Default::default(),
            domain: None,
            transport: None,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn a_clean_guest_sends_its_memory_once() {
        let m = DurationModel::default();
        assert!(close(m.live_volume_mib(65536.0, 0.0, 1000.0), 65536.0));
        let work = m.work(StepKind::MigrateGuest, &mv(MigrationMode::Live, 65536), 0);
        assert_eq!(
            work,
            Work::Transfer {
                mib: 65536.0,
                cap_mib_s: f64::INFINITY,
                tail_s: m.live_overhead_s
            }
        );
        assert!(close(
            m.alone_seconds(work, "a", "b"),
            65536.0 / 1100.0 + m.live_overhead_s
        ));
    }

    #[test]
    fn dirtying_adds_the_geometric_pre_copy_rounds() {
        let m = DurationModel {
            max_precopy_rounds: 3,
            ..DurationModel::default()
        };
        // r = 0.5: 1 + 0.5 + 0.25 of the memory over three rounds.
        assert!(close(m.live_volume_mib(1000.0, 500.0, 1000.0), 1750.0));
        // Many rounds approach M / (1 − r).
        let many = DurationModel {
            max_precopy_rounds: 200,
            ..DurationModel::default()
        };
        assert!(close(
            many.live_volume_mib(1000.0, 250.0, 1000.0),
            1000.0 / 0.75
        ));
    }

    #[test]
    fn a_guest_dirtying_faster_than_the_link_stops_at_the_round_cap() {
        let m = DurationModel {
            max_precopy_rounds: 30,
            ..DurationModel::default()
        };
        assert!(close(m.live_volume_mib(1000.0, 1000.0, 1000.0), 30_000.0));
        assert!(close(m.live_volume_mib(1000.0, 5000.0, 1000.0), 30_000.0));
    }

    #[test]
    fn the_slowest_of_cap_and_both_links_sets_the_pace() {
        let mut m = DurationModel {
            live_cap_mib_s: 800.0,
            ..DurationModel::default()
        };
        let live = mv(MigrationMode::Live, 8000);
        let work = m.work(StepKind::MigrateGuest, &live, 0);
        assert!(close(
            m.alone_seconds(work, "a", "b"),
            10.0 + m.live_overhead_s
        ));
        m.host_link_bandwidth_mib_s.insert("b".into(), 400.0);
        assert!(close(
            m.alone_seconds(work, "a", "b"),
            20.0 + m.live_overhead_s
        ));
        // Per-guest dirty rates replace the default, and the volume is taken at the pace
        // the migration gets alone (400 MiB/s here: r = 0.5).
        m.guest_dirty_rate_mib_s.insert("vm1".into(), 200.0);
        m.max_precopy_rounds = 2;
        let Work::Transfer { mib, .. } = m.work(StepKind::MigrateGuest, &live, 0) else {
            panic!("live is a transfer")
        };
        assert!(close(mib, 8000.0 * 1.5));
    }

    #[test]
    fn fixed_costs_grow_with_the_items_touched() {
        let m = DurationModel::default();
        let offline = mv(MigrationMode::Offline, 65536);
        let fixed = |kind, items| match m.work(kind, &offline, items) {
            Work::Fixed(s) => s,
            other => panic!("{kind} is not fixed: {other:?}"),
        };
        assert_eq!(fixed(StepKind::StopGuest, 0), m.stop_guest_s);
        assert_eq!(fixed(StepKind::StartupGuest, 0), m.startup_guest_s);
        assert_eq!(
            fixed(StepKind::MigrateGuest, 0),
            m.define_s,
            "offline moves only the definition"
        );
        assert_eq!(
            fixed(StepKind::DetachVolumes, 3),
            m.ssh_round_trip_s + 3.0 * m.per_volume_s
        );
        assert_eq!(
            fixed(StepKind::CreateBridges, 2),
            m.ssh_round_trip_s + 2.0 * m.per_bridge_s
        );
        assert!(fixed(StepKind::AttachInterfaces, 2) > fixed(StepKind::AttachInterfaces, 1));
    }

    #[test]
    fn the_configuration_sets_links_cap_and_dirty_rate() {
        let defaults = Defaults {
            link_bandwidth_mib_s: 2200,
            dirty_rate_mib_s: 150,
            ..Defaults::default()
        };
        let m = DurationModel::from_defaults(&defaults);
        assert_eq!(
            (m.link_bandwidth("any"), m.cap(), m.dirty_rate_mib_s),
            (2200.0, f64::INFINITY, 150.0)
        );
        let c = Concurrency::from_defaults(&Defaults {
            parallelism: 0,
            ..Defaults::default()
        });
        assert_eq!(c.parallelism, 1, "at least one step runs");
    }
}
