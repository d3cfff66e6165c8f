//! The HCL configuration layer end to end: directories of `.hcl` files in, `Config` or
//! rustc-like located errors out. Every error test checks the exact `file:line:col`.

use std::path::{Path, PathBuf};

use berth::config::{
    Config, ConfigError, Defaults, DriftSource, LiveOptions, LiveTransport, MigrationMode, Span,
    SshSettings, load_dir, parse_str, render,
};
use tempfile::TempDir;

const INVENTORY: &str = "inventory {\n  es_xml = \"es.xml\"\n}\n";

fn write_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write config file");
    }
    dir
}

fn load(files: &[(&str, &str)]) -> (TempDir, Result<Config, ConfigError>) {
    let dir = write_dir(files);
    let result = load_dir(dir.path());
    (dir, result)
}

fn load_ok(files: &[(&str, &str)]) -> (TempDir, Config) {
    let (dir, result) = load(files);
    match result {
        Ok(config) => (dir, config),
        Err(error) => panic!(
            "expected a valid configuration, got:\n{}",
            render(&error, false)
        ),
    }
}

/// The rendered (colorless) error of loading `files`.
fn load_err(files: &[(&str, &str)]) -> String {
    let (_dir, result) = load(files);
    match result {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(error) => render(&error, false),
    }
}

/// Asserts that `rendered` contains every one of `needles`.
fn assert_contains(rendered: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            rendered.contains(needle),
            "missing {needle:?} in:\n{rendered}"
        );
    }
}

fn canonical(dir: &TempDir) -> PathBuf {
    dir.path().canonicalize().expect("canonical tempdir")
}

const FULL: &str = r#"inventory {
  es_xml       = "es.xml"
  libvirt_uri  = "test:nodes/{host}.xml"
  drift_source = "libvirt"
  volume_command = ["/usr/local/bin/vol", "{action}", "--", "{volume}", "{guest}"]
  ssh {
    user = "admin"
    port = 2222
    identity_file = "keys/id_ed25519"
    known_hosts_file = "/etc/berth/known_hosts"
    strict_host_key_checking = false
    options = ["ConnectTimeout=5"]
    gather_facts = true
  }
}
defaults {
  mode = "live"
  parallelism = 8
  max_inbound_per_host = 3
  max_outbound_per_host = 1
  vcpu_overcommit = 1.5
  memory_reserved = "16GiB"
  shared_storage = ["/EXAVMIMAGES"]
  live {
    bandwidth_mib_s = 500
    parallel_connections = 4
    auto_converge = true
    post_copy = true
    max_downtime_ms = 300
    tls = true
    compressed = true
  }
}
host "exa01adm01" {
  drain = true
  max_guests = 4
  libvirt_uri = "qemu+ssh://root@exa01adm01/system"
  memory_reserved = "32G"
}
host "exa01adm02" {
  disabled = true
}
guest "exa01adm01vm01" {
  host = "exa01adm02"
  mode = "offline_force"
}
guest "exa01adm01vm02" {}
"#;

