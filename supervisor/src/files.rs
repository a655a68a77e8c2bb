//! Config-file edits, applied by `run` before the game starts, on every
//! start: the `config.files` of a Pterodactyl/Pelican egg, with the semantics
//! of Pterodactyl's Wings where they are defined, and the file's own text
//! kept where Wings rewrites it (comments and key order of properties and ini
//! files, the key order of JSON and YAML, the formatting of XML).
//!
//! [`edit`] is pure (a file's text in, its edited text out); [`apply`] reads
//! and writes the file.

use std::path::Path;

use serde::{Deserialize, Serialize};

mod xml;

/// The largest file edited (Wings' bound): a bigger one is left as it is.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// One file edited before the game starts, as `--config-files` gives it (a
/// JSON array of these).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Absolute (mettaton joined it to the server's files).
    pub path: String,
    pub parser: Parser,
    /// Applied in order.
    pub edits: Vec<Edit>,
}

/// How a file is read and written.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Parser {
    /// Plain text: each line starting with the key becomes the value.
    File,
    /// Java properties (`key=value`).
    Properties,
    #[serde(alias = "yml")]
    Yaml,
    /// `Section.Key`, or a key before any section.
    Ini,
    Json,
    Xml,
}

/// One key set to `value`, or its current value replaced as `replace` says:
/// exactly one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// Dotted for nested keys (`a.b`, `list[0].c`), `*` for every element or
    /// key; an ini file's `Section.Key` (`[Section.With.Dots].Key`); an XML
    /// file's element path from its root, an element as `tag` or
    /// `tag[@attr='value']`; with the `file` parser, the start of the lines
    /// to replace.
    pub key: String,
    /// The value, literal (placeholders are filled in by mettaton). In JSON
    /// and YAML files an integer is written as a number, `true` and `false`
    /// as booleans; in XML `[attr='value']` sets the attribute `attr`
    /// instead of the element's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Conditional replacements: the first that matches the key's current
    /// value gives its new value; none matching, or no such key, leaves the
    /// file as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Vec<Replacement>>,
}

/// A conditional replacement: `match` is the current value itself, or after
/// `regex:` a regular expression, whose matches in the current value are
/// replaced by `value` (`$1` is a group), as Wings does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    #[serde(rename = "match")]
    pub matches: String,
    pub value: String,
}

impl ConfigFile {
    /// The files of `--config-files`, checked: absolute paths, and each edit
    /// with a key and exactly one of `value` or `replace`.
    pub fn parse_list(json: &str) -> Result<Vec<ConfigFile>, String> {
        let files: Vec<ConfigFile> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        for f in &files {
            let path = &f.path;
            if !Path::new(path).is_absolute() {
                return Err(format!("{path}: not an absolute path"));
            }
            for (i, e) in f.edits.iter().enumerate() {
                if e.key.is_empty() {
                    return Err(format!("{path}: edit {i}: an empty key"));
                }
                match (&e.value, &e.replace) {
                    (Some(_), None) => {}
                    (None, Some(r)) if !r.is_empty() => {}
                    (None, Some(_)) => return Err(format!("{path}: {}: an empty replace list", e.key)),
                    _ => return Err(format!("{path}: {}: exactly one of value or replace is needed", e.key)),
                }
            }
        }
        Ok(files)
    }

    /// `--config-files`' value: the JSON array [`ConfigFile::parse_list`]
    /// reads back.
    pub fn list_to_json(files: &[ConfigFile]) -> String {
        serde_json::to_string(files).expect("strings and enums always make JSON")
    }
}

impl Edit {
    /// A missing key is created only for a plain `value`.
    fn creates(&self) -> bool {
        self.value.is_some()
    }

