//! The CRD's validation without an API server: a GameServer (as JSON) checked
//! against the `openAPIV3Schema` that [`GameServer::crd()`] generates, the very
//! schema the Kubernetes API server enforces, so that the controller's
//! backends and the swarm facade share one set of rules, written once in
//! `src/api.rs`.
//!
//! What is checked, as the API server does (apiextensions-apiserver):
//! - the structural schema: `type` (with `nullable` and
//!   `x-kubernetes-int-or-string`), `required`, `enum`, `pattern` (RE2, as
//!   Go's regexp), `minimum`/`maximum` (and their exclusive forms),
//!   `minLength`/`maxLength` (in characters), `minItems`/`maxItems`,
//!   `minProperties`/`maxProperties`, and the uniqueness of
//!   `x-kubernetes-list-type` `map` (by `x-kubernetes-list-map-keys`) and
//!   `set` lists; unknown fields are pruned and `default`s filled in first;
//! - every `x-kubernetes-validations` rule, evaluated with CEL (the `cel`
//!   crate), `self` bound to the node (the root sees `metadata.name` and
//!   `metadata.generateName`), with Kubernetes' CEL libraries the rules use:
//!   the strings extension (`split`, `trim`, ...) and the quantity library
//!   (`isQuantity`, `quantity`, `isLessThan`, `isGreaterThan`, `compareTo`,
//!   `sign`) on [`crate::quantity::Quantity`]. A rule that uses `oldSelf` is a
//!   transition rule: it applies on update only, where the old object has a
//!   value at the same place (object fields by name, map entries by key,
//!   `map` list items by their keys, `set` items by value), as on Kubernetes.
//!   As there, no rule runs while the object has a type error.
//!
//! Each problem names its field as the API server does (`spec.ports[0].name`,
//! `spec.nodeSelector[key]`, a rule's `fieldPath` after its node's path).
//!
//! Not covered: `format` (the API server checks only a few string formats;
//! mettaton's spec has none), CEL cost budgets (the API server checks them
//! when the CRD is created, which `tests/integration/gameserver_schema.rs`
//! does), `optionalOldSelf` (refused when the schema is compiled), ratcheting
//! (the API server lets an update keep a value that was already invalid), the
//! metadata checks the API server makes itself (the name as a DNS
//! subdomain), and status.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::extractors::This;
use cel::objects::{Key, Map, Opaque};
use cel::{Context, Env, ExecutionError, Program, Value as Cel};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::GameServer;
use crate::quantity::Quantity;

/// The GameServer CRD's schema and rules, compiled once.
pub static GAMESERVER: LazyLock<Validator> = LazyLock::new(|| {
    let crd = serde_json::to_value(GameServer::crd()).expect("the CRD serializes");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    Validator::new(schema).unwrap_or_else(|e| panic!("the GameServer CRD's schema does not compile: {e}"))
});

/// What is wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field, as the API server names it: `spec.ports[0].name`.
    pub field: String,
    /// What is wrong with it, as the API server says it.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.detail) } else { write!(f, "{}: {}", self.field, self.detail) }
    }
}

/// Which rules apply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A create: the schema and every rule but the transition rules.
    Create,
    /// An update: the schema and every rule, transition rules included.
    Update,
    /// The transition rules alone.
    Transition,
}

/// A compiled structural schema with its CEL rules.
pub struct Validator {
    root: Node,
    env: Arc<Env>,
}

