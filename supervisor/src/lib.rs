//! What the supervisor does that needs no process: its command line (written
//! by mettaton's backends, read by the supervisor: one definition for both),
//! the patterns it matches on the game's output, the stop it sends, the
//! players it counts, the output events it keeps, the cutting of output into
//! lines, and its report: the state directory's files read back into one
//! JSON object ([`Report`]), served over HTTP and printed by `status` (the
//! request line of that HTTP server is read here too); the config-file
//! edits applied before the game starts ([`files`]) and the pure parts of
//! `install-run` ([`install`]).
//!
//! The process side (spawning the game, signals, reaping, the console, the
//! HTTP server's sockets) is in `main.rs`.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod files;
pub mod install;

pub use files::ConfigFile;

/// The file in the state directory that exists once the game printed one of
/// its ready lines.
pub const READY_FILE: &str = "ready";
/// The file in the state directory holding the players, as JSON
/// (`{"count":N,"names":[...]}`), rewritten on every change.
pub const PLAYERS_FILE: &str = "players.json";
/// How many player names are kept (the count goes on beyond it).
pub const MAX_NAMES: usize = 100;
/// The named capture holding the player's name in join and leave patterns.
pub const PLAYER_GROUP: &str = "player";
/// The file in the state directory holding the ring of output events and the
/// next seq (`{"nextSeq":N,"events":[...]}`), rewritten on every change.
pub const EVENTS_FILE: &str = "events.json";
/// The file in the state directory holding when this supervisor started (unix
/// milliseconds, decimal), written last at start: no report before it.
pub const BOOT_FILE: &str = "boot";
/// How many output events are kept (the oldest go first).
pub const MAX_EVENTS: usize = 100;
/// The bytes of a line kept in an output event.
pub const MAX_EVENT_LINE: usize = 1024;

/// A line of the game's output to look for: a substring, or with the prefix
/// `regex:` a regular expression (as Pterodactyl/Pelican eggs write them).
#[derive(Clone, Debug)]
pub enum Pattern {
    Substring(String),
    Regex(regex_lite::Regex),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        match text.strip_prefix("regex:") {
            Some(re) => regex_lite::Regex::new(re)
                .map(Pattern::Regex)
                .map_err(|e| format!("`{text}` is not a valid regular expression: {e}")),
            None if text.is_empty() => Err("an empty pattern matches every line".to_string()),
            None => Ok(Pattern::Substring(text.to_string())),
        }
    }

    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Substring(s) => line.contains(s.as_str()),
            Pattern::Regex(re) => re.is_match(line),
        }
    }

    /// The player a join or leave line names: the capture `player`, else the
    /// first capture group.
    pub fn player(&self, line: &str) -> Option<String> {
        let Pattern::Regex(re) = self else { return None };
        let caps = re.captures(line)?;
        let m = caps.name(PLAYER_GROUP).or_else(|| caps.get(1))?;
        Some(m.as_str().to_string()).filter(|s| !s.is_empty())
    }

    /// A join or leave pattern must say where the player's name is.
    pub fn parse_player(text: &str) -> Result<Pattern, String> {
        match Pattern::parse(text)? {
            Pattern::Regex(re) if re.captures_len() > 1 => Ok(Pattern::Regex(re)),
            _ => Err(format!(
                "`{text}` does not capture the player's name: write `regex:` and a group, e.g. `regex:(?P<{PLAYER_GROUP}>\\S+) joined`"
            )),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(s) => f.write_str(s),
            Pattern::Regex(re) => write!(f, "regex:{}", re.as_str()),
        }
    }
}

/// How the game is asked to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The signal the supervisor got is passed on to the game.
    Forward,
    /// A line typed into the game's console.
    Line(String),
    /// A signal sent to the game.
    Signal(i32),
}

/// The signals a stop command may name, as `SIGNAME` or Pelican's `^C`.
const SIGNALS: &[(&str, i32)] = &[
    ("SIGINT", libc::SIGINT),
    ("SIGTERM", libc::SIGTERM),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGHUP", libc::SIGHUP),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
];

