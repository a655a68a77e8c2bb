//! Schedules of a game server (issue 17): what to do, and when, for one
//! schedule at one instant. Pure: the time, the run state and the players
//! online are inputs, so the tests drive it with a clock value, never by
//! sleeping; the controller (later) reads the clock, carries out the
//! [`Step`], records the returned [`RunState`] and comes back at the time a
//! [`Step::Wait`] names.
//!
//! A [`Schedule`] is a cron expression in a time zone, an [`Action`]
//! (restart, stop, start, a console command, a backup), an optional
//! [`Guard`] for disruptive actions (announce before, wait while players are
//! on up to a hard deadline) and a [`MissedPolicy`] for the times the
//! controller was not there to act.
//!
//! # The cron expression
//! Five fields (minute, hour, day of month, month, day of week, 0 or 7 =
//! Sunday, names such as `MON` and `JAN` allowed), or `@hourly`, `@daily`,
//! `@weekly`, `@monthly`, `@yearly`. No seconds field and no year field. It is
//! read by the `croner` crate, which also takes its extensions (`L`, `W`,
//! `#`, `?`); as in Vixie cron, a day of month and a day of week both given
//! match either. Times are wall-clock times of `timeZone` (IANA, default
//! UTC), from the zone database bundled with `jiff` (so the same everywhere,
//! and as new as the crate). Across daylight-saving changes it does what
//! croner does: a time in a spring-forward gap runs at the first valid time
//! after the gap, the same day (`30 2 * * *` in Europe/Paris on the last
//! Sunday of March runs at 03:00 CEST); a time repeated by a fall-back runs
//! once, at its first occurrence (02:30 CEST, not again at 02:30 CET);
//! wildcard and step fields (`*/15 * * * *`) skip the gap and run in both
//! halves of the fold, as wall-clock times.
//!
//! # What [`decide`] decides
//! The run state remembers `after`: every occurrence at or before it is
//! settled (run, skipped or covered by a run), so the occurrence worked on is
//! always the first one after it. The first look at a schedule sets `after`
//! to now: a new schedule never runs for an occurrence before it existed.
//!
//! - **Before the due time**: each announcement is said once, at its offset
//!   before the due time. One whose time passed while the controller was away
//!   is said late only within a tenth of its offset (at least
//!   [`ANNOUNCE_LATE_MIN`]): past that its line ("restarting in 10 minutes")
//!   would tell the players a wrong time, so it is passed over, as is any
//!   announcement whose time a later one's has reached. None is ever said at
//!   or after the due time. Otherwise: wait until the next announcement or
//!   the due time.
//! - **At the due time** (up to [`ON_TIME`] after it: the controller's own
//!   latency): run, unless the guard waits while players are on. Then it runs
//!   as soon as the count is 0, re-checking every [`RECHECK`], and at the
//!   deadline (due + `deadline`) at the latest, with players on or their count
//!   unknown (`None` counts as players on: the guard cannot promise nobody is
//!   on). Occurrences that come due while a run waits are covered by it.
//! - **Missed** (woken after that window, the controller was down): the latest
//!   occurrence due by now is the one judged, older ones are passed over.
//!   [`MissedPolicy::Skip`] skips it, saying by how much it was missed;
//!   [`MissedPolicy::RunLate`] runs it if it is at most `within` late, else
//!   skips it. A late run of a guarded schedule keeps the guard's promises: it
//!   is planned anew for now + the longest announcement offset, announced and
//!   waited for as an on-time one, and reported [`RunReason::Late`].
//!
//! One call gives one step: after an [`Step::Announce`], [`Step::Run`] or
//! [`Step::Skip`] the caller records the new state and calls again (an
//! announcement and a run may be due at once). A step carried out whose state
//! was not recorded is decided again: announcements are said at least once.
//!
//! # Guards
//! A guard is refused on `start` (nobody plays on a stopped server) and
//! allowed on the others: restart and stop are disruptive, a backup may stop
//! the game (when its template has no save commands), and a console command
//! can be (a kick, a world reset): the schedule cannot know, its author does.

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// How long after its due time a run still counts as on time: the wake-up
/// asked for plus the controller's latency (a requeue, a leader handover).
pub const ON_TIME: Duration = Duration::from_secs(60);
/// How often the player count is looked at again while a guard waits.
pub const RECHECK: Duration = Duration::from_secs(30);
/// The least lateness an announcement is still said with (else a tenth of
/// its offset).
pub const ANNOUNCE_LATE_MIN: Duration = Duration::from_secs(10);
/// The longest announcement offset and the longest guard deadline.
pub const MAX_OFFSET: Duration = Duration::from_secs(24 * 3600);
/// The longest `missed.runLate.within`.
pub const MAX_RUN_LATE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Occurrences passed over are counted up to this many.
pub const COUNT_CAP: u32 = 1000;