impl Validator {
    /// Compiles an `openAPIV3Schema`: every rule parsed, every pattern checked.
    pub fn new(schema: &Value) -> Result<Validator, String> {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings).map_err(|e| format!("the strings extension: {e:?}"))?;
        let env = Arc::new(env);
        let root = Node::compile(schema, &env, "<root>")?;
        let v = Validator { root, env };
        v.check_patterns(&v.root, "<root>")?;
        Ok(v)
    }

    /// Every problem of a whole object on create (the rules at the root see
    /// its `metadata.name`).
    pub fn validate(&self, object: &Value) -> Vec<Problem> {
        self.run(&self.root, "", None, object, Mode::Create)
    }

    /// Every problem of a whole object updated from `old`: the schema, the
    /// rules and the transition rules.
    pub fn validate_update(&self, old: &Value, new: &Value) -> Vec<Problem> {
        self.run(&self.root, "", Some(old), new, Mode::Update)
    }

    /// Every problem of the object's `spec` alone, named `spec.…`.
    pub fn validate_spec(&self, spec: &Value) -> Vec<Problem> {
        self.run(self.spec_node(), "spec", None, spec, Mode::Create)
    }

    /// What the transition rules (those with `oldSelf`) refuse of a change of
    /// the `spec` from `old` to `new`.
    pub fn spec_transition_problems(&self, old: &Value, new: &Value) -> Vec<Problem> {
        self.run(self.spec_node(), "spec", Some(old), new, Mode::Transition)
    }

    fn spec_node(&self) -> &Node {
        self.root.properties.get("spec").expect("the schema has a spec")
    }

    fn run(&self, node: &Node, path: &str, old: Option<&Value>, new: &Value, mode: Mode) -> Vec<Problem> {
        let root = path.is_empty();
        let mut new = new.clone();
        node.prepare(&mut new, root);
        let old = old.map(|o| {
            let mut o = o.clone();
            node.prepare(&mut o, root);
            o
        });
        let mut out = Vec::new();
        let mut blocking = false;
        if mode != Mode::Transition {
            node.check(&new, path, &mut out, &mut blocking);
        }
        if blocking {
            out.push(Problem {
                field: path.to_string(),
                detail: "Invalid value: \"object\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
            });
            return out;
        }
        let mut context = Context::with_env(self.env.clone());
        quantity::register(&mut context);
        self.rules(&context, node, &new, old.as_ref(), path, mode, root, &mut out);
        out
    }

    /// The node's rules, then its children's.
    #[allow(clippy::too_many_arguments)]
    fn rules(
        &self,
        context: &Context,
        node: &Node,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        mode: Mode,
        root: bool,
        out: &mut Vec<Problem>,
    ) {
        if value.is_null() {
            return;
        }
        let applicable = |r: &&Rule| match mode {
            Mode::Create => !r.transition,
            Mode::Update => !r.transition || old.is_some_and(|o| !o.is_null()),
            Mode::Transition => r.transition && old.is_some_and(|o| !o.is_null()),
        };
        let rules: Vec<&Rule> = node.rules.iter().filter(applicable).collect();
        if !rules.is_empty() {
            let mut scope = context.new_inner_scope();
            scope.add_variable_from_value("self", to_cel(&for_cel(value, root)));
            if let Some(o) = old {
                scope.add_variable_from_value("oldSelf", to_cel(&for_cel(o, root)));
            }
            for rule in rules {
                if let Some(problem) = rule.evaluate(&scope, path) {
                    out.push(problem);
                }
            }
        }
        match value {
            Value::Object(fields) => {
                for (key, v) in fields {
                    let child = node.properties.get(key).or(node.additional.as_deref());
                    let Some(child) = child else { continue };
                    let at = if node.properties.contains_key(key) { join(path, key) } else { format!("{path}[{key}]") };
                    let before = old.and_then(|o| o.get(key));
                    self.rules(context, child, v, before, &at, mode, false, out);
                }
            }
            Value::Array(items) => {
                let Some(item) = node.items.as_deref() else { return };
                let olds = old.and_then(Value::as_array);
                for (i, v) in items.iter().enumerate() {
                    let before = olds.and_then(|olds| node.correlate(olds, v));
                    self.rules(context, item, v, before, &format!("{path}[{i}]"), mode, false, out);
                }
            }
            _ => {}
        }
    }

    /// Every `pattern` is a regular expression CEL's `matches` takes.
    fn check_patterns(&self, node: &Node, path: &str) -> Result<(), String> {
        if let Some(pattern) = &node.pattern {
            let context = Context::with_env(self.env.clone());
            pattern_matches(&context, pattern, "").map_err(|e| format!("{path}: pattern {pattern:?}: {e}"))?;
        }
        for (key, child) in &node.properties {
            self.check_patterns(child, &join(path, key))?;
        }
        for child in node.additional.iter().chain(node.items.iter()) {
            self.check_patterns(child, path)?;
        }
        Ok(())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// One node of the structural schema.
#[derive(Default)]
struct Node {
    type_: Option<String>,
    nullable: bool,
    int_or_string: bool,
    preserve_unknown: bool,
    required: Vec<String>,
    enum_: Option<Vec<Value>>,
    pattern: Option<String>,
    minimum: Option<(f64, bool)>,
    maximum: Option<(f64, bool)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    properties: BTreeMap<String, Node>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    default: Option<Value>,
    rules: Vec<Rule>,
}

impl Node {
    fn compile(s: &Value, env: &Env, path: &str) -> Result<Node, String> {
        let u = |k: &str| s.get(k).and_then(Value::as_u64);
        let bound = |k: &str, exclusive: &str| {
            s.get(k).and_then(Value::as_f64).map(|b| (b, s.get(exclusive).and_then(Value::as_bool).unwrap_or(false)))
        };
        let mut node = Node {
            type_: s.get("type").and_then(Value::as_str).map(str::to_string),
            nullable: s.get("nullable").and_then(Value::as_bool).unwrap_or(false),
            int_or_string: s.get("x-kubernetes-int-or-string").and_then(Value::as_bool).unwrap_or(false),
            preserve_unknown: s.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool).unwrap_or(false),
            required: s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            enum_: s.get("enum").and_then(Value::as_array).cloned(),
            pattern: s.get("pattern").and_then(Value::as_str).map(str::to_string),
            minimum: bound("minimum", "exclusiveMinimum"),
            maximum: bound("maximum", "exclusiveMaximum"),
            min_length: u("minLength"),
            max_length: u("maxLength"),
            min_items: u("minItems"),
            max_items: u("maxItems"),
            min_properties: u("minProperties"),
            max_properties: u("maxProperties"),
            list_type: s.get("x-kubernetes-list-type").and_then(Value::as_str).map(str::to_string),
            list_map_keys: s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            default: s.get("default").cloned(),
            ..Node::default()
        };
        for (key, child) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
            node.properties.insert(key.clone(), Node::compile(child, env, &join(path, key))?);
        }
        if let Some(child) = s.get("additionalProperties").filter(|a| a.is_object()) {
            node.additional = Some(Box::new(Node::compile(child, env, &format!("{path}[*]"))?));
        }
        if let Some(child) = s.get("items") {
            node.items = Some(Box::new(Node::compile(child, env, &format!("{path}[*]"))?));
        }
        for rule in s.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
            node.rules.push(Rule::compile(rule, env).map_err(|e| format!("{path}: {e}"))?);
        }
        Ok(node)
    }

    /// As the API server before it validates: unknown fields pruned, defaults
    /// filled in.
    fn prepare(&self, value: &mut Value, root: bool) {
        match value {
            Value::Object(fields) => {
                if !self.properties.is_empty() || self.additional.is_none() && !self.preserve_unknown {
                    let kept = |k: &str| {
                        self.properties.contains_key(k) || root && matches!(k, "apiVersion" | "kind" | "metadata")
                    };
                    if !self.preserve_unknown && self.additional.is_none() {
                        fields.retain(|k, _| kept(k));
                    }
                    for (key, child) in &self.properties {
                        if let (None, Some(default)) = (fields.get(key), &child.default) {
                            fields.insert(key.clone(), default.clone());
                        }
                    }
                }
                for (key, v) in fields.iter_mut() {
                    if let Some(child) = self.properties.get(key).or(self.additional.as_deref()) {
                        child.prepare(v, false);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item) = &self.items {
                    items.iter_mut().for_each(|v| item.prepare(v, false));
                }
            }
            _ => {}
        }
    }

    /// The structural schema; `blocking` is set by a type error, after which
    /// the API server runs no rule.
    fn check(&self, value: &Value, path: &str, out: &mut Vec<Problem>, blocking: &mut bool) {
        let mut problem = |detail: String| out.push(Problem { field: path.to_string(), detail });
        if value.is_null() {
            if !self.nullable && self.type_.is_some() {
                *blocking = true;
                let t = self.type_.as_deref().unwrap_or_default();
                problem(format!("Invalid value: \"null\": {path} in body must be of type {t}: \"null\""));
            }
            return;
        }
        if !self.type_matches(value) {
            *blocking = true;
            let want = if self.int_or_string { "integer,string" } else { self.type_.as_deref().unwrap_or_default() };
            let got = json_type(value);
            problem(format!("Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""));
            return;
        }
        if let Some(values) = &self.enum_
            && !values.contains(value)
        {
            let supported: Vec<String> = values.iter().filter(|v| !v.is_null()).map(Value::to_string).collect();
            problem(format!("Unsupported value: {value}: supported values: {}", supported.join(", ")));
        }
        match value {
            Value::String(s) => {
                let len = s.chars().count() as u64;
                if let Some(max) = self.max_length
                    && len > max
                {
                    problem(format!("Too long: may not be more than {max} bytes"));
                }
                if let Some(min) = self.min_length
                    && len < min
                {
                    problem(format!("Invalid value: {value}: {path} in body should be at least {min} chars long"));
                }
                if let Some(pattern) = &self.pattern
                    && !PATTERNS.with(|c| pattern_matches(c, pattern, s)).unwrap_or(false)
                {
                    problem(format!("Invalid value: {value}: {path} in body should match '{pattern}'"));
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or_default();
                if let Some((min, exclusive)) = self.minimum
                    && (x < min || exclusive && x == min)
                {
                    let than = if exclusive { "greater than" } else { "greater than or equal to" };
                    problem(format!("Invalid value: {n}: {path} in body should be {than} {}", number(min)));
                }
                if let Some((max, exclusive)) = self.maximum
                    && (x > max || exclusive && x == max)
                {
                    let than = if exclusive { "less than" } else { "less than or equal to" };
                    problem(format!("Invalid value: {n}: {path} in body should be {than} {}", number(max)));
                }
            }
            Value::Array(items) => {
                let len = items.len() as u64;
                if let Some(max) = self.max_items
                    && len > max
                {
                    problem(format!("Too many: {len}: must have at most {max} items"));
                }
                if let Some(min) = self.min_items
                    && len < min
                {
                    problem(format!("Invalid value: {len}: {path} in body should have at least {min} items"));
                }
                self.check_unique(items, path, out);
                if let Some(item) = &self.items {
                    for (i, v) in items.iter().enumerate() {
                        item.check(v, &format!("{path}[{i}]"), out, blocking);
                    }
                }
            }
            Value::Object(fields) => {
                let len = fields.len() as u64;
                if let Some(max) = self.max_properties
                    && len > max
                {
                    problem(format!("Too many: {len}: must have at most {max} items"));
                }
                if let Some(min) = self.min_properties
                    && len < min
                {
                    problem(format!("Invalid value: {len}: {path} in body should have at least {min} properties"));
                }
                for key in &self.required {
                    if !fields.contains_key(key) {
                        out.push(Problem { field: join(path, key), detail: "Required value".into() });
                    }
                }
                for (key, v) in fields {
                    if let Some(child) = self.properties.get(key) {
                        child.check(v, &join(path, key), out, blocking);
                    } else if let Some(child) = &self.additional {
                        child.check(v, &format!("{path}[{key}]"), out, blocking);
                    }
                }
            }
            _ => {}
        }
    }

    fn type_matches(&self, value: &Value) -> bool {
        if self.int_or_string {
            return value.is_string() || value.is_i64() || value.is_u64();
        }
        match self.type_.as_deref() {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some(_) => false,
        }
    }

    /// `x-kubernetes-list-type` map and set: each key (or item) once.
    fn check_unique(&self, items: &[Value], path: &str, out: &mut Vec<Problem>) {
        let mut seen: Vec<Value> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = match self.list_type.as_deref() {
                Some("map") => self.map_key(item),
                Some("set") => item.clone(),
                _ => return,
            };
            if seen.contains(&key) {
                out.push(Problem { field: format!("{path}[{i}]"), detail: format!("Duplicate value: {key}") });
            } else {
                seen.push(key);
            }
        }
    }

    /// A `map` list item's keys, as an object of them (absent keys with
    /// their defaults, as the API server fills them in).
    fn map_key(&self, item: &Value) -> Value {
        let mut key = serde_json::Map::new();
        for k in &self.list_map_keys {
            let default = self.items.as_ref().and_then(|i| i.properties.get(k)).and_then(|p| p.default.clone());
            if let Some(v) = item.get(k).cloned().or(default) {
                key.insert(k.clone(), v);
            }
        }
        Value::Object(key)
    }

    /// The old item of a list that correlates with `item`, for the
    /// transition rules: by keys in a `map` list, by value in a `set`.
    fn correlate<'a>(&self, olds: &'a [Value], item: &Value) -> Option<&'a Value> {
        match self.list_type.as_deref() {
            Some("map") => {
                let key = self.map_key(item);
                olds.iter().find(|o| self.map_key(o) == key)
            }
            Some("set") => olds.iter().find(|o| *o == item),
            _ => None,
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A bound as the API server prints it: `1`, not `1.0`.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { x.to_string() }
}

/// One `x-kubernetes-validations` rule, compiled.
struct Rule {
    source: String,
    program: Program,
    message: Option<String>,
    message_expression: Option<Program>,
    field_path: Option<String>,
    reason: Option<String>,
    /// It uses `oldSelf`.
    transition: bool,
}

impl Rule {
    fn compile(rule: &Value, env: &Env) -> Result<Rule, String> {
        let text = |k: &str| rule.get(k).and_then(Value::as_str).map(str::to_string);
        let source = text("rule").ok_or("a validation without a rule")?;
        if rule.get("optionalOldSelf").and_then(Value::as_bool).unwrap_or(false) {
            return Err(format!("optionalOldSelf is not supported: {source}"));
        }
        let program = env.compile(&source).map_err(|e| format!("rule {source:?}: {e}"))?;
        let message_expression = match text("messageExpression") {
            Some(m) => Some(env.compile(&m).map_err(|e| format!("messageExpression {m:?}: {e}"))?),
            None => None,
        };
        let transition = program.references().has_variable("oldSelf");
        Ok(Rule {
            source,
            program,
            message: text("message"),
            message_expression,
            field_path: text("fieldPath"),
            reason: text("reason"),
            transition,
        })
    }

    /// The problem the rule finds, if any, named as the API server names it:
    /// the node's path and the rule's `fieldPath`.
    fn evaluate(&self, scope: &Context, path: &str) -> Option<Problem> {
        let field = format!("{path}{}", self.field_path.as_deref().unwrap_or_default());
        let detail = match self.program.execute(scope) {
            Ok(Cel::Bool(true)) => return None,
            Ok(Cel::Bool(false)) => {
                let message = match self.message_expression.as_ref().map(|m| m.execute(scope)) {
                    Some(Ok(Cel::String(m))) if !m.trim().is_empty() => m.to_string(),
                    _ => self.message.clone().unwrap_or_else(|| format!("failed rule: {}", self.source)),
                };
                let message = without_own_name(&field, &message);
                match self.reason.as_deref() {
                    Some("FieldValueRequired") => format!("Required value: {message}"),
                    Some("FieldValueForbidden") => format!("Forbidden: {message}"),
                    Some("FieldValueDuplicate") => format!("Duplicate value: {message}"),
                    _ => message,
                }
            }
            Ok(other) => format!("Invalid value: \"object\": rule {:?} gave {other:?}, not a bool", self.source),
            Err(e) => format!("Invalid value: \"object\": {e} evaluating rule: {}", self.source),
        };
        Some(Problem { field, detail })
    }
}

/// A rule's message without the name of the field it is about when that
/// leads it (the CRD's messages read `storage.size may grow but never
/// shrink`, shown after `spec.storage.size:`): the field is named once.
fn without_own_name(field: &str, message: &str) -> String {
    let Some((first, rest)) = message.split_once(' ') else { return message.to_string() };
    let mut generic = String::new();
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => {
                in_index = true;
                generic.push_str("[]");
            }
            ']' => in_index = false,
            _ if !in_index => generic.push(c),
            _ => {}
        }
    }
    let named = generic == first || generic.ends_with(&format!(".{first}"));
    if named && !first.is_empty() { rest.to_string() } else { message.to_string() }
}

