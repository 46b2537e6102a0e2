//! Coordinator configuration. Sources, in increasing priority: built-in defaults, a TOML file,
//! `GLOSS_*` environment variables, command-line flags. The binaries parse flags and environment
//! (clap does both); this module merges them over the file and validates the result once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::oidc::{OidcConfig, OidcSettings};

/// Errors in the configuration, each naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    /// A setting has an unusable value.
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// Settings as they may appear in a file or on the command line; every one is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// This coordinator's Raft node id (≥ 1).
    pub node_id: Option<u64>,
    /// Directory holding the Raft log, state and snapshots.
    pub data_dir: Option<PathBuf>,
    /// Public gRPC listen address.
    pub listen: Option<SocketAddr>,
    /// HTTP listen address (web app, `/metrics`, `/healthz`, `/readyz`).
    pub http: Option<SocketAddr>,
    /// Internal (Raft) listen address.
    pub raft_listen: Option<SocketAddr>,
    /// Internal address other nodes use to reach this one (default: `raft_listen`).
    pub advertise: Option<String>,
    /// Public address clients are told to use for this node (default: `listen`).
    pub advertise_api: Option<String>,
    /// Largest accepted record in an import, in bytes.
    pub max_record_bytes: Option<usize>,
    /// Largest accepted image in an import, in bytes.
    pub max_image_bytes: Option<usize>,
    /// Directory that records' relative image paths are read from at import.
    pub image_dir: Option<PathBuf>,
    /// Examples per replicated import batch.
    pub import_batch: Option<usize>,
    /// Raft entries between snapshots.
    pub snapshot_every: Option<u64>,
    /// Members of a new group, `ID=HOST:PORT,...` (internal addresses). Every member is given
    /// the same list; the group forms once, whatever order the members start in.
    pub initial_members: Option<String>,
    /// Start without forming a group: wait to be added with `glossctl cluster add-learner`.
    pub join: Option<bool>,
    /// File holding the token workers must present to register.
    pub join_token_file: Option<PathBuf>,
    /// File holding the first administrator's token, registered on the cluster's first start
    /// instead of a generated one (for installers that create it, such as the Helm chart).
    pub admin_token_file: Option<PathBuf>,
    /// Directory with `ca.crt`, `tls.crt`, `tls.key`: mutual TLS on the internal port, TLS on
    /// the public gRPC and HTTP ports.
    pub tls_dir: Option<PathBuf>,
    /// Single sign-on with OpenID Connect (the `[oidc]` table; config file only).
    pub oidc: Option<OidcSettings>,
}

impl Overrides {
    /// Reads overrides from a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// `self` where set, otherwise `lower`.
    pub fn over(self, lower: Overrides) -> Overrides {
        Overrides {
            node_id: self.node_id.or(lower.node_id),
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            http: self.http.or(lower.http),
            raft_listen: self.raft_listen.or(lower.raft_listen),
            advertise: self.advertise.or(lower.advertise),
            advertise_api: self.advertise_api.or(lower.advertise_api),
            max_record_bytes: self.max_record_bytes.or(lower.max_record_bytes),
            max_image_bytes: self.max_image_bytes.or(lower.max_image_bytes),
            image_dir: self.image_dir.or(lower.image_dir),
            import_batch: self.import_batch.or(lower.import_batch),
            snapshot_every: self.snapshot_every.or(lower.snapshot_every),
            initial_members: self.initial_members.or(lower.initial_members),
            join: self.join.or(lower.join),
            join_token_file: self.join_token_file.or(lower.join_token_file),
            admin_token_file: self.admin_token_file.or(lower.admin_token_file),
            tls_dir: self.tls_dir.or(lower.tls_dir),
            oidc: self.oidc.or(lower.oidc),
        }
    }
}

