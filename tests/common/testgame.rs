//! What the tests of the facade share on each backend it runs on (Docker
//! Swarm, `facade.rs`; plain Docker, `docker_backend.rs`), against the engine
//! of tests/swarm/up with the test game (tests/testgame): a scope per test (a
//! namespace and a state file of its own, and what a failed test leaves on the
//! engine removed with it), the test game's manifest, a player's TCP and
//! UDP exchanges with it, and mettaton's supervisor as an image on the engine
//! (`supervisor_image`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use mettaton::api::GameServer;
use mettaton::facade::Mettaton;
use mettaton::orchestrator::Standalone;
use mettaton::orchestrator::docker::DockerOrchestrator;
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator};

use crate::support::{daemon, docker, remove_swarm_leftovers};

/// The test game's image, in the registry of tests/swarm/up.
pub const IMAGE: &str = "127.0.0.1:5999/mettaton-testgame:1";

/// A backend the facade's tests run on: where their files go, how their
/// namespaces begin, and how what a test left is removed.
pub trait Backend: Standalone<Target = Daemon> {
    /// Names the scope's directory: `mettaton-DIR-NAMESPACE`.
    const DIR: &str;
    /// Begins each namespace, so that tests of two backends never share one.
    const NAMESPACE_PREFIX: &str;
    /// `mettaton swarm --backend NAME`.
    const CLI_BACKEND: &str;
    /// Removes what a test left under `namespace`. Blocking, for a `Drop`.
    fn remove_leftovers(namespace: &str);
    /// The data volume of the server of `plan`, as the backend names it.
    fn volume_name(plan: &mettaton::plan::ServerPlan) -> String;
}

impl Backend for SwarmOrchestrator {
    const DIR: &str = "facade";
    const NAMESPACE_PREFIX: &str = "";
    const CLI_BACKEND: &str = "swarm";
    fn remove_leftovers(namespace: &str) {
        remove_swarm_leftovers(namespace);
    }
    fn volume_name(plan: &mettaton::plan::ServerPlan) -> String {
        mettaton::orchestrator::swarm::builders::volume_name(plan)
    }
}

impl Backend for DockerOrchestrator {
    const DIR: &str = "docker";
    const NAMESPACE_PREFIX: &str = "dk";
    const CLI_BACKEND: &str = "docker";
    fn remove_leftovers(namespace: &str) {
        remove_docker_leftovers(namespace);
    }
    fn volume_name(plan: &mettaton::plan::ServerPlan) -> String {
        mettaton::orchestrator::docker::builders::volume_name(plan)
    }
}

/// A namespace of its own for each test, so that tests in parallel never see
/// each other's servers, and a state file in a fresh directory; what a
/// failed test leaves on the engine goes with the namespace.
pub struct Scope<B: Backend> {
    pub namespace: String,
    pub dir: PathBuf,
    backend: PhantomData<B>,
}

impl<B: Backend> Scope<B> {
    pub fn new(prefix: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let namespace = format!("{}{prefix}-{:x}", B::NAMESPACE_PREFIX, (nanos ^ std::process::id()) % 0xffffff);
        let dir = std::env::temp_dir().join(format!("mettaton-{}-{namespace}", B::DIR));
        std::fs::create_dir_all(&dir).unwrap();
        Scope { namespace, dir, backend: PhantomData }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// A facade on the test engine with this scope's state file.
    pub fn facade(&self) -> Mettaton<B> {
        Mettaton::on(daemon(), self.state())
    }

    /// The GameServer `name` of `spec` in this scope's namespace.
    pub fn manifest(&self, name: &str, spec: serde_json::Value) -> GameServer {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": name, "namespace": self.namespace },
            "spec": spec
        }))
        .unwrap()
    }
}

