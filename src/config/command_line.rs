//! Intents given on the command line (`berth plan -drain HOST -evacuate HOST -return-home HOST
//! -rebalance`), merged into the configuration as if they were written in HCL, so a flag and
//! the block it stands for produce the same plan.
//!
//! The flags become one more source file, [`COMMAND_LINE`], whose text is the flags themselves:
//! a later error about a host named by a flag (unknown, ambiguous, contradicting a host block)
//! points at the flag the way an HCL error points at its block.

use super::model::{
    BalanceOn, Config, HostIntent, RebalanceIntent, RollingMaintenance, SourceFile, Span, Spanned,
};

/// Name of the source file that holds the command-line intents. It is not a file on disk, and
/// it does not count towards [`Config::sha256`]: a saved plan made with `-drain` applies
/// against the same files.
pub const COMMAND_LINE: &str = "<command line>";

/// Name of the rebalance `-rebalance` adds (every host, default settings): the same as
/// `rebalance "all" {}` in HCL.
pub const COMMAND_LINE_REBALANCE: &str = "all";

/// Intents from command-line flags. A plan records them (`intents` in its JSON), so that
/// `berth apply FILE` can plan again with exactly the flags the saved plan was made with.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct CommandLineIntents {
    /// `-drain HOST`: `host "HOST" { drain = true }`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drain: Vec<String>,
    /// `-evacuate HOST`: `host "HOST" { evacuate = true }`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evacuate: Vec<String>,
    /// `-return-home HOST`: `host "HOST" { return_home = true }`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub return_home: Vec<String>,
    /// `-maintenance HOST`: `host "HOST" { maintenance = true }`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<String>,
    /// `-end-maintenance HOST`: `host "HOST" { maintenance = false }`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub end_maintenance: Vec<String>,
    /// `-rebalance`: `rebalance "all" {}`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rebalance: bool,
    /// `-rolling HOST[,HOST…]`: `rolling_maintenance { hosts = [...] }`, in the order given
    /// (after the block's own `hosts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rolling: Vec<String>,
}

impl CommandLineIntents {
    pub fn is_empty(&self) -> bool {
        self.drain.is_empty()
            && self.evacuate.is_empty()
            && self.return_home.is_empty()
            && self.maintenance.is_empty()
            && self.end_maintenance.is_empty()
            && !self.rebalance
            && self.rolling.is_empty()
    }
}

/// Which host flag a name came with.
#[derive(Clone, Copy)]
enum HostFlag {
    Drain,
    Evacuate,
    ReturnHome,
    Maintenance,
    EndMaintenance,
}

impl HostFlag {
    fn flag(self) -> &'static str {
        match self {
            HostFlag::Drain => "-drain",
            HostFlag::Evacuate => "-evacuate",
            HostFlag::ReturnHome => "-return-home",
            HostFlag::Maintenance => "-maintenance",
            HostFlag::EndMaintenance => "-end-maintenance",
        }
    }

    fn set(self, intent: &mut HostIntent) {
        match self {
            HostFlag::Drain => intent.drain = true,
            HostFlag::Evacuate => intent.evacuate = true,
            HostFlag::ReturnHome => intent.return_home = true,
            HostFlag::Maintenance => intent.maintenance = Some(true),
            HostFlag::EndMaintenance => intent.maintenance = Some(false),
        }
    }
}

