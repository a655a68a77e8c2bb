//! The plain Docker backend: a game server is one container on one Docker
//! Engine (no swarm, no Kubernetes), named `mettaton-<namespace>-<name>`, with
//! a labelled named volume for its data. Built only against the seam
//! ([`Orchestrator`], [`Logs`], [`Standalone`]); what it shares with the
//! swarm backend is in [`crate::orchestrator::engine`] (the [`Daemon`] it
//! connects to among it).
//!
//! What it does with the plan is decided in [`builders::container_request`]
//! (honoured, or refused naming the field); what it runs differently is
//! [`builders::limitations`]. In short:
//! - `state: Running` is a running container with restart policy
//!   `unless-stopped` (the engine starts it again whenever it exits, and
//!   counts those restarts); `Stopped` is the same container stopped, with
//!   policy `no`, its volume kept. Both change in place.
//! - Any other change of the plan (image, env, ports, config files, the
//!   restart token...) replaces the container, keeping the volume: the
//!   container carries a hash of what it was made from
//!   ([`builders::LABEL_SPEC_HASH`]), and a steady state writes nothing.
//! - Config files are written into the container (a tar upload) after it is
//!   created and before it starts.
//! - An `exec` readiness check is the container's Docker healthcheck; a TCP
//!   check is run by mettaton itself against the published port (game images
//!   seldom carry a shell or `nc` a healthcheck could use, and it sees what
//!   players see), with the probe's period and failure threshold.
//! - `shutdown.stopCommand` runs in the container (exec) before it is
//!   stopped, for at most the grace period; then `docker stop` with the grace
//!   period (also the container's stop timeout).
//! - A template's install script runs before the game in a one-shot
//!   container (`<container>-install`, [`builders::install_body`]) whenever
//!   a container is created to run or a stopped one is started (the volume's
//!   marker makes a run after a success a no-op); see `run_install` for what
//!   a failed one does. The plan's `working_dir` is the container's
//!   `WorkingDir`.

pub mod builders;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, ContainerUpdateBody};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::api::{PullPolicy, ReclaimPolicy};
use crate::orchestrator::engine::{self, Daemon, docker_message, grace, status_of};
use crate::orchestrator::{
    BackendError, Console, ConsoleSession, InstanceEvent, InstanceEventKind, Logs, Observed, Orchestrator, Owner,
    Reports, ServerKey, Standalone, Teardown, Triggers,
};
use crate::plan::ServerPlan;

/// Seconds any one request to the engine may take (an image pull included;
/// a stop gets its grace period on top).
const REQUEST_TIMEOUT_SECONDS: u64 = 120;
/// How often a controller looks at every server anyway: a TCP readiness
/// probe's result is no engine event.
const POLL: Duration = Duration::from_secs(3);
/// How long a template's install script may run (an egg's downloads a
/// server of some GB): an apply waits for it that long at most.
const INSTALL_SCRIPT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Runs game servers as plain containers on one Docker Engine.
#[derive(Clone)]
pub struct DockerOrchestrator {
    docker: Docker,
    daemon: Daemon,
    /// Where players reach the engine's published ports.
    host: String,
    /// mettaton's TCP readiness probes, per container name.
    probes: engine::Probes,
    /// Containers this process is stopping or removing on purpose.
    stopping: Arc<Mutex<HashSet<String>>>,
    /// The containers last seen in the engine's restart back-off, with their
    /// restart count then (the engine counts a restart when it starts it).
    in_backoff: Arc<Mutex<HashMap<String, i32>>>,
    /// The image of mettaton's supervisor, for the servers that need it.
    supervisor_image: Arc<str>,
    /// The supervisor images this process installed into their volume; held
    /// while one is installed, so that applies in parallel wait for it.
    installed: Arc<tokio::sync::Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for DockerOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerOrchestrator").field("daemon", &self.daemon).finish()
    }
}

impl DockerOrchestrator {
    /// Connects to the daemon and agrees on an API version with it (Debian's
    /// engine speaks 1.41 at most). Any engine runs plain containers, a swarm
    /// node too.
    pub async fn connect(daemon: &Daemon) -> Result<Self, BackendError> {
        let docker = engine::connect(daemon, REQUEST_TIMEOUT_SECONDS).await?;
        Ok(DockerOrchestrator::new(docker, daemon.clone()))
    }

