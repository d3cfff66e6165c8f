//! Reads hosts through libvirt (the `virt` crate): node info, the host CPU model, and every
//! domain with its devices. Nothing here writes: connections are opened read-only.

mod capabilities;
mod domain_xml;

use std::sync::Mutex;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};

pub use capabilities::host_cpu_model;
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
pub fn expand_uri(template: &str, host: &str) -> String {
    let short = host.split('.').next().unwrap_or(host);
    let mut out = String::with_capacity(template.len() + host.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix("{host}") {
            out.push_str(host);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{short}") {
            out.push_str(short);
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// libvirt prints every error to stderr unless its default error callback is removed;
/// berth reports errors itself.
pub fn silence_libvirt_stderr() {
    static ONCE: Once = Once::new();
    ONCE.call_once(virt::error::clear_error_callback);
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
pub fn observe_host(host: &str, uri: &str) -> Result<HostObservation, LibvirtError> {
    silence_libvirt_stderr();
    let fail = |message: &str| LibvirtError {
        host: host.to_string(),
        uri: uri.to_string(),
        action: "connect".into(),
        message: message.to_string(),
    };
    check_transport(uri).map_err(|m| fail(&m))?;
    super::keepalive::start_event_loop();
    let conn = Connect::open_read_only(Some(uri)).map_err(|e| fail(e.message()))?;
    super::keepalive::keep_alive(&conn).map_err(|e| fail(e.message()))?;
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
    silence_libvirt_stderr();
    let fail = |action: &str, message: &str| LibvirtError {
        host: host.to_string(),
        uri: uri.to_string(),
        action: action.to_string(),
        message: message.to_string(),
    };
    let node = conn
        .node_info()
        .map_err(|e| fail("read node info", e.message()))?;
    // Advisory: a driver without capabilities (or without a CPU model) still yields a host.
    let cpu_model = conn
        .capabilities()
        .ok()
        .and_then(|xml| host_cpu_model(&xml));
    let domains = conn
        .list_all_domains(0)
        .map_err(|e| fail("list domains", e.message()))?;
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
            e.message().to_string(),
        )
    })?;
    let action = format!("read domain {name}");
    let libvirt = |e: virt::error::Error| (action.clone(), e.message().to_string());
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
