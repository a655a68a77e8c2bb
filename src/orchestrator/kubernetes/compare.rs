//! Whether a child needs an apply: the desired object against the live one,
//! compared over the fields mettaton's own server-side apply owns (its
//! `managedFields` entry), so that what other writers add is left alone and
//! what mettaton dropped is noticed. Pure: values in, a yes or no out.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api;
use crate::quantity::Quantity;

/// Whether `actual` holds everything in `desired`: objects key by key
/// (recursively), arrays element by element with the same length, scalars
/// equal. The top-level `status` is ignored, and an empty object, array or
/// string in `desired` matches an absent field, since the API server drops
/// empty fields. Amounts of resources (the maps `resources.requests` and
/// `resources.limits`) compare as quantities, since the API server rewrites
/// them in canonical form (`1000m` is stored as `1`, `1.5Gi` as `1536Mi`).
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => {
            d.iter().filter(|(k, _)| k.as_str() != "status").all(|(k, v)| contains(v, a.get(k), Within::Plain.child(k)))
        }
        _ => contains(desired, Some(actual), Within::Plain),
    }
}

/// Where a value sits, as far as comparing it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Within {
    Plain,
    /// The value of a `resources` field.
    Resources,
    /// An amount map of resources: `resources.requests` or `resources.limits`.
    Amounts,
    /// One amount of such a map: a quantity.
    Amount,
}

impl Within {
    /// Where the value of the field `key` of an object sitting at `self` is.
    fn child(self, key: &str) -> Within {
        match (self, key) {
            (_, "resources") => Within::Resources,
            (Within::Resources, "requests" | "limits") => Within::Amounts,
            (Within::Amounts, _) => Within::Amount,
            _ => Within::Plain,
        }
    }
}

fn contains(desired: &Value, actual: Option<&Value>, within: Within) -> bool {
    match (desired, actual) {
        (Value::Null, _) => true,
        (Value::Object(d), None | Some(Value::Null)) => d.is_empty(),
        (Value::Array(d), None | Some(Value::Null)) => d.is_empty(),
        (Value::String(d), None | Some(Value::Null)) => d.is_empty(),
        (Value::Object(d), Some(Value::Object(a))) => d.iter().all(|(k, v)| contains(v, a.get(k), within.child(k))),
        (Value::Array(d), Some(Value::Array(a))) => {
            d.len() == a.len() && d.iter().zip(a).all(|(d, a)| contains(d, Some(a), within))
        }
        (Value::String(d), Some(Value::String(a))) if within == Within::Amount => {
            d == a || Quantity::parse(d).is_some_and(|v| Quantity::parse(a) == Some(v))
        }
        (d, Some(a)) => d == a,
        (_, None) => false,
    }
}

/// Whether applying `desired` would change nothing in `current`. An object that
/// cannot be compared counts as differing: a needless write is harmless, a
/// skipped one not. See [`holds_applied`].
pub(super) fn holds<K: Resource + Serialize>(current: &K, desired: &K) -> bool {
    let Some(owned) = applied_fields(current.meta()) else { return false };
    match (serde_json::to_value(desired), serde_json::to_value(current)) {
        (Ok(desired), Ok(current)) => holds_applied(&desired, &current, &owned),
        _ => false,
    }
}

/// The fields mettaton's last server-side apply set on the object (its
/// `managedFields` entry, `fieldsV1`), if it applied it. The watch cache
/// keeps that record as its JSON text ([`cache::Cached::slim`]); it is
/// parsed here.
pub(super) fn applied_fields(meta: &ObjectMeta) -> Option<Cow<'_, Value>> {
    let fields = meta
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.manager.as_deref() == Some(api::FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref().unwrap_or_default().is_empty()
        })
        .and_then(|m| m.fields_v1.as_ref())?;
    match &fields.0 {
        Value::String(text) => serde_json::from_str(text).ok().map(Cow::Owned),
        fields => Some(Cow::Borrowed(fields)),
    }
}