impl Config {
    /// The configuration with `intents` added. A flag naming a host that already has a
    /// `host` block (by the same label, or the same first DNS label) sets the attribute in
    /// that block; otherwise it adds a block. `-rebalance` adds `rebalance "all" {}` unless
    /// the configuration already has a rebalance of that name.
    pub fn with_command_line(mut self, intents: &CommandLineIntents) -> Config {
        if intents.is_empty() {
            return self;
        }
        let recorded = &mut self.command_line;
        recorded.drain.extend(intents.drain.iter().cloned());
        recorded.evacuate.extend(intents.evacuate.iter().cloned());
        recorded
            .return_home
            .extend(intents.return_home.iter().cloned());
        recorded
            .maintenance
            .extend(intents.maintenance.iter().cloned());
        recorded
            .end_maintenance
            .extend(intents.end_maintenance.iter().cloned());
        recorded.rebalance |= intents.rebalance;
        recorded.rolling.extend(intents.rolling.iter().cloned());
        let file = self.files.len();
        let mut text = String::new();
        let mut named: Vec<(HostFlag, Spanned<String>)> = Vec::new();
        let flags = [
            (HostFlag::Drain, &intents.drain),
            (HostFlag::Evacuate, &intents.evacuate),
            (HostFlag::ReturnHome, &intents.return_home),
            (HostFlag::Maintenance, &intents.maintenance),
            (HostFlag::EndMaintenance, &intents.end_maintenance),
        ];
        for (flag, hosts) in flags {
            for host in hosts {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(flag.flag());
                text.push(' ');
                let start = text.len();
                text.push_str(host);
                let span = Span {
                    file,
                    range: start..text.len(),
                };
                named.push((
                    flag,
                    Spanned {
                        value: host.clone(),
                        span,
                    },
                ));
            }
        }
        let rebalance_span = intents.rebalance.then(|| {
            if !text.is_empty() {
                text.push(' ');
            }
            let start = text.len();
            text.push_str("-rebalance");
            Span {
                file,
                range: start..text.len(),
            }
        });
        let mut rolling = Vec::new();
        for host in &intents.rolling {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str("-rolling ");
            let start = text.len();
            text.push_str(host);
            rolling.push(Spanned {
                value: host.clone(),
                span: Span {
                    file,
                    range: start..text.len(),
                },
            });
        }
        self.files.push(SourceFile::new(COMMAND_LINE, text));
        if let Some(first) = rolling.first() {
            let span = first.span.clone();
            self.rolling
                .get_or_insert_with(|| RollingMaintenance {
                    hosts: Vec::new(),
                    host_command: None,
                    back_timeout_s: RollingMaintenance::DEFAULT_BACK_TIMEOUT_S,
                    back_when: Default::default(),
                    host_command_expected_s: RollingMaintenance::DEFAULT_EXPECTED_S,
                    run: None,
                    span,
                })
                .hosts
                .extend(rolling);
        }

        for (flag, name) in named {
            let existing = self
                .hosts
                .values_mut()
                .find(|intent| same_host(&intent.name.value, &name.value));
            match existing {
                Some(intent) => flag.set(intent),
                None => {
                    let mut intent = HostIntent::unset(name.clone());
                    flag.set(&mut intent);
                    self.hosts.insert(name.value, intent);
                }
            }
        }
        if let Some(span) = rebalance_span
            && !self
                .rebalances
                .iter()
                .any(|r| r.name.value == COMMAND_LINE_REBALANCE)
        {
            self.rebalances.push(RebalanceIntent {
                name: Spanned {
                    value: COMMAND_LINE_REBALANCE.into(),
                    span: span.clone(),
                },
                hosts: None,
                on: BalanceOn::Memory,
                threshold: RebalanceIntent::DEFAULT_THRESHOLD,
                max_moves: None,
                max_moved_mib: None,
                mode: None,
                span,
            });
        }
        self
    }
}

/// Whether two host labels name the same host as far as the configuration can tell: equal, or
/// equal first DNS labels (`exa01adm01` and `exa01adm01.example.com`). The diff resolves both
/// against the topology later; this only keeps a flag from adding a second block.
fn same_host(a: &str, b: &str) -> bool {
    let short = |name: &str| name.split('.').next().unwrap_or(name).to_string();
    a == b || short(a) == short(b)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_str;

    const BASE: &str = "inventory {\n  es_xml = \"es.xml\"\n}\nhost \"adm01.example.com\" {\n  max_guests = 4\n}\n";

    fn load() -> Config {
        parse_str("main.hcl", BASE, Path::new("/etc/berth")).expect("valid")
    }

    #[test]
    fn flags_set_attributes_of_existing_blocks_or_add_blocks() {
        let intents = CommandLineIntents {
            drain: vec!["adm01".into()],
            evacuate: vec!["adm04".into()],
            return_home: vec![],
            maintenance: vec![],
            end_maintenance: vec![],
            rebalance: true,
            rolling: vec![],
        };
        let cfg = load().with_command_line(&intents);
        let adm01 = &cfg.hosts["adm01.example.com"];
        assert!(adm01.drain && !adm01.evacuate);
        assert_eq!(adm01.max_guests.as_ref().map(|m| m.value), Some(4));
        let adm04 = &cfg.hosts["adm04"];
        assert!(adm04.evacuate && !adm04.drain);
        // The new block's name points at the flag's value in the command-line "file".
        assert_eq!(
            cfg.line_col(&adm04.name.span),
            (COMMAND_LINE.to_string(), 1, 24)
        );
        assert_eq!(
            cfg.files.last().map(|f| f.text.as_str()),
            Some("-drain adm01 -evacuate adm04 -rebalance")
        );
        assert_eq!(cfg.rebalances.len(), 1);
        assert_eq!(cfg.rebalances[0].name.value, COMMAND_LINE_REBALANCE);
        assert_eq!(cfg.rebalances[0].hosts, None);
    }

    #[test]
    fn flags_leave_the_fingerprint_alone() {
        let plain = load();
        let flagged = load().with_command_line(&CommandLineIntents {
            drain: vec!["adm02".into()],
            ..Default::default()
        });
        assert_eq!(plain.sha256(), flagged.sha256());
        assert_ne!(plain, flagged);
        // No flags, no extra file.
        assert_eq!(
            load().with_command_line(&CommandLineIntents::default()),
            plain
        );
    }
}
