//! The devices of one libvirt domain, read from its XML description (`virsh dumpxml --inactive`).
//!
//! Kept apart from the connection code so it can be tested on real Exadata guest XML
//! without a hypervisor. Only what placement needs is read: network interfaces (bridges,
//! networks, SR-IOV VFs), disks and passed-through host devices.

use serde::Deserialize;

use crate::inventory::model::{Disk, HostDev, Interface, InterfaceKind};

/// The devices berth cares about in one domain XML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainDevices {
    pub interfaces: Vec<Interface>,
    pub disks: Vec<Disk>,
    /// `<hostdev>` devices that are not network interfaces.
    pub hostdevs: Vec<HostDev>,
}

/// Why a domain XML could not be read. `element` says which device, counted per kind from 1
/// in document order (`interface 3`), so the message can be checked against `virsh dumpxml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainXmlError {
    #[error("domain XML is not well-formed or has an unexpected shape: {0}")]
    Syntax(String),
    #[error("{element}: {problem}")]
    Device { element: String, problem: String },
}

/// Reads the interfaces, disks and host devices of a domain from its XML description.
pub fn parse_domain_devices(xml: &str) -> Result<DomainDevices, DomainXmlError> {
    let doc: DomainDoc =
        quick_xml::de::from_str(xml).map_err(|e| DomainXmlError::Syntax(e.to_string()))?;
    let mut out = DomainDevices::default();
    let items = doc.devices.map(|d| d.items).unwrap_or_default();
    for item in items {
        match item {
            DeviceDoc::Interface(i) => {
                let element = format!("interface {}", out.interfaces.len() + 1);
                out.interfaces.push(interface(i, &element)?);
            }
            DeviceDoc::Disk(d) => {
                let element = format!("disk {}", out.disks.len() + 1);
                out.disks.push(disk(d, &element)?);
            }
            DeviceDoc::Hostdev(h) => {
                let element = format!("hostdev {}", out.hostdevs.len() + 1);
                out.hostdevs.push(hostdev(h, &element)?);
            }
            DeviceDoc::Other => {}
        }
    }
    Ok(out)
}

fn device_error(element: &str, problem: impl Into<String>) -> DomainXmlError {
    DomainXmlError::Device {
        element: element.to_string(),
        problem: problem.into(),
    }
}

fn interface(doc: InterfaceDoc, element: &str) -> Result<Interface, DomainXmlError> {
    let mac = doc.mac.and_then(|m| m.address);
    let source = doc.source.unwrap_or_default();
    let (kind, source) = match doc.kind.as_str() {
        "bridge" => {
            let bridge = source
                .bridge
                .ok_or_else(|| device_error(element, "type 'bridge' without <source bridge=…>"))?;
            (InterfaceKind::Bridge, bridge)
        }
        "network" => {
            let network = source.network.ok_or_else(|| {
                device_error(element, "type 'network' without <source network=…>")
            })?;
            (InterfaceKind::Network, network)
        }
        "hostdev" => {
            let address = source.address.ok_or_else(|| {
                device_error(element, "type 'hostdev' without <source><address …/>")
            })?;
            (InterfaceKind::Hostdev, address.host_address(element)?)
        }
        // direct (macvtap), user, ethernet, vhostuser, …: keep what names the host side.
        other => (
            InterfaceKind::Other,
            source
                .dev
                .or(source.bridge)
                .unwrap_or_else(|| other.to_string()),
        ),
    };
    Ok(Interface { kind, source, mac })
}

fn disk(doc: DiskDoc, element: &str) -> Result<Disk, DomainXmlError> {
    let target = doc
        .target
        .ok_or_else(|| device_error(element, "no <target>"))?;
    let dev = target
        .dev
        .ok_or_else(|| device_error(element, "<target> without dev"))?;
    let source = doc
        .source
        .and_then(|s| match (s.file, s.dev, s.pool, s.volume, s.name) {
            (Some(file), ..) => Some(file),
            (None, Some(dev), ..) => Some(dev),
            (None, None, Some(pool), Some(volume), _) => Some(format!("{pool}/{volume}")),
            (None, None, None, Some(volume), _) => Some(volume),
            (.., Some(name)) => Some(name),
            _ => None,
        });
    // libvirt always writes the bus; an empty string marks a hand-written XML without one.
    Ok(Disk {
        target: dev,
        bus: target.bus.unwrap_or_default(),
        source,
    })
}

fn hostdev(doc: HostdevDoc, element: &str) -> Result<HostDev, DomainXmlError> {
    let kind = doc.kind.unwrap_or_else(|| "unknown".to_string());
    let source = doc.source.unwrap_or_default();
    let address = match (kind.as_str(), source.address) {
        ("pci", Some(a)) => a.host_address(element)?,
        ("pci", None) => {
            return Err(device_error(
                element,
                "pci hostdev without <source><address …/>",
            ));
        }
        (_, Some(a)) => a.describe(),
        (_, None) => match (source.vendor, source.product) {
            (Some(v), Some(p)) => {
                format!("{}:{}", v.id.unwrap_or_default(), p.id.unwrap_or_default())
            }
            _ => String::new(),
        },
    };
    Ok(HostDev { kind, address })
}

