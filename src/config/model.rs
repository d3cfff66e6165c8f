//! The configuration model. Every value a user wrote keeps its [`Span`] so later stages
//! (diff, schedule) can report errors at the place in the HCL that caused them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One loaded `.hcl` file, kept for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path as shown to the user (relative to the working directory when possible).
    pub name: String,
    pub text: String,
    /// `text` as snippets show it ([`SourceFile::shown_text`]).
    pub shown: ShownText,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
            shown: ShownText::default(),
        }
    }

    /// `text` with its control characters blanked (crate::printable::blank, byte offsets
    /// kept), for diagnostics' snippets: made on first use and shared by every diagnostic of
    /// the file, so a file with thousands of errors is scanned once.
    pub fn shown_text(&self) -> std::sync::Arc<str> {
        self.shown
            .0
            .get_or_init(|| std::sync::Arc::from(crate::printable::blank(&self.text).as_ref()))
            .clone()
    }
}

/// The cache behind [`SourceFile::shown_text`]; it never makes two files differ.
#[derive(Debug, Clone, Default)]
pub struct ShownText(std::sync::OnceLock<std::sync::Arc<str>>);

impl PartialEq for ShownText {
    fn eq(&self, _: &ShownText) -> bool {
        true
    }
}

impl Eq for ShownText {}

/// A byte range in one of [`Config::files`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Span {
    pub file: usize,
    pub range: Range<usize>,
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// How a guest is moved (OEDACLI's MODE).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MigrationMode {
    /// Stop the guest, move its definition, start it on the target.
    Offline,
    /// The source host is unreachable: define on the target from the last known definition.
    OfflineForce,
    /// Live migration: the guest keeps running.
    Live,
}

impl MigrationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationMode::Offline => "offline",
            MigrationMode::OfflineForce => "offline_force",
            MigrationMode::Live => "live",
        }
    }
}

impl std::fmt::Display for MigrationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who drives a live migration.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LiveTransport {
    /// The source host's libvirtd drives the migration to the target's libvirtd
    /// (`VIR_MIGRATE_PEER2PEER`): it finishes or fails on its own if berth dies. Needs the
    /// source host to reach the target's libvirt (`peer_uri`).
    #[default]
    PeerToPeer,
    /// berth drives both libvirtds (`virDomainMigrate3`), for fleets without host-to-host
    /// libvirt access. If berth dies after the source paused the guest, the guest may be left
    /// paused on the source until the next apply resumes it.
    Client,
}

impl LiveTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveTransport::PeerToPeer => "peer_to_peer",
            LiveTransport::Client => "client",
        }
    }
}

impl std::fmt::Display for LiveTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which source wins when es.xml and libvirt disagree about where a guest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftSource {
    /// Trust libvirt (what runs where) and plan from it; apply rewrites es.xml to match.
    Libvirt,
    /// Trust es.xml.
    EsXml,
}

/// Options for live migrations (libvirt's migration parameters).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LiveOptions {
    /// Who drives the migration: the source host's libvirtd (default) or berth.
    pub transport: LiveTransport,
    /// A migration whose memory counters do not move for this many seconds is aborted (the
    /// guest stays on its source); `None` means the default, 60 s.
    pub stall_timeout_s: Option<u64>,
    /// Bandwidth cap in MiB/s (0 = unlimited).
    pub bandwidth_mib_s: u64,
    /// Parallel migration connections (VIR_MIGRATE_PARALLEL) when > 1.
    pub parallel_connections: u32,
    pub auto_converge: bool,
    pub post_copy: bool,
    /// Maximum tolerated downtime in milliseconds, when set.
    pub max_downtime_ms: Option<u64>,
    pub tls: bool,
    pub compressed: bool,
}

/// SSH settings used for host facts and host-side commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshSettings {
    pub user: String,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    /// Strict host key checking; on by default, switching it off needs an explicit `false`.
    pub strict_host_key_checking: bool,
    /// Extra `-o` options, passed as separate arguments.
    pub options: Vec<String>,
    /// ssh_config keywords that run local commands (`ProxyCommand`, …) that `options` may use:
    /// the explicit opt-in; without it such options are refused at load.
    pub allow_command_options: Vec<String>,
    /// Whether to gather host facts (bridges, image version) over SSH while planning.
    pub gather_facts: bool,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            user: "root".into(),
            port: None,
            identity_file: None,
            known_hosts_file: None,
            strict_host_key_checking: true,
            options: Vec::new(),
            allow_command_options: Vec::new(),
            gather_facts: false,
        }
    }
}

