//! A Pterodactyl/Pelican egg read into one shape, whatever its format:
//! `PTDL_v1` (an `images` list), `PTDL_v2` and `PLCN_v1`/`v2` (a
//! `docker_images` map, rules as a pipe string or a list), `PLCN_v3`
//! (`startup_commands` instead of `startup`), in JSON or YAML, with the
//! `config.*` sections given as JSON strings (as the panels export them) or as
//! maps. Pure: text in, [`Egg`] or the field that is wrong out.
//!
//! What an egg holds that mettaton does not carry over is listed in
//! [`Egg::left_out`], field by field, never dropped silently.

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::rules::Rules;
use crate::api::{ConfigParser, EggFormat};

/// The formats an egg's `meta.version` names.
const FORMATS: [(&str, EggFormat); 5] = [
    ("PTDL_v1", EggFormat::PTDL_v1),
    ("PTDL_v2", EggFormat::PTDL_v2),
    ("PLCN_v1", EggFormat::PLCN_v1),
    ("PLCN_v2", EggFormat::PLCN_v2),
    ("PLCN_v3", EggFormat::PLCN_v3),
];

/// One config file an egg edits before every start.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigFile {
    /// Relative to the server's files.
    pub path: String,
    pub parser: ConfigParser,
    /// The keys to set (dotted, with `*` for every element), in the egg's
    /// order, each with a value, or a map of conditional replacements (the
    /// value found → the value to put), as Wings takes them.
    pub find: Vec<(String, Value)>,
}

/// The script an egg runs once to install the server's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    pub image: String,
    pub entrypoint: String,
    pub script: String,
}

/// A variable the server's command, files and script are filled in with.
#[derive(Clone, Debug)]
pub struct Variable {
    /// The environment variable (`env_variable`).
    pub env: String,
    /// What users read (`name`).
    pub title: String,
    pub description: String,
    pub default: String,
    pub user_viewable: bool,
    pub user_editable: bool,
    /// The rules as the egg writes them, pipes joined.
    pub rules_text: String,
    pub rules: Rules,
}

/// An egg, read.
#[derive(Clone, Debug)]
pub struct Egg {
    pub format: EggFormat,
    pub name: String,
    pub author: String,
    pub description: String,
    /// The images to run the game in, as (label, image), the first the default.
    pub images: Vec<(String, String)>,
    /// The start commands, as (label, command), the first the default; one
    /// labelled `Default` before `PLCN_v3`.
    pub startup: Vec<(String, String)>,
    /// Lines that tell the game is up (`config.startup.done`).
    pub done: Vec<String>,
    /// The stop: a console line, or `^C` / a signal name.
    pub stop: Option<String>,
    pub files: Vec<ConfigFile>,
    pub install: Option<Install>,
    pub variables: Vec<Variable>,
    pub features: Vec<String>,
    pub file_denylist: Vec<String>,
    /// Where the egg is published, to refresh it from (`meta.update_url`).
    pub update_url: Option<String>,
    /// What the egg holds that is not carried over, as `field: why`.
    pub left_out: Vec<String>,
}

/// An egg's field that cannot be read: its path and why.
type Problem = String;

