//! The HCL language berth reads, as data: which blocks exist, their labels and attributes, and
//! the type and range of every attribute. Validation (`validate.rs`) walks the parsed files
//! against this table, so a new block type is one more [`BlockSpec`] here plus the code that
//! turns its validated [`Node`](super::validate::Node) into the model (`build.rs`).

/// The type (and allowed range) of an attribute's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// A non-empty string literal.
    Str,
    Bool,
    /// A whole number within `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number within `min..=max`.
    Float {
        min: f64,
        max: f64,
    },
    /// A memory size string (`16GiB`), stored in MiB.
    Size,
    /// A list of string literals with at least `min_len` elements.
    StrList {
        min_len: usize,
    },
    /// One of the given string literals.
    Enum(&'static [&'static str]),
    /// `inventory.domain_name`: `host_name`, `short_name`, `machine_id`, or a template over
    /// those placeholders.
    DomainName,
    /// A list of distinct host PCI addresses (`0000:3b:02.1`), stored in canonical form.
    PciList,
}

#[derive(Debug)]
pub(crate) struct AttrSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

#[derive(Debug)]
pub(crate) struct BlockSpec {
    pub name: &'static str,
    /// What the single label names (`host "NAME"`), or `None` for a block without labels.
    /// Labeled blocks repeat with distinct labels; unlabeled blocks appear at most once.
    pub label: Option<&'static str>,
    pub required: bool,
    pub attrs: &'static [AttrSpec],
    pub blocks: &'static [BlockSpec],
    /// Kinds of a two-label block (`rule "KIND" "NAME"`): the first label picks one of these
    /// specs, whose attributes and blocks apply; [`BlockSpec::label`] names the second label.
    /// Blocks repeat with distinct (kind, name) pairs. Empty for ordinary blocks.
    pub kinds: &'static [BlockSpec],
    /// Attributes of which exactly one must be written (`cluster` or `guests`).
    pub one_of: &'static [&'static str],
}

/// The fields every spec shares unless it says otherwise, for struct-update syntax.
const BLOCK: BlockSpec = BlockSpec {
    name: "",
    label: None,
    required: false,
    attrs: &[],
    blocks: &[],
    kinds: &[],
    one_of: &[],
};

impl BlockSpec {
    pub fn attr(&self, name: &str) -> Option<&'static AttrSpec> {
        self.attrs.iter().find(|attr| attr.name == name)
    }

    pub fn block(&self, name: &str) -> Option<&'static BlockSpec> {
        self.blocks.iter().find(|block| block.name == name)
    }

    pub fn kind(&self, name: &str) -> Option<&'static BlockSpec> {
        self.kinds.iter().find(|kind| kind.name == name)
    }

    /// Every name allowed directly inside this block, attributes first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.attrs
            .iter()
            .map(|a| a.name)
            .chain(self.blocks.iter().map(|b| b.name))
    }
}

/// Values of `mode` (and the model's `MigrationMode`, which serde maps from these names).
pub(crate) const MODES: &[&str] = &["offline", "offline_force", "live"];
/// Values of `live.transport` (the model's `LiveTransport`).
pub(crate) const TRANSPORTS: &[&str] = &["peer_to_peer", "client"];
/// Values of `drift_source` (the model's `DriftSource`).
pub(crate) const DRIFT_SOURCES: &[&str] = &["libvirt", "es_xml"];
/// Values of `rolling_maintenance.back_when` (the model's `BackWhen`).
pub(crate) const BACK_WHEN: &[&str] = &["rebooted", "answers"];
/// Values of `state.backend`.
pub(crate) const STATE_BACKENDS: &[&str] = &["local", "postgres"];

/// Values of `state.sslmode` (libpq's).
pub(crate) const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];
/// Values of `rebalance.on` (the model's `BalanceOn`).
pub(crate) const BALANCE_ON: &[&str] = &["memory", "vcpus", "both"];

const fn attr(name: &'static str, kind: Kind) -> AttrSpec {
    AttrSpec {
        name,
        kind,
        required: false,
    }
}

const fn required(name: &'static str, kind: Kind) -> AttrSpec {
    AttrSpec {
        name,
        kind,
        required: true,
    }
}

const COUNT: Kind = Kind::Int {
    min: 0,
    max: u32::MAX as i64,
};
const AT_LEAST_ONE: Kind = Kind::Int {
    min: 1,
    max: u32::MAX as i64,
};
const U64: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};
const PORT: Kind = Kind::Int {
    min: 1,
    max: u16::MAX as i64,
};

const SSH: BlockSpec = BlockSpec {
    name: "ssh",
    attrs: &[
        attr("user", Kind::Str),
        attr("port", PORT),
        attr("identity_file", Kind::Str),
        attr("known_hosts_file", Kind::Str),
        attr("strict_host_key_checking", Kind::Bool),
        attr("options", Kind::StrList { min_len: 0 }),
        attr("allow_command_options", Kind::StrList { min_len: 0 }),
        attr("gather_facts", Kind::Bool),
    ],
    ..BLOCK
};

