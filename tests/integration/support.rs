//! Test support: a connection to the local control plane (tests/controlplane/up)
//! and a fresh namespace per test, deleted afterwards, so tests run in parallel
//! without seeing each other's objects.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The kubeconfig of the local control plane: `$KUBECONFIG` when set, else the
/// one `tests/controlplane/up` writes.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("KUBECONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/controlplane/kubeconfig"),
    }
}

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A binary the plane's build made (kubectl, helm...).
pub fn plane_tool(name: &str) -> PathBuf {
    let path = root().join("target/controlplane/bin").join(name);
    assert!(path.exists(), "{} is missing: build it with tests/controlplane/up", path.display());
    path
}

/// The plane's kubectl, on the plane's kubeconfig.
pub fn kubectl() -> std::process::Command {
    let mut cmd = std::process::Command::new(plane_tool("kubectl"));
    cmd.arg("--kubeconfig").arg(kubeconfig_path());
    cmd
}

/// The plane's helm with the plane's kubeconfig and its own state under
/// target/, so that the user's helm configuration plays no part.
pub fn helm() -> std::process::Command {
    let home = root().join("target/chart-tests/helm");
    let mut cmd = std::process::Command::new(plane_tool("helm"));
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path());
    cmd
}

/// A Helm release in the plane, uninstalled when the test ends, also when it
/// fails (its cluster-scoped RBAC would outlive the namespace otherwise).
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Release {
    /// `helm install NAME charts/mettaton` into `namespace`, waiting up to
    /// `timeout` (a helm duration) for it, with `values` (further arguments).
    pub fn install(name: &str, namespace: &str, timeout: &str, values: &[&str]) -> (Release, std::process::Output) {
        let out = output(
            helm()
                .args(["install", name])
                .arg(root().join("charts/mettaton"))
                .args(["--namespace", namespace, "--wait", "--timeout", timeout])
                .args(values),
        );
        (Release { name: name.into(), namespace: namespace.into() }, out)
    }

    pub fn uninstall(&self) -> std::process::Output {
        output(helm().args(["uninstall", &self.name, "--namespace", &self.namespace, "--wait", "--timeout", "60s"]))
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if std::env::var_os("MTN_KEEP_NAMESPACES").is_none() {
            let _ = self.uninstall();
        }
    }
}

/// Runs `cmd` to its end; panics only when it cannot start.
pub fn output(cmd: &mut std::process::Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"))
}

/// Runs `cmd`, which must succeed, and returns what it printed.
pub fn succeed(cmd: &mut std::process::Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A client for the local control plane. Panics with what to do when it is not up.
pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!("no kubeconfig at {} ({e}): start the local control plane with tests/controlplane/up", path.display())
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig of the local control plane is valid");
    Client::try_from(config).expect("client for the local control plane")
}

/// A namespace of its own for one test. Dropping it deletes the namespace (and
/// so everything in it), also when the test panics.
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    /// Creates `mtn-<prefix>-<unique suffix>`, labelled as a test namespace.
    pub async fn new(prefix: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!(
            "mtn-{prefix}-{:x}{:x}{}",
            std::process::id() % 0xfff,
            nanos % 0xffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let client = client().await;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("mettaton.dev/test".to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating test namespace {name}: {e}"));
        TestNamespace { client, name }
    }

    /// An API for namespaced objects of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("MTN_KEEP_NAMESPACES").is_some() {
            eprintln!("keeping test namespace {}", self.name);
            return;
        }
        // Drop runs inside the test's runtime, which must not block on itself:
        // delete from a thread with its own runtime and its own client.
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let client = client().await;
                // GameServers a test left behind would hold the namespace in
                // Terminating forever once no controller runs: release them.
                let leftovers = Api::<mettaton::api::GameServer>::namespaced(client.clone(), &name);
                if let Ok(list) = leftovers.list(&Default::default()).await {
                    let release = kube::api::Patch::Merge(serde_json::json!({ "metadata": { "finalizers": null } }));
                    for gs in list {
                        let gs_name = kube::ResourceExt::name_any(&gs);
                        let _ = leftovers.patch(&gs_name, &Default::default(), &release).await;
                    }
                }
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .map(|_| ())
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        if let Ok(Err(e)) = deleted {
            eprintln!("could not delete test namespace {}: {e}", self.name);
        }
    }
}

