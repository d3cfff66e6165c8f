//! Turns the validated [`Node`] tree into the [`Config`] model: defaults for what is absent,
//! paths and `test:` URIs resolved against the configuration directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer};

use super::error::{ConfigError, located};
use super::model::{
    BackWhen, BalanceOn, Config, Defaults, DisruptionBudget, DriftSource, GuestIntent, HostIntent,
    InventoryConfig, LiveOptions, LiveTransport, MigrationMode, PgTlsSettings, PlacementRule,
    PostgresSettings, RebalanceIntent, RollingMaintenance, RuleKind, SourceFile, Span, Spanned,
    SshSettings, StateBackendConfig, StateConfig,
};
use super::validate::Node;

/// libvirt URI template used when `inventory` has no `libvirt_uri`: the test driver with one
/// node file per host, next to the configuration.
pub const DEFAULT_LIBVIRT_URI: &str = "test:nodes/{host}.xml";

/// Builds the model from a validated tree. `dir` must be absolute.
pub(crate) fn build(
    root: &Node,
    files: Vec<SourceFile>,
    dir: PathBuf,
) -> Result<Config, ConfigError> {
    let Some(inventory) = root.child("inventory") else {
        return Err(located(
            &files,
            &Span::default(),
            "no `inventory` block in the configuration",
            "",
            None,
            Vec::new(),
        ));
    };
    let built = (|| {
        let inventory = build_inventory(inventory, &dir)?;
        let defaults = root
            .child("defaults")
            .map(build_defaults)
            .transpose()?
            .unwrap_or_default();
        let state = match root.child("state") {
            Some(node) => build_state(node, &dir)?,
            None => StateConfig::default_in(&dir),
        };
        let hosts: BTreeMap<String, HostIntent> = root
            .children("host")
            .filter_map(|node| build_host(node, &dir))
            .map(|host| (host.name.value.clone(), host))
            .collect();
        let mut guests = BTreeMap::new();
        for guest in root.children("guest").map(build_guest) {
            if let Some(guest) = guest? {
                guests.insert(guest.name.value.clone(), guest);
            }
        }
        let mut config = Config {
            dir: dir.clone(),
            files: Vec::new(),
            inventory,
            defaults,
            state,
            guests,
            hosts,
            rebalances: Vec::new(),
            rules: Vec::new(),
            disruption_budgets: Vec::new(),
            rolling: root
                .child("rolling_maintenance")
                .map(build_rolling)
                .transpose()?,
            command_line: Default::default(),
        };
        for node in root.children("rebalance") {
            config.rebalances.extend(build_rebalance(node)?);
        }
        for node in root.children("rule") {
            build_rule(node, &mut config)?;
        }
        Ok(config)
    })();
    match built {
        Ok(config) => Ok(Config { files, ..config }),
        Err(Internal(span, message)) => Err(located(&files, &span, message, "", None, Vec::new())),
    }
}

/// A value validation should have guaranteed is missing (a bug, reported instead of a panic).
struct Internal(Span, String);

fn build_inventory(node: &Node, dir: &Path) -> Result<InventoryConfig, Internal> {
    let es_xml = node.str("es_xml").ok_or_else(|| {
        Internal(
            node.header.clone(),
            "internal error: `inventory` has no `es_xml`".into(),
        )
    })?;
    let libvirt_uri = node.str("libvirt_uri").unwrap_or_else(|| Spanned {
        value: DEFAULT_LIBVIRT_URI.into(),
        span: node.header.clone(),
    });
    let drift_source = match node.enumeration("drift_source") {
        Some(source) => Some(Spanned {
            value: enum_value::<DriftSource>(&source)?,
            span: source.span,
        }),
        None => None,
    };
    Ok(InventoryConfig {
        es_xml: Spanned {
            value: resolve_path(dir, &es_xml.value),
            span: es_xml.span,
        },
        libvirt_uri: Spanned {
            value: resolve_libvirt_uri(dir, &libvirt_uri.value),
            span: libvirt_uri.span,
        },
        peer_uri: node.str("peer_uri"),
        connect_timeout_s: u64_of(node, "connect_timeout_s")
            .unwrap_or(InventoryConfig::DEFAULT_CONNECT_TIMEOUT_S),
        ssh: node
            .child("ssh")
            .map(|ssh| build_ssh(ssh, dir))
            .unwrap_or_default(),
        drift_source,
        domain_name: node.str("domain_name"),
        volume_command: node.list("volume_command"),
        volume_check_command: node.list("volume_check_command"),
        es_xml_out: node.str("es_xml_out").map(|p| resolve_path(dir, &p.value)),
    })
}

