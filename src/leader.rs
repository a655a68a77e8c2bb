//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! controller replicas exactly one reconciles and a standby takes over when it
//! dies.
//!
//! The Lease is free when it has no holder or when `renewTime +
//! leaseDurationSeconds` has passed. A replica takes a free Lease with a write
//! conditioned on the `resourceVersion` it read (create, or replace), so of
//! two replicas racing for it one gets a conflict and goes on waiting. The
//! leader renews every third of the duration and gives up when it could not
//! renew for two thirds of it, which leaves the last third for it to stop
//! before anyone may take the Lease; on a clean shutdown it releases the Lease
//! (no holder), so a standby need not wait for it to expire.
//!
//! The decisions ([`decide`], [`claim`], [`renewed`], [`released`]) are pure;
//! [`Elector`] and [`Leadership`] do the reads and writes.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tracing::{info, warn};

/// Which Lease, held by whom, for how long.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often the leader renews, and how often a standby looks.
    pub fn renew_period(&self) -> Duration {
        self.duration / 3
    }

    /// How long the leader goes on without a successful renewal before it
    /// stops: a third of the duration short of when the Lease may be taken.
    pub fn renew_deadline(&self) -> Duration {
        self.duration - self.renew_period()
    }

    fn retry(&self) -> Duration {
        Duration::from_secs(1).min(self.renew_period())
    }
}

/// Who this replica is in the Lease: the pod's name (`POD_NAME`, from the
/// downward API) so a restarted container takes its own Lease back at once,
/// else `hostname-pid`.
pub fn default_identity() -> String {
    let host = hostname::get().ok().map(|h| h.to_string_lossy().into_owned());
    identity(std::env::var("POD_NAME").ok(), host, std::process::id())
}

fn identity(pod_name: Option<String>, hostname: Option<String>, pid: u32) -> String {
    match pod_name.filter(|n| !n.is_empty()) {
        Some(name) => name,
        None => format!("{}-{pid}", hostname.filter(|h| !h.is_empty()).as_deref().unwrap_or("mettaton")),
    }
}

/// The namespace of the Lease: the flag, else the pod's own namespace
/// (`POD_NAMESPACE`), else the kubeconfig context's (or the service account's)
/// namespace, which kube already defaults to `default`.
pub fn lease_namespace(flag: Option<String>, pod_namespace: Option<String>, client_default: &str) -> String {
    flag.filter(|n| !n.is_empty())
        .or(pod_namespace.filter(|n| !n.is_empty()))
        .unwrap_or_else(|| client_default.to_string())
}

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, held by us.
    Create,
    /// No one holds it, or the holder let it expire: take it.
    Take,
    /// We hold it: renew it.
    Renew,
    /// `holder` holds it: look again in `recheck_in`.
    Wait { holder: String, recheck_in: Duration },
}

/// Decides from the Lease as read at `now`. A standby looks again after
/// `poll`, or just after the Lease would expire if that comes sooner.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp, poll: Duration) -> Decision {
    let Some(lease) = lease else { return Decision::Create };
    let spec = lease.spec.as_ref();
    match holder(lease) {
        None => Decision::Take,
        Some(h) if h == identity => Decision::Renew,
        Some(h) => match spec.and_then(expiry) {
            // Expired only once renewTime + duration < now.
            Some(at) if at >= now => {
                let left = Duration::try_from(at.duration_since(now)).unwrap_or_default();
                // Just past the expiry, not on it.
                let recheck_in = (left + Duration::from_millis(10)).min(poll);
                Decision::Wait { holder: h.to_string(), recheck_in }
            }
            // A holder without a renewal time or duration never said how long
            // it holds: treat it as expired, like client-go.
            _ => Decision::Take,
        },
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref().filter(|h| !h.is_empty())
}

fn expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds?.into());
    since.0.checked_add(duration).ok()
}