/// The `inventory { … }` block.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryConfig {
    /// es.xml path, resolved against the config directory.
    pub es_xml: Spanned<PathBuf>,
    /// libvirt URI template; `{host}` is the es.xml host name, `{short}` its first label.
    /// Relative `test:` paths are resolved against the config directory.
    pub libvirt_uri: Spanned<String>,
    /// Template of the libvirt URI by which a SOURCE host reaches a target's libvirt in a
    /// peer-to-peer live migration (same placeholders as `libvirt_uri`); `None`: the target's
    /// own libvirt URI (the one berth uses).
    pub peer_uri: Option<Spanned<String>>,
    /// Seconds berth waits for a libvirt connection to open before it reports the host
    /// unreachable (`connect_timeout_s`, default [`InventoryConfig::DEFAULT_CONNECT_TIMEOUT_S`]).
    pub connect_timeout_s: u64,
    pub ssh: SshSettings,
    /// Which side wins on drift; `None` = stop the plan on drift.
    pub drift_source: Option<Spanned<DriftSource>>,
    /// How an es.xml guest's libvirt domain is named: `host_name`, `short_name`,
    /// `machine_id` or a template over `{host_name}`, `{short_name}`, `{machine_id}`
    /// (checked by validation); `None` = its host name.
    pub domain_name: Option<Spanned<String>>,
    /// Host-side command template for DETACH_VOLUMES / ATTACH_VOLUMES, as separate arguments.
    /// `{action}` (attach|detach), `{volume}`, `{guest}`, `{host}` are substituted per argument.
    pub volume_command: Option<Vec<String>>,
    /// Host-side command that tells whether a volume step's effect is already there, with the
    /// same placeholders: exit 0 = already attached (attach) or detached (detach), exit 1 =
    /// not yet, anything else = the check failed. `None`: berth cannot know, and relies on
    /// `volume_command` being safe to repeat.
    pub volume_check_command: Option<Vec<String>>,
    /// Where apply writes the updated es.xml, resolved against the configuration directory;
    /// `None` rewrites `es_xml` in place (after a backup beside it).
    pub es_xml_out: Option<PathBuf>,
}

impl InventoryConfig {
    /// The default of `connect_timeout_s`: a reachable libvirt answers within a second or two;
    /// an ssh handshake over a slow link may take a few more.
    pub const DEFAULT_CONNECT_TIMEOUT_S: u64 = 15;
}

/// The `state { … }` block: where apply journals its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// The state file, resolved against the configuration directory; its lock is
    /// `<path>.lock` beside it. With the PostgreSQL backend, its directory keeps the recovery
    /// file of an apply that lost the database.
    pub path: PathBuf,
    pub backend: StateBackendConfig,
}

/// Which backend keeps the state.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StateBackendConfig {
    /// The local file at [`StateConfig::path`].
    #[default]
    Local,
    /// A workspace in a PostgreSQL database.
    Postgres(PostgresSettings),
}

/// `state { backend = "postgres" … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSettings {
    /// The connection URL (`postgresql://user@host/db`); `None`: from `BERTH_PG_URL`, so that
    /// no password sits in HCL.
    pub url: Option<String>,
    /// Each workspace has its own state and lock (one per rack, per pipeline, …).
    pub workspace: String,
    /// The database schema berth's tables live in (created by berth's migrations).
    pub schema: String,
    /// TLS to the server, as set in the `state` block (the URL may set them too).
    pub tls: PgTlsSettings,
}

