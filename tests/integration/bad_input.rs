//! Bad input at scale (issue 7, item 5): a property-based test sends random
//! GameServer manifests, most of them broken in one known way, to the real API
//! server, with a controller running in the namespace.
//!
//! - A broken manifest must be refused (422) with a message naming the field
//!   that was broken (the generator knows which one it broke).
//! - A valid one must be accepted, and then converge: its phase settles where
//!   its spec says (Running, Stopped, or Failed for the never-ready image),
//!   without the API server ever refusing one of its children (no ApplyFailed
//!   Event, no BackendRefused error in the controller's metrics); once settled
//!   the controller goes quiet (no reconcile, no write), a reconcile of a
//!   settled server writes nothing, and deleting it honours its reclaim policy.
//! - The controller never panics: it still runs at the end and brings one more
//!   server to Ready.
//!
//! Valid servers are checked in batches (at most [`BATCH`] alive at once) and
//! deleted before the next batch. `MTN_PROPTEST_CASES` sets the number of
//! manifests (default [`DEFAULT_CASES`]); `MTN_PROPTEST_SEED` (a number) makes
//! a run repeatable. A refusal that names the wrong field, or an acceptance of
//! a broken manifest, fails the case and proptest shrinks it to a small
//! manifest, printed with the API server's answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use mettaton::api::{GameServer, Phase, conditions};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::controller::RunningController;
use crate::fixtures::game_server;
use crate::support::{Requests, TestNamespace, condition_status, counting_client, ensure_crd, eventually, wait_ready};

/// Manifests sent by default: about 2 minutes on a 2-core machine.
const DEFAULT_CASES: u32 = 1500;
/// Valid servers alive at once, checked together.
const BATCH: usize = 50;
const WAIT: Duration = Duration::from_secs(120);
/// Images kwok runs like any other, and the one it never makes ready.
const IMAGES: [&str; 4] = [
    "mettaton.test/game:1",
    "game",
    "registry.example.org:5000/team/game-server:1.2.3",
    "ghcr.io/example/game@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
];
const NEVER_READY: &str = "mettaton.test/never-ready";

/// One generated manifest and what must become of it.
#[derive(Clone, Debug)]
struct Case {
    /// `metadata.name`; `#` stands for a number unique in the run.
    name: String,
    /// `None`: no spec at all.
    spec: Option<Value>,
    /// How the manifest was broken, and the fields the refusal must name;
    /// `None` for a valid manifest.
    broken: Option<(&'static str, Vec<String>)>,
}

impl Case {
    fn manifest(&self, n: u64) -> Value {
        let mut m = json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": self.name.replace('#', &n.to_string()) }
        });
        if let Some(spec) = &self.spec {
            m["spec"] = spec.clone();
        }
        m
    }
}

// ---------------------------------------------------------------------------
// Valid manifests.

fn word() -> impl Strategy<Value = String> {
    "[a-z]{1,8}"
}

fn printable(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).unwrap()
}

/// `n` distinct container ports below 40000 (40000 and up are left for the
/// mutations), each with its protocol.
fn ports() -> impl Strategy<Value = Vec<Value>> {
    (prop::collection::btree_set(1i64..40_000, 1..5), prop::collection::vec((word(), any::<bool>()), 4)).prop_map(
        |(numbers, names)| {
            numbers
                .into_iter()
                .zip(names)
                .enumerate()
                .map(|(i, (port, (name, udp)))| {
                    let mut p = json!({ "name": format!("{}{i}", &name[..name.len().min(12)]), "containerPort": port });
                    if udp {
                        p["protocol"] = json!("UDP");
                    } else if i % 2 == 0 {
                        p["protocol"] = json!("TCP");
                    }
                    p
                })
                .collect()
        },
    )
}

fn quantity_cpu() -> impl Strategy<Value = (i64, String)> {
    (1i64..=4000, 0..3).prop_map(|(milli, form)| {
        let text = match form {
            0 => format!("{milli}m"),
            1 if milli % 1000 == 0 => format!("{}", milli / 1000),
            _ => format!("{}", milli as f64 / 1000.0),
        };
        (milli, text)
    })
}

fn quantity_memory() -> impl Strategy<Value = (i64, String)> {
    (1i64..=4096, 0..3).prop_map(|(mi, form)| {
        let text = match form {
            0 => format!("{mi}Mi"),
            1 if mi % 1024 == 0 => format!("{}Gi", mi / 1024),
            1 => format!("{}", mi * 1024 * 1024),
            _ => format!("{}Ki", mi * 1024),
        };
        (mi, text)
    })
}

