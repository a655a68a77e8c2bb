//! Property tests of the pure parts against random, mostly invalid input: a
//! GameServer spec of any shape that deserializes (the API server's schema is
//! not there to refuse it: a hand-made object, the swarm facade, an older CRD)
//! must plan and build without panicking, and the comparisons the backends
//! decide their writes with must hold for what they build.
//!
//! `PROPTEST_CASES` sets the number of cases (1024 by default) for a soak run.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::api::{GameServer, GameServerSpec};
use crate::orchestrator::kubernetes::{builders as k8s, is_subset};
use crate::orchestrator::swarm::builders as swarm;
use crate::orchestrator::{Endpoint, Instance, Observed, Workload};
use crate::quantity::Quantity;
use crate::{facade, plan, status};

/// Strings as they come: empty, names, printable ASCII, any Unicode, long.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z][a-z0-9-]{0,14}", "[ -~]{0,40}", "\\PC{0,24}", "[a-z0-9.-]{60,300}",]
}

fn any_int() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -3i64..70_000, 2 => any::<i32>().prop_map(i64::from), 1 => any::<i64>()]
}

/// Integers for fields of type int32: out of range for it only now and then.
fn int32() -> impl Strategy<Value = i64> {
    prop_oneof![6 => -3i64..70_000, 3 => any::<i32>().prop_map(i64::from), 1 => any::<i64>()]
}

/// Quantities, valid and not: `10Gi`, `1.5`, `-1`, `1e400`, `.`, garbage.
fn any_quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?",
        "[+-]?[0-9]{0,40}\\.?[0-9]{0,40}([eE][+-]?[0-9]{0,5})?",
        any_string(),
    ]
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_int().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// A field's value: of the right shape most of the time, anything otherwise.
fn field(typed: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![24 => typed, 1 => any_json()].boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    prop::option::weighted(0.5, s).boxed()
}

fn port() -> impl Strategy<Value = Value> {
    (
        field(any_string().prop_map(Value::String)),
        field(int32().prop_map(Value::from)),
        opt(field(prop_oneof![4 => Just("TCP"), 4 => Just("UDP"), 1 => Just("SCTP")].prop_map(Value::from))),
        opt(field(int32().prop_map(Value::from))),
    )
        .prop_map(|(name, container_port, protocol, external)| {
            let mut p = json!({ "name": name, "containerPort": container_port });
            if let Some(v) = protocol {
                p["protocol"] = v;
            }
            if let Some(v) = external {
                p["externalPort"] = v;
            }
            p
        })
}

fn env_var() -> impl Strategy<Value = Value> {
    (any_string(), opt(any_string()), opt(any_string())).prop_map(|(name, value, secret)| {
        let mut e = json!({ "name": name });
        if let Some(v) = value {
            e["value"] = json!(v);
        }
        if let Some(s) = secret {
            e["valueFrom"] = json!({ "secretKeyRef": { "name": s, "key": "k" } });
        }
        e
    })
}

fn resources() -> impl Strategy<Value = Value> {
    let amounts = || {
        prop::collection::btree_map(
            prop_oneof![Just("cpu".to_string()), Just("memory".to_string()), any_string()],
            any_quantity(),
            0..3,
        )
    };
    (amounts(), amounts()).prop_map(|(requests, limits)| json!({ "requests": requests, "limits": limits }))
}

fn storage() -> impl Strategy<Value = Value> {
    (
        any_quantity(),
        opt(any_string()),
        opt(prop_oneof![Just("/data".to_string()), any_string()]),
        opt(prop_oneof![Just("Retain"), Just("Delete")]),
    )
        .prop_map(|(size, class, mount, reclaim)| {
            let mut s = json!({ "size": size });
            if let Some(c) = class {
                s["storageClassName"] = json!(c);
            }
            if let Some(m) = mount {
                s["mountPath"] = json!(m);
            }
            if let Some(r) = reclaim {
                s["reclaimPolicy"] = json!(r);
            }
            s
        })
}

