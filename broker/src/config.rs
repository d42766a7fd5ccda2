//! Configuration: command-line flags, environment variables (`MPC_BROKER_*`)
//! and an optional JSON file, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use identity::Did;
use serde::Deserialize;

/// Where sessions and challenges live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process (the default; one broker).
    Memory,
    /// A Redis server shared by replicas.
    Redis {
        /// `redis://host:port/db`.
        url: String,
        /// Key prefix.
        prefix: String,
    },
}

/// What the broker does when its store is unreachable at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupWait {
    /// Exit non-zero at once.
    Fail,
    /// Keep trying for this long.
    Wait(Duration),
}

/// Who may publish sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizerPolicy {
    /// DIDs that may publish.
    pub trusted: Vec<Did>,
    /// Or: holders of a credential of this type …
    pub credential_type: Option<String>,
    /// … from one of these issuers.
    pub credential_issuers: Vec<Did>,
    /// Anyone authenticated may publish (for demos and closed networks).
    pub anyone: bool,
}

/// Signaling limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalLimits {
    /// Largest WebSocket frame, bytes.
    pub max_frame: usize,
    /// Sustained messages per second per connection.
    pub rate: f64,
    /// Burst of messages per connection.
    pub burst: f64,
    /// Ping interval.
    pub ping_every: Duration,
    /// Close a connection silent for this long.
    pub idle_timeout: Duration,
    /// Close a connection that has not taken a frame we write within this long (it sends but
    /// does not read, so its socket and actix-ws's queue are full).
    pub write_timeout: Duration,
    /// Outbound queue per connection.
    pub queue: usize,
    /// Messages buffered per member not yet connected.
    pub pending: usize,
    /// How long buffered messages wait.
    pub pending_ttl: Duration,
}

impl Default for SignalLimits {
    fn default() -> Self {
        SignalLimits {
            max_frame: 64 * 1024,
            rate: 200.0,
            burst: 400.0,
            ping_every: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            write_timeout: Duration::from_secs(10),
            queue: 256,
            pending: 64,
            pending_ttl: Duration::from_secs(30),
        }
    }
}

/// The broker's whole configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Broker key file; created (mode 0600) if missing. `None`: an
    /// ephemeral key (demos and tests).
    pub key_file: Option<PathBuf>,
    /// The domain presentations must be bound to (default: the broker's DID).
    pub domain: Option<String>,
    /// Store.
    pub store: StoreConfig,
    /// What to do when the store is down at start.
    pub startup_wait: StartupWait,
    /// Who may publish.
    pub organizers: OrganizerPolicy,
    /// STUN URLs.
    pub stun: Vec<String>,
    /// TURN URLs.
    pub turn: Vec<String>,
    /// TURN REST shared secret.
    pub turn_secret: Option<String>,
    /// TURN credential lifetime.
    pub turn_ttl: Duration,
    /// Challenge lifetime.
    pub challenge_ttl: Duration,
    /// Access token lifetime.
    pub token_ttl: Duration,
    /// Largest HTTP request body, bytes.
    pub max_body: usize,
    /// How long a client may take to send a request body once its headers arrived
    /// (actix-web times only the headers); a slower body gets `408 body_timeout`.
    pub body_timeout: Duration,
    /// Signaling limits.
    pub signal: SignalLimits,
    /// HTTP worker threads.
    pub workers: usize,
    /// Concurrent presentation checks.
    pub verify_permits: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            key_file: None,
            domain: None,
            store: StoreConfig::Memory,
            startup_wait: StartupWait::Fail,
            organizers: OrganizerPolicy::default(),
            stun: Vec::new(),
            turn: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(3600),
            challenge_ttl: Duration::from_secs(120),
            token_ttl: Duration::from_secs(900),
            max_body: 256 * 1024,
            body_timeout: Duration::from_secs(10),
            signal: SignalLimits::default(),
            workers: cores,
            verify_permits: cores,
        }
    }
}

/// Longest `--wait-for-store`, seconds (a day).
const MAX_STORE_WAIT_SECS: u64 = 86_400;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("config file {path} is invalid: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// `mpc-broker`: DID-authenticated session broker and signaling relay for MPC.
#[derive(Debug, Parser, Default)]
#[command(name = "mpc-broker", version, about)]
pub struct Args {
    /// JSON config file (keys as the long flag names, e.g. "listen", "trusted-organizer": [..]).
    #[arg(long, env = "MPC_BROKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long, env = "MPC_BROKER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Broker key file (created with mode 0600 if missing).
    #[arg(long, env = "MPC_BROKER_KEY")]
    pub key: Option<PathBuf>,
    /// Domain presentations must be bound to (default: the broker's DID).
    #[arg(long, env = "MPC_BROKER_DOMAIN")]
    pub domain: Option<String>,
    /// Redis URL; without it the store is in memory.
    #[arg(long, env = "MPC_BROKER_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of the broker's Redis keys.
    #[arg(long, env = "MPC_BROKER_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Seconds to wait for Redis at start (0: fail at once).
    #[arg(long, env = "MPC_BROKER_WAIT_FOR_STORE")]
    pub wait_for_store: Option<u64>,
    /// A DID allowed to publish sessions (repeatable; env: comma separated).
    #[arg(
        long = "trusted-organizer",
        env = "MPC_BROKER_TRUSTED_ORGANIZERS",
        value_delimiter = ','
    )]
    pub trusted_organizers: Vec<String>,
    /// Credential type that authorises an organizer.
    #[arg(long, env = "MPC_BROKER_ORGANIZER_CREDENTIAL_TYPE")]
    pub organizer_credential_type: Option<String>,
    /// Issuer trusted for organizer credentials (repeatable).
    #[arg(
        long = "organizer-issuer",
        env = "MPC_BROKER_ORGANIZER_ISSUERS",
        value_delimiter = ','
    )]
    pub organizer_issuers: Vec<String>,
    /// Let any authenticated DID publish (demos, closed networks).
    #[arg(long, env = "MPC_BROKER_ANY_ORGANIZER")]
    pub any_organizer: bool,
    /// STUN URL to hand out (repeatable).
    #[arg(long = "stun", env = "MPC_BROKER_STUN", value_delimiter = ',')]
    pub stun: Vec<String>,
    /// TURN URL to hand out (repeatable).
    #[arg(long = "turn", env = "MPC_BROKER_TURN", value_delimiter = ',')]
    pub turn: Vec<String>,
    /// TURN REST shared secret (coturn `static-auth-secret`).
    #[arg(long, env = "MPC_BROKER_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// HTTP worker threads.
    #[arg(long, env = "MPC_BROKER_WORKERS")]
    pub workers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    key: Option<PathBuf>,
    domain: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    wait_for_store: Option<u64>,
    #[serde(default)]
    trusted_organizer: Vec<String>,
    organizer_credential_type: Option<String>,
    #[serde(default)]
    organizer_issuer: Vec<String>,
    #[serde(default)]
    any_organizer: bool,
    #[serde(default)]
    stun: Vec<String>,
    #[serde(default)]
    turn: Vec<String>,
    turn_secret: Option<String>,
    workers: Option<usize>,
}

