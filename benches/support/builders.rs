//! Hosts, guests, moves and topologies built by hand, and a small seeded generator: one copy
//! for the scheduling benches (`schedule_exact`, `schedule_suites`) and the tests that build
//! the same things (`tests/capacity_property.rs`, `tests/apply_executor.rs`, through
//! `#[path]`). Not every user needs every item.
#![allow(dead_code)]

use std::collections::BTreeMap;

use berth::config::MigrationMode;
use berth::diff::Move;
use berth::inventory::{Guest, GuestState, Host, Topology};

pub const GIB: u64 = 1024;

/// A reachable x86_64 host of `memory_gib` GiB and `cpus` CPUs running nothing unmanaged.
pub fn host(name: &str, memory_gib: u64, cpus: u32) -> Host {
    Host {
        name: name.into(),
        machine_id: format!("{name}_id"),
        memory_mib: memory_gib * GIB,
        cpus,
        arch: Some("x86_64".into()),
        cpu_model: Some("Sapphire Rapids".into()),
        image_version: None,
        bridges: None,
        bridges_in_use: Default::default(),
        unmanaged_memory_mib: 0,
        unmanaged_vcpus: 0,
        vfs_in_use: Default::default(),
        reachable: true,
        domains: Default::default(),
    }
}

/// A guest with no interfaces, disks or volumes.
pub fn guest(name: &str, host: &str, memory_gib: u64, vcpus: u32, state: GuestState) -> Guest {
    Guest {
        name: name.into(),
        machine_id: format!("{name}_id"),
        domain: None,
        es_host: None,
        host: host.into(),
        state,
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

/// A move as diff would make it, without sizes (the duration model then sees an empty guest).
pub fn mv(guest: &str, from: &str, to: &str, mode: MigrationMode) -> Move {
    Move {
        guest: guest.into(),
        from: from.into(),
        to: to.into(),
        mode,
        reason: "test".into(),
        memory_mib: 0,
        vcpus: 0,
        pivot: false,
        kind: Default::default(),
        domain: None,
        transport: None,
    }
}

/// `g` moved from its host to `to`, with its size (what the duration model reads).
pub fn move_of(g: &Guest, to: &str, mode: MigrationMode) -> Move {
    Move {
        memory_mib: g.memory_mib,
        vcpus: g.vcpus,
        ..mv(&g.name, &g.host, to, mode)
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

/// xorshift64*: small, seeded, the same sequence on every machine. `Rng(state)` starts from
/// `state` as it is; [`Rng::new`] mixes a small seed first.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