impl Stop {
    /// `^C` or a signal name (`SIGINT`, `SIGTERM`...) is a signal; any other
    /// text is a console line.
    pub fn parse(text: &str) -> Result<Stop, String> {
        if text == "^C" {
            return Ok(Stop::Signal(libc::SIGINT));
        }
        if let Some(&(_, n)) = SIGNALS.iter().find(|(name, _)| *name == text) {
            return Ok(Stop::Signal(n));
        }
        if text.starts_with("SIG") && text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
            let known: Vec<&str> = SIGNALS.iter().map(|(name, _)| *name).collect();
            return Err(format!(
                "`{text}` is not a signal the stop command can send (one of ^C, {})",
                known.join(", ")
            ));
        }
        if text.trim().is_empty() || text.contains('\n') {
            return Err(format!("`{}` is not one console line", text.escape_debug()));
        }
        Ok(Stop::Line(text.to_string()))
    }

    fn to_arg(&self) -> Option<String> {
        match self {
            Stop::Forward => None,
            Stop::Line(l) => Some(l.clone()),
            Stop::Signal(n) => SIGNALS.iter().find(|(_, s)| s == n).map(|(name, _)| name.to_string()),
        }
    }
}

/// What `mettaton-supervisor run` is told on its command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the ready and players files are written.
    pub state_dir: PathBuf,
    /// The lines that make the game ready (any of them).
    pub ready: Vec<Pattern>,
    pub join: Vec<Pattern>,
    pub leave: Vec<Pattern>,
    /// Lines that become output events, each with its reason (as a
    /// Kubernetes Event's); a line matching several is one event, of the
    /// first.
    pub events: Vec<(String, Pattern)>,
    /// Serve the report over HTTP on `0.0.0.0:PORT`.
    pub http: Option<u16>,
    pub stop: Stop,
    /// How long the game gets to exit after the stop, before it is killed.
    pub grace: Duration,
    /// A file on the game's data volume, locked (`flock`) before the game
    /// starts and held until it ends: a new instance on the same volume (a
    /// pod replacing an evicted one, which the runtime starts while the old
    /// one still saves) waits for the old one to be gone.
    pub lock: Option<PathBuf>,
    /// Files edited before the game starts, on every start (after the lock
    /// is taken).
    pub config_files: Vec<ConfigFile>,
    /// The game's command line.
    pub command: Vec<String>,
}

impl Config {
    pub fn new(state_dir: impl Into<PathBuf>, command: Vec<String>) -> Config {
        Config {
            state_dir: state_dir.into(),
            ready: Vec::new(),
            join: Vec::new(),
            leave: Vec::new(),
            events: Vec::new(),
            http: None,
            stop: Stop::Forward,
            grace: Duration::from_secs(30),
            lock: None,
            config_files: Vec::new(),
            command,
        }
    }