fn dids(list: &[String], what: &str) -> Result<Vec<Did>, ConfigError> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            Did::parse(s.trim())
                .map_err(|e| ConfigError::Invalid(format!("{what} {s:?} is not a did:key: {e}")))
        })
        .collect()
}

fn first<T>(a: Option<T>, b: Option<T>) -> Option<T> {
    a.or(b)
}

fn list(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    if a.is_empty() {
        b
    } else {
        a
    }
}

impl Args {
    /// Merges flags/environment over the config file over defaults.
    pub fn into_config(self) -> Result<BrokerConfig, ConfigError> {
        let file = match &self.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let mut c = BrokerConfig::default();
        if let Some(l) = first(self.listen, file.listen) {
            c.listen = l;
        }
        c.key_file = first(self.key, file.key).or_else(|| Some(PathBuf::from("broker-key.json")));
        c.domain = first(self.domain, file.domain);
        if let Some(url) = first(self.redis_url, file.redis_url) {
            c.store = StoreConfig::Redis {
                url,
                prefix: first(self.redis_prefix, file.redis_prefix)
                    .unwrap_or_else(|| "mpc:".into()),
            };
        }
        c.startup_wait = match first(self.wait_for_store, file.wait_for_store) {
            None | Some(0) => StartupWait::Fail,
            // A deadline this far out would overflow `Instant`; nobody means more than a day.
            Some(s) if s > MAX_STORE_WAIT_SECS => {
                return Err(ConfigError::Invalid(format!(
                    "--wait-for-store {s} is too long: give at most {MAX_STORE_WAIT_SECS} seconds"
                )))
            }
            Some(s) => StartupWait::Wait(Duration::from_secs(s)),
        };
        c.organizers = OrganizerPolicy {
            trusted: dids(
                &list(self.trusted_organizers, file.trusted_organizer),
                "trusted organizer",
            )?,
            credential_type: first(
                self.organizer_credential_type,
                file.organizer_credential_type,
            ),
            credential_issuers: dids(
                &list(self.organizer_issuers, file.organizer_issuer),
                "organizer issuer",
            )?,
            anyone: self.any_organizer || file.any_organizer,
        };
        if c.organizers.credential_type.is_some() == c.organizers.credential_issuers.is_empty() {
            return Err(ConfigError::Invalid(
                "--organizer-credential-type and --organizer-issuer go together: give both or neither".into(),
            ));
        }
        c.stun = list(self.stun, file.stun);
        c.turn = list(self.turn, file.turn);
        c.turn_secret = first(self.turn_secret, file.turn_secret);
        if !c.turn.is_empty() && c.turn_secret.is_none() {
            return Err(ConfigError::Invalid(
                "--turn needs --turn-secret (the TURN server's static-auth-secret) to issue credentials".into(),
            ));
        }
        if let Some(w) = first(self.workers, file.workers) {
            if w == 0 {
                return Err(ConfigError::Invalid("--workers must be at least 1".into()));
            }
            c.workers = w;
        }
        Ok(c)
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(&f, r#"{"listen": "127.0.0.1:9000", "redis-url": "redis://127.0.0.1:1/", "stun": ["stun:a"]}"#).unwrap();
        let args = Args::parse_from([
            "mpc-broker",
            "--config",
            f.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9100",
        ]);
        let c = args.into_config().unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.stun, vec!["stun:a".to_string()]);
        assert!(matches!(c.store, StoreConfig::Redis { .. }));
    }

    #[test]
    fn bad_config_values_say_what_is_wrong() {
        let e = Args::parse_from(["mpc-broker", "--trusted-organizer", "did:web:x"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("trusted organizer"), "{e}");
        let e = Args::parse_from(["mpc-broker", "--turn", "turn:x"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("--turn-secret"), "{e}");
        let e = Args::parse_from(["mpc-broker", "--wait-for-store", "18446744073709551615"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("at most 86400 seconds"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(&f, r#"{"lisen": "x"}"#).unwrap();
        let e = Args::parse_from(["mpc-broker", "--config", f.to_str().unwrap()])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
    }
}
