//! mettaton's supervisor in a container on a Docker Engine, on swarm as on
//! plain Docker: how its binary gets there without a change to the game's
//! image, and what the game's container is given for it.
//!
//! The binary (1.4 MB) is too large for a swarm config (1000 KiB at most),
//! and an engine cannot mount an image (`type=image` mounts came with API
//! 1.48; Debian's engine speaks 1.41). So it lives in a named volume per
//! supervisor image, `mettaton-supervisor-<hash of the image reference>`,
//! filled by the supervisor image's own `install` (a global swarm service, or
//! a one-shot container on plain Docker) and mounted read-only at
//! `/.mettaton/bin` of the game's container; `/.mettaton/run`, the
//! supervisor's state (the ready file, the players and matched lines of its
//! report), is a tmpfs, empty at every start.

use std::collections::HashMap;

use bollard::models::{Mount, MountTmpfsOptions, MountType, MountVolumeOptions};

use crate::plan::{Fnv1a, ServerPlan, SupervisorPlan};
use crate::supervisor;

use super::LABEL_MANAGED;

/// On the supervisor's volume and what fills it: the supervisor image they
/// are of.
pub const LABEL_SUPERVISOR_IMAGE: &str = "mettaton.dev/supervisor-image";
/// Where the supervisor's volume is mounted, in the installer and in the
/// game's container: `supervisor::BINARY` is in it.
pub const SUPERVISOR_BIN: &str = "/.mettaton/bin";
/// The tmpfs of the supervisor's state: small (the ready and players files).
const STATE_TMPFS_BYTES: i64 = 1024 * 1024;

/// The name of the volume holding the supervisor of `image` (and of the swarm
/// service that fills it): one per image reference, so that servers of two
/// supervisor versions never share a binary.
pub fn supervisor_volume(image: &str) -> String {
    let mut hash = Fnv1a::default();
    hash.write(image.as_bytes());
    format!("mettaton-supervisor-{}", hash.short())
}

/// The labels of the supervisor's volume and installer: mettaton's, and of
/// which image (no server's: they are shared by every supervised server).
pub fn supervisor_labels(image: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_SUPERVISOR_IMAGE.to_string(), image.to_string()),
    ])
}

/// The supervisor's volume as the installer mounts it: writable, labelled
/// (the engine creates it from the mount on each node).
pub fn installer_mount(image: &str) -> Mount {
    Mount {
        target: Some(SUPERVISOR_BIN.to_string()),
        source: Some(supervisor_volume(image)),
        typ: Some(MountType::VOLUME),
        volume_options: Some(MountVolumeOptions { labels: Some(supervisor_labels(image)), ..Default::default() }),
        ..Default::default()
    }
}

/// The installer's command line in the supervisor's image.
pub fn installer_command() -> Vec<String> {
    let command = supervisor::install_command();
    debug_assert_eq!(command.last().map(String::as_str), Some(SUPERVISOR_BIN));
    command
}

/// What the game's container mounts for the supervisor: its volume,
/// read-only, and a tmpfs for its state.
pub fn supervisor_mounts(image: &str) -> Vec<Mount> {
    vec![
        Mount { read_only: Some(true), ..installer_mount(image) },
        Mount {
            target: Some(supervisor::STATE_DIR.to_string()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions { size_bytes: Some(STATE_TMPFS_BYTES), ..Default::default() }),
            ..Default::default()
        },
    ]
}

/// The container's command line, supervised: the supervisor running the
/// spec's `command` and `args`, serving nothing (its report is read by exec,
/// [`super::read_report`]). `None` for a server without a supervisor.
pub fn supervised_command(plan: &ServerPlan) -> Option<Vec<String>> {
    plan.container.supervisor.as_ref().map(|s| supervisor::command_unserved(plan, s))
}

/// The signal that stops a supervised container: SIGTERM, which the
/// supervisor turns into the spec's `shutdown.stop` (an image's own
/// STOPSIGNAL would otherwise be sent, which it may pass on to the game).
pub const SUPERVISED_STOP_SIGNAL: &str = "SIGTERM";

/// The fields of a spec that ask for the supervisor, for messages:
/// `spec.health.readyLogLine and spec.shutdown.stop`.
pub fn supervisor_fields(supervisor: &SupervisorPlan) -> String {
    let fields: Vec<&str> = [
        (!supervisor.ready.is_empty()).then_some("spec.health.readyLogLine"),
        supervisor.stop.is_some().then_some("spec.shutdown.stop"),
        (!supervisor.join.is_empty() || !supervisor.leave.is_empty()).then_some("spec.players"),
        (!supervisor.events.is_empty()).then_some("spec.outputEvents"),
    ]
    .into_iter()
    .flatten()
    .collect();
    fields.join(" and ")
}
