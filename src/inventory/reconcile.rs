//! Merges what es.xml says with what libvirt shows into one [`Topology`], and reports drift.
//!
//! es.xml names the system: which hosts and guests exist, their machine ids, clusters and EDV
//! volumes. libvirt says what is: where each domain is defined, its state, size and devices.
//! Where they disagree a [`Drift`] item is recorded; the [`DriftPolicy`] only decides which
//! side the topology follows for a guest's host. Whether drift stops planning is the caller's
//! decision ([`DriftPolicy::stops_on_drift`]).

use std::collections::{BTreeMap, BTreeSet};

use super::fast_hash::{
    FastMap as HashMap, FastSet, map_with_capacity, set_with_capacity as fast_set_with_capacity,
};

use serde::{Deserialize, Serialize};

use super::esxml::{EsGuest, EsSystem, EsVolume};
use super::libvirt::LibvirtError;
use super::model::{Cluster, Guest, GuestState, Host, InterfaceKind, Topology, passed_through_pci};
use super::naming::DomainNaming;
use super::observed::{DomainObservation, HostObservation};
use super::version::ImageVersion;

/// One disagreement between es.xml and libvirt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Drift {
    pub kind: DriftKind,
    /// The guest concerned, when there is one.
    pub guest: Option<String>,
    /// The host concerned, when there is one.
    pub host: Option<String>,
    /// What es.xml says (e.g. the host, `16384 MiB`).
    pub es_xml: String,
    /// What libvirt shows.
    pub libvirt: String,
    /// One sentence for humans.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// es.xml puts the guest on one host, libvirt shows it on another.
    WrongHost,
    /// In es.xml, defined on no host berth reads.
    MissingDomain,
    /// A domain libvirt shows that es.xml does not list.
    ExtraDomain,
    /// The domain is defined on more than one host.
    DuplicateDomain,
    MemoryMismatch,
    VcpuMismatch,
    /// libvirt on the host did not answer.
    HostUnreachable,
}

/// What to do when es.xml and libvirt disagree. The configuration's `drift_source`
/// (`None`, `libvirt`, `es_xml`) maps onto this; inventory does not depend on config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    /// Any drift makes the plan unusable. The topology still follows libvirt, so that what is
    /// shown next to the drift report is what actually runs where.
    #[default]
    StopOnDrift,
    /// Plan from libvirt: a guest is where libvirt has it.
    PreferLibvirt,
    /// Plan from es.xml: a guest is where es.xml puts it, wherever libvirt shows it.
    PreferEsXml,
}

impl DriftPolicy {
    /// Whether a non-empty drift list must stop planning.
    pub fn stops_on_drift(self) -> bool {
        self == DriftPolicy::StopOnDrift
    }
}

/// The merged picture and every disagreement found on the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciled {
    pub topology: Topology,
    /// In a fixed order: unreachable hosts (es.xml order), then guests by name, then domains
    /// es.xml does not know (by host, then name).
    pub drift: Vec<Drift>,
}

/// Merges es.xml with one libvirt observation per es.xml host (matched by host name; results
/// for hosts es.xml does not list are ignored, and an es.xml host with no result counts as
/// unreachable).
///
/// Hosts take name, machine id and image version from es.xml and memory, CPUs and architecture
/// from libvirt (es.xml `physicalMemorySize` when libvirt failed). Guests take their identity,
/// clusters and EDV volumes from es.xml; state, vCPUs, memory and devices from the libvirt
/// domain of the same name (es.xml's numbers when no domain was seen).
pub fn reconcile(
    es: &EsSystem,
    observations: &[Result<HostObservation, LibvirtError>],
    policy: DriftPolicy,
) -> Reconciled {
    reconcile_named(es, observations, policy, &DomainNaming::default())
}