fn build_state(node: &Node, dir: &Path) -> Result<StateConfig, Internal> {
    let path = node.str("path").map_or_else(
        || dir.join(StateConfig::DEFAULT_PATH),
        |p| resolve_path(dir, &p.value),
    );
    let postgres_only = [
        "url",
        "workspace",
        "schema",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
    ];
    let backend = match node.enumeration("backend").map(|b| b.value) {
        Some("postgres") => {
            let schema = node.str("schema");
            if let Some(s) = &schema
                && !is_sql_identifier(&s.value)
            {
                return Err(Internal(
                    s.span.clone(),
                    format!(
                        "`schema = \"{}\"` is not a plain SQL name (lower-case letters, digits and `_`, not starting with a digit, at most 63 characters)",
                        s.value
                    ),
                ));
            }
            StateBackendConfig::Postgres(PostgresSettings {
                url: node.str("url").map(|u| u.value),
                workspace: node.str("workspace").map_or_else(
                    || PostgresSettings::DEFAULT_WORKSPACE.to_string(),
                    |w| w.value,
                ),
                schema: schema
                    .map_or_else(|| PostgresSettings::DEFAULT_SCHEMA.to_string(), |s| s.value),
                tls: PgTlsSettings {
                    sslmode: node.enumeration("sslmode").map(|m| m.value.to_string()),
                    sslrootcert: node.str("sslrootcert").map(|p| {
                        if p.value == "system" {
                            PathBuf::from("system")
                        } else {
                            resolve_path(dir, &p.value)
                        }
                    }),
                    sslcert: node.str("sslcert").map(|p| resolve_path(dir, &p.value)),
                    sslkey: node.str("sslkey").map(|p| resolve_path(dir, &p.value)),
                },
            })
        }
        _ => {
            if let Some((name, span)) = postgres_only.iter().find_map(|n| {
                node.str(n)
                    .map(|v| v.span)
                    .or_else(|| node.enumeration(n).map(|v| v.span))
                    .map(|span| (n, span))
            }) {
                return Err(Internal(
                    span,
                    format!(
                        "`{name}` belongs to the PostgreSQL backend: add `backend = \"postgres\"` to the `state` block, or remove `{name}`"
                    ),
                ));
            }
            StateBackendConfig::Local
        }
    };
    Ok(StateConfig { path, backend })
}

/// A schema name berth can put in SQL without quoting surprises.
fn is_sql_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

fn build_ssh(node: &Node, dir: &Path) -> SshSettings {
    let base = SshSettings::default();
    SshSettings {
        user: node.str("user").map_or(base.user, |user| user.value),
        port: node
            .int("port")
            .and_then(|port| u16::try_from(port.value).ok())
            .or(base.port),
        identity_file: node
            .str("identity_file")
            .map(|p| resolve_path(dir, &p.value))
            .or(base.identity_file),
        known_hosts_file: node
            .str("known_hosts_file")
            .map(|p| resolve_path(dir, &p.value))
            .or(base.known_hosts_file),
        strict_host_key_checking: node
            .bool("strict_host_key_checking")
            .unwrap_or(base.strict_host_key_checking),
        options: node.list("options").unwrap_or(base.options),
        allow_command_options: node
            .list("allow_command_options")
            .unwrap_or(base.allow_command_options),
        gather_facts: node.bool("gather_facts").unwrap_or(base.gather_facts),
    }
}

