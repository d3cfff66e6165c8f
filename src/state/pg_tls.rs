//! TLS to PostgreSQL with libpq's parameters and meaning, through rustls (no system library):
//!
//! | `sslmode` | encrypts | checks the certificate |
//! |---|---|---|
//! | `disable` | no | — |
//! | `allow` | only when the server refuses a connection in clear text | no |
//! | `prefer` | when the server offers TLS (falls back to clear text) | no |
//! | `require` (berth's default) | always | only its chain, when a CA is given (as libpq) |
//! | `verify-ca` | always | its chain up to `sslrootcert` |
//! | `verify-full` | always | its chain, and that it names the host connected to |
//!
//! The default is `require`, not libpq's `prefer`: the state names every guest and the lock
//! names who holds it, and a server that does not offer TLS should be noticed, not silently
//! talked to in clear text (Terraform's `pg` backend, through lib/pq, defaults to `require`
//! too). Unix-domain sockets never use TLS (PostgreSQL does not offer it there; libpq skips it
//! too), whatever the mode.
//!
//! Each parameter comes from the URL, else from the `state` block, else from libpq's
//! environment variable (`PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`). Without
//! `sslrootcert`, libpq's `~/.postgresql/root.crt` is used when it exists;
//! `sslrootcert=system` takes the system's CAs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::Client;
use postgres::config::{Host, SslMode as DriverMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PgTlsSettings;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &[&str] = &[
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];

    /// berth's default (see the module documentation for why).
    pub const DEFAULT: SslMode = SslMode::Require;

    pub fn parse(name: &str) -> Option<SslMode> {
        Some(match name {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq)]
enum Roots {
    File(PathBuf),
    System,
}

impl std::fmt::Display for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Roots::File(path) => write!(f, "the CA in `{}`", path.display()),
            Roots::System => f.write_str("the system's CAs"),
        }
    }
}

