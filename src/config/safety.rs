//! Checks that keep configured values data: names that go into URIs, SSH destinations and
//! command lines ([`crate::names`]), SSH options that would run local commands, libvirt URIs
//! that would override berth's SSH settings, volume command templates whose placeholders
//! could become part of a larger argument or be read as options, and a state file outside the
//! configuration directory. Each problem is a located error; all are reported together.

use std::path::{Component, Path, PathBuf};

use crate::names::{check_guest_name, check_host_name, reserved_uri_params};
use crate::remote::{COMMAND_OPTIONS, forbidden_option};

use super::error::{ConfigError, located};
use super::model::{SourceFile, Span, Spanned};
use super::validate::Node;

/// The placeholders of `volume_command` and `volume_check_command`.
pub const VOLUME_PLACEHOLDERS: &[&str] = &["{action}", "{volume}", "{guest}", "{host}"];

/// Placeholders that carry es.xml data: they must follow a `--` element (`{action}` is
/// always `attach` or `detach` and may come before).
const DATA_PLACEHOLDERS: &[&str] = &["{volume}", "{guest}", "{host}"];

struct Checker<'a> {
    files: &'a [SourceFile],
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, span: &Span, message: String, label: &str, help: Option<String>) {
        self.errors
            .push(located(self.files, span, message, label, help, Vec::new()));
    }

    fn host_name(&mut self, name: &Spanned<String>, what: &str) {
        if let Err(why) = check_host_name(&name.value) {
            self.error(
                &name.span,
                format!("{what} `{}` is not a valid host name: {why}", name.value),
                "not a host name",
                None,
            );
        }
    }

    fn guest_name(&mut self, name: &Spanned<String>, what: &str) {
        if let Err(why) = check_guest_name(&name.value) {
            self.error(
                &name.span,
                format!("{what} `{}` is not a valid guest name: {why}", name.value),
                "not a guest name",
                None,
            );
        }
    }
}

/// Runs every check on the validated tree. `dir` is the configuration directory (absolute).
pub(crate) fn check(files: &[SourceFile], root: &Node, dir: &Path) -> Result<(), ConfigError> {
    let mut c = Checker {
        files,
        errors: Vec::new(),
    };
    if let Some(inventory) = root.child("inventory") {
        check_inventory(&mut c, inventory);
    }
    for host in root.children("host") {
        if let Some(label) = &host.label {
            c.host_name(label, "host");
        }
        for what in URI_ATTRIBUTES {
            if let Some(uri) = host.str(what) {
                check_uri(&mut c, &uri, what);
            }
        }
    }
    for guest in root.children("guest") {
        if let Some(label) = &guest.label {
            c.guest_name(label, "guest");
        }
        if let Some(host) = guest.str("host") {
            c.host_name(&host, "host");
        }
    }
    for node in root.children("rule").chain(root.children("rebalance")) {
        for guest in node.spanned_list("guests").unwrap_or_default() {
            c.guest_name(&guest, "guest");
        }
        for host in node.spanned_list("hosts").unwrap_or_default() {
            c.host_name(&host, "host");
        }
    }
    if let Some(rolling) = root.child("rolling_maintenance") {
        for host in rolling.spanned_list("hosts").unwrap_or_default() {
            c.host_name(&host, "host");
        }
        if let Some(argv) = rolling.spanned_list("host_command") {
            check_host_command(&mut c, &argv);
        }
    }
    if let Some(path) = root.child("state").and_then(|state| state.str("path")) {
        check_state_path(&mut c, &path, dir);
    }
    if let Some(out) = root
        .child("inventory")
        .and_then(|inventory| inventory.str("es_xml_out"))
    {
        check_es_xml_out(&mut c, root, &out, dir);
    }
    ConfigError::check(c.errors)
}