/// A value as the rules see it: `null`s of absent optional fields dropped,
/// and at the root only the metadata the API server shows CEL.
fn for_cel(value: &Value, root: bool) -> Value {
    if !root {
        return value.clone();
    }
    let mut v = value.clone();
    if let Some(fields) = v.as_object_mut()
        && let Some(metadata) = fields.get("metadata").cloned()
    {
        let mut shown = serde_json::Map::new();
        for key in ["name", "generateName"] {
            if let Some(x) = metadata.get(key) {
                shown.insert(key.into(), x.clone());
            }
        }
        fields.insert("metadata".into(), Value::Object(shown));
    }
    v
}

fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => match n.as_u64() {
                Some(u) => Cel::UInt(u),
                None => Cel::Float(n.as_f64().unwrap_or_default()),
            },
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => {
            let map: HashMap<Key, Cel> = fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Cel::Map(Map::from(map))
        }
    }
}

thread_local! {
    /// A context for `pattern`s, which CEL's `matches` checks (the same RE2
    /// syntax the API server's Go regexp takes).
    static PATTERNS: Context<'static, 'static> = Context::default();
}

static MATCHES: LazyLock<Program> = LazyLock::new(|| Program::compile("s.matches(p)").expect("a valid program"));

fn pattern_matches(context: &Context, pattern: &str, s: &str) -> Result<bool, ExecutionError> {
    let mut scope = context.new_inner_scope();
    scope.add_variable_from_value("s", s);
    scope.add_variable_from_value("p", pattern);
    match MATCHES.execute(&scope)? {
        Cel::Bool(b) => Ok(b),
        other => Err(ExecutionError::function_error("matches", format!("gave {other:?}"))),
    }
}