impl Egg {
    /// Reads an egg, JSON or YAML.
    pub fn parse(text: &str) -> Result<Egg, Problem> {
        // serde_json's maps are sorted: the order of images and start
        // commands (the first is the default) is read on its own.
        let (doc, order): (Value, Order) = match serde_json::from_str(text) {
            Ok(v) => (v, serde_json::from_str(text).map_err(|e| e.to_string())?),
            Err(json) => (
                serde_yaml::from_str(text)
                    .map_err(|yaml| format!("the egg is neither JSON ({json}) nor YAML ({yaml})"))?,
                serde_yaml::from_str(text).map_err(|e| e.to_string())?,
            ),
        };
        let root = doc.as_object().ok_or("the egg is not an object")?;
        let mut left_out = Vec::new();

        let version = path_str(root, &["meta", "version"])
            .ok_or("meta.version: missing (PTDL_v1, PTDL_v2, PLCN_v1, PLCN_v2 or PLCN_v3)")?;
        let format = FORMATS.iter().find(|(n, _)| *n == version).map(|(_, f)| *f).ok_or_else(|| {
            let known: Vec<&str> = FORMATS.iter().map(|(n, _)| *n).collect();
            format!("meta.version: `{version}` is not a format mettaton reads ({})", known.join(", "))
        })?;

        let images = in_order(images(root, format)?, &order.docker_images);
        let startup = in_order(startup(root, format)?, &order.startup_commands);
        let config = root.get("config").map(|c| object(c, "config")).transpose()?.cloned().unwrap_or_default();
        let started = section(&config, "startup")?;
        let done = match started.get("done") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| v.as_str().map(str::to_string).ok_or(format!("config.startup.done[{i}]: not a string")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("config.startup.done: neither a string nor a list of strings".into()),
        };
        for key in started.keys().filter(|k| *k != "done") {
            left_out.push(format!("config.startup.{key}: not used by mettaton (only `done` is)"));
        }
        let stop = match config.get("stop") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("config.stop: not a string".into()),
        };
        let logs = section(&config, "logs")?;
        if !logs.is_empty() {
            left_out.push("config.logs: the game's log is its output, kept by the runtime".into());
        }
        let files = files_in_order(config_files(&section(&config, "files")?)?, &order.config.files);
        if let Some(extends) = config.get("extends").filter(|v| !v.is_null()) {
            left_out.push(format!("config.extends: `{extends}`: an egg extending another is not resolved"));
        }

        let install = install(root)?;
        let variables = variables(root)?;
        left_out.extend(unread(root, &config));
        for v in &variables {
            for note in v.rules.notes() {
                left_out.push(format!("variables[{}].rules: {note}", v.env));
            }
        }
        let features = strings(root.get("features"), "features")?;
        for f in &features {
            left_out.push(format!("features: `{f}`: a panel feature mettaton does not have"));
        }
        let file_denylist = strings(root.get("file_denylist"), "file_denylist")?;
        if !file_denylist.is_empty() {
            left_out.push("file_denylist: mettaton has no file manager to deny files in".into());
        }
        Ok(Egg {
            format,
            name: str_field(root, "name")?.ok_or("name: missing")?,
            author: str_field(root, "author")?.unwrap_or_default(),
            description: str_field(root, "description")?.unwrap_or_default(),
            images,
            startup,
            done,
            stop,
            files,
            install,
            variables,
            features,
            file_denylist,
            update_url: path_str(root, &["meta", "update_url"]).map(str::to_string),
            left_out,
        })
    }
}

/// The keys of the maps whose order means something, as the egg has them.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Order {
    docker_images: Keys,
    startup_commands: Keys,
    config: ConfigOrder,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConfigOrder {
    files: FilesOrder,
}

/// The config files' paths and each one's `find` keys, in the egg's order;
/// `config.files` a map or a JSON string holding one.
#[derive(Default)]
struct FilesOrder(Vec<(String, Keys)>);

#[derive(Default)]
struct FileOrder {
    find: Keys,
}

impl<'de> Deserialize<'de> for FilesOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FilesOrder, D::Error> {
        struct FilesVisitor;
        impl<'de> Visitor<'de> for FilesVisitor {
            type Value = FilesOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map, a JSON string, or anything else (then no order)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FilesOrder, A::Error> {
                let mut files = Vec::new();
                while let Some((path, file)) = map.next_entry::<String, FileOrderOrNot>()? {
                    files.push((path, file.0.find));
                }
                Ok(FilesOrder(files))
            }
            fn visit_str<E>(self, text: &str) -> Result<FilesOrder, E> {
                Ok(serde_json::from_str(text).unwrap_or_default())
            }
            fn visit_unit<E>(self) -> Result<FilesOrder, E> {
                Ok(FilesOrder::default())
            }
            fn visit_none<E>(self) -> Result<FilesOrder, E> {
                Ok(FilesOrder::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<FilesOrder, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FilesOrder::default())
            }
        }
        d.deserialize_any(FilesVisitor)
    }
}

/// A file's `find` keys in order; nothing when the entry is not a map (the
/// reader proper names the field then).
#[derive(Default)]
struct FileOrderOrNot(FileOrder);