/// libpq's TLS parameters in the `state` block (`sslmode = "verify-full"`, `sslrootcert =
/// "certs/db-ca.pem"`, …); paths resolved against the configuration directory. Each may also
/// be in the URL (which must not say otherwise) or in libpq's environment variables.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PgTlsSettings {
    pub sslmode: Option<String>,
    /// A PEM file of CA certificates, or `system` (kept as is) for the system's CAs.
    pub sslrootcert: Option<std::path::PathBuf>,
    /// The client certificate (PEM) and its key, for `cert` authentication.
    pub sslcert: Option<std::path::PathBuf>,
    pub sslkey: Option<std::path::PathBuf>,
}

impl PostgresSettings {
    /// The environment variable the URL comes from when `url` is not set.
    pub const URL_ENV: &'static str = "BERTH_PG_URL";
    pub const DEFAULT_WORKSPACE: &'static str = "default";
    pub const DEFAULT_SCHEMA: &'static str = "berth";
}

impl StateConfig {
    /// Default state file, relative to the configuration directory.
    pub const DEFAULT_PATH: &'static str = "state/berth.state.json";

    /// The default state file for a configuration in `dir`.
    pub fn default_in(dir: &std::path::Path) -> StateConfig {
        StateConfig {
            path: dir.join(Self::DEFAULT_PATH),
            backend: StateBackendConfig::Local,
        }
    }
}

/// The `defaults { … }` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub mode: Spanned<MigrationMode>,
    pub live: LiveOptions,
    /// Global bound on concurrently running steps.
    pub parallelism: u32,
    /// Concurrent migrations into / out of one host.
    pub max_inbound_per_host: u32,
    pub max_outbound_per_host: u32,
    /// Bandwidth of each host's migration link, MiB/s, for predicting how long live
    /// migrations take (concurrent migrations on one link share it).
    pub link_bandwidth_mib_s: u64,
    /// Rate at which a running guest dirties memory, MiB/s, when known (0 = not known): live
    /// migration re-sends dirtied pages, so it takes longer than memory ÷ bandwidth.
    pub dirty_rate_mib_s: u64,
    /// vCPUs in use on a host may reach `cpus × vcpu_overcommit`.
    pub vcpu_overcommit: f64,
    /// Memory kept for the host itself, not given to guests, in MiB.
    pub memory_reserved_mib: u64,
    /// Paths (prefixes) on storage every host reaches; disks elsewhere block live migration.
    pub shared_storage: Vec<String>,
    /// Guests any host may hold, unless its `host` block says otherwise.
    pub max_guests: Option<u32>,
    /// Members of one RAC cluster (es.xml) never share a host: the default anti-affinity.
    pub rac_anti_affinity: bool,
    /// How long a graceful shutdown (STOP_GUEST) may take, seconds.
    pub shutdown_timeout_s: u64,
    /// How long a start (STARTUP_GUEST) may take until the guest runs, seconds.
    pub start_timeout_s: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            mode: Spanned {
                value: MigrationMode::Offline,
                span: Span::default(),
            },
            live: LiveOptions::default(),
            parallelism: 4,
            max_inbound_per_host: 2,
            max_outbound_per_host: 2,
            link_bandwidth_mib_s: 1100,
            dirty_rate_mib_s: 0,
            vcpu_overcommit: 1.0,
            memory_reserved_mib: 0,
            shared_storage: vec!["/EXAVMIMAGES".into(), "/dev/exc".into()],
            max_guests: None,
            rac_anti_affinity: true,
            shutdown_timeout_s: 300,
            start_timeout_s: 120,
        }
    }
}

/// `guest "NAME" { … }`: where one guest should be.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestIntent {
    /// The label as written (es.xml host name, or its short form when unambiguous).
    pub name: Spanned<String>,
    /// Desired host; `None` lets berth choose.
    pub host: Option<Spanned<String>>,
    pub mode: Option<Spanned<MigrationMode>>,
    /// The whole block, for messages about the block itself.
    pub span: Span,
}

