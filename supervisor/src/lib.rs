//! What the supervisor does that needs no process: its command line (written
//! by mettaton's backends, read by the supervisor: one definition for both),
//! the patterns it matches on the game's output, the stop it sends, the
//! players it counts, and the cutting of output into lines.
//!
//! The process side (spawning the game, signals, reaping, the console) is in
//! `main.rs`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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
    pub stop: Stop,
    /// How long the game gets to exit after the stop, before it is killed.
    pub grace: Duration,
    /// A file on the game's data volume, locked (`flock`) before the game
    /// starts and held until it ends: a new instance on the same volume (a
    /// pod replacing an evicted one, which the runtime starts while the old
    /// one still saves) waits for the old one to be gone.
    pub lock: Option<PathBuf>,
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
            stop: Stop::Forward,
            grace: Duration::from_secs(30),
            lock: None,
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
        if let Some(stop) = self.stop.to_arg() {
            args.extend(["--stop".to_string(), stop]);
        }
        if let Some(lock) = &self.lock {
            args.extend(["--lock".to_string(), lock.display().to_string()]);
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
                "--stop" => config.stop = Stop::parse(value).map_err(|e| format!("--stop: {e}"))?,
                "--lock" => config.lock = Some(PathBuf::from(value)),
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
}

#[cfg(test)]
mod tests;