const INVENTORY: BlockSpec = BlockSpec {
    name: "inventory",
    required: true,
    attrs: &[
        required("es_xml", Kind::Str),
        attr("libvirt_uri", Kind::Str),
        attr("peer_uri", Kind::Str),
        attr("connect_timeout_s", AT_LEAST_ONE),
        attr("drift_source", Kind::Enum(DRIFT_SOURCES)),
        attr("domain_name", Kind::DomainName),
        attr("volume_command", Kind::StrList { min_len: 1 }),
        attr("volume_check_command", Kind::StrList { min_len: 1 }),
        attr("es_xml_out", Kind::Str),
    ],
    blocks: &[SSH],
    ..BLOCK
};

const STATE: BlockSpec = BlockSpec {
    name: "state",
    attrs: &[
        attr("path", Kind::Str),
        attr("backend", Kind::Enum(STATE_BACKENDS)),
        attr("url", Kind::Str),
        attr("workspace", Kind::Str),
        attr("schema", Kind::Str),
        attr("sslmode", Kind::Enum(SSL_MODES)),
        attr("sslrootcert", Kind::Str),
        attr("sslcert", Kind::Str),
        attr("sslkey", Kind::Str),
    ],
    ..BLOCK
};

const LIVE: BlockSpec = BlockSpec {
    name: "live",
    attrs: &[
        attr("transport", Kind::Enum(TRANSPORTS)),
        attr("stall_timeout_s", AT_LEAST_ONE),
        attr("bandwidth_mib_s", U64),
        attr("parallel_connections", AT_LEAST_ONE),
        attr("auto_converge", Kind::Bool),
        attr("post_copy", Kind::Bool),
        attr(
            "max_downtime_ms",
            Kind::Int {
                min: 1,
                max: i64::MAX,
            },
        ),
        attr("tls", Kind::Bool),
        attr("compressed", Kind::Bool),
    ],
    ..BLOCK
};

/// A vCPU overcommit ratio: at least 1 (no undercommit), at most a sane 64.
const OVERCOMMIT: Kind = Kind::Float {
    min: 1.0,
    max: 64.0,
};

const DEFAULTS: BlockSpec = BlockSpec {
    name: "defaults",
    attrs: &[
        attr("mode", Kind::Enum(MODES)),
        attr("parallelism", AT_LEAST_ONE),
        attr("link_bandwidth_mib_s", AT_LEAST_ONE),
        attr("dirty_rate_mib_s", COUNT),
        attr("max_inbound_per_host", AT_LEAST_ONE),
        attr("max_outbound_per_host", AT_LEAST_ONE),
        attr("vcpu_overcommit", OVERCOMMIT),
        attr("memory_reserved", Kind::Size),
        attr("shared_storage", Kind::StrList { min_len: 0 }),
        attr("max_guests", COUNT),
        attr("rac_anti_affinity", Kind::Bool),
        attr("shutdown_timeout_s", AT_LEAST_ONE),
        attr("start_timeout_s", AT_LEAST_ONE),
    ],
    blocks: &[LIVE],
    ..BLOCK
};

const HOST: BlockSpec = BlockSpec {
    name: "host",
    label: Some("host name"),
    attrs: &[
        attr("drain", Kind::Bool),
        attr("evacuate", Kind::Bool),
        attr("return_home", Kind::Bool),
        attr("maintenance", Kind::Bool),
        attr("disabled", Kind::Bool),
        attr("max_guests", COUNT),
        attr("vcpu_overcommit", OVERCOMMIT),
        attr("libvirt_uri", Kind::Str),
        attr("migration_uri", Kind::Str),
        attr("peer_uri", Kind::Str),
        attr("memory_reserved", Kind::Size),
        attr("sriov_vfs", Kind::PciList),
    ],
    ..BLOCK
};

const GUEST: BlockSpec = BlockSpec {
    name: "guest",
    label: Some("guest name"),
    attrs: &[attr("host", Kind::Str), attr("mode", Kind::Enum(MODES))],
    ..BLOCK
};

const REBALANCE: BlockSpec = BlockSpec {
    name: "rebalance",
    label: Some("rebalance name"),
    attrs: &[
        attr("hosts", Kind::StrList { min_len: 2 }),
        attr("on", Kind::Enum(BALANCE_ON)),
        attr("threshold", Kind::Float { min: 0.0, max: 1.0 }),
        attr("max_moves", AT_LEAST_ONE),
        attr("max_moved", Kind::Size),
        attr("mode", Kind::Enum(MODES)),
    ],
    ..BLOCK
};

/// `rolling_maintenance { … }`: the settings of a rolling maintenance (and, optionally, its
/// hosts; `-rolling` names them on the command line).
const ROLLING: BlockSpec = BlockSpec {
    name: "rolling_maintenance",
    attrs: &[
        attr("hosts", Kind::StrList { min_len: 1 }),
        attr("host_command", Kind::StrList { min_len: 1 }),
        attr("back_timeout_s", AT_LEAST_ONE),
        attr("back_when", Kind::Enum(BACK_WHEN)),
        attr("host_command_expected_s", COUNT),
        attr("run", Kind::Str),
    ],
    ..BLOCK
};

