//! The SSH edge: commands on KVM hosts through the system `ssh` client (openssh crate,
//! ControlMaster multiplexing).
//!
//! Two rules hold for everything sent: every argument is shell-quoted (`Command::arg`, never
//! `raw_arg`), because guest and bridge names come from es.xml and HCL; and host keys are
//! checked strictly unless the operator explicitly switched that off.
//!
//! This module is a leaf: it knows nothing of berth's configuration, only of [`SshTarget`].
//! A remote command that is abandoned locally (dropped future) keeps running on the host.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Output;

use openssh::{KnownHosts, Session, SessionBuilder};

mod once;
pub use once::{ONCE_MARKER_DIR, OnceOutcome, new_once_marker};

/// Lists Linux bridges through sysfs. Fixed text: nothing from the outside is spliced in.
const LIST_BRIDGES_SCRIPT: &str = r#"for d in /sys/class/net/*/bridge; do if [ -d "$d" ]; then d=${d%/bridge}; echo "${d##*/}"; fi; done"#;

/// Exit status a POSIX shell gives for "command not found".
const EXIT_NOT_FOUND: i32 = 127;

/// How long ssh may take to reach a host and read its banner (`ConnectTimeout`) unless
/// `options` set their own: without it an unreachable host (packets dropped) or a server
/// that never answers holds preflight and every host-side step for as long as the system's
/// TCP and ssh give it, which is minutes, or forever for a silent server. A name lookup is
/// bounded by the resolver (`/etc/resolv.conf` timeout and attempts), not by this.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Longest Linux interface name (IFNAMSIZ − 1).
const MAX_IFNAME_LEN: usize = 15;

/// Where and how to reach one host over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    pub user: String,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    /// `false` accepts unknown host keys (and records them); a changed key is still refused.
    pub strict_host_key_checking: bool,
    /// Extra ssh options (`Key=Value`), one per entry.
    pub options: Vec<String>,
    /// An ssh_config file to read instead of the defaults.
    pub config_file: Option<PathBuf>,
    /// Keywords of [`COMMAND_OPTIONS`] that `options` may use (the configuration's explicit
    /// `allow_command_options`); any other such option is refused.
    pub allow_command_options: Vec<String>,
}

impl SshTarget {
    /// A target with strict host key checking and no extra options.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> Self {
        SshTarget {
            host: host.into(),
            user: user.into(),
            port: None,
            identity_file: None,
            known_hosts_file: None,
            strict_host_key_checking: true,
            options: Vec::new(),
            config_file: None,
            allow_command_options: Vec::new(),
        }
    }

    /// `user@host[:port]`, for messages.
    pub fn destination(&self) -> String {
        match self.port {
            Some(p) => format!("{}@{}:{}", self.user, self.host, p),
            None => format!("{}@{}", self.user, self.host),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid SSH target `{destination}`: {reason}")]
    InvalidTarget { destination: String, reason: String },

    #[error("preparing the SSH connection to `{destination}`: {error}")]
    Setup {
        destination: String,
        error: std::io::Error,
    },

    /// openssh's own Display is generic; the chain carries ssh's actual complaint.
    #[error("ssh to `{destination}` failed: {}", error_chain(.error))]
    Connect {
        destination: String,
        error: openssh::Error,
    },

    #[error("running `{command}` on `{host}` failed: {}", error_chain(.error))]
    Run {
        host: String,
        command: String,
        error: openssh::Error,
    },

    #[error("`{command}` on `{host}` exited with {status}: {stderr}")]
    Failed {
        host: String,
        command: String,
        status: String,
        stderr: String,
    },

    #[error("invalid bridge name `{name}`: {reason}")]
    InvalidBridgeName { name: String, reason: String },

    #[error("nothing to run on `{host}`: empty command")]
    EmptyCommand { host: String },
}

impl RemoteError {
    /// The SSH connection ended under a running command (ssh's exit status 255, which openssh
    /// reports as a terminated remote process or a disconnection), as a reboot ends it; not a
    /// command that exited with a status of its own.
    pub fn is_connection_cut(&self) -> bool {
        matches!(
            self,
            RemoteError::Run {
                error: openssh::Error::RemoteProcessTerminated | openssh::Error::Disconnected,
                ..
            }
        )
    }
}

/// Where Linux keeps the identity of the current boot: a random UUID drawn at every boot.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// `error: cause: cause…`, so that the reason behind a generic message is shown.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let _ = write!(text, ": {c}");
        cause = c.source();
    }
    text
}