#[test]
fn a_full_config_loads_into_the_model() {
    let (dir, config) = load_ok(&[("berth.hcl", FULL)]);
    let root = canonical(&dir);
    assert_eq!(config.dir, root);
    assert_eq!(config.files.len(), 1);
    assert!(config.files[0].name.ends_with("berth.hcl"));

    let inventory = &config.inventory;
    assert_eq!(inventory.es_xml.value, root.join("es.xml"));
    assert_eq!(
        inventory.libvirt_uri.value,
        format!("test://{}/nodes/{{host}}.xml", root.display())
    );
    assert_eq!(
        inventory.drift_source.as_ref().map(|d| d.value),
        Some(DriftSource::Libvirt)
    );
    assert_eq!(
        inventory.volume_command.as_deref(),
        Some(
            &[
                "/usr/local/bin/vol",
                "{action}",
                "--",
                "{volume}",
                "{guest}"
            ]
            .map(String::from)[..]
        )
    );
    assert_eq!(
        inventory.ssh,
        SshSettings {
            user: "admin".into(),
            port: Some(2222),
            identity_file: Some(root.join("keys/id_ed25519")),
            known_hosts_file: Some(PathBuf::from("/etc/berth/known_hosts")),
            strict_host_key_checking: false,
            options: vec!["ConnectTimeout=5".into()],
            allow_command_options: vec![],
            gather_facts: true,
        }
    );

    let defaults = &config.defaults;
    assert_eq!(defaults.mode.value, MigrationMode::Live);
    let (_, mode_line, mode_column) = config.line_col(&defaults.mode.span);
    assert_eq!((mode_line, mode_column), (17, 10));
    assert_eq!(
        defaults.live,
        LiveOptions {
            transport: LiveTransport::PeerToPeer,
            stall_timeout_s: None,
            bandwidth_mib_s: 500,
            parallel_connections: 4,
            auto_converge: true,
            post_copy: true,
            max_downtime_ms: Some(300),
            tls: true,
            compressed: true,
        }
    );
    assert_eq!(
        (
            defaults.parallelism,
            defaults.max_inbound_per_host,
            defaults.max_outbound_per_host
        ),
        (8, 3, 1)
    );
    assert_eq!(defaults.vcpu_overcommit, 1.5);
    assert_eq!(defaults.memory_reserved_mib, 16 * 1024);
    assert_eq!(defaults.shared_storage, vec!["/EXAVMIMAGES".to_string()]);

    assert_eq!(
        config.hosts.keys().collect::<Vec<_>>(),
        ["exa01adm01", "exa01adm02"]
    );
    let adm01 = &config.hosts["exa01adm01"];
    assert!(adm01.drain && !adm01.disabled);
    assert_eq!(adm01.max_guests.as_ref().map(|m| m.value), Some(4));
    assert_eq!(
        adm01.libvirt_uri.as_ref().map(|u| u.value.as_str()),
        Some("qemu+ssh://root@exa01adm01/system")
    );
    assert_eq!(adm01.memory_reserved_mib, Some(32 * 1024));
    let adm02 = &config.hosts["exa01adm02"];
    assert!(
        adm02.disabled
            && !adm02.drain
            && adm02.max_guests.is_none()
            && adm02.memory_reserved_mib.is_none()
    );

    let vm01 = &config.guests["exa01adm01vm01"];
    assert_eq!(
        vm01.host.as_ref().map(|h| h.value.as_str()),
        Some("exa01adm02")
    );
    assert_eq!(
        vm01.mode.as_ref().map(|m| m.value),
        Some(MigrationMode::OfflineForce)
    );
    let vm02 = &config.guests["exa01adm01vm02"];
    assert!(vm02.host.is_none() && vm02.mode.is_none());

    // Spans point at what was written.
    let (file, line, column) = config.line_col(&vm01.host.as_ref().unwrap().span);
    assert!(file.ends_with("berth.hcl"));
    assert_eq!((line, column), (44, 10));
    assert_eq!(config.line_col(&vm01.name.span), (file.clone(), 43, 7));
    assert_eq!(config.line_col(&vm01.span), (file.clone(), 43, 1));
    assert_eq!(config.line_col(&adm01.name.span).1, 34);
}

#[test]
fn defaults_apply_when_blocks_are_absent() {
    let (dir, config) = load_ok(&[("main.hcl", INVENTORY)]);
    let root = canonical(&dir);
    assert_eq!(config.defaults, Defaults::default());
    assert_eq!(config.inventory.ssh, SshSettings::default());
    assert!(config.inventory.ssh.strict_host_key_checking);
    assert_eq!(
        config.inventory.libvirt_uri.value,
        format!("test://{}/nodes/{{host}}.xml", root.display())
    );
    assert_eq!(config.inventory.drift_source, None);
    assert_eq!(config.inventory.volume_command, None);
    assert!(config.guests.is_empty() && config.hosts.is_empty());
}