impl<'de> Deserialize<'de> for FileOrderOrNot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FileOrderOrNot, D::Error> {
        struct FileVisitor;
        impl<'de> Visitor<'de> for FileVisitor {
            type Value = FileOrderOrNot;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map, or anything else (then no order)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileOrderOrNot, A::Error> {
                let mut find = Keys::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "find" {
                        find = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(FileOrderOrNot(FileOrder { find }))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<FileOrderOrNot, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FileOrderOrNot::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<FileOrderOrNot, E> {
                Ok(FileOrderOrNot::default())
            }
            fn visit_unit<E>(self) -> Result<FileOrderOrNot, E> {
                Ok(FileOrderOrNot::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<FileOrderOrNot, E> {
                Ok(FileOrderOrNot::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<FileOrderOrNot, E> {
                Ok(FileOrderOrNot::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<FileOrderOrNot, E> {
                Ok(FileOrderOrNot::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<FileOrderOrNot, E> {
                Ok(FileOrderOrNot::default())
            }
        }
        d.deserialize_any(FileVisitor)
    }
}

#[derive(Default)]
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map, or anything else (then no order)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
            fn visit_unit<E>(self) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_none<E>(self) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Keys::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Keys, E> {
                Ok(Keys::default())
            }
        }
        d.deserialize_any(KeysVisitor)
    }
}

/// `labelled` sorted as `order` lists the labels (those it does not list
/// after, as they were).
fn in_order(mut labelled: Vec<(String, String)>, order: &Keys) -> Vec<(String, String)> {
    labelled.sort_by_key(|(label, _)| order.0.iter().position(|k| k == label).unwrap_or(usize::MAX));
    labelled
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, Problem> {
    v.as_object().ok_or_else(|| format!("{field}: not an object"))
}

fn path_str<'a>(root: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut at = root;
    for p in parents {
        at = at.get(*p)?.as_object()?;
    }
    at.get(*last)?.as_str()
}

fn str_field(root: &Map<String, Value>, field: &str) -> Result<Option<String>, Problem> {
    match root.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{field}: not a string")),
    }
}

fn strings(v: Option<&Value>, field: &str) -> Result<Vec<String>, Problem> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_str().map(str::to_string).ok_or(format!("{field}[{i}]: not a string")))
            .collect(),
        Some(_) => Err(format!("{field}: not a list")),
    }
}

/// A `config.*` section: a map, or a JSON string holding one (the panels'
/// export), or `[]` for none (PHP's empty array).
fn section(config: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, Problem> {
    let field = format!("config.{key}");
    let value = match config.get(key) {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).map_err(|e| format!("{field}: a string that is not JSON: {e}"))?
        }
        Some(v) => v.clone(),
    };
    match value {
        Value::Object(m) => Ok(m),
        Value::Array(a) if a.is_empty() => Ok(Map::new()),
        _ => Err(format!("{field}: not a map")),
    }
}

fn images(root: &Map<String, Value>, format: EggFormat) -> Result<Vec<(String, String)>, Problem> {
    let mut out = Vec::new();
    if let Some(map) = root.get("docker_images").filter(|v| !v.is_null()) {
        for (label, image) in object(map, "docker_images")? {
            let image = image.as_str().ok_or(format!("docker_images.{label}: not a string"))?;
            out.push((label.clone(), image.to_string()));
        }
    }
    if let Some(list) = root.get("images").filter(|v| !v.is_null()) {
        for image in strings(Some(list), "images")? {
            out.push((image.clone(), image));
        }
    }
    if let Some(image) = root.get("image").and_then(Value::as_str) {
        out.push((image.to_string(), image.to_string()));
    }
    if out.is_empty() {
        let field = if format == EggFormat::PTDL_v1 { "images" } else { "docker_images" };
        return Err(format!("{field}: the egg names no image to run the game in"));
    }
    Ok(out)
}

fn startup(root: &Map<String, Value>, format: EggFormat) -> Result<Vec<(String, String)>, Problem> {
    if let Some(map) = root.get("startup_commands").filter(|v| !v.is_null()) {
        let mut out = Vec::new();
        for (label, command) in object(map, "startup_commands")? {
            let command = command.as_str().ok_or(format!("startup_commands.{label}: not a string"))?;
            out.push((label.clone(), command.to_string()));
        }
        if out.is_empty() {
            return Err("startup_commands: empty".into());
        }
        return Ok(out);
    }
    let field = if format == EggFormat::PLCN_v3 { "startup_commands" } else { "startup" };
    match str_field(root, "startup")? {
        Some(s) if !s.trim().is_empty() => Ok(vec![("Default".to_string(), s)]),
        _ => Err(format!("{field}: the egg has no start command")),
    }
}

/// The files and their `find` keys sorted as the egg has them (the reader's
/// JSON maps are sorted).
fn files_in_order(mut files: Vec<ConfigFile>, order: &FilesOrder) -> Vec<ConfigFile> {
    let at = |path: &str| order.0.iter().position(|(p, _)| p == path);
    files.sort_by_key(|f| at(&f.path).unwrap_or(usize::MAX));
    for f in &mut files {
        if let Some(i) = at(&f.path) {
            let keys = &order.0[i].1;
            f.find.sort_by_key(|(k, _)| keys.0.iter().position(|o| o == k).unwrap_or(usize::MAX));
        }
    }
    files
}

fn config_files(files: &Map<String, Value>) -> Result<Vec<ConfigFile>, Problem> {
    let mut out = Vec::new();
    for (path, file) in files {
        let field = format!("config.files.{path}");
        let file = object(file, &field)?;
        let parser = match file.get("parser").and_then(Value::as_str) {
            Some("file") => ConfigParser::File,
            Some("properties") => ConfigParser::Properties,
            Some("yaml" | "yml") => ConfigParser::Yaml,
            Some("ini") => ConfigParser::Ini,
            Some("json") => ConfigParser::Json,
            Some("xml") => ConfigParser::Xml,
            Some(other) => {
                return Err(format!(
                    "{field}.parser: `{other}` is not a parser (file, properties, yaml, yml, ini, json, xml)"
                ));
            }
            None => return Err(format!("{field}.parser: missing")),
        };
        let find = match file.get("find") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.is_empty() => Vec::new(),
            Some(v) => object(v, &format!("{field}.find"))?.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        out.push(ConfigFile { path: path.clone(), parser, find });
    }
    Ok(out)
}

fn install(root: &Map<String, Value>) -> Result<Option<Install>, Problem> {
    let Some(installation) = root.get("scripts").and_then(|s| s.get("installation")).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let i = object(installation, "scripts.installation")?;
    let get = |key: &str| match i.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("scripts.installation.{key}: not a string")),
    };
    let script = get("script")?;
    if script.trim().is_empty() {
        return Ok(None);
    }
    let image = get("container")?;
    if image.trim().is_empty() {
        return Err("scripts.installation.container: a script needs an image to run in".into());
    }
    let entrypoint = match get("entrypoint")? {
        e if e.trim().is_empty() => "bash".to_string(),
        e => e,
    };
    Ok(Some(Install { image, entrypoint, script: script.replace("\r\n", "\n") }))
}

