//! What `install-run` does that needs no process: its command line, whether
//! the install is already done, and the last lines of a failed install's
//! output that become its termination message.
//!
//! The process side (running the script, copying its output, writing the
//! marker) is in `main.rs`.

use std::collections::VecDeque;
use std::path::PathBuf;

/// The most lines of a failed install's output kept in its message.
pub const TAIL_LINES: usize = 20;
/// The most bytes of them (Kubernetes keeps 4096 of a termination message;
/// the first line says how the install ended).
pub const TAIL_BYTES: usize = 4000;

/// What `mettaton-supervisor install-run` is told on its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallRun {
    /// Holds the token once the install with that token succeeded.
    pub marker: PathBuf,
    /// Names the install (the script and what it was given): another token
    /// runs it again.
    pub token: String,
    /// The script's output, written anew on every run.
    pub log: PathBuf,
    /// Where a failure's message goes (Kubernetes' `/dev/termination-log`).
    pub termination_log: Option<PathBuf>,
    pub command: Vec<String>,
}

impl InstallRun {
    /// Reads the arguments after `install-run`.
    pub fn from_args(args: &[String]) -> Result<InstallRun, String> {
        let (mut marker, mut token, mut log, mut termination_log) = (None, None, None, None);
        let mut command = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            if flag == "--" {
                command = args[i + 1..].to_vec();
                break;
            }
            let value = args.get(i + 1).ok_or_else(|| format!("{flag} needs a value"))?;
            match flag {
                "--marker" => marker = Some(PathBuf::from(value)),
                "--token" if value.is_empty() || value.contains('\n') => {
                    return Err("--token: one line, not empty".to_string());
                }
                "--token" => token = Some(value.clone()),
                "--log" => log = Some(PathBuf::from(value)),
                "--termination-log" => termination_log = Some(PathBuf::from(value)),
                other => return Err(format!("unknown option {other}")),
            }
            i += 2;
        }
        if command.is_empty() {
            return Err("no command: write the install's command after `--`".to_string());
        }
        Ok(InstallRun {
            marker: marker.ok_or("--marker is required")?,
            token: token.ok_or("--token is required")?,
            log: log.ok_or("--log is required")?,
            termination_log,
            command,
        })
    }

    /// The install is done when the marker holds exactly this token.
    pub fn done(&self, marker: Option<&str>) -> bool {
        marker == Some(self.token.as_str())
    }
}

/// The last lines of the output.
#[derive(Default)]
pub struct Tail {
    lines: VecDeque<String>,
}

impl Tail {
    pub fn push(&mut self, line: String) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// At most [`TAIL_LINES`] lines, and of them the last [`TAIL_BYTES`]
    /// bytes (cut at a char boundary), one per line.
    pub fn text(&self) -> String {
        let all: String = self.lines.iter().map(|l| format!("{l}\n")).collect();
        let mut start = all.len().saturating_sub(TAIL_BYTES);
        while !all.is_char_boundary(start) {
            start += 1;
        }
        all[start..].to_string()
    }
}

/// How a failed install ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Exited(i32),
    Killed(i32),
    /// The command could not be started (the error).
    NotRun(String),
}

impl Failure {
    /// The supervisor's exit code: the command's, 1 when it was killed or
    /// never ran.
    pub fn code(&self) -> i32 {
        match self {
            Failure::Exited(n) => *n,
            Failure::Killed(_) | Failure::NotRun(_) => 1,
        }
    }

    /// The termination message: how it ended, then the output's last lines.
    pub fn message(&self, tail: &Tail) -> String {
        let head = match self {
            Failure::Exited(n) => format!("install exited with {n}:"),
            Failure::Killed(s) => format!("install killed by signal {s}:"),
            Failure::NotRun(e) => format!("install could not run: {e}"),
        };
        format!("{head}\n{}", tail.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_command_line_is_read_and_what_is_missing_named() {
        let run = InstallRun::from_args(&args(&[
            "--marker",
            "/data/.mettaton-installed",
            "--token",
            "abc123",
            "--log",
            "/data/.mettaton-install.log",
            "--termination-log",
            "/dev/termination-log",
            "--",
            "bash",
            "-c",
            "echo hi",
        ]))
        .unwrap();
        assert_eq!(run.marker, PathBuf::from("/data/.mettaton-installed"));
        assert_eq!(run.token, "abc123");
        assert_eq!(run.termination_log, Some(PathBuf::from("/dev/termination-log")));
        assert_eq!(run.command, args(&["bash", "-c", "echo hi"]));
        assert!(run.done(Some("abc123")));
        assert!(!run.done(Some("abc123\n")), "exactly the token");
        assert!(!run.done(Some("old")));
        assert!(!run.done(None));

        let e = |a: &[&str]| InstallRun::from_args(&args(a)).unwrap_err();
        assert_eq!(e(&["--token", "t", "--log", "l", "--", "sh"]), "--marker is required");
        assert_eq!(e(&["--marker", "m", "--log", "l", "--", "sh"]), "--token is required");
        assert_eq!(e(&["--marker", "m", "--token", "t", "--", "sh"]), "--log is required");
        assert!(e(&["--marker", "m", "--token", "t", "--log", "l", "--"]).contains("no command"));
        assert!(e(&["--token", "", "--", "sh"]).starts_with("--token: "));
        assert_eq!(e(&["--colour", "red", "--", "sh"]), "unknown option --colour");
        assert_eq!(e(&["--marker"]), "--marker needs a value");
    }

    #[test]
    fn the_tail_keeps_the_last_20_lines() {
        let mut tail = Tail::default();
        assert_eq!(tail.text(), "");
        for i in 0..30 {
            tail.push(format!("line {i}"));
        }
        let text = tail.text();
        assert_eq!(text.lines().count(), TAIL_LINES);
        assert!(text.starts_with("line 10\n") && text.ends_with("line 29\n"), "{text}");
    }

    #[test]
    fn the_tail_keeps_the_last_4000_bytes_cut_at_a_char_boundary() {
        let mut tail = Tail::default();
        tail.push("first".to_string());
        // 3-byte chars: 4000 is no boundary from the end of this line.
        tail.push("€".repeat(1500));
        tail.push("the error".to_string());
        let text = tail.text();
        assert!(text.len() <= TAIL_BYTES && text.len() > TAIL_BYTES - 3, "{}", text.len());
        assert!(text.ends_with("€\nthe error\n"));
        assert!(!text.contains("first"));
        assert!(text.starts_with('€'));
    }

    #[test]
    fn a_failure_says_how_it_ended_and_its_code() {
        let mut tail = Tail::default();
        tail.push("curl: (6) Could not resolve host".to_string());
        assert_eq!(Failure::Exited(3).message(&tail), "install exited with 3:\ncurl: (6) Could not resolve host\n");
        assert_eq!(Failure::Exited(3).code(), 3);
        assert!(Failure::Killed(9).message(&tail).starts_with("install killed by signal 9:\n"));
        assert_eq!(Failure::Killed(9).code(), 1);
        let not_run = Failure::NotRun("cannot run bash: No such file or directory".to_string());
        assert_eq!(
            not_run.message(&Tail::default()),
            "install could not run: cannot run bash: No such file or directory\n"
        );
        assert_eq!(not_run.code(), 1);
    }
}