#[test]
fn absent_attributes_of_a_present_block_take_their_defaults() {
    let text =
        format!("{INVENTORY}defaults {{\n  parallelism = 2\n  live {{\n    tls = true\n  }}\n}}\n");
    let config = parse_str("main.hcl", &text, Path::new("/etc/berth")).expect("valid");
    let expected = Defaults {
        parallelism: 2,
        live: LiveOptions {
            tls: true,
            ..LiveOptions::default()
        },
        ..Defaults::default()
    };
    assert_eq!(config.defaults.parallelism, expected.parallelism);
    assert_eq!(config.defaults.live, expected.live);
    assert_eq!(config.defaults.mode.value, MigrationMode::Offline);
    // The defaulted mode points at the `defaults` block, where it would be written.
    assert_eq!(
        config.line_col(&config.defaults.mode.span),
        ("main.hcl".into(), 4, 1)
    );
    assert_eq!(config.defaults.shared_storage, expected.shared_storage);
}

#[test]
fn live_transport_peer_uris_and_timeouts_load_into_the_model() {
    let text = format!(
        "{INVENTORY}defaults {{\n  shutdown_timeout_s = 30\n  start_timeout_s = 20\n  live {{\n    transport = \"client\"\n    stall_timeout_s = 15\n  }}\n}}\nhost \"adm02\" {{\n  peer_uri = \"qemu+tls://adm02-mig/system\"\n}}\n"
    );
    let config = parse_str("main.hcl", &text, Path::new("/etc/berth")).expect("valid");
    assert_eq!(config.defaults.live.transport, LiveTransport::Client);
    assert_eq!(config.defaults.live.stall_timeout_s, Some(15));
    assert_eq!(
        (
            config.defaults.shutdown_timeout_s,
            config.defaults.start_timeout_s
        ),
        (30, 20)
    );
    assert_eq!(
        config.hosts["adm02"]
            .peer_uri
            .as_ref()
            .map(|u| u.value.as_str()),
        Some("qemu+tls://adm02-mig/system")
    );
    // Absent: peer-to-peer, the default timeouts.
    let plain = parse_str("main.hcl", INVENTORY, Path::new("/etc/berth")).expect("valid");
    assert_eq!(plain.defaults.live.transport, LiveTransport::PeerToPeer);
    assert_eq!(
        (
            plain.defaults.shutdown_timeout_s,
            plain.defaults.start_timeout_s,
            plain.defaults.live.stall_timeout_s
        ),
        (300, 120, None)
    );
    // A transport berth does not know is a diagnostic naming the allowed ones.
    let bad = format!("{INVENTORY}defaults {{\n  live {{\n    transport = \"tunnel\"\n  }}\n}}\n");
    let err = parse_str("main.hcl", &bad, Path::new("/etc/berth")).expect_err("unknown transport");
    let rendered = format!("{err:?}");
    assert!(
        rendered.contains("peer_to_peer") && rendered.contains("client"),
        "{rendered}"
    );
}

#[test]
fn blocks_split_over_files_are_merged() {
    let (_dir, config) = load_ok(&[
        ("10-inventory.hcl", INVENTORY),
        ("20-hosts.hcl", "host \"adm01\" {\n  drain = true\n}\n"),
        (
            "30-guests.hcl",
            "guest \"vm01\" {\n  host = \"adm02\"\n}\n\nguest \"vm02\" {\n  mode = \"live\"\n}\n",
        ),
        ("notes.txt", "not a config file {"),
    ]);
    assert_eq!(config.files.len(), 3);
    assert!(config.hosts["adm01"].drain);
    assert_eq!(config.guests.len(), 2);
    let (file, line, column) = config.line_col(&config.guests["vm02"].mode.as_ref().unwrap().span);
    assert!(file.ends_with("30-guests.hcl"), "{file}");
    assert_eq!((line, column), (6, 10));
}

#[test]
fn null_counts_as_absent() {
    let text = format!("{INVENTORY}guest \"vm01\" {{\n  host = null\n}}\n");
    let config = parse_str("main.hcl", &text, Path::new("/etc/berth")).expect("valid");
    assert_eq!(config.guests["vm01"].host, None);
}

#[test]
fn a_directory_without_hcl_files_is_named() {
    let dir = write_dir(&[("readme.txt", "hello")]);
    let error = load_dir(dir.path()).expect_err("no .hcl files");
    assert!(matches!(error, ConfigError::NoFiles { .. }));
    assert_contains(
        &render(&error, false),
        &["no .hcl files in", &dir.path().display().to_string()],
    );
}

