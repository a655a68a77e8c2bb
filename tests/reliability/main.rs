//! Reliability tests (issue 7): faults injected into real components while
//! the controller and the facade work, then a check that everything converged
//! and nothing was lost, with the recovery times printed as figures (lines
//! starting with `reliability:`).
//!
//! - `controller_killed`: the `mettaton controller` binary killed with SIGKILL
//!   at random moments while a fleet of GameServers is created, changed and
//!   deleted (Kubernetes backend).
//! - `apiserver_restart`: kube-apiserver, etcd, and both restarted under load
//!   (tests/controlplane/restart); the controller must carry on without a
//!   restart of its own.
//! - `dockerd_restart`: a private Docker daemon restarted under servers run by
//!   the facade and by the controller on the swarm backend.
//! - `swarm_controller_killed`: the kill -9 churn on the swarm backend.
//! - `node_crash`: every process of the real Kubernetes node SIGKILLed under a
//!   running game; `node down` cleans it all, the node and the game come back.
//!
//! They restart the plane's API server and etcd, so they must not run beside
//! other tests: each is `#[ignore]`d, so that `cargo test` builds and lints
//! this target with the others but never runs it, and `./run-tests` runs it
//! after the integration tests, one test at a time:
//!
//! ```sh
//! cargo test --test reliability -- --ignored --test-threads=1 --nocapture
//! ```
//!
//! The plane is the one of `$KUBECONFIG` (default target/controlplane), whose
//! processes `tests/controlplane/restart` finds through `$MTN_PLANE_DIR` (same
//! default). The Docker daemons are the tests' own, in network namespaces of
//! their own. `MTN_SOAK=1` runs the long version (more servers, kills and
//! restarts); `MTN_SEED=N` replays a run's random choices.

#[allow(dead_code)]
#[path = "../integration/support.rs"]
mod support;

#[path = "../common/dockerd.rs"]
mod dockerd;

mod apiserver_restart;
mod controller_killed;
mod dockerd_restart;
#[allow(dead_code)]
#[path = "../common/fixtures.rs"]
mod fixtures;
mod fleet;
mod node_crash;
mod process;
#[allow(dead_code)]
#[path = "../common/real_node.rs"]
mod real_node_common;
mod setup;
mod swarm_controller_killed;
