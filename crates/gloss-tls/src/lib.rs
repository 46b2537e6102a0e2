//! TLS for Gloss.
//!
//! A certificate directory holds `ca.crt` (the cluster's CA), `tls.crt` and `tls.key` (this
//! machine's certificate, signed by that CA, and its key): the layout cert-manager and
//! `glossctl certs init` write. With one configured:
//! - the internal port (Raft, workers) requires mutual TLS: peers and workers must present a
//!   certificate signed by the cluster CA, and they check the coordinator's;
//! - the public gRPC and HTTP ports serve TLS, and clients check them against the CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// File names inside a certificate directory.
pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
/// The CA's private key, written by [`generate`] only; never needed by a running node.
pub const CA_KEY_FILE: &str = "ca.key";

/// Errors loading or creating certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Pem { path: PathBuf, problem: String },
    #[error("{path} already exists; move it away or choose another --out")]
    Exists { path: PathBuf },
    #[error("bad address {addr}: {problem}")]
    Address { addr: String, problem: String },
    #[error("TLS set-up failed: {0}")]
    Setup(String),
    #[error("bad host name {host:?}: {problem}")]
    Host { host: String, problem: String },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn pem_error(path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.into(),
        problem: problem.to_string(),
    }
}

/// Reads a PEM file of certificates, refusing one that holds none.
fn read_certs(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no PEM certificate in it"));
    }
    Ok(pem)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(path)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(_)) => Ok(pem),
        Ok(None) => Err(pem_error(path, "no PEM private key in it")),
        Err(e) => Err(pem_error(path, e)),
    }
}

/// A node's certificates: the CA, its certificate and key.
#[derive(Clone)]
pub struct TlsDir {
    dir: PathBuf,
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for TlsDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsDir").field("dir", &self.dir).finish()
    }
}

impl TlsDir {
    /// Loads `ca.crt`, `tls.crt` and `tls.key` from `dir`, checking that each parses.
    pub fn load(dir: &Path) -> Result<TlsDir, TlsError> {
        Ok(TlsDir {
            dir: dir.into(),
            ca: read_certs(&dir.join(CA_FILE))?,
            cert: read_certs(&dir.join(CERT_FILE))?,
            key: read_key(&dir.join(KEY_FILE))?,
        })
    }