/// `es_xml_out` is replaced by the write-back: it may not name es.xml itself (written in place,
/// es.xml gets a backup first; through `es_xml_out` it would not), the state or its lock and
/// recovery files, or a `*.hcl` file of the configuration.
fn check_es_xml_out(c: &mut Checker, root: &Node, out: &Spanned<String>, dir: &Path) {
    let resolve = |path: &str| lexical(&dir.join(path));
    let same = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    let target = resolve(&out.value);
    let es_xml = root
        .child("inventory")
        .and_then(|inventory| inventory.str("es_xml"))
        .map_or_else(|| "es.xml".to_string(), |p| p.value);
    let state = resolve(
        &root
            .child("state")
            .and_then(|state| state.str("path"))
            .map_or_else(
                || super::model::StateConfig::DEFAULT_PATH.to_string(),
                |p| p.value,
            ),
    );
    let beside_state = |suffix: &str| {
        let mut name = state.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    let overwritten = if same(&target, &resolve(&es_xml)) {
        Some((
            "es.xml itself",
            "leave `es_xml_out` out to write es.xml back in place (after a backup), or name a file of its own",
        ))
    } else if [
        state.clone(),
        beside_state(".lock"),
        beside_state(".recovery"),
    ]
    .iter()
    .any(|s| same(&target, s))
    {
        Some((
            "the state",
            "name a file of its own for the es.xml berth writes",
        ))
    } else if target.parent() == Some(lexical(dir).as_path())
        && target.extension().is_some_and(|e| e == "hcl")
    {
        Some((
            "the configuration (a *.hcl file berth reads)",
            "name a file of its own for the es.xml berth writes",
        ))
    } else {
        None
    };
    if let Some((what, help)) = overwritten {
        c.error(
            &out.span,
            format!("`es_xml_out = \"{}\"` would overwrite {what}", out.value),
            "overwritten by the write-back",
            Some(help.to_string()),
        );
    }
}

/// `path` with `.` and `..` taken out without asking the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn check_inventory(c: &mut Checker, inventory: &Node) {
    for what in URI_ATTRIBUTES {
        if let Some(uri) = inventory.str(what) {
            check_uri(c, &uri, what);
        }
    }
    for name in ["volume_command", "volume_check_command"] {
        if let Some(argv) = inventory.spanned_list(name) {
            check_volume_command(c, name, &argv);
        }
    }
    let Some(ssh) = inventory.child("ssh") else {
        return;
    };
    let allowed = ssh
        .spanned_list("allow_command_options")
        .unwrap_or_default();
    for keyword in &allowed {
        if !COMMAND_OPTIONS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&keyword.value))
        {
            c.error(
                &keyword.span,
                format!(
                    "`{}` is not an ssh option that runs commands; `allow_command_options` takes only those",
                    keyword.value
                ),
                "not a command option",
                Some(format!("one of: {}", COMMAND_OPTIONS.join(", "))),
            );
        }
    }
    let allowed: Vec<String> = allowed.into_iter().map(|k| k.value).collect();
    for option in ssh.spanned_list("options").unwrap_or_default() {
        if let Some(why) = forbidden_option(&option.value, &allowed) {
            c.error(
                &option.span,
                format!("ssh option `{}` is refused: {why}", option.value),
                "runs a local command",
                Some(
                    "`berth plan` runs SSH (facts) and so would run it, in CI on pull requests too; \
                     if the command is really wanted, add its keyword to `allow_command_options` in this `ssh` block"
                        .into(),
                ),
            );
        }
    }
}

/// The attributes that hold a libvirt URI (template), in `inventory` and `host` blocks (the
/// inventory block has no `migration_uri`; looking for it there finds nothing).
const URI_ATTRIBUTES: [&str; 3] = ["libvirt_uri", "migration_uri", "peer_uri"];