    /// The arguments after `run` that give this configuration back.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--state-dir".to_string(), self.state_dir.display().to_string()];
        for (flag, patterns) in [("--ready", &self.ready), ("--join", &self.join), ("--leave", &self.leave)] {
            for p in patterns {
                args.extend([flag.to_string(), p.to_string()]);
            }
        }
        for (reason, p) in &self.events {
            args.extend(["--event".to_string(), format!("{reason}={p}")]);
        }
        if let Some(stop) = self.stop.to_arg() {
            args.extend(["--stop".to_string(), stop]);
        }
        if let Some(lock) = &self.lock {
            args.extend(["--lock".to_string(), lock.display().to_string()]);
        }
        if let Some(port) = self.http {
            args.extend(["--http".to_string(), port.to_string()]);
        }
        if !self.config_files.is_empty() {
            args.extend(["--config-files".to_string(), ConfigFile::list_to_json(&self.config_files)]);
        }
        args.extend(["--grace".to_string(), self.grace.as_secs().to_string(), "--".to_string()]);
        args.extend(self.command.iter().cloned());
        args
    }

    /// Reads the arguments after `run`.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut config = Config::new("", Vec::new());
        let mut state_dir = None;
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            if flag == "--" {
                config.command = args[i + 1..].to_vec();
                break;
            }
            let value = args.get(i + 1).ok_or_else(|| format!("{flag} needs a value"))?;
            match flag {
                "--state-dir" => state_dir = Some(PathBuf::from(value)),
                "--ready" => config.ready.push(Pattern::parse(value).map_err(|e| format!("--ready: {e}"))?),
                "--join" => config.join.push(Pattern::parse_player(value).map_err(|e| format!("--join: {e}"))?),
                "--leave" => config.leave.push(Pattern::parse_player(value).map_err(|e| format!("--leave: {e}"))?),
                "--event" => config.events.push(parse_event(value).map_err(|e| format!("--event: {e}"))?),
                "--stop" => config.stop = Stop::parse(value).map_err(|e| format!("--stop: {e}"))?,
                "--lock" => config.lock = Some(PathBuf::from(value)),
                "--config-files" => config
                    .config_files
                    .extend(ConfigFile::parse_list(value).map_err(|e| format!("--config-files: {e}"))?),
                "--http" => match value.parse::<u16>() {
                    Ok(port) if port > 0 => config.http = Some(port),
                    _ => return Err(format!("--http: `{value}` is not a port (1 to 65535)")),
                },
                "--grace" => {
                    let secs: u64 =
                        value.parse().map_err(|_| format!("--grace: `{value}` is not a number of seconds"))?;
                    config.grace = Duration::from_secs(secs);
                }
                other => return Err(format!("unknown option {other}")),
            }
            i += 2;
        }
        config.state_dir = state_dir.ok_or("--state-dir is required")?;
        if config.command.is_empty() {
            return Err("no command: write the game's command after `--`".to_string());
        }
        Ok(config)
    }
}

/// The players online, from join and leave lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Players {
    names: BTreeSet<String>,
    /// Players beyond [`MAX_NAMES`]: counted, not named.
    unnamed: usize,
}

impl Players {
    /// Takes a line of output; true when the players changed.
    pub fn observe(&mut self, config: &Config, line: &str) -> bool {
        if let Some(name) = config.join.iter().find_map(|p| p.player(line)) {
            if self.names.contains(&name) {
                return false;
            }
            if self.names.len() < MAX_NAMES {
                self.names.insert(name);
            } else {
                self.unnamed += 1;
            }
            return true;
        }
        if let Some(name) = config.leave.iter().find_map(|p| p.player(line)) {
            if self.names.remove(&name) {
                return true;
            }
            if self.unnamed > 0 {
                self.unnamed -= 1;
                return true;
            }
        }
        false
    }

    pub fn count(&self) -> usize {
        self.names.len() + self.unnamed
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// `{"count":N,"names":["a","b"]}`.
    pub fn to_json(&self) -> String {
        let names: Vec<String> = self.names().map(json_string).collect();
        format!("{{\"count\":{},\"names\":[{}]}}", self.count(), names.join(","))
    }

    /// Reads back what [`Players::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<Players, String> {
        let v = Json::parse(text)?;
        let count = v.get("count").and_then(Json::as_u64).ok_or("no `count` number")?;
        let list = v.get("names").and_then(Json::as_array).ok_or("no `names` list")?;
        let names = list
            .iter()
            .map(|n| n.as_str().map(str::to_string).ok_or("a name is not a string"))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let unnamed = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_sub(names.len()))
            .ok_or(format!("count {count} is less than the {} names", names.len()))?;
        Ok(Players { names, unnamed })
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `REASON=PATTERN`, as `--event` takes it.
pub fn parse_event(text: &str) -> Result<(String, Pattern), String> {
    let Some((reason, pattern)) = text.split_once('=') else {
        return Err(format!("`{text}` is not REASON=PATTERN (e.g. `Chat=regex:<(\\w+)> `)"));
    };
    check_reason(reason)?;
    let pattern = Pattern::parse(pattern).map_err(|e| format!("{reason}: {e}"))?;
    Ok((reason.to_string(), pattern))
}

/// An event's reason, as a Kubernetes Event's: `^[A-Z][A-Za-z0-9]{0,63}$`.
pub fn check_reason(reason: &str) -> Result<(), String> {
    let mut chars = reason.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && reason.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a reason: a capital letter, then up to 63 letters or digits (e.g. `PlayerChat`)",
            reason.escape_debug()
        ))
    }
}