#[test]
fn a_missing_directory_is_an_io_error_naming_it() {
    let error = load_dir(Path::new("/nonexistent/berth-config")).expect_err("missing dir");
    assert!(matches!(error, ConfigError::Io { .. }));
    assert_contains(
        &error.to_string(),
        &["cannot read /nonexistent/berth-config"],
    );
}

#[test]
fn unknown_attribute_suggests_the_close_name() {
    let text = format!("{INVENTORY}host \"exa01adm01\" {{\n  drian = true\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:3]",
            "unknown attribute `drian` in `host \"exa01adm01\"`",
            "help: did you mean `drain`?",
        ],
    );
}

#[test]
fn an_attribute_in_the_wrong_block_says_where_it_belongs() {
    let text = format!("{INVENTORY}defaults {{\n  post_copy = true\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:3]",
            "unknown attribute `post_copy` in `defaults`",
            "`post_copy` belongs in the `defaults.live` block",
        ],
    );
}

#[test]
fn bad_mode_lists_the_valid_values() {
    let text = format!("{INVENTORY}guest \"vm01\" {{\n  mode = \"ofline\"\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:10]",
            "invalid value \"ofline\" for `mode`",
            "did you mean \"offline\"? valid values: \"offline\", \"offline_force\", \"live\"",
        ],
    );
}

#[test]
fn an_unquoted_enum_value_asks_for_quotes() {
    let text = format!("{INVENTORY}defaults {{\n  mode = live\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:10]",
            "`mode` must be a string, found the bare word `live`",
            "put the value in quotes: `mode = \"live\"`",
        ],
    );
}

#[test]
fn duplicate_guest_block_names_both_places() {
    let text = format!(
        "{INVENTORY}guest \"vm01\" {{\n  host = \"adm01\"\n}}\n\n\n\n\nguest \"vm01\" {{\n  host = \"adm02\"\n}}\n"
    );
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "`guest \"vm01\"` is defined twice (first at ",
            "file.hcl:4:1)",
            "file.hcl:11:1]",
            "defined again here",
            "`guest \"vm01\"` first defined here",
        ],
    );
}

#[test]
fn duplicate_inventory_across_two_files_names_both_files() {
    let rendered = load_err(&[("a.hcl", INVENTORY), ("b.hcl", &format!("\n{INVENTORY}"))]);
    assert_contains(
        &rendered,
        &[
            "`inventory` is defined twice (first at ",
            "a.hcl:1:1)",
            "b.hcl:2:1]",
            "a.hcl:1:1]",
            "`inventory` first defined here",
        ],
    );
}

#[test]
fn wrong_type_names_the_expected_type() {
    let text = format!("{INVENTORY}host \"adm01\" {{\n  drain = \"yes\"\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:11]",
            "`drain` must be a boolean, found a string",
            "write `drain = true` or `drain = false`",
        ],
    );
}

#[test]
fn missing_es_xml_points_at_the_inventory_block() {
    let rendered = load_err(&[(
        "file.hcl",
        "\ninventory {\n  drift_source = \"es_xml\"\n}\n",
    )]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:2:1]",
            "`inventory` is missing the required attribute `es_xml`",
            "add `es_xml = \"…\"`",
        ],
    );
}

#[test]
fn a_missing_inventory_block_is_reported() {
    let rendered = load_err(&[("file.hcl", "host \"adm01\" {\n  drain = true\n}\n")]);
    assert_contains(
        &rendered,
        &["file.hcl:1:1]", "no `inventory` block in the configuration"],
    );
}

#[test]
fn a_block_without_its_label() {
    let text = format!("{INVENTORY}guest {{\n  host = \"adm01\"\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:4:1]",
            "the `guest` block needs a label: the guest name",
            "write `guest \"NAME\" {`",
        ],
    );
}

#[test]
fn a_block_with_too_many_labels() {
    let text = format!("{INVENTORY}host \"adm01\" \"adm02\" {{\n  drain = true\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:4:14]",
            "the `host` block takes one label (the host name), found 2",
        ],
    );
}

