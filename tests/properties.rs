//! Property tests of the pure parts against random, mostly invalid input: a
//! GameServer spec of any shape that deserializes (the API server's schema is
//! not there to refuse it: a hand-made object, the swarm facade, an older CRD)
//! must plan and build without panicking, into objects that carry what the
//! spec asked for; and the comparisons the backends decide their writes with
//! must tell what they build from anything that differs from it in one field.
//!
//! A test binary of its own (`cargo test --test properties`), on the crate's
//! public API only; it needs no plane. `PROPTEST_CASES` sets the number of
//! cases (1024 by default) for a soak run.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use mettaton::api::{GameServer, GameServerSpec};
use mettaton::orchestrator::kubernetes::{builders as k8s, is_subset};
use mettaton::orchestrator::observed::{Problem, ProblemKind};
use mettaton::orchestrator::swarm::builders as swarm;
use mettaton::orchestrator::{Endpoint, Instance, Observed, Workload};
use mettaton::quantity::Quantity;
use mettaton::{facade, plan, status};
use proptest::test_runner::FileFailurePersistence;

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
            opt((
                prop_oneof![
                    Just(ProblemKind::CrashLoop),
                    Just(ProblemKind::ImagePull),
                    Just(ProblemKind::Refused),
                    Just(ProblemKind::Unschedulable),
                    Just(ProblemKind::OutOfMemory),
                    Just(ProblemKind::Exited),
                    Just(ProblemKind::Other)
                ],
                prop_oneof![
                    any_string(),
                    Just("ErrImagePull".to_string()),
                    Just("ImagePullBackOff".to_string()),
                    Just("CrashLoopBackOff".to_string())
                ],
                opt(any_string()),
            )),
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
            instance: instance.map(|(running, ready, restarts, problem, terminating)| Instance {
                name: "pod".into(),
                running,
                ready,
                restarts,
                problem: problem.map(|(kind, reason, message)| Problem::new(kind, reason, message)),
                terminating,
            }),
            endpoint: Endpoint { address, ports: Vec::new() },
            backend_ref: None,
        })
}

