//! The server's data volume on an engine: a named volume, labelled, mounted
//! into the container; created when missing, removed only when the reclaim
//! policy says so.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{Mount, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig, VolumeCreateRequest};
use bollard::query_parameters::RemoveVolumeOptions;

use crate::orchestrator::BackendError;
use crate::plan::ServerPlan;

use super::{LABEL_RECLAIM, LABEL_SIZE, display_name, is_ours, not_ours, object_labels, status_of};

/// The volume's labels: the server's, and the reclaim policy it is created
/// under.
pub fn volume_labels(plan: &ServerPlan) -> HashMap<String, String> {
    let mut labels = object_labels(plan);
    if let Some(v) = &plan.volume {
        labels.insert(LABEL_RECLAIM.to_string(), format!("{:?}", v.reclaim));
    }
    labels.into_iter().collect()
}

/// The data volume `name` to create, when the server has one.
/// `storage.storageClassName` names the volume driver (Docker's `local` when
/// absent); `storage.size` is recorded in the [`LABEL_SIZE`] label and
/// reported by [`size_limitation`]: no driver option for a size is common to
/// Docker's volume drivers, and the local driver has none.
pub fn volume_request(plan: &ServerPlan, name: String) -> Option<VolumeCreateRequest> {
    plan.volume.as_ref().map(|v| {
        let mut labels = volume_labels(plan);
        labels.insert(LABEL_SIZE.to_string(), v.size.clone());
        VolumeCreateRequest {
            name: Some(name),
            driver: v.storage_class_name.clone(),
            labels: Some(labels),
            ..Default::default()
        }
    })
}

/// The mount of the data volume `name` at `storage.mountPath`, when the
/// server has one.
pub fn volume_mounts(plan: &ServerPlan, name: String) -> Option<Vec<Mount>> {
    plan.volume.as_ref().map(|v| {
        vec![Mount {
            target: Some(v.mount_path.clone()),
            source: Some(name),
            typ: Some(MountType::VOLUME),
            // Were the volume gone when the container is created, the engine
            // would create it from the mount: labelled, so it stays findable.
            volume_options: Some(MountVolumeOptions {
                labels: Some(volume_labels(plan)),
                driver_config: v
                    .storage_class_name
                    .clone()
                    .map(|driver| MountVolumeOptionsDriverConfig { name: Some(driver), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }]
    })
}

/// Why a `storage.mountPath` cannot be used, when it is not absolute (the
/// engine would accept a relative target and fail only the container; a plan
/// made outside Kubernetes has no schema that would have refused it).
pub fn mount_path_problem(plan: &ServerPlan) -> Option<String> {
    let v = plan.volume.as_ref().filter(|v| !v.mount_path.starts_with('/'))?;
    Some(format!("spec.storage.mountPath {:?} must be an absolute path", v.mount_path))
}

/// `storage.size`, which no volume driver of `runtime` is told, as the
/// limitation users are shown (`machine`: where the volume's disk is).
pub fn size_limitation(plan: &ServerPlan, runtime: &str, machine: &str) -> Option<String> {
    let v = plan.volume.as_ref()?;
    let driver = v.storage_class_name.as_deref().unwrap_or("local");
    Some(format!(
        "spec.storage.size {} is not enforced on {runtime}: volume driver {driver} is given no size (the volume \
         grows with what the game writes, up to the {machine}'s free disk); the size is recorded in the volume's \
         {LABEL_SIZE} label",
        v.size
    ))
}

/// The data volume `name` (made by `request`), created when missing; refused
/// when a volume of that name is another's. `true` when this call created
/// it. What the volume does differently than asked (`limitations`) is logged
/// at its creation, where the facade's warnings do not reach (a controller's
/// log).
pub async fn ensure_volume(
    docker: &Docker,
    plan: &ServerPlan,
    request: VolumeCreateRequest,
    limitations: Vec<String>,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<bool, BackendError> {
    let name = request.name.clone().unwrap_or_default();
    match docker.inspect_volume(&name).await {
        Ok(volume) if is_ours(Some(&volume.labels), plan) => Ok(false),
        Ok(_) => Err(not_ours(format!("create volume {name}"), &format!("volume {name}"), plan)),
        Err(e) if status_of(&e) == Some(404) => {
            docker.create_volume(request).await.map_err(|e| error(format!("create volume {name}"), e))?;
            for limitation in limitations {
                tracing::warn!(gameserver = %display_name(plan), "{limitation}");
            }
            Ok(true)
        }
        Err(e) => Err(error(format!("read volume {name}"), e)),
    }
}

/// Removes the server's own data volume `name`, if it is there: `false` while
/// a container (the server's, being removed) still uses it.
pub async fn remove_volume(
    docker: &Docker,
    plan: &ServerPlan,
    name: &str,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<bool, BackendError> {
    match docker.inspect_volume(name).await {
        Ok(v) if is_ours(Some(&v.labels), plan) => {
            match docker.remove_volume(name, None::<RemoveVolumeOptions>).await {
                Ok(()) => Ok(true),
                Err(e) if status_of(&e) == Some(404) => Ok(true),
                Err(e) if status_of(&e) == Some(409) => Ok(false),
                Err(e) => Err(error(format!("remove volume {name}"), e)),
            }
        }
        Ok(_) => Ok(true),
        Err(e) if status_of(&e) == Some(404) => Ok(true),
        Err(e) => Err(error(format!("read volume {name}"), e)),
    }
}

/// Whether the data volume `name` exists (the server's own or not).
pub async fn volume_exists(
    docker: &Docker,
    name: &str,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<bool, BackendError> {
    match docker.inspect_volume(name).await {
        Ok(_) => Ok(true),
        Err(e) if status_of(&e) == Some(404) => Ok(false),
        Err(e) => Err(error(format!("read volume {name}"), e)),
    }
}

/// Removes the volume `name` that a failed apply created, so that it leaves
/// nothing behind (a failure is logged: nothing else is to be done about it).
pub async fn remove_created_volume(docker: &Docker, name: &str) {
    if let Err(e) = docker.remove_volume(name, None::<RemoveVolumeOptions>).await {
        tracing::warn!(volume = name, error = %e, "could not remove the volume of a failed apply");
    }
}