/// One schedule of a game server. Serialized flat, in the API's style
/// (`action: command` beside `command: LINE`; durations in whole seconds,
/// `deadlineSeconds` as the API's `gracePeriodSeconds`; `missed:
/// {policy: runLate, withinSeconds: N}`), so that YAML read by serde_yaml and
/// a CRD's structural schema both take it:
///
/// ```yaml
/// name: nightly
/// cron: "0 4 * * *"
/// timeZone: Europe/Paris
/// action: restart
/// guard:
///   waitWhilePlayers: true
///   deadlineSeconds: 1800
///   announce: [{beforeSeconds: 600, line: "say restart in 10 minutes"}]
/// missed: {policy: runLate, withinSeconds: 3600}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "wire::Schedule", into = "wire::Schedule")]
pub struct Schedule {
    /// Names the schedule in the status and Events: 1 to 63 lowercase
    /// letters, digits and `-`.
    pub name: String,
    /// Five-field cron expression, or `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`.
    pub cron: String,
    /// IANA time zone of the cron's wall-clock times (default UTC).
    pub time_zone: String,
    pub action: Action,
    pub guard: Option<Guard>,
    /// Default: skip.
    pub missed: MissedPolicy,
}

/// What a schedule does when it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Restart,
    Stop,
    Start,
    /// One line written to the game's console.
    Command(String),
    Backup,
}

impl Action {
    /// The action's name in problems and Events.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Command(_) => "command",
            Action::Backup => "backup",
        }
    }
}

/// The care taken of the players before a disruptive action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Guard {
    /// Wait past the due time while players are on (or their count is
    /// unknown), up to `deadline`.
    #[serde(default)]
    pub wait_while_players: bool,
    /// The longest wait after the due time; at most a day. Unused without
    /// `wait_while_players`.
    #[serde(rename = "deadlineSeconds", with = "seconds", default)]
    pub deadline: Duration,
    /// Console lines said before the due time, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announce: Vec<Announcement>,
}

/// A console line said `before` the due time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// More than 0, at most a day; two announcements of a guard never share
    /// one.
    #[serde(rename = "beforeSeconds", with = "seconds")]
    pub before: Duration,
    pub line: String,
}

/// What to do with an occurrence the controller was not there for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "camelCase")]
pub enum MissedPolicy {
    /// Skip it (the default: never disrupt at a time nobody chose).
    #[default]
    Skip,
    /// Run it if it is at most `within` late (at most 7 days), else skip it.
    RunLate {
        #[serde(rename = "withinSeconds", with = "seconds")]
        within: Duration,
    },
}

/// What a schedule remembers between two decisions (in the status, later).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// When the schedule last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<Timestamp>,
    /// Every occurrence at or before this instant is settled; None before the
    /// first decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Timestamp>,
    /// The occurrence being worked on (announced, waited for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// The occurrence being worked on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// The occurrence's time by the cron.
    pub due: Timestamp,
    /// When it is planned to run: `due`, or for a late run the time it was
    /// planned anew for.
    pub at: Timestamp,
    /// The offsets of the announcements said or passed over.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "seconds_list")]
    pub announced: Vec<Duration>,
}

