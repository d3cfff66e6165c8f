//! Synthetic es.xml files: valid, reference-complete and deterministic from a seed, for tests
//! and for the 10,000-host benchmark. Not an Oracle file: shapes follow es-xml.md §1 and §5
//! (element names CONFIRMED there), values are made up.
//!
//! Layout: host `i` carries guests `(i, 0..guests_per_host)`. Hosts are paired (0-1, 2-3, …) and
//! guest slot `j` of a pair forms one two-node RAC cluster, so every cluster has its two guests
//! on different hosts; with an odd host count the last host's guests are one-node clusters.

use std::fmt::{self, Write};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSpec {
    pub hosts: usize,
    pub guests_per_host: usize,
    /// Drives vCPUs, memory, VLANs and image versions; same seed, same file.
    pub seed: u64,
    /// EDV volumes per guest (defined under `storage/edvVolumes`); 0 for none.
    pub volumes_per_guest: usize,
    /// Write OEDA's default namespace `xmlns="model"` on the root, as OEDA itself does.
    pub namespace: bool,
}

impl SynthSpec {
    /// `hosts` × `guests_per_host` guests, two EDV volumes per guest, with the `model` namespace.
    pub fn new(hosts: usize, guests_per_host: usize, seed: u64) -> SynthSpec {
        SynthSpec { hosts, guests_per_host, seed, volumes_per_guest: 2, namespace: true }
    }
}

/// Values shared by both guests of a cluster, as in a real RAC deployment.
struct ClusterTraits {
    vcpus: u32,
    memory_gb: u64,
    client_vlan: Option<u32>,
    backup_vlan: u32,
    image: &'static str,
}

const IMAGES: [&str; 3] = ["24.1.14.0.0.250706", "25.1.4.0.0.250614", "25.1.6.0.0.250820"];
const VOLUME_TYPES: [&str; 3] = ["GCVVOL", "BASEVOL", "USERVOL"];