/// ssh_config(5) keywords that make ssh run a local command or load local code: `ProxyCommand`,
/// `LocalCommand` (with `PermitLocalCommand`), `KnownHostsCommand`, `ProxyJump` (runs ssh
/// again), `XAuthLocation` (runs that program), `PKCS11Provider` and `SecurityKeyProvider`
/// (load a shared library), `Include` (reads a file that may hold any of these). An option
/// with one of them is refused unless explicitly allowed by name.
pub const COMMAND_OPTIONS: &[&str] = &[
    "ProxyCommand",
    "LocalCommand",
    "PermitLocalCommand",
    "KnownHostsCommand",
    "ProxyJump",
    "XAuthLocation",
    "PKCS11Provider",
    "SecurityKeyProvider",
    "Include",
];

/// ssh_config keywords that open a block (`Match exec …` runs a command): berth writes the
/// options into its own config file, before the files it includes, where a block would scope
/// everything after it. Never allowed.
pub const BLOCK_OPTIONS: &[&str] = &["Match", "Host"];

/// The keyword of an ssh option (`Key=Value` or `Key Value`), as written.
pub fn option_keyword(option: &str) -> &str {
    option
        .trim_start()
        .split(['=', ' ', '\t'])
        .next()
        .unwrap_or("")
}

/// Why an ssh option may not be used, given the keywords explicitly allowed
/// (case-insensitive, as ssh reads them), or `None` when it may.
pub fn forbidden_option(option: &str, allowed: &[String]) -> Option<String> {
    let key = option_keyword(option);
    if let Some(block) = BLOCK_OPTIONS.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(format!(
            "`{block}` opens an ssh_config block (`Match exec` runs a command); it cannot be an option"
        ));
    }
    let command = COMMAND_OPTIONS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(key))?;
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(command)) {
        return None;
    }
    Some(format!(
        "`{command}` makes ssh run a local command or load local code; \
         name it in `allow_command_options` to allow it"
    ))
}