/// `host "NAME" { … }`: what holds for one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostIntent {
    pub name: Spanned<String>,
    /// Empty this host: its guests get targets chosen automatically.
    pub drain: bool,
    /// The host is dead: its guests are defined on automatically chosen targets from their
    /// last known definitions (`offline_force`), and nothing moves onto it.
    pub evacuate: bool,
    /// Bring back the guests that earlier plans moved off this host (from the state journal).
    pub return_home: bool,
    /// `maintenance = true`: empty the host for service as an operator would: guests that can
    /// move are moved (as a drain), the others are stopped in place, within disruption
    /// budgets. `maintenance = false`: end it: start the guests stopped in place and return
    /// the moved ones home (both from the state journal). `None`: neither.
    pub maintenance: Option<bool>,
    /// No guest may move onto a disabled host.
    pub disabled: bool,
    pub max_guests: Option<Spanned<u32>>,
    /// This host's vCPU overcommit ratio, over `defaults.vcpu_overcommit`.
    pub vcpu_overcommit: Option<f64>,
    /// Per-host libvirt URI, overriding the template.
    pub libvirt_uri: Option<Spanned<String>>,
    /// Where live migrations into this host send their memory (libvirt's migration URI,
    /// e.g. `tcp://10.0.1.12` on a dedicated migration network); `None` lets the host's
    /// libvirt advertise its own address.
    pub migration_uri: Option<Spanned<String>>,
    /// The libvirt URI by which other hosts reach this host's libvirt for peer-to-peer live
    /// migrations, overriding `inventory.peer_uri`.
    pub peer_uri: Option<Spanned<String>>,
    pub memory_reserved_mib: Option<u64>,
    /// The host's SR-IOV virtual functions guests may be given (`sriov_vfs`), in canonical
    /// PCI form (`0000:3b:02.1`) and in the order written: ATTACH_INTERFACES hands out the
    /// free ones in this order. `None` when the host block does not set it.
    pub sriov_vfs: Option<Spanned<Vec<String>>>,
    pub span: Span,
}

impl HostIntent {
    /// A host named on the command line, by `-rolling`, or in a test, with nothing set
    /// yet: the span of its name stands for the whole block.
    pub fn unset(name: Spanned<String>) -> Self {
        let span = name.span.clone();
        HostIntent {
            name,
            drain: false,
            evacuate: false,
            return_home: false,
            maintenance: None,
            disabled: false,
            max_guests: None,
            vcpu_overcommit: None,
            libvirt_uri: None,
            migration_uri: None,
            peer_uri: None,
            memory_reserved_mib: None,
            sriov_vfs: None,
            span,
        }
    }
}

/// What a rebalance evens out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceOn {
    Memory,
    Vcpus,
    /// Memory and vCPUs, each within the threshold.
    Both,
}

impl BalanceOn {
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceOn::Memory => "memory",
            BalanceOn::Vcpus => "vcpus",
            BalanceOn::Both => "both",
        }
    }
}

/// `rebalance "NAME" { … }`: even out the load of a set of hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceIntent {
    pub name: Spanned<String>,
    /// The hosts to even out; `None` = every host.
    pub hosts: Option<Vec<Spanned<String>>>,
    pub on: BalanceOn,
    /// Act while the utilisation spread (most used minus least used host, as a fraction of
    /// capacity) is above this.
    pub threshold: f64,
    /// At most this many guests move.
    pub max_moves: Option<u32>,
    /// At most this much guest memory moves, MiB.
    pub max_moved_mib: Option<u64>,
    /// Mode of the moves; `None` = the default mode.
    pub mode: Option<Spanned<MigrationMode>>,
    pub span: Span,
}

impl RebalanceIntent {
    /// Default threshold: act when the spread is above 10 points.
    pub const DEFAULT_THRESHOLD: f64 = 0.10;
}

/// Kinds of placement rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// The guests never share a host.
    AntiAffinity,
    /// The guests always share one host.
    Affinity,
    /// The guests never move.
    Pin,
    /// The guests never run on the rule's hosts.
    Ban,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::AntiAffinity => "anti_affinity",
            RuleKind::Affinity => "affinity",
            RuleKind::Pin => "pin",
            RuleKind::Ban => "ban",
        }
    }
}

/// `rule "KIND" "NAME" { guests = […] hosts = […] }`: a placement rule.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementRule {
    pub kind: RuleKind,
    pub name: Spanned<String>,
    pub guests: Vec<Spanned<String>>,
    /// The banned hosts (`ban` only; empty for the other kinds).
    pub hosts: Vec<Spanned<String>>,
    pub span: Span,
}

