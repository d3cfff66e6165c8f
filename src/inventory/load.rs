//! Loads the whole current picture: reads es.xml, reads every KVM host it lists through
//! libvirt (in parallel), and reconciles the two into a [`Topology`] with its drift.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::text_file::FileText;

use super::esxml::{self, EsLayout, EsSystem, EsXmlError};
use super::libvirt::{
    LibvirtError, UriSsh, expand_uri, observe_host_within, observe_hosts_with, with_ssh_params,
};
use super::model::Topology;
use super::naming::DomainNaming;
use super::observed::HostObservation;
use super::reconcile::{Drift, DriftPolicy, reconcile_owned};

/// Where to read from and how to treat drift.
#[derive(Debug, Clone, PartialEq)]
pub struct InventorySpec {
    pub es_xml_path: PathBuf,
    /// libvirt URI template, `{host}` / `{short}` expanded per host (see [`expand_uri`]).
    pub uri_template: String,
    /// URI per host, replacing the template; keyed by the es.xml host name or its short form.
    pub uri_overrides: BTreeMap<String, String>,
    pub policy: DriftPolicy,
    /// Hosts read at the same time (0 is taken as 1).
    pub parallelism: usize,
    /// berth's SSH settings, added to every SSH-transport URI (see [`with_ssh_params`]).
    pub ssh: UriSsh,
    /// The libvirt domain name of each es.xml guest (`inventory { domain_name }`).
    pub domain_naming: DomainNaming,
    /// How long to wait for each host's libvirt connection to open before reporting the host
    /// unreachable (`inventory.connect_timeout_s`; see [`super::libvirt::connect`]).
    pub connect_timeout: Duration,
}

/// es.xml as read, and the reconciled topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub es: EsSystem,
    /// The exact text of es.xml, for byte-preserving rewrites: the file mapped, not copied,
    /// when it is a regular file (see [`crate::text_file::read_text`]).
    pub es_xml_text: FileText,
    /// Lowercase hex sha256 of the es.xml bytes (the plan fingerprint).
    pub es_xml_sha256: String,
    pub topology: Topology,
    pub drift: Vec<Drift>,
    /// Where each host and guest reference sits in `es_xml_text`, when [`load`] kept it from
    /// its parse: the plan's es.xml diff then needs no second parse of a file that may be
    /// hundreds of megabytes. `None` when the inventory was assembled from an `EsSystem` alone.
    pub es_layout: Option<EsLayout>,
}

/// es.xml could not be used. Unreachable hosts are not errors: they are drift.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read es.xml {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The parser's message already names the file, line and element.
    #[error("es.xml is not usable: {source}")]
    EsXml {
        path: PathBuf,
        #[source]
        source: EsXmlError,
    },
}

/// Reads es.xml, then every host it lists, and reconciles them.
pub fn load(spec: &InventorySpec) -> Result<Inventory, InventoryError> {
    load_with(spec, &|host, uri| {
        observe_host_within(host, uri, spec.connect_timeout)
    })
}

/// Reads and parses the es.xml the spec names; returns it with its exact text and the layout
/// of its parse (where each host and guest reference sits in the text).
///
/// A file changed in place while it was parsed is refused (see [`FileText::unchanged`]).
pub fn read_es_xml(spec: &InventorySpec) -> Result<(EsSystem, FileText, EsLayout), InventoryError> {
    let path = &spec.es_xml_path;
    let read_error = |source| InventoryError::Read {
        path: path.clone(),
        source,
    };
    let text = crate::text_file::read_text(path).map_err(read_error)?;
    let parsed = esxml::parse_with_layout(&path.display().to_string(), &text);
    // A parse error in a file that changed meanwhile is the change's doing: say that instead.
    text.unchanged().map_err(read_error)?;
    let (es, layout) = parsed.map_err(|source| InventoryError::EsXml {
        path: path.clone(),
        source,
    })?;
    Ok((es, text, layout))
}

/// The part of [`load`] after parsing: reads the hosts of an already parsed es.xml and
/// reconciles. `es_xml_text` is the text `es` was parsed from.
pub fn assemble(es: EsSystem, es_xml_text: impl Into<FileText>, spec: &InventorySpec) -> Inventory {
    assemble_with(es, es_xml_text, spec, &|host, uri| {
        observe_host_within(host, uri, spec.connect_timeout)
    })
}

/// One host read by a caller-chosen function: `observe(host, uri)`.
pub type Observe<'a> = &'a (dyn Fn(&str, &str) -> Result<HostObservation, LibvirtError> + Sync);

/// [`load`], reading each host with `observe` instead of a fresh read-only connection.
pub fn load_with(spec: &InventorySpec, observe: Observe<'_>) -> Result<Inventory, InventoryError> {
    let (es, text, layout) = read_es_xml(spec)?;
    let mut inventory = assemble_with(es, text, spec, observe);
    // The fingerprint was hashed from the mapped file: refused if it changed since the parse.
    inventory
        .es_xml_text
        .unchanged()
        .map_err(|source| InventoryError::Read {
            path: spec.es_xml_path.clone(),
            source,
        })?;
    inventory.es_layout = Some(layout);
    Ok(inventory)
}

/// [`assemble`], reading each host with `observe`.
pub fn assemble_with(
    es: EsSystem,
    es_xml_text: impl Into<FileText>,
    spec: &InventorySpec,
    observe: Observe<'_>,
) -> Inventory {
    let observations = observe_hosts_with(&host_uris(&es, spec), spec.parallelism, observe);
    from_observations_named(
        es,
        es_xml_text,
        observations,
        spec.policy,
        &spec.domain_naming,
    )
}