    /// The key's new value, given its current one (`None`: no such key):
    /// `None` when it stays as it is.
    fn new_value(&self, current: Option<&str>) -> Result<Option<String>, String> {
        if let Some(v) = &self.value {
            return Ok(Some(v.clone()));
        }
        let Some(current) = current else { return Ok(None) };
        for r in self.replace.iter().flatten() {
            if let Some(new) = r.apply(&self.key, current)? {
                return Ok(Some(new));
            }
        }
        Ok(None)
    }
}

impl Replacement {
    /// The new value when this replacement matches `current`.
    fn apply(&self, key: &str, current: &str) -> Result<Option<String>, String> {
        match self.matches.strip_prefix("regex:") {
            Some(re) => {
                let re = regex_lite::Regex::new(re)
                    .map_err(|e| format!("{key}: `{}` is not a valid regular expression: {e}", self.matches))?;
                Ok(re.is_match(current).then(|| re.replace_all(current, self.value.as_str()).into_owned()))
            }
            None => Ok((self.matches == current).then(|| self.value.clone())),
        }
    }
}

/// `text` (a whole file, empty when it is missing) with `edits` applied.
pub fn edit(parser: Parser, text: &str, edits: &[Edit]) -> Result<String, String> {
    match parser {
        Parser::File => plain(text, edits),
        Parser::Properties => properties(text, edits),
        Parser::Ini => ini(text, edits),
        Parser::Json => json(text, edits),
        Parser::Yaml => yaml(text, edits),
        Parser::Xml => xml::edit(text, edits),
    }
}

/// Edits the file: created when missing (its directory too), written only
/// when its text changed; left as it is on any error. A byte order mark is
/// kept.
pub fn apply(file: &ConfigFile) -> Result<(), String> {
    let path = Path::new(&file.path);
    let (text, existed) = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => return Err(format!("larger than {MAX_FILE} bytes: not edited")),
        Ok(_) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
            (String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), false),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text.as_str()),
    };
    let edited = format!("{bom}{}", edit(file.parser, body, &file.edits)?);
    if existed && edited == text {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create its directory: {e}"))?;
    }
    // In place, as Wings does: the file keeps its owner and mode.
    std::fs::write(path, edited).map_err(|e| format!("cannot write it: {e}"))
}

/// A text's lines (without their `\n` or `\r\n`) and its line ending.
fn lines(text: &str) -> (Vec<String>, &'static str) {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let body = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return (Vec::new(), eol);
    }
    let lines = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect();
    (lines, eol)
}

/// Lines joined back, each ended.
fn unlines(lines: &[String], eol: &str) -> String {
    lines.iter().map(|l| format!("{l}{eol}")).collect()
}

/// The `file` parser: each line starting with the key becomes the value (or,
/// for a `replace`, the line is the current value); nothing is added.
fn plain(text: &str, edits: &[Edit]) -> Result<String, String> {
    let (mut lines, eol) = lines(text);
    for e in edits {
        for line in lines.iter_mut() {
            if line.starts_with(&e.key)
                && let Some(new) = e.new_value(Some(line))?
            {
                *line = new;
            }
        }
    }
    Ok(unlines(&lines, eol))
}

/// A properties line's key (unescaped) and where its value starts; `None`
/// for a blank line or a comment.
fn property(line: &str) -> Option<(String, usize)> {
    let start = line.len() - line.trim_start_matches([' ', '\t', '\u{c}']).len();
    let rest = &line[start..];
    if rest.is_empty() || rest.starts_with(['#', '!']) {
        return None;
    }
    let mut key = String::new();
    let mut chars = rest.char_indices();
    let mut end = rest.len();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    key.push(next);
                }
            }
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                end = i;
                break;
            }
            c => key.push(c),
        }
    }
    let after = &rest[end..];
    let mut value = after.trim_start_matches([' ', '\t', '\u{c}']);
    if let Some(v) = value.strip_prefix(['=', ':']) {
        value = v.trim_start_matches([' ', '\t', '\u{c}']);
    }
    Some((key, line.len() - value.len()))
}

