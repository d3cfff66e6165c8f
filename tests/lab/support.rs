//! The KVM lab as the lab tests see it: where it is, its hosts, test guest XML, the ticker's
//! serial log, and cleanup that runs even when a test fails.
//!
//! Only setup and cleanup live here. What a test proves goes through berth's own libvirt and
//! SSH layers; the harness (`tests/lab/lab.sh`) is used for guest XML and for acting inside a
//! host independently of berth (e.g. creating a bridge berth must then find).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth::apply::hypervisor::Hypervisor;
use berth::remote::SshTarget;
use virt::connect::Connect;

/// Where `lab.sh` builds the lab unless `BERTH_LAB` says otherwise.
pub const DEFAULT_DIR: &str = "/tmp/berth-lab";

/// How long a guest may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the ticker may take to log the tick a test waits for.
pub const TICK_TIMEOUT: Duration = Duration::from_secs(30);

/// How `lab.sh up` is asked for in every failure message.
pub const START_HINT: &str = "start it with `tests/lab/lab.sh up 3` (as root; set BERTH_LAB for both if the lab is not at /tmp/berth-lab)";

/// The running lab.
pub struct Lab {
    pub dir: PathBuf,
    script: PathBuf,
}

/// One lab host: `labhN` at 10.77.0.1N.
#[derive(Debug, Clone)]
pub struct LabHost {
    pub name: String,
    pub ip: String,
    /// libvirt over TCP, reachable from the root namespace.
    pub uri: String,
}

/// A test guest, turned into domain XML by `lab.sh domxml`.
pub struct GuestSpec<'a> {
    pub name: &'a str,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// Boot the ticker (raw disk on `$LAB/shared`) with its serial log at this path.
    pub ticker_serial: Option<&'a Path>,
    pub bridge: Option<&'a str>,
}

impl Lab {
    /// The lab at `BERTH_LAB` (default `/tmp/berth-lab`, as for `lab.sh`), checked to be up with three hosts. Panics with what to run
    /// when it is not: these tests are meaningless without it.
    pub fn from_env() -> Lab {
        let dir =
            std::env::var_os("BERTH_LAB").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
        let lab = Lab {
            dir,
            script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/lab.sh")),
        };
        quiet_libvirt();
        for n in 1..=3 {
            let host = lab.host(n);
            if let Err(e) = Connect::open(Some(&host.uri)) {
                panic!(
                    "the KVM lab at {} is not up: libvirt on {} ({}) does not answer: {}; {START_HINT}",
                    lab.dir.display(),
                    host.name,
                    host.uri,
                    e.message()
                );
            }
        }
        lab
    }

    pub fn host(&self, n: u8) -> LabHost {
        assert!((1..=9).contains(&n), "lab hosts are numbered 1..9, not {n}");
        let ip = format!("10.77.0.1{n}");
        LabHost {
            name: format!("labh{n}"),
            uri: format!("qemu+tcp://{ip}/system"),
            ip,
        }
    }

    pub fn hosts(&self) -> Vec<LabHost> {
        (1..=3).map(|n| self.host(n)).collect()
    }

    /// SSH to host N as the lab's root, by name (the lab's ssh_config maps it to its address),
    /// with the lab key and strict host key checking against the lab's known_hosts.
    pub fn ssh_target(&self, n: u8) -> SshTarget {
        let mut t = SshTarget::new(self.host(n).name, "root");
        t.identity_file = Some(self.dir.join("ssh/id_ed25519"));
        t.known_hosts_file = Some(self.dir.join("ssh/known_hosts"));
        t.config_file = Some(self.dir.join("ssh/ssh_config"));
        t.strict_host_key_checking = true;
        t
    }

    pub fn ticker_disk(&self) -> PathBuf {
        self.dir.join("shared/ticker.img")
    }

    /// An empty serial log on the shared path for `guest`.
    pub fn fresh_serial(&self, guest: &str) -> Serial {
        let path = self.dir.join("shared").join(format!("{guest}.serial"));
        std::fs::write(&path, b"")
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Serial { path }
    }

    pub fn domxml(&self, spec: &GuestSpec) -> String {
        let disk = self.ticker_disk();
        let (disk, serial) = match spec.ticker_serial {
            Some(serial) => (
                disk.to_str().expect("lab path is UTF-8"),
                serial.to_str().expect("lab path is UTF-8"),
            ),
            None => ("-", "-"),
        };
        let out = self.script(&[
            "domxml",
            spec.name,
            "",
            disk,
            spec.bridge.unwrap_or("-"),
            serial,
            &spec.memory_mib.to_string(),
            &spec.vcpus.to_string(),
        ]);
        String::from_utf8(out.stdout).expect("domxml prints UTF-8")
    }