/// `line` cut to at most `max` bytes, on a char boundary.
pub fn cut(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// A line of the game's output that matched an event pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Counts from 0 within one boot, never repeats.
    pub seq: u64,
    pub reason: String,
    /// At most [`MAX_EVENT_LINE`] bytes of the line.
    pub line: String,
    /// Unix milliseconds.
    pub at: u64,
}

impl Event {
    /// `{"seq":N,"reason":"..","line":"..","at":"<unix ms>"}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"seq\":{},\"reason\":{},\"line\":{},\"at\":\"{}\"}}",
            self.seq,
            json_string(&self.reason),
            json_string(&self.line),
            self.at
        )
    }

    fn from_json(v: &Json) -> Result<Event, String> {
        let field = |name: &str| v.get(name).ok_or_else(|| format!("an event has no `{name}`"));
        let text = |name: &str| field(name)?.as_str().ok_or_else(|| format!("an event's `{name}` is not a string"));
        Ok(Event {
            seq: field("seq")?.as_u64().ok_or("an event's `seq` is not a number")?,
            reason: text("reason")?.to_string(),
            line: text("line")?.to_string(),
            at: text("at")?.parse().map_err(|_| "an event's `at` is not unix milliseconds")?,
        })
    }
}

/// The last [`MAX_EVENTS`] output events and the seq of the next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Events {
    ring: VecDeque<Event>,
    next_seq: u64,
}

impl Events {
    /// Takes a line of output at `at` (unix ms); true when it became an event.
    pub fn observe(&mut self, config: &Config, line: &str, at: u64) -> bool {
        let Some((reason, _)) = config.events.iter().find(|(_, p)| p.matches(line)) else {
            return false;
        };
        self.push(reason, line, at);
        true
    }

    pub fn push(&mut self, reason: &str, line: &str, at: u64) {
        if self.ring.len() == MAX_EVENTS {
            self.ring.pop_front();
        }
        let line = cut(line, MAX_EVENT_LINE).to_string();
        self.ring.push_back(Event { seq: self.next_seq, reason: reason.to_string(), line, at });
        self.next_seq += 1;
    }

    /// The events kept with `seq >= since`, oldest first.
    pub fn since(&self, since: u64) -> impl Iterator<Item = &Event> {
        self.ring.iter().filter(move |e| e.seq >= since)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The content of [`EVENTS_FILE`]: `{"nextSeq":N,"events":[...]}`.
    pub fn to_json(&self) -> String {
        let events: Vec<String> = self.ring.iter().map(Event::to_json).collect();
        format!("{{\"nextSeq\":{},\"events\":[{}]}}", self.next_seq, events.join(","))
    }

    /// Reads back what [`Events::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<Events, String> {
        let v = Json::parse(text)?;
        let next_seq = v.get("nextSeq").and_then(Json::as_u64).ok_or("no `nextSeq` number")?;
        let list = v.get("events").and_then(Json::as_array).ok_or("no `events` list")?;
        if list.len() > MAX_EVENTS {
            return Err(format!("{} events, more than the {MAX_EVENTS} kept", list.len()));
        }
        let ring = list.iter().map(Event::from_json).collect::<Result<VecDeque<_>, _>>()?;
        let mut after = 0;
        for e in &ring {
            if e.seq < after || e.seq >= next_seq {
                return Err(format!("event seq {} out of order (next seq {next_seq})", e.seq));
            }
            after = e.seq + 1;
        }
        Ok(Events { ring, next_seq })
    }
}

