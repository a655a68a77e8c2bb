//! `install-run` as a process: the built binary runs shell scripts standing
//! in for an egg's install script.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::*;

/// `mettaton-supervisor install-run` on `DIR`'s marker and log with TOKEN.
fn install(dir: &Dir, token: &str, script: &str) -> Output {
    let (marker, log, term) = (dir.path("data/.installed"), dir.path("logs/install.log"), dir.path("termination-log"));
    Command::new(BIN)
        .arg("install-run")
        .args(["--marker", &marker.display().to_string(), "--token", token])
        .args(["--log", &log.display().to_string(), "--termination-log", &term.display().to_string()])
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn an_install_runs_once_per_token_and_its_output_is_logged() {
    let dir = Dir::new("install-once");
    let runs = dir.path("runs");
    let script = format!("echo run >> {}; echo out; echo err >&2; printf 'no newline'", runs.display());
    let out = install(&dir, "v1", &script);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // Both streams, line by line, in their order.
    assert_eq!(stdout, "out\nerr\nno newline\nmettaton-supervisor: install: done\n");
    assert_eq!(read(&dir.path("logs/install.log")).as_deref(), Some(stdout.as_str()));
    assert_eq!(read(&dir.path("data/.installed")).as_deref(), Some("v1"));
    assert_eq!(read(&dir.path("termination-log")), None);

    let again = install(&dir, "v1", &script);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(text(&again.stdout), "mettaton-supervisor: install: already done (v1)\n");
    assert_eq!(read(&runs).as_deref(), Some("run\n"), "not run again");

    // Another token (another script or variables): run again, the log anew.
    let third = install(&dir, "v2", &format!("echo run >> {}; echo second", runs.display()));
    assert_eq!(third.status.code(), Some(0));
    assert_eq!(read(&runs).as_deref(), Some("run\nrun\n"));
    assert_eq!(read(&dir.path("data/.installed")).as_deref(), Some("v2"));
    assert_eq!(read(&dir.path("logs/install.log")).as_deref(), Some("second\nmettaton-supervisor: install: done\n"));
}

#[test]
fn a_failed_install_leaves_its_last_lines_in_the_termination_log_and_no_marker() {
    let dir = Dir::new("install-fails");
    let out = install(
        &dir,
        "v1",
        "i=0; while [ $i -lt 30 ]; do echo \"line $i\"; i=$((i+1)); done; echo 'fatal: no space' >&2; exit 3",
    );
    assert_eq!(out.status.code(), Some(3));
    let message = read(&dir.path("termination-log")).unwrap();
    let expected: String = (11..30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(message, format!("install exited with 3:\n{expected}fatal: no space\n"));
    assert!(text(&out.stdout).ends_with(&format!("mettaton-supervisor: {message}")), "{}", text(&out.stdout));
    assert_eq!(read(&dir.path("data/.installed")), None);
    assert!(read(&dir.path("logs/install.log")).unwrap().starts_with("line 0\n"));

    // A marker of an older install stays as it was; the install runs again.
    std::fs::create_dir_all(dir.path("data")).unwrap();
    std::fs::write(dir.path("data/.installed"), "v0").unwrap();
    let killed = install(&dir, "v1", "echo dying; kill -9 $$");
    assert_eq!(killed.status.code(), Some(1));
    assert_eq!(read(&dir.path("termination-log")).as_deref(), Some("install killed by signal 9:\ndying\n"));
    assert_eq!(read(&dir.path("data/.installed")).as_deref(), Some("v0"));
}

#[test]
fn an_install_that_cannot_run_or_is_misused_says_why() {
    let dir = Dir::new("install-notfound");
    let out = Command::new(BIN)
        .args(["install-run", "--marker", &dir.path("m").display().to_string(), "--token", "t"])
        .args(["--log", &dir.path("log").display().to_string()])
        .args(["--termination-log", &dir.path("term").display().to_string(), "--", "/no/such/bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = read(&dir.path("term")).unwrap();
    assert!(message.starts_with("install could not run: cannot run /no/such/bash: "), "{message}");
    assert_eq!(read(&dir.path("m")), None);

    let usage = Command::new(BIN).args(["install-run", "--token", "t", "--", "sh"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(125));
    assert!(text(&usage.stderr).contains("install-run: --marker is required"), "{}", text(&usage.stderr));
}

#[test]
fn a_process_the_install_left_behind_does_not_hold_it() {
    let dir = Dir::new("install-daemon");
    let start = std::time::Instant::now();
    // The orphan keeps the output's pipe open.
    let out = install(&dir, "v1", "sleep 20 & echo started");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(start.elapsed() < std::time::Duration::from_secs(10), "{:?}", start.elapsed());
    assert_eq!(text(&out.stdout), "started\nmettaton-supervisor: install: done\n");
}