impl<B: Backend> Drop for Scope<B> {
    fn drop(&mut self) {
        B::remove_leftovers(&self.namespace);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the containers (all, running or not) and volumes a test left on
/// the engine under `namespace`. Blocking, on a thread of its own, so that a
/// `Drop` can call it.
fn remove_docker_leftovers(namespace: &str) {
    let ns = namespace.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let docker = docker();
            let filters = HashMap::from([("label", vec![format!("mettaton.dev/namespace={ns}")])]);
            let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
            for c in docker.list_containers(Some(opts)).await.unwrap_or_default() {
                let force = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = docker.remove_container(&c.id.unwrap_or_default(), Some(force)).await;
            }
            let opts = ListVolumesOptionsBuilder::default().filters(&filters).build();
            let volumes = docker.list_volumes(Some(opts)).await.ok().and_then(|v| v.volumes).unwrap_or_default();
            for v in volumes {
                let _ = docker.remove_volume(&v.name, None::<RemoveVolumeOptions>).await;
            }
        })
    })
    .join();
}

/// The test game on TCP 7777 and UDP 7778, named `GAME-test` (it greets
/// players with `hello from GAME-test`), with a config file and a short grace
/// period.
pub fn game_spec(game: &str) -> serde_json::Value {
    serde_json::json!({
        "image": IMAGE,
        "env": [{ "name": "GAME_NAME", "value": format!("{game}-test") }, { "name": "GAME_CONFIG", "value": "/etc/game/motd.txt" }],
        "ports": [
            { "name": "game", "containerPort": 7777 },
            { "name": "query", "containerPort": 7778, "protocol": "UDP" }
        ],
        "config": [{ "path": "/etc/game/motd.txt", "content": format!("welcome to the {game} test") }],
        "shutdown": { "gracePeriodSeconds": 5 }
    })
}

/// `spec` with a 1Gi volume at /data under `reclaim` (Retain or Delete).
pub fn with_storage(mut spec: serde_json::Value, reclaim: &str) -> serde_json::Value {
    spec["storage"] = serde_json::json!({ "size": "1Gi", "mountPath": "/data", "reclaimPolicy": reclaim });
    spec
}

/// Talks to the test game over TCP: the greeting, then an echo.
pub fn tcp_exchange(address: &str, port: i32) -> (String, String) {
    let stream = TcpStream::connect((address, port as u16)).expect("TCP connection to the game server");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    (&stream).write_all(b"ping\n").unwrap();
    let mut echo = String::new();
    reader.read_line(&mut echo).unwrap();
    (greeting.trim().to_string(), echo.trim().to_string())
}

/// A player of the test game logged in over TCP at `address:port`, for as
/// long as the connection is kept:
/// dropping it makes the game print the leave line.
pub fn login(address: &str, port: i32, name: &str) -> Result<TcpStream, String> {
    let at = format!("{address}:{port}");
    let stream = TcpStream::connect_timeout(&at.parse().map_err(|e| format!("{at}: {e}"))?, Duration::from_secs(5))
        .map_err(|e| format!("connect to {at}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| format!("greeting from {at}: {e}"))?;
    writeln!(&stream, "login {name}").map_err(|e| e.to_string())?;
    line.clear();
    reader.read_line(&mut line).map_err(|e| format!("login at {at}: {e}"))?;
    if line.trim_end() != format!("logged in as {name}") {
        return Err(format!("login answered {line:?}"));
    }
    Ok(stream)
}

/// Asks the test game over UDP: its answer.
pub fn udp_exchange(address: &str, port: i32) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 512];
    // UDP may be dropped while the server starts: ask a few times.
    for _ in 0..10 {
        socket.send_to(b"hello", (address, port as u16)).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).trim().to_string();
        }
    }
    panic!("no UDP answer from {address}:{port}");
}

/// Where the supervisor's image is made (not the real node's directory: the
/// two may be made at once).
const SUPERVISOR_WORK: &str = "target/supervisor/engine-image";
/// The repository of the supervisor's image on the test engine; its tag is a
/// hash of the binary, so that a changed supervisor is a new image, and so a
/// new volume and installer (they are one per image reference).
const SUPERVISOR_REPOSITORY: &str = "127.0.0.1:5999/mettaton-supervisor";

/// mettaton's supervisor (scripts/build-supervisor) as an image on the test
/// engine, made once per test process (`docker import` of a root file
/// system holding only the binary, as the real node's); its name, which no
/// public registry resolves. The installers and volumes of the earlier test
/// images of it are removed (they would pile up, one per supervisor built).
pub async fn supervisor_image() -> String {
    static IMAGE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    IMAGE
        .get_or_init(|| async {
            let image = tokio::task::spawn_blocking(import_supervisor).await.unwrap();
            remove_other_supervisor_installers(&image).await;
            image
        })
        .await
        .clone()
}