/// [`reconcile`], matching each es.xml guest with the libvirt domain `naming` gives it.
pub fn reconcile_named(
    es: &EsSystem,
    observations: &[Result<HostObservation, LibvirtError>],
    policy: DriftPolicy,
    naming: &DomainNaming,
) -> Reconciled {
    let (mut reconciled, guests, _) =
        reconcile_devices(es, observations, policy, naming, Devices::Copy);
    // Already in name order, which the map's bulk build takes in one pass (its sort finds one
    // run and never touches its scratch space; the list is collected in place).
    reconciled.topology.guests = guests.into_iter().collect();
    reconciled
}

/// [`reconcile_named`] from observations it may take apart: each guest's interfaces, disks and
/// host devices are moved out of its domain's observation instead of copied (at 100,000 hosts
/// a million copies were hundreds of megabytes of fresh memory). The topology and drift are
/// those [`reconcile_named`] gives.
pub fn reconcile_owned(
    es: &EsSystem,
    mut observations: Vec<Result<HostObservation, LibvirtError>>,
    policy: DriftPolicy,
    naming: &DomainNaming,
) -> Reconciled {
    let (mut reconciled, mut guests, copies) =
        reconcile_devices(es, &observations, policy, naming, Devices::Move);
    // A domain chosen by several guests (es.xml guests named into one domain) is copied into
    // all but the last of them and moved into that one: how many guests still want it.
    let mut total = 0;
    let firsts: Vec<usize> = observations
        .iter()
        .map(|o| {
            let first = total;
            total += o.as_ref().map_or(0, |o| o.domains.len());
            first
        })
        .collect();
    let mut wanted = vec![0u32; total];
    for &(o, d) in copies.iter().flatten() {
        wanted[firsts[o as usize] + d as usize] += 1;
    }
    for ((_, guest), copy) in guests.iter_mut().zip(copies) {
        let Some((o, d)) = copy else { continue };
        let wants = &mut wanted[firsts[o as usize] + d as usize];
        let Some(Ok(o)) = observations.get_mut(o as usize) else {
            continue;
        };
        let Some(d) = o.domains.get_mut(d as usize) else {
            continue;
        };
        *wants -= 1;
        if *wants == 0 {
            guest.interfaces = std::mem::take(&mut d.interfaces);
            guest.disks = std::mem::take(&mut d.disks);
            guest.hostdevs = std::mem::take(&mut d.hostdevs);
        } else {
            guest.interfaces = d.interfaces.clone();
            guest.disks = d.disks.clone();
            guest.hostdevs = d.hostdevs.clone();
        }
    }
    drop(observations);
    reconciled.topology.guests = guests.into_iter().collect();
    reconciled
}

/// Whether reconciling copies each guest's devices from its domain's observation, or leaves
/// them for [`reconcile_owned`] to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Devices {
    Copy,
    Move,
}

/// Where the chosen copy of a guest's domain is: observation index, domain index.
type CopyAt = Option<(u32, u32)>;