impl Pending {
    fn on_time(due: Timestamp) -> Pending {
        Pending { due, at: due, announced: Vec::new() }
    }
}

/// One decision: the step to take now, the state to record once it is
/// taken, and the times for the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub step: Step,
    pub state: RunState,
    /// When the schedule runs next: the planned time of the occurrence worked
    /// on (in the past while a guard waits for players), else the next
    /// occurrence.
    pub next_run: Option<Timestamp>,
    /// When it last ran (now, for a [`Step::Run`]).
    pub last_run: Option<Timestamp>,
    /// Older occurrences this decision settled without running them: missed
    /// before the one judged, or come due while a run waited (counted up to
    /// [`COUNT_CAP`]).
    pub passed_over: u32,
}

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing until `until`.
    Wait { until: Timestamp, wake: Wake },
    /// Say this line on the console now.
    Announce { line: String, before: Duration, due: Timestamp },
    /// Carry out the action now.
    Run { due: Timestamp, reason: RunReason },
    /// The occurrence due at `due` was missed by `late_by` and is skipped.
    Skip { due: Timestamp, late_by: Duration },
}

/// Why a [`Step::Wait`] ends when it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// An announcement's time.
    Announcement,
    /// The due time.
    Due,
    /// A re-check of the players (this many were on; None: unknown).
    Players { online: Option<u32> },
    /// The guard's deadline.
    Deadline,
}

/// Why a run happens now, for its Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunReason {
    /// At its due time (within [`ON_TIME`]), nobody on or no guard waiting.
    OnTime,
    /// This long after the due time, within the deadline, once nobody was on.
    NobodyOn { after: Duration },
    /// At the guard's deadline with players still on (None: count unknown).
    Deadline { players: Option<u32> },
    /// Missed by this much while the controller was away, run by
    /// [`MissedPolicy::RunLate`].
    Late { by: Duration },
}

/// A schedule's parts, read.
struct Compiled {
    cron: Cron,
    tz: TimeZone,
}

impl Compiled {
    /// The first occurrence strictly after `t`.
    fn next(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(self.tz.clone());
        self.cron.find_next_occurrence(&z, false).ok().map(|z| z.timestamp())
    }

    /// The last occurrence at or before `t` (strictly before when not
    /// `inclusive`).
    fn previous(&self, t: Timestamp, inclusive: bool) -> Option<Timestamp> {
        let z = t.to_zoned(self.tz.clone());
        self.cron.find_previous_occurrence(&z, inclusive).ok().map(|z| z.timestamp())
    }

    /// Occurrences in `[from, to)`, `from` being one, up to [`COUNT_CAP`].
    fn count(&self, from: Timestamp, to: Timestamp) -> u32 {
        let mut n = 0;
        let mut t = Some(from);
        while let Some(at) = t.filter(|at| *at < to && n < COUNT_CAP) {
            n += 1;
            t = self.next(at);
        }
        n
    }
}

fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn unsigned(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}

