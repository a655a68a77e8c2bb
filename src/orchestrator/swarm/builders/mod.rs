//! Pure builders of the Docker Swarm backend: a [`ServerPlan`] turned into the
//! service, configs and volume that run it, and what the engine reports turned
//! back into an [`Observed`] view. No client, no I/O: everything here is
//! tested without an engine. One file per part: `naming` (names and labels),
//! `spec` (service, configs, volume, refusals), `update` (what differs, port
//! conflicts), `engine` (the manager check), `installer` (the supervisor's
//! installer service and its progress), `install` (a template's install
//! script as a one-shot job and its progress), `tasks` (tasks to instance, workload, endpoint,
//! logs, events).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EventMessage, Limit, MountType, Node, ResourceObject, Service, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceUpdateStatusStateEnum, SwarmInfo, Task, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile1, TaskSpecPlacement, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState, VolumeCreateRequest,
};
use k8s_openapi::jiff::Timestamp;

use crate::api::{Protocol, PublishedPort, ServiceType};
use crate::orchestrator::{BackendError, Endpoint, Instance, Workload};
use crate::plan::{ConfigSource, Fnv1a, ServerPlan};

use crate::orchestrator::InstanceEvent;

mod engine;
mod install;
mod installer;
mod naming;
mod spec;
mod tasks;
mod update;

use crate::orchestrator::engine::{self as shared, CONFIG_FILE_MODE, NANOS_PER_SECOND, health_check, non_empty};
pub use crate::orchestrator::engine::{TcpProbe, probe_port, pull_reference};
pub use engine::*;
pub use install::*;
pub use installer::*;
pub use naming::*;
pub use spec::*;
pub use tasks::*;
pub use update::*;

#[cfg(test)]
mod tests;