/// Generates the es.xml text for `spec`.
pub fn synthesize(spec: &SynthSpec) -> String {
    let mut rng = XorShift::new(spec.seed);
    let pairs = spec.hosts.div_ceil(2);
    let traits: Vec<ClusterTraits> = (0..pairs * spec.guests_per_host).map(|_| ClusterTraits::random(&mut rng)).collect();
    let guests = spec.hosts * spec.guests_per_host;
    let mut w = Writer { out: String::with_capacity(2048 + spec.hosts * 600 + guests * (1800 + spec.volumes_per_guest * 300)) };

    w.line(0, format_args!(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#));
    let xmlns = if spec.namespace { r#" xmlns="model""# } else { "" };
    w.line(0, format_args!(r#"<engineeredSystem{xmlns} id="synthetic-{}" oedaversion="250101" filetype="PAAS">"#, spec.seed));
    w.line(1, format_args!("<customerName>berth synthetic seed {}</customerName>", spec.seed));
    w.line(1, format_args!("<machines>"));
    for h in 0..spec.hosts {
        let guest_traits = |j: usize| &traits[(h / 2) * spec.guests_per_host + j];
        let guest_memory_gb: u64 = (0..spec.guests_per_host).map(|j| guest_traits(j).memory_gb).sum();
        write_host(&mut w, spec, h, host_memory_gb(guest_memory_gb), IMAGES[rng.below(IMAGES.len())]);
        for j in 0..spec.guests_per_host {
            write_guest(&mut w, spec, h, j, guest_traits(j));
        }
    }
    w.line(1, format_args!("</machines>"));
    write_networks(&mut w, spec, &traits);
    write_clusters(&mut w, spec, pairs);
    write_volumes(&mut w, spec);
    w.line(0, format_args!("</engineeredSystem>"));
    w.out
}

impl ClusterTraits {
    fn random(rng: &mut XorShift) -> ClusterTraits {
        ClusterTraits {
            vcpus: 4 + 2 * rng.below(15) as u32,
            memory_gb: 16 + 8 * rng.below(15) as u64,
            client_vlan: (rng.below(4) != 0).then(|| 100 + rng.below(900) as u32),
            backup_vlan: 1000 + rng.below(1000) as u32,
            image: IMAGES[rng.below(IMAGES.len())],
        }
    }
}

/// Enough for the guests plus a 64 GB host reserve, in 256 GB steps, at least 768 GB.
fn host_memory_gb(guest_memory_gb: u64) -> u64 {
    ((guest_memory_gb + 64).div_ceil(256) * 256).max(768)
}

fn host_name(h: usize) -> String {
    format!("synadm{h:05}")
}

fn guest_name(h: usize, j: usize) -> String {
    format!("synadm{h:05}vm{j:03}")
}

fn cluster_id(pair: usize, j: usize) -> String {
    format!("syncl{pair:05}x{j:03}_id")
}

fn write_host(w: &mut Writer, spec: &SynthSpec, h: usize, memory_gb: u64, image: &str) {
    let name = host_name(h);
    w.line(2, format_args!(r#"<machine id="{name}_id">"#));
    w.line(3, format_args!("<hostName>{name}.example.com</hostName>"));
    w.line(3, format_args!("<networks>"));
    w.line(4, format_args!(r#"<network id="{name}_admin" />"#));
    w.line(3, format_args!("</networks>"));
    w.line(3, format_args!("<machineType>compute</machineType>"));
    w.line(3, format_args!("<ImageVersion>{image}</ImageVersion>"));
    w.line(3, format_args!("<virtual>false</virtual>"));
    w.line(3, format_args!("<osType>LinuxKVM</osType>"));
    w.line(3, format_args!("<physicalMemorySize>{memory_gb}GB</physicalMemorySize>"));
    for j in 0..spec.guests_per_host {
        w.line(3, format_args!(r#"<machine id="{}_id" />"#, guest_name(h, j)));
    }
    w.line(2, format_args!("</machine>"));
}

fn write_guest(w: &mut Writer, spec: &SynthSpec, h: usize, j: usize, t: &ClusterTraits) {
    let name = guest_name(h, j);
    w.line(2, format_args!(r#"<machine id="{name}_id">"#));
    w.line(3, format_args!("<hostName>{name}.example.com</hostName>"));
    w.line(3, format_args!("<networks>"));
    w.line(4, format_args!(r#"<network id="{name}_client" />"#));
    w.line(4, format_args!(r#"<network id="{name}_backup" />"#));
    w.line(3, format_args!("</networks>"));
    w.line(3, format_args!("<software>"));
    w.line(4, format_args!("<clusters>"));
    w.line(5, format_args!(r#"<cluster id="{}" />"#, cluster_id(h / 2, j)));
    w.line(4, format_args!("</clusters>"));
    w.line(3, format_args!("</software>"));
    if spec.volumes_per_guest > 0 {
        w.line(3, format_args!("<edvVolumes>"));
        for k in 0..spec.volumes_per_guest {
            w.line(4, format_args!(r#"<edvVolume id="{name}_vol{k}" />"#));
        }
        w.line(3, format_args!("</edvVolumes>"));
    }
    w.line(3, format_args!("<machineType>compute</machineType>"));
    w.line(3, format_args!("<ImageVersion>{}</ImageVersion>", t.image));
    w.line(3, format_args!("<virtual>true</virtual>"));
    w.line(3, format_args!("<osType>LinuxKVMGuest</osType>"));
    w.line(3, format_args!("<guestCores>{}</guestCores>", t.vcpus));
    w.line(3, format_args!("<guestMemory>{}GB</guestMemory>", t.memory_gb));
    w.line(2, format_args!("</machine>"));
}

fn write_networks(w: &mut Writer, spec: &SynthSpec, traits: &[ClusterTraits]) {
    w.line(1, format_args!("<networks>"));
    for h in 0..spec.hosts {
        let name = host_name(h);
        write_network(w, &format!("{name}_admin"), "admin", "eth0", None, &name, [10, 0, h]);
        for j in 0..spec.guests_per_host {
            let t = &traits[(h / 2) * spec.guests_per_host + j];
            let name = guest_name(h, j);
            let n = h * spec.guests_per_host + j;
            write_network(w, &format!("{name}_client"), "client", "bondeth0", t.client_vlan, &name, [20, 0, n]);
            write_network(w, &format!("{name}_backup"), "backup", "bondeth1", Some(t.backup_vlan), &name, [30, 0, n]);
        }
    }
    w.line(1, format_args!("</networks>"));
}

/// `ip` is `[a, b, n]`: the address is `a.b+n/65536.n/256.n%256` so every network gets its own.
fn write_network(w: &mut Writer, id: &str, kind: &str, master: &str, vlan: Option<u32>, host: &str, ip: [usize; 3]) {
    let [a, b, n] = ip;
    w.line(2, format_args!(r#"<network id="{id}">"#));
    w.line(3, format_args!("<networkType>{kind}</networkType>"));
    w.line(3, format_args!("<hostName>{host}-{kind}</hostName>"));
    w.line(3, format_args!("<ipAddress>{a}.{}.{}.{}</ipAddress>", b + n / 65536, (n / 256) % 256, n % 256));
    w.line(3, format_args!("<master>{master}</master>"));
    match vlan {
        Some(v) => w.line(3, format_args!("<vlanId>{v}</vlanId>")),
        None => w.line(3, format_args!("<vlanId />")),
    }
    w.line(2, format_args!("</network>"));
}

fn write_clusters(w: &mut Writer, spec: &SynthSpec, pairs: usize) {
    w.line(1, format_args!("<software>"));
    w.line(2, format_args!("<clusters>"));
    for pair in 0..pairs {
        for j in 0..spec.guests_per_host {
            let id = cluster_id(pair, j);
            w.line(3, format_args!(r#"<cluster id="{id}">"#));
            w.line(4, format_args!("<clusterName>{}</clusterName>", id.trim_end_matches("_id")));
            w.line(4, format_args!("<clusterVips>"));
            for h in (2 * pair..2 * pair + 2).filter(|&h| h < spec.hosts) {
                let guest = guest_name(h, j);
                w.line(5, format_args!(r#"<clusterVip id="{guest}-vip_id">"#));
                w.line(6, format_args!("<vipName>{guest}-vip</vipName>"));
                w.line(6, format_args!("<machines>"));
                w.line(7, format_args!(r#"<machine id="{guest}_id" />"#));
                w.line(6, format_args!("</machines>"));
                w.line(5, format_args!("</clusterVip>"));
            }
            w.line(4, format_args!("</clusterVips>"));
            w.line(3, format_args!("</cluster>"));
        }
    }
    w.line(2, format_args!("</clusters>"));
    w.line(1, format_args!("</software>"));
}

fn write_volumes(w: &mut Writer, spec: &SynthSpec) {
    w.line(1, format_args!("<storage>"));
    w.line(2, format_args!("<edvVolumes>"));
    for h in 0..spec.hosts {
        for j in 0..spec.guests_per_host {
            let name = guest_name(h, j);
            for k in 0..spec.volumes_per_guest {
                let volume_type = VOLUME_TYPES[k % VOLUME_TYPES.len()];
                let volume = format!("{}_{name}_{k}", volume_type.to_ascii_lowercase());
                w.line(3, format_args!(r#"<edvVolume id="{name}_vol{k}">"#));
                w.line(4, format_args!("<edvVolumeName>{volume}</edvVolumeName>"));
                w.line(4, format_args!("<edvVolumeType>{volume_type}</edvVolumeType>"));
                w.line(4, format_args!("<edvDevicePath>/dev/exc/{volume}</edvDevicePath>"));
                w.line(3, format_args!("</edvVolume>"));
            }
        }
    }
    w.line(2, format_args!("</edvVolumes>"));
    w.line(1, format_args!("</storage>"));
}

/// Appends indented lines (4 spaces per level, as OEDA writes).
struct Writer {
    out: String,
}

impl Writer {
    fn line(&mut self, level: usize, args: fmt::Arguments<'_>) {
        for _ in 0..level {
            self.out.push_str("    ");
        }
        // Writing into a String cannot fail.
        let _ = self.out.write_fmt(args);
        self.out.push('\n');
    }
}

/// xorshift64: small, dependency-free and plenty for picking test values.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // A zero state would stay zero; mixing in a constant avoids it for seed 0.
        XorShift((seed ^ 0x9E37_79B9_7F4A_7C15).max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough in `0..n` for test data (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_file_other_seed_other_values() {
        let spec = SynthSpec::new(4, 3, 7);
        assert_eq!(synthesize(&spec), synthesize(&spec));
        assert_ne!(synthesize(&spec), synthesize(&SynthSpec { seed: 8, ..spec.clone() }));
    }

    #[test]
    fn host_memory_covers_guests_and_reserve() {
        assert_eq!(host_memory_gb(0), 768);
        assert_eq!(host_memory_gb(1000), 1280);
        assert_eq!(host_memory_gb(1216), 1280);
        assert_eq!(host_memory_gb(1217), 1536);
        assert_eq!(host_memory_gb(1473), 1792);
    }
}
