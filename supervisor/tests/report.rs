//! The supervisor's report as a process: output events and players from a
//! real game's lines, read through `status` and through its HTTP server with
//! a real TCP client, across boots, while the output passes through.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A port nothing listens on now (taken from the kernel, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// `mettaton-supervisor status --state-dir DIR/state EXTRA`.
fn status(dir: &Dir, extra: &[&str]) -> Output {
    let state = dir.state();
    let mut args = vec!["status", "--state-dir", &state];
    args.extend_from_slice(extra);
    Command::new(BIN).args(&args).output().unwrap()
}

/// The report `status` prints, without its newline.
fn report(dir: &Dir, extra: &[&str]) -> String {
    let out = status(dir, extra);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    printed.strip_suffix('\n').unwrap_or_else(|| panic!("no newline: {printed:?}")).to_string()
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as it is and reads the whole response.
fn send(port: u16, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {raw:?}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{head:?}"));
    Response { status, head: head.to_string(), body: body.to_string() }
}

fn get(port: u16, target: &str) -> Response {
    send(port, format!("GET {target} HTTP/1.1\r\nHost: game\r\n\r\n").as_bytes())
}

fn listening(port: u16) {
    until("the report's HTTP server", Duration::from_secs(5), || TcpStream::connect(("127.0.0.1", port)).is_ok());
}

fn matches(re: &str, s: &str) -> Vec<String> {
    let caps = regex_lite::Regex::new(re).unwrap().captures(s).unwrap_or_else(|| panic!("{s}\ndoes not match\n{re}"));
    caps.iter().skip(1).map(|c| c.map_or(String::new(), |m| m.as_str().to_string())).collect()
}

/// A game whose console lines come back as its output.
const ECHO: &str = "echo 'Done!'; while IFS= read -r line; do printf '%s\\n' \"$line\"; done";

#[test]
fn events_and_players_show_through_status_and_http_alike() {
    let dir = Dir::new("report");
    let port = free_port();
    let port_arg = port.to_string();
    let mut child = supervise(
        &dir,
        &[
            "--ready",
            "Done!",
            "--join",
            r"regex:^(?P<player>\S+) joined the game$",
            "--leave",
            r"regex:^(\S+) left the game$",
            "--event",
            r"Chat=regex:^<\S+> ",
            "--event",
            "PlayerJoined=joined the game",
            "--http",
            &port_arg,
        ],
        ECHO,
        Stdio::piped(),
    );
    listening(port);
    let mut console = child.stdin.take().unwrap();
    // A join line that is an event too; a chat line with what JSON escapes.
    console
        .write_all("Steve joined the game\n<Steve> say \"hi\" C:\\dir\ttab é ✓\nAlex joined the game\n".as_bytes())
        .unwrap();
    console.write_all(b"Alex left the game\nnothing to see\n").unwrap();
    until("three events", Duration::from_secs(5), || report(&dir, &[]).contains("\"nextSeq\":3"));
    let full = report(&dir, &[]);
    let caps = matches(
        &[
            r#"^\{"boot":"(\d{13})","ready":true,"players":\{"count":1,"names":\["Steve"\]\},"events":\["#,
            r#"\{"seq":0,"reason":"PlayerJoined","line":"Steve joined the game","at":"(\d{13})"\},"#,
            r#"\{"seq":1,"reason":"Chat","line":"<Steve> say \\"hi\\" C:\\\\dir\\u0009tab é ✓","at":"(\d{13})"\},"#,
            r#"\{"seq":2,"reason":"PlayerJoined","line":"Alex joined the game","at":"(\d{13})"\}"#,
            r#"\],"nextSeq":3\}$"#,
        ]
        .concat(),
        &full,
    );
    let boot: u64 = caps[0].parse().unwrap();
    let at: u64 = caps[1].parse().unwrap();
    assert!(boot <= at && at - boot < 60_000, "boot {boot}, first event at {at}");
    // HTTP serves what `status` prints, from the same files.
    let since = get(port, "/status?since=1");
    assert_eq!(since.status, 200, "{}", since.body);
    assert!(since.head.contains("\r\nContent-Type: application/json\r\n"), "{}", since.head);
    assert!(since.head.contains("\r\nConnection: close"), "{}", since.head);
    assert_eq!(since.body, report(&dir, &["--since", "1"]));
    assert!(since.body.contains(r#""events":[{"seq":1,"reason":"Chat""#), "{}", since.body);
    let all = get(port, "/status");
    assert_eq!(all.body, full);
    let old = send(port, b"GET /status?since=3 HTTP/1.0\r\n\r\n");
    assert!(old.head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(old.body.ends_with(r#""events":[],"nextSeq":3}"#), "{}", old.body);
    signal(&child, libc::SIGTERM);
    finish(child);
}

#[test]
fn the_http_server_refuses_what_it_does_not_serve_and_a_silent_client_blocks_nobody() {
    let dir = Dir::new("http");
    let port = free_port();
    let port_arg = port.to_string();
    let child = supervise(&dir, &["--http", &port_arg], "while :; do sleep 0.05; done", Stdio::null());
    listening(port);
    // Connected, says nothing: the others are answered meanwhile.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let ok = get(port, "/status?since=0");
    assert_eq!(ok.status, 200);
    assert!(ok.body.ends_with(r#","ready":true,"players":null,"events":[],"nextSeq":0}"#), "{}", ok.body);
    let not_found = get(port, "/metrics");
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.body, "/metrics is not here: GET /status?since=N\n");
    let post = send(port, b"POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert!(post.head.contains("\r\nAllow: GET"), "{}", post.head);
    let bad = get(port, "/status?since=soon");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body, "since: `soon` is not a seq (a number from 0)\n");
    assert_eq!(send(port, b"GET /status\r\n\r\n").status, 400);
    assert_eq!(send(port, b"GET /status HTTP/2.0\r\n\r\n").status, 505);
    // A head that never ends: no more than its bound is read.
    let long = format!("GET /status HTTP/1.1\r\nX: {}", "a".repeat(10_000));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(long.as_bytes());
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(text(&answer).starts_with("HTTP/1.1 431 "), "{}", text(&answer));
    assert!(started.elapsed() < Duration::from_secs(3), "waited for the silent client: {:?}", started.elapsed());
    // The silent client is let go at the deadline, with a 408.
    silent.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut late = Vec::new();
    silent.read_to_end(&mut late).unwrap();
    assert!(text(&late).starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{}", text(&late));
    signal(&child, libc::SIGTERM);
    finish(child);
}

#[test]
fn a_port_that_cannot_be_bound_is_said_and_the_game_runs_on() {
    let dir = Dir::new("busy");
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = finish(supervise(&dir, &["--http", &port, "--event", "Said=hello"], "echo hello; exit 3", Stdio::null()));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"hello\n");
    let said = text(&out.stderr);
    assert!(said.contains(&format!("cannot serve the report on port {port}: ")), "{said}");
    assert!(said.contains("the game runs on without it"), "{said}");
    assert!(report(&dir, &[]).contains(r#""reason":"Said","line":"hello""#));
}

#[test]
fn each_boot_has_its_own_report_and_none_is_no_report() {
    let dir = Dir::new("boots");
    let none = status(&dir, &[]);
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("no supervisor runs there"), "{}", text(&none.stderr));
    let run = |script: &str| {
        let out = finish(supervise(&dir, &["--event", "Said=said"], script, Stdio::null()));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let r = report(&dir, &[]);
        let boot: u64 = matches(r#"^\{"boot":"(\d+)""#, &r)[0].parse().unwrap();
        (boot, r)
    };
    let (first, r) = run("echo said one; echo said two");
    assert!(r.contains(r#""seq":1,"reason":"Said","line":"said two""#), "{r}");
    std::thread::sleep(Duration::from_millis(5));
    let (second, r) = run("echo said three");
    assert!(second > first, "boot {first} then {second}");
    // The earlier boot's events are gone; seq counts from 0 again.
    assert!(r.contains(r#""events":[{"seq":0,"reason":"Said","line":"said three""#), "{r}");
    assert!(r.ends_with(r#""nextSeq":1}"#), "{r}");
    let bad = status(&dir, &["--since", "-1"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(text(&bad.stderr).contains("--since: `-1` is not a seq"));
}

#[test]
fn the_ring_keeps_the_last_hundred_and_seq_goes_on() {
    let dir = Dir::new("ring");
    let script = "i=0; while [ $i -lt 150 ]; do echo \"said $i\"; i=$((i+1)); done";
    let out = finish(supervise(&dir, &["--event", "Said=said"], script, Stdio::null()));
    assert_eq!(out.status.code(), Some(0));
    let r = report(&dir, &[]);
    assert_eq!(r.matches(r#""reason":"Said""#).count(), 100, "{r}");
    assert!(r.contains(r#""events":[{"seq":50,"reason":"Said","line":"said 50""#), "{r}");
    assert!(r.contains(r#"{"seq":149,"reason":"Said","line":"said 149","at":"#), "{r}");
    assert!(r.ends_with(r#""nextSeq":150}"#), "{r}");
    let tail = report(&dir, &["--since", "145"]);
    assert_eq!(tail.matches(r#""reason":"Said""#).count(), 5, "{tail}");
    assert!(tail.contains(r#""events":[{"seq":145,"#), "{tail}");
    // Older than the ring: what is kept.
    assert_eq!(report(&dir, &["--since", "3"]), r);
}

#[test]
fn the_output_passes_through_byte_for_byte_while_events_are_kept_and_served() {
    let dir = Dir::new("passthrough");
    let port = free_port();
    let port_arg = port.to_string();
    // Not UTF-8, carriage returns, a line longer than an event keeps and one
    // longer than a line is matched on, both streams, a prompt at the end.
    let stop = dir.path("stop");
    let script = format!(
        "sleep 0.5; i=0; while [ $i -lt 200 ]; do printf '<p%d> hi \\377\\r\\n' $i; \
         printf 'err %d\\001\\n' $i >&2; i=$((i+1)); done; \
         printf '<big> '; head -c 70000 /dev/zero | tr '\\0' x; printf '\\n> '; \
         while [ ! -e {} ]; do sleep 0.05; done",
        stop.display()
    );
    let mut child = supervise(&dir, &["--event", r"Chat=regex:^<\w+> ", "--http", &port_arg], &script, Stdio::null());
    // Taken as it comes (more than a pipe holds).
    let take = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            from.read_to_end(&mut all).unwrap();
            all
        })
    };
    let stdout = take(Box::new(child.stdout.take().unwrap()));
    let stderr = take(Box::new(child.stderr.take().unwrap()));
    listening(port);
    // Asked all the while the game prints.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = std::sync::Arc::clone(&done);
    let poller = std::thread::spawn(move || {
        let mut answered = 0;
        while !polling.load(std::sync::atomic::Ordering::SeqCst) {
            let r = get(port, "/status?since=0");
            assert_eq!(r.status, 200, "{}", r.body);
            answered += 1;
        }
        answered
    });
    until("all the events", Duration::from_secs(20), || report(&dir, &[]).ends_with(r#""nextSeq":201}"#));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(poller.join().unwrap() >= 5, "asked while the game printed");
    std::fs::write(&stop, "").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let mut want_out = Vec::new();
    let mut want_err = Vec::new();
    for i in 0..200 {
        want_out.extend_from_slice(format!("<p{i}> hi ").as_bytes());
        want_out.extend_from_slice(b"\xff\r\n");
        want_err.extend_from_slice(format!("err {i}\x01\n").as_bytes());
    }
    want_out.extend_from_slice(b"<big> ");
    want_out.extend_from_slice(&[b'x'; 70000]);
    want_out.extend_from_slice(b"\n> ");
    assert_eq!(stdout.len(), want_out.len());
    assert!(stdout == want_out, "stdout changed");
    assert_eq!(stderr, want_err);
    let r = report(&dir, &[]);
    assert!(r.ends_with(r#""nextSeq":201}"#), "{}", &r[r.len() - 100..]);
    // The not-UTF-8 byte as U+FFFD; the long line cut to 1024 bytes.
    assert!(r.contains(r#"{"seq":199,"reason":"Chat","line":"<p199> hi �","at":"#), "{r}");
    let big = format!(r#""line":"<big> {}","at":"#, "x".repeat(1024 - 6));
    assert!(r.contains(&big), "{}", &r[r.len() - 200..]);
}
