//! The server's image on the engine: what to pull, and pulled per
//! `imagePullPolicy` before anything is created.

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

use crate::api::PullPolicy;
use crate::orchestrator::BackendError;
use crate::plan::ServerPlan;

use super::{docker_message, is_transport, status_of};

/// What to pull for an image reference: the reference and its tag. An image
/// without a tag or digest means `latest` (the API would pull every tag).
pub fn pull_reference(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (image[..colon].to_string(), image[colon + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Makes sure the server's image is on the engine, pulling it when it is not.
/// `imagePullPolicy`: Never, the image must be there already (`missing_on`
/// says where: "the Docker engine", "the swarm manager's node"); Always, it is
/// pulled first (a failed pull is an error even when the engine has an older
/// copy); IfNotPresent (the default), pulled when missing. `error` makes the
/// backend's error of a failed request.
pub async fn ensure_image(
    docker: &Docker,
    plan: &ServerPlan,
    missing_on: &str,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<(), BackendError> {
    let policy = plan.container.pull_policy.unwrap_or(PullPolicy::IfNotPresent);
    let never = || format!("spec.imagePullPolicy is Never and the image is not on {missing_on}");
    ensure_image_ref(docker, &plan.container.image, policy, never, |reason| reason, error).await
}

/// Makes sure mettaton's supervisor image `image` is on the engine, pulled
/// when missing (as the game's images are, by default), for a server whose
/// spec needs it (`why`: its fields). Missing and not pullable, it is
/// `ImageMissing` naming the image, the fields that need it, and how another
/// one is given.
pub async fn ensure_supervisor_image(
    docker: &Docker,
    image: &str,
    why: &str,
    missing_on: &str,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<(), BackendError> {
    let reason = |pulled: String| {
        format!(
            "mettaton's supervisor image, which {why} needs, is not on {missing_on} and could not be pulled \
             ({pulled}); put it there or name another (`--supervisor-image`, MTN_SUPERVISOR_IMAGE, \
             `Mettaton::with_supervisor_image`)"
        )
    };
    ensure_image_ref(docker, image, PullPolicy::IfNotPresent, String::new, reason, error).await
}

/// Makes sure a template's install image `image` is on `missing_on`
/// (pulled when missing, as a game's image by default).
pub async fn ensure_install_image(
    docker: &Docker,
    image: &str,
    missing_on: &str,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<(), BackendError> {
    let reason = |pulled: String| {
        format!("the template's install image is not on {missing_on} and could not be pulled ({pulled})")
    };
    ensure_image_ref(docker, image, PullPolicy::IfNotPresent, String::new, reason, error).await
}

/// `image` on the engine per `policy`: `never` says why a missing image
/// under Never is refused; `not_pulled` makes the reason of a failed pull.
async fn ensure_image_ref(
    docker: &Docker,
    image: &str,
    policy: PullPolicy,
    never: impl FnOnce() -> String,
    not_pulled: impl Fn(String) -> String,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<(), BackendError> {
    if policy != PullPolicy::Always {
        match docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(error(format!("read image {image}"), e)),
        }
    }
    if policy == PullPolicy::Never {
        return Err(BackendError::ImageMissing { image: image.to_string(), reason: never() });
    }
    let (reference, tag) = pull_reference(image);
    let mut options = CreateImageOptionsBuilder::default().from_image(&reference);
    if !tag.is_empty() {
        options = options.tag(&tag);
    }
    let not_found =
        |reason: String| BackendError::ImageMissing { image: image.to_string(), reason: not_pulled(reason) };
    let mut pull = docker.create_image(Some(options.build()), None, None);
    while let Some(progress) = pull.next().await {
        match progress {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(not_found(detail.message.unwrap_or_default()));
                }
            }
            Err(e) if is_transport(&e) => return Err(error(format!("pull image {image}"), e)),
            Err(e) => return Err(not_found(docker_message(&e))),
        }
    }
    Ok(())
}