fn resources() -> impl Strategy<Value = Value> {
    (
        prop::option::of(quantity_cpu()),
        prop::option::of(quantity_cpu()),
        prop::option::of(quantity_memory()),
        prop::option::of(quantity_memory()),
    )
        .prop_map(|(cpu_req, cpu_lim, mem_req, mem_lim)| {
            let mut requests = serde_json::Map::new();
            let mut limits = serde_json::Map::new();
            // A limit below its request is invalid: keep the larger as limit.
            for (name, req, lim) in [("cpu", cpu_req, cpu_lim), ("memory", mem_req, mem_lim)] {
                match (req, lim) {
                    (Some(a), Some(b)) => {
                        let (low, high) = if a.0 <= b.0 { (a, b) } else { (b, a) };
                        requests.insert(name.into(), json!(low.1));
                        limits.insert(name.into(), json!(high.1));
                    }
                    (Some(a), None) => drop(requests.insert(name.into(), json!(a.1))),
                    (None, Some(b)) => drop(limits.insert(name.into(), json!(b.1))),
                    (None, None) => {}
                }
            }
            let mut r = json!({});
            if !requests.is_empty() {
                r["requests"] = Value::Object(requests);
            }
            if !limits.is_empty() {
                r["limits"] = Value::Object(limits);
            }
            r
        })
}

fn env() -> impl Strategy<Value = Value> {
    let name = prop_oneof!["[A-Z_][A-Z0-9_]{0,12}", "[a-z][a-z0-9.-]{0,10}"];
    let value = prop_oneof![
        3 => printable(16).prop_map(|v| json!({ "value": v })),
        1 => ("[a-z]([a-z0-9-]{0,9}[a-z0-9])?", "[a-z][a-zA-Z0-9._-]{0,9}")
            .prop_map(|(n, k)| json!({ "valueFrom": { "secretKeyRef": { "name": n, "key": k } } })),
    ];
    prop::collection::btree_map(name, value, 1..5).prop_map(|vars| {
        Value::Array(
            vars.into_iter()
                .map(|(name, mut v)| {
                    v["name"] = json!(name);
                    v
                })
                .collect(),
        )
    })
}

fn storage() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("1Gi"), Just("500Mi"), Just("2G"), Just("1.5Gi"), Just("1e9"), Just("1024Mi")],
        prop::option::of(prop_oneof![Just("/data".to_string()), word().prop_map(|w| format!("/srv/{w}"))]),
        prop::option::of(prop_oneof![Just("Retain"), Just("Delete")]),
    )
        .prop_map(|(size, mount, reclaim)| {
            let mut s = json!({ "size": size });
            if let Some(m) = mount {
                s["mountPath"] = json!(m);
            }
            if let Some(r) = reclaim {
                s["reclaimPolicy"] = json!(r);
            }
            s
        })
}

fn config() -> impl Strategy<Value = Value> {
    let source = prop_oneof![
        proptest::string::string_regex("[ -~\n]{0,40}").unwrap().prop_map(|c| json!({ "content": c })),
        ("[a-z]([a-z0-9-]{0,9}[a-z0-9])?", "[a-z][a-z0-9._-]{0,9}")
            .prop_map(|(n, k)| json!({ "configMapKeyRef": { "name": n, "key": k } })),
    ];
    prop::collection::btree_map(
        prop_oneof![word().prop_map(|w| format!("/etc/game/{w}.cfg")), word().prop_map(|w| format!("/data/{w}.txt"))],
        source,
        1..4,
    )
    .prop_map(|files| {
        Value::Array(
            files
                .into_iter()
                .map(|(path, mut f)| {
                    f["path"] = json!(path);
                    f
                })
                .collect(),
        )
    })
}

fn service() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![Just("NodePort"), Just("LoadBalancer"), Just("ClusterIP")]),
        prop::collection::btree_map(
            prop_oneof![word(), word().prop_map(|w| format!("example.org/{w}"))],
            printable(12),
            0..3,
        ),
    )
        .prop_map(|(type_, annotations)| {
            let mut s = json!({});
            if let Some(t) = type_ {
                s["type"] = json!(t);
            }
            if !annotations.is_empty() {
                s["annotations"] = json!(annotations);
            }
            s
        })
}

fn health() -> impl Strategy<Value = Value> {
    (
        prop::option::of(1i64..=86_400),
        prop::option::of(prop_oneof![Just(None), prop::collection::vec(word(), 1..3).prop_map(Some)]),
        prop::option::of(1i64..=3600),
        prop::option::of(1i64..=100),
    )
        .prop_map(|(timeout, probe, period, threshold)| {
            let mut h = json!({});
            if let Some(t) = timeout {
                h["startupTimeoutSeconds"] = json!(t);
            }
            // `Some(None)`: a TCP probe, on a port chosen once the ports are known.
            match probe {
                Some(Some(exec)) => h["probe"] = json!({ "exec": exec }),
                Some(None) => h["probe"] = json!({ "tcpPort": "" }),
                None => {}
            }
            if let Some(p) = period {
                h["periodSeconds"] = json!(p);
            }
            if let Some(f) = threshold {
                h["failureThreshold"] = json!(f);
            }
            h
        })
}

fn shutdown() -> impl Strategy<Value = Value> {
    (prop::option::of(0i64..=3600), prop::collection::vec(word(), 0..3)).prop_map(|(grace, stop)| {
        let mut s = json!({});
        if let Some(g) = grace {
            s["gracePeriodSeconds"] = json!(g);
        }
        if !stop.is_empty() {
            s["stopCommand"] = json!(stop);
        }
        s
    })
}