/// Reconciles everything but the guest map: the guests come back as `(name, guest)` in name
/// order, with, in the same order, where each one's domain observation is (devices left
/// empty under [`Devices::Move`]).
fn reconcile_devices(
    es: &EsSystem,
    observations: &[Result<HostObservation, LibvirtError>],
    policy: DriftPolicy,
    naming: &DomainNaming,
    devices: Devices,
) -> (Reconciled, Vec<(String, Guest)>, Vec<CopyAt>) {
    let mut drift = Vec::new();
    let mut topology = Topology::default();

    let by_host = index_observations(observations);
    let mut reachable: Vec<(u32, &HostObservation)> = Vec::new();
    for es_host in &es.hosts {
        let found = by_host.get(es_host.name.as_str()).copied();
        let observation = found.map(|(_, o)| o);
        let host = match found {
            Some((at, Ok(o))) => {
                reachable.push((at, o));
                Host {
                    name: es_host.name.clone(),
                    machine_id: es_host.id.clone(),
                    memory_mib: o.memory_mib,
                    cpus: o.cpus,
                    arch: Some(o.arch.clone()),
                    cpu_model: o.cpu_model.clone(),
                    image_version: es_host.image_version.clone(),
                    bridges: None,
                    bridges_in_use: bridges_of(&o.domains),
                    domains: o.domains.iter().map(|d| d.name.clone()).collect(),
                    vfs_in_use: pci_in_use(&o.domains),
                    unmanaged_memory_mib: 0,
                    unmanaged_vcpus: 0,
                    reachable: true,
                }
            }
            Some((_, Err(_))) | None => {
                drift.push(unreachable(&es_host.name, observation));
                Host {
                    name: es_host.name.clone(),
                    machine_id: es_host.id.clone(),
                    memory_mib: es_host.physical_memory_mib.unwrap_or(0),
                    cpus: 0,
                    arch: None,
                    cpu_model: None,
                    image_version: es_host.image_version.clone(),
                    bridges: None,
                    bridges_in_use: BTreeSet::new(),
                    domains: BTreeSet::new(),
                    vfs_in_use: BTreeSet::new(),
                    unmanaged_memory_mib: 0,
                    unmanaged_vcpus: 0,
                    reachable: false,
                }
            }
        };
        topology.hosts.insert(host.name.clone(), host);
    }

    let domains = index_domains(&reachable);
    let index = EsIndex::new(es);
    let mut es_guests: Vec<&EsGuest> = es.guests.iter().collect();
    es_guests.sort_by(|a, b| a.name.cmp(&b.name));
    let hosts = &topology.hosts;
    let runs = map_in_parallel(&es_guests, |g, side: &mut RunSide| {
        let es_host = index
            .host_names
            .get(g.host_id.as_str())
            .copied()
            .unwrap_or(g.host_id.as_str());
        let es_host_reachable = hosts.get(es_host).is_some_and(|h| h.reachable);
        let domain = naming.domain_borrowed(&g.name, &g.id);
        let found = domains
            .get(domain.as_ref())
            .map(OneOrMany::as_slice)
            .unwrap_or(&[]);
        let guest = reconcile_guest(
            &index,
            g,
            es_host,
            es_host_reachable,
            found,
            policy,
            devices,
            &mut side.drift,
        );
        side.copies.push(guest.1);
        let mut guest = guest.0;
        if domain != guest.name {
            guest.domain = Some(domain.into_owned());
        }
        (guest.name.clone(), guest)
    });
    // One list of a million guests, sized once: each copy of it is hundreds of megabytes of
    // fresh memory (a list grown by pushing, then a second list of `(name, guest)`, were two).
    // The first run's lists have room for all of them (see `map_in_parallel`).
    let mut runs = runs.into_iter();
    let (mut guests, first) = runs.next().unwrap_or_default();
    drift.extend(first.drift);
    let mut copies = first.copies;
    for (run, side) in runs {
        guests.extend(run);
        drift.extend(side.drift);
        copies.extend(side.copies);
    }

    // With the default naming a domain is named as its guest: borrow the names rather than
    // copy a million of them.
    let es_domains: Vec<String> = if naming.is_host_name() {
        Vec::new()
    } else {
        es.guests
            .iter()
            .map(|g| naming.domain(&g.name, &g.id))
            .collect()
    };
    let mut es_names: FastSet<&str> = fast_set_with_capacity(es.guests.len());
    if naming.is_host_name() {
        es_names.extend(es.guests.iter().map(|g| g.name.as_str()));
    } else {
        es_names.extend(es_domains.iter().map(String::as_str));
    }
    for (_, o) in &reachable {
        for d in o
            .domains
            .iter()
            .filter(|d| !es_names.contains(d.name.as_str()))
        {
            if d.state.holds_resources()
                && let Some(h) = topology.hosts.get_mut(&o.host)
            {
                h.unmanaged_memory_mib += d.memory_mib;
                h.unmanaged_vcpus += d.vcpus;
            }
            drift.push(Drift {
                kind: DriftKind::ExtraDomain,
                guest: Some(d.name.clone()),
                host: Some(o.host.clone()),
                es_xml: "not listed".into(),
                libvirt: format!("defined on {} ({})", o.host, d.state),
                message: format!(
                    "domain {} on host {} ({}, {} MiB, {} vCPUs) is not a guest in es.xml",
                    d.name, o.host, d.state, d.memory_mib, d.vcpus
                ),
            });
        }
    }

    topology.clusters = clusters(es, &index);
    topology.other_machines = es
        .others
        .iter()
        .map(|m| (m.name.clone(), m.kind.clone()))
        .collect();
    (Reconciled { topology, drift }, guests, copies)
}

