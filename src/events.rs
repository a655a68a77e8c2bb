//! Publishing Kubernetes Events (`events.k8s.io/v1`) about GameServers, as
//! kube's `Recorder` does, with one difference: an Event repeats (one object,
//! its `series.count` raised by a patch) only when its note is the same too.
//! kube-runtime 5's `Recorder` keys its repeats by type, reason and action
//! alone, so a second Event of the same reason within its 6 minutes became a
//! count on the first one, with the first one's note: a second output line of
//! one reason, a second `StopCommand`, were lost to `kubectl events`.
//!
//! [`next`] decides, purely, what to write; [`Recorder`] writes it.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{EventType, Reporter};
use kube::{Client, ResourceExt};

/// How long an Event is remembered for its repeats (kube's `Recorder`'s).
pub const REPEATS_WITHIN: SignedDuration = SignedDuration::from_mins(6);

/// What makes two Events the same one, repeated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The object it is about: namespace, name, uid.
    regarding: (Option<String>, Option<String>, Option<String>),
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

/// One Event to publish.
#[derive(Clone, Debug)]
pub struct Published<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: &'a str,
}

impl Published<'_> {
    pub fn key(&self, regarding: &ObjectReference) -> Key {
        Key {
            regarding: (regarding.namespace.clone(), regarding.name.clone(), regarding.uid.clone()),
            warning: self.type_ == EventType::Warning,
            reason: self.reason.to_string(),
            action: self.action.to_string(),
            note: self.note.to_string(),
        }
    }
}

/// The Event to write for `event` about `regarding` at `now`: a repeat of
/// `last` (the same Event published within [`REPEATS_WITHIN`]), its count
/// raised, or a new one, named after the object and the time.
pub fn next(
    last: Option<&Event>,
    event: &Published,
    regarding: &ObjectReference,
    reporter: &Reporter,
    now: Timestamp,
) -> Event {
    if let Some(last) = last {
        let count = last.series.as_ref().map_or(2, |s| s.count + 1);
        return Event { series: Some(EventSeries { count, last_observed_time: MicroTime(now) }), ..last.clone() };
    }
    let name = regarding.name.as_deref().unwrap_or(&reporter.controller);
    Event {
        action: Some(event.action.to_string()),
        reason: Some(event.reason.to_string()),
        note: Some(event.note.to_string()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            ..Default::default()
        },
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone().unwrap_or_else(|| reporter.controller.clone())),
        type_: Some(if event.type_ == EventType::Warning { "Warning" } else { "Normal" }.to_string()),
        ..Default::default()
    }
}

/// Whether `event`, written last at its series' last time or its own, may
/// still be repeated at `now`.
fn fresh(event: &Event, now: Timestamp) -> bool {
    let at = event.series.as_ref().map(|s| s.last_observed_time.0).or(event.event_time.as_ref().map(|t| t.0));
    at.is_none_or(|at| at + REPEATS_WITHIN > now)
}

/// Writes Events, remembering each for its repeats.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    recent: Mutex<HashMap<Key, Event>>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder { client, reporter, recent: Mutex::new(HashMap::new()) }
    }

    /// Publishes `event` about `regarding`: a new Event, or a repeat of the
    /// same one (the same note too) within [`REPEATS_WITHIN`].
    pub async fn publish(&self, event: &Published<'_>, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = event.key(regarding);
        let last = {
            let mut recent = self.recent.lock().unwrap();
            recent.retain(|_, e| fresh(e, now));
            recent.get(&key).cloned()
        };
        let written = next(last.as_ref(), event, regarding, &self.reporter, now);
        let api = Api::<Event>::namespaced(self.client.clone(), regarding.namespace.as_deref().unwrap_or("default"));
        if written.series.is_some() {
            api.patch(&written.name_any(), &PatchParams::default(), &Patch::Merge(&written)).await?;
        } else {
            api.create(&PostParams::default(), &written).await?;
        }
        self.recent.lock().unwrap().insert(key, written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regarding() -> ObjectReference {
        ObjectReference {
            kind: Some("GameServer".into()),
            namespace: Some("games".into()),
            name: Some("mc".into()),
            uid: Some("u1".into()),
            ..Default::default()
        }
    }

    fn reporter() -> Reporter {
        Reporter { controller: "mettaton".into(), instance: Some("mettaton-0".into()) }
    }

    fn line(note: &str) -> Published<'_> {
        Published { type_: EventType::Normal, reason: "Chat", action: "Output", note }
    }

    #[test]
    fn another_note_is_another_event_and_the_same_one_a_repeat() {
        let t0 = Timestamp::from_second(1_767_225_600).unwrap();
        assert_ne!(line("<zoe> hi").key(&regarding()), line("<adam> hi").key(&regarding()));
        assert_eq!(line("<zoe> hi").key(&regarding()), line("<zoe> hi").key(&regarding()));
        let warning = Published { type_: EventType::Warning, ..line("<zoe> hi") };
        assert_ne!(warning.key(&regarding()), line("<zoe> hi").key(&regarding()));

        let first = next(None, &line("<zoe> hi"), &regarding(), &reporter(), t0);
        assert_eq!(
            (first.note.as_deref(), first.reason.as_deref(), first.type_.as_deref(), first.action.as_deref()),
            (Some("<zoe> hi"), Some("Chat"), Some("Normal"), Some("Output"))
        );
        assert_eq!(first.metadata.name.as_deref(), Some(format!("mc.{:x}", t0.as_nanosecond()).as_str()));
        assert_eq!(first.metadata.namespace.as_deref(), Some("games"));
        assert_eq!(first.reporting_instance.as_deref(), Some("mettaton-0"));
        assert!(first.series.is_none());

        let t1 = t0 + SignedDuration::from_secs(30);
        let again = next(Some(&first), &line("<zoe> hi"), &regarding(), &reporter(), t1);
        assert_eq!(again.metadata.name, first.metadata.name, "the same object");
        assert_eq!(again.series.as_ref().map(|s| (s.count, s.last_observed_time.0)), Some((2, t1)));
        let third = next(Some(&again), &line("<zoe> hi"), &regarding(), &reporter(), t1);
        assert_eq!(third.series.map(|s| s.count), Some(3));
    }

    #[test]
    fn an_event_is_repeated_only_within_its_time() {
        let t0 = Timestamp::from_second(1_767_225_600).unwrap();
        let first = next(None, &line("x"), &regarding(), &reporter(), t0);
        assert!(fresh(&first, t0 + SignedDuration::from_mins(5)));
        assert!(!fresh(&first, t0 + REPEATS_WITHIN));
        let t5 = t0 + SignedDuration::from_mins(5);
        let repeated = next(Some(&first), &line("x"), &regarding(), &reporter(), t5);
        assert!(fresh(&repeated, t0 + SignedDuration::from_mins(10)), "from its last repeat");
    }
}
