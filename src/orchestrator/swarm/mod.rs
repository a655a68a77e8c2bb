//! The Docker Swarm backend: a game server is a replicated swarm service (one
//! task, or none when stopped) publishing its ports in host mode, a labelled
//! local volume for its data, and one swarm config per inline config file.
//! It talks to a swarm manager through the Docker Engine API (bollard).
//!
//! As on Kubernetes, every write is preceded by a read and skipped when the
//! engine already holds what mettaton would write, so a steady state costs
//! reads only; objects of the same name that are not the server's (by their
//! `mettaton.dev/gameserver` and `mettaton.dev/namespace` labels) are never
//! changed or removed.
//!
//! What swarm cannot do is refused by [`builders::service_spec`] with the
//! field named: environment `valueFrom`, config files from ConfigMaps, resources other than cpu and memory, tolerations (swarm has no
//! taints), node selector keys with a prefix or empty values (swarm's
//! constraints cannot say them; the others are `node.labels.KEY==VALUE`
//! placement constraints), a service type other than NodePort and service
//! annotations (ports are published on the node the server runs on, which is
//! the address reported; there is no Service object). `imagePullPolicy` is
//! honoured before the service is created (Never: the image must be on the
//! manager's node; Always: pulled first; IfNotPresent: pulled when missing).
//! A TCP readiness probe is run by mettaton on the published port, with the
//! probe's period and failure threshold ([`crate::orchestrator::engine::TcpProbe`]); a stop
//! command is run by mettaton in the container before swarm stops it.
//! `storage.storageClassName` names the volume driver; `storage.size` is told
//! to no driver and reported as a limitation ([`builders::limitations`]).
//!
//! The volume is local to a node: on a swarm of several nodes, a server
//! rescheduled elsewhere gets an empty volume of the same name there.
//!
//! A template's install script runs before the game as a one-shot job (a
//! `ReplicatedJob` service `<service>-install`, [`builders::install_job_spec`])
//! when the game's service is created to run or its install changes (the
//! install's hash is a label of the game's task); see `run_install` for what
//! a failed one does. The plan's `working_dir` is the container's `dir`.

pub mod builders;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{Node, Service, Task};
use bollard::query_parameters::{
    ListConfigsOptionsBuilder, ListContainersOptionsBuilder, ListServicesOptionsBuilder, ListTasksOptionsBuilder,
    RemoveContainerOptionsBuilder, UpdateServiceOptionsBuilder,
};
use futures::stream::BoxStream;

use crate::api::ReclaimPolicy;
use crate::orchestrator::engine::{self, status_of};
use crate::orchestrator::{
    BackendError, Console, ConsoleSession, InstanceEvent, Logs, Observed, Orchestrator, Owner, Reports, ServerKey,
    Standalone, Teardown, Triggers,
};
use crate::plan::{LABEL_GAMESERVER, ServerPlan};

pub use crate::orchestrator::engine::{Daemon, Tls};

/// Seconds any one request to the engine may take (an image pull included).
const REQUEST_TIMEOUT_SECONDS: u64 = 120;
/// How long the supervisor's installer may take on the swarm's nodes (each
/// pulls the supervisor's image when it does not have it).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a template's install script may run (an egg's downloads a
/// server of some GB): an apply waits for it that long at most.
const INSTALL_SCRIPT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How long a game's task may take to stop before its install runs again.
const STOP_FOR_INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A service mettaton manages, as `list_managed` finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedService {
    /// The GameServer's name.
    pub name: String,
    pub namespace: String,
    pub service_id: String,
    pub service_name: String,
    pub labels: BTreeMap<String, String>,
}

/// Runs game servers on a Docker Swarm, through a manager's Engine API.
#[derive(Clone)]
pub struct SwarmOrchestrator {
    docker: Docker,
    daemon: Daemon,
    /// Failed tasks seen per service id. Swarm keeps only the last few tasks
    /// of a slot (5 by default), which would cap the restart count below what
    /// a crash loop needs; what this process has seen keeps counting.
    seen_failures: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
    /// mettaton's TCP readiness probes, per service id.
    probes: engine::Probes,
    /// How often a controller observes each server (see `triggers`).
    poll: Duration,
    /// The image of mettaton's supervisor, for the servers that need it.
    supervisor_image: Arc<str>,
    /// The supervisor images whose installer this process saw done on every
    /// node; held while one is being installed, so that applies in parallel
    /// wait for the one installer.
    installed: Arc<tokio::sync::Mutex<BTreeSet<String>>>,
}

/// How often a controller observes each server on a swarm by default: the
/// engine's events name containers of its own node only, so the tasks are
/// looked at on this pace too.
pub const POLL: Duration = Duration::from_secs(3);

impl fmt::Debug for SwarmOrchestrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwarmOrchestrator").field("daemon", &self.daemon).finish()
    }
}

impl SwarmOrchestrator {
    /// Connects to the daemon, agrees on an API version with it, and makes sure
    /// it is a swarm manager: an orchestrator that connected can run servers.
    pub async fn connect(daemon: &Daemon) -> Result<Self, BackendError> {
        let docker = engine::connect(daemon, REQUEST_TIMEOUT_SECONDS).await?;
        let orchestrator = SwarmOrchestrator::new(docker, daemon.clone());
        orchestrator.ensure_manager().await?;
        Ok(orchestrator)
    }

    fn new(docker: Docker, daemon: Daemon) -> Self {
        SwarmOrchestrator {
            docker,
            daemon,
            seen_failures: Default::default(),
            probes: Default::default(),
            poll: POLL,
            supervisor_image: crate::supervisor::DEFAULT_IMAGE.into(),
            installed: Default::default(),
        }
    }

    /// The orchestrator taking mettaton's supervisor from `image` (default
    /// [`crate::supervisor::DEFAULT_IMAGE`]), an image on the swarm's nodes
    /// or in a registry they pull from, as the games' images are.
    pub fn with_supervisor_image(mut self, image: &str) -> Self {
        self.supervisor_image = image.into();
        self
    }