/// What one run of [`map_in_parallel`] collects beside its guests: their drift, and where each
/// guest's domain observation is (one entry per guest, in order).
#[derive(Default)]
struct RunSide {
    drift: Vec<Drift>,
    copies: Vec<CopyAt>,
}

/// Records SSH facts about a host once they are gathered: the bridges that exist on it and
/// its image version (which, when known, replaces es.xml's).
pub fn apply_facts(
    topology: &mut Topology,
    host: &str,
    bridges: BTreeSet<String>,
    image_version: Option<ImageVersion>,
) -> Result<(), UnknownHost> {
    let h = topology
        .hosts
        .get_mut(host)
        .ok_or_else(|| UnknownHost(host.to_string()))?;
    h.bridges = Some(bridges);
    if image_version.is_some() {
        h.image_version = image_version;
    }
    Ok(())
}

/// `f` over `items` on the machine's cores: reconciling 100,000 guests is independent work per
/// guest. Returns one run per consecutive chunk of `items`, in input order: each chunk's results
/// and what `f` gathered in its second argument (drift), in the order of the items. The
/// runs are not joined here, so that the caller copies them once, into their final place.
fn map_in_parallel<T: Sync, R: Send, S: Send + Default>(
    items: &[T],
    f: impl Fn(&T, &mut S) -> R + Sync,
) -> Vec<(Vec<R>, S)> {
    const MIN_CHUNK: usize = 4096;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / MIN_CHUNK)
        .max(1);
    // The first run's results have room for every item, so that the caller can append the
    // later runs to it: one copy of a run fewer (hundreds of megabytes at 100,000 hosts).
    let run = |chunk: &[T], room: usize| {
        let mut pushed = S::default();
        let mut results = Vec::with_capacity(room);
        results.extend(chunk.iter().map(|item| f(item, &mut pushed)));
        (results, pushed)
    };
    if threads == 1 {
        return vec![run(items, items.len())];
    }
    let run = &run;
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .enumerate()
            .map(|(i, chunk)| {
                let room = if i == 0 { items.len() } else { chunk.len() };
                s.spawn(move || run(chunk, room))
            })
            .collect();
        // A worker can only fail by panicking; carry the panic on rather than lose guests.
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Facts were offered for a host the topology (es.xml) does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host {0} is not a KVM host in es.xml")]
pub struct UnknownHost(pub String);

type Observation = Result<HostObservation, LibvirtError>;

/// Observation per host name; the first one wins if a host was read twice.
fn index_observations(observations: &[Observation]) -> HashMap<&str, (u32, &Observation)> {
    let mut by_host = HashMap::default();
    for (i, o) in observations.iter().enumerate() {
        let host = match o {
            Ok(o) => o.host.as_str(),
            Err(e) => e.host.as_str(),
        };
        by_host.entry(host).or_insert((i as u32, o));
    }
    by_host
}

/// Every domain name with the hosts it is defined on, in es.xml host order.
fn index_domains<'a>(
    reachable: &[(u32, &'a HostObservation)],
) -> HashMap<&'a str, OneOrMany<DomainCopy<'a>>> {
    let count = reachable.iter().map(|(_, o)| o.domains.len()).sum();
    let mut index: HashMap<&str, OneOrMany<DomainCopy<'a>>> = map_with_capacity(count);
    for (at, o) in reachable {
        for (i, d) in o.domains.iter().enumerate() {
            let copy = DomainCopy {
                host: o.host.as_str(),
                domain: d,
                at: (*at, i as u32),
            };
            OneOrMany::add(index.entry(d.name.as_str()), copy);
        }
    }
    index
}

/// One definition of a domain: its host, what libvirt showed, and where that is among the
/// observations (observation index, domain index), for [`reconcile_owned`] to move from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DomainCopy<'a> {
    host: &'a str,
    domain: &'a DomainObservation,
    at: (u32, u32),
}

