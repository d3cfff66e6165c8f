//! Reads hosts through libvirt (the `virt` crate): node info, the host CPU model, and every
//! domain with its devices. Nothing here writes: connections are opened read-only.

mod capabilities;
pub mod connect;
mod diagnostics;
mod domain_xml;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};

pub use capabilities::host_cpu_model;
pub use diagnostics::{message as libvirt_message, one_line, route_errors_to_tracing};
pub use domain_xml::{DomainDevices, DomainXmlError, parse_domain_devices};

use super::model::GuestState;
use super::observed::{DomainObservation, HostObservation};

/// A host could not be read. Names the host (as es.xml spells it), the URI that was opened,
/// what was being done and libvirt's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host {host} ({uri}): cannot {action}: {message}")]
pub struct LibvirtError {
    pub host: String,
    pub uri: String,
    /// What berth was doing, e.g. `connect`, `list domains`, `read domain exa01vm01`.
    pub action: String,
    /// libvirt's message (or the domain XML problem).
    pub message: String,
}

/// Expands a libvirt URI template for one host: `{host}` becomes the host name as written in
/// es.xml, `{short}` its first DNS label (`exa01adm01` for `exa01adm01.example.com`).
/// Other text, including unknown `{…}`, is kept as written.
///
/// What is substituted is data, never URI syntax: every byte outside RFC 3986's unreserved
/// set (`A–Z a–z 0–9 - . _ ~`) is percent-encoded, so a name cannot end the authority, add a
/// query (`?command=…`) or a fragment. An IPv6 literal (`fe80::1`) goes in as `[fe80::1]`,
/// the form a URI authority needs. Names are also checked where they are read
/// ([`crate::names`]); this is the second wall. The one expander for every URI template
/// berth has (`inventory.libvirt_uri`, host `libvirt_uri`, `migration_uri`).
pub fn expand_uri(template: &str, host: &str) -> String {
    let short = host.split('.').next().unwrap_or(host);
    let host_text = match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => percent_encode(host),
    };
    let short_text = percent_encode(short);
    let mut out = String::with_capacity(template.len() + host.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix("{host}") {
            out.push_str(&host_text);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{short}") {
            out.push_str(&short_text);
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// `text` with every byte outside RFC 3986's unreserved characters percent-encoded.
pub fn percent_encode(text: &str) -> String {
    percent_encode_keeping(text, b"")
}

fn percent_encode_keeping(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// berth's SSH settings (`inventory.ssh`) in the form libvirt's own SSH transports take them,
/// so that libvirt's connections (and the migrations they carry) check host keys and
/// authenticate exactly as berth's openssh sessions do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UriSsh {
    /// `identity_file` → `keyfile=`.
    pub keyfile: Option<std::path::PathBuf>,
    /// `known_hosts_file` → `known_hosts=`.
    pub known_hosts: Option<std::path::PathBuf>,
    /// `strict_host_key_checking = false` → `no_verify=1` (libssh2: `known_hosts_verify=auto`);
    /// else `no_verify=0` (libssh2: `known_hosts_verify=normal`).
    pub no_verify: bool,
}

/// Whether `uri` goes through an SSH transport (`qemu+ssh://`, `qemu+libssh2://`, …).
pub fn is_ssh_transport(uri: &str) -> bool {
    let scheme = uri.split("://").next().unwrap_or_default();
    scheme.ends_with("+ssh") || scheme.ends_with("+libssh2") || scheme.ends_with("+libssh")
}

/// `uri` with `ssh`'s settings added as query parameters when it goes through an SSH
/// transport (any other URI is returned as is). Paths are percent-encoded (`/` kept).
/// libvirt's `qemu+ssh` (the ssh binary) uses `keyfile` (`-i`) and `no_verify`
/// (`StrictHostKeyChecking=no`); `qemu+libssh2` also `known_hosts` and
/// `known_hosts_verify`. `known_hosts` is added for both: libvirt 9.0's ssh-binary transport
/// ignores it (ssh then reads its default known_hosts, in batch mode, so an unknown key is
/// still refused when `no_verify=0`).
pub fn with_ssh_params(uri: &str, ssh: &UriSsh) -> String {
    if !is_ssh_transport(uri) {
        return uri.to_string();
    }
    let (base, fragment) = match uri.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (uri, None),
    };
    let mut params = Vec::new();
    if let Some(key) = &ssh.keyfile {
        params.push(format!("keyfile={}", encode_path(key)));
    }
    if let Some(file) = &ssh.known_hosts {
        params.push(format!("known_hosts={}", encode_path(file)));
    }
    params.push(format!("no_verify={}", u8::from(ssh.no_verify)));
    if base
        .split("://")
        .next()
        .unwrap_or_default()
        .ends_with("+libssh2")
    {
        let verify = if ssh.no_verify { "auto" } else { "normal" };
        params.push(format!("known_hosts_verify={verify}"));
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{separator}{}", params.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn encode_path(path: &std::path::Path) -> String {
    percent_encode_keeping(&path.to_string_lossy(), b"/")
}

/// The libvirt library berth runs with, as `major.minor.release` (`berth version`).
pub fn library_version() -> Option<String> {
    let v = Connect::version().ok()?;
    Some(format!(
        "{}.{}.{}",
        v / 1_000_000,
        (v / 1000) % 1000,
        v % 1000
    ))
}

/// Refuses transports berth cannot drive. libvirt's `libssh` transport waits for an event loop
/// that berth does not run: the connection logs in and then hangs for good (seen on the lab).
/// `qemu+ssh://` (the system ssh client) and `qemu+libssh2://` work.
pub fn check_transport(uri: &str) -> Result<(), String> {
    let scheme = uri.split("://").next().unwrap_or_default();
    if scheme.ends_with("+libssh") {
        return Err(format!(
            "the `{scheme}` transport needs a libvirt event loop that berth does not run (it would hang); \
             use `qemu+ssh://` or `qemu+libssh2://` instead"
        ));
    }
    Ok(())
}

/// Reads one host: node memory (MiB), logical CPUs and model, the capabilities' CPU model
/// (optional), and every domain, defined or running, sorted by name.
/// The connection is opened within [`connect::DEFAULT_CONNECT_TIMEOUT`]; the inventory reads
/// its hosts within its spec's own ([`crate::inventory::InventorySpec::connect_timeout`]).
pub fn observe_host(host: &str, uri: &str) -> Result<HostObservation, LibvirtError> {
    observe_host_within(host, uri, connect::DEFAULT_CONNECT_TIMEOUT)
}

/// [`observe_host`], giving up on the connection after `timeout` (see [`connect`]).
pub fn observe_host_within(
    host: &str,
    uri: &str,
    timeout: std::time::Duration,
) -> Result<HostObservation, LibvirtError> {
    let conn = connect::open(uri, true, timeout).map_err(|message| LibvirtError {
        host: host.to_string(),
        uri: uri.to_string(),
        action: "connect".into(),
        message,
    })?;
    observe_connection(host, uri, &conn)
}

/// [`observe_host`] through a connection the caller already holds (and keeps). apply reads
/// hosts through the connections it acts on: with libvirt's test driver every connection to
/// a node file is a separate in-process host, so only those show what apply changed.
pub fn observe_connection(
    host: &str,
    uri: &str,
    conn: &Connect,
) -> Result<HostObservation, LibvirtError> {
    route_errors_to_tracing();
    let fail = |action: &str, message: &str| LibvirtError {
        host: host.to_string(),
        uri: uri.to_string(),
        action: action.to_string(),
        message: message.to_string(),
    };
    let node = conn
        .node_info()
        .map_err(|e| fail("read node info", &libvirt_message(&e)))?;
    // Advisory: a driver without capabilities (or without a CPU model) still yields a host.
    let cpu_model = conn
        .capabilities()
        .ok()
        .and_then(|xml| host_cpu_model(&xml));
    let domains = conn
        .list_all_domains(0)
        .map_err(|e| fail("list domains", &libvirt_message(&e)))?;
    let mut observed = Vec::with_capacity(domains.len());
    for (index, domain) in domains.iter().enumerate() {
        observed.push(
            observe_domain(domain, index).map_err(|(action, message)| fail(&action, &message))?,
        );
    }
    observed.sort_by(|a, b| a.name.cmp(&b.name));
    // Domains are released before the connection (reverse declaration order), so closing the
    // connection drops the last reference cleanly.
    drop(domains);
    Ok(HostObservation {
        host: host.to_string(),
        uri: uri.to_string(),
        memory_mib: node.memory / 1024,
        cpus: node.cpus,
        arch: node.model,
        cpu_model,
        domains: observed,
    })
}

/// One domain; on failure returns (action, message) for [`LibvirtError`].
fn observe_domain(domain: &Domain, index: usize) -> Result<DomainObservation, (String, String)> {
    let name = domain.name().map_err(|e| {
        (
            format!("read the name of domain #{}", index + 1),
            libvirt_message(&e),
        )
    })?;
    let action = format!("read domain {name}");
    let libvirt = |e: virt::error::Error| (action.clone(), libvirt_message(&e));
    let info = domain.info().map_err(libvirt)?;
    let persistent = domain.is_persistent().map_err(libvirt)?;
    let xml = domain
        .xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
        .map_err(libvirt)?;
    let devices = parse_domain_devices(&xml)
        .map_err(|e| (format!("read the XML of domain {name}"), e.to_string()))?;
    Ok(DomainObservation {
        uuid: domain.uuid_string().ok(),
        state: guest_state(info.state.known()),
        persistent,
        vcpus: info.nr_virt_cpu,
        memory_mib: info.max_mem / 1024,
        interfaces: devices.interfaces,
        disks: devices.disks,
        hostdevs: devices.hostdevs,
        name,
    })
}

/// libvirt's eight domain states folded into what placement distinguishes.
fn guest_state(state: Option<DomainState>) -> GuestState {
    match state {
        // Blocked = running but waiting on a resource; Shutdown = still running while the
        // guest OS shuts down: both still hold memory and vCPUs.
        Some(DomainState::Running | DomainState::Blocked | DomainState::Shutdown) => {
            GuestState::Running
        }
        Some(DomainState::Paused | DomainState::PMSuspended) => GuestState::Paused,
        Some(DomainState::Shutoff) => GuestState::ShutOff,
        Some(DomainState::Crashed) => GuestState::Crashed,
        Some(DomainState::NoState) | None => GuestState::Unknown,
    }
}

/// Reads many hosts, `(host, uri)` each, with at most `parallelism` connections open at once
/// (0 is taken as 1). Results come back in input order, one per host; a host that fails,
/// even by a panic in libvirt's bindings, yields its error and does not stop the others.
pub fn observe_hosts(
    hosts: &[(String, String)],
    parallelism: usize,
) -> Vec<Result<HostObservation, LibvirtError>> {
    observe_hosts_with(hosts, parallelism, &observe_host)
}

/// [`observe_hosts`] with another way to read one host (`observe(host, uri)`), e.g. through
/// connections the caller keeps open ([`observe_connection`]).
pub fn observe_hosts_with(
    hosts: &[(String, String)],
    parallelism: usize,
    observe: &(dyn Fn(&str, &str) -> Result<HostObservation, LibvirtError> + Sync),
) -> Vec<Result<HostObservation, LibvirtError>> {
    let workers = parallelism.clamp(1, hosts.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<HostObservation, LibvirtError>>>> =
        Mutex::new(hosts.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((host, uri)) = hosts.get(i) else {
                        break;
                    };
                    // A panicking read yields an error for its host only; `observe` is only
                    // borrowed, and whatever it shares must tolerate a panic half-way (the
                    // connection caches berth passes here recover from poisoned locks).
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        observe(host, uri)
                    }))
                    .unwrap_or_else(|panic| {
                        Err(LibvirtError {
                            host: host.clone(),
                            uri: uri.clone(),
                            action: "read the host".into(),
                            message: format!(
                                "the libvirt bindings panicked: {}",
                                panic_text(&panic)
                            ),
                        })
                    });
                    // A poisoned lock only means another worker panicked while holding it;
                    // the slots are still valid.
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .zip(hosts)
        .map(|(slot, (host, uri))| {
            slot.unwrap_or_else(|| {
                Err(LibvirtError {
                    host: host.clone(),
                    uri: uri.clone(),
                    action: "read the host".into(),
                    message: "no worker reported a result".into(),
                })
            })
        })
        .collect()
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    #[test]
    fn the_libssh_transport_is_refused_before_it_can_hang() {
        let err = observe_host("adm01", "qemu+libssh://root@adm01/system").unwrap_err();
        assert!(err.to_string().contains("qemu+ssh://"), "{err}");
        assert!(check_transport("qemu+libssh2://root@adm01/system").is_ok());
        assert!(check_transport("qemu+ssh://root@adm01/system").is_ok());
        assert!(check_transport("test:///tmp/node.xml").is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_host_and_short() {
        assert_eq!(
            expand_uri("qemu+ssh://root@{host}/system", "exa01adm01.example.com"),
            "qemu+ssh://root@exa01adm01.example.com/system"
        );
        assert_eq!(
            expand_uri(
                "test:///srv/nodes/{short}.xml#{host}",
                "exa01adm02.example.com"
            ),
            "test:///srv/nodes/exa01adm02.xml#exa01adm02.example.com"
        );
        assert_eq!(
            expand_uri("qemu+tcp://{short}/system", "labh1"),
            "qemu+tcp://labh1/system"
        );
        assert_eq!(expand_uri("x{other}{host", "h.d"), "x{other}{host");
        assert_eq!(expand_uri("qemu:///system", "h"), "qemu:///system");
        assert_eq!(
            expand_uri("qemu+ssh://root@{host}/system", "fe80::1"),
            "qemu+ssh://root@[fe80::1]/system"
        );
    }

    #[test]
    fn substituted_names_cannot_become_uri_syntax() {
        let attack = "exa01adm02.example.com/system?command=/path/evil.sh&no_verify=1#";
        let uri = expand_uri("qemu+ssh://root@{host}/system", attack);
        assert_eq!(
            uri,
            "qemu+ssh://root@exa01adm02.example.com%2Fsystem%3Fcommand%3D%2Fpath%2Fevil.sh%26no_verify%3D1%23/system"
        );
        assert!(!uri.contains(['?', '#', '&']), "{uri}");
        assert_eq!(
            expand_uri("test:///n/{short}.xml", "a b@c.d"),
            "test:///n/a%20b%40c.xml"
        );
    }

    #[test]
    fn ssh_transports_get_berths_ssh_settings() {
        let ssh = UriSsh {
            keyfile: Some("/etc/berth/id ed25519".into()),
            known_hosts: Some("/etc/berth/known_hosts&x=1".into()),
            no_verify: false,
        };
        assert_eq!(
            with_ssh_params("qemu+ssh://root@h/system", &ssh),
            "qemu+ssh://root@h/system?keyfile=/etc/berth/id%20ed25519\
             &known_hosts=/etc/berth/known_hosts%26x%3D1&no_verify=0"
        );
        assert_eq!(
            with_ssh_params(
                "qemu+libssh2://root@h/system?socket=/s#f",
                &UriSsh::default()
            ),
            "qemu+libssh2://root@h/system?socket=/s&no_verify=0&known_hosts_verify=normal#f"
        );
        let lenient = UriSsh {
            no_verify: true,
            ..UriSsh::default()
        };
        assert_eq!(
            with_ssh_params("qemu+ssh://h/system", &lenient),
            "qemu+ssh://h/system?no_verify=1"
        );
        for other in ["qemu:///system", "qemu+tcp://h/system", "test:///n.xml"] {
            assert_eq!(with_ssh_params(other, &ssh), other);
        }
    }

    #[test]
    fn maps_every_libvirt_state() {
        use DomainState::*;
        let cases = [
            (Running, GuestState::Running),
            (Blocked, GuestState::Running),
            (Shutdown, GuestState::Running),
            (Paused, GuestState::Paused),
            (PMSuspended, GuestState::Paused),
            (Shutoff, GuestState::ShutOff),
            (Crashed, GuestState::Crashed),
            (NoState, GuestState::Unknown),
        ];
        for (libvirt, ours) in cases {
            assert_eq!(guest_state(Some(libvirt)), ours, "{libvirt:?}");
        }
        assert_eq!(guest_state(None), GuestState::Unknown);
    }

    #[test]
    fn unreachable_host_names_host_and_uri() {
        let err =
            observe_host("exa01adm09.example.com", "test:///nonexistent/node.xml").unwrap_err();
        assert_eq!(err.host, "exa01adm09.example.com");
        assert_eq!(err.uri, "test:///nonexistent/node.xml");
        assert_eq!(err.action, "connect");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "host exa01adm09.example.com (test:///nonexistent/node.xml): cannot connect: "
            ),
            "{text}"
        );
        assert!(!err.message.is_empty());
    }
}