    /// The supervisor's image this orchestrator puts into supervised servers.
    pub fn supervisor_image(&self) -> &str {
        &self.supervisor_image
    }

    /// The orchestrator with controllers observing each server every `poll`.
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// `shutdown.stopCommand`, run in the server's running container before
    /// swarm stops it (swarm has no pre-stop hook), for at most the grace
    /// period; then swarm sends SIGTERM and gives the grace period again. As a
    /// failing preStop hook on Kubernetes, a command that fails or times out
    /// is logged and the stop goes on. The engine runs it only for a container
    /// on its own node: on a larger swarm, keep such servers on the manager.
    async fn run_stop_command(&self, plan: &ServerPlan, service_id: &str) {
        if plan.container.stop_command.is_empty() {
            return;
        }
        let filters = HashMap::from([("service", vec![service_id.to_string()])]);
        let Ok(tasks) = self.tasks(filters, "list tasks").await else { return };
        let Some(container) = builders::current_task(&tasks)
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING))
            .and_then(|t| t.status.as_ref()?.container_status.as_ref()?.container_id.clone())
        else {
            return;
        };
        engine::run_stop_command(&self.docker, plan, &builders::display_name(plan), &container).await;
    }

    /// Makes sure the supervisor's volume is filled on every node that can
    /// run a task: its image on the manager's node (pulled when missing), then
    /// its installer service, created once and waited for until its task
    /// completed on every ready node. A failed installer is removed, so that
    /// the next apply tries again. Nothing of a server is created before.
    async fn ensure_supervisor(&self, why: &str) -> Result<(), BackendError> {
        let image = self.supervisor_image.to_string();
        let mut installed = self.installed.lock().await;
        if installed.contains(&image) {
            return Ok(());
        }
        let name = builders::installer_name(&image);
        let what = format!("install mettaton's supervisor ({image}) on the swarm's nodes");
        let service = match self.find_service(&name).await? {
            Some(service) if builders::is_installer(service.spec.as_ref(), &image) => service,
            Some(_) => {
                return Err(BackendError::Refused {
                    what,
                    reason: format!("service {name} already exists and is not mettaton's supervisor installer"),
                });
            }
            None => {
                engine::ensure_supervisor_image(&self.docker, &image, why, "the swarm manager's node", |what, e| {
                    self.error(what, e)
                })
                .await?;
                match self.docker.create_service(builders::installer_spec(&image), None).await {
                    Ok(_) => {}
                    // Created meanwhile by another process.
                    Err(e) if status_of(&e) == Some(409) => {}
                    Err(e) => return Err(self.error(format!("create service {name}"), e)),
                }
                self.find_service(&name).await?.ok_or_else(|| BackendError::Other {
                    what: what.clone(),
                    reason: format!("service {name} is gone right after its creation"),
                })?
            }
        };
        let id = service.id.clone().unwrap_or_else(|| name.clone());
        let deadline = tokio::time::Instant::now() + INSTALL_TIMEOUT;
        loop {
            let tasks =
                self.tasks(HashMap::from([("service", vec![id.clone()])]), &format!("list tasks of {name}")).await?;
            let nodes = self.docker.list_nodes(None).await.map_err(|e| self.error("list the swarm's nodes", e))?;
            match builders::installation(&tasks, &nodes) {
                builders::Installation::Done => {
                    installed.insert(image);
                    return Ok(());
                }
                builders::Installation::Failed(reason) => {
                    if let Err(e) = self.docker.delete_service(&id).await {
                        tracing::warn!(service = name, error = %e, "could not remove the failed supervisor installer");
                    }
                    return Err(BackendError::Refused { what, reason: format!("its installer failed {reason}") });
                }
                builders::Installation::Waiting(nodes) if tokio::time::Instant::now() >= deadline => {
                    return Err(BackendError::Other {
                        what,
                        reason: format!(
                            "its installer (service {name}) has not completed after {} s on node(s) {}",
                            INSTALL_TIMEOUT.as_secs(),
                            nodes.join(", ")
                        ),
                    });
                }
                builders::Installation::Waiting(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// The daemon this talks to.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The bollard client, for what the orchestrator does not cover.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The orchestrator with its client changed by `f`, for instance given a
    /// request modifier that sets headers or records requests.
    pub fn map_client(mut self, f: impl FnOnce(Docker) -> Docker) -> Self {
        self.docker = f(self.docker);
        self
    }

    /// Refused, saying what to do, unless the daemon is an active manager of
    /// a swarm (only managers can create services).
    pub async fn ensure_manager(&self) -> Result<(), BackendError> {
        let info = self.docker.info().await.map_err(|e| self.error("read the Docker daemon's swarm state", e))?;
        match builders::manager_problem(info.swarm.as_ref(), &self.daemon.to_string()) {
            None => Ok(()),
            Some(reason) => {
                Err(BackendError::Refused { what: "use the Docker daemon as a swarm manager".into(), reason })
            }
        }
    }

    /// The services mettaton manages on this swarm (`mettaton.dev/managed=true`).
    pub async fn list_managed(&self) -> Result<Vec<ManagedService>, BackendError> {
        let filters = HashMap::from([("label", vec![format!("{}=true", builders::LABEL_MANAGED)])]);
        let services = self
            .docker
            .list_services(Some(ListServicesOptionsBuilder::default().filters(&filters).build()))
            .await
            .map_err(|e| self.error("list the managed services", e))?;
        Ok(services
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let labels: BTreeMap<String, String> = spec.labels.unwrap_or_default().into_iter().collect();
                Some(ManagedService {
                    name: labels.get(LABEL_GAMESERVER)?.clone(),
                    namespace: labels.get(builders::LABEL_NAMESPACE).cloned().unwrap_or_else(|| "default".into()),
                    service_id: s.id?,
                    service_name: spec.name?,
                    labels,
                })
            })
            .collect())
    }

    /// Starts, exits, out-of-memory kills and health changes of the managed
    /// servers' containers, from `since` on (only new ones when `None`), as
    /// the engine reports them. The stream ends when the connection does.
    ///
    /// The engine reports the containers of its own node only: on a swarm of
    /// one node (or with the servers placed on the manager) this is every
    /// event; on a larger swarm, `observe` (which reads the tasks, wherever
    /// they run) is the source of truth, and a watcher should poll it too.
    fn engine_events(&self, since: Option<SystemTime>) -> BoxStream<'static, Result<InstanceEvent, BackendError>> {
        let this = self.clone();
        let labels = vec![format!("{}=true", builders::LABEL_MANAGED)];
        engine::container_events(&self.docker, labels, since, builders::server_event, move |what, e| {
            this.error(what, e)
        })
    }

    /// The service of that name, if there is one.
    async fn find_service(&self, name: &str) -> Result<Option<Service>, BackendError> {
        match self.docker.inspect_service(name, None).await {
            Ok(service) => Ok(Some(service)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.error(format!("read service {name}"), e)),
        }
    }

    /// The server's own service (of its name, labelled as its), if there is one.
    async fn own_service(&self, plan: &ServerPlan) -> Result<Option<Service>, BackendError> {
        let service = self.find_service(&builders::service_name(plan)).await?;
        Ok(service.filter(|s| builders::is_ours(s.spec.as_ref().and_then(|s| s.labels.as_ref()), plan)))
    }

    async fn tasks(&self, filters: HashMap<&str, Vec<String>>, what: &str) -> Result<Vec<Task>, BackendError> {
        self.docker
            .list_tasks(Some(ListTasksOptionsBuilder::default().filters(&filters).build()))
            .await
            .map_err(|e| self.error(what, e))
    }

    /// Every task of the service `name`, also of one that was just removed
    /// (swarm task names are `service.slot`, and service names hold no dot).
    async fn tasks_named(&self, name: &str) -> Result<Vec<Task>, BackendError> {
        self.tasks(HashMap::from([("name", vec![format!("{name}.")])]), &format!("list tasks of {name}")).await
    }

    /// Makes sure the image is on this node, pulling it when it is not.
    /// `imagePullPolicy`: Never, the image must be on the node already;
    /// Always, it is pulled first (a failed pull is an error even when the node
    /// has an older copy); IfNotPresent (the default), pulled when missing.
    async fn ensure_image(&self, plan: &ServerPlan) -> Result<(), BackendError> {
        engine::ensure_image(&self.docker, plan, "the swarm manager's node", |what, e| self.error(what, e)).await
    }

    /// Refused when another service already publishes one of the fixed ports.
    async fn check_ports(
        &self,
        desired: &bollard::models::ServiceSpec,
        own_id: Option<&str>,
    ) -> Result<(), BackendError> {
        let services = self.docker.list_services(None).await.map_err(|e| self.error("list services", e))?;
        match builders::port_conflict(desired, &services, own_id) {
            None => Ok(()),
            Some(conflict) => Err(conflict.into()),
        }
    }

    /// The server's configs on the swarm, by name.
    async fn configs_of(&self, plan: &ServerPlan) -> Result<HashMap<String, String>, BackendError> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_GAMESERVER}={}", plan.name),
                format!("{}={}", builders::LABEL_NAMESPACE, builders::namespace(plan)),
            ],
        )]);
        let configs = self
            .docker
            .list_configs(Some(ListConfigsOptionsBuilder::default().filters(&filters).build()))
            .await
            .map_err(|e| self.error(format!("list configs of GameServer {}", builders::display_name(plan)), e))?;
        Ok(configs
            .into_iter()
            .filter(|c| builders::is_ours(c.spec.as_ref().and_then(|s| s.labels.as_ref()), plan))
            .filter_map(|c| Some((c.spec?.name?, c.id?)))
            .collect())
    }

    /// Creates what the service mounts and the service itself, or updates it.
    /// Records what it created in `created`, for the caller to undo on failure.
    async fn apply_objects(
        &self,
        plan: &ServerPlan,
        desired: bollard::models::ServiceSpec,
        current: Option<&Service>,
        created: &mut Created,
    ) -> Result<(), BackendError> {
        if let Some(request) = builders::volume_request(plan) {
            let limitations = builders::limitations(plan);
            if engine::ensure_volume(&self.docker, plan, request, limitations, |what, e| self.error(what, e)).await? {
                created.volume = Some(builders::volume_name(plan));
            }
        }

        let mut ids = self.configs_of(plan).await?;
        let planned = builders::config_files(plan)?;
        for config in &planned {
            if ids.contains_key(&config.name) {
                continue;
            }
            let id = self
                .docker
                .create_config(config.spec.clone())
                .await
                .map_err(|e| self.error(format!("create config {} for {}", config.name, config.path), e))?
                .id;
            created.configs.push(id.clone());
            ids.insert(config.name.clone(), id);
        }
        let desired = builders::with_config_ids(desired, &ids);

        let name = builders::service_name(plan);
        match current {
            None => {
                self.docker
                    .create_service(desired, None)
                    .await
                    .map_err(|e| self.error(format!("create service {name}"), e))?;
            }
            Some(service) => {
                let current_spec = service.spec.clone().unwrap_or_default();
                if builders::needs_update(&desired, &current_spec) {
                    if builders::replaces_task(&desired, &current_spec)
                        && let Some(id) = service.id.as_deref()
                    {
                        self.run_stop_command(plan, id).await;
                    }
                    let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
                    let options = UpdateServiceOptionsBuilder::default()
                        .version(i32::try_from(version).unwrap_or(i32::MAX))
                        .build();
                    let id = service.id.as_deref().unwrap_or(&name);
                    self.docker
                        .update_service(id, builders::for_update(desired, &current_spec), options, None)
                        .await
                        .map_err(|e| self.error(format!("update service {name}"), e))?;
                }
            }
        }

        // Configs of earlier versions of the files: no spec refers to them
        // any more. One the engine still counts as used is left for the next
        // apply to remove.
        let wanted: BTreeSet<&str> = planned.iter().map(|c| c.name.as_str()).collect();
        for (config, id) in &ids {
            if !wanted.contains(config.as_str()) {
                match self.docker.delete_config(id).await {
                    Ok(()) => {}
                    Err(e) if matches!(status_of(&e), Some(404 | 400 | 409)) => {
                        tracing::debug!(config, error = %e, "stale config not removed yet");
                    }
                    Err(e) => return Err(self.error(format!("remove config {config}"), e)),
                }
            }
        }
        Ok(())
    }

    /// Removes what a failed apply created, so that it leaves nothing behind.
    async fn undo(&self, created: Created) {
        for id in created.configs {
            if let Err(e) = self.docker.delete_config(&id).await {
                tracing::warn!(config = id, error = %e, "could not remove a config of a failed apply");
            }
        }
        if let Some(volume) = created.volume {
            engine::remove_created_volume(&self.docker, &volume).await;
        }
    }

    /// Whether swarm stopped the task on purpose (an update, a restart, a
    /// scale to zero, a removal): it wants the task shut down and the task did
    /// not fail or complete on its own. `false` when the task is unknown.
    async fn task_stopped_on_purpose(&self, task_id: &str) -> bool {
        use bollard::models::TaskState;
        let Ok(task) = self.docker.inspect_task(task_id).await else { return false };
        let state = task.status.as_ref().and_then(|s| s.state).unwrap_or_default();
        task.desired_state == Some(TaskState::SHUTDOWN)
            && !matches!(state, TaskState::FAILED | TaskState::REJECTED | TaskState::COMPLETE)
    }

    /// Counts the task `task_id` of the service as failed at once (its
    /// container died; the engine marks the task failed a moment later) and
    /// returns the restarts of the service with it.
    fn note_task_failure(&self, service_id: &str, task_id: &str) -> i32 {
        let mut seen = self.seen_failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = seen.entry(service_id.to_string()).or_default();
        known.insert(task_id.to_string());
        i32::try_from(known.len()).unwrap_or(i32::MAX)
    }

    /// Failed tasks of the service, counting those seen before that swarm no
    /// longer keeps.
    fn restarts(&self, service_id: &str, tasks: &[Task]) -> usize {
        let failed = builders::failed_tasks(tasks);
        let mut seen = self.seen_failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = seen.entry(service_id.to_string()).or_default();
        known.extend(failed);
        known.len()
    }

    /// The server's install job, if there is one (of its name, labelled as
    /// its install).
    async fn own_install_job(&self, plan: &ServerPlan) -> Result<Option<Service>, BackendError> {
        let job = self.find_service(&builders::install_job_name(plan)).await?;
        Ok(job.filter(|s| engine::is_install_of(s.spec.as_ref().and_then(|s| s.labels.as_ref()), plan)))
    }

    /// Runs the install `run` as a one-shot job and waits until its task
    /// ended, for at most [`INSTALL_SCRIPT_TIMEOUT`]; the job is removed once
    /// it completed. A job of the same install found running (an apply that
    /// gave up waiting, another process) is waited for; one of another
    /// install is replaced; a failed one of the same install is not run
    /// again: its failure is returned (and reported by `observe`) until the
    /// install changes (its script, image, the server's environment, the
    /// reinstall token) or the server is removed.
    async fn run_install(
        &self,
        plan: &ServerPlan,
        run: &engine::InstallRun,
        constraints: Vec<String>,
    ) -> Result<(), BackendError> {
        let name = builders::install_job_name(plan);
        let display = builders::display_name(plan);
        let job = match self.find_service(&name).await? {
            Some(job) if !engine::is_install_of(job.spec.as_ref().and_then(|s| s.labels.as_ref()), plan) => {
                return Err(engine::not_ours(
                    format!("install GameServer {display}"),
                    &format!("service {name}"),
                    plan,
                ));
            }
            Some(job) if builders::job_hash(job.spec.as_ref()) == Some(run.hash.as_str()) => job,
            other => {
                if let Some(old) = other {
                    self.delete_job(&old).await?;
                }
                let spec = builders::install_job_spec(plan, run, constraints);
                match self.docker.create_service(spec, None).await {
                    Ok(_) => {}
                    Err(e) => return Err(self.error(format!("create the install job {name} of {display}"), e)),
                }
                self.find_service(&name).await?.ok_or_else(|| BackendError::Other {
                    what: format!("install GameServer {display}"),
                    reason: format!("service {name} is gone right after its creation"),
                })?
            }
        };
        let id = job.id.clone().unwrap_or_else(|| name.clone());
        let deadline = tokio::time::Instant::now() + INSTALL_SCRIPT_TIMEOUT;
        loop {
            let tasks =
                self.tasks(HashMap::from([("service", vec![id.clone()])]), &format!("list tasks of {name}")).await?;
            match builders::job_progress(&name, &tasks) {
                builders::JobProgress::Done => {
                    self.delete_job(&job).await?;
                    return Ok(());
                }
                builders::JobProgress::Failed(how) => {
                    let log = self.job_log(&id).await;
                    return Err(engine::install_failure(plan, "Docker Swarm", &how, &log));
                }
                builders::JobProgress::Running(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(BackendError::Other {
                        what: format!("install GameServer {display}"),
                        reason: format!(
                            "its install job (service {name}) has not ended after {} s; the next apply waits for \
                             it again",
                            INSTALL_SCRIPT_TIMEOUT.as_secs()
                        ),
                    });
                }
                builders::JobProgress::Running(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// The last lines of an install job's log (its task's output; empty when
    /// the engine cannot give it).
    async fn job_log(&self, id: &str) -> String {
        let stream = self.docker.service_logs(id, Some(engine::log_options(Some(100), false, false)));
        engine::read_log(stream, format!("read the log of install job {id}"), |what, e| self.error(what, e))
            .await
            .unwrap_or_default()
    }

    /// Removes a job and the containers of its tasks on the daemon's node:
    /// swarm keeps a job's ended task containers after the job is removed,
    /// and they would hold the server's volume (a larger swarm's other nodes
    /// keep theirs until swarm prunes them).
    async fn delete_job(&self, job: &Service) -> Result<(), BackendError> {
        let id = job.id.as_deref().unwrap_or_default();
        match self.docker.delete_service(id).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(self.error(format!("remove install job {id}"), e)),
        }
        let name = job.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
        let filters = HashMap::from([("label", vec![format!("{}={name}", builders::LABEL_SWARM_SERVICE_NAME)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers =
            self.docker.list_containers(Some(options)).await.map_err(|e| self.error("list install containers", e))?;
        for c in containers {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            match self.docker.remove_container(c.id.as_deref().unwrap_or_default(), Some(options)).await {
                Ok(()) => {}
                Err(e) if matches!(status_of(&e), Some(404 | 409)) => {}
                Err(e) => return Err(self.error(format!("remove a container of install job {name}"), e)),
            }
        }
        Ok(())
    }

    /// Removes the server's install job; `true` while a task of it still
    /// runs (it writes on the volume).
    async fn remove_install_job(&self, plan: &ServerPlan) -> Result<bool, BackendError> {
        if let Some(job) = self.own_install_job(plan).await? {
            self.delete_job(&job).await?;
        }
        let name = builders::install_job_name(plan);
        Ok(self.tasks_named(&name).await?.iter().any(|t| {
            t.status.as_ref().and_then(|s| s.state).unwrap_or_default() <= bollard::models::TaskState::RUNNING
        }))
    }

    /// Stops the game before its install runs again (the script writes the
    /// files the game has open): its stop command, then its service scaled
    /// to zero, waited for until no task of it runs.
    async fn stop_for_install(&self, plan: &ServerPlan, service: &Service) -> Result<(), BackendError> {
        let name = builders::service_name(plan);
        let id = service.id.clone().unwrap_or_else(|| name.clone());
        if builders::replicas(service.spec.as_ref()) != Some(0) {
            self.run_stop_command(plan, &id).await;
            let spec = builders::scaled_to_zero(service.spec.clone().unwrap_or_default());
            let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let options =
                UpdateServiceOptionsBuilder::default().version(i32::try_from(version).unwrap_or(i32::MAX)).build();
            self.docker
                .update_service(&id, spec, options, None)
                .await
                .map_err(|e| self.error(format!("stop service {name} for its install"), e))?;
        }
        let deadline = tokio::time::Instant::now() + engine::grace(plan) + STOP_FOR_INSTALL_TIMEOUT;
        loop {
            let tasks =
                self.tasks(HashMap::from([("service", vec![id.clone()])]), &format!("list tasks of {name}")).await?;
            let running = tasks.iter().any(|t| {
                t.status.as_ref().and_then(|s| s.state).unwrap_or_default() <= bollard::models::TaskState::RUNNING
            });
            if !running {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Other {
                    what: format!("stop GameServer {} for its install", builders::display_name(plan)),
                    reason: format!("a task of service {name} still runs after the grace period"),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// What the install shows while it is the server: running (the server is
    /// starting) or failed (its last lines); `None` without an install job.
    async fn observe_install(&self, plan: &ServerPlan) -> Result<Option<Observed>, BackendError> {
        let Some(job) = self.own_install_job(plan).await? else { return Ok(None) };
        let name = builders::install_job_name(plan);
        let id = job.id.clone().unwrap_or_else(|| name.clone());
        let tasks =
            self.tasks(HashMap::from([("service", vec![id.clone()])]), &format!("list tasks of {name}")).await?;
        let problem = match builders::job_progress(&name, &tasks) {
            builders::JobProgress::Failed(how) => Some(engine::install_failed(&self.job_log(&id).await, &how)),
            _ => None,
        };
        Ok(Some(engine::install_observed(&name, problem, Some(id))))
    }

    /// A bollard error as the backend error the user sees, naming the daemon
    /// when it could not be reached.
    fn error(&self, what: impl Into<String>, err: DockerError) -> BackendError {
        let what = what.into();
        match err {
            DockerError::DockerResponseServerError { status_code: 503, message }
                if message.contains("not a swarm manager") =>
            {
                BackendError::Refused {
                    what,
                    reason: format!(
                        "the Docker daemon at {} is not a swarm manager: run `docker swarm init`",
                        self.daemon
                    ),
                }
            }
            other => engine::error(&self.daemon, what, other),
        }
    }
}

/// What one apply created, to be removed if the apply fails.
#[derive(Default)]
struct Created {
    volume: Option<String>,
    configs: Vec<String>,
}

impl Orchestrator for SwarmOrchestrator {
    /// The engine sends no change notifications a controller could rely on
    /// (its events name the containers of its own node only): each server is
    /// observed every `poll` ([`SwarmOrchestrator::with_poll`]).
    fn triggers(&self, _namespace: Option<&str>) -> Triggers {
        Triggers::poll_only(self.poll)
    }

    fn reports(&self) -> Option<&impl Reports> {
        Some(self)
    }

    async fn apply(&self, owner: &Owner, plan: &ServerPlan) -> Result<(), BackendError> {
        let desired = builders::service_spec(plan, owner.uid.as_deref(), &self.supervisor_image)?;
        let name = builders::service_name(plan);
        let current = self.find_service(&name).await?;
        if let Some(service) = &current
            && !builders::is_ours(service.spec.as_ref().and_then(|s| s.labels.as_ref()), plan)
        {
            return Err(engine::not_ours(format!("apply service {name}"), &format!("service {name}"), plan));
        }
        let current_spec = current.as_ref().and_then(|s| s.spec.as_ref());
        // Checked before anything is created, and only when they change, so a
        // steady state reads no image and no other service.
        if current_spec.is_none_or(|c| builders::image(c) != builders::image(&desired)) {
            self.ensure_image(plan).await?;
        }
        if current_spec.is_none_or(|c| builders::ports_differ(&desired, c)) {
            self.check_ports(&desired, current.as_ref().and_then(|s| s.id.as_deref())).await?;
        }
        if let Some(supervisor) = &plan.container.supervisor {
            self.ensure_supervisor(&engine::supervisor_fields(supervisor)).await?;
        }
        let mut created = Created::default();
        let mut desired = desired;
        let mut stopped = false;
        // The install, before the game's service is created or changed; a
        // service made after an install carries its hash, so a steady state
        // runs none.
        if let Some(run) = builders::install_run(plan, owner.uid.as_deref(), &self.supervisor_image)?
            && plan.replicas > 0
        {
            desired = builders::with_install(desired, &run.hash);
            if current_spec.is_none_or(|c| builders::installed_hash(c) != Some(run.hash.as_str())) {
                self.ensure_supervisor("the template's install script").await?;
                if let Some(request) = builders::volume_request(plan) {
                    let limitations = builders::limitations(plan);
                    if engine::ensure_volume(&self.docker, plan, request, limitations, |what, e| self.error(what, e))
                        .await?
                    {
                        created.volume = Some(builders::volume_name(plan));
                    }
                }
                if let Some(service) = &current {
                    self.stop_for_install(plan, service).await?;
                    stopped = true;
                }
                let constraints = builders::constraints(plan)?;
                // A failed install leaves its job (what `observe` reports)
                // and the volume it wrote on: nothing is undone.
                self.run_install(plan, &run, constraints).await?;
            }
        }
        // Scaled down for the install: read again for its version.
        let current = if stopped { self.own_service(plan).await? } else { current };
        let result = self.apply_objects(plan, desired, current.as_ref(), &mut created).await;
        if result.is_err() {
            self.undo(created).await;
        }
        result
    }

    async fn observe(&self, plan: &ServerPlan) -> Result<Observed, BackendError> {
        let name = builders::service_name(plan);
        let service = self.own_service(plan).await?;
        // No game yet (or scaled down for an install): the install may be
        // what runs, or what failed. Read only then, so a running server
        // costs no read of it.
        let scaled_down = service.as_ref().is_some_and(|s| builders::replicas(s.spec.as_ref()) == Some(0));
        if plan.install.is_some()
            && plan.replicas > 0
            && (service.is_none() || scaled_down)
            && let Some(observed) = self.observe_install(plan).await?
        {
            return Ok(observed);
        }
        let Some(service) = service else {
            return Ok(Observed::default());
        };
        let id = service.id.clone().unwrap_or_default();
        let what = format!("list tasks of {name}");
        let tasks = self.tasks(HashMap::from([("service", vec![id.clone()])]), &what).await?;
        // `_up-to-date` is the engine's own filter for tasks that run the
        // service's current spec (the one `docker service update` waits on).
        let up_to_date: BTreeSet<String> = self
            .tasks(HashMap::from([("service", vec![id.clone()]), ("_up-to-date", vec!["true".to_string()])]), &what)
            .await?
            .into_iter()
            .filter_map(|t| t.id)
            .collect();
        let restarts = self.restarts(&id, &tasks);
        let current = builders::current_task(&tasks);
        let node: Option<Node> = match current.and_then(|t| t.node_id.as_deref()).filter(|n| !n.is_empty()) {
            Some(node_id) => match self.docker.inspect_node(node_id).await {
                Ok(node) => Some(node),
                Err(e) if status_of(&e) == Some(404) => None,
                Err(e) => return Err(self.error(format!("read node {node_id}"), e)),
            },
            None => None,
        };
        let endpoint = builders::endpoint(plan, current, node.as_ref());
        let mut workload = builders::workload(&service, &tasks, current, &up_to_date);
        let mut instance = current.map(|t| builders::instance(&name, t, &tasks, restarts));
        if let (Some(i), Some(task)) = (instance.as_mut(), current)
            && i.ready
            && engine::tcp_probed(plan)
        {
            let ready = self.probes.ready(&id, task.id.as_deref().unwrap_or_default(), plan, &endpoint).await;
            if !ready {
                i.ready = false;
                workload.ready = 0;
                i.problem = Some(engine::unanswered(plan, &endpoint));
            }
        }
        Ok(Observed { workload: Some(workload), instance, endpoint, backend_ref: Some(id) })
    }

    async fn teardown(&self, plan: &ServerPlan, reclaim: ReclaimPolicy) -> Result<Teardown, BackendError> {
        let name = builders::service_name(plan);
        let mut pending = self.remove_install_job(plan).await?;
        let service = self.find_service(&name).await?;
        let foreign =
            service.as_ref().is_some_and(|s| !builders::is_ours(s.spec.as_ref().and_then(|s| s.labels.as_ref()), plan));
        if let Some(service) = service.filter(|_| !foreign) {
            let id = service.id.as_deref().unwrap_or(&name);
            self.run_stop_command(plan, id).await;
            match self.docker.delete_service(id).await {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(self.error(format!("remove service {name}"), e)),
            }
            self.seen_failures.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            self.probes.forget(id);
        }
        // The game saves its world in its grace period: the teardown is not
        // done while a task of the service still runs. (The tasks of a service
        // of that name that is not the server's are not waited for.)
        if !foreign {
            pending |= self.tasks_named(&name).await?.iter().any(|t| {
                t.status.as_ref().and_then(|s| s.state).unwrap_or_default() <= bollard::models::TaskState::RUNNING
            });
        }
        for (config, id) in self.configs_of(plan).await? {
            match self.docker.delete_config(&id).await {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                // Still referenced by the service being removed.
                Err(e) if matches!(status_of(&e), Some(400 | 409)) => pending = true,
                Err(e) => return Err(self.error(format!("remove config {config}"), e)),
            }
        }
        if reclaim == ReclaimPolicy::Delete && plan.volume.is_some() {
            // A container (the last task's, being removed) may still use it.
            let volume = builders::volume_name(plan);
            pending |= !engine::remove_volume(&self.docker, plan, &volume, |what, e| self.error(what, e)).await?;
        }
        Ok(if pending { Teardown::Pending } else { Teardown::Done })
    }
}

impl Logs for SwarmOrchestrator {
    async fn logs(&self, plan: &ServerPlan, tail: Option<i64>) -> Result<String, BackendError> {
        let name = builders::service_name(plan);
        let what = format!("read the log of GameServer {}", builders::display_name(plan));
        let Some(service) = self.own_service(plan).await? else {
            return Err(BackendError::Other { what, reason: format!("no service {name} runs the server") });
        };
        let id = service.id.unwrap_or(name);
        // Timestamps put the lines of successive tasks (restarts) in order;
        // the engine applies the tail to each task's log, so it is applied
        // again to the merged lines.
        let stream = self.docker.service_logs(&id, Some(engine::log_options(tail, false, true)));
        let text = engine::read_log(stream, what, |what, e| self.error(what, e)).await?;
        Ok(builders::merge_log_lines(&text, tail))
    }

    fn follow_logs(&self, plan: &ServerPlan, tail: Option<i64>) -> BoxStream<'static, Result<String, BackendError>> {
        let options = engine::log_options(tail, true, false);
        let this = self.clone();
        let what = format!("read the log of GameServer {}", builders::display_name(plan));
        let stream = self.docker.service_logs(&builders::service_name(plan), Some(options));
        engine::log_text(stream, what, move |what, e| this.error(what, e))
    }
}

impl SwarmOrchestrator {
    /// The server's running task and its container; `None` when no task of
    /// its service runs (or it has no service). The Engine API reaches the
    /// containers of its own node only: a task on another node is refused,
    /// `what` saying what could not be done there.
    async fn running_here(&self, plan: &ServerPlan, what: &str) -> Result<Option<(Task, String)>, BackendError> {
        let name = builders::service_name(plan);
        let Some(service) = self.own_service(plan).await? else { return Ok(None) };
        let id = service.id.unwrap_or(name.clone());
        let tasks = self.tasks(HashMap::from([("service", vec![id])]), &format!("list tasks of {name}")).await?;
        let running = builders::current_task(&tasks)
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING));
        let Some((task, container)) =
            running.and_then(|t| Some((t, t.status.as_ref()?.container_status.as_ref()?.container_id.clone()?)))
        else {
            return Ok(None);
        };
        let info = self.docker.info().await.map_err(|e| self.error("read the Docker daemon's swarm state", e))?;
        let here = info.swarm.as_ref().and_then(|s| s.node_id.clone()).unwrap_or_default();
        let there = task.node_id.clone().unwrap_or_default();
        if there != here {
            let host = match self.docker.inspect_node(&there).await {
                Ok(node) => node.description.and_then(|d| d.hostname).unwrap_or(there),
                Err(_) => there,
            };
            return Err(BackendError::Refused {
                what: what.to_string(),
                reason: format!(
                    "its task runs on node {host}, and the Docker daemon at {} (node {}) reaches only its own \
                     node's containers: keep servers whose console, players or output events are used on that \
                     node (spec.nodeSelector)",
                    self.daemon,
                    info.name.unwrap_or(here)
                ),
            });
        }
        Ok(Some((task.clone(), container)))
    }
}

impl Console for SwarmOrchestrator {
    /// The engine's attach on the container of the server's running task,
    /// which must run on the daemon's own node.
    async fn attach(&self, plan: &ServerPlan) -> Result<ConsoleSession, BackendError> {
        let name = builders::service_name(plan);
        let what = format!("open the console of GameServer {}", builders::display_name(plan));
        let Some((task, container)) = self.running_here(plan, &what).await? else {
            let reason = match self.own_service(plan).await? {
                Some(_) => format!("no task of service {name} is running"),
                None => format!("no service {name} runs the server"),
            };
            return Err(BackendError::Other { what, reason });
        };
        let session = format!(
            "the console of GameServer {} (task {})",
            builders::display_name(plan),
            task.id.as_deref().unwrap_or_default()
        );
        engine::attach(&self.docker, &container, session, |what, e| self.error(what, e)).await
    }
}

impl Reports for SwarmOrchestrator {
    /// `mettaton-supervisor status` by exec in the container of the server's
    /// running task ([`engine::read_report`]), which must run on the daemon's
    /// own node; `None` while no task runs.
    async fn report(&self, plan: &ServerPlan, since: u64) -> Result<Option<crate::supervisor::Report>, BackendError> {
        let what = format!("read the supervisor's report of GameServer {}", builders::display_name(plan));
        let Some((task, container)) = self.running_here(plan, &what).await? else { return Ok(None) };
        let what = format!("{what} (task {})", task.id.as_deref().unwrap_or_default());
        engine::read_report(&self.docker, &container, since, what, |what, e| self.error(what, e)).await
    }
}

impl Standalone for SwarmOrchestrator {
    type Target = Daemon;

    async fn connect(daemon: &Daemon) -> Result<Self, BackendError> {
        SwarmOrchestrator::connect(daemon).await
    }

    fn with_supervisor_image(self, image: &str) -> Self {
        SwarmOrchestrator::with_supervisor_image(self, image)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.docker.ping().await.map(|_| ()).map_err(|e| self.error("ping the Docker daemon", e))
    }

    async fn list_managed(&self) -> Result<Vec<ServerKey>, BackendError> {
        let services = SwarmOrchestrator::list_managed(self).await?;
        Ok(services.into_iter().map(|m| ServerKey { namespace: m.namespace, name: m.name }).collect())
    }

    /// Whether the server's data volume exists (its own or not).
    async fn volume_exists(&self, plan: &ServerPlan) -> Result<bool, BackendError> {
        if plan.volume.is_none() {
            return Ok(false);
        }
        engine::volume_exists(&self.docker, &builders::volume_name(plan), |what, e| self.error(what, e)).await
    }

    /// Restarts the server: a forced update of its service, so that swarm
    /// replaces its task with a new one (same spec, same volume). Nothing is
    /// done to a stopped server or one that has no service.
    async fn restart(&self, plan: &ServerPlan) -> Result<(), BackendError> {
        let name = builders::service_name(plan);
        let what = format!("restart GameServer {}", builders::display_name(plan));
        let Some(service) = self.own_service(plan).await? else {
            return Err(BackendError::Other { what, reason: format!("no service {name} runs the server") });
        };
        if let Some(id) = service.id.as_deref() {
            self.run_stop_command(plan, id).await;
        }
        let mut spec = service.spec.clone().unwrap_or_default();
        let task = spec.task_template.get_or_insert_with(Default::default);
        task.force_update = Some(task.force_update.unwrap_or(0).wrapping_add(1));
        let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let options =
            UpdateServiceOptionsBuilder::default().version(i32::try_from(version).unwrap_or(i32::MAX)).build();
        let id = service.id.as_deref().unwrap_or(&name);
        self.docker.update_service(id, spec, options, None).await.map_err(|e| self.error(what, e))?;
        Ok(())
    }

    fn limitations(&self, plan: &ServerPlan) -> Vec<String> {
        builders::limitations(plan)
    }

    fn instance_events(&self, since: Option<SystemTime>) -> BoxStream<'static, Result<InstanceEvent, BackendError>> {
        self.engine_events(since)
    }

    async fn stopped_on_purpose(&self, event: &InstanceEvent) -> bool {
        match event.task_id.as_deref() {
            Some(task) => self.task_stopped_on_purpose(task).await,
            None => false,
        }
    }

    fn note_failure(&self, observed: &Observed, event: &InstanceEvent) -> Option<i32> {
        let service = observed.backend_ref.as_deref()?;
        Some(self.note_task_failure(service, event.task_id.as_deref()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::API_DEFAULT_VERSION;

    #[test]
    fn docker_host_values_name_a_daemon() {
        assert_eq!(Daemon::parse("", false, None), Ok(Daemon::default()));
        assert_eq!(
            Daemon::parse("unix:///run/user/1000/docker.sock", false, None),
            Ok(Daemon::LocalSocket("/run/user/1000/docker.sock".into()))
        );
        assert_eq!(
            Daemon::parse("tcp://10.0.0.5:2375", false, None),
            Ok(Daemon::Tcp { url: "tcp://10.0.0.5:2375".into(), tls: None })
        );
        assert_eq!(
            Daemon::parse("tcp://10.0.0.5:2376", true, Some("/certs".into())),
            Ok(Daemon::Tcp {
                url: "tcp://10.0.0.5:2376".into(),
                tls: Some(Tls {
                    ca: "/certs/ca.pem".into(),
                    cert: "/certs/cert.pem".into(),
                    key: "/certs/key.pem".into()
                })
            })
        );
        assert!(Daemon::parse("ssh://me@host", false, None).unwrap_err().contains("ssh://me@host"));
        assert_eq!(Daemon::default().to_string(), "unix:///var/run/docker.sock");
    }

    #[test]
    fn transport_failures_are_unreachable_and_name_the_daemon() {
        let daemon = Daemon::Tcp { url: "tcp://10.0.0.5:2375".into(), tls: None };
        let docker = Docker::connect_with_http("tcp://10.0.0.5:2375", 1, API_DEFAULT_VERSION).unwrap();
        let backend = SwarmOrchestrator::new(docker, daemon);
        match backend.error("list services", DockerError::RequestTimeoutError) {
            BackendError::Unreachable(message) => {
                assert!(message.starts_with("list services: the Docker daemon at tcp://10.0.0.5:2375"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let refused = DockerError::DockerResponseServerError { status_code: 400, message: "bad spec".into() };
        assert!(matches!(
            backend.error("create service", refused),
            BackendError::Refused { reason, .. } if reason == "bad spec"
        ));
        let not_manager = DockerError::DockerResponseServerError {
            status_code: 503,
            message: "This node is not a swarm manager. Use \"docker swarm init\"".into(),
        };
        assert!(matches!(
            backend.error("list services", not_manager),
            BackendError::Refused { reason, .. } if reason.contains("run `docker swarm init`")
        ));
        let busy = DockerError::DockerResponseServerError { status_code: 500, message: "rpc error".into() };
        assert!(matches!(backend.error("x", busy), BackendError::Other { .. }));
    }

    #[test]
    fn restarts_seen_once_keep_counting_after_swarm_forgot_them() {
        use serde_json::json;
        let docker = Docker::connect_with_http("tcp://127.0.0.1:1", 1, API_DEFAULT_VERSION).unwrap();
        let backend = SwarmOrchestrator::new(docker, Daemon::default());
        let failed = |id: &str| -> Task {
            serde_json::from_value(json!({ "ID": id, "DesiredState": "shutdown", "Status": { "State": "failed" } }))
                .unwrap()
        };
        assert_eq!(backend.restarts("s", &[failed("t1"), failed("t2")]), 2);
        // Swarm keeps a few tasks per slot: t1 is gone from its history.
        assert_eq!(backend.restarts("s", &[failed("t2"), failed("t3")]), 3);
        assert_eq!(backend.restarts("other", &[]), 0);
    }
}