impl Schedule {
    /// The problems of this schedule, each naming its field
    /// (`schedules[NAME].FIELD: ...`); empty when it can run.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let at = |field: &str| format!("schedules[{}].{field}", self.name);
        let name_ok = (1..=63).contains(&self.name.len())
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            problems.push(format!(
                "{}: must be 1 to 63 lowercase letters, digits and '-' (got {:?})",
                at("name"),
                self.name
            ));
        }
        match parse_cron(&self.cron) {
            Ok(cron) => {
                // A pattern such as "0 0 30 2 *" parses but never fires.
                let reference = Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
                if cron.find_next_occurrence(&reference, false).is_err() {
                    problems.push(format!("{}: {:?} never fires", at("cron"), self.cron));
                }
            }
            Err(e) => problems.push(format!("{}: {e} ({:?})", at("cron"), self.cron)),
        }
        if TimeZone::get(&self.time_zone).is_err() {
            problems.push(format!(
                "{}: unknown time zone {:?} (IANA names, such as Europe/Paris)",
                at("timeZone"),
                self.time_zone
            ));
        }
        if let Action::Command(line) = &self.action
            && let Some(p) = line_problem(line)
        {
            problems.push(format!("{}: {p}", at("command")));
        }
        if let Some(guard) = &self.guard {
            if self.action == Action::Start {
                problems.push(format!(
                    "{}: start is not disruptive (nobody plays on a stopped server); remove the guard",
                    at("guard")
                ));
            }
            if guard.wait_while_players && guard.deadline.is_zero() {
                problems.push(format!("{}: must be more than 0 with waitWhilePlayers", at("guard.deadlineSeconds")));
            }
            if guard.deadline > MAX_OFFSET {
                problems.push(format!(
                    "{}: {} s is longer than a day",
                    at("guard.deadlineSeconds"),
                    guard.deadline.as_secs()
                ));
            }
            for (i, a) in guard.announce.iter().enumerate() {
                let field = |f: &str| at(&format!("guard.announce[{i}].{f}"));
                if a.before.is_zero() {
                    problems.push(format!("{}: must be more than 0", field("beforeSeconds")));
                } else if a.before > MAX_OFFSET {
                    problems.push(format!("{}: {} s is longer than a day", field("beforeSeconds"), a.before.as_secs()));
                } else if guard.announce[..i].iter().any(|b| b.before == a.before) {
                    problems.push(format!(
                        "{}: {} s is also an earlier announcement's",
                        field("beforeSeconds"),
                        a.before.as_secs()
                    ));
                }
                if let Some(p) = line_problem(&a.line) {
                    problems.push(format!("{}: {p}", field("line")));
                }
            }
        }
        if let MissedPolicy::RunLate { within } = self.missed {
            if within.is_zero() {
                problems.push(format!("{}: must be more than 0 (or use skip)", at("missed.runLate.withinSeconds")));
            } else if within > MAX_RUN_LATE {
                problems.push(format!(
                    "{}: {} s is longer than 7 days",
                    at("missed.runLate.withinSeconds"),
                    within.as_secs()
                ));
            }
        }
        problems
    }

    fn compile(&self) -> Result<Compiled, Vec<String>> {
        let problems = self.check();
        if !problems.is_empty() {
            return Err(problems);
        }
        let cron = parse_cron(&self.cron).map_err(|e| vec![e])?;
        let tz = TimeZone::get(&self.time_zone).map_err(|e| vec![e.to_string()])?;
        Ok(Compiled { cron, tz })
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Result<Option<Timestamp>, Vec<String>> {
        Ok(self.compile()?.next(t))
    }

    fn announcements(&self) -> Vec<&Announcement> {
        let mut list: Vec<&Announcement> = self.guard.iter().flat_map(|g| g.announce.iter()).collect();
        // The longest offset first: in the order they are said.
        list.sort_by_key(|a| std::cmp::Reverse(a.before));
        list
    }

    /// The guard's deadline, when it waits while players are on.
    fn waits(&self) -> Option<SignedDuration> {
        self.guard.as_ref().filter(|g| g.wait_while_players).map(|g| signed(g.deadline))
    }
}

/// The problems of a list of schedules: each one's, and names used twice.
pub fn check_all(schedules: &[Schedule]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, s) in schedules.iter().enumerate() {
        if schedules[..i].iter().any(|o| o.name == s.name) {
            problems.push(format!("schedules[{}].name: used by an earlier schedule", s.name));
        }
        problems.extend(s.check());
    }
    problems
}

fn line_problem(line: &str) -> Option<&'static str> {
    if line.trim().is_empty() {
        Some("must not be empty")
    } else if line.contains(['\n', '\r']) {
        Some("must be one line")
    } else {
        None
    }
}