    /// Runs `argv` inside host N through the harness (not through berth).
    pub fn exec(&self, n: u8, argv: &[&str]) -> Output {
        let mut args = vec!["exec".to_string(), n.to_string()];
        args.extend(argv.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.script(&args)
    }

    fn script(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.script)
            .args(args)
            .env("BERTH_LAB", &self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "lab.sh {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Stops libvirtd on host N (by the PID in that host's private /run) and waits until
    /// it no longer answers.
    pub fn stop_libvirtd(&self, n: u8) {
        self.exec(n, &["sh", "-c", "kill -TERM \"$(cat /run/libvirtd.pid)\""]);
        let uri = self.host(n).uri;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Connect::open(Some(&uri)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "libvirtd on {uri} still answers 20 s after TERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `lab.sh up 3` when the guard drops, which restarts any daemon a test stopped.
    pub fn restart_on_drop(&self) -> RestartLab {
        RestartLab {
            script: self.script.clone(),
            dir: self.dir.clone(),
        }
    }

    /// Leaves no trace of `guests` (on any host) or `bridges` (host number, name), now and
    /// again when the returned guard drops, also when the test panics.
    pub fn cleanup(&self, guests: &[&str], bridges: &[(u8, &str)]) -> Cleanup {
        let c = Cleanup {
            script: self.script.clone(),
            dir: self.dir.clone(),
            uris: self.hosts().into_iter().map(|h| h.uri).collect(),
            guests: guests.iter().map(|g| g.to_string()).collect(),
            bridges: bridges.iter().map(|(n, b)| (*n, b.to_string())).collect(),
        };
        c.run();
        c
    }
}

/// libvirt would print every error to stderr; the tests report errors themselves.
pub fn quiet_libvirt() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(virt::error::clear_error_callback);
}

/// See [`Lab::cleanup`].
pub struct Cleanup {
    script: PathBuf,
    dir: PathBuf,
    uris: Vec<String>,
    guests: Vec<String>,
    bridges: Vec<(u8, String)>,
}

impl Cleanup {
    /// Best effort: what is already gone is fine.
    fn run(&self) {
        for uri in &self.uris {
            let Ok(conn) = Connect::open(Some(uri)) else {
                continue;
            };
            for g in &self.guests {
                if let Ok(dom) = conn.lookup_domain_by_name(g) {
                    let _ = dom.destroy();
                    let _ = dom.undefine();
                }
            }
        }
        for (n, bridge) in &self.bridges {
            let _ = Command::new(&self.script)
                .args(["exec", &n.to_string(), "ip", "link", "del", bridge])
                .env("BERTH_LAB", &self.dir)
                .output();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
        // A failed test's serial logs are kept: they show what the guest did.
        for g in &self.guests {
            let serial = self.dir.join("shared").join(format!("{g}.serial"));
            if std::thread::panicking() {
                if serial.exists() {
                    eprintln!("serial log of {g} kept at {}", serial.display());
                }
            } else {
                let _ = std::fs::remove_file(serial);
            }
        }
    }
}

/// A ticker's serial log: "ticker boot" once per boot, then "tick N" about every second.
pub struct Serial {
    pub path: PathBuf,
}

impl Serial {
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// The ticks of complete lines (the last line may be half written: "tick 1" of "tick 13").
    pub fn ticks(&self) -> Vec<u32> {
        let text = self.text();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
            .collect()
    }

    pub fn boots(&self) -> usize {
        self.text()
            .lines()
            .filter(|l| l.trim() == "ticker boot")
            .count()
    }

    /// Ticks logged out of order within one boot: each one repeats or goes back from the tick
    /// before it. Two copies of one guest running at once both append to the log, so their
    /// counters interleave ("tick 7, tick 7, tick 8, tick 8"; a second copy that booted shows
    /// as "ticker boot, tick 1, tick 58, tick 2"); one guest only ever counts up from its boot.
    pub fn doubled_ticks(&self) -> Vec<u32> {
        let mut doubled = Vec::new();
        let mut last: Option<u32> = None;
        let text = self.text();
        // The last line may be half written ("tick 1" of "tick 135"): complete lines only.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in complete.lines() {
            if line.trim() == "ticker boot" {
                last = None;
            } else if let Some(t) = line
                .strip_prefix("tick ")
                .and_then(|t| t.trim().parse().ok())
            {
                if last.is_some_and(|l| t <= l) {
                    doubled.push(t);
                }
                last = Some(t);
            }
        }
        doubled
    }

    pub fn last_tick(&self) -> u32 {
        self.ticks().last().copied().unwrap_or(0)
    }

    /// Waits until a tick above `min` is logged and returns it; panics after `timeout`.
    pub fn wait_tick_above(&self, min: u32, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.last_tick();
            if last > min {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "no tick above {min} in {} within {timeout:?}; log:\n{}",
                self.path.display(),
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Defines a guest through berth and, when `start`, starts it.
pub fn define(hv: &Hypervisor, lab: &Lab, spec: &GuestSpec, start: bool) {
    hv.define(&lab.domxml(spec))
        .unwrap_or_else(|e| panic!("{e}"));
    if start {
        hv.start(spec.name, START_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Defines and starts a ticker guest `name` (64 MiB, 1 vCPU, on `bridge` when given) on `hv`
/// through berth, and waits until it ticks (a tick above 1): the guest runs. Returns its
/// serial log.
pub fn start_ticker(hv: &Hypervisor, lab: &Lab, name: &str, bridge: Option<&str>) -> Serial {
    let serial = lab.fresh_serial(name);
    let spec = GuestSpec {
        name,
        memory_mib: 64,
        vcpus: 1,
        ticker_serial: Some(&serial.path),
        bridge,
    };
    define(hv, lab, &spec, true);
    serial.wait_tick_above(1, TICK_TIMEOUT);
    serial
}

/// A current-thread tokio runtime for the SSH layer (which is async).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// See [`Lab::restart_on_drop`].
pub struct RestartLab {
    script: PathBuf,
    dir: PathBuf,
}

impl Drop for RestartLab {
    fn drop(&mut self) {
        let out = Command::new(&self.script)
            .args(["up", "3"])
            .env("BERTH_LAB", &self.dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("lab.sh up 3 failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("cannot run lab.sh up 3: {e}"),
        }
    }
}
