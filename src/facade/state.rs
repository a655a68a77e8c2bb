//! The facade's saved state: which game servers it spawned, with their specs,
//! so that a new process can pick them up again and tell what changed on the
//! swarm meanwhile. Saved atomically: a crash mid-write leaves the previous
//! file whole, never a torn one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::{GameServerSpec, GameTemplateSpec, TemplateKind};

/// Version of the file format, written into the file.
const FORMAT: u32 = 1;

/// Everything the facade remembers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(default)]
    pub format: u32,
    /// Servers by id (`namespace/name`).
    #[serde(default)]
    pub servers: BTreeMap<String, SavedServer>,
}

/// One server the facade spawned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedServer {
    pub name: String,
    pub namespace: String,
    pub spec: GameServerSpec,
    /// When it was spawned, RFC 3339.
    pub spawned_at: String,
    /// The template the server is made from (`spec.template`), as it was
    /// given when the server was last applied: what plans it again after a
    /// restart of the process, with no template given then. Absent for a
    /// server without one (and in the files written before templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// The manifest's `mettaton.dev/reinstall` annotation when it had one:
    /// the token of the template's install script
    /// ([`crate::plan::install_token`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinstall: Option<String>,
}

/// A game template as the facade keeps it for a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub kind: TemplateKind,
    pub name: String,
    pub spec: GameTemplateSpec,
}

impl SavedServer {
    pub fn id(&self) -> String {
        server_id(&self.namespace, &self.name)
    }
}

/// The id of a server: `namespace/name`.
pub fn server_id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// A failure to read or write the state file, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file exists but is not a state file. It is left as it is, so that
    /// nothing it holds is lost; move it away to start afresh.
    #[error("state file {path} is not valid ({reason}); it was left untouched")]
    Corrupt { path: PathBuf, reason: String },
    #[error("state file {path} has format {found}, newer than this mettaton understands ({FORMAT})")]
    TooNew { path: PathBuf, found: u32 },
    #[error("cannot write state file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Reads the state; a missing file is an empty state.
pub fn load(path: &Path) -> Result<State, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State { format: FORMAT, ..State::default() }),
        Err(source) => return Err(StateError::Read { path: path.to_path_buf(), source }),
    };
    let state: State = serde_json::from_str(&text)
        .map_err(|e| StateError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })?;
    if state.format > FORMAT {
        return Err(StateError::TooNew { path: path.to_path_buf(), found: state.format });
    }
    Ok(state)
}

/// Writes the state atomically: to a temporary file beside it, flushed to
/// disk, then renamed over the old one (and the directory flushed, so the
/// rename itself survives a crash).
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    let err = |source| StateError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut state = state.clone();
    state.format = FORMAT;
    let bytes = serde_json::to_vec_pretty(&state).expect("the state serializes");
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

/// What a new process finds when it compares its saved state with the swarm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Saved servers still on the swarm: picked up again.
    pub picked_up: Vec<String>,
    /// Saved servers that are gone from the swarm.
    pub vanished: Vec<String>,
    /// Servers managed by mettaton on the swarm that the state does not know
    /// (spawned by another process, or the state file was lost).
    pub unknown: Vec<String>,
}