/// Kubernetes' CEL quantity library (k8s.io/apiserver/pkg/cel/library), on
/// [`Quantity`].
mod quantity {
    use super::*;

    /// A quantity as CEL holds it, with its magnitude for comparisons.
    #[derive(Debug, PartialEq, Eq)]
    struct Q {
        value: Quantity,
        magnitude: Quantity,
    }

    impl Opaque for Q {
        fn runtime_type_name(&self) -> &str {
            "kubernetes.Quantity"
        }
    }

    fn parse(text: &str) -> Option<Q> {
        let value = Quantity::parse(text)?;
        let magnitude = Quantity::parse(text.strip_prefix(['-', '+']).unwrap_or(text))?;
        Some(Q { value, magnitude })
    }

    fn sign(q: &Q) -> i64 {
        if q.value.is_positive() {
            1
        } else if q.magnitude.is_positive() {
            -1
        } else {
            0
        }
    }

    /// Two magnitudes compared exactly with what [`Quantity`] offers:
    /// equality, then the amounts rounded up at finer and finer scales (a
    /// smaller amount never rounds to more), as long as they fit an i64.
    fn compare_magnitudes(a: &Quantity, b: &Quantity) -> Option<Ordering> {
        if a == b {
            return Some(Ordering::Equal);
        }
        for scale in 0..=36 {
            match (a.scaled(scale), b.scaled(scale)) {
                (Some(x), Some(y)) if x != y => return Some(x.cmp(&y)),
                (Some(_), Some(_)) => continue,
                (Some(_), None) => return Some(Ordering::Less),
                (None, Some(_)) => return Some(Ordering::Greater),
                (None, None) => return None,
            }
        }
        None
    }