/// A properties line ends in an odd number of backslashes: the value goes on
/// on the next line.
fn continues(line: &str) -> bool {
    (line.len() - line.trim_end_matches('\\').len()) % 2 == 1
}

/// A properties value unescaped: `\t`, `\n`, `\r`, `\f`, `\uXXXX`, `\x` is x.
fn unescape_property(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    let mut units: Vec<u16> = Vec::new();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend(char::decode_utf16(units.drain(..)).map(|r| r.unwrap_or('\u{fffd}')));
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else { break };
        if e == 'u' {
            let hex: String = chars.by_ref().take(4).collect();
            if let Ok(u) = u16::from_str_radix(&hex, 16) {
                units.push(u);
                continue;
            }
        }
        out.extend(char::decode_utf16(units.drain(..)).map(|r| r.unwrap_or('\u{fffd}')));
        out.push(match e {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\u{c}',
            e => e,
        });
    }
    out.extend(char::decode_utf16(units.drain(..)).map(|r| r.unwrap_or('\u{fffd}')));
    out
}

/// A value as a properties file holds it: backslashes and control
/// characters escaped, and, as Wings writes them, every character beyond
/// ASCII as `\uXXXX` (which Java reads whatever the file's encoding); a
/// leading space escaped so that it is kept.
fn escape_property(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if i == 0 => out.push_str("\\ "),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

fn escape_property_key(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if matches!(c, '\\' | '=' | ':' | ' ') || (i == 0 && matches!(c, '#' | '!')) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `properties` parser: the lines of a key (with its continuation
/// lines) get the new value after the key's own text; a missing key is
/// appended; comments, blank lines and order are kept.
fn properties(text: &str, edits: &[Edit]) -> Result<String, String> {
    let (mut lines, eol) = lines(text);
    for e in edits {
        let mut found = false;
        let mut i = 0;
        while i < lines.len() {
            let mut last = i;
            let parsed = property(&lines[i]);
            if parsed.is_some() {
                while continues(&lines[last]) && last + 1 < lines.len() {
                    last += 1;
                }
            }
            if let Some((_, at)) = parsed.filter(|(k, _)| *k == e.key) {
                found = true;
                let first = &lines[i];
                let mut raw = first[at..].to_string();
                for next in &lines[i + 1..=last] {
                    raw.pop();
                    raw.push_str(next.trim_start_matches([' ', '\t', '\u{c}']));
                }
                if continues(&raw) {
                    raw.pop();
                }
                if let Some(new) = e.new_value(Some(&unescape_property(&raw)))? {
                    // A key alone on its line gets its `=`.
                    let head = &first[..at];
                    let sep = if head.ends_with(['=', ':', ' ', '\t', '\u{c}']) { "" } else { "=" };
                    lines[i] = format!("{head}{sep}{}", escape_property(&new));
                    lines.drain(i + 1..=last);
                    last = i;
                }
            }
            i = last + 1;
        }
        if !found
            && e.creates()
            && let Some(new) = e.new_value(None)?
        {
            lines.push(format!("{}={}", escape_property_key(&e.key), escape_property(&new)));
        }
    }
    Ok(unlines(&lines, eol))
}

/// `key` split at its dots outside `[...]` (a selector's or a section's
/// own dots stay), into at most `max` parts: the last keeps the rest.
fn dotted(key: &str, max: usize) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 && parts.len() < max => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().expect("one part at least").push(c);
    }
    parts
}

/// An ini key: `Section.Key` (the first dot outside brackets; the brackets
/// themselves dropped, as Wings reads `[/Script/Pal.Settings].Option`), or a
/// key alone, before any section.
fn ini_key(key: &str) -> (String, String) {
    let unbracketed = |s: &str| s.chars().filter(|c| !matches!(c, '[' | ']')).collect::<String>();
    match <[String; 2]>::try_from(dotted(key, 2)) {
        Ok([section, key]) => (unbracketed(&section), unbracketed(&key)),
        Err(one) => (String::new(), unbracketed(&one[0])),
    }
}

/// An ini section header's name.
fn ini_section(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// An ini line's key and where its value starts (after the `=` or `:` and
/// the spaces after it).
fn ini_entry(line: &str) -> Option<(&str, usize)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with([';', '#', '[']) {
        return None;
    }
    let delim = line.find(['=', ':'])?;
    let after = &line[delim + 1..];
    Some((line[..delim].trim(), line.len() - after.trim_start().len()))
}

/// The `ini` parser: a key's lines in its section get the new value after
/// `key=` as the file writes it; a missing key is added at the end of its
/// section, a missing section at the end of the file; comments and order
/// are kept.
fn ini(text: &str, edits: &[Edit]) -> Result<String, String> {
    let (mut lines, eol) = lines(text);
    for e in edits {
        let (section, key) = ini_key(&e.key);
        let mut current = String::new();
        let mut found = false;
        // Where a missing key goes: after the section's last line that is
        // not blank.
        let mut section_end: Option<usize> = section.is_empty().then_some(0);
        for (i, line) in lines.iter_mut().enumerate() {
            if let Some(name) = ini_section(line) {
                current = name.to_string();
                if current == section && section_end.is_none() {
                    section_end = Some(i + 1);
                }
                continue;
            }
            if current != section {
                continue;
            }
            if !line.trim().is_empty() {
                section_end = Some(i + 1);
            }
            let Some((k, at)) = ini_entry(line) else { continue };
            if k != key {
                continue;
            }
            found = true;
            let raw = line[at..].trim_end();
            let value = raw.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(raw);
            if let Some(new) = e.new_value(Some(value))? {
                *line = format!("{}{new}", &line[..at]);
            }
        }
        if found || !e.creates() {
            continue;
        }
        let Some(new) = e.new_value(None)? else { continue };
        let entry = format!("{key}={new}");
        match section_end {
            Some(at) => lines.insert(at, entry),
            None => {
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    lines.push(String::new());
                }
                lines.push(format!("[{section}]"));
                lines.push(entry);
            }
        }
    }
    Ok(unlines(&lines, eol))
}