/// The inventory from es.xml and what libvirt showed on each host: reconciled, with the
/// fingerprint of the es.xml text computed on a second thread meanwhile (hashing 250 MB takes
/// a quarter of a second).
pub fn from_observations(
    es: EsSystem,
    es_xml_text: impl Into<FileText>,
    observations: Vec<Result<HostObservation, LibvirtError>>,
    policy: DriftPolicy,
) -> Inventory {
    from_observations_named(
        es,
        es_xml_text,
        observations,
        policy,
        &DomainNaming::default(),
    )
}

/// [`from_observations`] with the guests' domains named by `naming`. The observations are
/// taken apart: each guest's devices are moved out of them, not copied.
pub fn from_observations_named(
    es: EsSystem,
    es_xml_text: impl Into<FileText>,
    observations: Vec<Result<HostObservation, LibvirtError>>,
    policy: DriftPolicy,
    naming: &DomainNaming,
) -> Inventory {
    let es_xml_text: FileText = es_xml_text.into();
    let (reconciled, es_xml_sha256) = crate::parallel::both(
        || reconcile_owned(&es, observations, policy, naming),
        || sha256_hex(es_xml_text.as_bytes()),
    );
    Inventory {
        es_xml_sha256,
        es,
        es_xml_text,
        topology: reconciled.topology,
        drift: reconciled.drift,
        es_layout: None,
    }
}

/// `(host, uri)` for every es.xml KVM host, in es.xml order: the override for the host's full
/// or short name when there is one, else the expanded template; an SSH transport carries the
/// spec's SSH settings.
pub fn host_uris(es: &EsSystem, spec: &InventorySpec) -> Vec<(String, String)> {
    es.hosts
        .iter()
        .map(|h| {
            let short = h.name.split('.').next().unwrap_or(&h.name);
            let uri = spec
                .uri_overrides
                .get(&h.name)
                .or_else(|| spec.uri_overrides.get(short))
                .cloned()
                .unwrap_or_else(|| expand_uri(&spec.uri_template, &h.name));
            (h.name.clone(), with_ssh_params(&uri, &spec.ssh))
        })
        .collect()
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str) -> InventorySpec {
        InventorySpec {
            es_xml_path: PathBuf::from(path),
            uri_template: "qemu+ssh://root@{host}/system".into(),
            uri_overrides: BTreeMap::new(),
            policy: DriftPolicy::StopOnDrift,
            parallelism: 2,
            ssh: UriSsh::default(),
            domain_naming: DomainNaming::default(),
            connect_timeout: super::super::libvirt::connect::DEFAULT_CONNECT_TIMEOUT,
        }
    }

    fn es_with_hosts(hosts: &[&str]) -> EsSystem {
        EsSystem::with_hosts(hosts)
    }

    #[test]
    fn uris_from_template_and_overrides() {
        let es = es_with_hosts(&[
            "exa01adm01.example.com",
            "exa01adm02.example.com",
            "exa01adm03.example.com",
        ]);
        let mut s = spec("es.xml");
        s.uri_overrides.insert(
            "exa01adm02.example.com".into(),
            "qemu+tcp://10.0.0.12/system".into(),
        );
        s.uri_overrides
            .insert("exa01adm03".into(), "test:///lab/adm03.xml".into());
        assert_eq!(
            host_uris(&es, &s),
            vec![
                (
                    "exa01adm01.example.com".into(),
                    "qemu+ssh://root@exa01adm01.example.com/system?no_verify=0".into()
                ),
                (
                    "exa01adm02.example.com".into(),
                    "qemu+tcp://10.0.0.12/system".into()
                ),
                (
                    "exa01adm03.example.com".into(),
                    "test:///lab/adm03.xml".into()
                ),
            ]
        );
    }

    #[test]
    fn missing_es_xml_names_the_file() {
        let err = load(&spec("/nonexistent/dir/es.xml")).unwrap_err();
        assert!(matches!(err, InventoryError::Read { .. }));
        let text = err.to_string();
        assert!(
            text.starts_with("cannot read es.xml /nonexistent/dir/es.xml: "),
            "{text}"
        );
    }

    #[test]
    fn unparsable_es_xml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken-es.xml");
        std::fs::write(&path, "<engineeredSystem><machines>").unwrap();
        let err = load(&spec(path.to_str().unwrap())).unwrap_err();
        let InventoryError::EsXml { path: p, .. } = &err else {
            panic!("expected EsXml, got {err:?}")
        };
        assert_eq!(p, &path);
        assert!(err.to_string().contains("broken-es.xml"), "{err}");
    }

    #[test]
    fn sha256_is_lowercase_hex_of_the_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn assemble_reports_every_unreachable_host() {
        let es = es_with_hosts(&["a.example.com", "b.example.com"]);
        let mut s = spec("es.xml");
        s.uri_template = "test:///nonexistent/{short}.xml".into();
        let inv = assemble(es, "<engineeredSystem/>", &s);
        let hosts: Vec<Option<&str>> = inv.drift.iter().map(|d| d.host.as_deref()).collect();
        assert_eq!(hosts, vec![Some("a.example.com"), Some("b.example.com")]);
        assert!(
            inv.drift[1].libvirt.contains("test:///nonexistent/b.xml"),
            "{}",
            inv.drift[1].libvirt
        );
        assert_eq!(inv.es_xml_sha256, sha256_hex(b"<engineeredSystem/>"));
        assert!(inv.topology.hosts.values().all(|h| !h.reachable));
    }
}
