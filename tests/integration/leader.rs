//! Leader election between controller processes on a Lease in the test
//! namespace: exactly one reconciles, a standby takes over when the leader
//! is killed or stops, and a leader that loses the Lease stops at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use mettaton::api::{GameServer, Phase};

use crate::admin::{Replica, WAIT, server};
use crate::support::{
    Proxy, TestNamespace, apiserver_addr, ensure_crd, eventually, kubeconfig_path, sample, wait_phase,
};

const LEASE: &str = "mettaton-controller";
/// Short, so that the tests are too; the leader renews every 2 s.
const DURATION: Duration = Duration::from_secs(6);
const RENEW: Duration = Duration::from_secs(2);

fn election_args(ns: &TestNamespace) -> Vec<&str> {
    vec!["--leader-election", "--lease-namespace", &ns.name, "--lease-duration-seconds", "6"]
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt(LEASE).await.ok().flatten()?.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// Polls the Lease every 50 ms until `who` holds it, and returns how long
/// that took from `since`.
async fn held_by(leases: &Api<Lease>, who: &str, since: Instant, timeout: Duration) -> Duration {
    loop {
        if holder(leases).await.as_deref() == Some(who) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < timeout,
            "{who} did not take the lease within {timeout:?}: {:?}",
            holder(leases).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn leader_and_standby(ns: &TestNamespace, leases: &Api<Lease>, a: Replica, b: Replica) -> (Replica, Replica) {
    let first = eventually("a holder of the lease", WAIT, || async { holder(leases).await.ok_or("none yet") }).await;
    let (leader, standby) = if first == a.name { (a, b) } else { (b, a) };
    assert_eq!(first, leader.name, "the holder is one of the replicas of {}", ns.name);
    (leader, standby)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_reconciles_and_a_killed_leader_is_replaced_within_the_lease() {
    ensure_crd().await;
    let ns = TestNamespace::new("leader-kill").await;
    let leases: Api<Lease> = ns.api();
    let args = election_args(&ns);
    let a = Replica::start(&ns, "replica-a", &args).await;
    let b = Replica::start(&ns, "replica-b", &args).await;
    let (mut leader, standby) = leader_and_standby(&ns, &leases, a, b).await;

    // Both are ready: the leader once synced, the standby while it waits.
    leader.ready().await;
    standby.ready().await;
    leader.metric_is("mettaton_leader", 1.0).await;
    standby.metric_is("mettaton_leader", 0.0).await;
    let spec = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(6));

    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &server("first")).await.unwrap();
    wait_phase(&api, "first", Phase::Running, WAIT).await;
    let reconciles = |text: &str| sample(text, "mettaton_reconciles_total").unwrap();
    assert!(reconciles(&leader.metrics().await) >= 1.0);
    let standby_metrics = standby.metrics().await;
    assert_eq!(reconciles(&standby_metrics), 0.0, "the standby reconciled:\n{standby_metrics}");
    assert!(!standby.log().contains("controller starting"), "the standby ran a controller:\n{}", standby.log());

    // The leader dies without a word; a GameServer created meanwhile waits
    // for the standby.
    let killed = Instant::now();
    leader.kill();
    api.create(&PostParams::default(), &server("second")).await.unwrap();
    let lease_taken = held_by(&leases, &standby.name, killed, DURATION + RENEW + Duration::from_secs(4)).await;
    wait_phase(&api, "second", Phase::Running, WAIT).await;
    let converged = killed.elapsed();
    eprintln!(
        "hand-over after kill -9 (lease {DURATION:?}): lease taken in {:.2} s, new GameServer Running in {:.2} s",
        lease_taken.as_secs_f64(),
        converged.as_secs_f64()
    );
    assert!(lease_taken <= DURATION + RENEW, "hand-over took {lease_taken:?}");
    standby.metric_is("mettaton_leader", 1.0).await;
    assert!(reconciles(&standby.metrics().await) >= 1.0);
    let spec = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1), "{spec:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_leader_releases_the_lease_and_the_standby_takes_over_at_once() {
    ensure_crd().await;
    let ns = TestNamespace::new("leader-term").await;
    let leases: Api<Lease> = ns.api();
    let args = election_args(&ns);
    let mut leader = Replica::start(&ns, "replica-a", &args).await;
    held_by(&leases, "replica-a", Instant::now(), WAIT).await;
    let standby = Replica::start(&ns, "replica-b", &args).await;
    standby.ready().await;
    standby.metric_is("mettaton_leader", 0.0).await;

    let terminated = Instant::now();
    leader.terminate();
    let lease_taken = held_by(&leases, "replica-b", terminated, DURATION).await;
    let status = leader.exited(Duration::from_secs(30)).await.expect("the leader exits");
    assert!(status.success(), "{status:?}\n{}", leader.log());
    assert!(leader.log().contains("released the lease"), "{}", leader.log());

    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &server("after")).await.unwrap();
    wait_phase(&api, "after", Phase::Running, WAIT).await;
    let converged = terminated.elapsed();
    eprintln!(
        "hand-over after SIGTERM (lease {DURATION:?}): lease taken in {:.2} s, a GameServer created then Running in {:.2} s",
        lease_taken.as_secs_f64(),
        converged.as_secs_f64()
    );
    assert!(lease_taken < DURATION / 2, "a released lease is taken at the standby's next look: {lease_taken:?}");
    standby.metric_is("mettaton_leader", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_sees_another_holder_exits() {
    ensure_crd().await;
    let ns = TestNamespace::new("leader-usurp").await;
    let leases: Api<Lease> = ns.api();
    let mut leader = Replica::start(&ns, "replica-a", &election_args(&ns)).await;
    held_by(&leases, "replica-a", Instant::now(), WAIT).await;
    leader.ready().await;

    // Someone else writes itself in as the holder (as a replica with a skewed
    // clock or a manual edit would).
    let mut lease = leases.get(LEASE).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("usurper".into());
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    let usurped = Instant::now();
    leases.replace(LEASE, &PostParams::default(), &lease).await.unwrap();

    let status = leader.exited(RENEW + Duration::from_secs(3)).await.expect("the leader exits");
    eprintln!(
        "a leader that lost its lease exited {:.2} s after the new holder appeared",
        usurped.elapsed().as_secs_f64()
    );
    assert!(!status.success(), "{status:?}");
    assert!(leader.log().contains("lost the leadership"), "{}", leader.log());
    assert_eq!(holder(&leases).await.as_deref(), Some("usurper"), "the leader did not take it back on its way out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_stops_before_its_lease_expires() {
    ensure_crd().await;
    let ns = TestNamespace::new("leader-cut").await;
    let leases: Api<Lease> = ns.api();
    // The replica reaches the API server through a proxy the test can cut.
    let proxy = Proxy::start(apiserver_addr().await).await;
    let mut kubeconfig = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    for cluster in &mut kubeconfig.clusters {
        if let Some(c) = cluster.cluster.as_mut() {
            c.server = Some(format!("https://127.0.0.1:{}", proxy.port));
        }
    }
    let path = std::env::temp_dir().join(format!("{}-kubeconfig", ns.name));
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
    let mut leader = Replica::start_with(&ns, "replica-a", &path, &election_args(&ns)).await;
    let _ = std::fs::remove_file(&path);
    held_by(&leases, "replica-a", Instant::now(), WAIT).await;
    leader.ready().await;

    proxy.set_up(false);
    let cut = Instant::now();
    let status = leader.exited(DURATION + Duration::from_secs(5)).await.expect("the leader exits");
    let exited_at = Timestamp::now();
    assert!(!status.success(), "{status:?}");
    assert!(leader.log().contains("could not renew the lease"), "{}", leader.log());
    // It stopped while its Lease still held: no standby could have been
    // leading at the same time.
    let spec = leases.get(LEASE).await.unwrap().spec.unwrap();
    let expiry = spec.renew_time.unwrap().0 + DURATION;
    eprintln!(
        "a leader cut off from the API server exited {:.2} s after the cut, {:.2} s before its lease expired",
        cut.elapsed().as_secs_f64(),
        expiry.duration_since(exited_at).as_secs_f64()
    );
    assert!(exited_at < expiry, "exited at {exited_at}, lease expired at {expiry}");
}