// ---- serde shapes of the parts of the domain XML that are read ------------------------------

#[derive(Deserialize)]
struct DomainDoc {
    devices: Option<DevicesDoc>,
}

#[derive(Deserialize)]
struct DevicesDoc {
    /// Every child of `<devices>` in document order; libvirt groups them by kind, hand-written
    /// XML may not, and a `$value` list of an enum accepts any order.
    #[serde(rename = "$value", default)]
    items: Vec<DeviceDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum DeviceDoc {
    Interface(InterfaceDoc),
    Disk(DiskDoc),
    Hostdev(HostdevDoc),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct InterfaceDoc {
    #[serde(rename = "@type")]
    kind: String,
    mac: Option<MacDoc>,
    source: Option<SourceDoc>,
}

#[derive(Deserialize)]
struct MacDoc {
    #[serde(rename = "@address")]
    address: Option<String>,
}

#[derive(Deserialize, Default)]
struct SourceDoc {
    #[serde(rename = "@bridge")]
    bridge: Option<String>,
    #[serde(rename = "@network")]
    network: Option<String>,
    #[serde(rename = "@dev")]
    dev: Option<String>,
    #[serde(rename = "@file")]
    file: Option<String>,
    #[serde(rename = "@pool")]
    pool: Option<String>,
    #[serde(rename = "@volume")]
    volume: Option<String>,
    #[serde(rename = "@name")]
    name: Option<String>,
    address: Option<AddressDoc>,
    vendor: Option<IdDoc>,
    product: Option<IdDoc>,
}

#[derive(Deserialize)]
struct IdDoc {
    #[serde(rename = "@id")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct DiskDoc {
    source: Option<SourceDoc>,
    target: Option<TargetDoc>,
}

#[derive(Deserialize)]
struct TargetDoc {
    #[serde(rename = "@dev")]
    dev: Option<String>,
    #[serde(rename = "@bus")]
    bus: Option<String>,
}

#[derive(Deserialize)]
struct HostdevDoc {
    #[serde(rename = "@type")]
    kind: Option<String>,
    source: Option<SourceDoc>,
}

#[derive(Deserialize)]
struct AddressDoc {
    #[serde(rename = "@domain")]
    domain: Option<String>,
    #[serde(rename = "@bus")]
    bus: Option<String>,
    #[serde(rename = "@slot")]
    slot: Option<String>,
    #[serde(rename = "@function")]
    function: Option<String>,
    #[serde(rename = "@device")]
    device: Option<String>,
    #[serde(rename = "@target")]
    target: Option<String>,
    #[serde(rename = "@unit")]
    unit: Option<String>,
}

impl AddressDoc {
    /// The host PCI address in the form `lspci -D` prints: `0000:3b:02.1`.
    fn host_address(&self, element: &str) -> Result<String, DomainXmlError> {
        let field = |name: &str,
                     value: &Option<String>,
                     default: Option<u32>|
         -> Result<u32, DomainXmlError> {
            match value {
                Some(v) => parse_number(v).ok_or_else(|| {
                    device_error(element, format!("PCI address {name}='{v}' is not a number"))
                }),
                None => default
                    .ok_or_else(|| device_error(element, format!("PCI address without {name}"))),
            }
        };
        let domain = field("domain", &self.domain, Some(0))?;
        let bus = field("bus", &self.bus, None)?;
        let slot = field("slot", &self.slot, None)?;
        let function = field("function", &self.function, Some(0))?;
        Ok(format!("{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"))
    }

    /// A non-PCI address (USB, SCSI) as `key=value` pairs, for display.
    fn describe(&self) -> String {
        [
            ("bus", &self.bus),
            ("device", &self.device),
            ("target", &self.target),
            ("unit", &self.unit),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// libvirt writes PCI address fields in hex with `0x`; plain decimal is accepted too.
fn parse_number(text: &str) -> Option<u32> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KVM_GUEST: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/oeda-fixtures/kvm_guest.xml"
    ));

    #[test]
    fn exadata_guest_bridges_in_document_order() {
        let d = parse_domain_devices(KVM_GUEST).unwrap();
        let bridges: Vec<(&str, Option<&str>)> = d
            .interfaces
            .iter()
            .filter(|i| i.kind == InterfaceKind::Bridge)
            .map(|i| (i.source.as_str(), i.mac.as_deref()))
            .collect();
        assert_eq!(
            bridges,
            vec![
                ("vmbondeth0", Some("00:10:51:57:8f:fc")),
                ("vmbondeth0.1", Some("00:00:17:01:a8:51")),
                ("vmeth200", Some("52:54:00:58:e7:48")),
            ]
        );
    }

    #[test]
    fn exadata_guest_sriov_interfaces_carry_host_pci_addresses() {
        let d = parse_domain_devices(KVM_GUEST).unwrap();
        let vfs: Vec<&str> = d
            .interfaces
            .iter()
            .filter(|i| i.kind == InterfaceKind::Hostdev)
            .map(|i| i.source.as_str())
            .collect();
        // The <source> address (host side), not the guest-side <address> after it.
        assert_eq!(
            vfs,
            vec![
                "0000:af:00.2",
                "0000:af:03.2",
                "0000:af:00.3",
                "0000:af:03.3"
            ]
        );
        assert_eq!(d.interfaces.len(), 7);
        assert_eq!(d.interfaces[3].mac.as_deref(), Some("52:54:00:56:16:a1"));
        // SR-IOV NICs are interfaces, not generic host devices.
        assert!(d.hostdevs.is_empty());
    }

    #[test]
    fn exadata_guest_disks() {
        let d = parse_domain_devices(KVM_GUEST).unwrap();
        assert_eq!(d.disks.len(), 8);
        let targets: Vec<&str> = d.disks.iter().map(|x| x.target.as_str()).collect();
        assert_eq!(
            targets,
            vec!["sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg", "sdh"]
        );
        assert!(d.disks.iter().all(|x| x.bus == "scsi"));
        assert_eq!(
            d.disks[0].source.as_deref(),
            Some("/EXAVMIMAGES/GuestImages/scaqab10adm01vm08.us.oracle.com/System.img")
        );
    }

    #[test]
    fn interleaved_devices_and_other_kinds() {
        let xml = r#"<domain type='kvm'><name>g</name><devices>
            <interface type='network'><source network='default'/></interface>
            <disk type='volume' device='disk'><source pool='p1' volume='v1'/><target dev='vda' bus='virtio'/></disk>
            <interface type='direct'><source dev='eth3' mode='bridge'/></interface>
            <disk type='block' device='cdrom'><target dev='sdz' bus='sata'/></disk>
            <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x5e' slot='0x00' function='0x1'/></source></hostdev>
            <interface type='user'/>
            <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>
            <disk type='network' device='disk'><source protocol='rbd' name='pool/img'/><target dev='vdb' bus='virtio'/></disk>
        </devices></domain>"#;
        let d = parse_domain_devices(xml).unwrap();
        assert_eq!(
            d.interfaces,
            vec![
                Interface {
                    kind: InterfaceKind::Network,
                    source: "default".into(),
                    mac: None
                },
                Interface {
                    kind: InterfaceKind::Other,
                    source: "eth3".into(),
                    mac: None
                },
                Interface {
                    kind: InterfaceKind::Other,
                    source: "user".into(),
                    mac: None
                },
            ]
        );
        assert_eq!(
            d.disks,
            vec![
                Disk {
                    target: "vda".into(),
                    bus: "virtio".into(),
                    source: Some("p1/v1".into())
                },
                Disk {
                    target: "sdz".into(),
                    bus: "sata".into(),
                    source: None
                },
                Disk {
                    target: "vdb".into(),
                    bus: "virtio".into(),
                    source: Some("pool/img".into())
                },
            ]
        );
        assert_eq!(
            d.hostdevs,
            vec![
                HostDev {
                    kind: "pci".into(),
                    address: "0000:5e:00.1".into()
                },
                HostDev {
                    kind: "usb".into(),
                    address: "0x1234:0xbeef".into()
                },
            ]
        );
    }

    #[test]
    fn domain_without_devices_has_none() {
        let d = parse_domain_devices("<domain type='test'><name>x</name></domain>").unwrap();
        assert_eq!(d, DomainDevices::default());
    }

    #[test]
    fn errors_name_the_device() {
        let err = parse_domain_devices(
            "<domain><devices><interface type='bridge'><source bridge='a'/></interface>\
             <interface type='bridge'/></devices></domain>",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "interface 2: type 'bridge' without <source bridge=…>"
        );

        let err = parse_domain_devices(
            "<domain><devices><interface type='hostdev'><source><address type='pci' domain='0x0000' \
             bus='0xzz' slot='0x00' function='0x1'/></source></interface></devices></domain>",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "interface 1: PCI address bus='0xzz' is not a number"
        );

        let err = parse_domain_devices("<domain><devices><disk type='file'/></devices></domain>")
            .unwrap_err();
        assert_eq!(err.to_string(), "disk 1: no <target>");

        assert!(matches!(
            parse_domain_devices("<domain><devices>"),
            Err(DomainXmlError::Syntax(_))
        ));
    }
}
