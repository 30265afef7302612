//! TLS to PostgreSQL (docs/postgresql.md, "TLS"): libpq's `sslmode` and
//! `sslrootcert` in `database_url`, on rustls (no OpenSSL).
//!
//! The modes, as libpq defines them, less the two that may fall back to
//! plaintext without saying so (`allow`, `prefer`):
//! - `disable`: no TLS.
//! - `require`: TLS, the certificate not checked (only against a passive
//!   listener); with `sslrootcert` it is `verify-ca`, as in libpq.
//! - `verify-ca`: TLS, a certificate signed by the CA in `sslrootcert`.
//! - `verify-full`: as `verify-ca`, and the certificate names the host of
//!   `database_url` (the only mode that stops someone in the middle who
//!   holds any certificate of the same CA).
//!
//! Without `sslmode`: `disable` when every host is on this machine (a
//! Unix socket, `localhost`, a loopback address), `verify-full` otherwise.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The `sslmode` values meldkluis takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" | "prefer" => Err(format!(
                "sslmode={value} is not supported: it falls back to an unencrypted connection \
                 without saying so; use sslmode=verify-full (or disable, on this machine only)"
            )),
            _ => Err(format!(
                "sslmode {:?} is not one meldkluis knows; use disable, require, verify-ca or \
                 verify-full",
                value.chars().take(40).collect::<String>()
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings of a `database_url`, and its other options untouched.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The mode in force (given, or the default for the hosts).
    pub mode: SslMode,
    /// Whether `sslmode` was given in the URL.
    pub given: bool,
    /// The CA file (`sslrootcert`).
    pub root: Option<PathBuf>,
    /// Whether every host is on this machine.
    pub local: bool,
    /// The first host that is not on this machine, to name in warnings.
    pub remote_host: Option<String>,
}

impl fmt::Display for Settings {
    /// In words, for `check-config` and the server's start.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.given { "" } else { ", the default" };
        match (self.mode, &self.root) {
            (SslMode::Disable, _) => write!(f, "not encrypted (sslmode=disable{default})"),
            (SslMode::Require, _) => write!(
                f,
                "encrypted, the server's certificate not checked (sslmode=require{default})"
            ),
            (mode, Some(root)) => write!(
                f,
                "encrypted, the server's certificate checked against {}{} (sslmode={}{default})",
                root.display(),
                if mode == SslMode::VerifyFull {
                    " and the host name"
                } else {
                    ", not the host name"
                },
                mode.as_str()
            ),
            (mode, None) => write!(f, "sslmode={} without sslrootcert", mode.as_str()),
        }
    }
}

impl Settings {
    /// A warning when a database elsewhere is reached without checking
    /// whom: anyone on the path could read and change every report.
    pub fn warning(&self) -> Option<String> {
        let host = self.remote_host.as_deref()?;
        match self.mode {
            SslMode::VerifyFull => None,
            SslMode::Disable => Some(format!(
                "the PostgreSQL host {host} is not on this machine and the connection is not \
                 encrypted (sslmode=disable): use sslmode=verify-full with sslrootcert, the CA \
                 certificate of your database team"
            )),
            mode => Some(format!(
                "the PostgreSQL host {host} is not on this machine and its certificate is not \
                 checked against its name (sslmode={}): use sslmode=verify-full",
                mode.as_str()
            )),
        }
    }

    /// The connector for `postgres::Config::connect`, `None` for plaintext.
    /// Reads the CA file; says what is wrong with it.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, &self.root) {
            (SslMode::Disable, _) => return Ok(None),
            (SslMode::Require, None) => {
                Arc::new(Unchecked(provider.signature_verification_algorithms))
            }
            (_, Some(root)) => {
                let webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(read_roots(root)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("sslrootcert {}: {e}", root.display()))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(AnyName(webpki))
                }
            }
            (mode, None) => {
                return Err(format!(
                    "sslmode={} needs sslrootcert=/path/to/ca.pem: the CA certificate (PEM) \
                     that signed the database server's certificate, from your database team",
                    mode.as_str()
                ));
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

/// Splits `sslmode` and `sslrootcert` off a `postgres://` URL (rust-postgres
/// knows neither `verify-*` nor `sslrootcert`) and returns the URL without
/// them, parsed, with the TLS settings. Reads no file and opens no
/// connection. Messages never repeat the URL: it may hold a password.
pub fn parse_url(url: &str) -> Result<(postgres::Config, Settings), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("expected a PostgreSQL URL starting with postgres:// \
                    (postgres://user@host:port/database?sslmode=verify-full&sslrootcert=/path/ca.pem)"
            .into());
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut mode = None;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(SslMode::parse(&percent_decode(value)?)?),
            "sslrootcert" => {
                let path = percent_decode(value)?;
                if path == "system" {
                    return Err("sslrootcert=system is not supported: name the CA file \
                                (PEM) of your database team"
                        .into());
                }
                if !Path::new(&path).is_absolute() {
                    return Err("sslrootcert must be an absolute path to a PEM file".into());
                }
                root = Some(PathBuf::from(path));
            }
            "sslcert"
            | "sslkey"
            | "sslpassword"
            | "sslcrl"
            | "sslcrldir"
            | "sslsni"
            | "sslcompression"
            | "ssl_min_protocol_version"
            | "ssl_max_protocol_version" => {
                return Err(format!(
                    "the option {key} is not supported (meldkluis takes sslmode and sslrootcert)"
                ));
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: postgres::Config = rest.parse().map_err(|_| {
        "not a valid PostgreSQL URL (postgres://user@host:port/database?options)".to_string()
    })?;
    let remote_host = config
        .get_hosts()
        .iter()
        .filter_map(|host| match host {
            postgres::config::Host::Tcp(name) if !is_local(name) => Some(name.clone()),
            _ => None,
        })
        .chain(
            config
                .get_hostaddrs()
                .iter()
                .filter(|ip| !ip.is_loopback())
                .map(|ip| ip.to_string()),
        )
        .next();
    let local = remote_host.is_none();
    let given = mode.is_some();
    let mode = match mode {
        Some(SslMode::Require) if root.is_some() => SslMode::VerifyCa,
        Some(mode) => mode,
        None if local => SslMode::Disable,
        None => SslMode::VerifyFull,
    };
    config.ssl_mode(if mode == SslMode::Disable {
        postgres::config::SslMode::Disable
    } else {
        postgres::config::SslMode::Require
    });
    Ok((
        config,
        Settings {
            mode,
            given,
            root,
            local,
            remote_host,
        },
    ))
}

/// `localhost` or a loopback address: the link never leaves this machine.
fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % in database_url's options is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "database_url's options are not UTF-8".into())
}