/// Validated configuration of one coordinator.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub http: SocketAddr,
    pub raft_listen: SocketAddr,
    pub advertise: String,
    pub advertise_api: String,
    pub max_record_bytes: usize,
    pub max_image_bytes: usize,
    /// Image store for records that name an image file (none: only inline images).
    pub image_dir: Option<PathBuf>,
    pub import_batch: usize,
    pub snapshot_every: u64,
    /// Initial members (node id, internal address); empty means a single-node group of this node.
    pub initial_members: Vec<(u64, String)>,
    /// Never form a group; wait to be added to an existing one.
    pub join: bool,
    /// Token workers present to register (none: workers cannot join).
    pub join_token: Option<Secret>,
    /// First administrator's token to register on first start.
    pub admin_token: Option<Secret>,
    /// Certificate directory (none: plain TCP everywhere).
    pub tls_dir: Option<PathBuf>,
    /// Single sign-on, when configured.
    pub oidc: Option<OidcConfig>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("built-in address parses")
}

impl Config {
    /// Applies defaults to `o` and validates the result.
    pub fn resolve(o: Overrides) -> Result<Config, ConfigError> {
        let listen = o.listen.unwrap_or_else(|| addr("127.0.0.1:7070"));
        let raft_listen = o.raft_listen.unwrap_or_else(|| addr("127.0.0.1:7071"));
        let c = Config {
            node_id: o.node_id.unwrap_or(1),
            data_dir: o.data_dir.unwrap_or_else(|| PathBuf::from("gloss-data")),
            listen,
            http: o.http.unwrap_or_else(|| addr("127.0.0.1:7080")),
            raft_listen,
            advertise: o.advertise.unwrap_or_else(|| raft_listen.to_string()),
            advertise_api: o.advertise_api.unwrap_or_else(|| listen.to_string()),
            max_record_bytes: o.max_record_bytes.unwrap_or(1 << 20),
            max_image_bytes: o.max_image_bytes.unwrap_or(10 << 20),
            image_dir: o.image_dir,
            import_batch: o.import_batch.unwrap_or(2_000),
            snapshot_every: o.snapshot_every.unwrap_or(20_000),
            initial_members: match &o.initial_members {
                Some(list) => parse_members(list)?,
                None => Vec::new(),
            },
            join: o.join.unwrap_or(false),
            join_token: read_secret("join_token_file", o.join_token_file.as_deref())?,
            admin_token: read_secret("admin_token_file", o.admin_token_file.as_deref())?,
            tls_dir: o.tls_dir,
            oidc: o.oidc.map(OidcConfig::resolve).transpose()?,
        };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| {
            Err(ConfigError::Invalid {
                setting,
                reason: reason.into(),
            })
        };
        if self.node_id == 0 {
            return invalid("node_id", "must be at least 1");
        }
        if self.max_record_bytes < 64 || self.max_record_bytes > 64 << 20 {
            return invalid("max_record_bytes", "must be between 64 bytes and 64 MiB");
        }
        if self.max_image_bytes < 64 || self.max_image_bytes > 256 << 20 {
            return invalid("max_image_bytes", "must be between 64 bytes and 256 MiB");
        }
        if self.import_batch == 0 || self.import_batch > 100_000 {
            return invalid("import_batch", "must be between 1 and 100000");
        }
        if self.snapshot_every < 100 {
            return invalid("snapshot_every", "must be at least 100");
        }
        let ports = [self.listen, self.http, self.raft_listen];
        for (i, a) in ports.iter().enumerate() {
            if a.port() != 0 && ports[i + 1..].contains(a) {
                return invalid("listen/http/raft_listen", &format!("{a} is used twice"));
            }
        }
        if self.advertise.parse::<SocketAddr>().is_err() && !self.advertise.contains(':') {
            return invalid("advertise", "must be HOST:PORT");
        }
        if !self.initial_members.is_empty()
            && !self
                .initial_members
                .iter()
                .any(|(id, _)| *id == self.node_id)
        {
            return invalid(
                "initial_members",
                &format!("does not list this node (node_id {})", self.node_id),
            );
        }
        Ok(())
    }
}

/// The trimmed first line of a secret file; an unreadable or empty file is an error that names
/// the setting (the secret itself is never printed).
fn read_secret(setting: &'static str, path: Option<&Path>) -> Result<Option<Secret>, ConfigError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        setting,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    if secret.len() < 16 {
        return Err(ConfigError::Invalid {
            setting,
            reason: format!(
                "{} must hold a secret of at least 16 characters",
                path.display()
            ),
        });
    }
    Ok(Some(Secret(secret)))
}