/// Polls `check` every 200 ms until it returns `Some`, and returns that value.
/// Panics with `what` and the last observation when `timeout` passes first.
pub async fn eventually<T, D, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    D: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, D>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The API server's refusal inside a kube error, if that is what it is.
pub fn api_status(err: &kube::Error) -> Option<&kube::core::Status> {
    match err {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// Installs mettaton's CRDs (GameServer, GameTemplate, ClusterGameTemplate:
/// the controller watches all three) once per test binary, and waits until
/// they are served.
pub async fn ensure_crd() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use kube::api::{Patch, PatchParams};
    use mettaton::api::{ClusterGameTemplate, GameServer, GameTemplate};

    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let client = client().await;
            let crds = Api::<CustomResourceDefinition>::all(client.clone());
            for crd in [GameServer::crd(), GameTemplate::crd(), ClusterGameTemplate::crd()] {
                let name = crd.metadata.name.clone().unwrap();
                crds.patch(&name, &PatchParams::apply("mettaton-tests").force(), &Patch::Apply(&crd))
                    .await
                    .unwrap_or_else(|e| panic!("{name} applies: {e}"));
            }
            let served = (
                Api::<GameServer>::all(client.clone()),
                Api::<GameTemplate>::all(client.clone()),
                Api::<ClusterGameTemplate>::all(client),
            );
            eventually("mettaton's CRDs to be served", Duration::from_secs(30), || async {
                let one = kube::api::ListParams::default().limit(1);
                served.0.list(&one).await.map_err(|e| e.to_string())?;
                served.1.list(&one).await.map_err(|e| e.to_string())?;
                served.2.list(&one).await.map(|_| ()).map_err(|e| e.to_string())
            })
            .await;
        })
        .await;
}

/// The requests a client made, by HTTP method and path with its query.
#[derive(Clone, Default)]
pub struct Requests(std::sync::Arc<std::sync::Mutex<Vec<(http::Method, String)>>>);

impl Requests {
    /// Requests that change something (anything but GET, which covers list and watch).
    pub fn writes(&self) -> Vec<(http::Method, String)> {
        self.0.lock().unwrap().iter().filter(|(m, _)| m != http::Method::GET).cloned().collect()
    }

    /// All requests so far, reads included.
    pub fn total(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Requests so far but watches (which the watchers renew on their own).
    pub fn calls(&self) -> usize {
        self.0.lock().unwrap().iter().filter(|(_, uri)| !uri.contains("watch=true")).count()
    }
}

/// A client for the local plane that records every request it sends.
pub async fn counting_client() -> (Client, Requests) {
    let requests = Requests::default();
    let seen = requests.clone();
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("kubeconfig of the local control plane");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
            seen.0
                .lock()
                .unwrap()
                .push((req.method().clone(), req.uri().path_and_query().map_or_else(String::new, |p| p.to_string())));
            req
        }))
        .build();
    (client, requests)
}

/// A TCP proxy on loopback in front of the API server, which a test can cut
/// (refusing new connections and breaking open ones) and restore: a real
/// network fault between a client and the plane.
pub struct Proxy {
    pub port: u16,
    up: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

/// Where a [`Proxy`] forwards to.
#[derive(Clone, Debug)]
pub enum Upstream {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        Proxy::start_to(Upstream::Tcp(target)).await
    }

