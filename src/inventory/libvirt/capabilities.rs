//! The host CPU model from libvirt's capabilities XML (`virsh capabilities`).
//!
//! Live migration needs the same CPU on both ends; the model string is what gets compared.

use serde::Deserialize;

/// `capabilities/host/cpu/model`, when the driver reports one (the test driver does not).
/// Unreadable XML counts as "no model": the value is advisory, never worth failing a host over.
pub fn host_cpu_model(xml: &str) -> Option<String> {
    let caps: CapabilitiesDoc = quick_xml::de::from_str(xml).ok()?;
    let model = caps.host?.cpu?.model?.name;
    let model = model.trim();
    (!model.is_empty()).then(|| model.to_string())
}

#[derive(Deserialize)]
struct CapabilitiesDoc {
    host: Option<HostDoc>,
}

#[derive(Deserialize)]
struct HostDoc {
    cpu: Option<CpuDoc>,
}

#[derive(Deserialize)]
struct CpuDoc {
    model: Option<ModelDoc>,
}

#[derive(Deserialize)]
struct ModelDoc {
    #[serde(rename = "$text", default)]
    name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_host_cpu_model() {
        let xml = "<capabilities><host><uuid>x</uuid><cpu><arch>x86_64</arch>\
                   <model>Skylake-Server-IBRS</model><vendor>Intel</vendor>\
                   <pages unit='KiB' size='4'/><pages unit='KiB' size='2048'/></cpu>\
                   <topology><cells num='1'><cell id='0'><cpus num='1'><cpu id='0'/></cpus></cell></cells></topology>\
                   </host><guest><os_type>hvm</os_type></guest></capabilities>";
        assert_eq!(host_cpu_model(xml).as_deref(), Some("Skylake-Server-IBRS"));
    }

    #[test]
    fn no_model_is_none() {
        let test_driver = "<capabilities><host><cpu><arch>i686</arch><features><pae/></features></cpu></host></capabilities>";
        assert_eq!(host_cpu_model(test_driver), None);
        assert_eq!(host_cpu_model("<capabilities><host><cpu><model> </model></cpu></host></capabilities>"), None);
        assert_eq!(host_cpu_model("not xml"), None);
    }
}