    fn new(docker: Docker, daemon: Daemon) -> Self {
        DockerOrchestrator {
            host: builders::daemon_host(&daemon),
            docker,
            daemon,
            probes: Default::default(),
            stopping: Default::default(),
            in_backoff: Default::default(),
            supervisor_image: crate::supervisor::DEFAULT_IMAGE.into(),
            installed: Default::default(),
        }
    }

    /// The orchestrator taking mettaton's supervisor from `image` (default
    /// [`crate::supervisor::DEFAULT_IMAGE`]), pulled when the engine does not
    /// have it, as the games' images are.
    pub fn with_supervisor_image(mut self, image: &str) -> Self {
        self.supervisor_image = image.into();
        self
    }

    /// The supervisor's image this orchestrator puts into supervised servers.
    pub fn supervisor_image(&self) -> &str {
        &self.supervisor_image
    }

    /// Fills the supervisor's volume, once per process and image: its image
    /// pulled when missing, then a one-shot container of it that installs
    /// the binary (an atomic rename: a server running the old copy keeps
    /// it), removed once it exited.
    async fn ensure_supervisor(&self, why: &str) -> Result<(), BackendError> {
        let image = self.supervisor_image.to_string();
        let mut installed = self.installed.lock().await;
        if installed.contains(&image) {
            return Ok(());
        }
        engine::ensure_supervisor_image(&self.docker, &image, why, "the Docker engine", |what, e| self.error(what, e))
            .await?;
        let what = format!("install mettaton's supervisor ({image}) into volume {}", engine::supervisor_volume(&image));
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                builders::installer_body(&image),
            )
            .await
            .map_err(|e| self.error(what.clone(), e))?;
        let ran = async {
            self.docker.start_container(&created.id, None).await.map_err(|e| self.error(what.clone(), e))?;
            let mut waited = self.docker.wait_container(&created.id, None);
            // A non-zero exit is an error of the stream, with the code.
            Ok::<_, BackendError>(match waited.next().await {
                Some(Ok(done)) if done.status_code == 0 => Ok(()),
                Some(Ok(done)) => Err(format!("exit code {}", done.status_code)),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Err(format!("exit code {code}"))
                }
                Some(Err(e)) => Err(docker_message(&e)),
                None => Err("the engine did not say how it ended".to_string()),
            })
        }
        .await;
        let result = match ran {
            Ok(Ok(())) => Ok(()),
            Ok(Err(code)) => {
                let log = self.docker.logs(&created.id, Some(engine::log_options(Some(20), false, false)));
                let log = engine::read_log(log, what.clone(), |what, e| self.error(what, e)).await.unwrap_or_default();
                Err(BackendError::Refused {
                    what: what.clone(),
                    reason: format!("the installer failed ({code}): {}", log.trim()),
                })
            }
            Err(e) => Err(e),
        };
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(e) = self.docker.remove_container(&created.id, Some(options)).await {
            tracing::warn!(container = created.id, error = %e, "could not remove the supervisor's installer");
        }
        result?;
        installed.insert(image);
        Ok(())
    }

    /// The daemon this talks to.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The bollard client, for what the orchestrator does not cover.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The container of that name, if there is one.
    async fn find(&self, name: &str) -> Result<Option<ContainerInspectResponse>, BackendError> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.error(format!("read container {name}"), e)),
        }
    }

    /// The server's own container (of its name, labelled as its), if any.
    async fn own(&self, plan: &ServerPlan) -> Result<Option<ContainerInspectResponse>, BackendError> {
        let c = self.find(&builders::container_name(plan)).await?;
        Ok(c.filter(|c| builders::is_ours(c.config.as_ref().and_then(|c| c.labels.as_ref()), plan)))
    }

    /// Makes sure the image is on the engine (`imagePullPolicy`: Never, it
    /// must be there; Always, pulled first; IfNotPresent, pulled when missing).
    async fn ensure_image(&self, plan: &ServerPlan) -> Result<(), BackendError> {
        engine::ensure_image(&self.docker, plan, "the Docker engine", |what, e| self.error(what, e)).await
    }

    /// Refused when a running container other than the server's own already
    /// publishes one of its fixed ports (the engine would fail the start).
    async fn check_ports(&self, plan: &ServerPlan) -> Result<(), BackendError> {
        if plan.container.ports.iter().all(|p| p.external_port.is_none()) {
            return Ok(());
        }
        let containers = self.docker.list_containers(None).await.map_err(|e| self.error("list containers", e))?;
        match builders::port_conflict(plan, &containers, &builders::container_name(plan)) {
            None => Ok(()),
            Some((port, protocol, holder)) => Err(BackendError::PortTaken {
                port: i64::from(port),
                protocol: format!("{protocol:?}").to_lowercase(),
                holder,
            }),
        }
    }

    /// The data volume, created when missing. `true` when this call created it.
    async fn ensure_volume(&self, plan: &ServerPlan) -> Result<bool, BackendError> {
        let Some(request) = builders::volume_request(plan) else { return Ok(false) };
        let limitations = builders::limitations(plan);
        engine::ensure_volume(&self.docker, plan, request, limitations, |what, e| self.error(what, e)).await
    }

    /// Sets the container's restart policy for `replicas`, when it differs.
    async fn set_restart_policy(
        &self,
        c: &ContainerInspectResponse,
        name: &str,
        replicas: i32,
    ) -> Result<(), BackendError> {
        let wanted = builders::restart_policy(replicas);
        let current = c.host_config.as_ref().and_then(|h| h.restart_policy.as_ref()).and_then(|p| p.name);
        if current == wanted.name {
            return Ok(());
        }
        let body = ContainerUpdateBody { restart_policy: Some(wanted), ..Default::default() };
        // The engine refuses an update in the moment between the game's exit
        // and its handling of that exit (it still thinks the container runs,
        // containerd no longer has its task: "cannot update a stopped
        // container"); a moment later the update is one of the container's
        // configuration only, and passes.
        let mut tries = 0;
        loop {
            match self.docker.update_container(name, body.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if tries < 10 && engine::is_exit_race(&e) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(self.error(format!("update the restart policy of container {name}"), e)),
            }
        }
    }

    /// Stops the container on purpose: its stop command, its restart policy
    /// set to `no` first (so that neither the engine nor a watcher in another
    /// process takes the exit for a failure), then `docker stop` with the
    /// grace period.
    async fn stop(&self, plan: &ServerPlan, c: &ContainerInspectResponse) -> Result<(), BackendError> {
        let name = builders::container_name(plan);
        let id = c.id.clone().unwrap_or_else(|| name.clone());
        self.stopping.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
        self.set_restart_policy(c, &name, 0).await?;
        if !builders::exists(c) {
            return Ok(());
        }
        if c.state.as_ref().and_then(|s| s.running) == Some(true) {
            engine::run_stop_command(&self.docker, plan, &builders::display_name(plan), &id).await;
        }
        let seconds = i32::try_from(plan.grace_period_seconds.max(0)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(seconds).build();
        // The request lasts as long as the grace period.
        let docker = self.docker.clone().with_timeout(grace(plan) + Duration::from_secs(REQUEST_TIMEOUT_SECONDS));
        match docker.stop_container(&name, Some(options)).await {
            Ok(()) => Ok(()),
            // Not running (304), or gone.
            Err(e) if matches!(status_of(&e), Some(304 | 404)) => Ok(()),
            Err(e) => Err(self.error(format!("stop container {name}"), e)),
        }
    }

    /// Stops and removes the container. `Pending` while the engine is still
    /// removing it.
    async fn remove(&self, plan: &ServerPlan, c: &ContainerInspectResponse) -> Result<Teardown, BackendError> {
        let name = builders::container_name(plan);
        self.stop(plan, c).await?;
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let done = match self.docker.remove_container(&name, Some(options)).await {
            Ok(()) => Teardown::Done,
            Err(e) if status_of(&e) == Some(404) => Teardown::Done,
            // Removal already in progress.
            Err(e) if status_of(&e) == Some(409) => Teardown::Pending,
            Err(e) => return Err(self.error(format!("remove container {name}"), e)),
        };
        self.probes.forget(&name);
        Ok(done)
    }

    /// Creates the container from the request, writes its config files and
    /// starts it when it should run. On failure, the container is removed.
    async fn create(&self, plan: &ServerPlan, request: builders::ContainerRequest) -> Result<(), BackendError> {
        let name = request.name.clone();
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), request.body)
            .await
            .map_err(|e| self.error(format!("create container {name}"), e))?;
        let result = async {
            if let Some(archive) = request.files {
                let options = UploadToContainerOptionsBuilder::default().path("/").build();
                self.docker
                    .upload_to_container(&created.id, Some(options), bollard::body_full(archive.into()))
                    .await
                    .map_err(|e| self.error(format!("write the config files into container {name}"), e))?;
            }
            if plan.replicas > 0 {
                self.docker.start_container(&created.id, None).await.map_err(|e| self.start_error(plan, e))?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.stopping.lock().unwrap_or_else(|p| p.into_inner()).insert(created.id.clone());
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            if let Err(e) = self.docker.remove_container(&created.id, Some(options)).await {
                tracing::warn!(container = name, error = %e, "could not remove the container of a failed apply");
            }
        }
        result
    }

    /// A failed start: a port something else holds is `PortTaken`.
    fn start_error(&self, plan: &ServerPlan, err: DockerError) -> BackendError {
        let message = docker_message(&err);
        if message.contains("port is already allocated") || message.contains("address already in use") {
            // "Bind for 0.0.0.0:27001 failed: port is already allocated"
            let port = plan
                .container
                .ports
                .iter()
                .filter_map(|p| p.external_port.map(|e| (e, p.protocol)))
                .find(|(e, _)| message.contains(&format!(":{e} ")) || message.contains(&format!(":{e}:")));
            if let Some((port, protocol)) = port {
                return BackendError::PortTaken {
                    port: i64::from(port),
                    protocol: format!("{protocol:?}").to_lowercase(),
                    holder: format!("another process on the Docker host ({message})"),
                };
            }
        }
        self.error(format!("start container {}", builders::container_name(plan)), err)
    }

    /// The engine's container events of this backend's servers (of
    /// `namespace`, when given), from `since` on.
    fn events(
        &self,
        since: Option<SystemTime>,
        namespace: Option<&str>,
    ) -> BoxStream<'static, Result<InstanceEvent, BackendError>> {
        let mut labels = vec![
            format!("{}=true", builders::LABEL_MANAGED),
            format!("{}={}", builders::LABEL_BACKEND, builders::BACKEND),
        ];
        if let Some(ns) = namespace {
            labels.push(format!("{}={ns}", builders::LABEL_NAMESPACE));
        }
        let this = self.clone();
        engine::container_events(&self.docker, labels, since, builders::instance_event, move |what, e| {
            this.error(what, e)
        })
    }

    /// The server's install container, if there is one (of its name,
    /// labelled as its install).
    async fn own_install(&self, plan: &ServerPlan) -> Result<Option<ContainerInspectResponse>, BackendError> {
        let c = self.find(&builders::install_container_name(plan)).await?;
        Ok(c.filter(|c| engine::is_install_of(c.config.as_ref().and_then(|c| c.labels.as_ref()), plan)))
    }

    async fn remove_install(&self, c: &ContainerInspectResponse) -> Result<(), BackendError> {
        let id = c.id.clone().unwrap_or_default();
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(&id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(self.error(format!("remove install container {id}"), e)),
        }
    }

    /// The last lines of an install container's log (empty when the engine
    /// cannot give them).
    async fn install_log(&self, id: &str) -> String {
        let log = self.docker.logs(id, Some(engine::log_options(Some(100), false, false)));
        engine::read_log(log, format!("read the log of install container {id}"), |what, e| self.error(what, e))
            .await
            .unwrap_or_default()
    }

    /// Runs the install `run` in a one-shot container and waits until it
    /// exited, for at most [`INSTALL_SCRIPT_TIMEOUT`]; the container is
    /// removed once it succeeded. One of the same install found running (an
    /// apply that gave up waiting) is waited for; one of another install is
    /// replaced; a failed one of the same install is not run again: its
    /// failure is returned (and reported by `observe`) until the install
    /// changes (its script, image, the server's environment, the reinstall
    /// token) or the server is removed.
    async fn run_install(&self, plan: &ServerPlan, run: &engine::InstallRun) -> Result<(), BackendError> {
        let name = builders::install_container_name(plan);
        let display = builders::display_name(plan);
        let what = format!("install GameServer {display}");
        let found = self.find(&name).await?;
        let id = match found {
            Some(c) if !engine::is_install_of(c.config.as_ref().and_then(|c| c.labels.as_ref()), plan) => {
                return Err(engine::not_ours(what, &format!("container {name}"), plan));
            }
            Some(c)
                if c.config.as_ref().and_then(|c| c.labels.as_ref()?.get(engine::LABEL_INSTALL)) == Some(&run.hash) =>
            {
                let id = c.id.clone().unwrap_or_else(|| name.clone());
                match builders::install_ended(&c) {
                    Some(Ok(())) => {
                        self.remove_install(&c).await?;
                        return Ok(());
                    }
                    Some(Err(how)) => {
                        return Err(engine::install_failure(plan, "plain Docker", &how, &self.install_log(&id).await));
                    }
                    // Running (or created and never started: started now).
                    None => {
                        if c.state.as_ref().and_then(|s| s.running) != Some(true) {
                            self.docker.start_container(&id, None).await.map_err(|e| self.error(what.clone(), e))?;
                        }
                        id
                    }
                }
            }
            other => {
                if let Some(c) = other {
                    self.remove_install(&c).await?;
                }
                engine::ensure_install_image(&self.docker, &run.image, "the Docker engine", |what, e| {
                    self.error(what, e)
                })
                .await?;
                let options = CreateContainerOptionsBuilder::default().name(&name).build();
                let created = self
                    .docker
                    .create_container(Some(options), builders::install_body(run))
                    .await
                    .map_err(|e| self.error(format!("create install container {name}"), e))?;
                self.docker
                    .start_container(&created.id, None)
                    .await
                    .map_err(|e| self.error(format!("start install container {name}"), e))?;
                created.id
            }
        };
        // The wait lasts as long as the install may.
        let docker = self.docker.clone().with_timeout(INSTALL_SCRIPT_TIMEOUT + Duration::from_secs(10));
        let waited = tokio::time::timeout(INSTALL_SCRIPT_TIMEOUT, docker.wait_container(&id, None).next()).await;
        let ended = match waited {
            Err(_) => {
                return Err(BackendError::Other {
                    what,
                    reason: format!(
                        "its install container {name} has not exited after {} s; the next apply waits for it again",
                        INSTALL_SCRIPT_TIMEOUT.as_secs()
                    ),
                });
            }
            Ok(Some(Ok(done))) if done.status_code == 0 => Ok(()),
            Ok(Some(Ok(done))) => Err(format!("exit code {}", done.status_code)),
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Err(format!("exit code {code}"))
            }
            Ok(Some(Err(e))) => return Err(self.error(format!("wait for install container {name}"), e)),
            Ok(None) => Err("the engine did not say how it ended".to_string()),
        };
        match ended {
            Ok(()) => {
                let options = RemoveContainerOptionsBuilder::default().force(true).build();
                if let Err(e) = self.docker.remove_container(&id, Some(options)).await {
                    tracing::warn!(container = name, error = %e, "could not remove the install container");
                }
                Ok(())
            }
            Err(how) => Err(engine::install_failure(plan, "plain Docker", &how, &self.install_log(&id).await)),
        }
    }

    /// What the install shows while it is the server: running (the server is
    /// starting) or failed (its last lines); `None` without an install
    /// container.
    async fn observe_install(&self, plan: &ServerPlan) -> Result<Option<Observed>, BackendError> {
        let Some(c) = self.own_install(plan).await? else { return Ok(None) };
        let name = builders::install_container_name(plan);
        let problem = match builders::install_ended(&c) {
            Some(Err(how)) => {
                let id = c.id.clone().unwrap_or_else(|| name.clone());
                Some(engine::install_failed(&self.install_log(&id).await, &how))
            }
            _ => None,
        };
        Ok(Some(engine::install_observed(&name, problem, c.id.clone())))
    }

    /// A bollard error as the backend error the user sees, naming the daemon
    /// when it could not be reached.
    fn error(&self, what: impl Into<String>, err: DockerError) -> BackendError {
        engine::error(&self.daemon, what.into(), err)
    }
}