fn variables(root: &Map<String, Value>) -> Result<Vec<Variable>, Problem> {
    let list = match root.get("variables") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("variables: not a list".into()),
    };
    let mut sorted: Vec<(i64, usize, &Value)> = list
        .iter()
        .enumerate()
        .map(|(i, v)| (v.get("sort").and_then(Value::as_i64).unwrap_or(i64::MAX), i, v))
        .collect();
    // Pelican's `sort` orders variables for users; without it, the egg's order.
    sorted.sort_by_key(|(sort, i, _)| (*sort, *i));
    let mut out: Vec<Variable> = Vec::new();
    for (_, i, v) in sorted {
        let field = format!("variables[{i}]");
        let v = object(v, &field)?;
        let text = |key: &str| -> Result<String, Problem> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                // Exports hold numbers where a string was meant (a default of 0).
                Some(Value::Number(n)) => Ok(n.to_string()),
                Some(Value::Bool(b)) => Ok(if *b { "1" } else { "0" }.to_string()),
                Some(_) => Err(format!("{field}.{key}: not a string")),
            }
        };
        let flag = |key: &str| -> bool {
            match v.get(key) {
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) => n.as_i64() == Some(1),
                Some(Value::String(s)) => s == "1" || s == "true",
                _ => false,
            }
        };
        let env = text("env_variable")?;
        if env.is_empty()
            || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || env.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("{field}.env_variable: `{env}` is not an environment variable name"));
        }
        if out.iter().any(|o| o.env == env) {
            return Err(format!("{field}.env_variable: `{env}` is defined twice"));
        }
        let (rules_text, rules) = match v.get("rules") {
            None | Some(Value::Null) => (String::new(), Rules::parse_list::<&str>(&[])),
            Some(Value::String(s)) => (s.clone(), Rules::parse_str(s)),
            Some(Value::Array(list)) => {
                let list: Vec<String> = list
                    .iter()
                    .enumerate()
                    .map(|(j, r)| r.as_str().map(str::to_string).ok_or(format!("{field}.rules[{j}]: not a string")))
                    .collect::<Result<_, _>>()?;
                (list.join("|"), Rules::parse_list(&list))
            }
            Some(_) => return Err(format!("{field}.rules: neither a string nor a list")),
        };
        let rules = rules.map_err(|e| format!("{field}.rules ({env}): {e}"))?;
        out.push(Variable {
            env,
            title: text("name")?,
            description: text("description")?.replace("\r\n", "\n"),
            default: text("default_value")?,
            user_viewable: flag("user_viewable"),
            user_editable: flag("user_editable"),
            rules_text,
            rules,
        });
    }
    Ok(out)
}

