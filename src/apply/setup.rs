//! From the configuration to what the runner and the executor need: how to reach every host
//! (the same libvirt URI inventory reads, the SSH settings of the inventory block), how steps
//! are carried out, and how many run at once.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Config, HostIntent, SshSettings};
use crate::diff::resolve::{NameIndex, Resolution};
use crate::inventory::esxml::EsSystem;
use crate::inventory::expand_uri;
use crate::inventory::load::host_uris;
use crate::plan::build::inventory_spec;
use crate::remote::SshTarget;

use super::executor::ExecOptions;
use super::libvirt_runner::{HostAccess, RunnerSettings};

/// Access to every KVM host es.xml lists, keyed by its es.xml name: the libvirt URI from the
/// same template and per-host overrides inventory uses, the migration URI of its `host` block,
/// and SSH to the host under that name.
pub fn host_access(cfg: &Config, es: &EsSystem) -> BTreeMap<String, HostAccess> {
    host_uris(es, &inventory_spec(cfg))
        .into_iter()
        .map(|(host, uri)| {
            let ssh = Some(ssh_target(&host, &cfg.inventory.ssh));
            let block = host_block(cfg, &host);
            let migration_uri = block
                .and_then(|h| h.migration_uri.as_ref())
                .map(|u| expand_uri(&u.value, &host));
            let peer_uri = block
                .and_then(|h| h.peer_uri.as_ref())
                .map(|u| expand_uri(&u.value, &host))
                .or_else(|| {
                    let template = cfg.inventory.peer_uri.as_ref()?;
                    Some(expand_uri(&template.value, &host))
                });
            (
                host,
                HostAccess {
                    uri,
                    migration_uri,
                    peer_uri,
                    ssh,
                },
            )
        })
        .collect()
}

/// The `host` block of the es.xml host `name`, labelled with its full name or its first label
/// (the rule per-host libvirt URIs follow).
fn host_block<'a>(cfg: &'a Config, name: &str) -> Option<&'a HostIntent> {
    let short = name.split('.').next().unwrap_or(name);
    cfg.hosts.get(name).or_else(|| cfg.hosts.get(short))
}

/// The SSH target for one host under the inventory's SSH settings.
pub fn ssh_target(host: &str, ssh: &SshSettings) -> SshTarget {
    SshTarget {
        host: host.to_string(),
        user: ssh.user.clone(),
        port: ssh.port,
        identity_file: ssh.identity_file.clone(),
        known_hosts_file: ssh.known_hosts_file.clone(),
        strict_host_key_checking: ssh.strict_host_key_checking,
        options: ssh.options.clone(),
        config_file: None,
        allow_command_options: ssh.allow_command_options.clone(),
    }
}

/// Live-migration options from `defaults.live`, the volume commands from the inventory block,
/// the `sriov_vfs` pools of the host blocks under their es.xml host names (a block may name its
/// host by the short form), and the connect, shutdown, start and stall timeouts.
pub fn runner_settings(cfg: &Config, es: &EsSystem) -> RunnerSettings {
    let hosts = NameIndex::new(es.hosts.iter().map(|h| h.name.as_str()));
    let sriov_vfs = cfg
        .hosts
        .values()
        .filter_map(|intent| {
            let pool = intent.sriov_vfs.as_ref()?;
            // Unknown or ambiguous labels are planning errors; they reach no host here.
            match hosts.resolve(&intent.name.value) {
                Resolution::Found(host) => Some((host.to_string(), pool.value.clone())),
                _ => None,
            }
        })
        .collect();
    let d = &cfg.defaults;
    RunnerSettings {
        live: d.live.clone(),
        connect_timeout: inventory_spec(cfg).connect_timeout,
        shutdown_timeout: Duration::from_secs(d.shutdown_timeout_s),
        start_timeout: Duration::from_secs(d.start_timeout_s),
        stall_timeout: d
            .live
            .stall_timeout_s
            .map_or(RunnerSettings::default().stall_timeout, Duration::from_secs),
        volume_command: cfg.inventory.volume_command.clone(),
        volume_check_command: cfg.inventory.volume_check_command.clone(),
        sriov_vfs,
        back_timeout: Duration::from_secs(cfg.rolling.as_ref().map_or(
            crate::config::RollingMaintenance::DEFAULT_BACK_TIMEOUT_S,
            |r| r.back_timeout_s,
        )),
        host_facts: cfg.inventory.ssh.gather_facts,
        back_when: cfg
            .rolling
            .as_ref()
            .map(|r| r.back_when)
            .unwrap_or_default(),
        ..RunnerSettings::default()
    }
}