/// The Lease held by us from `now`: created, or taken over from `lease` (its
/// `resourceVersion` kept, so the write fails if anyone wrote in between).
pub fn claim(lease: Option<Lease>, config: &LeaseConfig, now: Timestamp) -> Lease {
    let existed = lease.is_some();
    let mut lease = lease.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            namespace: Some(config.namespace.clone()),
            ..Default::default()
        },
        spec: None,
    });
    let changes_hands = holder(&lease) != Some(config.identity.as_str());
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.lease_transitions = match (existed, changes_hands) {
        (false, _) => Some(0),
        (true, true) => Some(spec.lease_transitions.unwrap_or(0).saturating_add(1)),
        (true, false) => spec.lease_transitions,
    };
    spec.holder_identity = Some(config.identity.clone());
    spec.lease_duration_seconds = Some(seconds(config.duration));
    spec.acquire_time = Some(MicroTime(now));
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Our Lease, renewed at `now`.
pub fn renewed(mut lease: Lease, config: &LeaseConfig, now: Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.lease_duration_seconds = Some(seconds(config.duration));
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Our Lease, given up: without a holder it is free at once.
pub fn released(mut lease: Lease) -> Lease {
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
    }
    lease
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Why a leader stopped leading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Another replica holds the Lease.
    TakenBy(String),
    /// Someone else cleared the holder.
    Released,
    /// The Lease was deleted.
    Deleted,
    /// No renewal succeeded within the renew deadline.
    NotRenewed { for_: Duration, error: String },
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::TakenBy(h) => write!(f, "the lease is held by {h} now"),
            Lost::Released => write!(f, "the lease was released by someone else"),
            Lost::Deleted => write!(f, "the lease was deleted"),
            Lost::NotRenewed { for_, error } => write!(f, "could not renew the lease for {for_:?}: {error}"),
        }
    }
}

/// Competes for the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Elector { api: Api::namespaced(client, &config.namespace), config }
    }

    /// Returns once this replica holds the Lease. Until then, calls `standby`
    /// with the holder each time another one is seen holding it. Errors of the
    /// API are logged and retried: a standby has nothing better to do.
    pub async fn acquire(&self, mut standby: impl FnMut(&str)) -> Leadership<'_> {
        let cfg = &self.config;
        let poll = cfg.renew_period();
        let mut seen_holder: Option<String> = None;
        loop {
            let started = Instant::now();
            let lease = match self.api.get_opt(&cfg.name).await {
                Ok(lease) => lease,
                Err(e) => {
                    warn!(error = %e, lease = %cfg.name, "could not read the lease");
                    sleep(poll).await;
                    continue;
                }
            };
            let now = Timestamp::now();
            let written = match decide(lease.as_ref(), &cfg.identity, now, poll) {
                Decision::Create => self.api.create(&PostParams::default(), &claim(None, cfg, now)).await,
                Decision::Take | Decision::Renew => {
                    self.api.replace(&cfg.name, &PostParams::default(), &claim(lease, cfg, now)).await
                }
                Decision::Wait { holder, recheck_in } => {
                    if seen_holder.as_deref() != Some(holder.as_str()) {
                        info!(%holder, lease = %cfg.name, namespace = %cfg.namespace, "standing by: another replica holds the lease");
                        standby(&holder);
                        seen_holder = Some(holder);
                    }
                    sleep(recheck_in).await;
                    continue;
                }
            };
            match written {
                Ok(_) => {
                    info!(identity = %cfg.identity, lease = %cfg.name, namespace = %cfg.namespace, "acquired the lease");
                    return Leadership { elector: self, renewed: started };
                }
                // Another replica wrote first; read again to see who holds it.
                Err(e) if is_conflict(&e) => continue,
                Err(e) => {
                    warn!(error = %e, lease = %cfg.name, "could not take the lease");
                    sleep(poll).await;
                }
            }
        }
    }

    async fn renew(&self) -> Result<Result<(), Lost>, kube::Error> {
        let cfg = &self.config;
        let lease = self.api.get_opt(&cfg.name).await?;
        let now = Timestamp::now();
        match (decide(lease.as_ref(), &cfg.identity, now, cfg.renew_period()), lease) {
            (Decision::Renew, Some(lease)) => {
                self.api.replace(&cfg.name, &PostParams::default(), &renewed(lease, cfg, now)).await?;
                Ok(Ok(()))
            }
            (Decision::Wait { holder, .. }, _) => Ok(Err(Lost::TakenBy(holder))),
            (Decision::Create, _) => Ok(Err(Lost::Deleted)),
            // Free, or held by someone else who let it expire: either way not ours.
            (_, lease) => Ok(Err(match lease.as_ref().and_then(holder) {
                Some(h) => Lost::TakenBy(h.to_string()),
                None => Lost::Released,
            })),
        }
    }
}

/// This replica holds the Lease.
pub struct Leadership<'a> {
    elector: &'a Elector,
    /// When the last successful renewal started: the Lease it wrote is valid
    /// for the duration from a moment no earlier than this.
    renewed: Instant,
}

