//! What the backends on a Docker Engine share, whichever objects they run a
//! server as (swarm services, plain containers). A file per idea:
//! - `daemon`: where the daemon listens ([`Daemon`]) and the client of it;
//! - `errors`: the engine's errors as [`BackendError`](crate::orchestrator::BackendError)s;
//! - `labels`: the names and identity labels of a server's objects;
//! - `container`: the plan's environment, cpu and memory, healthcheck;
//! - `image`: the image pulled per `imagePullPolicy`;
//! - `volume`: the labelled data volume, its mount, creation and removal;
//! - `probe`: mettaton's own TCP readiness probe;
//! - `stop`: the grace period and the stop command run by exec;
//! - `supervisor`: mettaton's supervisor in a container: its volume, mounts;
//! - `install`: a template's install script, run before the game;
//! - `console`: a container's console (attach);
//! - `report`: the supervisor's report, read by exec (`mettaton-supervisor status`);
//! - `events`: the engine's container events as instance events;
//! - `logs`: how a log is asked for.

mod console;
mod container;
mod daemon;
mod errors;
mod events;
mod image;
mod install;
mod labels;
mod logs;
mod probe;
mod report;
mod stop;
mod supervisor;
mod volume;

pub use console::*;
pub use container::*;
pub use daemon::*;
pub use errors::*;
pub use events::*;
pub use image::*;
pub use install::*;
pub use labels::*;
pub use logs::*;
pub use probe::*;
pub use report::*;
pub use stop::*;
pub use supervisor::*;
pub use volume::*;
