//! Issue 7, item 2: the API server restarted, etcd restarted, and both, under
//! load. The real `mettaton controller` binary reconciles a fleet while the
//! test keeps changing, deleting and creating GameServers (one request every
//! 150 ms, each retried until the API server answers again) and
//! tests/controlplane/restart stops and starts the plane's kube-apiserver
//! and/or etcd (etcd keeps its data). The controller must ride it out without
//! a restart of its own (same pid), its watches must come back (changes made
//! after the restart are reconciled; a Deployment deleted by hand afterwards
//! is put back at once, not at the next resync), and everything must converge
//! as after the kill -9 churn.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};

use crate::fleet::{Fleet, check_applied, check_kubernetes, converge};
use crate::process::Controller;
use crate::setup::{Profile, Rng, figure, secs, spread};
use crate::support::{TestNamespace, ensure_crd, kubeconfig_path};

const TEST: &str = "API server and etcd restarts";
const IMAGES: [&str; 3] = ["mettaton.test/game:1", "mettaton.test/game:2", "mettaton.test/game:3"];

/// One way of restarting the plane: a label and the arguments of
/// tests/controlplane/restart. The API server, on SIGTERM, stops listening
/// at once but waits for its watches for up to a minute: it gets 5 s.
struct Scenario {
    label: &'static str,
    args: &'static [&'static str],
    /// Whether the API server itself goes away (so that every watch breaks).
    apiserver: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario { label: "kube-apiserver restart", args: &["--grace", "5", "kube-apiserver"], apiserver: true },
    Scenario { label: "etcd restart", args: &["--grace", "5", "etcd"], apiserver: false },
    Scenario {
        label: "etcd and kube-apiserver down 5 s",
        args: &["--grace", "5", "--down-for", "5", "etcd", "kube-apiserver"],
        apiserver: true,
    },
];

/// Crashes instead of stops, in the soak only.
const SOAK_SCENARIOS: [Scenario; 2] = [
    Scenario { label: "kube-apiserver SIGKILL", args: &["--signal", "KILL", "kube-apiserver"], apiserver: true },
    Scenario {
        label: "etcd and kube-apiserver SIGKILL",
        args: &["--signal", "KILL", "etcd", "kube-apiserver"],
        apiserver: true,
    },
];

/// The plane whose processes tests/controlplane/restart restarts:
/// `$MTN_PLANE_DIR`, else target/controlplane (as for its scripts).
fn plane_dir() -> PathBuf {
    match std::env::var_os("MTN_PLANE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/controlplane"),
    }
}

/// The API server a kubeconfig points at.
fn server_of(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let line = text.lines().find(|l| l.trim_start().starts_with("server:"));
    line.unwrap_or_else(|| panic!("no server in {}", path.display())).trim().to_string()
}

/// Runs tests/controlplane/restart; returns its report.
fn restart_plane(args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/restart");
    let out = Command::new(script).args(args).env("MTN_PLANE_DIR", plane_dir()).output().unwrap();
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tests/controlplane/restart {args:?} failed:\n{report}");
    report
}