fn config_file() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("/data/game.cfg".to_string()), any_string()],
        opt(any_string()),
        opt((any_string(), any_string())),
    )
        .prop_map(|(path, content, reference)| {
            let mut f = json!({ "path": path });
            if let Some(c) = content {
                f["content"] = json!(c);
            }
            if let Some((name, key)) = reference {
                f["configMapKeyRef"] = json!({ "name": name, "key": key });
            }
            f
        })
}

fn health() -> impl Strategy<Value = Value> {
    (
        opt(int32()),
        opt(prop_oneof![
            any_string().prop_map(|p| json!({ "tcpPort": p })),
            prop::collection::vec(any_string(), 0..3).prop_map(|c| json!({ "exec": c })),
            (any_string(), prop::collection::vec(any_string(), 0..2))
                .prop_map(|(p, c)| json!({ "tcpPort": p, "exec": c })),
            Just(json!({})),
        ]),
        opt(int32()),
        opt(int32()),
    )
        .prop_map(|(timeout, probe, period, threshold)| {
            let mut h = json!({});
            for (k, v) in [
                ("startupTimeoutSeconds", timeout.map(Value::from)),
                ("probe", probe),
                ("periodSeconds", period.map(Value::from)),
                ("failureThreshold", threshold.map(Value::from)),
            ] {
                if let Some(v) = v {
                    h[k] = v;
                }
            }
            h
        })
}

fn toleration() -> impl Strategy<Value = Value> {
    (
        opt(field(any_string().prop_map(Value::String))),
        opt(field(prop_oneof![Just("Exists"), Just("Equal"), Just("Like")].prop_map(Value::from))),
        opt(field(any_string().prop_map(Value::String))),
        opt(field(
            prop_oneof![Just("NoSchedule"), Just("PreferNoSchedule"), Just("NoExecute"), Just("")]
                .prop_map(Value::from),
        )),
        opt(field(any_int().prop_map(Value::from))),
    )
        .prop_map(|(key, operator, value, effect, seconds)| {
            let mut t = json!({});
            for (k, v) in [
                ("key", key),
                ("operator", operator),
                ("value", value),
                ("effect", effect),
                ("tolerationSeconds", seconds),
            ] {
                if let Some(v) = v {
                    t[k] = v;
                }
            }
            t
        })
}

/// A GameServer spec: every field present or not, of the right type most of
/// the time, with values anywhere in (and far outside) their valid ranges.
fn spec_json() -> impl Strategy<Value = Value> {
    let strings = || prop::collection::vec(any_string(), 0..3).prop_map(|v| json!(v));
    let first = (
        field(any_string().prop_map(Value::String)),
        field(prop::collection::vec(port(), 0..5).prop_map(Value::Array)),
        opt(field(prop_oneof![4 => Just("Running"), 4 => Just("Stopped"), 1 => Just("Paused")].prop_map(Value::from))),
        opt(field(prop_oneof![Just("Always"), Just("IfNotPresent"), Just("Never")].prop_map(Value::from))),
        opt(field(strings())),
        opt(field(strings())),
        opt(field(prop::collection::vec(env_var(), 0..4).prop_map(Value::Array))),
    );
    let second = (
        opt(field(resources())),
        opt(field(storage())),
        opt(field(prop::collection::vec(config_file(), 0..4).prop_map(Value::Array))),
        opt(field(
            (
                prop_oneof![Just("NodePort"), Just("LoadBalancer"), Just("ClusterIP")],
                prop::collection::btree_map(any_string(), any_string(), 0..3),
            )
                .prop_map(|(t, a)| json!({ "type": t, "annotations": a })),
        )),
        opt(field(health())),
        opt(field(
            (any_int(), prop::collection::vec(any_string(), 0..3))
                .prop_map(|(g, c)| json!({ "gracePeriodSeconds": g, "stopCommand": c })),
        )),
        opt(any_json()),
        opt(field(prop::collection::btree_map(any_string(), any_string(), 0..3).prop_map(|m| json!(m)))),
        opt(field(prop::collection::vec(toleration(), 0..3).prop_map(Value::Array))),
    );
    (first, second).prop_map(
        |(
            (image, ports, state, pull, command, args, env),
            (resources, storage, config, service, health, shutdown, extra, node_selector, tolerations),
        )| {
            let mut s = json!({ "image": image, "ports": ports });
            let optional = [
                ("state", state),
                ("imagePullPolicy", pull),
                ("command", command),
                ("args", args),
                ("env", env),
                ("resources", resources),
                ("storage", storage),
                ("config", config),
                ("service", service),
                ("health", health),
                ("shutdown", shutdown),
                ("unknownField", extra),
                ("nodeSelector", node_selector),
                ("tolerations", tolerations),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    s[k] = v;
                }
            }
            s
        },
    )
}

