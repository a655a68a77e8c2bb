//! A private Docker Engine for tests that must not touch the shared one
//! (tests/swarm/up): its own socket, data root, exec root and containerd, in a
//! network namespace of its own (so that it cannot touch the bridge, the ports
//! or the swarm of the shared engine). The namespace is held by a `sleep`
//! process, so that the daemon can be stopped and started again in the same
//! one, as a daemon restart on a host keeps the host's network. Optionally a
//! one-node swarm on the namespace's loopback with the test game image imported
//! (tests/swarm/build with MTN_DOCKER_SOCK).
//!
//! Shared by the integration and reliability test binaries (`#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;

/// A dockerd of a test's own. Stopped (and its namespace released) on drop.
pub struct PrivateDockerd {
    pub dir: PathBuf,
    /// `sleep infinity` in the network namespace, with `lo` up.
    netns: Child,
    daemon: Option<Child>,
}

impl PrivateDockerd {
    /// Starts a daemon outside any swarm in `dir/<name>` and waits until it answers.
    pub async fn start(dir: &Path, name: &str) -> PrivateDockerd {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut netns = tied("KILL", "unshare");
        netns.args(["--net", "sh", "-c", "ip link set lo up && exec sleep infinity"]).stdin(Stdio::null());
        let netns = spawn_tied(netns).expect("unshare is installed");
        let mut daemon = PrivateDockerd { dir, netns, daemon: None };
        // `unshare` runs the shell in the new namespace and the shell execs
        // `sleep`: wait until the namespace's loopback is up.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !daemon
            .in_netns("ip")
            .args(["-br", "link", "show", "lo"])
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"))
        {
            assert!(Instant::now() < deadline, "the network namespace's loopback did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon.start_again().await;
        daemon
    }

    /// [`start`](Self::start), then a one-node swarm on 127.0.0.1 of the
    /// namespace (as tests/swarm/up makes one) and the test game's image.
    pub async fn start_swarm(dir: &Path, name: &str) -> PrivateDockerd {
        let daemon = PrivateDockerd::start(dir, name).await;
        let out = daemon
            .cli()
            .args(["swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"])
            .args(["--data-path-addr", "127.0.0.1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker swarm init: {}", String::from_utf8_lossy(&out.stderr));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = daemon.cli().args(["node", "inspect", "self", "--format", "{{.Status.State}}"]).output().unwrap();
            if String::from_utf8_lossy(&out.stdout).trim() == "ready" {
                break;
            }
            assert!(Instant::now() < deadline, "the private swarm's node is not ready after 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        let build = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/swarm/build");
        let out = Command::new(build).env("MTN_DOCKER_SOCK", daemon.socket()).output().unwrap();
        assert!(out.status.success(), "tests/swarm/build: {}", String::from_utf8_lossy(&out.stderr));
        daemon
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The `DOCKER_HOST` value of this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn docker(&self) -> Docker {
        Docker::connect_with_unix(&self.socket().to_string_lossy(), 30, bollard::API_DEFAULT_VERSION).unwrap()
    }

    /// The Docker CLI, talking to this daemon.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", self.host());
        cmd
    }

    /// `program` run in the daemon's network namespace (where its published
    /// ports are).
    pub fn in_netns(&self, program: &str) -> Command {
        self.entering(Command::new("nsenter"), program)
    }

    /// [`in_netns`](Self::in_netns) for a process that must not outlive the
    /// test (it gets `signal` when the test process dies unannounced).
    fn tied_in_netns(&self, signal: &str, program: &str) -> Command {
        self.entering(tied(signal, "nsenter"), program)
    }

    /// `cmd`, which runs `nsenter`, given the arguments that enter the
    /// namespace and run `program` there.
    fn entering(&self, mut cmd: Command, program: &str) -> Command {
        cmd.args(["-t", &self.netns.id().to_string(), "--net", "--", program]);
        cmd
    }

    /// The first line a TCP server at 127.0.0.1:`port` of the namespace sends
    /// (the test game greets).
    pub fn tcp_greeting(&self, port: i32) -> Result<String, String> {
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && timeout 5 head -n 1 <&3");
        let out = self.in_netns("bash").args(["-c", &script]).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!("port {port}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 30 s), as a service
    /// manager does, and returns how long it took to exit. Its containers stop
    /// with it (no live restore); the swarm's state stays in the data root.
    pub fn stop(&mut self) -> Duration {
        let Some(mut child) = self.daemon.take() else { return Duration::ZERO };
        let started = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = child.try_wait() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        started.elapsed()
    }

    /// Starts the daemon (again) on the same data root in the same namespace,
    /// and returns how long it took to answer.
    pub async fn start_again(&mut self) -> Duration {
        assert!(self.daemon.is_none(), "the daemon runs already");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("dockerd.log")).unwrap();
        let dir = &self.dir;
        // setpriv and nsenter exec dockerd (no fork for a network namespace):
        // the child is the daemon itself. Options: see tests/swarm/README.md;
        // the default bridge stays (host-mode ports need it), in the namespace.
        let mut daemon = self.tied_in_netns("TERM", "dockerd");
        daemon
            .arg(format!("--host=unix://{}", dir.join("docker.sock").display()))
            .arg(format!("--data-root={}", dir.join("root").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("docker.pid").display()))
            .args(["--iptables=false", "--ip6tables=false", "--ip=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = spawn_tied(daemon).expect("nsenter and dockerd are installed (scripts/setup-host)");
        self.daemon = Some(child);
        let started = Instant::now();
        let socket = self.socket().to_string_lossy().into_owned();
        loop {
            // The client refuses a socket that does not exist yet.
            let docker = Docker::connect_with_unix(&socket, 5, bollard::API_DEFAULT_VERSION);
            if let Ok(docker) = docker
                && docker.ping().await.is_ok()
            {
                return started.elapsed();
            }
            if let Some(Ok(Some(status))) = self.daemon.as_mut().map(Child::try_wait) {
                panic!("dockerd exited ({status}):\n{}", self.log());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "dockerd does not answer after 60 s:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `program`, made to receive `signal` when the test process dies
/// unannounced (a timeout, ^C), when Drop does not run: setpriv --pdeathsig
/// (the setting survives the exec of the program). Start it with
/// [`spawn_tied`].
pub fn tied(signal: &str, program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", signal, "--", program]);
    cmd
}

/// Spawns `cmd` from a thread that lives as long as the test process: the
/// parent-death signal follows the thread that spawned, and a runtime's
/// threads may retire while the test still runs.
pub fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    use std::sync::mpsc;
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> = std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in incoming {
                let _ = reply.send(cmd.spawn());
            }
        });
        std::sync::Mutex::new(requests)
    });
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap().send((cmd, reply)).expect("the spawner thread runs");
    answer.recv().expect("the spawner thread answers")
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
        let _ = self.netns.kill();
        let _ = self.netns.wait();
        // The images, volumes and swarm state: nothing to keep.
        let _ = std::fs::remove_dir_all(self.dir.join("root"));
        let _ = std::fs::remove_dir_all(self.dir.join("exec"));
    }
}