/// How one PostgreSQL backend connects: the mode and, when it uses TLS, the rustls
/// configuration (built once, so that a bad certificate file is reported before anything).
pub struct PgTls {
    mode: SslMode,
    /// Whether the mode was set (not berth's default), for messages.
    mode_given: bool,
    roots: Option<Roots>,
    client_cert: Option<(PathBuf, PathBuf)>,
    /// `None`: TLS is never tried (`disable`, or unix sockets only).
    connector: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls")
            .field("mode", &self.mode)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

/// One parameter: from the URL, else the `state` block (which may not say otherwise than the
/// URL), else the environment.
fn pick(
    name: &str,
    url: &BTreeMap<&'static str, String>,
    hcl: Option<String>,
    env: &str,
) -> Result<Option<String>, String> {
    let from_url = url.get(name).filter(|v| !v.is_empty()).cloned();
    match (from_url, hcl) {
        (Some(u), Some(h)) if u != h => Err(format!(
            "`{name}` is `{u}` in the URL but `{h}` in the `state` block: set it in one place"
        )),
        (Some(u), _) => Ok(Some(u)),
        (None, Some(h)) => Ok(Some(h)),
        (None, None) => Ok(std::env::var(env).ok().filter(|v| !v.is_empty())),
    }
}

fn home_file(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let path = Path::new(&home).join(".postgresql").join(name);
    path.exists().then_some(path)
}

impl PgTls {
    /// Resolves the TLS settings of a connection to `hosts`. `url` holds the parameters taken
    /// out of the URL ([`super::pg_url::split_tls_params`]), `hcl` those of the `state` block.
    pub fn resolve(
        url: &BTreeMap<&'static str, String>,
        hcl: &PgTlsSettings,
        hosts: &[Host],
    ) -> Result<PgTls, String> {
        let given = pick("sslmode", url, hcl.sslmode.clone(), "PGSSLMODE")?;
        let mode_given = given.is_some();
        let mode = match given {
            None => SslMode::DEFAULT,
            Some(name) => SslMode::parse(&name).ok_or_else(|| {
                format!(
                    "`sslmode={name}` is not a mode: use one of {}",
                    SslMode::NAMES.join(", ")
                )
            })?,
        };
        let path_of = |v: Option<PathBuf>| v.map(|p| p.display().to_string());
        let roots = match pick(
            "sslrootcert",
            url,
            path_of(hcl.sslrootcert.clone()),
            "PGSSLROOTCERT",
        )? {
            Some(v) if v == "system" => Some(Roots::System),
            Some(v) => Some(Roots::File(PathBuf::from(v))),
            None => home_file("root.crt").map(Roots::File),
        };
        let cert = pick("sslcert", url, path_of(hcl.sslcert.clone()), "PGSSLCERT")?;
        let key = pick("sslkey", url, path_of(hcl.sslkey.clone()), "PGSSLKEY")?;
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => return Err("`sslcert` is set without `sslkey`".into()),
            (None, Some(_)) => return Err("`sslkey` is set without `sslcert`".into()),
        };
        let unix_only = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)));
        let mut tls = PgTls {
            mode,
            mode_given,
            roots,
            client_cert,
            connector: None,
        };
        if mode != SslMode::Disable && !unix_only {
            tls.connector = Some(MakeRustlsConnect::new(tls.client_config()?));
        }
        Ok(tls)
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The TLS parameters for [`super::pg_url::shown_url`].
    pub fn shown_params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![("sslmode", self.mode.name().to_string())];
        match &self.roots {
            Some(Roots::File(p)) => params.push(("sslrootcert", p.display().to_string())),
            Some(Roots::System) => params.push(("sslrootcert", "system".into())),
            None => {}
        }
        if let Some((cert, _)) = &self.client_cert {
            params.push(("sslcert", cert.display().to_string()));
        }
        params
    }

    fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // What `require` checks: the chain when a CA is at hand (libpq), nothing otherwise.
        let chain_needed = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (self.mode == SslMode::Require && self.roots.is_some());
        let webpki = if chain_needed {
            let roots = self.roots.as_ref().ok_or_else(|| {
                format!(
                    "`sslmode={}` checks the server's certificate, but no CA is given: set `sslrootcert` to the CA's PEM file (or `sslrootcert=system` for the system's CAs); ~/.postgresql/root.crt does not exist",
                    self.mode.name()
                )
            })?;
            let store = load_roots(roots)?;
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                    .build()
                    .map_err(|e| format!("{roots} cannot be used: {e}"))?,
            )
        } else {
            None
        };
        let verifier = Verifier {
            webpki,
            check_name: self.mode == SslMode::VerifyFull,
            provider: Arc::clone(&provider),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        match &self.client_cert {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("`sslkey` `{}` has no usable key: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("`sslcert` and `sslkey` do not go together: {e}"))
            }
        }
    }

    /// Connects as the mode says (with `allow`'s and `prefer`'s second try). The error is the
    /// reason, for the user.
    pub fn connect(&self, config: &postgres::Config) -> Result<Client, String> {
        let Some(connector) = &self.connector else {
            let mut plain = config.clone();
            plain.ssl_mode(DriverMode::Disable);
            return plain.connect(postgres::NoTls).map_err(|e| self.explain(&e));
        };
        let attempt = |mode: DriverMode| {
            let mut c = config.clone();
            c.ssl_mode(mode);
            match mode {
                DriverMode::Disable => c.connect(postgres::NoTls),
                _ => c.connect(connector.clone()),
            }
        };
        match self.mode {
            SslMode::Allow => attempt(DriverMode::Disable).or_else(|first| {
                if first.as_db_error().is_none() {
                    return Err(self.explain(&first));
                }
                attempt(DriverMode::Require).map_err(|second| {
                    format!(
                        "{} (in clear text: {})",
                        self.explain(&second),
                        self.explain(&first)
                    )
                })
            }),
            SslMode::Prefer => attempt(DriverMode::Prefer).or_else(|first| {
                if first.as_db_error().is_none() && rustls_error(&first).is_none() {
                    return Err(self.explain(&first));
                }
                attempt(DriverMode::Disable).map_err(|second| {
                    format!(
                        "{} (with TLS: {})",
                        self.explain(&second),
                        self.explain(&first)
                    )
                })
            }),
            _ => attempt(DriverMode::Require).map_err(|e| self.explain(&e)),
        }
    }

    /// Why connecting failed, in the user's terms.
    fn explain(&self, e: &postgres::Error) -> String {
        if let Some(r) = rustls_error(e) {
            let ca = self
                .roots
                .as_ref()
                .map_or_else(|| "the given CA".to_string(), ToString::to_string);
            return match r {
                rustls::Error::InvalidCertificate(c) => match c {
                    CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                        "certificate not trusted: the server's certificate is not signed by {ca} (sslmode={})",
                        self.mode.name()
                    ),
                    CertificateError::NotValidForName => {
                        "host name mismatch: the server's certificate does not name the host connected to (sslmode=verify-full)".into()
                    }
                    CertificateError::NotValidForNameContext { expected, presented } => format!(
                        "host name mismatch: the server's certificate is for {}, not `{}` (sslmode=verify-full)",
                        if presented.is_empty() {
                            "no host name".to_string()
                        } else {
                            presented.iter().map(|p| plain_name(p)).collect::<Vec<_>>().join(", ")
                        },
                        expected.to_str()
                    ),
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        format!("certificate expired: {c}")
                    }
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                        format!("certificate not valid yet: {c}")
                    }
                    other => format!("certificate rejected: {other}"),
                },
                rustls::Error::AlertReceived(alert) => {
                    format!("the server ended the TLS handshake: {alert:?}")
                }
                other => format!("TLS handshake failed: {other}"),
            };
        }
        if error_chain(e).any(|m| m.contains("server does not support TLS")) {
            return format!(
                "server does not support TLS (sslmode={}{}): turn `ssl = on` in its postgresql.conf, or connect in clear text with sslmode=disable",
                self.mode.name(),
                if self.mode_given {
                    ""
                } else {
                    ", berth's default"
                }
            );
        }
        super::postgres::pg_message(e)
    }
}