/// A secret setting: its `Debug` output is redacted, so logging a config never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Parses `ID=HOST:PORT,ID=HOST:PORT`.
fn parse_members(list: &str) -> Result<Vec<(u64, String)>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        setting: "initial_members",
        reason,
    };
    let mut members: Vec<(u64, String)> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| invalid(format!("{item:?} is not ID=HOST:PORT")))?;
        let id: u64 = id.trim().parse().ok().filter(|id| *id > 0).ok_or_else(|| {
            invalid(format!(
                "{id:?} in {item:?} is not a node id (a number >= 1)"
            ))
        })?;
        let addr = addr.trim();
        if !addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            return Err(invalid(format!("{addr:?} in {item:?} is not HOST:PORT")));
        }
        if members.iter().any(|(other, _)| *other == id) {
            return Err(invalid(format!("node id {id} is listed twice")));
        }
        members.push((id, addr.to_string()));
    }
    if members.is_empty() {
        return Err(invalid("is empty".into()));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::resolve(Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(c.raft_listen.to_string(), "127.0.0.1:7071");
        assert_eq!(c.http.to_string(), "127.0.0.1:7080");
        assert_eq!(c.data_dir, PathBuf::from("gloss-data"));
        assert_eq!(c.max_record_bytes, 1 << 20);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gloss.toml");
        std::fs::write(&path, "node_id = 3\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        let file = Overrides::from_file(&path).unwrap();
        let flags = Overrides {
            node_id: Some(5),
            ..Default::default()
        };
        let c = Config::resolve(flags.over(file)).unwrap();
        assert_eq!(c.node_id, 5);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
    }

    #[test]
    fn single_sign_on_is_read_from_the_files_oidc_table() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("oidc-secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let path = dir.path().join("gloss.toml");
        std::fs::write(
            &path,
            format!(
                "node_id = 2\n\
                 [oidc]\n\
                 issuer = \"https://idp.example.com/realms/acme\"\n\
                 client_id = \"gloss\"\n\
                 client_secret_file = {secret:?}\n\
                 redirect_url = \"https://gloss.example.com/auth/oidc/callback\"\n\
                 role_claim = \"roles\"\n\
                 [oidc.roles]\n\
                 gloss-leads = [\"manager\"]\n\
                 acme-labelers = [\"annotator\", \"acme:reviewer\"]\n"
            ),
        )
        .unwrap();
        let c = Config::resolve(Overrides::from_file(&path).unwrap()).unwrap();
        let o = c.oidc.expect("single sign-on configured");
        // The secret never shows in a logged config.
        assert!(!format!("{o:?}").contains("s3cret"));
        assert_eq!(o.client_secret.unwrap().expose(), "s3cret");
        assert_eq!(o.role_claim, "roles");
        assert_eq!(o.roles["acme-labelers"], ["annotator", "acme:reviewer"]);
        // A misspelt key in the table is named.
        std::fs::write(&path, "[oidc]\nissuer = \"x\"\nclient = \"typo\"\n").unwrap();
        let e = Overrides::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("client"), "{e}");
    }

    #[test]
    fn initial_members_parse_and_must_list_this_node() {
        let c = Config::resolve(Overrides {
            node_id: Some(2),
            initial_members: Some("1=h1:7071, 2=h2:7071,3=10.0.0.3:7071".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.initial_members.len(), 3);
        assert_eq!(c.initial_members[1], (2, "h2:7071".to_string()));
        for (bad, needle) in [
            ("1=h1:7071", "does not list"),
            ("2=h2", "HOST:PORT"),
            ("x=h:1", "node id"),
            ("2=a:1,2=b:1", "twice"),
        ] {
            let err = Config::resolve(Overrides {
                node_id: Some(2),
                initial_members: Some(bad.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let err = Config::resolve(Overrides {
            node_id: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("node_id"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "nodeid = 3\n").unwrap();
        let err = Overrides::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");
    }
}

/// Parses a size such as `80GiB`, `512 MiB`, `1.5g` or `2000000` (bytes); binary units.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 80GiB"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?}: use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    if n < 0.0 {
        return Err(format!("{s:?} is negative"));
    }
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod size_tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("80GiB"), Ok(80 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert!(parse_bytes("12 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_bytes("-1GiB").is_err());
    }
}
