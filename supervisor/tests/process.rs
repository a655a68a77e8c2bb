//! The supervisor as a process: the built binary runs real child processes
//! (POSIX shell scripts standing in for games) and is signalled for real.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

#[test]
fn the_games_output_passes_through_byte_for_byte_and_its_exit_code_too() {
    let dir = Dir::new("bytes");
    // Not UTF-8, a carriage return, a prompt without a newline, both streams.
    let script = r"printf 'one\r\n\377\376 two\n> '; printf 'err\001\n' >&2; exit 7";
    let out = finish(supervise(&dir, &[], script, Stdio::null()));
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stdout, b"one\r\n\xff\xfe two\n> ");
    assert_eq!(out.stderr, b"err\x01\n");
}

#[test]
fn a_game_killed_by_a_signal_exits_with_128_plus_the_signal() {
    let dir = Dir::new("killed");
    let out = finish(supervise(&dir, &[], "kill -9 $$", Stdio::null()));
    assert_eq!(out.status.code(), Some(128 + 9));
}

#[test]
fn a_command_that_cannot_run_and_bad_usage_have_their_exit_codes() {
    let dir = Dir::new("notfound");
    let state = dir.state();
    let out = Command::new(BIN).args(["run", "--state-dir", &state, "--", "/no/such/game"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).contains("cannot run /no/such/game"), "{}", text(&out.stderr));
    let out = Command::new(BIN).args(["run", "--", "/bin/true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("--state-dir is required"));
}

#[test]
fn sigterm_types_the_stop_line_into_the_console_and_the_game_saves() {
    let dir = Dir::new("stopline");
    let saved = dir.path("world");
    // A game that ignores SIGTERM and stops only through its console.
    let script = format!(
        "trap 'echo ignored TERM' TERM; echo started; while read line; do echo \"console: $line\"; \
         if [ \"$line\" = stop ]; then echo saved > {}; exit 0; fi; done",
        saved.display()
    );
    let child = supervise(&dir, &["--stop", "stop", "--grace", "20"], &script, Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), "saved\n");
    assert_eq!(text(&out.stdout), "started\nconsole: stop\n", "the game got no SIGTERM");
    assert!(text(&out.stderr).contains("typing `stop` into its console"));
}

#[test]
fn a_stop_signal_goes_to_the_games_whole_process_group() {
    let dir = Dir::new("stopsig");
    let marker = dir.path("child-got-int");
    // The game's own child (in the foreground: a shell's `&` children ignore
    // SIGINT) gets the signal too, as with ^C in a terminal; the game's trap
    // runs only once that child ended.
    let script = format!(
        "trap 'exit 3' INT; sh -c 'trap \"touch {}; exit 0\" INT; while :; do sleep 0.05; done'",
        marker.display()
    );
    let child = supervise(&dir, &["--stop", "^C", "--grace", "5"], &script, Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(3));
    assert!(marker.exists(), "the game's child got SIGINT");
}

#[test]
fn without_a_stop_command_the_signal_is_passed_on() {
    let dir = Dir::new("forward");
    let child = supervise(&dir, &[], "echo up; while :; do sleep 0.05; done", Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    assert_eq!(finish(child).status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn a_game_that_is_not_a_shell_gets_the_signal_unblocked() {
    // The supervisor blocks the signals it takes; the game must not inherit
    // that mask (a shell clearing its own hid it): `sleep`, started directly,
    // dies of the forwarded SIGTERM, not of the kill after the grace.
    let dir = Dir::new("mask");
    let state = dir.state();
    let child = Command::new(BIN)
        .args(["run", "--state-dir", &state, "--grace", "20", "--", "/bin/sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let mut game = String::new();
    until("the game", Duration::from_secs(5), || {
        game = std::fs::read_to_string(&children).unwrap_or_default().trim().to_string();
        std::fs::read_to_string(format!("/proc/{game}/cmdline")).is_ok_and(|c| c.starts_with("/bin/sleep"))
    });
    let status = std::fs::read_to_string(format!("/proc/{game}/status")).unwrap();
    assert!(status.lines().any(|l| l == "SigBlk:\t0000000000000000"), "{status}");
    let asked = Instant::now();
    signal(&child, libc::SIGTERM);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM), "{}", text(&out.stderr));
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
}

#[test]
fn a_game_that_does_not_exit_within_its_grace_is_killed() {
    let dir = Dir::new("grace");
    let child = supervise(&dir, &["--grace", "1"], "trap '' TERM; while :; do sleep 0.05; done", Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    signal(&child, libc::SIGTERM);
    let out = finish(child);
    let took = asked.elapsed();
    assert_eq!(out.status.code(), Some(128 + libc::SIGKILL));
    assert!(took >= Duration::from_secs(1), "not before the grace: {took:?}");
    assert!(text(&out.stderr).contains("did not exit within 1 s of its stop: killed"));
}

#[test]
fn other_signals_are_passed_on_and_a_second_sigterm_does_not_stop_twice() {
    let dir = Dir::new("hup");
    let script = "trap 'echo got HUP' HUP; trap 'echo got TERM' TERM; echo up; \
                  while [ ! -e stopnow ]; do sleep 0.05; done; echo bye";
    let mut cmd = Command::new(BIN);
    let state = dir.state();
    cmd.args(["run", "--state-dir", &state, "--", "/bin/sh", "-c", script]).current_dir(&dir.0);
    // Started as `nohup` starts it: SIGHUP ignored, which the game must not
    // inherit (a shell cannot trap a signal ignored at its start).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(text(&buf[..n])).is_err() {
                return;
            }
        }
    });
    let mut seen = String::new();
    let mut read_until = |want: &str| {
        while !seen.contains(want) {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(chunk) => seen.push_str(&chunk),
                Err(e) => panic!("no {want:?} ({e}): {seen:?}"),
            }
        }
    };
    read_until("up\n");
    signal(&child, libc::SIGHUP);
    read_until("got HUP\n");
    signal(&child, libc::SIGTERM);
    read_until("got TERM\n");
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.path("stopnow"), "").unwrap();
    read_until("bye\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(seen.matches("got TERM").count(), 1, "{seen}");
}