/// A valid GameServer: every optional field present or not, values anywhere
/// in their valid ranges.
fn valid() -> impl Strategy<Value = Case> {
    let first = (
        "[a-z][a-z0-9]{0,8}",
        prop_oneof![8 => prop::sample::select(IMAGES.to_vec()), 1 => Just(NEVER_READY)],
        ports(),
        prop_oneof![4 => Just("Running"), 1 => Just("Stopped")],
        prop::option::of(prop_oneof![Just("Always"), Just("IfNotPresent"), Just("Never")]),
        prop::option::of(prop::collection::vec(printable(12), 1..3)),
        prop::option::of(prop::collection::vec(printable(12), 1..3)),
        prop::option::of(env()),
    );
    let second = (
        prop::option::of(resources()),
        prop::option::of(storage()),
        prop::option::of(config()),
        prop::option::of(service()),
        prop::option::of(health()),
        prop::option::of(shutdown()),
        prop::option::of(printable(60)),
        prop::option::of(prop_oneof![
            Just(("hostNetwork", json!(true))),
            Just(("serviceAccountName", json!("admin"))),
            Just(("privileged", json!(true)))
        ]),
        prop::collection::vec(1i64..40_000, 4),
    );
    (first, second).prop_map(
        |(
            (name, image, mut ports, state, pull, command, args, env),
            (resources, storage, config, service, health, shutdown, description, unknown, external),
        )| {
            let mut spec = json!({ "image": image, "ports": [] });
            // LoadBalancer ports may fix the Service's port; it must stay
            // unique per protocol among the Service's ports.
            let load_balanced = service.as_ref().is_some_and(|s| s["type"] == "LoadBalancer");
            if load_balanced {
                for (i, ext) in external.into_iter().enumerate().take(ports.len()) {
                    if i % 2 == 1 {
                        continue;
                    }
                    let proto = ports[i]["protocol"].as_str().unwrap_or("TCP").to_string();
                    let taken = ports.iter().enumerate().any(|(j, p)| {
                        let effective = p.get("externalPort").unwrap_or(&p["containerPort"]).as_i64();
                        j != i && p["protocol"].as_str().unwrap_or("TCP") == proto && effective == Some(ext)
                    });
                    if !taken {
                        ports[i]["externalPort"] = json!(ext);
                    }
                }
            }
            let tcp: Vec<String> = ports
                .iter()
                .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            spec["ports"] = Value::Array(ports);
            spec["state"] = json!(state);
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    spec[k] = v;
                }
            };
            put("imagePullPolicy", pull.map(|p| json!(p)));
            put("command", command.map(|c| json!(c)));
            put("args", args.map(|a| json!(a)));
            put("env", env);
            put("resources", resources);
            put("storage", storage);
            put("config", config);
            put("service", service);
            put("health", health);
            put("shutdown", shutdown);
            put("description", description.map(|d| json!(d)));
            if let Some((k, v)) = unknown {
                spec[k] = v;
            }
            // A TCP probe names a TCP port, or becomes an exec probe.
            if spec["health"]["probe"]["tcpPort"] == "" {
                spec["health"]["probe"] = match tcp.first() {
                    Some(port) => json!({ "tcpPort": port }),
                    None => json!({ "exec": ["ready"] }),
                };
            }
            // The never-ready image fails after its startup timeout: short.
            if image == NEVER_READY {
                if !spec["health"].is_object() {
                    spec["health"] = json!({});
                }
                spec["health"]["startupTimeoutSeconds"] = json!(3);
            }
            Case { name: format!("{name}-#"), spec: Some(spec), broken: None }
        },
    )
}

// ---------------------------------------------------------------------------
// Broken manifests: a valid one with one thing broken, naming what must be
// named in the refusal.

fn ports_of(spec: &mut Value) -> &mut Vec<Value> {
    spec["ports"].as_array_mut().unwrap()
}