/// Whether an apply of `desired` over `current`, of which mettaton's last
/// apply set the fields `owned` (`fieldsV1`), would change nothing:
/// - the fields mettaton owns hold every value of `desired` (what another
///   writer added, such as an element of a list mettaton fills, is not
///   counted, so it causes no write; a field another writer took over is not
///   mettaton's any more, so a changed value is written back);
/// - mettaton owns no field that `desired` leaves out (an apply removes those:
///   a stop command, resources or config files the GameServer dropped).
pub fn holds_applied(desired: &Value, current: &Value, owned: &Value) -> bool {
    let mut mine = prune(current, owned);
    // Identity fields are part of every apply but never of managedFields.
    if let Value::Object(m) = &mut mine {
        for key in ["apiVersion", "kind"] {
            if let Some(v) = current.get(key) {
                m.insert(key.to_string(), v.clone());
            }
        }
        if let (Some(Value::Object(current_meta)), Value::Object(meta)) =
            (current.get("metadata"), m.entry("metadata").or_insert_with(|| json!({})))
        {
            for key in ["name", "namespace"] {
                if let Some(v) = current_meta.get(key) {
                    meta.insert(key.to_string(), v.clone());
                }
            }
        }
    }
    is_subset(desired, &mine) && covers(desired, owned)
}