/// What the supervisor reports: built from the state directory's files, the
/// one source of truth for the HTTP server and `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Unix milliseconds when this supervisor started.
    pub boot: u64,
    pub ready: bool,
    /// None when no join pattern was given.
    pub players: Option<Players>,
    /// The kept events with `seq >= since`, oldest first.
    pub events: Vec<Event>,
    pub next_seq: u64,
}

impl Report {
    /// The report of the supervisor running on `dir`; an error when there is
    /// none (no supervisor runs there) or its files are unreadable.
    pub fn read(dir: &Path, since: u64) -> Result<Report, String> {
        let boot = || -> Result<u64, String> {
            let path = dir.join(BOOT_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("no report in {}: no supervisor runs there", dir.display())
                }
                _ => format!("cannot read {}: {e}", path.display()),
            })?;
            text.trim().parse().map_err(|_| format!("{} does not hold unix milliseconds", path.display()))
        };
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| (e.kind(), format!("cannot read {}: {e}", path.display())))
        };
        // A restart between the reads would mix two boots: read again.
        for _ in 0..3 {
            let before = boot()?;
            let players = match read(PLAYERS_FILE) {
                Ok(text) => Some(Players::from_json(&text).map_err(|e| format!("{PLAYERS_FILE}: {e}"))?),
                Err((std::io::ErrorKind::NotFound, _)) => None,
                Err((_, e)) => return Err(e),
            };
            let events = Events::from_json(&read(EVENTS_FILE).map_err(|(_, e)| e)?)
                .map_err(|e| format!("{EVENTS_FILE}: {e}"))?;
            let ready = dir.join(READY_FILE).exists();
            if boot()? == before {
                return Ok(Report {
                    boot: before,
                    ready,
                    players,
                    events: events.since(since).cloned().collect(),
                    next_seq: events.next_seq(),
                });
            }
        }
        Err(format!("the supervisor on {} keeps restarting", dir.display()))
    }

    /// `{"boot":"..","ready":..,"players":null|{..},"events":[..],"nextSeq":N}`.
    pub fn to_json(&self) -> String {
        let events: Vec<String> = self.events.iter().map(Event::to_json).collect();
        format!(
            "{{\"boot\":\"{}\",\"ready\":{},\"players\":{},\"events\":[{}],\"nextSeq\":{}}}",
            self.boot,
            self.ready,
            self.players.as_ref().map_or("null".to_string(), Players::to_json),
            events.join(","),
            self.next_seq
        )
    }
}

/// A JSON value, as far as the state files need one: their numbers are
/// counts (u64).
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(u64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Deep enough for the state files; deeper is refused, not recursed into.
    const MAX_DEPTH: usize = 8;

    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser { s: text.as_bytes(), i: 0 };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("not JSON: unexpected text at byte {}", p.i));
        }
        Ok(v)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("not JSON: {what} at byte {}", self.i))
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        let found = self.s.get(self.i) == Some(&b);
        if found {
            self.i += 1;
        }
        found
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > Json::MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                if self.eat(b'}') {
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return self.err("expected `:`");
                    }
                    fields.push((key, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Ok(Json::Object(fields));
                    }
                    if !self.eat(b',') {
                        return self.err("expected `,` or `}`");
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return self.err("expected `,` or `]`");
                    }
                }
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b'0'..=b'9') => {
                let start = self.i;
                while matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
                match std::str::from_utf8(&self.s[start..self.i]).ok().and_then(|d| d.parse().ok()) {
                    Some(n) => Ok(Json::Number(n)),
                    None => self.err("a number beyond u64"),
                }
            }
            _ => {
                for (word, v) in [("true", Json::Bool(true)), ("false", Json::Bool(false)), ("null", Json::Null)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(v);
                    }
                }
                self.err("expected a value")
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else { return self.err("unterminated string") };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else { return self.err("unterminated string") };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if !self.s[self.i..].starts_with(b"\\u") {
                                    return self.err("a lone surrogate");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return self.err("a lone surrogate");
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(c) => c,
                                None => return self.err("a lone surrogate"),
                            }
                        }
                        _ => return self.err("a bad escape"),
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                b if b < 0x20 => return self.err("a control character in a string"),
                b => out.push(b),
            }
        }
        // The input is a str and the escapes were encoded: valid UTF-8.
        String::from_utf8(out).or_else(|_| self.err("a string not UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        match self.s.get(self.i..self.i + 4) {
            Some(h) if h.iter().all(u8::is_ascii_hexdigit) => {
                self.i += 4;
                // Four hex digits: ASCII, and at most 0xffff.
                Ok(h.iter().fold(0, |n, &d| n * 16 + (d as char).to_digit(16).unwrap_or(0)))
            }
            _ => self.err("a bad \\u escape"),
        }
    }
}

