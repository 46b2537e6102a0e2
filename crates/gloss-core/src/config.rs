//! Coordinator configuration. Sources, in increasing priority: built-in defaults, a TOML file,
//! `GLOSS_*` environment variables, command-line flags. The binaries parse flags and environment
//! (clap does both); this module merges them over the file and validates the result once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// Examples per replicated import batch.
    pub import_batch: Option<usize>,
    /// Raft entries between snapshots.
    pub snapshot_every: Option<u64>,
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
            import_batch: self.import_batch.or(lower.import_batch),
            snapshot_every: self.snapshot_every.or(lower.snapshot_every),
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
    pub import_batch: usize,
    pub snapshot_every: u64,
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
            import_batch: o.import_batch.unwrap_or(2_000),
            snapshot_every: o.snapshot_every.unwrap_or(20_000),
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
        Ok(())
    }
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