/// `db.example.com` from rustls's `DnsName("db.example.com")` (and the like for addresses).
fn plain_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(presented)
}

/// The messages of `e` and its sources.
fn error_chain(e: &postgres::Error) -> impl Iterator<Item = String> + '_ {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.source();
        Some(current.to_string())
    })
}

/// The rustls error behind `e`, if the TLS handshake is what failed (tokio-rustls wraps it in
/// an `io::Error`, whose `source` skips it: look inside).
fn rustls_error(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = next {
        if let Some(r) = current.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        next = current.source();
    }
    None
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |e: rustls::pki_types::pem::Error| {
        format!(
            "`{}` cannot be read as PEM certificates: {e}",
            path.display()
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for cert in read_certs(path)? {
                store.add(cert).map_err(|e| {
                    format!(
                        "`{}` holds a certificate rustls refuses: {e}",
                        path.display()
                    )
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(format!(
                    "`sslrootcert=system`: no CA found on this system ({} errors)",
                    found.errors.len()
                ));
            }
        }
    }
    Ok(store)
}

/// The server certificate check for each mode: webpki's (chain, validity, then name) with
/// the name left out for `verify-ca` and `require`, or none at all (`prefer`, `allow`,
/// `require` without a CA). The handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name last, after the chain: a name error means the chain is good.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> Vec<Host> {
        vec![Host::Tcp("db.example.com".into())]
    }

    #[test]
    fn the_default_is_require_and_unix_sockets_never_use_tls() {
        let none = BTreeMap::new();
        let tls = PgTls::resolve(&none, &PgTlsSettings::default(), &tcp()).unwrap();
        assert_eq!(tls.mode(), SslMode::Require);
        assert!(tls.connector.is_some());
        let unix = [Host::Unix(PathBuf::from("/run/postgresql"))];
        let tls = PgTls::resolve(&none, &PgTlsSettings::default(), &unix).unwrap();
        assert!(tls.connector.is_none());
    }

    #[test]
    fn the_url_and_the_state_block_must_agree() {
        let url = BTreeMap::from([("sslmode", "disable".to_string())]);
        let hcl = PgTlsSettings {
            sslmode: Some("verify-full".into()),
            ..PgTlsSettings::default()
        };
        let err = PgTls::resolve(&url, &hcl, &tcp()).unwrap_err();
        assert!(
            err.contains("`disable` in the URL but `verify-full`"),
            "{err}"
        );
        let url = BTreeMap::from([("sslmode", "verify-full".to_string())]);
        let tls = PgTls::resolve(&url, &hcl, &tcp());
        // Agreeing, but verify-full without a CA (and no ~/.postgresql/root.crt here).
        if home_file("root.crt").is_none() {
            let err = tls.unwrap_err();
            assert!(err.contains("no CA is given"), "{err}");
        }
        let url = BTreeMap::from([("sslmode", "verify-none".to_string())]);
        let err = PgTls::resolve(&url, &PgTlsSettings::default(), &tcp()).unwrap_err();
        assert!(err.contains("is not a mode"), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let url = BTreeMap::from([
            ("sslmode", "verify-ca".to_string()),
            ("sslrootcert", "/nonexistent/ca.pem".to_string()),
        ]);
        let err = PgTls::resolve(&url, &PgTlsSettings::default(), &tcp()).unwrap_err();
        assert!(err.contains("`/nonexistent/ca.pem`"), "{err}");
        let url = BTreeMap::from([("sslcert", "/x.pem".to_string())]);
        let err = PgTls::resolve(&url, &PgTlsSettings::default(), &tcp()).unwrap_err();
        assert!(err.contains("without `sslkey`"), "{err}");
    }
}