#[test]
fn a_label_on_an_unlabeled_block() {
    let rendered = load_err(&[(
        "file.hcl",
        "inventory \"main\" {\n  es_xml = \"es.xml\"\n}\n",
    )]);
    assert_contains(
        &rendered,
        &["file.hcl:1:11]", "the `inventory` block takes no label"],
    );
}

#[test]
fn bad_size_explains_the_units() {
    let text = format!("{INVENTORY}defaults {{\n  memory_reserved = \"16 XB\"\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:21]",
            "invalid size \"16 XB\" for `memory_reserved`: unknown unit `XB`",
            "GiB",
        ],
    );
}

#[test]
fn a_size_without_quotes_is_a_type_error() {
    let text = format!("{INVENTORY}host \"adm01\" {{\n  memory_reserved = 16\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:21]",
            "`memory_reserved` must be a size string, found a number",
        ],
    );
}

#[test]
fn zero_or_negative_parallelism_is_rejected() {
    for (value, found) in [("0", "found 0"), ("-2", "found -2")] {
        let text = format!("{INVENTORY}defaults {{\n  parallelism = {value}\n}}\n");
        let rendered = load_err(&[("file.hcl", &text)]);
        assert_contains(
            &rendered,
            &["file.hcl:5:17]", "`parallelism` must be at least 1", found],
        );
    }
}

#[test]
fn vcpu_overcommit_below_one_is_rejected() {
    let text = format!("{INVENTORY}defaults {{\n  vcpu_overcommit = 0.5\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:21]",
            "`vcpu_overcommit` must be at least 1.0, found 0.5",
        ],
    );
}

#[test]
fn a_fraction_where_a_count_is_expected() {
    let text = format!("{INVENTORY}host \"adm01\" {{\n  max_guests = 2.5\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:16]",
            "`max_guests` must be a whole number, found 2.5",
        ],
    );
}

#[test]
fn a_list_element_of_the_wrong_type_is_pointed_at() {
    let text = "inventory {\n  es_xml = \"es.xml\"\n  volume_command = [\"vol\", 42]\n}\n";
    let rendered = load_err(&[("file.hcl", text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:3:28]",
            "every element of `volume_command` must be a non-empty string, found a number",
        ],
    );
}

#[test]
fn sriov_vfs_pools_load_in_canonical_form_and_order() {
    let text = format!(
        "{INVENTORY}host \"adm02\" {{\n  sriov_vfs = [\"0000:3B:02.1\", \"0000:5e:02.1\", \"0000:3b:02.0\"]\n}}\nhost \"adm03\" {{}}\n"
    );
    let (_dir, config) = load_ok(&[("file.hcl", &text)]);
    let pool = config.hosts["adm02"].sriov_vfs.as_ref().expect("a pool");
    assert_eq!(pool.value, ["0000:3b:02.1", "0000:5e:02.1", "0000:3b:02.0"]);
    assert_eq!(config.line_col(&pool.span).1, 5);
    assert!(config.hosts["adm03"].sriov_vfs.is_none());
}

#[test]
fn a_bad_or_repeated_virtual_function_is_pointed_at() {
    let bad = format!(
        "{INVENTORY}host \"adm02\" {{\n  sriov_vfs = [\"0000:3b:02.0\", \"3b:02.1\"]\n}}\n"
    );
    assert_contains(
        &load_err(&[("file.hcl", &bad)]),
        &[
            "file.hcl:5:32]",
            "invalid PCI address \"3b:02.1\" in `sriov_vfs`: expected dddd:bb:ss.f in hex",
            "not a PCI address",
            "as `lspci -D` prints it",
        ],
    );
    let twice = format!(
        "{INVENTORY}host \"adm02\" {{\n  sriov_vfs = [\"0000:3b:02.0\", \"0000:3B:02.0\"]\n}}\n"
    );
    assert_contains(
        &load_err(&[("file.hcl", &twice)]),
        &[
            "file.hcl:5:32]",
            "`sriov_vfs` lists 0000:3b:02.0 twice",
            "already listed",
        ],
    );
    let not_a_list = format!("{INVENTORY}host \"adm02\" {{\n  sriov_vfs = \"0000:3b:02.0\"\n}}\n");
    assert_contains(
        &load_err(&[("file.hcl", &not_a_list)]),
        &[
            "file.hcl:5:15]",
            "`sriov_vfs` must be a list of strings, found a string",
        ],
    );
}