    /// The directory the certificates came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// gRPC server TLS. With `mutual`, only clients presenting a certificate signed by the
    /// cluster CA get through the handshake (the internal port).
    pub fn grpc_server(&self, mutual: bool) -> ServerTlsConfig {
        let config = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key));
        if mutual {
            config.client_ca_root(Certificate::from_pem(&self.ca))
        } else {
            config
        }
    }

    /// Client TLS for the internal port: checks the server against the CA and presents this
    /// node's certificate.
    pub fn internal_client(&self) -> ClientTls {
        ClientTls {
            ca: self.ca.clone(),
            identity: Some((self.cert.clone(), self.key.clone())),
        }
    }

    /// A rustls server configuration for the HTTP port (TLS only, HTTP/2 and HTTP/1.1).
    pub fn http_server(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let certs = rustls_pemfile::certs(&mut self.cert.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(&self.dir.join(CERT_FILE), e))?;
        let key = rustls_pemfile::private_key(&mut self.key.as_slice())
            .map_err(|e| pem_error(&self.dir.join(KEY_FILE), e))?
            .ok_or_else(|| pem_error(&self.dir.join(KEY_FILE), "no PEM private key in it"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| pem_error(&self.dir.join(CERT_FILE), e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// What a client needs to reach a TLS port: the CA to check the server against, and, for the
/// internal port, a certificate to present.
#[derive(Clone)]
pub struct ClientTls {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Checks servers against the CA certificate in `path` (a public-port client).
    pub fn from_ca_file(path: &Path) -> Result<ClientTls, TlsError> {
        Ok(ClientTls {
            ca: read_certs(path)?,
            identity: None,
        })
    }

    fn config(&self, host: &str) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .domain_name(host);
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

/// The host part of `HOST:PORT`, `[V6]:PORT` or a URL's authority.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// An endpoint for `addr` (`HOST:PORT` or a URL): `https` with `tls`, checking the server's
/// certificate names `HOST`; plain `http` without.
pub fn endpoint(addr: &str, tls: Option<&ClientTls>) -> Result<Endpoint, TlsError> {
    let (scheme, authority) = match addr.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest.split('/').next().unwrap_or(rest)),
        None => (None, addr),
    };
    let bad = |problem: String| TlsError::Address {
        addr: addr.into(),
        problem,
    };
    let url = match (scheme, tls) {
        (Some("http"), Some(_)) => {
            return Err(bad(
                "TLS is configured, so the address must not say http://".into(),
            ))
        }
        (Some(_), _) => addr.to_string(),
        (None, Some(_)) => format!("https://{addr}"),
        (None, None) => format!("http://{addr}"),
    };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    match tls {
        Some(tls) => endpoint
            .tls_config(tls.config(host_of(authority)))
            .map_err(|e| bad(e.to_string())),
        None => Ok(endpoint),
    }
}

/// Files [`generate`] wrote.
#[derive(Debug)]
pub struct Generated {
    pub files: Vec<PathBuf>,
    pub hosts: Vec<String>,
}

fn year_now() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    1970 + (secs / 31_556_952) as i32
}

fn write_new(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let write_error = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(contents.as_bytes()).map_err(write_error)
}

/// Creates a development CA and one certificate, for servers and clients alike, naming `hosts`
/// (DNS names or IP addresses), in `out`: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`. Refuses to
/// overwrite any of them. The CA is valid for ten years and the certificate for five.
pub fn generate(out: &Path, hosts: &[String]) -> Result<Generated, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let hosts: Vec<String> = hosts
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return Err(TlsError::Host {
            host: String::new(),
            problem: "give at least one host name or address".into(),
        });
    }
    let mut sans = Vec::new();
    for host in &hosts {
        let dns_name = host.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        });
        sans.push(match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) if !dns_name => {
                return Err(TlsError::Host {
                    host: host.clone(),
                    problem: "not an IP address, nor a DNS name (letters, digits, '-', '.')".into(),
                })
            }
            Err(_) => SanType::DnsName(host.clone().try_into().map_err(|e: rcgen::Error| {
                TlsError::Host {
                    host: host.clone(),
                    problem: e.to_string(),
                }
            })?),
        });
    }
    let names = [CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE].map(|n| out.join(n));
    if let Some(path) = names.iter().find(|p| p.exists()) {
        return Err(TlsError::Exists { path: path.clone() });
    }
    let setup = |e: rcgen::Error| TlsError::Setup(e.to_string());
    let year = year_now();

    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Gloss development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let ca_key = KeyPair::generate().map_err(setup)?;
    let ca = ca_params.self_signed(&ca_key).map_err(setup)?;

    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, hosts[0].clone());
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 5, 1, 1);
    let key = KeyPair::generate().map_err(setup)?;
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(setup)?;

    std::fs::create_dir_all(out).map_err(|source| TlsError::Write {
        path: out.into(),
        source,
    })?;
    let contents = [
        (ca.pem(), false),
        (ca_key.serialize_pem(), true),
        (cert.pem(), false),
        (key.serialize_pem(), true),
    ];
    for (path, (text, private)) in names.iter().zip(contents) {
        write_new(path, &text, private)?;
    }
    Ok(Generated {
        files: names.to_vec(),
        hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_ports_and_brackets() {
        assert_eq!(host_of("gloss-0.peers:7071"), "gloss-0.peers");
        assert_eq!(host_of("127.0.0.1:7070"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7070"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn generated_directory_loads_and_refuses_to_be_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let made = generate(&out, &["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(made.files.len(), 4);
        let tls = TlsDir::load(&out).unwrap();
        tls.http_server().unwrap();
        let again = generate(&out, &["localhost".into()]).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(out.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsDir::load(dir.path()).unwrap_err().to_string();
        assert!(missing.contains("ca.crt"), "{missing}");
        std::fs::write(dir.path().join(CA_FILE), "not a certificate").unwrap();
        let empty = TlsDir::load(dir.path()).unwrap_err().to_string();
        assert!(empty.contains("ca.crt: no PEM certificate"), "{empty}");
        let bad_host = generate(&dir.path().join("x"), &["bad host!".into()]).unwrap_err();
        assert!(bad_host.to_string().contains("bad host!"), "{bad_host}");
    }

    #[test]
    fn endpoints_follow_the_tls_setting() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &["localhost".into()]).unwrap();
        let tls = TlsDir::load(dir.path()).unwrap().internal_client();
        assert_eq!(
            endpoint("h:1", None).unwrap().uri().scheme_str(),
            Some("http")
        );
        assert_eq!(
            endpoint("h:1", Some(&tls)).unwrap().uri().scheme_str(),
            Some("https")
        );
        let refused = endpoint("http://h:1", Some(&tls)).unwrap_err().to_string();
        assert!(refused.contains("must not say http://"), "{refused}");
    }
}