/// The values of one key of reconcile's indexes, in the order they were added. Nearly every
/// key has exactly one (a domain defined on one host, a guest in one cluster): held inline,
/// where a `Vec` per key was a million small allocations, and fresh memory touched, at
/// 100,000 hosts.
#[derive(Debug, Clone, PartialEq)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Copy> OneOrMany<T> {
    /// Adds `item` to the values of `entry`'s key, creating them if the key is new.
    fn add<K>(entry: std::collections::hash_map::Entry<'_, K, OneOrMany<T>>, item: T) {
        use std::collections::hash_map::Entry;
        match entry {
            Entry::Vacant(v) => {
                v.insert(OneOrMany::One(item));
            }
            Entry::Occupied(mut o) => {
                let values = o.get_mut();
                match values {
                    OneOrMany::One(first) => *values = OneOrMany::Many(vec![*first, item]),
                    OneOrMany::Many(all) => all.push(item),
                }
            }
        }
    }

    fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(item) => std::slice::from_ref(item),
            OneOrMany::Many(all) => all,
        }
    }
}

fn bridges_of(domains: &[DomainObservation]) -> BTreeSet<String> {
    domains
        .iter()
        .flat_map(|d| &d.interfaces)
        .filter(|i| i.kind == InterfaceKind::Bridge)
        .map(|i| i.source.clone())
        .collect()
}

/// Host PCI addresses the domains pass through: hostdev interfaces and PCI host devices.
fn pci_in_use(domains: &[DomainObservation]) -> BTreeSet<String> {
    domains
        .iter()
        .flat_map(|d| passed_through_pci(&d.interfaces, &d.hostdevs))
        .map(str::to_string)
        .collect()
}

fn unreachable(host: &str, observation: Option<&Observation>) -> Drift {
    let libvirt = match observation {
        Some(Err(e)) => format!("cannot {} at {}: {}", e.action, e.uri, e.message),
        _ => "not read".to_string(),
    };
    Drift {
        kind: DriftKind::HostUnreachable,
        guest: None,
        host: Some(host.to_string()),
        es_xml: "KVM host".into(),
        message: format!("libvirt on host {host} could not be read: {libvirt}"),
        libvirt,
    }
}

/// es.xml's references resolved once, so that reconciling 100,000 guests never searches a list
/// per guest. Ids are unique (the parser refuses duplicates).
struct EsIndex<'a> {
    /// Host machine id → host name.
    host_names: HashMap<&'a str, &'a str>,
    /// Guest machine id → guest name.
    guest_names: HashMap<&'a str, &'a str>,
    /// Cluster id → cluster name.
    cluster_names: HashMap<&'a str, &'a str>,
    volumes: HashMap<&'a str, &'a EsVolume>,
    /// Guest id → ids of its clusters, and cluster id → ids of its members, from both places
    /// es.xml records membership: the guest's `software/clusters` and the cluster's members.
    /// Either may list a pair twice; users dedup by name.
    clusters_of_guest: HashMap<&'a str, OneOrMany<&'a str>>,
    members_of_cluster: HashMap<&'a str, OneOrMany<&'a str>>,
}