/// Compares the saved servers with the ids of the managed servers on the swarm.
pub fn compare(state: &State, on_swarm: &[String]) -> Recovery {
    let mut recovery = Recovery::default();
    for id in state.servers.keys() {
        if on_swarm.contains(id) {
            recovery.picked_up.push(id.clone());
        } else {
            recovery.vanished.push(id.clone());
        }
    }
    let mut unknown: Vec<String> = on_swarm.iter().filter(|id| !state.servers.contains_key(*id)).cloned().collect();
    unknown.sort();
    unknown.dedup();
    recovery.unknown = unknown;
    recovery
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(name: &str) -> SavedServer {
        SavedServer {
            name: name.into(),
            namespace: "default".into(),
            spec: serde_json::from_value(serde_json::json!({
                "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }]
            }))
            .unwrap(),
            spawned_at: "2026-11-23T10:00:00Z".into(),
            template: None,
            reinstall: None,
        }
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mettaton-state-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let state = load(&dir().join("absent.json")).unwrap();
        assert!(state.servers.is_empty());
    }

    #[test]
    fn save_then_load_gives_the_same_state_and_leaves_no_temporary_file() {
        let d = dir();
        let path = d.join("state.json");
        let mut state = State::default();
        state.servers.insert("default/a".into(), saved("a"));
        save(&path, &state).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.servers, state.servers);
        assert_eq!(loaded.format, FORMAT);
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_torn_temporary_file_does_not_touch_the_saved_state() {
        // A crash mid-write leaves at most a temporary file beside the state.
        let d = dir();
        let path = d.join("state.json");
        let mut state = State::default();
        state.servers.insert("default/a".into(), saved("a"));
        save(&path, &state).unwrap();
        std::fs::write(d.join(".state.json.999.tmp"), b"{\"servers\": {\"default/b\"").unwrap();
        assert_eq!(load(&path).unwrap().servers, state.servers);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_and_is_left_alone() {
        let d = dir();
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("state.json");
        std::fs::write(&path, b"not json").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("state.json"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not json");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_newer_format_is_refused() {
        let d = dir();
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("state.json");
        std::fs::write(&path, br#"{"format": 99, "servers": {}}"#).unwrap();
        assert!(matches!(load(&path), Err(StateError::TooNew { found: 99, .. })));
        std::fs::remove_dir_all(d).unwrap();
    }

    /// A file written before templates (no `template`, no `reinstall`)
    /// still loads; a server with a template keeps it through a save.
    #[test]
    fn a_file_without_templates_loads_and_a_template_is_kept() {
        let d = dir();
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("state.json");
        let old = r#"{"format": 1, "servers": {"default/a": {"name": "a", "namespace": "default",
            "spec": {"image": "game:1", "ports": [{"name": "game", "containerPort": 7777}]},
            "spawnedAt": "2026-11-23T10:00:00Z"}}}"#;
        std::fs::write(&path, old).unwrap();
        let mut state = load(&path).unwrap();
        assert_eq!(state.servers["default/a"], saved("a"));
        let template: GameTemplateSpec = serde_json::from_value(serde_json::json!({
            "game": "arena",
            "images": [{ "name": "default", "image": "game:1" }],
            "startup": [{ "name": "default", "command": "/testgame --tcp {{PORT}}" }],
            "variables": [{ "env": "PORT", "default": "7777", "rules": "required|integer" }]
        }))
        .unwrap();
        let mut templated = saved("b");
        templated.template =
            Some(Template { kind: TemplateKind::ClusterGameTemplate, name: "arena".into(), spec: template });
        templated.reinstall = Some("2026-12-04T05:00:00Z".into());
        state.servers.insert("default/b".into(), templated.clone());
        save(&path, &state).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.servers["default/b"], templated);
        assert_eq!(loaded.servers["default/a"], saved("a"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("\"template\"").count(), 1, "absent where there is none: {text}");
        std::fs::remove_dir_all(d).unwrap();
    }

    /// RECOVERY_1_STATE_RECOVERY, TESTS_1_UNITS: the comparison of the saved
    /// state with the swarm.
    #[test]
    fn compare_sorts_servers_into_picked_up_vanished_and_unknown() {
        let mut state = State::default();
        for name in ["a", "b"] {
            state.servers.insert(server_id("default", name), saved(name));
        }
        let recovery = compare(&state, &["default/b".into(), "default/c".into(), "default/c".into()]);
        assert_eq!(recovery.picked_up, vec!["default/b"]);
        assert_eq!(recovery.vanished, vec!["default/a"]);
        assert_eq!(recovery.unknown, vec!["default/c"]);
    }
}
