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
    /// A number of at least `min`.
    Float {
        min: f64,
    },
    /// A memory size string (`16GiB`), stored in MiB.
    Size,
    /// A list of string literals with at least `min_len` elements.
    StrList {
        min_len: usize,
    },
    /// One of the given string literals.
    Enum(&'static [&'static str]),
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
}

impl BlockSpec {
    pub fn attr(&self, name: &str) -> Option<&'static AttrSpec> {
        self.attrs.iter().find(|attr| attr.name == name)
    }

    pub fn block(&self, name: &str) -> Option<&'static BlockSpec> {
        self.blocks.iter().find(|block| block.name == name)
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
/// Values of `drift_source` (the model's `DriftSource`).
pub(crate) const DRIFT_SOURCES: &[&str] = &["libvirt", "es_xml"];

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
    label: None,
    required: false,
    attrs: &[
        attr("user", Kind::Str),
        attr("port", PORT),
        attr("identity_file", Kind::Str),
        attr("known_hosts_file", Kind::Str),
        attr("strict_host_key_checking", Kind::Bool),
        attr("options", Kind::StrList { min_len: 0 }),
        attr("gather_facts", Kind::Bool),
    ],
    blocks: &[],
};

const INVENTORY: BlockSpec = BlockSpec {
    name: "inventory",
    label: None,
    required: true,
    attrs: &[
        required("es_xml", Kind::Str),
        attr("libvirt_uri", Kind::Str),
        attr("drift_source", Kind::Enum(DRIFT_SOURCES)),
        attr("volume_command", Kind::StrList { min_len: 1 }),
        attr("es_xml_out", Kind::Str),
    ],
    blocks: &[SSH],
};

const STATE: BlockSpec = BlockSpec {
    name: "state",
    label: None,
    required: false,
    attrs: &[required("path", Kind::Str)],
    blocks: &[],
};

const LIVE: BlockSpec = BlockSpec {
    name: "live",
    label: None,
    required: false,
    attrs: &[
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
    blocks: &[],
};

const DEFAULTS: BlockSpec = BlockSpec {
    name: "defaults",
    label: None,
    required: false,
    attrs: &[
        attr("mode", Kind::Enum(MODES)),
        attr("parallelism", AT_LEAST_ONE),
        attr("max_inbound_per_host", AT_LEAST_ONE),
        attr("max_outbound_per_host", AT_LEAST_ONE),
        attr("vcpu_overcommit", Kind::Float { min: 1.0 }),
        attr("memory_reserved", Kind::Size),
        attr("shared_storage", Kind::StrList { min_len: 0 }),
    ],
    blocks: &[LIVE],
};

const HOST: BlockSpec = BlockSpec {
    name: "host",
    label: Some("host name"),
    required: false,
    attrs: &[
        attr("drain", Kind::Bool),
        attr("disabled", Kind::Bool),
        attr("max_guests", COUNT),
        attr("libvirt_uri", Kind::Str),
        attr("migration_uri", Kind::Str),
        attr("memory_reserved", Kind::Size),
    ],
    blocks: &[],
};

const GUEST: BlockSpec = BlockSpec {
    name: "guest",
    label: Some("guest name"),
    required: false,
    attrs: &[attr("host", Kind::Str), attr("mode", Kind::Enum(MODES))],
    blocks: &[],
};

/// The top level of every file: blocks only.
pub(crate) const ROOT: BlockSpec = BlockSpec {
    name: "",
    label: None,
    required: true,
    attrs: &[],
    blocks: &[INVENTORY, DEFAULTS, STATE, HOST, GUEST],
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
        spec.blocks.iter().find_map(|child| {
            let child_path = if path.is_empty() {
                child.name.to_string()
            } else {
                format!("{path}.{}", child.name)
            };
            search(child, &child_path, name)
        })
    }
    search(&ROOT, "", name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{DriftSource, MigrationMode};

    #[test]
    fn enum_values_are_the_model_serde_names() {
        for mode in MODES {
            let parsed: MigrationMode =
                serde_json::from_value(serde_json::Value::from(*mode)).unwrap();
            assert_eq!(parsed.as_str(), *mode);
        }
        for source in DRIFT_SOURCES {
            let parsed: Result<DriftSource, _> =
                serde_json::from_value(serde_json::Value::from(*source));
            assert!(parsed.is_ok(), "{source}");
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
            spec.blocks.iter().for_each(check);
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
        assert_eq!(home_of("nonsense"), None);
    }
}
