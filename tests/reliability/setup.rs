//! What every reliability test shares: how big and how long (the default run
//! or the soak), a seeded random source (printed, so a failure can be
//! replayed), where logs go, and how figures are printed.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The size of a run. `MTN_SOAK=1` makes the long one.
#[derive(Clone, Debug)]
pub struct Profile {
    pub soak: bool,
    /// GameServers the kill -9 churn drives on Kubernetes.
    pub servers: usize,
    /// Rounds of mixed updates and deletions between the creation round and
    /// the deletion round; each round has a kill -9 (sometimes two).
    pub mixed_rounds: usize,
    /// GameServers kept busy while the API server and etcd restart.
    pub apiserver_servers: usize,
    /// Times each restart scenario (API server; etcd; both) runs.
    pub apiserver_cycles: usize,
    /// Servers run through the facade and through the controller on the
    /// swarm while the Docker daemon restarts, and the restarts.
    pub dockerd_servers: usize,
    pub dockerd_restarts: usize,
    /// GameServers and mixed rounds of the kill -9 churn on the swarm.
    pub swarm_servers: usize,
    pub swarm_mixed_rounds: usize,
}

impl Profile {
    pub fn get() -> Profile {
        let soak = std::env::var("MTN_SOAK").is_ok_and(|v| !v.is_empty() && v != "0");
        if soak {
            Profile {
                soak,
                servers: 400,
                mixed_rounds: 8,
                apiserver_servers: 150,
                apiserver_cycles: 4,
                dockerd_servers: 8,
                dockerd_restarts: 5,
                swarm_servers: 60,
                swarm_mixed_rounds: 5,
            }
        } else {
            Profile {
                soak,
                servers: 200,
                mixed_rounds: 2,
                apiserver_servers: 60,
                apiserver_cycles: 1,
                dockerd_servers: 3,
                dockerd_restarts: 1,
                swarm_servers: 24,
                swarm_mixed_rounds: 2,
            }
        }
    }

    /// A failure bound (never a speed requirement): generous, and more so for
    /// the soak's larger fleets.
    pub fn bound(&self, default: Duration) -> Duration {
        if self.soak { default * 3 } else { default }
    }
}

/// SplitMix64: small, seeded, good enough to pick operations and delays.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `MTN_SEED` when set, else from the clock; the seed is
    /// printed, so that a failing run's choices can be replayed.
    pub fn seeded(test: &str) -> Rng {
        let seed = match std::env::var("MTN_SEED") {
            Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("MTN_SEED={s} is not a number")),
            Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64,
        };
        figure(test, &format!("seed {seed} (replay with MTN_SEED={seed})"));
        Rng::from_seed(seed)
    }

    pub fn from_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform between `low` and `high`.
    pub fn duration(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis() as u64;
        low + Duration::from_millis(self.next_u64() % (span + 1))
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Where the tests leave their logs: `target/reliability/`.
pub fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/reliability");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A directory for a test's private Docker daemon: short (containerd's
/// sockets live under it, and a Unix socket path holds at most 104 bytes), in
/// the temporary directory, removed by the test once it passed.
pub fn daemon_dir(namespace: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(namespace);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Prints one figure of a test, on a line of its own that starts with
/// `reliability:`, for RELIABILITY.md (run with --nocapture to see them).
pub fn figure(test: &str, text: &str) {
    eprintln!("reliability: {test}: {text}");
}

/// `min / median / max` of durations, in seconds.
pub fn spread(times: &[Duration]) -> String {
    if times.is_empty() {
        return "none".into();
    }
    let mut t: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    t.sort_by(f64::total_cmp);
    let median = if t.len() % 2 == 1 { t[t.len() / 2] } else { (t[t.len() / 2 - 1] + t[t.len() / 2]) / 2.0 };
    format!("n={} min {:.2} s, median {:.2} s, max {:.2} s", t.len(), t[0], median, t[t.len() - 1])
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