/// The CA certificates of `sslrootcert` (PEM, one or more).
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("sslrootcert {shown}: {}", pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("sslrootcert {shown}: {}", pem_error(&e)))?;
    if certificates.is_empty() {
        return Err(format!(
            "sslrootcert {shown} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| format!("sslrootcert {shown}: not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

fn pem_error(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) => crate::server::config::plain_io(e),
        other => format!("not a PEM file ({other:?})"),
    }
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a wrong name is
        // reported only for a certificate whose chain holds.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without a CA: any certificate, as libpq. The handshake's
/// signatures are still checked, so the key exchange holds against a
/// listener; only someone in the middle goes unnoticed.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A connection error in words with its causes, and for a refused
/// certificate what it most likely means. Carries no value from the
/// database (only the client's and rustls's own messages).
pub fn describe(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut refused = None;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &(dyn std::error::Error + 'static))
            .unwrap_or(cause);
        if let Some(rustls::Error::InvalidCertificate(problem)) = inner.downcast_ref() {
            refused = Some(problem.clone());
        }
        source = cause.source();
    }
    match refused {
        Some(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            text.push_str(
                " (the database server's certificate is not signed by the CA in sslrootcert: \
                 is that file the CA certificate of your database team?)",
            );
        }
        Some(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            text.push_str(
                " (the database server's certificate does not name the host in database_url: \
                 use the host name the certificate names)",
            );
        }
        Some(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            text.push_str(" (the database server's certificate has expired)");
        }
        _ => {}
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Settings {
        parse_url(url).unwrap().1
    }

    #[test]
    fn store_tls_defaults_follow_where_the_database_is() {
        for local in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@%2Frun%2Fpostgresql/db",
        ] {
            let s = settings(local);
            assert_eq!(
                (s.mode, s.given, s.local),
                (SslMode::Disable, false, true),
                "{local}"
            );
            assert!(s.warning().is_none(), "{local}");
        }
        let s = settings("postgres://u@db.example.internal/db");
        assert_eq!((s.mode, s.local), (SslMode::VerifyFull, false));
        assert_eq!(s.remote_host.as_deref(), Some("db.example.internal"));
        // A local name with a remote address is elsewhere too.
        let s = settings("postgres://u@localhost/db?hostaddr=192.0.2.7");
        assert_eq!(s.mode, SslMode::VerifyFull);
        // With a CA, `require` checks it (libpq's rule).
        let s = settings("postgres://u@db.example.internal/db?sslmode=require&sslrootcert=/ca.pem");
        assert_eq!(s.mode, SslMode::VerifyCa);
        assert!(s.warning().unwrap().contains("sslmode=verify-ca"));
        let s = settings("postgres://u@db.example.internal/db?sslmode=disable");
        assert!(s.warning().unwrap().contains("not encrypted"));
    }

    #[test]
    fn store_tls_options_are_taken_off_and_the_rest_kept() {
        let (config, s) = parse_url(
            "postgres://u@db.example.internal/db?application_name=meldkluis&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fmeldkluis%2Fdb%20ca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(
            s.root.as_deref(),
            Some(Path::new("/etc/meldkluis/db ca.pem"))
        );
        assert_eq!(config.get_application_name(), Some("meldkluis"));
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
        assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Require);
        let (config, _) = parse_url("postgres://u@localhost/db").unwrap();
        assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Disable);
        for bad in [
            "host=db sslmode=require",
            "postgres://u@db/db?sslrootcert=%zz",
            "postgres://u@db/db?sslmode=VERIFY-FULL",
            "postgres://u@db/db?sslkey=/k.pem",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