impl<'a> EsIndex<'a> {
    fn new(es: &'a EsSystem) -> Self {
        // Sized up front: growing a table of a million ids rehashes it into fresh memory
        // several times over.
        fn first<'a, V>(pairs: impl ExactSizeIterator<Item = (&'a str, V)>) -> HashMap<&'a str, V> {
            let mut map = map_with_capacity(pairs.len());
            for (k, v) in pairs {
                map.entry(k).or_insert(v);
            }
            map
        }
        let mut clusters_of_guest: HashMap<&str, OneOrMany<&str>> =
            map_with_capacity(es.guests.len());
        let mut members_of_cluster: HashMap<&str, OneOrMany<&str>> =
            map_with_capacity(es.clusters.len());
        let from_guests = es
            .guests
            .iter()
            .flat_map(|g| g.cluster_ids.iter().map(|c| (c.as_str(), g.id.as_str())));
        let from_clusters = es
            .clusters
            .iter()
            .flat_map(|c| c.member_ids.iter().map(|m| (c.id.as_str(), m.as_str())));
        for (cluster, guest) in from_guests.chain(from_clusters) {
            OneOrMany::add(clusters_of_guest.entry(guest), cluster);
            OneOrMany::add(members_of_cluster.entry(cluster), guest);
        }
        EsIndex {
            host_names: first(es.hosts.iter().map(|h| (h.id.as_str(), h.name.as_str()))),
            guest_names: first(es.guests.iter().map(|g| (g.id.as_str(), g.name.as_str()))),
            cluster_names: first(es.clusters.iter().map(|c| (c.id.as_str(), c.name.as_str()))),
            volumes: first(es.volumes.iter().map(|v| (v.id.as_str(), v))),
            clusters_of_guest,
            members_of_cluster,
        }
    }
}