fn build_defaults(node: &Node) -> Result<Defaults, Internal> {
    let base = Defaults::default();
    let mode = match node.enumeration("mode") {
        Some(mode) => Spanned {
            value: enum_value::<MigrationMode>(&mode)?,
            span: mode.span,
        },
        // Point at the `defaults` block, where the user would add `mode`.
        None => Spanned {
            value: base.mode.value,
            span: node.header.clone(),
        },
    };
    Ok(Defaults {
        mode,
        live: node.child("live").map(build_live).unwrap_or(base.live),
        parallelism: u32_of(node, "parallelism").unwrap_or(base.parallelism),
        max_inbound_per_host: u32_of(node, "max_inbound_per_host")
            .unwrap_or(base.max_inbound_per_host),
        max_outbound_per_host: u32_of(node, "max_outbound_per_host")
            .unwrap_or(base.max_outbound_per_host),
        link_bandwidth_mib_s: u64_of(node, "link_bandwidth_mib_s")
            .unwrap_or(base.link_bandwidth_mib_s),
        dirty_rate_mib_s: u64_of(node, "dirty_rate_mib_s").unwrap_or(base.dirty_rate_mib_s),
        vcpu_overcommit: node
            .float("vcpu_overcommit")
            .unwrap_or(base.vcpu_overcommit),
        memory_reserved_mib: node
            .size_mib("memory_reserved")
            .unwrap_or(base.memory_reserved_mib),
        shared_storage: node.list("shared_storage").unwrap_or(base.shared_storage),
        max_guests: u32_of(node, "max_guests").or(base.max_guests),
        rac_anti_affinity: node
            .bool("rac_anti_affinity")
            .unwrap_or(base.rac_anti_affinity),
        shutdown_timeout_s: u64_of(node, "shutdown_timeout_s").unwrap_or(base.shutdown_timeout_s),
        start_timeout_s: u64_of(node, "start_timeout_s").unwrap_or(base.start_timeout_s),
    })
}

fn build_live(node: &Node) -> LiveOptions {
    let base = LiveOptions::default();
    LiveOptions {
        transport: node
            .enumeration("transport")
            .and_then(|t| enum_value::<LiveTransport>(&t).ok())
            .unwrap_or(base.transport),
        stall_timeout_s: u64_of(node, "stall_timeout_s").or(base.stall_timeout_s),
        bandwidth_mib_s: u64_of(node, "bandwidth_mib_s").unwrap_or(base.bandwidth_mib_s),
        parallel_connections: u32_of(node, "parallel_connections")
            .unwrap_or(base.parallel_connections),
        auto_converge: node.bool("auto_converge").unwrap_or(base.auto_converge),
        post_copy: node.bool("post_copy").unwrap_or(base.post_copy),
        max_downtime_ms: u64_of(node, "max_downtime_ms").or(base.max_downtime_ms),
        tls: node.bool("tls").unwrap_or(base.tls),
        compressed: node.bool("compressed").unwrap_or(base.compressed),
    }
}

/// `None` for a block without a label, which validation has already reported.
fn build_host(node: &Node, dir: &Path) -> Option<HostIntent> {
    Some(HostIntent {
        name: node.label.clone()?,
        drain: node.bool("drain").unwrap_or(false),
        evacuate: node.bool("evacuate").unwrap_or(false),
        return_home: node.bool("return_home").unwrap_or(false),
        maintenance: node.bool("maintenance"),
        disabled: node.bool("disabled").unwrap_or(false),
        max_guests: node.int("max_guests").and_then(|max| {
            Some(Spanned {
                value: u32::try_from(max.value).ok()?,
                span: max.span,
            })
        }),
        vcpu_overcommit: node.float("vcpu_overcommit"),
        libvirt_uri: node.str("libvirt_uri").map(|uri| Spanned {
            value: resolve_libvirt_uri(dir, &uri.value),
            span: uri.span,
        }),
        migration_uri: node.str("migration_uri"),
        peer_uri: node.str("peer_uri"),
        memory_reserved_mib: node.size_mib("memory_reserved"),
        sriov_vfs: node.list_with_span("sriov_vfs"),
        span: node.span.clone(),
    })
}