/// What to do now for `schedule`, given its recorded `state`, the instant
/// `now` and the players online (`None`: unknown). Errors are the schedule's
/// [`Schedule::check`] problems.
pub fn decide(
    schedule: &Schedule,
    state: &RunState,
    now: Timestamp,
    players: Option<u32>,
) -> Result<Decision, Vec<String>> {
    let c = schedule.compile()?;
    let on_time = signed(ON_TIME);
    let wait = schedule.waits();
    let window_end = |at: Timestamp| at + wait.unwrap_or(SignedDuration::ZERO) + on_time;
    let mut draft = Draft { c: &c, after: state.after.unwrap_or(now), last_run: state.last_run, passed_over: 0, now };
    let Some(first) = c.next(draft.after) else {
        return Err(vec![format!("schedules[{}].cron: no occurrence after {}", schedule.name, draft.after)]);
    };
    let pending = state.pending.clone().filter(|p| p.due == first);

    let pending = if now < first {
        pending.unwrap_or_else(|| Pending::on_time(first))
    } else if let Some(p) = pending.filter(|p| now <= window_end(p.at)) {
        p
    } else {
        // A new look at what is due by now: the latest occurrence.
        let last = c.previous(now, true).unwrap_or(first).max(first);
        if last > first {
            draft.passed_over = c.count(first, last);
            draft.after = c.previous(last, false).unwrap_or(draft.after).max(draft.after);
        }
        if now <= window_end(last) {
            Pending::on_time(last)
        } else {
            let late = now.duration_since(last);
            match schedule.missed {
                MissedPolicy::RunLate { within } if late <= signed(within) => {
                    let guarded = wait.is_some() || !schedule.announcements().is_empty();
                    if !guarded {
                        return Ok(draft.run(last, RunReason::Late { by: unsigned(late) }));
                    }
                    let longest = schedule.announcements().first().map(|a| signed(a.before)).unwrap_or_default();
                    Pending { due: last, at: now + longest, announced: Vec::new() }
                }
                _ => return Ok(draft.skip(last, unsigned(late))),
            }
        }
    };
    let mut p = pending;
    let open: Vec<&Announcement> =
        schedule.announcements().into_iter().filter(|a| !p.announced.contains(&a.before)).collect();

    if now < p.at {
        let said_at = |a: &Announcement| p.at - signed(a.before);
        let passed: Vec<&Announcement> = open.iter().copied().filter(|a| said_at(a) <= now).collect();
        if let Some(latest) = passed.last() {
            p.announced.extend(passed.iter().map(|a| a.before));
            let tolerance = (latest.before / 10).max(ANNOUNCE_LATE_MIN);
            if now.duration_since(said_at(latest)) <= signed(tolerance) {
                let step = Step::Announce { line: latest.line.clone(), before: latest.before, due: p.at };
                return Ok(draft.keep(step, p));
            }
        }
        let next = open.iter().map(|a| said_at(a)).filter(|t| *t > now).min();
        let step = match next {
            Some(until) if until < p.at => Step::Wait { until, wake: Wake::Announcement },
            _ => Step::Wait { until: p.at, wake: Wake::Due },
        };
        return Ok(draft.keep(step, p));
    }

    // Due: no announcement is said from now on.
    p.announced.extend(open.iter().map(|a| a.before));
    let late = (p.at != p.due).then(|| RunReason::Late { by: unsigned(now.duration_since(p.due)) });
    let Some(deadline) = wait else {
        return Ok(draft.run(p.due, late.unwrap_or(RunReason::OnTime)));
    };
    let deadline_at = p.at + deadline;
    let since = now.duration_since(p.at);
    let reason = match players {
        Some(0) if since <= on_time => RunReason::OnTime,
        Some(0) => RunReason::NobodyOn { after: unsigned(since) },
        _ if now >= deadline_at => RunReason::Deadline { players },
        _ => {
            let recheck = now + signed(RECHECK);
            let step = if recheck < deadline_at {
                Step::Wait { until: recheck, wake: Wake::Players { online: players } }
            } else {
                Step::Wait { until: deadline_at, wake: Wake::Deadline }
            };
            return Ok(draft.keep(step, p));
        }
    };
    Ok(draft.run(p.due, late.unwrap_or(reason)))
}