/// One es.xml guest against the domains of the same name; with the guest, where the copy it
/// was reconciled with is among the observations.
#[allow(clippy::too_many_arguments)]
fn reconcile_guest(
    index: &EsIndex<'_>,
    g: &EsGuest,
    es_host: &str,
    es_host_reachable: bool,
    found: &[DomainCopy<'_>],
    policy: DriftPolicy,
    devices: Devices,
    drift: &mut Vec<Drift>,
) -> (Guest, CopyAt) {
    let guest_drift = |kind, es_xml: String, libvirt: String, message: String, host: &str| Drift {
        kind,
        guest: Some(g.name.clone()),
        host: Some(host.to_string()),
        es_xml,
        libvirt,
        message,
    };

    if found.len() > 1 {
        let copies: Vec<String> = found
            .iter()
            .map(|c| format!("{} ({})", c.host, c.domain.state))
            .collect();
        drift.push(guest_drift(
            DriftKind::DuplicateDomain,
            es_host.to_string(),
            copies.join(", "),
            format!(
                "guest {} is defined on {} hosts: {}; es.xml puts it on {}",
                g.name,
                found.len(),
                copies.join(" and "),
                es_host
            ),
            es_host,
        ));
    }
    let chosen_copy = choose_copy(found, es_host);
    let chosen = chosen_copy.map(|c| (c.host, c.domain));

    match chosen {
        Some((host, d)) if host != es_host => drift.push(guest_drift(
            DriftKind::WrongHost,
            es_host.to_string(),
            host.to_string(),
            format!("guest {} is on host {host} ({}) but es.xml puts it on host {es_host}", g.name, d.state),
            host,
        )),
        Some(_) => {}
        None if es_host_reachable => drift.push(guest_drift(
            DriftKind::MissingDomain,
            es_host.to_string(),
            "not defined".into(),
            format!("guest {} is in es.xml on host {es_host} but no host libvirt was read on defines it", g.name),
            es_host,
        )),
        // Its host did not answer: the guest is probably there; HostUnreachable says so.
        None => {}
    }

    if let Some((host, d)) = chosen {
        if let Some(es_mib) = g.memory_mib.filter(|m| *m != d.memory_mib) {
            drift.push(guest_drift(
                DriftKind::MemoryMismatch,
                format!("{es_mib} MiB"),
                format!("{} MiB", d.memory_mib),
                format!(
                    "guest {}: es.xml says {es_mib} MiB of memory, libvirt on host {host} has {} MiB",
                    g.name, d.memory_mib
                ),
                host,
            ));
        }
        if let Some(es_vcpus) = g.vcpus.filter(|v| *v != d.vcpus) {
            drift.push(guest_drift(
                DriftKind::VcpuMismatch,
                format!("{es_vcpus} vCPUs"),
                format!("{} vCPUs", d.vcpus),
                format!(
                    "guest {}: es.xml says {es_vcpus} vCPUs, libvirt on host {host} has {}",
                    g.name, d.vcpus
                ),
                host,
            ));
        }
    }

    // The topology says where the guest runs (libvirt) whatever the policy: planning on a
    // position it does not have would plan impossible moves. es.xml winning means the guest
    // goes back where es.xml puts it, which the plan does from `es_host`.
    let host = match chosen {
        None => es_host,
        Some((host, _)) => host,
    };
    let back_to = (policy == DriftPolicy::PreferEsXml && host != es_host && es_host_reachable)
        .then(|| es_host.to_string());
    let mut clusters: Vec<String> = index
        .clusters_of_guest
        .get(g.id.as_str())
        .map_or(&[][..], OneOrMany::as_slice)
        .iter()
        .filter_map(|cluster_id| {
            index
                .cluster_names
                .get(cluster_id)
                .map(|name| name.to_string())
        })
        .collect();
    clusters.sort();
    clusters.dedup();

    let copy_devices = devices == Devices::Copy;
    let guest = Guest {
        name: g.name.clone(),
        machine_id: g.id.clone(),
        domain: None,
        host: host.to_string(),
        es_host: back_to,
        state: chosen.map_or(GuestState::Unknown, |(_, d)| d.state),
        vcpus: chosen.map_or(g.vcpus.unwrap_or(0), |(_, d)| d.vcpus),
        memory_mib: chosen.map_or(g.memory_mib.unwrap_or(0), |(_, d)| d.memory_mib),
        image_version: g.image_version.clone(),
        clusters,
        interfaces: chosen
            .filter(|_| copy_devices)
            .map(|(_, d)| d.interfaces.clone())
            .unwrap_or_default(),
        disks: chosen
            .filter(|_| copy_devices)
            .map(|(_, d)| d.disks.clone())
            .unwrap_or_default(),
        volumes: volume_paths(index, g),
        hostdevs: chosen
            .filter(|_| copy_devices)
            .map(|(_, d)| d.hostdevs.clone())
            .unwrap_or_default(),
    };
    (guest, chosen_copy.map(|c| c.at))
}

/// Of several definitions of one guest, the one that is live: a copy holding resources
/// (running or paused) before a stale shut-off one, then the copy on es.xml's host, then the
/// first in es.xml host order.
fn choose_copy<'a>(found: &[DomainCopy<'a>], es_host: &str) -> Option<DomainCopy<'a>> {
    found
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|(i, c)| (!c.domain.state.holds_resources(), c.host != es_host, *i))
        .map(|(_, copy)| copy)
}

/// Device paths of the guest's EDV volumes. A volume without `edvDevicePath` is where
/// Exascale always puts it, `/dev/exc/<name>`.
fn volume_paths(index: &EsIndex<'_>, g: &EsGuest) -> Vec<String> {
    g.volume_ids
        .iter()
        .filter_map(|id| index.volumes.get(id.as_str()))
        .filter_map(|v| {
            v.device_path
                .clone()
                .or_else(|| v.name.as_ref().map(|n| format!("/dev/exc/{n}")))
        })
        .collect()
}

/// Clusters keyed by name, members as guest names (sorted); ids that name no guest are left
/// out (the es.xml parser reports dangling references).
fn clusters(es: &EsSystem, index: &EsIndex<'_>) -> BTreeMap<String, Cluster> {
    es.clusters
        .iter()
        .map(|c| {
            let mut members: Vec<String> = index
                .members_of_cluster
                .get(c.id.as_str())
                .map_or(&[][..], OneOrMany::as_slice)
                .iter()
                .filter_map(|guest_id| index.guest_names.get(guest_id).map(|name| name.to_string()))
                .collect();
            members.sort();
            members.dedup();
            (
                c.name.clone(),
                Cluster {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    members,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