/// `None` for a block without a label, which validation has already reported.
fn build_guest(node: &Node) -> Result<Option<GuestIntent>, Internal> {
    let Some(name) = node.label.clone() else {
        return Ok(None);
    };
    Ok(Some(GuestIntent {
        name,
        host: node.str("host"),
        mode: spanned_mode(node)?,
        span: node.span.clone(),
    }))
}

fn build_rolling(node: &Node) -> Result<RollingMaintenance, Internal> {
    let back_when = match node.enumeration("back_when") {
        Some(when) => enum_value::<BackWhen>(&when)?,
        None => BackWhen::default(),
    };
    Ok(RollingMaintenance {
        hosts: node.spanned_list("hosts").unwrap_or_default(),
        host_command: node.list_with_span("host_command"),
        back_timeout_s: u64_of(node, "back_timeout_s")
            .unwrap_or(RollingMaintenance::DEFAULT_BACK_TIMEOUT_S),
        back_when,
        host_command_expected_s: u64_of(node, "host_command_expected_s")
            .unwrap_or(RollingMaintenance::DEFAULT_EXPECTED_S),
        run: node.str("run"),
        span: node.span.clone(),
    })
}

/// `None` for a block without a label, which validation has already reported.
fn build_rebalance(node: &Node) -> Result<Option<RebalanceIntent>, Internal> {
    let Some(name) = node.label.clone() else {
        return Ok(None);
    };
    let on = match node.enumeration("on") {
        Some(on) => enum_value::<BalanceOn>(&on)?,
        None => BalanceOn::Memory,
    };
    Ok(Some(RebalanceIntent {
        name,
        hosts: node.spanned_list("hosts"),
        on,
        threshold: node
            .float("threshold")
            .unwrap_or(RebalanceIntent::DEFAULT_THRESHOLD),
        max_moves: u32_of(node, "max_moves"),
        max_moved_mib: node.size_mib("max_moved"),
        mode: spanned_mode(node)?,
        span: node.span.clone(),
    }))
}

/// A `rule` block: a placement rule, or a disruption budget. Validation has checked the kind,
/// the name and the required attributes; a block it could not keep is not here.
fn build_rule(node: &Node, config: &mut Config) -> Result<(), Internal> {
    let (Some(kind), Some(name)) = (&node.kind, node.label.clone()) else {
        return Ok(());
    };
    let guests = node.spanned_list("guests").unwrap_or_default();
    if kind.value == "disruption_budget" {
        let max = node.int("max_unavailable").ok_or_else(|| {
            Internal(
                node.header.clone(),
                "internal error: `disruption_budget` has no `max_unavailable`".into(),
            )
        })?;
        config.disruption_budgets.push(DisruptionBudget {
            name,
            cluster: node.str("cluster"),
            guests,
            max_unavailable: Spanned {
                value: u32::try_from(max.value).unwrap_or(u32::MAX),
                span: max.span,
            },
            span: node.span.clone(),
        });
        return Ok(());
    }
    config.rules.push(PlacementRule {
        kind: enum_value::<RuleKind>(kind)?,
        name,
        guests,
        hosts: node.spanned_list("hosts").unwrap_or_default(),
        span: node.span.clone(),
    });
    Ok(())
}

fn spanned_mode(node: &Node) -> Result<Option<Spanned<MigrationMode>>, Internal> {
    match node.enumeration("mode") {
        Some(mode) => Ok(Some(Spanned {
            value: enum_value::<MigrationMode>(&mode)?,
            span: mode.span,
        })),
        None => Ok(None),
    }
}