#[test]
fn an_interpolation_is_not_evaluated() {
    let text = "inventory {\n  es_xml = \"${path}/es.xml\"\n}\n";
    let rendered = load_err(&[("file.hcl", text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:2:12]",
            "`es_xml` must be a string, found a string template",
            "does not evaluate expressions",
        ],
    );
}

#[test]
fn a_block_written_as_an_attribute() {
    let text = "inventory {\n  es_xml = \"es.xml\"\n  ssh = { user = \"root\" }\n}\n";
    let rendered = load_err(&[("file.hcl", text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:3:3]",
            "unknown attribute `ssh` in `inventory`",
            "`ssh` is a block, not an attribute",
        ],
    );
}

#[test]
fn single_line_block_with_two_attributes_explains_the_rule() {
    let text = format!(
        "{INVENTORY}guest \"exa01adm01vm01\" {{ host = \"exa01adm02\"  mode = \"live\" }}\n"
    );
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:4:47]",
            "a block written on one line may hold only one attribute",
            "put each attribute on its own line:",
            "guest \"exa01adm01vm01\" {\n",
            "  mode = \"live\"\n",
        ],
    );
}

#[test]
fn a_one_attribute_single_line_block_is_fine() {
    let text = format!("{INVENTORY}host \"adm02\" {{ drain = true }}\n");
    let (_dir, config) = load_ok(&[("file.hcl", &text)]);
    assert!(config.hosts["adm02"].drain);
}

#[test]
fn unknown_top_level_block_suggests_the_close_name() {
    let text = format!("{INVENTORY}\ngust \"vm01\" {{\n  host = \"adm01\"\n}}\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:1]",
            "unknown block `gust` at the top level",
            "did you mean `guest`?",
        ],
    );
}

#[test]
fn unclosed_brace_is_a_located_syntax_error() {
    let text = format!("{INVENTORY}host \"adm01\" {{\n  drain = true\n");
    let rendered = load_err(&[("file.hcl", &text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:15]",
            "unexpected end of file: a block is not closed",
            "this is never closed",
            "add the missing `}`",
        ],
    );
}

#[test]
fn an_attribute_set_twice_is_a_syntax_error() {
    let text = "inventory {\n  es_xml = \"a.xml\"\n  es_xml = \"b.xml\"\n}\n";
    let rendered = load_err(&[("file.hcl", text)]);
    assert_contains(
        &rendered,
        &[
            "file.hcl:3:3]",
            "attribute `es_xml` is set twice in the same block",
        ],
    );
}

#[test]
fn syntax_errors_in_several_files_are_all_reported() {
    let rendered = load_err(&[
        ("a.hcl", "inventory {\n"),
        ("b.hcl", "host \"x\" {\n  drain = = true\n}\n"),
    ]);
    assert_contains(
        &rendered,
        &[
            "a.hcl:1:12]",
            "b.hcl:2:11]",
            "2 errors in the configuration",
        ],
    );
}

#[test]
fn independent_mistakes_are_reported_together() {
    let text = format!(
        "{INVENTORY}host \"adm01\" {{\n  drian = true\n}}\ndefaults {{\n  mode = \"teleport\"\n}}\n"
    );
    let (_dir, result) = load(&[("file.hcl", &text)]);
    let error = result.expect_err("two mistakes");
    assert_eq!(error.errors().len(), 2);
    let rendered = render(&error, false);
    assert_contains(
        &rendered,
        &[
            "file.hcl:5:3]",
            "unknown attribute `drian`",
            "file.hcl:8:10]",
            "invalid value \"teleport\" for `mode`",
            "2 errors in the configuration",
        ],
    );
    let plain = error.plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with("file.hcl:5:3: unknown attribute `drian` in `host \"adm01\"`"),
        "{plain}"
    );
    assert!(
        lines[1].ends_with("file.hcl:8:10: invalid value \"teleport\" for `mode`"),
        "{plain}"
    );
}