impl Leadership<'_> {
    /// Renews the Lease until leadership is lost, and says why. Never returns
    /// while this replica still leads.
    pub async fn keep(&mut self) -> Lost {
        let cfg = &self.elector.config;
        let mut failing: Option<String> = None;
        loop {
            let deadline = self.renewed + cfg.renew_deadline();
            let next = match failing {
                None => self.renewed + cfg.renew_period(),
                Some(_) => Instant::now() + cfg.retry(),
            };
            sleep_until(next.min(deadline)).await;
            let started = Instant::now();
            let outcome = if started >= deadline {
                Err(())
            } else {
                timeout_at(deadline, self.elector.renew()).await.map_err(|_| ())
            };
            match outcome {
                Ok(Ok(Ok(()))) => {
                    self.renewed = started;
                    if failing.take().is_some() {
                        info!("renewed the lease again");
                    }
                }
                Ok(Ok(Err(lost))) => return lost,
                Ok(Err(e)) => {
                    warn!(error = %e, "could not renew the lease; retrying");
                    failing = Some(e.to_string());
                }
                Err(()) => {
                    let error = failing.unwrap_or_else(|| "the renewal did not complete in time".to_string());
                    return Lost::NotRenewed { for_: cfg.renew_deadline(), error };
                }
            }
        }
    }

    /// Gives the Lease up, so a standby takes over without waiting for it to
    /// expire. Only when we still hold it, and within the renew deadline: a
    /// shutdown must not hang on an unreachable API server.
    pub async fn release(self) -> Result<(), String> {
        let elector = self.elector;
        let cfg = &elector.config;
        let attempt = async {
            // A renewal cut short by the shutdown may have landed after we read
            // its resourceVersion: on a conflict, read again.
            for _ in 0..3 {
                let Some(lease) = elector.api.get_opt(&cfg.name).await? else { return Ok(()) };
                if holder(&lease) != Some(cfg.identity.as_str()) {
                    return Ok(());
                }
                match elector.api.replace(&cfg.name, &PostParams::default(), &released(lease)).await {
                    Ok(_) => {
                        info!(lease = %cfg.name, namespace = %cfg.namespace, "released the lease");
                        return Ok(());
                    }
                    Err(e) if is_conflict(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        match timeout(cfg.renew_deadline(), attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("releasing the lease: {e}")),
            Err(_) => Err("releasing the lease: timed out".to_string()),
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig {
            name: "mettaton-controller".into(),
            namespace: "ops".into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn lease(holder: Option<&str>, renewed: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("mettaton-controller".into()),
                namespace: Some("ops".into()),
                resource_version: Some("42".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(at(0))),
                renew_time: Some(MicroTime(at(renewed))),
                lease_transitions: Some(3),
                ..Default::default()
            }),
        }
    }

    const POLL: Duration = Duration::from_secs(5);

    #[test]
    fn renew_and_deadline_are_thirds_of_the_duration() {
        let mut cfg = config("a");
        assert_eq!((cfg.renew_period(), cfg.renew_deadline()), (Duration::from_secs(5), Duration::from_secs(10)));
        cfg.duration = Duration::from_secs(6);
        assert_eq!((cfg.renew_period(), cfg.renew_deadline()), (Duration::from_secs(2), Duration::from_secs(4)));
        assert_eq!(cfg.retry(), Duration::from_secs(1));
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide(None, "a", at(0), POLL), Decision::Create);
    }

    #[test]
    fn our_lease_is_renewed_even_after_it_expired() {
        assert_eq!(decide(Some(&lease(Some("a"), 0, 15)), "a", at(1), POLL), Decision::Renew);
        // A restarted container with the same pod name takes its Lease back.
        assert_eq!(decide(Some(&lease(Some("a"), 0, 15)), "a", at(100), POLL), Decision::Renew);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        assert_eq!(decide(Some(&lease(None, 0, 15)), "b", at(1), POLL), Decision::Take);
        assert_eq!(decide(Some(&lease(Some(""), 0, 15)), "b", at(1), POLL), Decision::Take);
    }

    #[test]
    fn anothers_lease_is_waited_for_until_it_expires() {
        let held = lease(Some("a"), 10, 15);
        assert_eq!(
            decide(Some(&held), "b", at(11), POLL),
            Decision::Wait { holder: "a".into(), recheck_in: POLL },
            "far from expiry: look again after a poll period"
        );
        assert_eq!(
            decide(Some(&held), "b", at(23), POLL),
            Decision::Wait { holder: "a".into(), recheck_in: Duration::from_millis(2010) },
            "near expiry: look again just after it"
        );
        assert!(matches!(decide(Some(&held), "b", at(25), POLL), Decision::Wait { .. }), "expiry is not yet past");
        assert_eq!(decide(Some(&held), "b", at(26), POLL), Decision::Take);
    }

    #[test]
    fn a_holder_that_never_said_how_long_is_expired() {
        let mut no_duration = lease(Some("a"), 10, 15);
        no_duration.spec.as_mut().unwrap().lease_duration_seconds = None;
        assert_eq!(decide(Some(&no_duration), "b", at(11), POLL), Decision::Take);
        let mut no_times = lease(Some("a"), 10, 15);
        let spec = no_times.spec.as_mut().unwrap();
        (spec.renew_time, spec.acquire_time) = (None, None);
        assert_eq!(decide(Some(&no_times), "b", at(11), POLL), Decision::Take);
        // Without a renewal yet, the acquisition counts.
        let mut acquired_only = lease(Some("a"), 10, 15);
        acquired_only.spec.as_mut().unwrap().renew_time = None;
        assert!(matches!(decide(Some(&acquired_only), "b", at(14), POLL), Decision::Wait { .. }));
        assert_eq!(decide(Some(&acquired_only), "b", at(16), POLL), Decision::Take);
    }

    #[test]
    fn a_new_lease_names_us_with_our_duration() {
        let created = claim(None, &config("b"), at(5));
        assert_eq!(created.metadata.name.as_deref(), Some("mettaton-controller"));
        assert_eq!(created.metadata.namespace.as_deref(), Some("ops"));
        assert_eq!(created.metadata.resource_version, None);
        let spec = created.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(5))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(5))));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn taking_over_keeps_the_resource_version_and_counts_a_transition() {
        let taken = claim(Some(lease(Some("a"), 0, 6)), &config("b"), at(30));
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("42"), "the write is conditional");
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(30))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(30))));
        assert_eq!(spec.lease_transitions, Some(4));
        // Taking back our own Lease is no transition.
        let again = claim(Some(lease(Some("b"), 0, 15)), &config("b"), at(30));
        assert_eq!(again.spec.unwrap().lease_transitions, Some(3));
    }

    #[test]
    fn renewing_moves_only_the_renew_time() {
        let r = renewed(lease(Some("a"), 0, 15), &config("a"), at(5));
        assert_eq!(r.metadata.resource_version.as_deref(), Some("42"));
        let spec = r.spec.unwrap();
        assert_eq!(spec.renew_time, Some(MicroTime(at(5))));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn a_released_lease_has_no_holder_and_is_free_to_anyone() {
        let r = released(lease(Some("a"), 0, 15));
        assert_eq!(r.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(r.spec.as_ref().unwrap().holder_identity, None);
        assert_eq!(decide(Some(&r), "b", at(1), POLL), Decision::Take);
    }

    #[test]
    fn identity_is_the_pod_name_else_hostname_and_pid() {
        assert_eq!(identity(Some("mettaton-7c9f-x2".into()), Some("node".into()), 7), "mettaton-7c9f-x2");
        assert_eq!(identity(None, Some("laptop".into()), 4242), "laptop-4242");
        assert_eq!(identity(Some(String::new()), Some("laptop".into()), 4242), "laptop-4242");
        assert_eq!(identity(None, None, 1), "mettaton-1");
        assert!(default_identity().ends_with(&format!("-{}", std::process::id())) || std::env::var("POD_NAME").is_ok());
    }

    #[test]
    fn lease_namespace_is_the_flag_else_the_pods_else_the_kubeconfigs() {
        assert_eq!(lease_namespace(Some("ops".into()), Some("pod".into()), "ctx"), "ops");
        assert_eq!(lease_namespace(None, Some("pod".into()), "ctx"), "pod");
        assert_eq!(lease_namespace(None, Some(String::new()), "ctx"), "ctx");
        assert_eq!(lease_namespace(None, None, "default"), "default");
    }

    #[test]
    fn lost_says_why() {
        assert_eq!(Lost::TakenBy("b".into()).to_string(), "the lease is held by b now");
        let not_renewed = Lost::NotRenewed { for_: Duration::from_secs(4), error: "connection refused".into() };
        assert_eq!(not_renewed.to_string(), "could not renew the lease for 4s: connection refused");
    }
}