    fn compare(a: &Q, b: &Q) -> Option<Ordering> {
        let (sa, sb) = (sign(a), sign(b));
        if sa != sb {
            return Some(sa.cmp(&sb));
        }
        match sa {
            0 => Some(Ordering::Equal),
            1 => compare_magnitudes(&a.magnitude, &b.magnitude),
            _ => compare_magnitudes(&b.magnitude, &a.magnitude),
        }
    }

    fn q<'a>(function: &str, o: &'a Arc<dyn Opaque>) -> Result<&'a Q, ExecutionError> {
        o.downcast_ref::<Q>().ok_or_else(|| ExecutionError::function_error(function, "not a quantity"))
    }

    fn ordering(function: &str, a: &Arc<dyn Opaque>, b: &Arc<dyn Opaque>) -> Result<Ordering, ExecutionError> {
        compare(q(function, a)?, q(function, b)?)
            .ok_or_else(|| ExecutionError::function_error(function, "quantities too large to compare exactly"))
    }

    pub(super) fn register(context: &mut Context) {
        let added = [
            context.add_function("isQuantity", |s: Arc<String>| Cel::Bool(parse(&s).is_some())),
            context.add_function("quantity", |s: Arc<String>| match parse(&s) {
                Some(q) => Ok(Cel::Opaque(Arc::new(q))),
                None => Err(ExecutionError::function_error("quantity", format!("invalid quantity: {s}"))),
            }),
            context.add_function("sign", |This(a): This<Arc<dyn Opaque>>| {
                Ok::<_, ExecutionError>(Cel::Int(sign(q("sign", &a)?)))
            }),
            context.add_function("isLessThan", |This(a): This<Arc<dyn Opaque>>, b: Arc<dyn Opaque>| {
                Ok::<_, ExecutionError>(Cel::Bool(ordering("isLessThan", &a, &b)? == Ordering::Less))
            }),
            context.add_function("isGreaterThan", |This(a): This<Arc<dyn Opaque>>, b: Arc<dyn Opaque>| {
                Ok::<_, ExecutionError>(Cel::Bool(ordering("isGreaterThan", &a, &b)? == Ordering::Greater))
            }),
            context.add_function("compareTo", |This(a): This<Arc<dyn Opaque>>, b: Arc<dyn Opaque>| {
                Ok::<_, ExecutionError>(Cel::Int(ordering("compareTo", &a, &b)? as i64))
            }),
        ];
        for result in added {
            result.expect("the quantity functions are declared once");
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn quantities_compare_by_value_whatever_their_sign() {
            let cmp = |a: &str, b: &str| compare(&parse(a).unwrap(), &parse(b).unwrap());
            for (a, b, want) in [
                ("1", "1000m", Ordering::Equal),
                ("1Gi", "1G", Ordering::Greater),
                ("500m", "1", Ordering::Less),
                ("-1", "0", Ordering::Less),
                ("0", "-0", Ordering::Equal),
                ("-2", "-1", Ordering::Less),
                ("1n", "2n", Ordering::Less),
                ("1.000000001", "1", Ordering::Greater),
                ("8Ei", "9E", Ordering::Greater),
            ] {
                assert_eq!(cmp(a, b), Some(want), "{a} vs {b}");
                assert_eq!(cmp(b, a), Some(want.reverse()), "{b} vs {a}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