/// The requests of the report's HTTP server: `GET /status?since=N`.
pub mod http {
    /// The most bytes of a request read (its head; a GET has no body).
    pub const MAX_HEAD: usize = 4096;

    /// A request refused: its status code and why.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Refused {
        pub status: u16,
        pub message: String,
    }

    fn refuse<T>(status: u16, message: impl Into<String>) -> Result<T, Refused> {
        Err(Refused { status, message: message.into() })
    }

    /// Where the request's head ends (after its blank line), once it is in.
    pub fn head_end(buf: &[u8]) -> Option<usize> {
        let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
        match (crlf, lf) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `since` of a request for the report, from its head; the request
    /// line is read strictly: `METHOD SP TARGET SP HTTP/1.x`.
    pub fn parse(head: &[u8]) -> Result<u64, Refused> {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            return refuse(400, "the request line is not text");
        };
        let parts: Vec<&str> = line.split(' ').collect();
        let [method, target, version] = parts[..] else {
            return refuse(400, "the request line is not METHOD TARGET HTTP-VERSION");
        };
        let token =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token(method) {
            return refuse(400, "the request's method is not a token");
        }
        if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
            return refuse(400, "the request's target is not a path");
        }
        match version {
            "HTTP/1.1" | "HTTP/1.0" => {}
            v if v.starts_with("HTTP/") => return refuse(505, format!("{v} is not served: HTTP/1.1 or 1.0")),
            _ => return refuse(400, "the request line has no HTTP version"),
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/status" {
            return refuse(404, format!("{path} is not here: GET /status?since=N"));
        }
        if method != "GET" {
            return refuse(405, format!("{method} is not allowed: GET /status?since=N"));
        }
        let mut since = None;
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if key != "since" {
                continue;
            }
            if since.is_some() {
                return refuse(400, "since is given twice");
            }
            match value.parse::<u64>() {
                Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => since = Some(n),
                _ => return refuse(400, format!("since: `{value}` is not a seq (a number from 0)")),
            }
        }
        Ok(since.unwrap_or(0))
    }

    /// A whole response, closing the connection.
    pub fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Error",
        };
        let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// Cuts a byte stream into lines for matching, whatever the chunks it comes
/// in; a line longer than [`Lines::MAX`] is matched on its first bytes.
#[derive(Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    pub const MAX: usize = 64 * 1024;

    /// The complete lines in `chunk` (with what came before it), without the
    /// line ending (`\n`, `\r\n`), decoded lossily.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                lines.push(String::from_utf8_lossy(line).into_owned());
            } else if self.partial.len() < Self::MAX {
                self.partial.push(b);
            }
        }
        lines
    }

    /// What is left at the end of the stream: its last line, if it had no
    /// line ending.
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.partial);
        (!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned())
    }
}

#[cfg(test)]
mod tests;