fn owner(name: &str, namespace: &str, spec: GameServerSpec) -> GameServer {
    let mut gs = GameServer::new(name, spec);
    gs.metadata.namespace = Some(namespace.to_string());
    gs.metadata.uid = Some("0b7c3e0e-5d7e-4d4f-9d3c-2f1f5e4b6a01".into());
    gs.metadata.generation = Some(1);
    gs
}

fn observed() -> impl Strategy<Value = Observed> {
    (
        opt((0i32..3, 0i32..3, any::<bool>(), 0i32..3)),
        opt((
            any::<bool>(),
            any::<bool>(),
            any::<i32>(),
            opt(prop_oneof![
                any_string(),
                Just("ErrImagePull".to_string()),
                Just("ImagePullBackOff".to_string()),
                Just("CrashLoopBackOff".to_string())
            ]),
            opt(any_string()),
            any::<bool>(),
        )),
        opt(any_string()),
    )
        .prop_map(|(workload, instance, address)| Observed {
            workload: workload.map(|(desired, ready, rolled_out, existing)| Workload {
                desired,
                ready,
                rolled_out,
                existing,
            }),
            instance: instance.map(|(running, ready, restarts, problem, problem_message, terminating)| Instance {
                name: "pod".into(),
                running,
                ready,
                restarts,
                problem,
                problem_message,
                terminating,
            }),
            endpoint: Endpoint { address, ports: Vec::new() },
            backend_ref: None,
        })
}