/// Log lines of the controller saying that a watch failed.
fn watch_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("controller error=") && (l.contains("watch") || l.contains("object list")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disrupts shared infrastructure: run by ./run-tests on its own (see main.rs)"]
async fn the_controller_rides_out_api_server_and_etcd_restarts_without_restarting() {
    // Restarting another plane than the tests talk to would prove nothing
    // (and disturb whoever uses it).
    let plane_kubeconfig = plane_dir().join("kubeconfig");
    assert_eq!(
        server_of(&kubeconfig_path()),
        server_of(&plane_kubeconfig),
        "KUBECONFIG ({}) and MTN_PLANE_DIR ({}) must name the same plane",
        kubeconfig_path().display(),
        plane_dir().display()
    );
    let profile = Profile::get();
    let mut rng = Rng::seeded(TEST);
    ensure_crd().await;
    let ns = TestNamespace::new("rel-api").await;
    let mut fleet = Fleet::new(ns.client.clone(), &ns.name, profile.apiserver_servers, &IMAGES);
    let mut controller = Controller::start(&ns.name, &[]);
    let pid = controller.pid();
    let bound = profile.bound(Duration::from_secs(240));
    // After a restart the watches must bring the changes: well before the
    // controller's 5-minute resync would (which would hide dead watches).
    let recovery_bound = Duration::from_secs(120);

    let ops = fleet.create_all(&mut rng);
    let began = Instant::now();
    fleet.run(ops, 8, Duration::from_secs(60)).await;
    let (initial, volumes) =
        converge("the fleet", began, bound, || controller.tail(), || check_kubernetes(&fleet)).await;
    fleet.settle(&volumes);
    figure(TEST, &format!("{} GameServers created and converged in {}", profile.apiserver_servers, secs(initial)));

    let mut scenarios: Vec<&Scenario> = Vec::new();
    for _ in 0..profile.apiserver_cycles {
        scenarios.extend(SCENARIOS.iter());
        if profile.soak {
            scenarios.extend(SOAK_SCENARIOS.iter());
        }
    }
    let mut recoveries = Vec::new();
    let mut applied_in = Vec::new();
    let mut outages = Vec::new();
    for scenario in &scenarios {
        let log_before = controller.log().len();
        let ops = fleet.mixed(&mut rng);
        let planned = ops.len();
        // The load starts a second before the restart and goes on through it.
        let began = Instant::now();
        let load = async {
            let done = fleet.run_paced(ops, 16, Duration::from_millis(150), Duration::from_secs(180)).await;
            (done, began.elapsed())
        };
        let restart = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let stop_began = Instant::now();
            let args: Vec<String> = scenario.args.iter().map(|s| s.to_string()).collect();
            let report = tokio::task::spawn_blocking(move || {
                restart_plane(&args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .await
            .unwrap();
            (stop_began, Instant::now(), report)
        };
        let ((done, loaded_for), (stop_began, ready, report)) = futures::join!(load, restart);
        let outage = ready - stop_began;
        let (applied, (recovery, volumes)) = futures::join!(
            converge("changes applied", ready, recovery_bound, || controller.tail(), || check_applied(&fleet)),
            converge(scenario.label, ready, recovery_bound, || controller.tail(), || check_kubernetes(&fleet))
        );
        let applied = applied.0;
        controller.assert_running();
        assert_eq!(controller.pid(), pid, "the controller was restarted");
        fleet.settle(&volumes);
        let log = controller.log()[log_before..].to_string();
        let lost = watch_errors(&log);
        if scenario.apiserver {
            assert!(!lost.is_empty(), "{}: the controller's log shows no broken watch:\n{log}", scenario.label);
        }
        recoveries.push(recovery);
        applied_in.push(applied);
        outages.push(outage);
        figure(
            TEST,
            &format!(
                "{}: API server back {} after the stop began; {done}/{planned} changes sent over {} \
                 (retried through the outage); after the API server was ready, the controller had applied \
                 every change in {} and everything converged in {}; same pid, {} watch error(s) logged",
                scenario.label,
                secs(outage),
                secs(loaded_for),
                secs(applied),
                secs(recovery),
                lost.len()
            ),
        );
        for line in report.lines() {
            eprintln!("    {line}");
        }
    }

    // The watches on the children came back too: a Deployment deleted by hand
    // is put back on its watch event, long before the 5-minute resync.
    let victim = fleet.live().find(|s| !s.stopped).expect("a running server").clone();
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let old_uid = deployments.get(&victim.name).await.unwrap().uid();
    let deleted = Instant::now();
    deployments.delete(&victim.name, &DeleteParams::background()).await.unwrap();
    let (put_back, _) = converge(
        "the deleted Deployment put back",
        deleted,
        Duration::from_secs(60),
        || controller.tail(),
        || async {
            match deployments.get_opt(&victim.name).await {
                Ok(Some(d)) if d.uid() != old_uid && d.metadata.deletion_timestamp.is_none() => Ok(()),
                other => Err(vec![format!("{:?}", other.map(|d| d.map(|d| d.uid())))]),
            }
        },
    )
    .await;
    let (whole, _) =
        converge("after the Deployment", deleted, bound, || controller.tail(), || check_kubernetes(&fleet)).await;
    controller.assert_running();
    assert_eq!(controller.pid(), pid, "the controller was restarted");
    figure(
        TEST,
        &format!(
            "after {} restarts: a Deployment deleted by hand was put back in {} (all converged in {}); \
             outages {}; API server ready to every change applied: {}; to everything converged: {}; {}",
            scenarios.len(),
            secs(put_back),
            secs(whole),
            spread(&outages),
            spread(&applied_in),
            spread(&recoveries),
            fleet.summary()
        ),
    );
    assert!(!controller.log().contains("panicked"), "the controller panicked:\n{}", controller.tail());
    controller.stop();
}