/// The JSON pointers of the scalar leaves of `value` (strings, numbers,
/// booleans; not nulls, which match anything), but for those under a
/// top-level `status`, which the comparison ignores.
fn leaves(value: &Value) -> Vec<String> {
    fn walk(value: &Value, path: String, top: bool, out: &mut Vec<String>) {
        match value {
            Value::Null => {}
            Value::Object(map) => {
                for (k, v) in map {
                    if !(top && k == "status") {
                        let key = k.replace('~', "~0").replace('/', "~1");
                        walk(v, format!("{path}/{key}"), false, out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{path}/{i}"), false, out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), true, &mut out);
    out
}

/// `value` with the leaf at `pointer` replaced by a value of another type,
/// which no comparison may take for the same.
fn changed_at(value: &Value, pointer: &str) -> Value {
    let mut changed = value.clone();
    let leaf = changed.pointer_mut(pointer).expect("a leaf of the value");
    *leaf = match leaf {
        Value::Bool(_) | Value::Number(_) => json!("changed"),
        _ => json!(true),
    };
    changed
}

/// 1024 cases by default (a second or two), `PROPTEST_CASES` for more. The
/// failures found are kept beside this file, in
/// `tests/properties.proptest-regressions` (proptest's default looks for a
/// `lib.rs` or `main.rs` above the file, which a test of its own has not).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Whatever deserializes as a spec survives a round trip through JSON,
    /// plans, builds for both backends into objects that carry what it asks
    /// for, is checked by the facade's validation and gets a status that
    /// settles. What the Kubernetes builders make compares equal to itself
    /// (else the backend would write it on every reconcile) and not to
    /// itself with any one field changed (else a change would go unwritten);
    /// a swarm service matches itself and not one with another image or
    /// replica count.
    #[test]
    fn any_spec_that_deserializes_plans_and_builds(
        spec in spec_json(),
        leaf in any::<prop::sample::Index>(),
        name in prop_oneof![Just("mc".to_string()), any_string()],
        namespace in prop_oneof![Just("games".to_string()), Just(String::new()), any_string()],
        observed in observed(),
        now in 0i64..4_000_000_000,
    ) {
        let Ok(spec) = serde_json::from_value::<GameServerSpec>(spec) else { return Ok(()) };
        let round_trip = serde_json::from_value::<GameServerSpec>(serde_json::to_value(&spec).unwrap());
        prop_assert_eq!(round_trip.as_ref().ok(), Some(&spec), "a spec reads back as written");
        let gs = owner(&name, &namespace, spec.clone());
        let planned = plan::plan(&gs);
        prop_assert_eq!(&planned, &plan::plan(&gs), "planning is deterministic");
        prop_assert!(planned.replicas == 0 || planned.replicas == 1);

        let identity = mettaton::orchestrator::Owner::of(&gs);
        let deployment = k8s::deployment(&planned, &identity, mettaton::supervisor::DEFAULT_IMAGE);
        let service = k8s::service(&planned, &identity);
        let claim = k8s::persistent_volume_claim(&planned, &identity);
        let config = k8s::config_map(&planned, &identity);
        prop_assert_eq!(claim.is_some(), spec.storage.is_some());
        let replicas = deployment.spec.as_ref().and_then(|s| s.replicas);
        prop_assert!(replicas == Some(0) || replicas == Some(1), "{:?}", replicas);
        assert_builds_what_the_spec_asks(&spec, &deployment, &service, claim.as_ref(), config.as_ref())?;
        for object in [
            serde_json::to_value(&deployment),
            serde_json::to_value(&service),
            serde_json::to_value(&claim),
            serde_json::to_value(&config),
        ] {
            let object = object.expect("a built object serializes");
            prop_assert!(is_subset(&object, &object), "{object}");
            let leaves = leaves(&object);
            if !leaves.is_empty() {
                let pointer = &leaves[leaf.index(leaves.len())];
                let changed = changed_at(&object, pointer);
                prop_assert!(!is_subset(&object, &changed), "{} changed at {} still compares equal", object, pointer);
            }
        }
        let _ = k8s::endpoint(&planned, Some(&service), None);

        match swarm::service_spec(&planned, gs.metadata.uid.as_deref(), mettaton::supervisor::DEFAULT_IMAGE) {
            Ok(service) => {
                let name = service.name.clone().unwrap_or_default();
                prop_assert!(!name.is_empty() && name.len() <= 63, "{}", name);
                prop_assert!(!swarm::needs_update(&service, &service), "a service always matches itself");
                let container = service.task_template.as_ref().and_then(|t| t.container_spec.as_ref()).unwrap();
                prop_assert_eq!(container.image.as_deref(), Some(spec.image.as_str()));
                prop_assert_eq!(container.env.as_ref().map_or(0, Vec::len), spec.env.len());
                let replicas = service.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas);
                prop_assert_eq!(replicas, Some(i64::from(planned.replicas)));
                let targets: Vec<Option<i64>> =
                    service.endpoint_spec.iter().flat_map(|e| e.ports.iter().flatten()).map(|p| p.target_port).collect();
                let asked: Vec<Option<i64>> = spec.ports.iter().map(|p| Some(i64::from(p.container_port))).collect();
                prop_assert_eq!(targets, asked);
                let mut other_image = service.clone();
                other_image.task_template.as_mut().unwrap().container_spec.as_mut().unwrap().image =
                    Some(format!("{}-other", spec.image));
                prop_assert!(swarm::needs_update(&other_image, &service), "another image is an update");
                let mut other_count = service.clone();
                other_count.mode.as_mut().unwrap().replicated.as_mut().unwrap().replicas = Some(1 - i64::from(planned.replicas));
                prop_assert!(swarm::needs_update(&other_count, &service), "another replica count is an update");
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

    /// Random JSON in place of a spec is refused by deserialization, or read
    /// as a spec that writes back to JSON that reads as the same spec and
    /// plans the same: nothing of it is lost or changed on the way, however
    /// odd it was.
    #[test]
    fn any_json_either_fails_to_deserialize_or_round_trips(value in any_json()) {
        if let Ok(spec) = serde_json::from_value::<GameServerSpec>(value) {
            let written = serde_json::to_value(&spec).unwrap();
            let read = serde_json::from_value::<GameServerSpec>(written).unwrap();
            prop_assert_eq!(&read, &spec);
            prop_assert_eq!(plan::plan_spec("mc", "games", &read), plan::plan_spec("mc", "games", &spec));
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

    /// `is_subset` is reflexive; an object holds everything it had once
    /// more fields are added to it (what the API server does to every object:
    /// defaults, status, metadata); and a value that differs in any one field
    /// is not held, either way round.
    #[test]
    fn subset_is_reflexive_survives_additions_and_sees_a_change(
        value in any_json(),
        extra in any_json(),
        key in any_string(),
        leaf in any::<prop::sample::Index>(),
    ) {
        prop_assert!(is_subset(&value, &value));
        let leaves = leaves(&value);
        if !leaves.is_empty() {
            let pointer = &leaves[leaf.index(leaves.len())];
            let changed = changed_at(&value, pointer);
            prop_assert!(!is_subset(&value, &changed), "{} changed at {}", value, pointer);
            prop_assert!(!is_subset(&changed, &value), "{} changed at {}", value, pointer);
        }
        if let Value::Object(mut bigger) = value.clone()
            && !bigger.contains_key(&key)
        {
            bigger.insert(key, extra);
            prop_assert!(is_subset(&value, &Value::Object(bigger)));
        }
    }
}

/// What the Kubernetes builders made carries what the spec asked for: the
/// image, command, arguments, environment, ports (container and Service),
/// the replica count, the placement, the claim and its size, and every config
/// file mounted read-only at its path with its inline content in the
/// ConfigMap.
fn assert_builds_what_the_spec_asks(
    spec: &GameServerSpec,
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    service: &k8s_openapi::api::core::v1::Service,
    claim: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    config: Option<&k8s_openapi::api::core::v1::ConfigMap>,
) -> Result<(), TestCaseError> {
    let d = deployment.spec.as_ref().unwrap();
    let running = spec.state == mettaton::api::DesiredState::Running;
    prop_assert_eq!(d.replicas, Some(i32::from(running)));
    let pod = d.template.spec.as_ref().unwrap();
    let game = pod.containers.iter().find(|c| c.name == k8s::CONTAINER).unwrap();
    prop_assert_eq!(game.image.as_deref(), Some(spec.image.as_str()));
    prop_assert_eq!(game.command.clone().unwrap_or_default(), spec.command.clone());
    prop_assert_eq!(game.args.clone().unwrap_or_default(), spec.args.clone());
    prop_assert_eq!(game.env.clone().unwrap_or_default(), spec.env.iter().map(env_as_planned).collect::<Vec<_>>());
    let container_ports: Vec<(Option<String>, i32, Option<String>)> =
        game.ports.iter().flatten().map(|p| (p.name.clone(), p.container_port, p.protocol.clone())).collect();
    let asked: Vec<(Option<String>, i32, Option<String>)> = spec
        .ports
        .iter()
        .map(|p| (Some(p.name.clone()), p.container_port, Some(p.protocol.as_str().to_string())))
        .collect();
    prop_assert_eq!(&container_ports, &asked);
    let service_ports: Vec<(Option<String>, i32, Option<String>)> = service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let target = match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port)) => *port,
                other => panic!("a numbered target port, not {other:?}"),
            };
            (p.name.clone(), target, p.protocol.clone())
        })
        .collect();
    prop_assert_eq!(&service_ports, &asked);
    prop_assert_eq!(pod.node_selector.clone().unwrap_or_default(), spec.node_selector.clone());
    prop_assert_eq!(pod.tolerations.as_ref().map_or(0, Vec::len), spec.tolerations.len());

    let mounts = game.volume_mounts.clone().unwrap_or_default();
    match (&spec.storage, claim) {
        (Some(storage), Some(claim)) => {
            let requests = claim.spec.as_ref().and_then(|s| s.resources.as_ref()).and_then(|r| r.requests.as_ref());
            prop_assert_eq!(requests.and_then(|r| r.get("storage")), Some(&storage.size));
            prop_assert!(mounts.iter().any(|m| m.mount_path == storage.mount_path() && m.sub_path.is_none()));
        }
        (None, None) => {}
        (storage, claim) => prop_assert!(false, "storage {:?}, claim {:?}", storage, claim),
    }
    for file in &spec.config {
        prop_assert!(
            mounts.iter().any(|m| m.mount_path == file.path && m.read_only == Some(true) && m.sub_path.is_some()),
            "{} is mounted read-only",
            file.path
        );
    }
    let data = config.and_then(|c| c.data.clone()).unwrap_or_default();
    // Content wins over a reference; a file with neither is empty.
    let inline: Vec<String> = spec
        .config
        .iter()
        .filter_map(|f| match (&f.content, &f.config_map_key_ref) {
            (Some(content), _) => Some(content.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(String::new()),
        })
        .collect();
    // Keys begin with the file's position.
    let mut data: Vec<(usize, String)> = data
        .into_iter()
        .map(|(key, content)| (key.split('-').next().and_then(|i| i.parse().ok()).unwrap_or(usize::MAX), content))
        .collect();
    data.sort();
    prop_assert_eq!(data.into_iter().map(|(_, c)| c).collect::<Vec<_>>(), inline, "every inline file, in order");
    Ok(())
}

/// A variable of the spec as the Deployment carries it: as written, with an
/// empty value left out (what the API server stores); a `valueFrom` with a
/// value beside it, or with other than one of the sources the CRD offers, is
/// an empty `valueFrom` (which the API server refuses, as it did the spec's).
fn env_as_planned(var: &k8s_openapi::api::core::v1::EnvVar) -> k8s_openapi::api::core::v1::EnvVar {
    let mut var = var.clone();
    var.value = var.value.filter(|v| !v.is_empty());
    if let Some(from) = &mut var.value_from {
        let sources = [from.secret_key_ref.is_some(), from.config_map_key_ref.is_some(), from.field_ref.is_some()];
        let others = from.resource_field_ref.is_some() || from.file_key_ref.is_some();
        if var.value.is_some() || others || sources.iter().filter(|s| **s).count() != 1 {
            *from = Default::default();
        }
        var.value = None;
    }
    var
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
