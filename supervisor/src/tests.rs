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
    config.events = vec![
        ("Chat".to_string(), Pattern::parse(r"regex:^<(\w+)> (.*)$").unwrap()),
        ("Saved".to_string(), Pattern::parse("Saved the game=ok").unwrap()),
    ];
    config.http = Some(9396);
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
            "--event",
            r"Chat=regex:^<(\w+)> (.*)$",
            "--event",
            "Saved=Saved the game=ok",
            "--stop",
            "SIGINT",
            "--lock",
            "/data/.mettaton-lock",
            "--http",
            "9396",
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
    assert_eq!(back.http, Some(9396));
    let events: Vec<(&str, String)> = back.events.iter().map(|(r, p)| (r.as_str(), p.to_string())).collect();
    assert_eq!(events, [("Chat", r"regex:^<(\w+)> (.*)$".to_string()), ("Saved", "Saved the game=ok".to_string())]);
    // Without events nor HTTP: no such options.
    let plain = Config::new("/s", args(&["g"])).to_args();
    assert_eq!(plain, args(&["--state-dir", "/s", "--grace", "30", "--", "g"]));
    assert!(Config::from_args(&plain).unwrap().events.is_empty());
}

#[test]
fn config_files_go_through_the_command_line_and_back() {
    use files::{Edit, Parser, Replacement};
    let mut config = Config::new("/s", args(&["g"]));
    config.config_files = vec![
        ConfigFile {
            path: "/home/container/server.properties".into(),
            parser: Parser::Properties,
            edits: vec![
                Edit { key: "server-port".into(), value: Some("25565".into()), replace: None },
                Edit {
                    key: "motd".into(),
                    value: None,
                    replace: Some(vec![Replacement { matches: "regex:^A.*".into(), value: "B".into() }]),
                },
            ],
        },
        ConfigFile { path: "/home/container/config.xml".into(), parser: Parser::Xml, edits: Vec::new() },
    ];
    let line = config.to_args();
    let json = r#"[{"path":"/home/container/server.properties","parser":"properties","edits":[{"key":"server-port","value":"25565"},{"key":"motd","replace":[{"match":"regex:^A.*","value":"B"}]}]},{"path":"/home/container/config.xml","parser":"xml","edits":[]}]"#;
    assert_eq!(line, args(&["--state-dir", "/s", "--config-files", json, "--grace", "30", "--", "g"]));
    let back = Config::from_args(&line).unwrap();
    assert_eq!(back.config_files, config.config_files);
    assert_eq!(back.to_args(), line);
    let e = Config::from_args(&args(&["--state-dir", "/s", "--config-files", "[{}]", "--", "g"])).unwrap_err();
    assert!(e.starts_with("--config-files: missing field"), "{e}");
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

#[test]
fn a_bad_event_or_http_port_names_the_option_and_the_cause() {
    let e = |a: &str, v: &str| Config::from_args(&args(&["--state-dir", "/s", a, v, "--", "g"])).unwrap_err();
    assert_eq!(e("--event", "Chat"), "--event: `Chat` is not REASON=PATTERN (e.g. `Chat=regex:<(\\w+)> `)");
    let bad_reason = e("--event", "chat=said");
    assert!(bad_reason.starts_with("--event: `chat` is not a reason: a capital letter"), "{bad_reason}");
    assert!(e("--event", "Player-Chat=said").starts_with("--event: `Player-Chat` is not a reason"));
    assert!(e("--event", "=said").starts_with("--event: `` is not a reason"));
    let long = format!("A{}", "b".repeat(64));
    assert!(e("--event", &format!("{long}=x")).starts_with(&format!("--event: `{long}` is not a reason")));
    assert!(
        Config::from_args(&args(&["--state-dir", "/s", "--event", &format!("{}=x", &long[..64]), "--", "g"])).is_ok()
    );
    let bad_pattern = e("--event", "Chat=regex:(");
    assert!(bad_pattern.starts_with("--event: Chat: `regex:(` is not a valid regular expression"), "{bad_pattern}");
    assert_eq!(e("--event", "Chat="), "--event: Chat: an empty pattern matches every line");
    assert_eq!(e("--http", "0"), "--http: `0` is not a port (1 to 65535)");
    assert_eq!(e("--http", "65536"), "--http: `65536` is not a port (1 to 65535)");
    assert_eq!(e("--http", "web"), "--http: `web` is not a port (1 to 65535)");
}

fn events_config() -> Config {
    let mut config = Config::new("/s", args(&["g"]));
    config.events = vec![
        ("Chat".to_string(), Pattern::parse(r"regex:^<\w+> ").unwrap()),
        ("Said".to_string(), Pattern::parse("> ").unwrap()),
    ];
    config
}

#[test]
fn a_line_is_one_event_of_the_first_pattern_it_matches() {
    let config = events_config();
    let mut ev = Events::default();
    assert!(ev.observe(&config, "<Steve> hello", 10));
    assert!(ev.observe(&config, "[Server] > hi", 11));
    assert!(!ev.observe(&config, "Steve joined the game", 12));
    let got: Vec<(u64, &str, &str, u64)> =
        ev.since(0).map(|e| (e.seq, e.reason.as_str(), e.line.as_str(), e.at)).collect();
    assert_eq!(got, [(0, "Chat", "<Steve> hello", 10), (1, "Said", "[Server] > hi", 11)]);
    assert_eq!(ev.next_seq(), 2);
    assert_eq!(ev.since(1).count(), 1);
    assert_eq!(ev.since(2).count(), 0);
}

#[test]
fn the_ring_keeps_the_last_events_and_seq_goes_on() {
    let mut ev = Events::default();
    for i in 0..MAX_EVENTS as u64 + 5 {
        ev.push("Chat", &format!("line {i}"), 1000 + i);
    }
    assert_eq!(ev.next_seq(), MAX_EVENTS as u64 + 5);
    let seqs: Vec<u64> = ev.since(0).map(|e| e.seq).collect();
    assert_eq!(seqs, (5..MAX_EVENTS as u64 + 5).collect::<Vec<_>>());
    assert_eq!(ev.since(0).next().unwrap().line, "line 5");
    assert_eq!(ev.since(100).map(|e| e.seq).collect::<Vec<_>>(), [100, 101, 102, 103, 104]);
    // Through its file and back: the same ring.
    assert_eq!(Events::from_json(&ev.to_json()).unwrap(), ev);
}

#[test]
fn a_long_line_is_cut_on_a_char_boundary() {
    let mut ev = Events::default();
    // `é` is two bytes, at bytes 1023 and 1024: it goes whole.
    let line = format!("{}é and more", "a".repeat(MAX_EVENT_LINE - 1));
    ev.push("Chat", &line, 0);
    assert_eq!(ev.since(0).next().unwrap().line, "a".repeat(MAX_EVENT_LINE - 1));
    ev.push("Chat", &"b".repeat(5000), 0);
    assert_eq!(ev.since(1).next().unwrap().line.len(), MAX_EVENT_LINE);
    assert_eq!(cut("short", MAX_EVENT_LINE), "short");
    assert_eq!(cut("✓✓", 4), "✓");
}

#[test]
fn events_are_json_escaped_and_read_back() {
    let mut ev = Events::default();
    let line = "say \"hi\" C:\\dir\ttab\u{1}\u{1f}\u{7f} héllo ✓ 🎮 \u{2028}";
    ev.push("Chat", line, 1_700_000_000_123);
    let json = ev.to_json();
    assert_eq!(
        json,
        "{\"nextSeq\":1,\"events\":[{\"seq\":0,\"reason\":\"Chat\",\"line\":\"say \\\"hi\\\" C:\\\\dir\\u0009tab\\u0001\\u001f\u{7f} héllo ✓ 🎮 \u{2028}\",\"at\":\"1700000000123\"}]}"
    );
    let back = Events::from_json(&json).unwrap();
    assert_eq!(back.since(0).next().unwrap().line, line);
    // Escapes the writer does not use are read too: \n, \/, a surrogate pair.
    let other = r#"{"nextSeq":1,"events":[{"seq":0,"reason":"R","line":"a\nb\/c \ud83c\udfae \u00e9","at":"5"}]}"#;
    assert_eq!(Events::from_json(other).unwrap().since(0).next().unwrap().line, "a\nb/c 🎮 é");
}

#[test]
fn a_bad_state_file_is_refused_with_the_cause() {
    let e = |t: &str| Events::from_json(t).unwrap_err();
    assert!(e("").contains("expected a value"), "{}", e(""));
    assert!(e(r#"{"nextSeq":0,"events":[]} x"#).contains("unexpected text at byte 26"));
    assert_eq!(e(r#"{"events":[]}"#), "no `nextSeq` number");
    assert!(e(r#"{"nextSeq":99999999999999999999999,"events":[]}"#).contains("beyond u64"));
    assert!(e(&format!("{}1{}", "[".repeat(20), "]".repeat(20))).contains("nested too deeply"));
    let event = |line: &str| format!(r#"{{"nextSeq":1,"events":[{{"seq":0,"reason":"R","line":"{line}","at":"1"}}]}}"#);
    assert!(e(&event("a\u{1}b")).contains("a control character in a string"));
    assert!(e(&event(r"\ud83c x")).contains("a lone surrogate"));
    assert!(e(&event(r"\udfae")).contains("a lone surrogate"));
    assert!(e(&event(r"\u12g4")).contains("a bad \\u escape"));
    assert!(e(&event(r"\q")).contains("a bad escape"));
    assert_eq!(
        e(r#"{"nextSeq":1,"events":[{"seq":0,"reason":"R","line":"x","at":"soon"}]}"#),
        "an event's `at` is not unix milliseconds"
    );
    assert_eq!(e(r#"{"nextSeq":1,"events":[{"seq":0,"line":"x","at":"1"}]}"#), "an event has no `reason`");
    assert!(e(r#"{"nextSeq":1,"events":[{"seq":1,"reason":"R","line":"x","at":"1"}]}"#).contains("out of order"));
    let p = Players::from_json(r#"{"count":1,"names":["a","b"]}"#).unwrap_err();
    assert_eq!(p, "count 1 is less than the 2 names");
}

#[test]
fn players_are_read_back_with_those_counted_not_named() {
    let config = players_config();
    let mut p = Players::default();
    for i in 0..MAX_NAMES + 3 {
        p.observe(&config, &format!("p\"{i:03}\\ joined the game"));
    }
    let back = Players::from_json(&p.to_json()).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.count(), MAX_NAMES + 3);
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("mtn-supervisor-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn write(&self, name: &str, content: &str) {
        std::fs::write(self.0.join(name), content).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_report_is_built_from_the_state_files() {
    let dir = TempDir::new("report");
    let e = Report::read(&dir.0, 0).unwrap_err();
    assert_eq!(e, format!("no report in {}: no supervisor runs there", dir.0.display()));
    dir.write(BOOT_FILE, "1700000000000\n");
    let e = Report::read(&dir.0, 0).unwrap_err();
    assert!(e.starts_with("cannot read ") && e.contains("events.json"), "{e}");
    let mut ev = Events::default();
    ev.push("Chat", "<a> \"hi\"", 1700000000500);
    ev.push("Saved", "Saved", 1700000000600);
    dir.write(EVENTS_FILE, &ev.to_json());
    assert_eq!(
        Report::read(&dir.0, 0).unwrap().to_json(),
        r#"{"boot":"1700000000000","ready":false,"players":null,"events":[{"seq":0,"reason":"Chat","line":"<a> \"hi\"","at":"1700000000500"},{"seq":1,"reason":"Saved","line":"Saved","at":"1700000000600"}],"nextSeq":2}"#
    );
    dir.write(READY_FILE, "ready\n");
    dir.write(PLAYERS_FILE, r#"{"count":2,"names":["Alex","Steve"]}"#);
    assert_eq!(
        Report::read(&dir.0, 1).unwrap().to_json(),
        r#"{"boot":"1700000000000","ready":true,"players":{"count":2,"names":["Alex","Steve"]},"events":[{"seq":1,"reason":"Saved","line":"Saved","at":"1700000000600"}],"nextSeq":2}"#
    );
    let later = Report::read(&dir.0, 2).unwrap();
    assert!(later.events.is_empty());
    assert_eq!(later.next_seq, 2);
    dir.write(PLAYERS_FILE, "{\"count\":");
    assert!(Report::read(&dir.0, 0).unwrap_err().starts_with("players.json: not JSON"));
    dir.write(BOOT_FILE, "yesterday");
    assert!(Report::read(&dir.0, 0).unwrap_err().ends_with("boot does not hold unix milliseconds"));
}

#[test]
fn the_request_line_is_read_strictly() {
    let p = |head: &str| http::parse(head.as_bytes());
    let refused = |head: &str| p(head).unwrap_err().status;
    assert_eq!(p("GET /status HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(0));
    assert_eq!(p("GET /status?since=42 HTTP/1.0\r\n\r\n"), Ok(42));
    assert_eq!(p("GET /status?other=1&since=7 HTTP/1.1\n\n"), Ok(7));
    assert_eq!(refused("GET /status?since=x HTTP/1.1\r\n\r\n"), 400);
    let e = p("GET /status?since=-1 HTTP/1.1\r\n\r\n").unwrap_err();
    assert_eq!(e.message, "since: `-1` is not a seq (a number from 0)");
    assert_eq!(refused("GET /status?since=+1 HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(refused("GET /status?since= HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(refused("GET /status?since HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(refused("GET /status?since=1&since=2 HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(refused("GET /status?since=99999999999999999999999 HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(refused("GET / HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(refused("GET /status/ HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(refused("POST /other HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(refused("POST /status HTTP/1.1\r\n\r\n"), 405);
    assert_eq!(refused("HEAD /status HTTP/1.1\r\n\r\n"), 405);
    assert_eq!(refused("GET /status HTTP/2.0\r\n\r\n"), 505);
    for bad in [
        "GET  /status HTTP/1.1\r\n\r\n",
        "GET /status\r\n\r\n",
        "GET /status HTTP/1.1 extra\r\n\r\n",
        "GET status HTTP/1.1\r\n\r\n",
        "GET http://host/status HTTP/1.1\r\n\r\n",
        "G(T /status HTTP/1.1\r\n\r\n",
        "GET /sta\ttus HTTP/1.1\r\n\r\n",
        "GET /status FTP/1.0\r\n\r\n",
        "\r\n\r\n",
    ] {
        assert_eq!(refused(bad), 400, "{bad:?}");
    }
    assert_eq!(http::parse(b"GET /st\xffatus HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
}

#[test]
fn the_head_ends_at_its_blank_line() {
    assert_eq!(http::head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    assert_eq!(http::head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
    assert_eq!(http::head_end(b"GET / HTTP/1.0\n\n"), Some(16));
}

#[test]
fn a_response_says_its_length_and_closes() {
    assert_eq!(
        http::response(200, "application/json", b"{}"),
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    );
    let refused = String::from_utf8(http::response(405, "text/plain", b"no\n")).unwrap();
    assert!(refused.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && refused.contains("\r\nAllow: GET\r\n"));
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
    assert_eq!(l.finish(), None);
    assert!(l.push(b"no line ending").is_empty());
    assert_eq!(l.finish().as_deref(), Some("no line ending"));
    assert_eq!(l.finish(), None);
}