/// The one check of a configured URI ([`URI_ATTRIBUTES`]): it may not carry a parameter
/// berth reserves ([`crate::names::RESERVED_URI_PARAMS`]): berth's own SSH settings, which
/// it adds itself, and `command=`/`netcat=`, which make libvirt run a command (on this
/// machine for `libvirt_uri`, on the source host's libvirtd for `peer_uri`).
fn check_uri(c: &mut Checker, uri: &Spanned<String>, what: &str) {
    let reserved = reserved_uri_params(&uri.value);
    if reserved.is_empty() {
        return;
    }
    let help = match what {
        "peer_uri" => {
            "the source host's libvirtd opens `peer_uri` with its own SSH settings: put the key and \
             known_hosts in its ssh_config (e.g. /etc/ssh/ssh_config on the hosts)"
        }
        "migration_uri" => {
            "a migration URI names where the memory goes (`tcp://10.0.1.12`), nothing more"
        }
        _ => {
            "use `identity_file`, `known_hosts_file` and `strict_host_key_checking` in `inventory { ssh { … } }`"
        }
    };
    c.error(
        &uri.span,
        format!(
            "`{what}` sets {}: a configured libvirt URI may not set the SSH parameters berth \
             sets itself (from the `ssh` block) nor name a command to run",
            reserved
                .iter()
                .map(|p| format!("`{p}=`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "reserved URI parameter",
        Some(help.into()),
    );
}

/// `rolling_maintenance.host_command` is passed as it is, one argument per element: no element
/// may be empty (ssh would drop it, shifting the others), and the program must be a program,
/// not an option.
fn check_host_command(c: &mut Checker, argv: &[Spanned<String>]) {
    for (i, arg) in argv.iter().enumerate() {
        if arg.value.is_empty() {
            c.error(
                &arg.span,
                "`host_command`: an empty argument".to_string(),
                "empty",
                Some("remove it: every element is passed as one argument".into()),
            );
        } else if i == 0 && arg.value.starts_with('-') {
            c.error(
                &arg.span,
                format!(
                    "`host_command`: the program `{}` starts with `-`",
                    arg.value
                ),
                "not a program",
                Some(
                    "the first element is the program, e.g. [\"/usr/sbin/patch-and-reboot\", \"--yes\"]"
                        .into(),
                ),
            );
        }
    }
}

/// Each placeholder is a whole element (one argument, never spliced into a larger string),
/// and the data placeholders come after a `--` element, so no value is read as an option.
fn check_volume_command(c: &mut Checker, name: &str, argv: &[Spanned<String>]) {
    let mut operands = false;
    for (i, arg) in argv.iter().enumerate() {
        if arg.value == "--" {
            operands = true;
            continue;
        }
        let inside = VOLUME_PLACEHOLDERS
            .iter()
            .find(|p| arg.value.contains(**p) && arg.value != **p);
        if let Some(placeholder) = inside {
            c.error(
                &arg.span,
                format!(
                    "`{name}`: `{placeholder}` must be a whole element, not part of `{}`",
                    arg.value
                ),
                "placeholder inside a larger argument",
                Some(
                    "each placeholder becomes exactly one argument, e.g. \
                     [\"/opt/site/bin/edv-volume\", \"{action}\", \"--\", \"{volume}\", \"{guest}\"]"
                        .into(),
                ),
            );
            continue;
        }
        if i == 0 && VOLUME_PLACEHOLDERS.contains(&arg.value.as_str()) {
            c.error(
                &arg.span,
                format!("`{name}`: the program cannot be a placeholder"),
                "placeholder as the program",
                None,
            );
            continue;
        }
        if !operands && DATA_PLACEHOLDERS.contains(&arg.value.as_str()) {
            c.error(
                &arg.span,
                format!(
                    "`{name}`: `{}` comes before `--`; es.xml values are operands and must follow a `--` element",
                    arg.value
                ),
                "before `--`",
                Some(
                    "e.g. [\"/opt/site/bin/edv-volume\", \"{action}\", \"--\", \"{volume}\", \"{guest}\"]"
                        .into(),
                ),
            );
        }
    }
}

/// A relative `state.path` stays inside the configuration directory, also through symbolic
/// links of what already exists; an absolute path is taken as the explicit choice it is.
fn check_state_path(c: &mut Checker, path: &Spanned<String>, dir: &Path) {
    let written = Path::new(&path.value);
    if written.is_absolute() {
        return;
    }
    let escapes = || {
        c_error_text(
            path,
            "leaves the configuration directory; a relative state path must stay inside it",
        )
    };
    let mut depth = 0usize;
    for component in written.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => {
                let (message, help) = escapes();
                c.error(
                    &path.span,
                    message,
                    "outside the configuration directory",
                    help,
                );
                return;
            }
        }
    }
    if let Some(real) = deepest_existing(&dir.join(written)) {
        let inside = dir
            .canonicalize()
            .map(|d| real.starts_with(d))
            .unwrap_or(true);
        if !inside {
            let (message, help) = escapes();
            c.error(
                &path.span,
                format!("{message} (through a symbolic link, to {})", real.display()),
                "outside the configuration directory",
                help,
            );
        }
    }
}

fn c_error_text(path: &Spanned<String>, why: &str) -> (String, Option<String>) {
    (
        format!("state path `{}` {why}", path.value),
        Some(
            "write an absolute path to keep the state elsewhere on purpose, e.g. `path = \"/var/lib/berth/rack1.state.json\"`"
                .into(),
        ),
    )
}

/// The canonical form of `path`, or of its deepest ancestor that exists (with the rest
/// appended), so that a symbolic link anywhere on the way is followed.
fn deepest_existing(path: &Path) -> Option<PathBuf> {
    let mut rest = Vec::new();
    let mut current = path;
    loop {
        if let Ok(real) = current.canonicalize() {
            return Some(rest.iter().rev().fold(real, |p: PathBuf, c| p.join(c)));
        }
        rest.push(current.file_name()?.to_os_string());
        current = current.parent()?;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse_str;

    fn errors(text: &str) -> Vec<String> {
        errors_in(text, Path::new("/etc/berth"))
    }

    fn errors_in(text: &str, dir: &Path) -> Vec<String> {
        match parse_str("main.hcl", text, dir) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors()
                .iter()
                .map(|e| match e.location() {
                    Some(at) => format!("{at}: {e}"),
                    None => e.to_string(),
                })
                .collect(),
        }
    }

    fn inventory(body: &str) -> String {
        format!("inventory {{\n  es_xml = \"es.xml\"\n{body}\n}}\n")
    }

    #[test]
    fn command_running_ssh_options_are_refused_at_their_place() {
        let text = inventory(
            "  ssh {\n    options = [\"ConnectTimeout=5\", \"ProxyCommand=touch /tmp/x\"]\n  }",
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("main.hcl:4:36: ssh option `ProxyCommand=touch /tmp/x` is refused"),
            "{errs:?}"
        );

        let allowed = inventory(
            "  ssh {\n    options = [\"ProxyCommand=nc %h %p\"]\n    allow_command_options = [\"ProxyCommand\"]\n  }",
        );
        let cfg = parse_str("main.hcl", &allowed, Path::new("/etc/berth")).unwrap();
        assert_eq!(
            cfg.inventory.ssh.allow_command_options,
            vec!["ProxyCommand"]
        );

        let unknown = inventory("  ssh {\n    allow_command_options = [\"Ciphers\"]\n  }");
        let errs = errors(&unknown);
        assert!(
            errs[0].contains("`Ciphers` is not an ssh option that runs commands"),
            "{errs:?}"
        );
    }

    #[test]
    fn uris_may_not_set_berths_ssh_parameters_or_commands() {
        let text =
            inventory("  libvirt_uri = \"qemu+ssh://root@{host}/system?no_verify=1&command=/x\"");
        let errs = errors(&text);
        assert!(errs[0].starts_with("main.hcl:3:"), "{errs:?}");
        assert!(errs[0].contains("`no_verify=`, `command=`"), "{errs:?}");
        let host = format!(
            "{}host \"h1\" {{\n  libvirt_uri = \"qemu+ssh://h1/system?keyfile=/k\"\n}}\n",
            inventory("")
        );
        assert!(
            errors(&host)[0].starts_with("main.hcl:6:"),
            "{:?}",
            errors(&host)
        );
        let peer = inventory("  peer_uri = \"qemu+ssh://{host}/system?known_hosts=/k\"");
        let errs = errors(&peer);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("main.hcl:3:")
                && errs[0].contains("`peer_uri` sets `known_hosts=`"),
            "{errs:?}"
        );
        let host = format!(
            "{}host \"h1\" {{\n  migration_uri = \"tcp://h1?command=/x\"\n  peer_uri = \"qemu+ssh://h1/system?netcat=/x\"\n}}\n",
            inventory("")
        );
        let errs = errors(&host);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("main.hcl:6:")
                && errs[0].contains("`migration_uri` sets `command=`"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("main.hcl:7:") && errs[1].contains("`peer_uri` sets `netcat=`"),
            "{errs:?}"
        );
        let plain = format!(
            "{}host \"h1\" {{\n  migration_uri = \"tcp://h1-mig:49152\"\n  peer_uri = \"qemu+ssh://h1/system?socket=/s\"\n}}\n",
            inventory("  peer_uri = \"qemu+tcp://{host}/system\"")
        );
        assert!(errors(&plain).is_empty(), "{:?}", errors(&plain));
    }

    #[test]
    fn names_in_hcl_are_names() {
        let text = format!(
            "{}host \"h1/system?x\" {{\n  drain = true\n}}\nguest \"g 1\" {{\n  host = \"-oProxyCommand=x\"\n}}\nrule \"pin\" \"p\" {{\n  guests = [\"g;id\"]\n}}\n",
            inventory("")
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[0].starts_with("main.hcl:5:6: host `h1/system?x` is not a valid host name"),
            "{errs:?}"
        );
        assert!(errs[1].starts_with("main.hcl:8:7: guest `g 1`"), "{errs:?}");
        assert!(
            errs[2].starts_with("main.hcl:9:10: host `-oProxyCommand=x`"),
            "{errs:?}"
        );
        assert!(
            errs[3].starts_with("main.hcl:12:13: guest `g;id`"),
            "{errs:?}"
        );
    }

    #[test]
    fn volume_placeholders_are_whole_operands_after_a_double_dash() {
        let ok = inventory(
            "  volume_command = [\"/opt/edv\", \"{action}\", \"--\", \"{volume}\", \"{guest}\", \"{host}\"]",
        );
        assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
        let inside = inventory("  volume_command = [\"/opt/edv\", \"--\", \"--volume={volume}\"]");
        assert!(
            errors(&inside)[0].contains("`{volume}` must be a whole element"),
            "{:?}",
            errors(&inside)
        );
        let before =
            inventory("  volume_check_command = [\"/opt/edv\", \"{volume}\", \"--\", \"{guest}\"]");
        let errs = errors(&before);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("`{volume}` comes before `--`"), "{errs:?}");
        let program = inventory("  volume_command = [\"{volume}\", \"--\"]");
        assert!(errors(&program)[0].contains("the program cannot be a placeholder"));
    }

    #[test]
    fn a_relative_state_path_stays_in_the_configuration_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = |path: &str| format!("{}state {{\n  path = \"{path}\"\n}}\n", inventory(""));
        assert!(errors_in(&state("state/s.json"), dir.path()).is_empty());
        assert!(errors_in(&state("a/../s.json"), dir.path()).is_empty());
        assert!(errors_in(&state("/var/lib/berth/s.json"), dir.path()).is_empty());
        let errs = errors_in(&state("../elsewhere/s.json"), dir.path());
        assert!(
            errs[0].contains("leaves the configuration directory"),
            "{errs:?}"
        );
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let errs = errors_in(&state("link/s.json"), dir.path());
        assert!(errs[0].contains("through a symbolic link"), "{errs:?}");
    }

    #[test]
    fn es_xml_out_may_not_overwrite_es_xml_the_state_or_the_configuration() {
        let with = |out: &str, state: &str| {
            format!("{}{state}", inventory(&format!("  es_xml_out = \"{out}\"")))
        };
        for (out, state, what) in [
            ("./es.xml", "", "es.xml itself"),
            ("/etc/berth/es.xml", "", "es.xml itself"),
            ("state/berth.state.json", "", "the state"),
            ("state/../state/berth.state.json.lock", "", "the state"),
            (
                "/var/lib/berth/s.json",
                "state {\n  path = \"/var/lib/berth/s.json\"\n}\n",
                "the state",
            ),
            ("main.hcl", "", "the configuration"),
            ("./other.hcl", "", "the configuration"),
        ] {
            let errs = errors(&with(out, state));
            assert_eq!(errs.len(), 1, "{out}: {errs:?}");
            assert!(
                errs[0].starts_with("main.hcl:3:16: ") && errs[0].contains(what),
                "{out}: {errs:?}"
            );
        }
        for out in [
            "out/es.xml",
            "es.new.xml",
            "/srv/oeda/es.xml",
            "sub/main.hcl",
        ] {
            assert_eq!(errors(&with(out, "")), Vec::<String>::new(), "{out}");
        }
    }
}
