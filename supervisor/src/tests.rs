use super::*;

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

#[test]
fn a_pattern_is_a_substring_unless_it_says_regex() {
    let done = Pattern::parse(")! For help, type ").unwrap();
    assert!(done.matches(r#"[12:00:01 INFO]: Done (3.2s)! For help, type "help""#));
    assert!(!done.matches("Loading libraries"));
    // Regex metacharacters in a substring are literal.
    assert!(Pattern::parse("Done (").unwrap().matches("Done (3s)"));
    let re = Pattern::parse(r"regex:^\[\d+:\d+:\d+ INFO\]: Done").unwrap();
    assert!(re.matches("[12:00:01 INFO]: Done (3.2s)!"));
    assert!(!re.matches("x [12:00:01 INFO]: Done"));
    assert_eq!(re.to_string(), r"regex:^\[\d+:\d+:\d+ INFO\]: Done");
}

#[test]
fn bad_patterns_are_refused_with_the_cause() {
    let e = Pattern::parse("regex:(unclosed").unwrap_err();
    assert!(e.contains("`regex:(unclosed` is not a valid regular expression"), "{e}");
    assert!(Pattern::parse("").unwrap_err().contains("empty"));
    let e = Pattern::parse_player("joined the game").unwrap_err();
    assert!(e.contains("does not capture the player's name"), "{e}");
    assert!(Pattern::parse_player(r"regex:\w+ joined").is_err(), "no group");
}

#[test]
fn the_player_is_the_named_capture_else_the_first_group() {
    let named = Pattern::parse_player(r"regex:^(\[.*\] )?(?P<player>\w+) joined the game").unwrap();
    assert_eq!(named.player("[12:00] Steve joined the game").as_deref(), Some("Steve"));
    let first = Pattern::parse_player(r"regex:^(\w+) left").unwrap();
    assert_eq!(first.player("Alex left the game").as_deref(), Some("Alex"));
    assert_eq!(first.player("nobody here"), None);
}

#[test]
fn a_stop_command_is_a_signal_or_a_console_line() {
    assert_eq!(Stop::parse("^C").unwrap(), Stop::Signal(libc::SIGINT));
    assert_eq!(Stop::parse("SIGTERM").unwrap(), Stop::Signal(libc::SIGTERM));
    assert_eq!(Stop::parse("stop").unwrap(), Stop::Line("stop".into()));
    assert_eq!(Stop::parse("say bye; stop").unwrap(), Stop::Line("say bye; stop".into()));
    let e = Stop::parse("SIGWINCH").unwrap_err();
    assert!(e.contains("`SIGWINCH` is not a signal the stop command can send"), "{e}");
    assert!(Stop::parse("stop\nquit").is_err());
    assert!(Stop::parse("  ").is_err());
}

#[test]
fn the_command_line_gives_the_config_back() {
    let mut config = Config::new("/.mettaton/run", args(&["/start.sh", "--nogui", "-- x"]));
    config.ready = vec![Pattern::parse("Done (").unwrap(), Pattern::parse("regex:^ready$").unwrap()];
    config.join = vec![Pattern::parse_player(r"regex:(?P<player>\S+) joined").unwrap()];
    config.leave = vec![Pattern::parse_player(r"regex:(\S+) left").unwrap()];
    config.stop = Stop::Signal(libc::SIGINT);
    config.grace = Duration::from_secs(45);
    config.lock = Some("/data/.mettaton-lock".into());
    let line = config.to_args();
    assert_eq!(
        line,
        args(&[
            "--state-dir",
            "/.mettaton/run",
            "--ready",
            "Done (",
            "--ready",
            "regex:^ready$",
            "--join",
            r"regex:(?P<player>\S+) joined",
            "--leave",
            r"regex:(\S+) left",
            "--stop",
            "SIGINT",
            "--lock",
            "/data/.mettaton-lock",
            "--grace",
            "45",
            "--",
            "/start.sh",
            "--nogui",
            "-- x"
        ])
    );
    let back = Config::from_args(&line).unwrap();
    assert_eq!(back.to_args(), line);
    assert_eq!(back.lock.as_deref(), Some(std::path::Path::new("/data/.mettaton-lock")));
    assert_eq!(back.stop, Stop::Signal(libc::SIGINT));
    assert_eq!(back.command, args(&["/start.sh", "--nogui", "-- x"]));
}

#[test]
fn a_bad_command_line_names_the_option() {
    let e = |a: &[&str]| Config::from_args(&args(a)).unwrap_err();
    assert_eq!(e(&["--", "game"]), "--state-dir is required");
    assert!(e(&["--state-dir", "/s", "--"]).contains("no command"));
    assert!(e(&["--state-dir", "/s", "--grace", "soon", "--", "g"]).contains("--grace: `soon`"));
    assert!(e(&["--state-dir", "/s", "--ready", "regex:(", "--", "g"]).starts_with("--ready: "));
    assert!(e(&["--state-dir", "/s", "--join", "joined", "--", "g"]).starts_with("--join: "));
    assert_eq!(e(&["--state-dir", "/s", "--colour", "red", "--", "g"]), "unknown option --colour");
    assert_eq!(e(&["--state-dir"]), "--state-dir needs a value");
}

fn players_config() -> Config {
    let mut config = Config::new("/s", args(&["g"]));
    config.join = vec![Pattern::parse_player(r"regex:^(?P<player>\S+) joined the game$").unwrap()];
    config.leave = vec![Pattern::parse_player(r"regex:^(?P<player>\S+) left the game$").unwrap()];
    config
}

#[test]
fn players_join_and_leave_and_a_change_is_reported_once() {
    let config = players_config();
    let mut p = Players::default();
    assert!(p.observe(&config, "Steve joined the game"));
    assert!(p.observe(&config, "Alex joined the game"));
    assert!(!p.observe(&config, "Steve joined the game"), "already on");
    assert!(!p.observe(&config, "Steve said: Alex left the game?"), "not a leave line");
    assert!(!p.observe(&config, "Herobrine left the game"), "was never on");
    assert_eq!(p.to_json(), r#"{"count":2,"names":["Alex","Steve"]}"#);
    assert!(p.observe(&config, "Steve left the game"));
    assert_eq!(p.count(), 1);
    assert_eq!(p.names().collect::<Vec<_>>(), ["Alex"]);
}

#[test]
fn players_beyond_the_bound_are_counted_not_named() {
    let config = players_config();
    let mut p = Players::default();
    for i in 0..MAX_NAMES + 5 {
        assert!(p.observe(&config, &format!("p{i:03} joined the game")));
    }
    assert_eq!(p.count(), MAX_NAMES + 5);
    assert_eq!(p.names().count(), MAX_NAMES);
    // Someone unnamed leaves: the count goes down.
    assert!(p.observe(&config, "p104 left the game"));
    assert_eq!(p.count(), MAX_NAMES + 4);
}

#[test]
fn player_names_are_json_escaped() {
    let mut config = Config::new("/s", args(&["g"]));
    config.join = vec![Pattern::parse_player(r"regex:^(.+) joined$").unwrap()];
    let mut p = Players::default();
    p.observe(&config, "a\"b\\c\u{1} joined");
    assert_eq!(p.to_json(), r#"{"count":1,"names":["a\"b\\c\u0001"]}"#);
}

#[test]
fn lines_are_cut_whatever_the_chunks() {
    let mut l = Lines::default();
    assert!(l.push(b"Do").is_empty());
    assert_eq!(l.push(b"ne (1s)\r\nnext\npar"), ["Done (1s)", "next"]);
    assert_eq!(l.push(b"tial\n\n"), ["partial", ""]);
    assert_eq!(l.push(&[0xff, b'x', b'\n']), ["\u{fffd}x"]);
    let long = vec![b'a'; Lines::MAX + 10];
    assert!(l.push(&long).is_empty());
    assert_eq!(l.push(b"\n")[0].len(), Lines::MAX);
}
