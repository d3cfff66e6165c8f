//! The hosts of a rolling maintenance (`rolling_maintenance { hosts }`, `-rolling`), resolved
//! against the topology and checked: KVM hosts only, each once, none with another intent of
//! its own, and a host command to run on them. Errors point at the name as written.

use serde::{Deserialize, Serialize};

use crate::config::{COMMAND_LINE, Config};
use crate::inventory::Topology;

use super::blocks::{not_a_kvm_host, resolve_label};
use super::desired::History;
use super::error::DiffError;
use super::resolve::{NameIndex, Resolution};

/// A host a rolling maintenance serviced (every step of its phase done), as the state records
/// it and plans show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Serviced {
    pub host: String,
    /// The command run on it, one element per argument.
    pub host_command: Vec<String>,
    /// The maintenance's `run` name, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The journal id of the apply that serviced it.
    pub plan_id: String,
    /// When its phase was seen done.
    #[schemars(with = "String")]
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The hosts of the `rolling_maintenance` block's `hosts` list that `history` records as
/// serviced with the block's `host_command` and `run` (the latest record of each), in the
/// list's order: what makes a rolling maintenance written in HCL converge once applied.
/// Hosts named with `-rolling` are an order given once and are never in it; labels that
/// resolve to no host are left to [`rolling_hosts`] to report.
pub fn already_serviced(cfg: &Config, topo: &Topology, history: &History) -> Vec<Serviced> {
    let Some(rolling) = &cfg.rolling else {
        return Vec::new();
    };
    let Some(command) = &rolling.host_command else {
        return Vec::new();
    };
    let run = rolling.run.as_ref().map(|r| &r.value);
    let hosts = NameIndex::new(topo.hosts.keys().map(String::as_str));
    rolling
        .hosts
        .iter()
        .filter(|label| {
            cfg.files
                .get(label.span.file)
                .is_some_and(|f| f.name != COMMAND_LINE)
        })
        .filter_map(|label| match hosts.resolve(&label.value) {
            Resolution::Found(host) => history
                .serviced
                .iter()
                .rev()
                .find(|s| {
                    s.host == host && s.host_command == command.value && s.run.as_ref() == run
                })
                .cloned(),
            _ => None,
        })
        .collect()
}

/// The hosts in the order they are serviced (full es.xml names); empty when the configuration
/// has no rolling maintenance.
pub fn rolling_hosts(cfg: &Config, topo: &Topology) -> Result<Vec<String>, Vec<DiffError>> {
    let Some(rolling) = &cfg.rolling else {
        return Ok(Vec::new());
    };
    if rolling.hosts.is_empty() {
        return Ok(Vec::new());
    }
    let hosts = NameIndex::new(topo.hosts.keys().map(String::as_str));
    let guests = NameIndex::new(topo.guests.keys().map(String::as_str));
    let mut errors = Vec::new();
    let mut order: Vec<String> = Vec::new();
    for label in &rolling.hosts {
        if let Some(e) = not_a_kvm_host(topo, label) {
            errors.push(e);
            continue;
        }
        let Some(host) = resolve_label("host", label, &hosts, &guests, &mut errors) else {
            continue;
        };
        if order.iter().any(|h| h == host) {
            errors.push(DiffError {
                span: Some(label.span.clone()),
                message: format!(
                    "rolling maintenance names host {host} twice: each host is serviced once"
                ),
                label: "given twice".into(),
                help: Some("remove one of them".into()),
                guest: None,
                host: Some(host.to_string()),
            });
            continue;
        }
        // Another intent on the same host contradicts servicing it in a phase of its own.
        for intent in cfg.hosts.values() {
            if hosts.resolve(&intent.name.value) != Resolution::Found(host) {
                continue;
            }
            let conflicting = [
                (intent.drain, "drain = true"),
                (intent.evacuate, "evacuate = true"),
                (intent.return_home, "return_home = true"),
                (intent.maintenance == Some(true), "maintenance = true"),
                (intent.maintenance == Some(false), "maintenance = false"),
                (intent.disabled, "disabled = true"),
            ];
            let (file, line, _) = cfg.line_col(&intent.name.span);
            for (_, what) in conflicting.iter().filter(|(on, _)| *on) {
                errors.push(DiffError {
                    span: Some(label.span.clone()),
                    message: format!(
                        "host {host} is in the rolling maintenance and also has `{what}` (at {file}:{line}): a rolling maintenance services the host in a phase of its own",
                    ),
                    label: format!("also `{what}`"),
                    help: Some(format!(
                        "remove `{what}` from its host block (or the flag), or leave the host out of the rolling maintenance"
                    )),
                    guest: None,
                    host: Some(host.to_string()),
                });
            }
        }
        order.push(host.to_string());
    }
    if errors.is_empty() && rolling.host_command.is_none() {
        errors.push(DiffError {
            span: Some(rolling.hosts[0].span.clone()),
            message: "a rolling maintenance needs the command to run on each host: set `host_command` in the `rolling_maintenance` block".into(),
            label: "no host_command".into(),
            help: Some(
                "rolling_maintenance { host_command = [\"/usr/sbin/patch-and-reboot\", \"--yes\"] } (one element per argument; back_when = \"answers\" if it does not reboot)".into(),
            ),
            guest: None,
            host: None,
        });
    }
    if errors.is_empty() {
        Ok(order)
    } else {
        Err(errors)
    }
}