/// `guests` of a rule that relates guests to each other: at least two of them.
const GROUP: Kind = Kind::StrList { min_len: 2 };
const SOME: Kind = Kind::StrList { min_len: 1 };

const RULE: BlockSpec = BlockSpec {
    name: "rule",
    label: Some("rule name"),
    kinds: &[
        BlockSpec {
            name: "anti_affinity",
            attrs: &[required("guests", GROUP)],
            ..BLOCK
        },
        BlockSpec {
            name: "affinity",
            attrs: &[required("guests", GROUP)],
            ..BLOCK
        },
        BlockSpec {
            name: "pin",
            attrs: &[required("guests", SOME)],
            ..BLOCK
        },
        BlockSpec {
            name: "ban",
            attrs: &[required("guests", SOME), required("hosts", SOME)],
            ..BLOCK
        },
        BlockSpec {
            name: "disruption_budget",
            attrs: &[
                attr("cluster", Kind::Str),
                attr("guests", SOME),
                required("max_unavailable", AT_LEAST_ONE),
            ],
            one_of: &["cluster", "guests"],
            ..BLOCK
        },
    ],
    ..BLOCK
};

/// The top level of every file: blocks only.
pub(crate) const ROOT: BlockSpec = BlockSpec {
    required: true,
    blocks: &[
        INVENTORY, DEFAULTS, STATE, HOST, GUEST, REBALANCE, RULE, ROLLING,
    ],
    ..BLOCK
};

/// Where an attribute or block called `name` may be written ("in the `inventory.ssh` block",
/// "at the top level"), to tell a user who wrote it in the wrong place where it belongs.
pub(crate) fn home_of(name: &str) -> Option<String> {
    fn search(spec: &BlockSpec, path: &str, name: &str) -> Option<String> {
        if spec.names().any(|n| n == name) {
            return Some(if path.is_empty() {
                "at the top level".into()
            } else {
                format!("in the `{path}` block")
            });
        }
        let kinds = spec
            .kinds
            .iter()
            .map(|kind| (kind, format!("{path} \"{}\"", kind.name)));
        let children = spec.blocks.iter().map(|child| {
            let child_path = if path.is_empty() {
                child.name.to_string()
            } else {
                format!("{path}.{}", child.name)
            };
            (child, child_path)
        });
        kinds
            .chain(children)
            .find_map(|(child, child_path)| search(child, &child_path, name))
    }
    search(&ROOT, "", name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BackWhen, BalanceOn, DriftSource, MigrationMode, RuleKind};

    #[test]
    fn enum_values_are_the_model_serde_names() {
        for mode in MODES {
            let parsed: MigrationMode =
                serde_json::from_value(serde_json::Value::from(*mode)).unwrap();
            assert_eq!(parsed.as_str(), *mode);
        }
        for when in BACK_WHEN {
            let parsed: BackWhen = serde_json::from_value(serde_json::Value::from(*when)).unwrap();
            assert_eq!(parsed.as_str(), *when);
        }
        for source in DRIFT_SOURCES {
            let parsed: Result<DriftSource, _> =
                serde_json::from_value(serde_json::Value::from(*source));
            assert!(parsed.is_ok(), "{source}");
        }
        for on in BALANCE_ON {
            let parsed: BalanceOn = serde_json::from_value(serde_json::Value::from(*on)).unwrap();
            assert_eq!(parsed.as_str(), *on);
        }
        // Every placement rule kind (the model's `RuleKind`); `disruption_budget` is the other.
        for kind in ["anti_affinity", "affinity", "pin", "ban"] {
            let parsed: RuleKind = serde_json::from_value(serde_json::Value::from(kind)).unwrap();
            assert_eq!(parsed.as_str(), kind);
            assert!(RULE.kind(kind).is_some(), "rule kind {kind} has no spec");
        }
    }

    #[test]
    fn names_are_unique_within_each_block() {
        fn check(spec: &BlockSpec) {
            let mut names: Vec<_> = spec.names().collect();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), count, "duplicate name in `{}`", spec.name);
            for one in spec.one_of {
                assert!(
                    spec.attr(one).is_some_and(|a| !a.required),
                    "one_of `{one}` in `{}`",
                    spec.name
                );
            }
            spec.blocks.iter().for_each(check);
            spec.kinds.iter().for_each(check);
        }
        check(&ROOT);
    }

    #[test]
    fn finds_where_a_name_belongs() {
        assert_eq!(
            home_of("es_xml").as_deref(),
            Some("in the `inventory` block")
        );
        assert_eq!(
            home_of("post_copy").as_deref(),
            Some("in the `defaults.live` block")
        );
        assert_eq!(home_of("drain").as_deref(), Some("in the `host` block"));
        assert_eq!(home_of("guest").as_deref(), Some("at the top level"));
        assert_eq!(
            home_of("max_unavailable").as_deref(),
            Some("in the `rule \"disruption_budget\"` block")
        );
        assert_eq!(home_of("nonsense"), None);
    }
}