/// Shell-like rendering of an argument vector, for messages only.
fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a name as a Linux interface name (and keeps it free of anything an `ip` command
/// line could misread): 1–15 characters of `A–Z a–z 0–9 . _ -`, not starting with `-`,
/// not `.` or `..`.
pub fn validate_ifname(name: &str) -> Result<(), RemoteError> {
    let invalid = |reason: &str| {
        Err(RemoteError::InvalidBridgeName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_IFNAME_LEN {
        return invalid("longer than 15 characters (Linux IFNAMSIZ)");
    }
    if name == "." || name == ".." {
        return invalid("`.` and `..` are not interface names");
    }
    if name.starts_with('-') {
        return invalid("starts with `-`");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return invalid(&format!(
            "character {c:?} is not allowed (use letters, digits, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

/// Host names and users go onto the ssh command line: refuse anything ssh could read as an
/// option or a URI.
fn validate_target(t: &SshTarget) -> Result<(), RemoteError> {
    let invalid = |reason: String| {
        Err(RemoteError::InvalidTarget {
            destination: t.destination(),
            reason,
        })
    };
    let host_ok = |c: char| c.is_ascii_alphanumeric() || ".-_:[]%".contains(c);
    if t.host.is_empty() || t.host.starts_with('-') || !t.host.chars().all(host_ok) {
        return invalid(format!("host `{}` is not a host name or address", t.host));
    }
    let user_ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if t.user.is_empty() || t.user.starts_with('-') || !t.user.chars().all(user_ok) {
        return invalid(format!("user `{}` is not a valid user name", t.user));
    }
    for option in &t.options {
        let key = option.split(['=', ' ', '\t']).next().unwrap_or("");
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return invalid(format!(
                "ssh option `{option}` is not of the form Key=Value"
            ));
        }
        if option.chars().any(|c| c.is_control()) {
            return invalid(format!(
                "ssh option `{option}` contains a control character"
            ));
        }
        if let Some(why) = forbidden_option(option, &t.allow_command_options) {
            return invalid(format!("ssh option `{option}`: {why}"));
        }
    }
    if let Some(path) = &t.config_file {
        let text = path.to_string_lossy();
        if text.contains(['"', '\n', '\r']) {
            return invalid(format!(
                "ssh config path `{text}` contains a quote or line break"
            ));
        }
    }
    Ok(())
}

/// The ssh_config berth writes when extra options are given: the options first (ssh keeps
/// the first value it reads), then the file ssh would otherwise have read.
fn options_config(t: &SshTarget) -> String {
    let mut text = String::from("# written by berth for this connection only\n");
    for option in &t.options {
        text.push_str(option);
        text.push('\n');
    }
    match &t.config_file {
        Some(path) => {
            let _ = writeln!(text, "Include \"{}\"", path.display());
        }
        None => text.push_str("Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\n"),
    }
    text
}

/// The `ConnectTimeout` berth passes: [`DEFAULT_CONNECT_TIMEOUT`], unless `options` set one
/// (ssh takes the command line's value over its config file's, so passing ours would
/// override the operator's).
fn connect_timeout(t: &SshTarget) -> Option<std::time::Duration> {
    let own = t
        .options
        .iter()
        .any(|o| option_keyword(o).eq_ignore_ascii_case("ConnectTimeout"));
    (!own).then_some(DEFAULT_CONNECT_TIMEOUT)
}

/// Bridge names from the output of [`LIST_BRIDGES_SCRIPT`]; lines that are not interface
/// names are ignored.
pub fn parse_bridges(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| validate_ifname(l).is_ok())
        .map(str::to_string)
        .collect()
}

/// An open SSH connection (a ControlMaster) to one host.
pub struct RemoteHost {
    destination: String,
    session: Session,
    /// Holds the control socket and any generated ssh_config; private to this process (0700).
    _private_dir: tempfile::TempDir,
}

impl std::fmt::Debug for RemoteHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHost")
            .field("destination", &self.destination)
            .finish()
    }
}

impl RemoteHost {
    /// Connects (must run inside a tokio runtime).
    pub async fn connect(t: &SshTarget) -> Result<Self, RemoteError> {
        validate_target(t)?;
        let destination = t.destination();
        let setup = |error| RemoteError::Setup {
            destination: destination.clone(),
            error,
        };
        let private_dir = tempfile::Builder::new()
            .prefix("berth-ssh-")
            .tempdir()
            .map_err(setup)?;

        let mut b = SessionBuilder::default();
        b.user(t.user.clone())
            .control_directory(private_dir.path())
            .known_hosts_check(if t.strict_host_key_checking {
                KnownHosts::Strict
            } else {
                KnownHosts::Add
            });
        if let Some(timeout) = connect_timeout(t) {
            b.connect_timeout(timeout);
        }
        if let Some(port) = t.port {
            b.port(port);
        }
        if let Some(key) = &t.identity_file {
            b.keyfile(key);
        }
        if let Some(file) = &t.known_hosts_file {
            b.user_known_hosts_file(file);
        }
        if !t.options.is_empty() {
            let path = private_dir.path().join("ssh_config");
            std::fs::write(&path, options_config(t)).map_err(setup)?;
            b.config_file(path);
        } else if let Some(file) = &t.config_file {
            b.config_file(file);
        }
        let session = b
            .connect(&t.host)
            .await
            .map_err(|error| RemoteError::Connect {
                destination: destination.clone(),
                error,
            })?;
        Ok(RemoteHost {
            destination,
            session,
            _private_dir: private_dir,
        })
    }

    /// Runs `argv` (program and arguments, each passed verbatim) and returns its output,
    /// whatever its exit status, except 127 ("command not found"), which openssh reports as
    /// a [`RemoteError::Run`] with an `io::ErrorKind::NotFound` cause.
    pub async fn run(&self, argv: &[String]) -> Result<Output, RemoteError> {
        self.run_shown(argv, argv).await
    }

    /// [`RemoteHost::run`], with errors naming `shown` (the operator's command a wrapper runs)
    /// rather than `argv`.
    async fn run_shown(&self, argv: &[String], shown: &[String]) -> Result<Output, RemoteError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| RemoteError::EmptyCommand {
                host: self.destination.clone(),
            })?;
        let mut command = self.session.command(program.as_str());
        for a in args {
            command.arg(a);
        }
        command.output().await.map_err(|error| RemoteError::Run {
            host: self.destination.clone(),
            command: display_command(shown),
            error,
        })
    }

    /// Runs `argv` and fails unless it exits with status 0.
    pub async fn run_checked(&self, argv: &[String]) -> Result<Output, RemoteError> {
        let out = self.run(argv).await?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failure(argv, &out))
        }
    }

    /// Runs a yes/no check: exit status 0 is yes, 1 is no, anything else a failure.
    pub async fn check(&self, argv: &[String]) -> Result<bool, RemoteError> {
        let out = self.run(argv).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failure(argv, &out)),
        }
    }

    fn failure(&self, argv: &[String], out: &Output) -> RemoteError {
        RemoteError::Failed {
            host: self.destination.clone(),
            command: display_command(argv),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
    }

    /// Linux bridges present on the host.
    pub async fn bridges(&self) -> Result<BTreeSet<String>, RemoteError> {
        let argv = ["sh", "-c", LIST_BRIDGES_SCRIPT].map(String::from);
        let out = self.run_checked(&argv).await?;
        Ok(parse_bridges(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Creates bridge `name` and brings it up, unless it exists. Returns whether it created it.
    ///
    /// Another creator may win the race between the check and the `ip link add` (two moves onto
    /// one host create the same bridge at once): when the add fails and the bridge is there
    /// after all, it is brought up and counts as existing.
    pub async fn create_bridge(&self, name: &str) -> Result<bool, RemoteError> {
        validate_ifname(name)?;
        if self.bridges().await?.contains(name) {
            return Ok(false);
        }
        let up = ["ip", "link", "set", name, "up"].map(String::from);
        if let Err(add_failed) = self
            .run_checked(&["ip", "link", "add", name, "type", "bridge"].map(String::from))
            .await
        {
            if !self.bridges().await?.contains(name) {
                return Err(add_failed);
            }
            self.run_checked(&up).await?;
            return Ok(false);
        }
        self.run_checked(&up).await?;
        Ok(true)
    }

    /// The Exadata image version (`imageinfo -ver`), or `None` where `imageinfo` is absent.
    pub async fn image_version(&self) -> Result<Option<String>, RemoteError> {
        let argv = ["imageinfo", "-ver"].map(String::from);
        let out = match self.run(&argv).await {
            // openssh turns the shell's "command not found" (status 127) into this error.
            Err(RemoteError::Run {
                error: openssh::Error::Remote(e),
                ..
            }) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            other => other?,
        };
        if out.status.code() == Some(EXIT_NOT_FOUND) {
            return Ok(None);
        }
        if !out.status.success() {
            return Err(self.failure(&argv, &out));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string))
    }

    /// The host's boot id ([`BOOT_ID_PATH`]): it changes at every boot, so a host whose boot
    /// id differs from an earlier reading has rebooted since.
    pub async fn boot_id(&self) -> Result<String, RemoteError> {
        let argv = ["cat", BOOT_ID_PATH].map(String::from);
        let out = self.run_checked(&argv).await?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if id.is_empty() {
            return Err(RemoteError::Failed {
                host: self.destination.clone(),
                command: display_command(&argv),
                status: "an empty boot id".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(id)
    }

    /// Closes the master connection.
    pub async fn close(self) -> Result<(), RemoteError> {
        let destination = self.destination;
        self.session
            .close()
            .await
            .map_err(|error| RemoteError::Connect { destination, error })
    }

    pub fn destination(&self) -> &str {
        &self.destination
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        for ok in [
            "br0",
            "vmbondeth0",
            "vmeth0.123",
            "br_st-1",
            "abcdefghijklmno",
        ] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "abcdefghijklmnop",
            ".",
            "..",
            "-br",
            "br 0",
            "br/0",
            "br:0",
            "br;x",
            "brü",
            "$(x)",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad:?} accepted");
        }
        let e = validate_ifname("br;rm").unwrap_err().to_string();
        assert!(e.contains("br;rm") && e.contains("';'"), "{e}");
    }

    /// Runs the bridge-listing script for real in a private network namespace that holds one
    /// bridge and one non-bridge (veth) pair. Needs root and util-linux `unshare`, as CI has.
    #[test]
    fn bridge_script_lists_only_bridges() {
        let setup = "mount -t sysfs sysfs /sys && ip link add brtest0 type bridge && \
                     ip link add vetha type veth peer name vethb && ";
        let out = std::process::Command::new("unshare")
            .args(["--net", "--mount", "sh", "-c"])
            .arg(format!("{setup}{LIST_BRIDGES_SCRIPT}"))
            .output()
            .expect("unshare (util-linux) must be installed");
        assert!(
            out.status.success(),
            "needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            parse_bridges(&String::from_utf8_lossy(&out.stdout)),
            BTreeSet::from(["brtest0".to_string()])
        );
    }

    #[test]
    fn bridge_output_parsing_keeps_only_interface_names() {
        let got = parse_bridges("br0\n  vmbondeth0 \n\nnot a name\nbr-st\n");
        assert_eq!(
            got,
            BTreeSet::from(["br-st".to_string(), "br0".into(), "vmbondeth0".into()])
        );
    }

    #[test]
    fn targets_that_look_like_options_are_refused() {
        let mut t = SshTarget::new("-oProxyCommand=touch /tmp/x", "root");
        assert!(validate_target(&t).is_err());
        t.host = "ssh://evil@host".into();
        assert!(validate_target(&t).is_err());
        t.host = "exa01adm01.example.com".into();
        assert!(validate_target(&t).is_ok());
        t.user = "-l".into();
        assert!(validate_target(&t).is_err());
        t.user = "root".into();
        t.options = vec!["ProxyCommand=x\nHost *".into()];
        assert!(validate_target(&t).is_err());
        t.options = vec!["=x".into()];
        assert!(validate_target(&t).is_err());
        t.options = vec!["ServerAliveCountMax=3".into(), "Ciphers aes256-ctr".into()];
        assert!(validate_target(&t).is_ok());
    }

    #[test]
    fn options_that_run_local_commands_need_an_explicit_opt_in() {
        let mut t = SshTarget::new("h", "root");
        for option in [
            "ProxyCommand=touch /tmp/x",
            "proxycommand touch /tmp/x",
            "LocalCommand=id",
            "PermitLocalCommand=yes",
            "KnownHostsCommand=/bin/x",
            "ProxyJump=evil",
            "XAuthLocation=/tmp/x",
            "PKCS11Provider=/tmp/x.so",
            "SecurityKeyProvider=/tmp/x.so",
            "Include=/tmp/x",
        ] {
            t.options = vec![option.into()];
            let err = validate_target(&t).unwrap_err().to_string();
            assert!(err.contains("allow_command_options"), "{option}: {err}");
        }
        t.options = vec!["ProxyCommand=nc %h %p".into()];
        t.allow_command_options = vec!["proxycommand".into()];
        assert!(validate_target(&t).is_ok());
        // An opt-in names one keyword, not all of them.
        t.options.push("LocalCommand=id".into());
        assert!(validate_target(&t).is_err());
        // Blocks are never options, opt-in or not.
        t.allow_command_options = vec!["Match".into(), "Host".into()];
        for option in ["Match exec \"touch /tmp/x\"", "Host=*"] {
            t.options = vec![option.into()];
            let err = validate_target(&t).unwrap_err().to_string();
            assert!(err.contains("block"), "{option}: {err}");
        }
    }

    #[test]
    fn options_come_before_the_included_config() {
        let mut t = SshTarget::new("h", "root");
        t.options = vec!["ConnectionAttempts=2".into()];
        let text = options_config(&t);
        let opt = text.find("ConnectionAttempts=2").unwrap();
        let inc = text.find("Include ~/.ssh/config").unwrap();
        assert!(opt < inc, "{text}");
        t.config_file = Some("/etc/berth/ssh config".into());
        assert!(options_config(&t).contains("Include \"/etc/berth/ssh config\"\n"));
    }

    #[test]
    fn ssh_gets_a_connect_timeout_unless_the_options_set_one() {
        let mut t = SshTarget::new("adm01.example.com", "root");
        assert_eq!(connect_timeout(&t), Some(DEFAULT_CONNECT_TIMEOUT));
        t.options = vec!["ServerAliveInterval=5".into()];
        assert_eq!(connect_timeout(&t), Some(DEFAULT_CONNECT_TIMEOUT));
        t.options.push("connecttimeout 3".into());
        assert_eq!(connect_timeout(&t), None);
    }

    #[test]
    fn commands_are_displayed_quoted() {
        let argv = ["ip", "link", "add", "a b", "it's"].map(String::from);
        assert_eq!(display_command(&argv), r"ip link add 'a b' 'it'\''s'");
    }
}