/// 1024 cases by default (a second or two), `PROPTEST_CASES` for more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    /// Whatever deserializes as a spec plans, builds for both backends, is
    /// checked by the facade's validation and gets a status, without a panic;
    /// and what the Kubernetes builders make compares equal to itself (else
    /// the backend would write it on every reconcile).
    #[test]
    fn any_spec_that_deserializes_plans_and_builds(
        spec in spec_json(),
        name in prop_oneof![Just("mc".to_string()), any_string()],
        namespace in prop_oneof![Just("games".to_string()), Just(String::new()), any_string()],
        observed in observed(),
        now in 0i64..4_000_000_000,
    ) {
        let Ok(spec) = serde_json::from_value::<GameServerSpec>(spec) else { return Ok(()) };
        let gs = owner(&name, &namespace, spec.clone());
        let planned = plan::plan(&gs);
        prop_assert_eq!(&planned, &plan::plan(&gs), "planning is deterministic");
        prop_assert!(planned.replicas == 0 || planned.replicas == 1);

        let deployment = k8s::deployment(&planned, &gs);
        let service = k8s::service(&planned, &gs);
        let claim = k8s::persistent_volume_claim(&planned, &gs);
        let config = k8s::config_map(&planned, &gs);
        prop_assert_eq!(claim.is_some(), spec.storage.is_some());
        let replicas = deployment.spec.as_ref().and_then(|s| s.replicas);
        prop_assert!(replicas == Some(0) || replicas == Some(1), "{:?}", replicas);
        for object in [
            serde_json::to_value(&deployment),
            serde_json::to_value(&service),
            serde_json::to_value(&claim),
            serde_json::to_value(&config),
        ] {
            let object = object.expect("a built object serializes");
            prop_assert!(is_subset(&object, &object), "{object}");
        }
        let _ = k8s::endpoint(&planned, Some(&service), None);

        match swarm::service_spec(&planned, gs.metadata.uid.as_deref()) {
            Ok(service) => {
                let name = service.name.clone().unwrap_or_default();
                prop_assert!(!name.is_empty() && name.len() <= 63, "{}", name);
                prop_assert!(!swarm::needs_update(&service, &service), "a service always matches itself");
            }
            // Refusals name what swarm cannot do; they must not be empty.
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let _ = swarm::config_files(&planned);
        let _ = swarm::volume_request(&planned);
        let _ = facade::validate::problems(&spec);

        let now = Time(Timestamp::from_second(now).unwrap());
        let status = status::compute(&gs, &observed, &now);
        prop_assert!(status.phase.is_some());
        let mut again = gs.clone();
        again.status = Some(status.clone());
        prop_assert_eq!(status::compute(&again, &observed, &now), status, "the status settles");
        let _ = status::needs_requeue(again.status.as_ref().unwrap(), &again, &now);
        let _ = status::terminating(&again, Some(("BackendRefused", "no")), &now);
    }

    /// Random JSON in place of a spec is refused by deserialization or
    /// planned like any other spec: never a panic.
    #[test]
    fn any_json_either_fails_to_deserialize_or_plans(value in any_json()) {
        if let Ok(spec) = serde_json::from_value::<GameServerSpec>(value) {
            let gs = owner("mc", "games", spec);
            let planned = plan::plan(&gs);
            let _ = k8s::deployment(&planned, &gs);
            let _ = swarm::service_spec(&planned, None);
        }
    }

    /// Quantities as users write them, and garbage: never a panic, never a
    /// negative amount, and scaling by 10^3 multiplies by 1000 whenever both
    /// fit.
    #[test]
    fn quantities_scale_without_panicking(q in any_quantity(), scale in 0u32..12) {
        let scaled = |scale| Quantity::parse(&q).and_then(|v| v.scaled(scale));
        if let Some(v) = scaled(scale) {
            prop_assert!(v >= 0, "{} -> {}", q, v);
            if let (Some(base), Some(milli)) = (scaled(0), scaled(3)) {
                // Rounding up happens at each scale: base rounds up from a
                // fraction of a unit, milli from a fraction of a thousandth.
                prop_assert!(milli <= base.saturating_mul(1000), "{}: {} vs {}", q, milli, base);
                prop_assert!(milli > base.saturating_sub(1).saturating_mul(1000) || base == 0, "{}: {} vs {}", q, milli, base);
            }
        }
    }

    /// `is_subset` is reflexive, and an object holds everything it had once
    /// more fields are added to it (what the API server does to every object:
    /// defaults, status, metadata).
    #[test]
    fn subset_is_reflexive_and_survives_additions(value in any_json(), extra in any_json(), key in any_string()) {
        prop_assert!(is_subset(&value, &value));
        if let Value::Object(mut bigger) = value.clone()
            && !bigger.contains_key(&key)
        {
            bigger.insert(key, extra);
            prop_assert!(is_subset(&value, &Value::Object(bigger)));
        }
    }
}

/// The labels the swarm builders look objects up by are the ones they put on
/// them, for any name and namespace.
#[test]
fn swarm_identity_labels_identify_their_server() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&(any_string(), any_string()), |(name, namespace)| {
            let spec: GameServerSpec =
                serde_json::from_value(json!({ "image": "game", "ports": [{ "name": "game", "containerPort": 1 }] }))
                    .unwrap();
            let planned = plan::plan_spec(&name, &namespace, &spec);
            let labels: HashMap<String, String> = swarm::identity_labels(&planned).into_iter().collect();
            prop_assert!(swarm::is_ours(Some(&labels), &planned));
            let other = plan::plan_spec(&format!("{name}x"), &namespace, &spec);
            prop_assert!(!swarm::is_ours(Some(&labels), &other));
            Ok(())
        })
        .unwrap();
}