type Value = serde_yaml::Value;

/// A value as Wings types it in JSON and YAML files: an integer is a number,
/// `true` and `false` are booleans, anything else a string.
fn typed(value: &str) -> Value {
    match value {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        v => v.parse::<i64>().map_or_else(|_| Value::String(v.to_string()), |n| Value::Number(n.into())),
    }
}

/// A scalar as the text a replacement matches; `None` for a mapping or a
/// list.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".to_string()),
        Value::Tagged(t) => scalar_text(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// One step of a dotted path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// A mapping's key, or a list's index when the value there is a list.
    Key(String),
    /// `[N]`: a list's index.
    Index(usize),
    /// `*`: every value of a mapping, every element of a list.
    All,
}

/// `a.b[0].*.c` as its steps.
fn steps(key: &str) -> Result<Vec<Step>, String> {
    let mut out = Vec::new();
    for part in key.split('.') {
        if part == "*" {
            out.push(Step::All);
            continue;
        }
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !name.is_empty() {
            out.push(Step::Key(name.to_string()));
        }
        while !rest.is_empty() {
            let index = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(n, after)| Some((n.parse::<usize>().ok()?, after)));
            let Some((n, after)) = index else {
                return Err(format!("{key}: `{part}` is not KEY or KEY[INDEX]"));
            };
            out.push(Step::Index(n));
            rest = after;
        }
    }
    Ok(out)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A mapping's key written as the path names it.
fn key_is(key: &Value, name: &str) -> bool {
    match key {
        Value::String(s) => s == name,
        Value::Number(_) | Value::Bool(_) => scalar_text(key).is_some_and(|k| k == name),
        _ => false,
    }
}