/// What the egg holds beside what the reader takes, as `field: why`: keys
/// of the egg, its `meta`, `config`, `scripts`, `scripts.installation`, its
/// config files and its variables (a key of the variables once, as
/// `variables[*].KEY`, with the variables that have it) that mettaton does
/// not read, null ones aside.
fn unread(root: &Map<String, Value>, config: &Map<String, Value>) -> Vec<String> {
    fn why(key: &str) -> &'static str {
        match key {
            "_comment" => "the panel's note on every export",
            "exported_at" => "when the panel exported the egg",
            "uuid" | "id" => "the egg's id in a panel",
            "tags" => "the panel's tags",
            "field_type" => "the panel's input type",
            _ => "not read by mettaton",
        }
    }
    fn extra<'a>(map: &'a Map<String, Value>, read: &[&str]) -> impl Iterator<Item = &'a String> {
        map.iter().filter(move |(k, v)| !read.contains(&k.as_str()) && !v.is_null()).map(|(k, _)| k)
    }
    let mut out = Vec::new();
    let top = [
        "meta",
        "name",
        "author",
        "description",
        "docker_images",
        "images",
        "image",
        "startup",
        "startup_commands",
        "config",
        "scripts",
        "variables",
        "features",
        "file_denylist",
    ];
    for key in extra(root, &top) {
        out.push(format!("{key}: {}", why(key)));
    }
    fn nested(out: &mut Vec<String>, field: &str, map: Option<&Value>, read: &[&str]) {
        if let Some(map) = map.and_then(Value::as_object) {
            for key in extra(map, read) {
                out.push(format!("{field}.{key}: {}", why(key)));
            }
        }
    }
    nested(&mut out, "meta", root.get("meta"), &["version", "update_url"]);
    nested(&mut out, "scripts", root.get("scripts"), &["installation"]);
    nested(
        &mut out,
        "scripts.installation",
        root.get("scripts").and_then(|s| s.get("installation")),
        &["script", "container", "entrypoint"],
    );
    let config_read = ["startup", "stop", "logs", "files", "extends"];
    for key in extra(config, &config_read) {
        out.push(format!("config.{key}: {}", why(key)));
    }
    if let Ok(files) = section(config, "files") {
        for (path, file) in &files {
            nested(&mut out, &format!("config.files.{path}"), Some(file), &["parser", "find"]);
        }
    }
    let read =
        ["env_variable", "name", "description", "default_value", "user_viewable", "user_editable", "rules", "sort"];
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for v in root.get("variables").and_then(Value::as_array).into_iter().flatten() {
        let Some(v) = v.as_object() else { continue };
        let env = v.get("env_variable").and_then(Value::as_str).unwrap_or_default().to_string();
        for key in extra(v, &read) {
            match keys.iter_mut().find(|(k, _)| k == key) {
                Some((_, envs)) => envs.push(env.clone()),
                None => keys.push((key.clone(), vec![env.clone()])),
            }
        }
    }
    for (key, envs) in keys {
        out.push(format!("variables[*].{key}: {} ({})", why(&key), envs.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests;