#[test]
fn color_is_only_used_when_asked_for() {
    let text = format!("{INVENTORY}host \"adm01\" {{\n  drian = true\n}}\n");
    let (_dir, result) = load(&[("file.hcl", &text)]);
    let error = result.expect_err("typo");
    assert!(!render(&error, false).contains('\u{1b}'));
    assert!(render(&error, true).contains('\u{1b}'));
}

#[test]
fn later_stages_report_at_configured_values() {
    let text = format!(
        "{INVENTORY}guest \"vm01\" {{\n  host = \"adm09\"\n}}\nhost \"adm07\" {{\n  drain = true\n}}\n"
    );
    let config = parse_str("berth.hcl", &text, Path::new("/etc/berth")).expect("valid");
    let target = config.guests["vm01"].host.clone().expect("host set");
    assert_eq!(
        config.line_col(&target.span),
        ("berth.hcl".to_string(), 5, 10)
    );

    let unknown = config.error_at(
        &target.span,
        "unknown host `adm09`",
        "not a host in es.xml",
        Some("known hosts: adm01, adm02".into()),
    );
    assert_eq!(
        unknown.location().map(ToString::to_string).as_deref(),
        Some("berth.hcl:5:10")
    );
    let drained = config.error_at_with_notes(
        &config.hosts["adm07"].name.span,
        "host `adm07` cannot be drained",
        "nowhere to move its guests",
        None,
        vec![(
            config.guests["vm01"].span.clone(),
            "this guest is pinned".into(),
        )],
    );
    let both = ConfigError::many(vec![unknown, drained]);
    let rendered = render(&both, false);
    assert_contains(
        &rendered,
        &[
            "berth.hcl:5:10]",
            "unknown host `adm09`",
            "not a host in es.xml",
            "help: known hosts: adm01, adm02",
            "berth.hcl:7:6]",
            "this guest is pinned",
            "2 errors in the configuration",
        ],
    );
    assert!(ConfigError::check(Vec::new()).is_ok());
}

#[test]
fn a_span_outside_the_files_does_not_panic() {
    let config = parse_str("berth.hcl", INVENTORY, Path::new("/etc/berth")).expect("valid");
    let bogus = Span {
        file: 7,
        range: 0..3,
    };
    assert_eq!(config.line_col(&bogus), ("<unknown>".to_string(), 0, 0));
    let rendered = render(&config.error_at(&bogus, "odd", "here", None), false);
    assert_contains(&rendered, &["odd"]);
    let past_end = Span {
        file: 0,
        range: 1000..2000,
    };
    assert_eq!(config.line_col(&past_end).1, 4);
    render(
        &config.error_at(&past_end, "past the end", "here", None),
        false,
    );
}

#[test]
fn the_fingerprint_covers_names_and_contents_but_not_the_directory() {
    let (_a, one) = load_ok(&[
        ("main.hcl", INVENTORY),
        ("hosts.hcl", "host \"x\" {\n  drain = true\n}\n"),
    ]);
    let (_b, same) = load_ok(&[
        ("hosts.hcl", "host \"x\" {\n  drain = true\n}\n"),
        ("main.hcl", INVENTORY),
    ]);
    let (_c, changed) = load_ok(&[
        ("main.hcl", INVENTORY),
        ("hosts.hcl", "host \"x\" {\n  drain = false\n}\n"),
    ]);
    let (_d, renamed) = load_ok(&[
        ("main.hcl", INVENTORY),
        ("other.hcl", "host \"x\" {\n  drain = true\n}\n"),
    ]);
    assert_eq!(one.sha256().len(), 64);
    assert_eq!(one.sha256(), same.sha256());
    assert_ne!(one.sha256(), changed.sha256());
    assert_ne!(one.sha256(), renamed.sha256());
}

