//! A private sshd on 127.0.0.1 for tests: random port, throw-away host and client keys,
//! killed by its PID when dropped. Needs `sshd` (openssh-server) and `ssh-keygen`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::remote::SshTarget;

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd, killed (by its PID) when dropped.
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    pub user: String,
}

pub fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen must be installed (openssh-client)")
        .success();
    assert!(ok, "ssh-keygen failed for {}", path.display());
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_inner(false)
    }

    /// A private sshd in a mount namespace of its own (`unshare -m`, needs root) where the
    /// file [`Sshd::boot_id_file`] is bind-mounted over `/proc/sys/kernel/random/boot_id`:
    /// a command run over this sshd "reboots" by writing a new id into that path. Its
    /// `/dev/shm` is [`Sshd::shm_dir`], its own.
    pub fn start_with_boot_id() -> Sshd {
        Sshd::start_inner(true)
    }

    /// The directory that the sshd's commands see as their host's `/dev/shm` (with
    /// [`Sshd::start_with_boot_id`]): where a host command's guard makes its start marker.
    pub fn shm_dir(&self) -> PathBuf {
        self.path("shm")
    }

    /// Makes the sshd's `/dev/shm` read-only for its commands, root included (a remount of the
    /// bind mount inside the sshd's mount namespace).
    pub fn make_shm_read_only(&self) {
        let ok = Command::new("nsenter")
            .arg("-t")
            .arg(self.child.id().to_string())
            .args(["-m", "mount", "-o", "remount,bind,ro", "/dev/shm"])
            .status()
            .expect("nsenter (util-linux)")
            .success();
        assert!(ok, "remounting the sshd's /dev/shm read-only");
    }

    /// The file that the sshd's commands see as their host's boot id.
    pub fn boot_id_file(&self) -> PathBuf {
        self.path("boot_id")
    }

    /// The boot id the sshd's commands see now.
    pub fn boot_id(&self) -> String {
        std::fs::read_to_string(self.boot_id_file())
            .unwrap()
            .trim()
            .to_string()
    }

    fn start_inner(own_boot_id: bool) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: these tests need openssh-server (apt-get install openssh-server)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd insists on its privilege-separation directory when started as root.
        if current_user() == "root" {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let mut command = if own_boot_id {
            std::fs::write(d.join("boot_id"), "0b0b0b0b-1111-4111-8111-000000000001\n").unwrap();
            std::fs::create_dir(d.join("shm")).unwrap();
            let mut c = Command::new("unshare");
            // unshare execs sh, which execs sshd: the child's PID is sshd's.
            c.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(
                    "mount --bind \"$0\" /proc/sys/kernel/random/boot_id && \
                     mount --bind \"$1\" /dev/shm && shift && exec \"$@\"",
                )
                .arg(d.join("boot_id"))
                .arg(d.join("shm"))
                .arg(SSHD);
            c
        } else {
            Command::new(SSHD)
        };
        let child = command
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting sshd");
        let sshd = Sshd {
            dir,
            child,
            port,
            user: current_user(),
        };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts file naming this server's real host key.
    pub fn known_hosts(&self) -> PathBuf {
        let key = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        let mut fields = key.split_whitespace();
        let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
        let path = self.path("known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {kind} {blob}\n", self.port)).unwrap();
        path
    }

    pub fn target(&self, known_hosts: PathBuf) -> SshTarget {
        SshTarget {
            port: Some(self.port),
            identity_file: Some(self.path("client_key")),
            known_hosts_file: Some(known_hosts),
            ..SshTarget::new("127.0.0.1", self.user.clone())
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bridges of this machine, read locally the way the remote side reads them.
pub fn local_bridges() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("bridge").is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