fn import_supervisor() -> String {
    use std::process::Command;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let binary = run(&mut Command::new(root.join("scripts/build-supervisor")));
    let bytes = std::fs::read(&binary).unwrap();
    // FNV-1a of the binary: the image's tag.
    let hash = bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3));
    let image = format!("{SUPERVISOR_REPOSITORY}:{:012x}", hash >> 16);
    let present = Command::new("docker").args(["image", "inspect", &image]).output().unwrap();
    if present.status.success() {
        return image;
    }
    let work = root.join(SUPERVISOR_WORK);
    let rootfs = work.join("rootfs");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("mettaton-supervisor"), &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rootfs.join("mettaton-supervisor"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = work.join("rootfs.tar");
    run(Command::new("tar").args(["--owner=0", "--group=0", "-C"]).arg(&rootfs).arg("-cf").arg(&tar).arg("."));
    run(Command::new("docker")
        .args([
            "import",
            "--change",
            r#"ENTRYPOINT ["/mettaton-supervisor"]"#,
            "--message",
            "mettaton's supervisor (tests)",
        ])
        .arg(&tar)
        .arg(&image));
    image
}

/// Removes the installer services, volumes and images of the test
/// supervisor images other than `image` (none is in use: a test process uses
/// one; a volume a server still mounts is left).
async fn remove_other_supervisor_installers(image: &str) {
    use bollard::query_parameters::{ListImagesOptionsBuilder, ListServicesOptionsBuilder, RemoveImageOptions};
    let docker = docker();
    let label = mettaton::orchestrator::engine::LABEL_SUPERVISOR_IMAGE;
    let filters = HashMap::from([("label", vec![label.to_string()])]);
    let stale = |labels: Option<&HashMap<String, String>>| {
        labels.and_then(|l| l.get(label)).is_some_and(|i| i.starts_with(SUPERVISOR_REPOSITORY) && i != image)
    };
    let services = ListServicesOptionsBuilder::default().filters(&filters).build();
    for s in docker.list_services(Some(services)).await.unwrap_or_default() {
        if stale(s.spec.as_ref().and_then(|s| s.labels.as_ref())) {
            let _ = docker.delete_service(&s.id.unwrap_or_default()).await;
        }
    }
    let volumes = ListVolumesOptionsBuilder::default().filters(&filters).build();
    for v in docker.list_volumes(Some(volumes)).await.ok().and_then(|v| v.volumes).unwrap_or_default() {
        if stale(Some(&v.labels)) {
            for _ in 0..10 {
                if docker.remove_volume(&v.name, None::<RemoveVolumeOptions>).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let reference = HashMap::from([("reference", vec![format!("{SUPERVISOR_REPOSITORY}:*")])]);
    let images = ListImagesOptionsBuilder::default().filters(&reference).build();
    for i in docker.list_images(Some(images)).await.unwrap_or_default() {
        if i.repo_tags.iter().all(|t| t != image) {
            let _ = docker.remove_image(&i.id, None::<RemoveImageOptions>, None).await;
        }
    }
}

/// Types `say TEXT` into an interactive `mettaton console` (a spawned child,
/// stdin and stdout piped) until the game's answer `[Server] TEXT` is printed
/// (a line typed before the session is up is lost, so it is said again each
/// second, for at most 30 s), then ends the input (Ctrl-D) and waits for the
/// console to leave, which it must do with exit code 0.
pub async fn say_through_console(mut console: std::process::Child, text: &str) {
    use std::io::{BufRead, Write};
    let mut typed = console.stdin.take().expect("the console's stdin is piped");
    let stdout = console.stdout.take().expect("the console's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (say, answer) = (format!("say {text}"), format!("[Server] {text}"));
    let answered = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            writeln!(typed, "{say}").unwrap();
            while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(1)) {
                if line == answer {
                    return Some(typed);
                }
            }
        }
        None
    })
    .await
    .unwrap();
    drop(answered.expect("the game answered the console"));
    let left = tokio::task::spawn_blocking(move || console.wait_with_output()).await.unwrap().unwrap();
    assert!(left.status.success(), "{}", String::from_utf8_lossy(&left.stderr));
}