    pub async fn start_to(upstream: Upstream) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(tokio::sync::watch::channel(true).0);
        let state = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut down = state.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let forward = async {
                        match upstream {
                            Upstream::Tcp(addr) => {
                                let mut outbound = tokio::net::TcpStream::connect(addr).await?;
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await.map(|_| ())
                            }
                            Upstream::Unix(path) => {
                                let mut outbound = tokio::net::UnixStream::connect(path).await?;
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await.map(|_| ())
                            }
                        }
                    };
                    tokio::select! {
                        _ = forward => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { port, up, task }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// A client for the plane that goes through this proxy.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).unwrap();
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        config.cluster_url = format!("https://127.0.0.1:{}", self.port).parse().unwrap();
        Client::try_from(config).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The API server's address, from the kubeconfig.
pub async fn apiserver_addr() -> std::net::SocketAddr {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let host = config.cluster_url.host().unwrap().to_string();
    let port = config.cluster_url.port_u16().unwrap_or(443);
    format!("{host}:{port}").parse().unwrap()
}

/// The status (`"True"`/`"False"`) of a GameServer's condition, if set.
/// The value of the sample `name` (with its labels, if any) in a metrics
/// text, `None` when it has none.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

pub fn condition_status(gs: &mettaton::api::GameServer, type_: &str) -> Option<String> {
    gs.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.clone())
}

/// Waits until the GameServer's status describes its current generation and
/// says Ready with an address, and returns it.
pub async fn wait_ready(
    api: &Api<mettaton::api::GameServer>,
    name: &str,
    timeout: Duration,
) -> mettaton::api::GameServer {
    eventually(&format!("{name} Ready with an address"), timeout, || async {
        let gs = api.get(name).await.map_err(|e| e.to_string())?;
        let status = gs.status.clone().unwrap_or_default();
        let fresh = status.observed_generation == gs.metadata.generation;
        let ready = condition_status(&gs, mettaton::api::conditions::READY).as_deref() == Some("True");
        if fresh && ready && status.address.is_some() { Ok(gs) } else { Err(format!("{status:?}")) }
    })
    .await
}

/// Waits until the GameServer is in phase `want`, and returns it.
pub async fn wait_phase(
    api: &Api<mettaton::api::GameServer>,
    name: &str,
    want: mettaton::api::Phase,
    timeout: Duration,
) -> mettaton::api::GameServer {
    eventually(&format!("{name} in phase {want:?}"), timeout, || async {
        let gs = api.get(name).await.map_err(|e| e.to_string())?;
        match gs.status.as_ref().and_then(|s| s.phase) {
            Some(p) if p == want => Ok(gs),
            _ => Err(format!("{:?}", gs.status)),
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// Docker Swarm (tests/swarm/up).

/// The Docker daemon `$DOCKER_HOST` names.
pub fn daemon() -> mettaton::orchestrator::swarm::Daemon {
    mettaton::orchestrator::swarm::Daemon::from_env().expect("DOCKER_HOST is usable")
}

/// A Docker client of the test engine.
pub fn docker() -> bollard::Docker {
    use mettaton::orchestrator::swarm::Daemon;
    match daemon() {
        Daemon::LocalSocket(path) => {
            bollard::Docker::connect_with_unix(&path.to_string_lossy(), 60, bollard::API_DEFAULT_VERSION)
        }
        Daemon::Tcp { url, .. } => bollard::Docker::connect_with_http(&url, 60, bollard::API_DEFAULT_VERSION),
    }
    .expect("a Docker client: start the engine with tests/swarm/up")
}

/// The controller running GameServers of one test namespace on the swarm
/// (`mettaton controller --backend swarm`, here `controller::run` with the
/// given backend), until [`SwarmController::stop`].
pub struct SwarmController {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl SwarmController {
    pub fn start(ns: &TestNamespace, swarm: mettaton::orchestrator::swarm::SwarmOrchestrator) -> SwarmController {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task =
            tokio::spawn(mettaton::controller::run(ns.client.clone(), swarm, Some(ns.name.clone()), async move {
                let _ = stopped.await;
            }));
        SwarmController { stop, task }
    }

    /// Stops it; it must end cleanly within 30 s.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task).await.unwrap().unwrap();
    }
}

/// The test engine's local socket, for tests that put a proxy in front of it.
pub fn docker_socket() -> PathBuf {
    match daemon() {
        mettaton::orchestrator::swarm::Daemon::LocalSocket(path) => path,
        other => panic!("this test proxies a local socket, not {other}"),
    }
}

/// Removes what a test left on the swarm under `namespace`: its services,
/// configs and volumes (a volume is retried while its last task goes).
/// Blocking, on a thread of its own, so that a `Drop` can call it.
pub fn remove_swarm_leftovers(namespace: &str) {
    use bollard::query_parameters::{
        ListConfigsOptionsBuilder, ListServicesOptionsBuilder, ListVolumesOptionsBuilder, RemoveVolumeOptions,
    };
    let ns = namespace.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let docker = docker();
            let filters = std::collections::HashMap::from([("label", vec![format!("mettaton.dev/namespace={ns}")])]);
            let opts = ListServicesOptionsBuilder::default().filters(&filters).build();
            for s in docker.list_services(Some(opts)).await.unwrap_or_default() {
                let _ = docker.delete_service(&s.id.unwrap_or_default()).await;
            }
            let opts = ListConfigsOptionsBuilder::default().filters(&filters).build();
            for c in docker.list_configs(Some(opts)).await.unwrap_or_default() {
                let _ = docker.delete_config(&c.id.unwrap_or_default()).await;
            }
            let opts = ListVolumesOptionsBuilder::default().filters(&filters).build();
            let volumes = docker.list_volumes(Some(opts)).await.ok().and_then(|v| v.volumes).unwrap_or_default();
            for v in volumes {
                for _ in 0..30 {
                    if docker.remove_volume(&v.name, None::<RemoveVolumeOptions>).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
    })
    .join();
}