/// Concurrency bounds from `defaults`; `parallelism` (the `-parallelism` flag) overrides the
/// global one. Selection and `keep_going` are the caller's.
pub fn exec_options(cfg: &Config, parallelism: Option<usize>) -> ExecOptions {
    let d = &cfg.defaults;
    ExecOptions {
        parallelism: parallelism.unwrap_or(d.parallelism as usize).max(1),
        max_inbound_per_host: (d.max_inbound_per_host as usize).max(1),
        max_outbound_per_host: (d.max_outbound_per_host as usize).max(1),
        ..ExecOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse_str("main.hcl", text, std::path::Path::new("/etc/berth")).unwrap()
    }

    fn es(hosts: &[&str]) -> EsSystem {
        EsSystem::with_hosts(hosts)
    }

    #[test]
    fn hosts_get_inventory_uris_and_ssh_settings() {
        let cfg = config(
            r#"
inventory {
  es_xml      = "es.xml"
  libvirt_uri = "qemu+ssh://root@{host}/system"
  ssh {
    user = "berth"
    port = 2222
    strict_host_key_checking = false
  }
}
host "adm02" {
  libvirt_uri   = "test:nodes/adm02.xml"
  migration_uri = "tcp://{short}-mig.example.com"
}
host "adm01.example.com" {
  drain = true
}
"#,
        );
        let access = host_access(&cfg, &es(&["adm01.example.com", "adm02.example.com"]));
        assert_eq!(
            access["adm01.example.com"].uri, "qemu+ssh://root@adm01.example.com/system?no_verify=1",
            "libvirt's ssh transport follows `strict_host_key_checking = false` too"
        );
        assert_eq!(
            access["adm02.example.com"].uri,
            "test:///etc/berth/nodes/adm02.xml"
        );
        // By its first label, like libvirt_uri; a host block without one leaves libvirt to choose.
        assert_eq!(
            access["adm02.example.com"].migration_uri.as_deref(),
            Some("tcp://adm02-mig.example.com")
        );
        assert_eq!(access["adm01.example.com"].migration_uri, None);
        let ssh = access["adm01.example.com"].ssh.as_ref().unwrap();
        assert_eq!(ssh.destination(), "berth@adm01.example.com:2222");
        assert!(!ssh.strict_host_key_checking);
    }

    #[test]
    fn defaults_bound_concurrency_and_the_flag_overrides_parallelism() {
        let cfg = config(
            r#"
inventory {
  es_xml = "es.xml"
  volume_command = ["/opt/edv", "{action}", "--", "{volume}"]
}
defaults {
  parallelism          = 7
  max_inbound_per_host = 3
  live {
    bandwidth_mib_s = 500
  }
}
"#,
        );
        let opts = exec_options(&cfg, None);
        assert_eq!(
            (
                opts.parallelism,
                opts.max_inbound_per_host,
                opts.max_outbound_per_host
            ),
            (7, 3, 2)
        );
        assert_eq!(exec_options(&cfg, Some(1)).parallelism, 1);
        let settings = runner_settings(&cfg, &es(&["adm01.example.com"]));
        assert_eq!(settings.live.bandwidth_mib_s, 500);
        assert_eq!(settings.volume_command.as_deref().unwrap()[1], "{action}");
        assert_eq!(settings.volume_check_command, None);
        assert!(settings.sriov_vfs.is_empty());
    }

    #[test]
    fn sriov_pools_are_keyed_by_es_xml_host_names() {
        let cfg = config(
            r#"
inventory {
  es_xml = "es.xml"
  volume_check_command = ["/opt/edv", "status", "--", "{volume}"]
}
host "adm01" {
  sriov_vfs = ["0000:3B:02.0", "0000:5e:02.0"]
}
host "adm02.example.com" {
  sriov_vfs = ["0000:3b:02.1"]
}
host "adm09" {
  sriov_vfs = ["0000:3b:02.2"]
}
"#,
        );
        let settings = runner_settings(&cfg, &es(&["adm01.example.com", "adm02.example.com"]));
        let pools: Vec<(&str, Vec<&str>)> = settings
            .sriov_vfs
            .iter()
            .map(|(h, p)| (h.as_str(), p.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            pools,
            [
                ("adm01.example.com", vec!["0000:3b:02.0", "0000:5e:02.0"]),
                ("adm02.example.com", vec!["0000:3b:02.1"])
            ]
        );
        assert_eq!(
            settings.volume_check_command.as_deref().unwrap()[1],
            "status"
        );
    }
}