#[test]
fn the_state_block_chooses_the_local_file_or_a_postgres_workspace() {
    use berth::config::{PostgresSettings, StateBackendConfig};
    let (dir, cfg) = load_ok(&[("main.hcl", INVENTORY)]);
    assert_eq!(cfg.state.backend, StateBackendConfig::Local);
    assert_eq!(
        cfg.state.path,
        canonical(&dir).join("state/berth.state.json")
    );

    let pg = "state {\n  backend   = \"postgres\"\n  workspace = \"rack01\"\n}\n";
    let (_dir, cfg) = load_ok(&[("main.hcl", INVENTORY), ("state.hcl", pg)]);
    assert_eq!(
        cfg.state.backend,
        StateBackendConfig::Postgres(PostgresSettings {
            url: None,
            workspace: "rack01".into(),
            schema: "berth".into(),
            tls: Default::default(),
        })
    );
    let full = "state {\n  backend = \"postgres\"\n  url = \"postgresql://berth@db/berth\"\n  schema = \"ops_state\"\n}\n";
    let (_dir, cfg) = load_ok(&[("main.hcl", INVENTORY), ("state.hcl", full)]);
    assert_eq!(
        cfg.state.backend,
        StateBackendConfig::Postgres(PostgresSettings {
            url: Some("postgresql://berth@db/berth".into()),
            workspace: "default".into(),
            schema: "ops_state".into(),
            tls: Default::default(),
        })
    );
    // libpq's TLS parameters: paths against the configuration directory, `system` as is.
    let tls = "state {\n  backend = \"postgres\"\n  sslmode = \"verify-full\"\n  sslrootcert = \"certs/ca.pem\"\n  sslcert = \"/etc/berth/client.pem\"\n  sslkey = \"client.key\"\n}\n";
    let (dir, cfg) = load_ok(&[("main.hcl", INVENTORY), ("state.hcl", tls)]);
    let StateBackendConfig::Postgres(settings) = cfg.state.backend else {
        panic!("not postgres: {:?}", cfg.state.backend)
    };
    let dir = canonical(&dir);
    assert_eq!(
        settings.tls,
        berth::config::PgTlsSettings {
            sslmode: Some("verify-full".into()),
            sslrootcert: Some(dir.join("certs/ca.pem")),
            sslcert: Some("/etc/berth/client.pem".into()),
            sslkey: Some(dir.join("client.key")),
        }
    );
    let system = "state {\n  backend = \"postgres\"\n  sslrootcert = \"system\"\n}\n";
    let (_dir, cfg) = load_ok(&[("main.hcl", INVENTORY), ("state.hcl", system)]);
    let StateBackendConfig::Postgres(settings) = cfg.state.backend else {
        panic!("not postgres")
    };
    assert_eq!(settings.tls.sslrootcert, Some("system".into()));
}

#[test]
fn postgres_attributes_without_the_postgres_backend_are_located_errors() {
    let stray = "state {\n  path = \"s.json\"\n  workspace = \"rack01\"\n}\n";
    let rendered = load_err(&[("main.hcl", INVENTORY), ("state.hcl", stray)]);
    assert_contains(
        &rendered,
        &[
            "`workspace` belongs to the PostgreSQL backend",
            "backend = \"postgres\"",
            "state.hcl:3:",
        ],
    );
    let bad_schema = "state {\n  backend = \"postgres\"\n  schema = \"Drop Table\"\n}\n";
    let rendered = load_err(&[("main.hcl", INVENTORY), ("state.hcl", bad_schema)]);
    assert_contains(&rendered, &["is not a plain SQL name", "state.hcl:3:"]);
    let bad_backend = "state {\n  backend = \"s3\"\n}\n";
    let rendered = load_err(&[("main.hcl", INVENTORY), ("state.hcl", bad_backend)]);
    assert_contains(&rendered, &["postgres", "state.hcl:2:"]);
    let stray_tls = "state {\n  path = \"s.json\"\n  sslmode = \"require\"\n}\n";
    let rendered = load_err(&[("main.hcl", INVENTORY), ("state.hcl", stray_tls)]);
    assert_contains(
        &rendered,
        &[
            "`sslmode` belongs to the PostgreSQL backend",
            "state.hcl:3:",
        ],
    );
    let bad_mode = "state {\n  backend = \"postgres\"\n  sslmode = \"verify\"\n}\n";
    let rendered = load_err(&[("main.hcl", INVENTORY), ("state.hcl", bad_mode)]);
    assert_contains(&rendered, &["verify-full", "state.hcl:3:"]);
}