/// Breaks `case` the `kind`th way; `pick` chooses the port, file, value... The
/// kinds are ordered from simple to elaborate, so that shrinking goes toward
/// the simplest breakage that still fails.
fn break_it(mut case: Case, kind: usize, pick: usize) -> Case {
    let spec = case.spec.as_mut().unwrap();
    let n_ports = ports_of(spec).len();
    let i = pick % n_ports;
    let field = |f: &str| vec![f.to_string()];
    let port = |suffix: &str| vec![format!("spec.ports[{i}].{suffix}")];
    let nth = |options: &[Value]| options[pick % options.len()].clone();
    let (what, fields): (&'static str, Vec<String>) = match kind {
        0 => {
            spec["image"] = nth(&[json!(""), json!(" game"), json!("my game"), json!(42), json!("x".repeat(513))]);
            ("bad image", field("spec.image"))
        }
        1 => {
            spec.as_object_mut().unwrap().remove("image");
            ("no image", field("spec.image"))
        }
        2 => {
            spec["ports"] = nth(&[json!([]), json!(null), json!({ "name": "game" }), json!("7777")]);
            ("bad port list", field("spec.ports"))
        }
        3 => {
            ports_of(spec)[i]["containerPort"] = nth(&[
                json!(0),
                json!(-1),
                json!(65536),
                json!(70_000),
                json!(i64::from(i32::MAX)),
                json!("80"),
                json!(80.5),
            ]);
            ("bad containerPort", port("containerPort"))
        }
        4 => {
            ports_of(spec)[i].as_object_mut().unwrap().remove("containerPort");
            ("no containerPort", port("containerPort"))
        }
        5 => {
            ports_of(spec)[i]["name"] = nth(&[
                json!(""),
                json!("Game"),
                json!("game_port"),
                json!("-game"),
                json!("game-"),
                json!("sixteen-letters1"),
                json!("27015"),
                json!("game--tv"),
            ]);
            ("bad port name", port("name"))
        }
        6 => {
            ports_of(spec)[i]["protocol"] = nth(&[json!("SCTP"), json!("tcp"), json!(""), json!(6)]);
            ("bad protocol", port("protocol"))
        }
        7 => {
            ports_of(spec)[i]["externalPort"] = nth(&[json!(0), json!(65536), json!(-30000)]);
            ("bad externalPort", port("externalPort"))
        }
        8 => {
            let dup = json!({ "name": ports_of(spec)[i]["name"], "containerPort": 40_001 });
            ports_of(spec).push(dup);
            ("duplicate port name", vec![format!("spec.ports[{n_ports}]")])
        }
        9 => {
            let p = ports_of(spec)[i].clone();
            let proto = p.get("protocol").cloned().unwrap_or(json!("TCP"));
            ports_of(spec).push(json!({ "name": "dup", "containerPort": p["containerPort"], "protocol": proto }));
            ("duplicate containerPort", field("spec.ports"))
        }
        10 => {
            for p in ports_of(spec).iter_mut() {
                p.as_object_mut().unwrap().remove("externalPort");
            }
            ports_of(spec).push(json!({ "name": "fixa", "containerPort": 40_001, "externalPort": 40_003 }));
            ports_of(spec).push(json!({ "name": "fixb", "containerPort": 40_002, "externalPort": 40_003 }));
            ("duplicate externalPort", field("spec.ports"))
        }
        11 => {
            ports_of(spec)[i]["externalPort"] = json!(30_001);
            spec["service"] = json!({ "type": "ClusterIP" });
            ("externalPort on ClusterIP", field("spec.ports"))
        }
        12 => {
            // The Service's ports: an external port that is another port's
            // container port, on a LoadBalancer, makes two Service ports equal.
            for p in ports_of(spec).iter_mut() {
                p.as_object_mut().unwrap().remove("externalPort");
            }
            ports_of(spec).push(json!({ "name": "lba", "containerPort": 40_001, "externalPort": 40_002 }));
            ports_of(spec).push(json!({ "name": "lbb", "containerPort": 40_002 }));
            spec["service"] = json!({ "type": "LoadBalancer" });
            ("two Service ports alike", field("spec.ports"))
        }
        13 => {
            let extra: Vec<Value> =
                (0..33).map(|n| json!({ "name": format!("p{n}"), "containerPort": 40_000 + n })).collect();
            spec["ports"] = json!(extra);
            ("too many ports", field("spec.ports"))
        }
        14 => {
            spec["state"] = nth(&[json!("Paused"), json!("running"), json!(""), json!(true)]);
            ("bad state", field("spec.state"))
        }
        15 => {
            spec["imagePullPolicy"] = nth(&[json!("Sometimes"), json!("always")]);
            ("bad imagePullPolicy", field("spec.imagePullPolicy"))
        }
        16 => {
            spec["storage"] = json!({ "size": nth(&[json!("-1Gi"), json!("0"), json!("lots"), json!(""), json!("1.5.5Gi"), json!("10 Gi")]) });
            ("bad storage size", field("spec.storage.size"))
        }
        17 => {
            spec["storage"] = json!({ "mountPath": "/data" });
            ("no storage size", field("spec.storage.size"))
        }
        18 => {
            spec["storage"] = json!({ "size": "1Gi", "mountPath": nth(&[json!("data"), json!(""), json!("./data")]) });
            ("bad mountPath", field("spec.storage.mountPath"))
        }
        19 => {
            spec["storage"] = json!({ "size": "1Gi", "reclaimPolicy": nth(&[json!("Recycle"), json!("delete")]) });
            ("bad reclaimPolicy", field("spec.storage.reclaimPolicy"))
        }
        20 => {
            spec["storage"] = json!({ "size": "1Gi", "storageClassName": nth(&[json!(""), json!("Fast_SSD"), json!("fast ssd"), json!("-fast")]) });
            ("bad storageClassName", field("spec.storage.storageClassName"))
        }
        21 => {
            let path =
                nth(&[json!("relative.cfg"), json!("/"), json!("/etc/game/"), json!("/data/../etc/passwd"), json!("")]);
            spec["config"] = json!([{ "path": path, "content": "x" }]);
            ("bad config path", field("spec.config[0].path"))
        }
        22 => {
            spec["config"] = nth(&[
                json!([{ "path": "/etc/a.cfg", "content": "x", "configMapKeyRef": { "name": "c", "key": "k" } }]),
                json!([{ "path": "/etc/a.cfg" }]),
            ]);
            ("config with both or neither source", field("spec.config[0]"))
        }
        23 => {
            spec["config"] =
                json!([{ "path": "/etc/a.cfg", "content": "x" }, { "path": "/etc/a.cfg", "content": "y" }]);
            ("duplicate config path", field("spec.config[1]"))
        }
        24 => {
            spec["config"] = json!([{ "path": "/etc/a.cfg", "configMapKeyRef": nth(&[json!({ "name": "", "key": "k" }), json!({ "name": "c", "key": "" }), json!({ "name": "c" })]) }]);
            ("bad configMapKeyRef", field("spec.config[0].configMapKeyRef"))
        }
        25 => {
            // The data volume and a config file at the same path in the container.
            let mount = nth(&[json!("/data"), json!("/srv/world")]);
            spec["storage"] = json!({ "size": "1Gi", "mountPath": mount });
            spec["config"] = json!([{ "path": mount, "content": "x" }]);
            ("config file at the volume's mountPath", field("spec.config"))
        }
        26 => {
            spec["service"] = json!({ "type": nth(&[json!("ExternalName"), json!("nodeport"), json!("")]) });
            ("bad service type", field("spec.service.type"))
        }
        27 => {
            let key = nth(&[
                json!("bad key"),
                json!("-leading"),
                json!("example.org/"),
                json!("a/b/c"),
                json!("x".repeat(64)),
            ]);
            let mut annotations = serde_json::Map::new();
            annotations.insert(key.as_str().unwrap().to_string(), json!("v"));
            spec["service"] = json!({ "annotations": annotations });
            ("bad Service annotation key", field("spec.service.annotations"))
        }
        28 => {
            spec["health"] = json!({ "startupTimeoutSeconds": nth(&[json!(0), json!(86_401), json!(-5)]) });
            ("bad startupTimeoutSeconds", field("spec.health.startupTimeoutSeconds"))
        }
        29 => {
            spec["health"] = json!({ "periodSeconds": nth(&[json!(0), json!(3601)]) });
            ("bad periodSeconds", field("spec.health.periodSeconds"))
        }
        30 => {
            spec["health"] = json!({ "failureThreshold": nth(&[json!(0), json!(101)]) });
            ("bad failureThreshold", field("spec.health.failureThreshold"))
        }
        31 => {
            spec["health"] = json!({ "probe": { "tcpPort": "nope" } });
            ("probe on an unknown port", field("spec.health.probe.tcpPort"))
        }
        32 => {
            ports_of(spec).push(json!({ "name": "udpq", "containerPort": 40_001, "protocol": "UDP" }));
            spec["health"] = json!({ "probe": { "tcpPort": "udpq" } });
            ("probe on a UDP port", field("spec.health.probe.tcpPort"))
        }
        33 => {
            let first = ports_of(spec)[0]["name"].clone();
            spec["health"] = json!({ "probe": nth(&[json!({}), json!({ "tcpPort": first, "exec": ["ready"] })]) });
            ("probe with both or neither check", field("spec.health.probe"))
        }
        34 => {
            spec["health"] = json!({ "probe": { "exec": [] } });
            ("empty exec probe", field("spec.health.probe.exec"))
        }
        35 => {
            spec["shutdown"] = json!({ "gracePeriodSeconds": nth(&[json!(-1), json!(3601)]) });
            ("bad gracePeriodSeconds", field("spec.shutdown.gracePeriodSeconds"))
        }
        36 => {
            let (key, max) = nth(&[json!(["command", 64]), json!(["args", 256])])
                .as_array()
                .cloned()
                .map(|a| (a[0].as_str().unwrap().to_string(), a[1].as_u64().unwrap() as usize))
                .unwrap();
            spec[&key] = json!(vec!["x"; max + 1]);
            ("too many arguments", vec![format!("spec.{key}")])
        }
        37 => {
            spec["description"] = json!("d".repeat(1025));
            ("description too long", field("spec.description"))
        }
        38 => {
            spec["env"] = json!([{ "name": "A", "value": "1" }, { "name": "A", "value": "2" }]);
            ("duplicate env name", field("spec.env[1]"))
        }
        39 => {
            spec["env"] =
                json!([{ "name": nth(&[json!(""), json!("A=B"), json!("é"), json!("TAB\t")]), "value": "1" }]);
            ("bad env name", field("spec.env[0].name"))
        }
        40 => {
            spec["env"] = json!([nth(&[
                json!({ "name": "A", "value": "1", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }),
                json!({ "name": "A", "valueFrom": {} }),
                json!({ "name": "A", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" }, "configMapKeyRef": { "name": "c", "key": "k" } } }),
                json!({ "name": "A", "valueFrom": { "secretKeyRef": { "name": "s", "key": "bad/key" } } }),
                json!({ "name": "A", "valueFrom": { "secretKeyRef": { "name": "Bad_Name", "key": "k" } } }),
                json!({ "name": "A", "valueFrom": { "fieldRef": { "fieldPath": "spec.secret" } } }),
            ])]);
            ("bad env source", field("spec.env[0]"))
        }
        41 => {
            spec["resources"] =
                json!({ "requests": { "cpu": nth(&[json!("lots"), json!("-1"), json!(""), json!("1x")]) } });
            ("bad cpu quantity", field("spec.resources"))
        }
        42 => {
            spec["resources"] = json!({ "requests": { "memory": "2Gi" }, "limits": { "memory": "1Gi" } });
            ("request above limit", field("spec.resources"))
        }
        43 => {
            spec["resources"] = nth(&[
                json!({ "requests": { "gpu": "1" } }),
                json!({ "limits": { "nvidia.com/gpu": "1" }, "requests": { "nvidia.com/gpu": "2" } }),
                json!({ "claims": [{ "name": "gpu" }] }),
            ]);
            ("unsupported resource", field("spec.resources"))
        }
        44 => {
            case.name = nth(&[json!("a.b-#"), json!(format!("{}-#", "x".repeat(63))), json!("Game-#")])
                .as_str()
                .unwrap()
                .to_string();
            ("bad name", field("metadata.name"))
        }
        _ => {
            case.spec = None;
            ("no spec", field("spec"))
        }
    };
    case.broken = Some((what, fields));
    case
}

/// Kinds of breakage in [`break_it`], the last one included.
const KINDS: usize = 46;

fn any_case() -> impl Strategy<Value = Case> {
    (valid(), prop::option::weighted(0.9, (0..KINDS, any::<usize>()))).prop_map(|(case, breakage)| match breakage {
        Some((kind, pick)) => break_it(case, kind, pick),
        None => case,
    })
}

// ---------------------------------------------------------------------------
// The run.

/// A valid server, accepted, waiting for its batch's checks.
struct Accepted {
    name: String,
    manifest: Value,
    want: Phase,
    reclaim: Option<String>,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    refused: u64,
    accepted: u64,
    by_kind: BTreeMap<&'static str, u64>,
    batch: Vec<Accepted>,
    /// Failures found while checking a batch: not one case's fault, so not
    /// shrunk; the run stops at the first.
    failures: Vec<String>,
    batches: u64,
    /// Reconciles and writes counted when the previous batch was gone.
    mark: (u64, usize),
    reconciles_settling: u64,
    writes_settling: u64,
    reconciles_deleting: u64,
    retained_volumes: u64,
    deleted_volumes: u64,
}

struct Run {
    /// Dropped before the namespace (fields drop in order): see its Drop.
    ctl: RunningController,
    ns: TestNamespace,
    gameservers: Api<DynamicObject>,
    requests: Requests,
    tally: Mutex<Tally>,
}

impl Run {
    fn reconciles(&self) -> u64 {
        self.ctl.counted("mettaton_reconciles_total")
    }

    fn refusals(&self) -> u64 {
        self.ctl.counted("mettaton_reconcile_errors_total{reason=\"BackendRefused\"}")
    }

    /// Sends one case and checks the API server's answer; a valid server
    /// joins the batch, which is checked once full.
    async fn check(&self, case: Case) -> Result<(), TestCaseError> {
        let n = {
            let mut t = self.tally.lock().unwrap();
            if !t.failures.is_empty() {
                return Ok(());
            }
            t.sent += 1;
            t.sent
        };
        let manifest = case.manifest(n);
        let object: DynamicObject = serde_json::from_value(manifest.clone()).unwrap();
        let shown = serde_json::to_string_pretty(&manifest).unwrap();
        let answer = self.gameservers.create(&PostParams::default(), &object).await;
        match (answer, &case.broken) {
            (Err(kube::Error::Api(status)), Some((what, fields))) => {
                let names = |f: &String| status.message.contains(f.as_str());
                if status.code != 422 || !fields.iter().all(names) {
                    return Err(TestCaseError::fail(format!(
                        "{what}: refused without naming {fields:?}: HTTP {} {}\nmanifest: {shown}",
                        status.code, status.message
                    )));
                }
                let mut t = self.tally.lock().unwrap();
                t.refused += 1;
                *t.by_kind.entry(what).or_default() += 1;
            }
            (Ok(created), Some((what, fields))) => {
                let _ = self.gameservers.delete(&created.name_any(), &DeleteParams::default()).await;
                return Err(TestCaseError::fail(format!(
                    "{what}: accepted, but it must be refused naming {fields:?}\nmanifest: {shown}"
                )));
            }
            (Err(e), None) => {
                return Err(TestCaseError::fail(format!("a valid manifest was refused: {e}\nmanifest: {shown}")));
            }
            (Err(e), Some((what, _))) => {
                return Err(TestCaseError::fail(format!("{what}: not an API refusal: {e}\nmanifest: {shown}")));
            }
            (Ok(created), None) => {
                let spec = &created.data["spec"];
                for unknown in ["hostNetwork", "serviceAccountName", "privileged"] {
                    prop_assert!(spec.get(unknown).is_none(), "unknown field {} kept: {}", unknown, shown);
                }
                let stopped = spec["state"] == "Stopped";
                let want = match spec["image"].as_str() {
                    _ if stopped => Phase::Stopped,
                    Some(NEVER_READY) => Phase::Failed,
                    _ => Phase::Running,
                };
                let reclaim = spec["storage"]["reclaimPolicy"].as_str().map(str::to_string);
                let full = {
                    let mut t = self.tally.lock().unwrap();
                    t.accepted += 1;
                    t.batch.push(Accepted { name: created.name_any(), manifest, want, reclaim });
                    t.batch.len() >= BATCH
                };
                if full {
                    self.settle_batch().await;
                }
            }
        }
        Ok(())
    }

    /// Checks the batch of valid servers (see the module documentation),
    /// deletes them, and records any failure.
    async fn settle_batch(&self) {
        let batch = std::mem::take(&mut self.tally.lock().unwrap().batch);
        if batch.is_empty() {
            return;
        }
        if let Err(failure) = self.settle(&batch).await {
            self.tally.lock().unwrap().failures.push(failure);
        }
    }

    async fn settle(&self, batch: &[Accepted]) -> Result<(), String> {
        let api = self.ns.api::<GameServer>();
        let (reconciles_at_start, writes_at_start) = self.tally.lock().unwrap().mark;
        let show = |a: &Accepted| serde_json::to_string_pretty(&a.manifest).unwrap();

        // Every server settles where its spec says, with a fresh status.
        let deadline = Instant::now() + WAIT;
        let mut pending: Vec<&Accepted> = batch.iter().collect();
        while !pending.is_empty() {
            let list = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let by_name: BTreeMap<String, GameServer> = list.items.into_iter().map(|g| (g.name_any(), g)).collect();
            pending.retain(|a| {
                let Some(gs) = by_name.get(&a.name) else { return true };
                let status = gs.status.clone().unwrap_or_default();
                let fresh = status.observed_generation == gs.metadata.generation;
                let ready = condition_status(gs, conditions::READY).as_deref() == Some("True");
                !(fresh && status.phase == Some(a.want) && ready == (a.want == Phase::Running))
            });
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let a = pending[0];
                let gs = by_name.get(&a.name);
                let events = self.events_of(&a.name).await;
                return Err(format!(
                    "{} of {} servers did not settle; {} wants {:?}, has status {:#?}\nevents: {events:?}\nmanifest: {}",
                    pending.len(),
                    batch.len(),
                    a.name,
                    a.want,
                    gs.and_then(|g| g.status.clone()),
                    show(a)
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        // No child was refused by the API server.
        for a in batch {
            let events = self.events_of(&a.name).await;
            if events.iter().any(|(reason, _)| reason == "ApplyFailed") {
                return Err(format!("{} had a child refused: {events:?}\nmanifest: {}", a.name, show(a)));
            }
            let deployment = self.ns.api::<Deployment>().get(&a.name).await.map_err(|e| e.to_string())?;
            let pod = deployment.spec.unwrap().template.spec.unwrap();
            if pod.host_network.is_some() || pod.service_account_name.is_some() {
                return Err(format!("{}: host network or service account in the pod\nmanifest: {}", a.name, show(a)));
            }
        }
        if self.refusals() > 0 {
            return Err(format!("the controller counted {} BackendRefused errors", self.refusals()));
        }

        // Quiet once settled: a window of 3 s with no reconcile and no write.
        // A controller that loops never gets one.
        let quiet = |what: &'static str| async move {
            let started = Instant::now();
            loop {
                let (r, w) = (self.reconciles(), self.requests.writes().len());
                tokio::time::sleep(Duration::from_secs(3)).await;
                let (r2, w2) = (self.reconciles(), self.requests.writes().len());
                if r2 == r && w2 == w {
                    return Ok(());
                }
                if started.elapsed() > Duration::from_secs(60) {
                    return Err(format!(
                        "{what}: the controller never went quiet: {} reconciles and {} writes in the last 3 s: {:?}",
                        r2 - r,
                        w2 - w,
                        &self.requests.writes()[w..]
                    ));
                }
            }
        };
        quiet("settled").await?;
        let (reconciles, writes) = (self.reconciles(), self.requests.writes().len());
        {
            let mut t = self.tally.lock().unwrap();
            t.batches += 1;
            t.reconciles_settling += reconciles - reconciles_at_start;
            t.writes_settling += (writes - writes_at_start) as u64;
        }

        // A reconcile of a settled server (its metadata touched) writes nothing.
        let touch = Patch::Merge(json!({ "metadata": { "annotations": { "test/touched": "1" } } }));
        for a in batch {
            api.patch(&a.name, &PatchParams::default(), &touch).await.map_err(|e| e.to_string())?;
        }
        let reconciled = eventually("the touched servers reconciled", WAIT, || async {
            let done = self.reconciles() - reconciles;
            if done >= batch.len() as u64 { Ok(done) } else { Err(done) }
        })
        .await;
        quiet("touched").await?;
        let touched_writes = self.requests.writes()[writes..].to_vec();
        if !touched_writes.is_empty() {
            return Err(format!(
                "{reconciled} reconciles of settled servers wrote {touched_writes:?}\nmanifests: {}",
                batch.iter().map(show).collect::<Vec<_>>().join("\n")
            ));
        }

        // Deleted: gone, volumes kept or erased as their policy says.
        let reconciles_before_deleting = self.reconciles();
        for a in batch {
            api.delete(&a.name, &DeleteParams::default()).await.map_err(|e| e.to_string())?;
        }
        let names: Vec<&str> = batch.iter().map(|a| a.name.as_str()).collect();
        eventually("the batch deleted", WAIT, || async {
            let left: Vec<String> = api
                .list(&ListParams::default())
                .await
                .map_err(|e| vec![e.to_string()])?
                .items
                .into_iter()
                .map(|g| g.name_any())
                .filter(|n| names.contains(&n.as_str()))
                .collect();
            if left.is_empty() { Ok(()) } else { Err(left) }
        })
        .await;
        {
            let mut t = self.tally.lock().unwrap();
            t.mark = (self.reconciles(), self.requests.writes().len());
            t.reconciles_deleting += t.mark.0 - reconciles_before_deleting;
        }
        let claims = self.ns.api::<PersistentVolumeClaim>();
        for a in batch.iter().filter(|a| !a.manifest["spec"]["storage"].is_null()) {
            let claim_name = format!("{}-data", a.name);
            if a.reclaim.as_deref() == Some("Delete") {
                eventually("a Delete volume erased", WAIT, || async {
                    match claims.get_opt(&claim_name).await {
                        Ok(None) => Ok(()),
                        Ok(Some(c)) if c.metadata.deletion_timestamp.is_some() => Ok(()),
                        other => Err(format!("{:?}", other.map(|c| c.map(|c| c.name_any())))),
                    }
                })
                .await;
                self.tally.lock().unwrap().deleted_volumes += 1;
            } else {
                let claim = claims.get_opt(&claim_name).await.map_err(|e| e.to_string())?;
                match claim {
                    Some(c) if c.metadata.deletion_timestamp.is_none() && c.owner_references().is_empty() => {}
                    other => {
                        return Err(format!(
                            "{}: its Retain volume was not kept and released: {:?}\nmanifest: {}",
                            a.name,
                            other.map(|c| (c.metadata.deletion_timestamp, c.metadata.owner_references)),
                            show(a)
                        ));
                    }
                }
                self.tally.lock().unwrap().retained_volumes += 1;
            }
        }
        Ok(())
    }

    async fn events_of(&self, name: &str) -> Vec<(String, String)> {
        self.ns
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_manifests_are_refused_naming_the_field_or_accepted_and_converge() {
    ensure_crd().await;
    let ns = TestNamespace::new("bad-input").await;
    let (client, requests) = counting_client().await;
    let ctl = RunningController::start(&ns, client.clone(), client);
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("mettaton.dev", "v1alpha1", "GameServer"));
    let gameservers = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let run = Run { gameservers, requests, ctl, ns, tally: Mutex::default() };

    let cases = std::env::var("MTN_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 256, ..Config::default() };
    let mut runner = match std::env::var("MTN_PROPTEST_SEED").ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(seed) => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
        }
        None => TestRunner::new(config),
    };
    let started = Instant::now();
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| runner.run(&any_case(), |case| handle.block_on(run.check(case))));
    if let Err(e) = result {
        panic!("{e}");
    }
    run.settle_batch().await;
    let tally = std::mem::take(&mut *run.tally.lock().unwrap());
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n\n"));

    // Never panicked: the controller still runs and serves a new server.
    assert!(run.ctl.is_running(), "the controller's task ended");
    let api = run.ns.api::<GameServer>();
    let last = json!({ "image": "mettaton.test/game:1", "ports": [{ "name": "game", "containerPort": 7777 }] });
    api.create(&PostParams::default(), &game_server("last", last)).await.unwrap();
    wait_ready(&api, "last", WAIT).await;
    assert_eq!(run.refusals(), 0, "no child was ever refused");

    eprintln!(
        "bad input: {} manifests in {:.0?}: {} refused naming the field, {} accepted and converged in {} batches \
         (per accepted server: {:.1} reconciles and {:.1} writes from creation to settled, then none; \
         {:.1} reconciles to delete it); {} requests from the controller in all; volumes: {} retained, {} erased; \
         refusals by kind: {:?}",
        tally.sent,
        started.elapsed(),
        tally.refused,
        tally.accepted,
        tally.batches,
        tally.reconciles_settling as f64 / tally.accepted.max(1) as f64,
        tally.writes_settling as f64 / tally.accepted.max(1) as f64,
        tally.reconciles_deleting as f64 / tally.accepted.max(1) as f64,
        run.requests.total(),
        tally.retained_volumes,
        tally.deleted_volumes,
        tally.by_kind,
    );
    assert!(
        tally.accepted > 0 && tally.refused > tally.accepted,
        "mostly broken, some valid: {}/{}",
        tally.refused,
        tally.accepted
    );
    run.ctl.stop().await;
}
