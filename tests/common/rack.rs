//! Racks built from the real OEDA files in ../shared/oeda-fixtures: the es.xml is referenced
//! in place (never copied into the repository), and each KVM host gets a libvirt test-driver
//! node file defining its es.xml guests, so that berth reads a rack that agrees with es.xml.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use berth::inventory::esxml::{self, EsSystem};

/// `../shared/oeda-fixtures/NAME` next to the repository.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/oeda-fixtures")
        .join(name)
}

pub fn parse_fixture(name: &str) -> EsSystem {
    let path = fixture(name);
    esxml::parse(
        &path.display().to_string(),
        &std::fs::read_to_string(&path).unwrap(),
    )
    .unwrap()
}

/// A working directory for `berth -C`: `es.xml` (a copy of the fixture, which apply may
/// rewrite), `nodes/<host>.xml` per KVM host, and `main.hcl` with `hcl` after the inventory
/// block. `domain(host_name, machine_id)` is the libvirt name each guest's domain gets.
pub struct Rack {
    pub dir: tempfile::TempDir,
    pub es: EsSystem,
}

impl Rack {
    pub fn new(fixture_name: &str, domain: impl Fn(&str, &str) -> String, hcl: &str) -> Rack {
        let dir = tempfile::tempdir().unwrap();
        let es = parse_fixture(fixture_name);
        std::fs::copy(fixture(fixture_name), dir.path().join("es.xml")).unwrap();
        std::fs::create_dir(dir.path().join("nodes")).unwrap();
        for (i, host) in es.hosts.iter().enumerate() {
            let mut domains = String::new();
            for (j, guest) in es
                .guests
                .iter()
                .filter(|g| g.host_id == host.id)
                .enumerate()
            {
                domains.push_str(&domain_xml(
                    &domain(&guest.name, &guest.id),
                    i * 100 + j,
                    guest.memory_mib.unwrap_or(16 * 1024),
                    guest.vcpus.unwrap_or(4),
                ));
            }
            write_node(&dir.path().join("nodes"), &host.name, &domains);
        }
        std::fs::write(
            dir.path().join("main.hcl"),
            format!(
                "inventory {{\n  es_xml      = \"es.xml\"\n  libvirt_uri = \"test:nodes/{{host}}.xml\"\n}}\n\n\
                 state {{\n  path = \"berth.state\"\n}}\n\n{hcl}\n"
            ),
        )
        .unwrap();
        Rack { dir, es }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Names of the guests es.xml puts on `host` (its index in es.xml order).
    pub fn guests_on(&self, host: usize) -> Vec<String> {
        let id = &self.es.hosts[host].id;
        self.es
            .guests
            .iter()
            .filter(|g| &g.host_id == id)
            .map(|g| g.name.clone())
            .collect()
    }

    pub fn host(&self, i: usize) -> &str {
        &self.es.hosts[i].name
    }
}

/// A running test-driver domain of `memory_mib` and `vcpus`.
pub fn domain_xml(name: &str, n: usize, memory_mib: u64, vcpus: u32) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><uuid>6a1e0000-0000-4000-8000-{n:012}</uuid>\
         <memory unit='KiB'>{kib}</memory><currentMemory unit='KiB'>{kib}</currentMemory>\
         <vcpu placement='static'>{vcpus}</vcpu>\
         <os><type arch='x86_64' machine='pc-q35-3.1'>hvm</type></os><devices/></domain>\n",
        kib = memory_mib * 1024
    )
}

/// A host of 96 CPUs and 4 TiB (the fixtures' guests are up to 1390 GiB).
pub fn write_node(dir: &Path, host: &str, domains: &str) {
    std::fs::write(
        dir.join(format!("{host}.xml")),
        format!(
            "<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n\
             <cpu><mhz>2400</mhz><model>x86_64</model><active>96</active><nodes>2</nodes><sockets>2</sockets>\
             <cores>24</cores><threads>2</threads></cpu>\n<memory>{}</memory>\n{domains}</node>\n",
            4u64 * 1024 * 1024 * 1024
        ),
    )
    .unwrap();
}