#[test]
fn the_console_reaches_the_game_and_its_end_does_not_close_the_games_stdin() {
    let dir = Dir::new("console");
    let mut child = supervise(&dir, &[], "while read line; do echo \"got $line\"; done; echo EOF", Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"say hello\n").unwrap();
    drop(stdin);
    // The console went away; the game's stdin stays open: no EOF reaches it.
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, libc::SIGTERM);
    let out = finish(child);
    assert_eq!(text(&out.stdout), "got say hello\n");
}

#[test]
fn no_console_at_all_leaves_the_games_stdin_open() {
    let dir = Dir::new("noconsole");
    let child = supervise(&dir, &[], "cat; echo EOF", Stdio::null());
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, libc::SIGTERM);
    let out = finish(child);
    assert_eq!(text(&out.stdout), "", "cat never saw the end of its input");
}

fn zombies_of(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a.to_string()) else { continue };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            found.push(stat);
        }
    }
    found
}

#[test]
fn orphans_of_the_game_are_reaped() {
    let dir = Dir::new("zombies");
    // Grandchildren whose parent exits at once: orphans, reparented to the
    // supervisor (a subreaper), which must reap them when they end.
    let script = "for i in 1 2 3 4 5; do sh -c 'sleep 0.2 & exit 0'; done; echo spawned; \
                  while :; do sleep 0.05; done";
    let child = supervise(&dir, &[], script, Stdio::null());
    std::thread::sleep(Duration::from_millis(1200));
    let zombies = zombies_of(child.id());
    signal(&child, libc::SIGTERM);
    finish(child);
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn the_ready_line_creates_the_ready_file_and_the_probe_follows_it() {
    let dir = Dir::new("ready");
    let ready = dir.path("state/ready");
    let child = supervise(
        &dir,
        &["--ready", "regex:^Done \\(", "--ready", "never printed"],
        "echo 'Loading'; sleep 0.8; echo 'Done (0.8s)! For help, type \"help\"'; while :; do sleep 0.05; done",
        Stdio::null(),
    );
    let probe = |extra: &[&str]| {
        let state = dir.state();
        let mut args = vec!["probe", "--state-dir", &state];
        args.extend_from_slice(extra);
        Command::new(BIN).args(&args).output().unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!exists(&ready), "not before the line");
    let not_yet = probe(&[]);
    assert_eq!(not_yet.status.code(), Some(1));
    assert!(text(&not_yet.stderr).contains("has not printed its ready line yet"));
    until("the ready file", Duration::from_secs(5), || exists(&ready));
    assert_eq!(probe(&[]).status.code(), Some(0));
    // Combined with a TCP check and a command: all must pass.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port().to_string();
    assert_eq!(probe(&["--tcp", &open]).status.code(), Some(0));
    drop(listener);
    let closed = probe(&["--tcp", &open]);
    assert_eq!(closed.status.code(), Some(1));
    assert!(text(&closed.stderr).contains(&format!("nothing takes a connection on port {open}")));
    assert_eq!(probe(&["--", "/bin/sh", "-c", "exit 4"]).status.code(), Some(4));
    signal(&child, libc::SIGTERM);
    finish(child);
}

#[test]
fn a_restarted_supervisor_starts_unready_and_without_players() {
    let dir = Dir::new("restart");
    std::fs::create_dir_all(dir.path("state")).unwrap();
    std::fs::write(dir.path("state/ready"), "ready\n").unwrap();
    std::fs::write(dir.path("state/players.json"), r#"{"count":3,"names":["a","b","c"]}"#).unwrap();
    let child = supervise(&dir, &["--ready", "Done"], "while :; do sleep 0.05; done", Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!dir.path("state/ready").exists());
    assert!(!dir.path("state/players.json").exists());
    signal(&child, libc::SIGTERM);
    finish(child);
}

#[test]
fn join_and_leave_lines_keep_the_players_file() {
    let dir = Dir::new("players");
    let players = dir.path("state/players.json");
    let mut child = supervise(
        &dir,
        &["--join", r"regex:^(?P<player>\S+) joined the game$", "--leave", r"regex:^(\S+) left the game$"],
        "while read line; do echo \"$line\"; done",
        Stdio::piped(),
    );
    let read = || std::fs::read_to_string(&players).unwrap_or_default();
    until("an empty players file", Duration::from_secs(5), || read() == r#"{"count":0,"names":[]}"#);
    let mut console = child.stdin.take().unwrap();
    console.write_all(b"Steve joined the game\nAlex joined the game\n").unwrap();
    until("two players", Duration::from_secs(5), || read() == r#"{"count":2,"names":["Alex","Steve"]}"#);
    console.write_all(b"Steve left the game\n").unwrap();
    until("one player", Duration::from_secs(5), || read() == r#"{"count":1,"names":["Alex"]}"#);
    signal(&child, libc::SIGTERM);
    finish(child);
}

#[test]
fn install_copies_the_binary_where_it_is_asked() {
    let dir = Dir::new("install");
    let target = dir.path("bin");
    let out = Command::new(BIN).args(["install", &target.display().to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let installed = target.join("mettaton-supervisor");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(BIN).unwrap());
    let usage = Command::new(&installed).output().unwrap();
    assert_eq!(usage.status.code(), Some(125), "the copy runs");
}

#[test]
fn a_second_instance_on_the_same_lock_waits_for_the_first_to_end() {
    let dir = Dir::new("lock");
    let lock = dir.path("world.lock").display().to_string();
    let log = dir.path("log");
    let script = |who: &str| {
        format!(
            "echo {who} started >> {}; while [ ! -e {}/stop-{who} ]; do sleep 0.05; done",
            log.display(),
            dir.0.display()
        )
    };
    let first = supervise(&dir, &["--lock", &lock], &script("first"), Stdio::null());
    until("the first started", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("first"))
    });
    let second = supervise(&dir, &["--lock", &lock], &script("second"), Stdio::null());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first started\n", "the second waits");
    std::fs::write(dir.path("stop-first"), "").unwrap();
    finish(first);
    until("the second started", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("second"))
    });
    std::fs::write(dir.path("stop-second"), "").unwrap();
    let out = finish(second);
    assert!(text(&out.stderr).contains("waiting for the instance holding"), "{}", text(&out.stderr));
    // Stopped while it waits: it exits without starting the game.
    let holder = supervise(&dir, &["--lock", &lock], "while :; do sleep 0.05; done", Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    let waiting = supervise(&dir, &["--lock", &lock], &script("never"), Stdio::null());
    std::thread::sleep(Duration::from_millis(500));
    signal(&waiting, libc::SIGTERM);
    assert_eq!(finish(waiting).status.code(), Some(128 + libc::SIGTERM));
    assert!(!std::fs::read_to_string(&log).unwrap().contains("never"));
    signal(&holder, libc::SIGTERM);
    finish(holder);
}