impl Orchestrator for DockerOrchestrator {
    async fn apply(&self, owner: &Owner, plan: &ServerPlan) -> Result<(), BackendError> {
        // Refusals first: nothing is created for a plan Docker cannot run.
        let request = builders::container_request(plan, owner.uid.as_deref(), &self.supervisor_image)?;
        let name = request.name.clone();
        let current = self.find(&name).await?;
        if let Some(c) = &current
            && !builders::is_ours(c.config.as_ref().and_then(|c| c.labels.as_ref()), plan)
        {
            return Err(engine::not_ours(format!("apply container {name}"), &format!("container {name}"), plan));
        }
        let current_hash =
            current.as_ref().and_then(|c| c.config.as_ref()?.labels.as_ref()?.get(builders::LABEL_SPEC_HASH).cloned());
        if let Some(c) = current.as_ref().filter(|_| current_hash.as_deref() == Some(request.hash.as_str())) {
            // Made from this plan: only whether it runs may differ.
            if plan.replicas > 0 {
                self.set_restart_policy(c, &name, plan.replicas).await?;
                let up = builders::exists(c);
                if !up {
                    // A start of the game: its install first (the volume's
                    // marker makes one that ran a quick no-op).
                    if let Some(run) = builders::install_run(plan, owner.uid.as_deref(), &self.supervisor_image)? {
                        self.ensure_supervisor("the template's install script").await?;
                        self.run_install(plan, &run).await?;
                    }
                    self.docker.start_container(&name, None).await.map_err(|e| self.start_error(plan, e))?;
                }
            } else if builders::exists(c) || builders::wants_running(c) {
                self.stop(plan, c).await?;
            }
            return Ok(());
        }
        // New, or made from another plan: checked before anything is
        // created or removed.
        let image_changed = current
            .as_ref()
            .is_none_or(|c| c.config.as_ref().and_then(|c| c.image.as_deref()) != Some(plan.container.image.as_str()));
        if image_changed || plan.container.pull_policy == Some(PullPolicy::Always) {
            self.ensure_image(plan).await?;
        }
        if plan.replicas > 0 {
            self.check_ports(plan).await?;
        }
        if let Some(supervisor) = &plan.container.supervisor {
            self.ensure_supervisor(&engine::supervisor_fields(supervisor)).await?;
        }
        let install = builders::install_run(plan, owner.uid.as_deref(), &self.supervisor_image)?;
        let created_volume = self.ensure_volume(plan).await?;
        if install.is_some() && plan.replicas > 0 {
            self.ensure_supervisor("the template's install script").await?;
        }
        let mut install_failed = false;
        let result = async {
            if let Some(run) = install.as_ref().filter(|_| plan.replicas > 0) {
                // The game stopped first (the script writes its files), and
                // kept until the install succeeded: a failed install leaves
                // it stopped, the server still there, and its own container
                // (what `observe` reports) and the volume it wrote on.
                if let Some(c) = &current {
                    self.stop(plan, c).await?;
                }
                let installed = self.run_install(plan, run).await;
                install_failed = installed.is_err();
                installed?;
            }
            // Read again when it was stopped for the install.
            let current = match (&current, install.is_some() && plan.replicas > 0) {
                (Some(_), true) => self.own(plan).await?,
                _ => current,
            };
            if let Some(c) = &current {
                // Replaced: the same volume, a new container.
                while self.remove(plan, c).await? == Teardown::Pending {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            self.create(plan, request).await
        }
        .await;
        if result.is_err() && created_volume && !install_failed {
            engine::remove_created_volume(&self.docker, &builders::volume_name(plan)).await;
        }
        result
    }

    async fn observe(&self, plan: &ServerPlan) -> Result<Observed, BackendError> {
        let own = self.own(plan).await?;
        // No game running: its install may be what runs, or what failed.
        // Looked at only then, so a running server costs no read of it.
        if plan.install.is_some()
            && plan.replicas > 0
            && own.as_ref().is_none_or(|c| !builders::exists(c))
            && let Some(observed) = self.observe_install(plan).await?
        {
            return Ok(observed);
        }
        let Some(c) = own else { return Ok(Observed::default()) };
        let id = c.id.clone().unwrap_or_default();
        {
            let mut backoff = self.in_backoff.lock().unwrap_or_else(|p| p.into_inner());
            if builders::restarting(&c) {
                backoff.insert(id.clone(), c.restart_count.and_then(|n| i32::try_from(n).ok()).unwrap_or(0));
            } else {
                backoff.remove(&id);
            }
        }
        // A plan this process cannot build again (an environment value the
        // facade resolved when it applied) is judged by the apply: the
        // container counts as made from it.
        let own_hash = c.config.as_ref().and_then(|c| c.labels.as_ref()?.get(builders::LABEL_SPEC_HASH).cloned());
        let hash = builders::container_request(plan, None, &self.supervisor_image).map(|r| r.hash).ok().or(own_hash);
        let endpoint = builders::endpoint(plan, &c, &self.host);
        let mut workload = builders::workload(&c, hash.as_deref(), plan.replicas);
        let mut instance = builders::instance(&c);
        if let Some(i) = instance.as_mut()
            && i.ready
            && engine::tcp_probed(plan)
        {
            // One probe history per container start.
            let started = c.state.as_ref().and_then(|s| s.started_at.clone()).unwrap_or_default();
            let key = builders::container_name(plan);
            if !self.probes.ready(&key, &format!("{id}@{started}"), plan, &endpoint).await {
                i.ready = false;
                workload.ready = 0;
                i.problem = Some(engine::unanswered(plan, &endpoint));
            }
        }
        Ok(Observed { workload: Some(workload), instance, endpoint, backend_ref: Some(id) })
    }

    async fn teardown(&self, plan: &ServerPlan, reclaim: ReclaimPolicy) -> Result<Teardown, BackendError> {
        let mut progress = Teardown::Done;
        if let Some(c) = self.own_install(plan).await? {
            self.remove_install(&c).await?;
        }
        if let Some(c) = self.own(plan).await? {
            progress = self.remove(plan, &c).await?;
        }
        if reclaim == ReclaimPolicy::Delete && plan.volume.is_some() {
            // The container being removed may still use it.
            let volume = builders::volume_name(plan);
            if !engine::remove_volume(&self.docker, plan, &volume, |what, e| self.error(what, e)).await? {
                progress = Teardown::Pending;
            }
        }
        Ok(progress)
    }

    /// The engine's events of the servers' containers, and a look every 3 s
    /// (a TCP probe's result is no event; a broken event stream is opened
    /// again a second later).
    fn reports(&self) -> Option<&impl Reports> {
        Some(self)
    }

    fn triggers(&self, namespace: Option<&str>) -> Triggers {
        let this = self.clone();
        let namespace = namespace.map(str::to_string);
        let changes = futures::stream::unfold(
            (this, namespace, None::<BoxStream<'static, Result<InstanceEvent, BackendError>>>, SystemTime::now()),
            |(this, namespace, stream, since)| async move {
                let mut stream = match stream {
                    Some(s) => s,
                    None => this.events(Some(since), namespace.as_deref()),
                };
                loop {
                    match stream.next().await {
                        Some(Ok(event)) => {
                            let key = event.server.clone();
                            return Some((key, (this, namespace, Some(stream), SystemTime::now())));
                        }
                        Some(Err(_)) | None => {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            stream = this.events(Some(since), namespace.as_deref());
                        }
                    }
                }
            },
        );
        Triggers { changes: changes.boxed(), poll: Some(POLL) }
    }
}

impl Logs for DockerOrchestrator {
    async fn logs(&self, plan: &ServerPlan, tail: Option<i64>) -> Result<String, BackendError> {
        let name = builders::container_name(plan);
        let what = format!("read the log of GameServer {}", builders::display_name(plan));
        if self.own(plan).await?.is_none() {
            return Err(BackendError::Other { what, reason: format!("no container {name} runs the server") });
        }
        let stream = self.docker.logs(&name, Some(engine::log_options(tail, false, false)));
        engine::read_log(stream, what, |what, e| self.error(what, e)).await
    }

    fn follow_logs(&self, plan: &ServerPlan, tail: Option<i64>) -> BoxStream<'static, Result<String, BackendError>> {
        let name = builders::container_name(plan);
        let options = engine::log_options(tail, true, false);
        let this = self.clone();
        let what = format!("follow the log of GameServer {}", builders::display_name(plan));
        engine::log_text(self.docker.logs(&name, Some(options)), what, move |what, e| this.error(what, e))
    }
}

impl Console for DockerOrchestrator {
    /// The engine's attach on the server's running container.
    async fn attach(&self, plan: &ServerPlan) -> Result<ConsoleSession, BackendError> {
        let name = builders::container_name(plan);
        let what = format!("open the console of GameServer {}", builders::display_name(plan));
        let Some(c) = self.own(plan).await? else {
            return Err(BackendError::Other { what, reason: format!("no container {name} runs the server") });
        };
        if c.state.as_ref().and_then(|s| s.running) != Some(true) {
            return Err(BackendError::Other { what, reason: format!("container {name} is not running") });
        }
        let session = format!("the console of GameServer {} (container {name})", builders::display_name(plan));
        let id = c.id.unwrap_or(name);
        engine::attach(&self.docker, &id, session, |what, e| self.error(what, e)).await
    }
}

impl Reports for DockerOrchestrator {
    /// `mettaton-supervisor status` by exec in the server's container
    /// ([`engine::read_report`]); `None` while it is not running.
    async fn report(&self, plan: &ServerPlan, since: u64) -> Result<Option<crate::supervisor::Report>, BackendError> {
        let name = builders::container_name(plan);
        let Some(c) = self.own(plan).await? else { return Ok(None) };
        if c.state.as_ref().and_then(|s| s.running) != Some(true) {
            return Ok(None);
        }
        let what =
            format!("read the supervisor's report of GameServer {} (container {name})", builders::display_name(plan));
        let id = c.id.unwrap_or(name);
        engine::read_report(&self.docker, &id, since, what, |what, e| self.error(what, e)).await
    }
}

impl Standalone for DockerOrchestrator {
    type Target = Daemon;

    async fn connect(target: &Daemon) -> Result<Self, BackendError> {
        DockerOrchestrator::connect(target).await
    }

    fn with_supervisor_image(self, image: &str) -> Self {
        DockerOrchestrator::with_supervisor_image(self, image)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.docker.ping().await.map(|_| ()).map_err(|e| self.error("ping the Docker daemon", e))
    }

    async fn list_managed(&self) -> Result<Vec<ServerKey>, BackendError> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{}=true", builders::LABEL_MANAGED),
                format!("{}={}", builders::LABEL_BACKEND, builders::BACKEND),
            ],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
            .await
            .map_err(|e| self.error("list the managed containers", e))?;
        let mut keys: Vec<ServerKey> =
            containers.iter().filter_map(|c| builders::server_of(c.labels.as_ref())).collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn volume_exists(&self, plan: &ServerPlan) -> Result<bool, BackendError> {
        if plan.volume.is_none() {
            return Ok(false);
        }
        engine::volume_exists(&self.docker, &builders::volume_name(plan), |what, e| self.error(what, e)).await
    }

    /// A new container of the same making as the current one (its stop
    /// command run first, the same volume, the config files written again),
    /// as swarm's forced update makes a new task.
    async fn restart(&self, plan: &ServerPlan) -> Result<(), BackendError> {
        let name = builders::container_name(plan);
        let what = format!("restart GameServer {}", builders::display_name(plan));
        let Some(c) = self.own(plan).await? else {
            return Err(BackendError::Other { what, reason: format!("no container {name} runs the server") });
        };
        let files = builders::config_files(plan)?;
        let files = match files.is_empty() {
            true => None,
            false => Some(builders::tar(&files).map_err(|reason| builders::refused(plan, reason))?),
        };
        let request = builders::ContainerRequest {
            name: name.clone(),
            body: builders::body_like(&c),
            files,
            hash: String::new(),
        };
        while self.remove(plan, &c).await? == Teardown::Pending {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.create(plan, request).await
    }

    fn limitations(&self, plan: &ServerPlan) -> Vec<String> {
        builders::limitations(plan)
    }

    fn instance_events(&self, since: Option<SystemTime>) -> BoxStream<'static, Result<InstanceEvent, BackendError>> {
        self.events(since, None)
    }

    /// An exit is on purpose when this process stopped the container, or
    /// when it is gone (replaced or removed) or its restart policy is `no`
    /// (mettaton sets that before every stop it makes, in any process).
    async fn stopped_on_purpose(&self, event: &InstanceEvent) -> bool {
        if !matches!(event.kind, InstanceEventKind::Exited { .. }) {
            return false;
        }
        if self.stopping.lock().unwrap_or_else(|p| p.into_inner()).contains(&event.container_id) {
            return true;
        }
        match self.docker.inspect_container(&event.container_id, None).await {
            Ok(c) => !builders::wants_running(&c),
            Err(e) => status_of(&e) == Some(404),
        }
    }

    /// The engine counts a restart when it starts the container again: while
    /// the dead container waits in its restart back-off, the failure is one
    /// more than the count observed.
    fn note_failure(&self, observed: &Observed, event: &InstanceEvent) -> Option<i32> {
        let backoff = self.in_backoff.lock().unwrap_or_else(|p| p.into_inner());
        let counted = *backoff.get(&event.container_id)?;
        let observed_count = observed.instance.as_ref().map_or(counted, |i| i.restarts);
        Some(observed_count.max(counted).saturating_add(1))
    }
}