/// The part of `value` that the field set `fields` (`fieldsV1`) names.
fn prune(value: &Value, fields: &Value) -> Value {
    let Value::Object(fields) = fields else { return value.clone() };
    // A leaf: the field itself (a scalar, an atomic list or map) is owned.
    if fields.keys().all(|k| k == ".") {
        return value.clone();
    }
    match value {
        Value::Object(object) => Value::Object(
            fields
                .iter()
                .filter_map(|(key, sub)| {
                    let name = key.strip_prefix("f:")?;
                    Some((name.to_string(), prune(object.get(name)?, sub)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    fields.iter().find(|(key, _)| element_matches(key, i, item)).map(|(_, sub)| prune(item, sub))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether every field of the field set `fields` is in `desired`.
fn covers(desired: &Value, fields: &Value) -> bool {
    let Value::Object(fields) = fields else { return true };
    fields.iter().all(|(key, sub)| {
        if key == "." {
            return true;
        }
        if let Some(name) = key.strip_prefix("f:") {
            return desired.get(name).is_some_and(|v| !v.is_null() && covers(v, sub));
        }
        let Value::Array(items) = desired else { return false };
        items
            .iter()
            .enumerate()
            .find(|(i, item)| element_matches(key, *i, item))
            .is_some_and(|(_, item)| covers(item, sub))
    })
}

/// Whether the list element `item`, at `index`, is the one a `fieldsV1` key
/// names: `k:{...}` by its key fields, `v:...` by its value, `i:N` by index.
fn element_matches(key: &str, index: usize, item: &Value) -> bool {
    if let Some(k) = key.strip_prefix("k:") {
        serde_json::from_str::<serde_json::Map<String, Value>>(k)
            .is_ok_and(|k| k.iter().all(|(field, v)| item.get(field) == Some(v)))
    } else if let Some(v) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|v| &v == item)
    } else if let Some(i) = key.strip_prefix("i:") {
        i.parse::<usize>().is_ok_and(|i| i == index)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;

    use crate::orchestrator::kubernetes::cache::Cached;

    #[test]
    fn subset_holds_for_objects_with_more_fields() {
        let desired = json!({ "metadata": { "name": "mc", "labels": { "a": "1" } }, "spec": { "replicas": 1 } });
        let actual = json!({
            "metadata": { "name": "mc", "labels": { "a": "1", "b": "2" }, "resourceVersion": "7" },
            "spec": { "replicas": 1, "revisionHistoryLimit": 10 },
        });
        assert!(is_subset(&desired, &actual));
        assert!(!is_subset(&actual, &desired));
    }

    #[test]
    fn subset_fails_on_a_changed_or_missing_value() {
        let desired = json!({ "spec": { "replicas": 0 } });
        assert!(!is_subset(&desired, &json!({ "spec": { "replicas": 1 } })));
        assert!(!is_subset(&desired, &json!({ "spec": {} })));
        assert!(!is_subset(&desired, &json!({})));
        assert!(!is_subset(&json!({ "a": "1" }), &json!({ "a": 1 })));
    }

    #[test]
    fn arrays_match_by_index_and_length() {
        let actual =
            json!({ "ports": [{ "name": "game", "port": 1, "nodePort": 30001 }, { "name": "query", "port": 2 }] });
        assert!(is_subset(&json!({ "ports": [{ "name": "game" }, { "name": "query" }] }), &actual));
        assert!(!is_subset(&json!({ "ports": [{ "name": "game" }] }), &actual), "a port removed");
        assert!(!is_subset(&json!({ "ports": [{ "name": "query" }, { "name": "game" }] }), &actual), "order counts");
        assert!(!is_subset(&json!({ "ports": [{}, {}, {}] }), &actual), "a port added");
    }

    #[test]
    fn status_is_ignored_and_empty_fields_match_absent_ones() {
        let actual = json!({ "spec": { "x": 1 }, "status": { "readyReplicas": 1 } });
        assert!(is_subset(&json!({ "spec": { "x": 1 }, "status": { "readyReplicas": 0 } }), &actual));
        assert!(is_subset(&json!({ "spec": { "x": 1, "list": [], "map": {} } }), &actual));
        assert!(is_subset(&json!({ "spec": { "x": 1, "unset": null } }), &actual));
        assert!(!is_subset(&json!({ "spec": { "list": [1] } }), &actual));
        // Only the top-level status is the server's; a nested one is data.
        assert!(!is_subset(&json!({ "spec": { "status": "on" } }), &actual));
    }

    /// A Deployment as the API server returns it after mettaton's apply and
    /// another writer's edits, and what mettaton's apply owns of it.
    fn applied_deployment() -> (Value, Value) {
        let current = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "mc", "namespace": "games", "resourceVersion": "9",
                          "labels": { "app": "mc", "team": "blue" } },
            "spec": { "replicas": 1, "revisionHistoryLimit": 10, "template": { "spec": { "containers": [
                { "name": "game", "image": "game:1", "imagePullPolicy": "IfNotPresent",
                  "env": [{ "name": "MAP", "value": "dust" }, { "name": "TRACE", "value": "1" }],
                  "lifecycle": { "preStop": { "exec": { "command": ["save"] } } } },
                { "name": "metrics", "image": "exporter:1" }
            ] } } },
            "status": { "replicas": 1 }
        });
        let owned = json!({
            "f:metadata": { "f:labels": { "f:app": {} } },
            "f:spec": { "f:replicas": {}, "f:template": { "f:spec": { "f:containers": {
                "k:{\"name\":\"game\"}": {
                    ".": {}, "f:name": {}, "f:image": {},
                    "f:env": { "k:{\"name\":\"MAP\"}": { ".": {}, "f:name": {}, "f:value": {} } },
                    "f:lifecycle": { "f:preStop": { "f:exec": { "f:command": {} } } }
                }
            } } } }
        });
        (current, owned)
    }

    fn desired_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "mc", "namespace": "games", "labels": { "app": "mc" } },
            "spec": { "replicas": 1, "template": { "spec": { "containers": [
                { "name": "game", "image": "game:1", "env": [{ "name": "MAP", "value": "dust" }],
                  "lifecycle": { "preStop": { "exec": { "command": ["save"] } } } }
            ] } } }
        })
    }

    #[test]
    fn what_another_writer_added_inside_managed_lists_needs_no_apply() {
        let (current, owned) = applied_deployment();
        // The env var, the container and the label someone else added are not
        // mettaton's: comparing the whole lists would write on every reconcile.
        assert!(!is_subset(&desired_deployment(), &current), "the old comparison saw a difference");
        assert!(holds_applied(&desired_deployment(), &current, &owned));
    }

    #[test]
    fn an_owned_value_changed_or_taken_over_needs_an_apply() {
        let (mut current, mut owned) = applied_deployment();
        current["spec"]["replicas"] = json!(3);
        assert!(!holds_applied(&desired_deployment(), &current, &owned), "value changed");
        let (mut current, _) = applied_deployment();
        // kubectl edit of the image: the field moves to its manager.
        current["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other:6");
        owned["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"game\"}"]
            .as_object_mut()
            .unwrap()
            .remove("f:image");
        assert!(!holds_applied(&desired_deployment(), &current, &owned), "taken over");
    }

    #[test]
    fn an_owned_field_left_out_of_the_desired_object_needs_an_apply() {
        let (current, owned) = applied_deployment();
        let mut desired = desired_deployment();
        desired["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("lifecycle");
        let mut alone = current.clone();
        alone["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().truncate(1);
        alone["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut().unwrap().truncate(1);
        assert!(is_subset(&desired, &alone), "the old comparison saw no difference");
        assert!(!holds_applied(&desired, &current, &owned), "the stop command must go");
        let mut desired = desired_deployment();
        desired["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("env");
        assert!(!holds_applied(&desired, &current, &owned), "the env var must go");
        let mut desired = desired_deployment();
        desired["metadata"]["labels"] = json!({});
        assert!(!holds_applied(&desired, &current, &owned), "the label must go");
    }

    #[test]
    fn a_cached_child_compares_as_the_one_read() {
        let (current, _) = applied_deployment();
        let mut read: Deployment = serde_json::from_value(current).unwrap();
        read.metadata.managed_fields = Some(vec![
            serde_json::from_value(json!({ "manager": "kube-controller-manager", "operation": "Update",
                                           "subresource": "status", "fieldsV1": { "f:status": {} } }))
            .unwrap(),
            serde_json::from_value(json!({ "manager": api::FIELD_MANAGER, "operation": "Apply",
                                           "fieldsV1": applied_deployment().1 }))
            .unwrap(),
        ]);
        let mut cached = read.clone();
        cached.slim();
        let record = &cached.metadata.managed_fields.as_ref().unwrap()[..];
        assert_eq!(record.len(), 1, "only mettaton's record is kept");
        assert!(record[0].fields_v1.as_ref().unwrap().0.is_string(), "as its JSON text");
        assert_eq!(applied_fields(&cached.metadata), applied_fields(&read.metadata));

        let desired: Deployment = serde_json::from_value(desired_deployment()).unwrap();
        assert!(holds(&read, &desired) && holds(&cached, &desired));
        let mut changed = desired.clone();
        changed.spec.as_mut().unwrap().replicas = Some(0);
        assert!(!holds(&read, &changed) && !holds(&cached, &changed));
    }

    #[test]
    fn list_elements_are_found_by_key_value_or_index() {
        let item = json!({ "containerPort": 7777, "protocol": "TCP", "name": "game" });
        assert!(element_matches("k:{\"containerPort\":7777,\"protocol\":\"TCP\"}", 3, &item));
        assert!(!element_matches("k:{\"containerPort\":7777,\"protocol\":\"UDP\"}", 3, &item));
        assert!(element_matches("v:\"mettaton.dev/teardown\"", 0, &json!("mettaton.dev/teardown")));
        assert!(element_matches("i:3", 3, &item));
        assert!(!element_matches("i:2", 3, &item));
        assert!(!element_matches("k:not json", 0, &item));
        assert!(!element_matches("x:1", 0, &item));
    }

    #[test]
    fn an_object_mettaton_never_applied_needs_an_apply() {
        let deployment: Deployment = serde_json::from_value(desired_deployment()).unwrap();
        assert!(!holds(&deployment, &deployment), "no apply record: apply");
    }

    #[test]
    fn resource_amounts_compare_as_quantities_and_only_they() {
        let desired = json!({ "spec": { "containers": [{ "resources": { "requests": { "cpu": "1000m", "memory": "1024Mi" } },
                                                       "env": [{ "name": "X", "value": "1000m" }] }] } });
        let stored = json!({ "spec": { "containers": [{ "resources": { "requests": { "cpu": "1", "memory": "1Gi" } },
                                                      "env": [{ "name": "X", "value": "1000m" }] }] } });
        assert!(is_subset(&desired, &stored));
        let env_changed = json!({ "spec": { "containers": [{ "resources": { "requests": { "cpu": "1", "memory": "1Gi" } },
                                                           "env": [{ "name": "X", "value": "1" }] }] } });
        assert!(!is_subset(&desired, &env_changed), "an env value is text, not a quantity");
        let claim = json!({ "spec": { "resources": { "requests": { "storage": "1.5Gi" } } } });
        assert!(is_subset(&claim, &json!({ "spec": { "resources": { "requests": { "storage": "1536Mi" } } } })));
        assert!(!is_subset(&claim, &json!({ "spec": { "resources": { "requests": { "storage": "2Gi" } } } })));
    }

    #[test]
    fn an_empty_string_matches_an_absent_field() {
        // EnvVar.value is omitempty: `value: ""` is stored as no value.
        assert!(is_subset(&json!({ "env": [{ "name": "X", "value": "" }] }), &json!({ "env": [{ "name": "X" }] })));
        assert!(!is_subset(&json!({ "env": [{ "name": "X", "value": "a" }] }), &json!({ "env": [{ "name": "X" }] })));
    }
}