fn u32_of(node: &Node, name: &str) -> Option<u32> {
    node.int(name)
        .and_then(|value| u32::try_from(value.value).ok())
}

fn u64_of(node: &Node, name: &str) -> Option<u64> {
    node.int(name)
        .and_then(|value| u64::try_from(value.value).ok())
}

/// Maps a schema enum name to the model enum through the model's own serde names, so the two
/// cannot drift apart silently (the schema tests check every name).
fn enum_value<T: DeserializeOwned>(name: &Spanned<&'static str>) -> Result<T, Internal> {
    let deserializer: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        name.value.into_deserializer();
    T::deserialize(deserializer).map_err(|error| {
        Internal(
            name.span.clone(),
            format!("internal error: schema value \"{}\": {error}", name.value),
        )
    })
}

/// A relative path is relative to the configuration directory.
pub(crate) fn resolve_path(dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// `test:nodes/{host}.xml` → `test:///<dir>/nodes/{host}.xml`; `test:/abs` → `test:///abs`;
/// URIs with an authority (`test:///default`, `qemu+ssh://…`) are left alone.
pub(crate) fn resolve_libvirt_uri(dir: &Path, uri: &str) -> String {
    match uri.strip_prefix("test:") {
        Some(rest) if rest.starts_with("//") => uri.to_string(),
        Some(rest) if rest.starts_with('/') => format!("test://{rest}"),
        Some(rest) => format!("test://{}", dir.join(rest).display()),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_uris_resolve_against_the_config_dir() {
        let dir = Path::new("/etc/berth");
        assert_eq!(
            resolve_libvirt_uri(dir, "test:nodes/{host}.xml"),
            "test:///etc/berth/nodes/{host}.xml"
        );
        assert_eq!(
            resolve_libvirt_uri(dir, "test:/srv/n.xml"),
            "test:///srv/n.xml"
        );
        assert_eq!(
            resolve_libvirt_uri(dir, "test:///default"),
            "test:///default"
        );
        assert_eq!(
            resolve_libvirt_uri(dir, "qemu+ssh://root@{host}/system"),
            "qemu+ssh://root@{host}/system"
        );
    }

    #[test]
    fn state_path_and_es_xml_out_resolve_against_the_config_dir() {
        let dir = Path::new("/etc/berth");
        let plain =
            crate::config::parse_str("main.hcl", "inventory {\n  es_xml = \"es.xml\"\n}\n", dir)
                .unwrap();
        assert_eq!(
            plain.state.path,
            PathBuf::from("/etc/berth/state/berth.state.json")
        );
        assert_eq!(plain.inventory.es_xml_out, None);

        let text = "inventory {\n  es_xml = \"es.xml\"\n  es_xml_out = \"out/es.xml\"\n}\nstate {\n  path = \"/var/lib/berth/rack1.json\"\n}\n";
        let set = crate::config::parse_str("main.hcl", text, dir).unwrap();
        assert_eq!(set.state.path, PathBuf::from("/var/lib/berth/rack1.json"));
        assert_eq!(
            set.inventory.es_xml_out,
            Some(PathBuf::from("/etc/berth/out/es.xml"))
        );

        // `path` may be left out (e.g. a PostgreSQL state block): the default file then.
        let empty = crate::config::parse_str(
            "main.hcl",
            "inventory {\n  es_xml = \"es.xml\"\n}\nstate {\n}\n",
            dir,
        )
        .unwrap();
        assert_eq!(empty.state, StateConfig::default_in(dir));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let dir = Path::new("/etc/berth");
        assert_eq!(
            resolve_path(dir, "es.xml"),
            PathBuf::from("/etc/berth/es.xml")
        );
        assert_eq!(
            resolve_path(dir, "/opt/es.xml"),
            PathBuf::from("/opt/es.xml")
        );
    }
}