/// A decision being made: what it settles.
struct Draft<'a> {
    c: &'a Compiled,
    after: Timestamp,
    last_run: Option<Timestamp>,
    passed_over: u32,
    now: Timestamp,
}

impl Draft<'_> {
    /// Still working on `p`.
    fn keep(self, step: Step, p: Pending) -> Decision {
        Decision {
            step,
            next_run: Some(p.at),
            last_run: self.last_run,
            passed_over: self.passed_over,
            state: RunState { last_run: self.last_run, after: Some(self.after), pending: Some(p) },
        }
    }

    /// Run now for the occurrence `due`; occurrences since, up to now, are
    /// covered by this run.
    fn run(mut self, due: Timestamp, reason: RunReason) -> Decision {
        if let Some(next) = self.c.next(due) {
            self.passed_over =
                self.passed_over.saturating_add(self.c.count(next, self.now + SignedDuration::from_nanos(1)));
        }
        let after = self.now.max(due);
        Decision {
            step: Step::Run { due, reason },
            next_run: self.c.next(after),
            last_run: Some(self.now),
            passed_over: self.passed_over,
            state: RunState { last_run: Some(self.now), after: Some(after), pending: None },
        }
    }

    /// Skip the occurrence `due`.
    fn skip(self, due: Timestamp, late_by: Duration) -> Decision {
        Decision {
            step: Step::Skip { due, late_by },
            next_run: self.c.next(due),
            last_run: self.last_run,
            passed_over: self.passed_over,
            state: RunState { last_run: self.last_run, after: Some(due), pending: None },
        }
    }
}

/// The serialized form of a [`Schedule`].
mod wire {
    use serde::{Deserialize, Serialize};

    use super::{Action, Guard, MissedPolicy};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Schedule {
        name: String,
        cron: String,
        #[serde(default = "utc")]
        time_zone: String,
        action: Kind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guard: Option<Guard>,
        #[serde(default)]
        missed: MissedPolicy,
    }

    fn utc() -> String {
        "UTC".to_string()
    }

    #[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    enum Kind {
        Restart,
        Stop,
        Start,
        Command,
        Backup,
    }

    impl TryFrom<Schedule> for super::Schedule {
        type Error = String;

        fn try_from(w: Schedule) -> Result<Self, String> {
            let action = match (w.action, w.command) {
                (Kind::Command, Some(line)) => Action::Command(line),
                (Kind::Command, None) => return Err("action command needs command (the console line)".into()),
                (_, Some(_)) => return Err("command is only for action command".into()),
                (Kind::Restart, None) => Action::Restart,
                (Kind::Stop, None) => Action::Stop,
                (Kind::Start, None) => Action::Start,
                (Kind::Backup, None) => Action::Backup,
            };
            Ok(super::Schedule {
                name: w.name,
                cron: w.cron,
                time_zone: w.time_zone,
                action,
                guard: w.guard,
                missed: w.missed,
            })
        }
    }

    impl From<super::Schedule> for Schedule {
        fn from(s: super::Schedule) -> Self {
            let (action, command) = match s.action {
                Action::Restart => (Kind::Restart, None),
                Action::Stop => (Kind::Stop, None),
                Action::Start => (Kind::Start, None),
                Action::Command(line) => (Kind::Command, Some(line)),
                Action::Backup => (Kind::Backup, None),
            };
            Schedule {
                name: s.name,
                cron: s.cron,
                time_zone: s.time_zone,
                action,
                command,
                guard: s.guard,
                missed: s.missed,
            }
        }
    }
}

/// A [`Duration`] as whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A list of [`Duration`]s as whole seconds.
mod seconds_list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(Duration::as_secs))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<u64>::deserialize(d).map(|v| v.into_iter().map(Duration::from_secs).collect())
    }
}
