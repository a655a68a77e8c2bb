//! Where the Docker daemon listens, and the client that talks to it.

use std::fmt;
use std::path::PathBuf;

use bollard::errors::Error as DockerError;
use bollard::{API_DEFAULT_VERSION, Docker};

use crate::orchestrator::{BackendError, error_chain};

/// Where the Docker daemon (a swarm manager, or a plain engine) listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Daemon {
    /// A local Unix socket, by default `/var/run/docker.sock`.
    LocalSocket(PathBuf),
    /// A TCP address (`tcp://host:2376`), with TLS client certificates when
    /// the daemon requires them (it should, on anything but loopback).
    Tcp { url: String, tls: Option<Tls> },
}

/// The PEM files of a TLS connection to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The CA that signed the daemon's certificate.
    pub ca: PathBuf,
    /// The client certificate and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon::LocalSocket(PathBuf::from("/var/run/docker.sock"))
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Daemon::LocalSocket(path) => write!(f, "unix://{}", path.display()),
            Daemon::Tcp { url, .. } => f.write_str(url),
        }
    }
}

impl Daemon {
    /// The daemon the Docker CLI would use: `DOCKER_HOST` (default socket when
    /// unset), with TLS when `DOCKER_TLS_VERIFY` is set, from the certificates
    /// in `DOCKER_CERT_PATH` (default `~/.docker`).
    pub fn from_env() -> Result<Daemon, BackendError> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        let cert_path = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
        Daemon::parse(&host, tls, cert_path)
            .map_err(|reason| BackendError::Refused { what: "connect to the Docker daemon".into(), reason })
    }

    /// A daemon from a `DOCKER_HOST` value (empty: the default socket).
    pub fn parse(host: &str, tls: bool, cert_path: Option<PathBuf>) -> Result<Daemon, String> {
        if host.is_empty() {
            return Ok(Daemon::default());
        }
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Daemon::LocalSocket(PathBuf::from(path)));
        }
        if host.starts_with("tcp://") || host.starts_with("http://") || host.starts_with("https://") {
            let tls = if tls || host.starts_with("https://") {
                let dir = cert_path.ok_or("TLS needs DOCKER_CERT_PATH (no home directory to look in)")?;
                Some(Tls { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") })
            } else {
                None
            };
            return Ok(Daemon::Tcp { url: host.to_string(), tls });
        }
        Err(format!("DOCKER_HOST={host}: only unix:// and tcp:// daemons are supported"))
    }
}

/// A client of the daemon, each request bounded by `timeout_seconds`, on an
/// API version agreed with it: the engine refuses a version newer than its
/// own (Debian's 20.10 speaks 1.41). This also proves it answers.
pub async fn connect(daemon: &Daemon, timeout_seconds: u64) -> Result<Docker, BackendError> {
    let unreachable = |e: DockerError| {
        BackendError::Unreachable(format!("cannot connect to the Docker daemon at {daemon}: {}", error_chain(&e)))
    };
    let docker = match daemon {
        Daemon::LocalSocket(path) => {
            Docker::connect_with_unix(&path.to_string_lossy(), timeout_seconds, API_DEFAULT_VERSION)
        }
        Daemon::Tcp { url, tls: None } => Docker::connect_with_http(url, timeout_seconds, API_DEFAULT_VERSION),
        Daemon::Tcp { url, tls: Some(tls) } => {
            Docker::connect_with_ssl(url, &tls.key, &tls.cert, &tls.ca, timeout_seconds, API_DEFAULT_VERSION)
        }
    }
    .map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}