/// `rule "disruption_budget" "NAME" { … }`: at most `max_unavailable` of a set of guests
/// stopped or migrating at any instant (the scheduler enforces it).
#[derive(Debug, Clone, PartialEq)]
pub struct DisruptionBudget {
    pub name: Spanned<String>,
    /// A RAC cluster name from es.xml: its members are the set.
    pub cluster: Option<Spanned<String>>,
    /// Or the guests, by name.
    pub guests: Vec<Spanned<String>>,
    pub max_unavailable: Spanned<u32>,
    pub span: Span,
}

/// The whole configuration of one working directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Directory the config was loaded from; relative paths resolve against it.
    pub dir: PathBuf,
    pub files: Vec<SourceFile>,
    pub inventory: InventoryConfig,
    pub defaults: Defaults,
    /// The state file (from the `state` block, or the default).
    pub state: StateConfig,
    /// Keyed by the label as written.
    pub guests: BTreeMap<String, GuestIntent>,
    pub hosts: BTreeMap<String, HostIntent>,
    /// In file order.
    pub rebalances: Vec<RebalanceIntent>,
    /// Placement rules, in file order.
    pub rules: Vec<PlacementRule>,
    pub disruption_budgets: Vec<DisruptionBudget>,
    /// `rolling_maintenance { … }` (or `-rolling`): hosts serviced one after another.
    pub rolling: Option<RollingMaintenance>,
    /// The intents given as flags ([`Config::with_command_line`]); a saved plan records them,
    /// so that `berth apply FILE` plans again with the same ones.
    pub command_line: super::CommandLineIntents,
}

/// `rolling_maintenance { hosts, host_command, back_timeout_s, back_when,
/// host_command_expected_s }`:
/// service hosts one after another, each in a phase of its own (maintenance, the host
/// command over SSH, wait until the host is back, end of maintenance).
#[derive(Debug, Clone, PartialEq)]
pub struct RollingMaintenance {
    /// The hosts, in the order they are serviced (HCL `hosts`, then `-rolling` flags).
    pub hosts: Vec<Spanned<String>>,
    /// The operator's patch or reboot command, one element per argument (never a shell
    /// string); run on each host over SSH. Required when `hosts` is not empty.
    pub host_command: Option<Spanned<Vec<String>>>,
    /// How long a host may take to come back after its command (libvirt answers, facts read).
    pub back_timeout_s: u64,
    /// When WAIT_HOST takes the host as back (`back_when`).
    pub back_when: BackWhen,
    /// How long the host command and the host's return are expected to take, for the plan's
    /// predicted durations only.
    pub host_command_expected_s: u64,
    /// A name for this maintenance (`run = "2026-12-patch"`). A host the block's `hosts`
    /// lists that the state records as serviced with the same `host_command` and `run` is not
    /// serviced again: the block converges once applied. A new `run` services them again.
    pub run: Option<Spanned<String>>,
    /// The block (or the first `-rolling` flag).
    pub span: Span,
}

impl RollingMaintenance {
    pub const DEFAULT_BACK_TIMEOUT_S: u64 = 1800;
    pub const DEFAULT_EXPECTED_S: u64 = 600;
}

/// When a rolling maintenance's WAIT_HOST takes a serviced host as back
/// (`rolling_maintenance.back_when`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackWhen {
    /// libvirt answers, facts are read again, and the host's boot id
    /// (`/proc/sys/kernel/random/boot_id`) differs from the one read just before the host
    /// command ran: the host was seen rebooting. A host command that returns before the reboot
    /// (`shutdown -r +1`, a patch tool that schedules it) cannot let guests back onto a host
    /// about to go down, and a command whose SSH connection the reboot cuts has ended.
    #[default]
    Rebooted,
    /// libvirt answers and facts are read again: for host commands that patch without
    /// rebooting (a cut SSH connection is then an error).
    Answers,
}

impl BackWhen {
    /// The HCL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BackWhen::Rebooted => "rebooted",
            BackWhen::Answers => "answers",
        }
    }
}
