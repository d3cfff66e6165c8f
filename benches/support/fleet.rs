//! A synthetic fleet for the benchmarks: es.xml from `inventory::esxml::synthesize`, libvirt
//! observations that agree with it (as if every host had been read), and an HCL file that
//! drains every n-th host.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use berth::inventory::esxml::{self, EsLayout, EsSystem, SynthSpec};
use berth::inventory::load::{Inventory, from_observations};
use berth::inventory::reconcile::DriftPolicy;
use berth::inventory::{
    Disk, DomainObservation, GuestState, HostObservation, Interface, InterfaceKind, LibvirtError,
};

/// Logical CPUs of every synthetic host (two 96-core sockets with SMT, an X10M).
pub const HOST_CPUS: u32 = 384;

#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub hosts: usize,
    pub guests_per_host: usize,
    /// Every `drain_every`-th host is drained (20 → 5 %).
    pub drain_every: usize,
    pub seed: u64,
}

/// `name` from the environment, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl FleetSpec {
    pub fn from_env() -> FleetSpec {
        FleetSpec {
            hosts: env_or("BERTH_BENCH_HOSTS", 10_000),
            guests_per_host: env_or("BERTH_BENCH_GUESTS_PER_HOST", 10),
            drain_every: env_or("BERTH_BENCH_DRAIN_EVERY", 20),
            seed: 2,
        }
    }

    pub fn synth(&self) -> SynthSpec {
        SynthSpec::new(self.hosts, self.guests_per_host, self.seed)
    }

    /// Writes `es.xml` into `dir`; returns its size in bytes.
    pub fn write(&self, dir: &Path) -> usize {
        let text = esxml::synthesize(&self.synth());
        std::fs::write(dir.join("es.xml"), &text).expect("write es.xml");
        text.len()
    }

    /// Indices of the drained hosts.
    pub fn drained(&self) -> impl Iterator<Item = usize> {
        (0..self.hosts).step_by(self.drain_every.max(1))
    }

    /// The configuration: offline moves, 32 GiB reserved per host, drained hosts.
    pub fn hcl(&self, dir: &Path) -> String {
        self.hcl_with(dir, "  mode            = \"offline\"\n")
    }

    /// [`FleetSpec::hcl`] with `defaults` lines of the caller's (mode, limits, bandwidth).
    pub fn hcl_with(&self, dir: &Path, defaults: &str) -> String {
        let mut hcl = format!(
            "inventory {{\n  es_xml = \"{}\"\n}}\n\ndefaults {{\n{defaults}  memory_reserved = \"32GiB\"\n}}\n",
            dir.join("es.xml").display()
        );
        for h in self.drained() {
            hcl.push_str(&format!(
                "\nhost \"synadm{h:05}.example.com\" {{\n  drain = true\n}}\n"
            ));
        }
        hcl
    }
}

/// What libvirt would report for every host of `es`: each guest defined and running where
/// es.xml puts it, with es.xml's size, two bridged interfaces and one image disk.
pub fn observations(
    _spec: &FleetSpec,
    es: &EsSystem,
) -> Vec<Result<HostObservation, LibvirtError>> {
    let networks: HashMap<&str, &esxml::EsNetwork> =
        es.networks.iter().map(|n| (n.id.as_str(), n)).collect();
    let guests: HashMap<&str, &esxml::EsGuest> =
        es.guests.iter().map(|g| (g.id.as_str(), g)).collect();
    es.hosts
        .iter()
        .map(|h| {
            let domains = h
                .guest_ids
                .iter()
                .filter_map(|id| guests.get(id.as_str()))
                .map(|g| domain(g, &networks))
                .collect();
            Ok(HostObservation {
                host: h.name.clone(),
                uri: format!("test:///synthetic/{}.xml", h.name),
                memory_mib: h.physical_memory_mib.unwrap_or(786_432),
                cpus: HOST_CPUS,
                arch: "x86_64".into(),
                cpu_model: Some("Sapphire Rapids".into()),
                domains,
            })
        })
        .collect()
}

fn domain(g: &esxml::EsGuest, networks: &HashMap<&str, &esxml::EsNetwork>) -> DomainObservation {
    let interfaces = g
        .network_ids
        .iter()
        .filter_map(|id| networks.get(id.as_str()))
        .map(|n| {
            let master = n.master.as_deref().unwrap_or("bondeth0");
            let source = match n.vlan_id {
                Some(vlan) => format!("vm{master}.{vlan}"),
                None => format!("vm{master}"),
            };
            Interface {
                kind: InterfaceKind::Bridge,
                source,
                mac: None,
            }
        })
        .collect();
    DomainObservation {
        name: g.name.clone(),
        uuid: None,
        state: GuestState::Running,
        persistent: true,
        vcpus: g.vcpus.unwrap_or(4),
        memory_mib: g.memory_mib.unwrap_or(16_384),
        interfaces,
        disks: vec![Disk {
            target: "vda".into(),
            bus: "virtio".into(),
            source: Some(format!("/EXAVMIMAGES/GuestImages/{}/System.img", g.name)),
        }],
        hostdevs: Vec::new(),
    }
}

/// The inventory `berth plan` would load (`inventory::load` after reading libvirt), keeping the
/// layout of the parse as `load` does.
pub fn inventory(
    es: EsSystem,
    layout: EsLayout,
    text: impl Into<berth::text_file::FileText>,
    observations: Vec<Result<HostObservation, LibvirtError>>,
) -> Inventory {
    let mut inventory = from_observations(es, text, observations, DriftPolicy::StopOnDrift);
    inventory.es_layout = Some(layout);
    inventory
}

/// Peak resident set (VmHWM) of this process so far, KiB; 0 where /proc is missing.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// This process's resident set now, KiB (`VmRSS`; 0 where /proc is not there).
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// The anonymous part of the resident set (`RssAnon`: heap and stacks, not mapped files), KiB.
pub fn rss_anon_kib() -> u64 {
    status_kib("RssAnon:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time this process used so far (user + system, every thread), seconds; 10 ms steps.
pub fn cpu_seconds() -> f64 {
    let (user, system) = cpu_user_system();
    user + system
}

/// [`cpu_seconds`] in its two parts, user and system: the system part is mostly the kernel
/// handing out (zeroing) fresh pages, which is where a large plan's memory costs time.
pub fn cpu_user_system() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at `state`, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on every Linux architecture berth runs on.
    (ticks(14) as f64 / 100.0, ticks(15) as f64 / 100.0)
}

/// Median (mean of the middle two for an even count); NaN for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