/// Applies `e` at `path` under `node`; missing keys are created when
/// `create` says (never before a `*`, which only takes what is there).
fn set_at(node: &mut Value, path: &[Step], e: &Edit, create: bool) -> Result<(), String> {
    let Some((step, rest)) = path.split_first() else {
        if let Some(new) = e.new_value(scalar_text(node).as_deref())? {
            *node = typed(&new);
        }
        return Ok(());
    };
    if node.is_null() && create {
        *node = match step {
            Step::Index(_) => Value::Sequence(Vec::new()),
            _ => Value::Mapping(Default::default()),
        };
    }
    match (step, node) {
        // Under `*`, what is missing is created in each element (as Wings does).
        (Step::All, Value::Mapping(m)) => m.values_mut().try_for_each(|v| set_at(v, rest, e, e.creates())),
        (Step::All, Value::Sequence(s)) => s.iter_mut().try_for_each(|v| set_at(v, rest, e, e.creates())),
        (Step::All, _) => Ok(()),
        (Step::Key(k), Value::Mapping(m)) => match m.iter_mut().find(|(key, _)| key_is(key, k)) {
            Some((_, v)) => set_at(v, rest, e, create),
            None if create => {
                let mut v = Value::Null;
                set_at(&mut v, rest, e, create)?;
                m.insert(Value::String(k.clone()), v);
                Ok(())
            }
            None => Ok(()),
        },
        (Step::Key(k), Value::Sequence(s)) => match k.parse::<usize>() {
            Ok(i) => index(s, i, rest, e, create, &e.key),
            Err(_) if create => Err(format!("{}: `{k}` is not an index of the list there", e.key)),
            Err(_) => Ok(()),
        },
        (Step::Index(i), Value::Sequence(s)) => index(s, *i, rest, e, create, &e.key),
        (_, other) if create => Err(format!("{}: the value there is {}, which has no keys", e.key, kind(other))),
        _ => Ok(()),
    }
}

/// A list's element `i`; with a value to set, the first element of an empty
/// list is created (as Wings does for `key[0]`), no other.
fn index(list: &mut Vec<Value>, i: usize, rest: &[Step], e: &Edit, create: bool, key: &str) -> Result<(), String> {
    if i == 0 && list.is_empty() && create {
        list.push(Value::Null);
    }
    match list.get_mut(i) {
        Some(v) => set_at(v, rest, e, create),
        None if create => Err(format!("{key}: index {i} is past the end of a list of {}", list.len())),
        None => Ok(()),
    }
}

fn edit_tree(mut root: Value, edits: &[Edit]) -> Result<Value, String> {
    if root.is_null() {
        root = Value::Mapping(Default::default());
    }
    for e in edits {
        let path = steps(&e.key)?;
        let create = e.creates() && !path.contains(&Step::All);
        set_at(&mut root, &path, e, create)?;
    }
    Ok(root)
}

/// The `json` parser: written with the file's indent (Wings' 4 spaces for a
/// new file), keys in their order.
fn json(text: &str, edits: &[Edit]) -> Result<String, String> {
    let root: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?
    };
    let root = edit_tree(root, edits)?;
    let indent = text
        .lines()
        .skip(1)
        .map(|l| &l[..l.len() - l.trim_start_matches([' ', '\t']).len()])
        .find(|i| !i.is_empty())
        .unwrap_or("    ");
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    root.serialize(&mut ser).map_err(|e| format!("cannot write it as JSON: {e}"))?;
    out.push(b'\n');
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// The `yaml` parser: written anew, keys in their order; the comments at the
/// head of the file are kept, the others are lost (as with Wings).
fn yaml(text: &str, edits: &[Edit]) -> Result<String, String> {
    let root: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let root = edit_tree(root, edits)?;
    let head: String =
        text.split_inclusive('\n').take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#')).collect();
    let body = serde_yaml::to_string(&root).map_err(|e| format!("cannot write it as YAML: {e}"))?;
    Ok(format!("{head}{body}"))
}

#[cfg(test)]
mod tests;
