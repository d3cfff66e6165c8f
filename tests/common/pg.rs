//! A private PostgreSQL server for tests: `initdb` in a temporary directory, listening only on
//! a unix socket in that directory (no TCP port to collide on), stopped and removed when the
//! last test using it lets go. Debian's `postgresql` package provides the binaries
//! (tests/install-deps.sh installs it); as root the server runs as the `postgres` user, since
//! PostgreSQL refuses to run as root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Names the socket file (`.s.PGSQL.<port>`), and the TCP port on 127.0.0.1 of a server
    /// started with [`PgServer::start_tcp`] (the others listen on no TCP port).
    pub port: u16,
    tcp: bool,
    /// `ssl = on` with these certificates.
    pub pki: Option<Pki>,
}

/// The host name the server certificate of [`Pki`] is for (tests connect to it with
/// `hostaddr=127.0.0.1`, so no name resolution is involved).
pub const SERVER_NAME: &str = "db.berth.test";

/// The user [`Pki::client_cert`] is for, who must log in with it (`cert` in pg_hba.conf).
pub const CERT_USER: &str = "certuser";

/// The user who must log in with [`SCRAM_PASSWORD`] (`scram-sha-256` in pg_hba.conf).
pub const SCRAM_USER: &str = "scramuser";
pub const SCRAM_PASSWORD: &str = "scram-pw-never-shown-41f0";

/// A certificate chain made for one test run (PEM files in a directory of their own): a root
/// CA, an intermediate CA it signed, the server's certificate for [`SERVER_NAME`] signed by the
/// intermediate (served with it), a client certificate for [`CERT_USER`] signed by the root,
/// and an unrelated CA that signed none of them.
pub struct Pki {
    _dir: tempfile::TempDir,
    pub root_ca: PathBuf,
    pub other_ca: PathBuf,
    /// The server certificate followed by the intermediate.
    pub server_chain: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn generate() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let ca_params = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p
        };
        let root = CertifiedIssuer::self_signed(
            ca_params("berth test root"),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let other = CertifiedIssuer::self_signed(
            ca_params("berth test other root"),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("berth test intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAME);
        let server = server.signed_by(&server_key, &intermediate).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, CERT_USER);
        let client = client.signed_by(&client_key, &root).unwrap();

        let dir = tempfile::Builder::new()
            .prefix("berth-pki-")
            .tempdir()
            .unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            root_ca: write("root.pem", root.pem()),
            other_ca: write("other-root.pem", other.pem()),
            server_chain: write(
                "server-chain.pem",
                format!("{}{}", server.pem(), intermediate.pem()),
            ),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            _dir: dir,
        }
    }
}

/// The newest PostgreSQL under /usr/lib/postgresql.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run tests/install-deps.sh as root")
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/initdb: run tests/install-deps.sh as root")
        .1
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0)
}

impl PgServer {
    /// A new server of its own (for tests that stop or restart it).
    pub fn start() -> PgServer {
        let server = PgServer::init(5432, false, None);
        server.pg_ctl_start();
        server
    }

    /// A server that also listens on 127.0.0.1 (a free port), with `ssl = on` and `pki`'s
    /// certificates when given, and `hba` as its pg_hba.conf (local connections are always
    /// trusted, for the tests' own queries).
    pub fn start_tcp(pki: Option<Pki>, hba: &str) -> PgServer {
        // A free port now may be taken before the server binds it: try a few.
        let mut pki = pki;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let server = PgServer::init(port, true, pki.take());
            let conf = format!("local all all trust\n{hba}\n");
            std::fs::write(server.data().join("pg_hba.conf"), conf).unwrap();
            if let Some(pki) = &server.pki {
                for (from, to) in [
                    (&pki.server_chain, "server.crt"),
                    (&pki.server_key, "server.key"),
                    (&pki.root_ca, "root.crt"),
                ] {
                    server.install(from, to);
                }
            }
            if server.try_pg_ctl_start().is_ok() {
                return server;
            }
            pki = server.take_pki();
        }
        panic!("PostgreSQL did not start on a free TCP port in 5 tries");
    }

    fn take_pki(mut self) -> Option<Pki> {
        self.pki.take()
    }

    /// Copies `from` into the data directory as `to`, mode 0600, owned by the server's user.
    fn install(&self, from: &Path, to: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data().join(to);
        std::fs::copy(from, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(&path)
                .status()
                .unwrap();
            assert!(chown.success());
        }
    }

    fn init(port: u16, tcp: bool, pki: Option<Pki>) -> PgServer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("berth-pg-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let server = PgServer {
            dir,
            bin: bin_dir(),
            port,
            tcp,
            pki,
        };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data().display().to_string(),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-instructions",
            ],
        );
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a PostgreSQL tool (as `postgres` when we are root) and checks it succeeded.
    fn run(&self, tool: &str, args: &[&str]) {
        if let Err(e) = self.try_run(tool, args) {
            panic!("{e}");
        }
    }

    /// Runs a PostgreSQL tool (as `postgres` when we are root); its output when it failed.
    fn try_run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let out = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap();
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{tool} {args:?} failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        ))
    }

    fn pg_ctl_start(&self) {
        if let Err(e) = self.try_pg_ctl_start() {
            panic!("{e}");
        }
    }

    fn try_pg_ctl_start(&self) -> Result<(), String> {
        let mut options = format!(
            "-c listen_addresses='{}' -k {} -p {} -c max_connections=200",
            if self.tcp { "127.0.0.1" } else { "" },
            self.socket_dir().display(),
            self.port
        );
        if self.pki.is_some() {
            options.push_str(
                " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=root.crt",
            );
        }
        self.try_run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.dir.path().join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
    }

    /// Stops the server the way a crash does (`immediate`: no checkpoint, recovery from the
    /// WAL at the next start).
    pub fn crash(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    pub fn start_again(&self) {
        self.pg_ctl_start();
    }

    /// A connection of the test's own over the unix socket (no TLS), to look at the server.
    pub fn admin(&self) -> postgres::Client {
        postgres::Config::new()
            .host_path(self.socket_dir())
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// The connection string berth takes (`BERTH_PG_URL`).
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir().display(),
            self.port
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new(if is_root() { "runuser" } else { "env" })
            .args(if is_root() {
                vec!["-u", "postgres", "--"]
            } else {
                vec![]
            })
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The server the tests of one binary share: started by the first test that asks, stopped
/// when the last one holding it finishes (a later test starts a new one).
pub fn shared() -> Arc<PgServer> {
    static CURRENT: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(server) = current.upgrade() {
        return server;
    }
    let server = Arc::new(PgServer::start());
    *current = Arc::downgrade(&server);
    server
}

/// The TLS server the tests of one binary share ([`PgServer::start_tcp`] with a [`Pki`]): TCP
/// connections only with TLS (`hostssl`), [`CERT_USER`] only with its client certificate,
/// [`SCRAM_USER`] only with its password.
pub fn shared_tls() -> Arc<PgServer> {
    static CURRENT: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(server) = current.upgrade() {
        return server;
    }
    let server = PgServer::start_tcp(
        Some(Pki::generate()),
        &format!(
            "hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
             hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust"
        ),
    );
    server
        .admin()
        .batch_execute(&format!(
            "CREATE ROLE {CERT_USER} LOGIN SUPERUSER;
             SET password_encryption = 'scram-sha-256';
             CREATE ROLE {SCRAM_USER} LOGIN SUPERUSER PASSWORD '{SCRAM_PASSWORD}';"
        ))
        .unwrap();
    let server = Arc::new(server);
    *current = Arc::downgrade(&server);
    server
}
