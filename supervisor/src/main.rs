//! `mettaton-supervisor`: the first process of a game server's container.
//!
//! - `run [options] -- GAME ARGS...` starts the game as its child, in a
//!   process group of its own, and stays until it ends, then exits with its
//!   exit code (128 + the signal when a signal ended it). The game's output is
//!   passed on byte for byte as it comes (stdout to stdout, stderr to
//!   stderr); a copy is cut into lines and matched: the ready lines create
//!   `STATE_DIR/ready` (created at once when there is no ready line to wait
//!   for), join and leave lines rewrite `STATE_DIR/players.json`, event lines
//!   (`--event REASON=PATTERN`) `STATE_DIR/events.json` (the last 100);
//!   `STATE_DIR/boot` (when it started, unix ms) is written last at start,
//!   once the files of an earlier boot are gone. With `--http PORT` the report
//!   built from these files is served at `GET /status?since=N` on
//!   0.0.0.0:PORT (a port that cannot be bound is said on stderr; the game
//!   runs on).
//!   What comes on the supervisor's stdin (a console attached through the
//!   runtime) goes to the game's stdin; when that ends, the game's stdin
//!   stays open (games stop on end of input). SIGTERM or SIGINT stops the
//!   game as `--stop` says (a console line, a signal, or by default the
//!   signal itself), once; after `--grace` seconds the game's process group is
//!   killed. Other signals (HUP, QUIT, USR1, USR2) are passed on. As PID 1,
//!   or else as a child subreaper, it reaps every orphan.
//!   With `--lock FILE` (on the data volume) the game starts only once no
//!   other instance holds that file's lock.
//!   With `--config-files JSON` (an array of `{"path": ABSOLUTE, "parser":
//!   "file"|"properties"|"yaml"|"ini"|"json"|"xml", "edits": [{"key": K,
//!   "value": V} or {"key": K, "replace": [{"match": M, "value": V}]}]}`)
//!   the files are edited as Pterodactyl's Wings edits an egg's config
//!   files (see `files.rs`), after the lock and before the game starts, on
//!   every start: `config: PATH: N edits` is said for each file edited, and
//!   `config: PATH: why` for one that cannot be (the game starts anyway).
//! - `probe --state-dir DIR [--tcp PORT] [-- COMMAND...]`: exit 0 when the
//!   ready file exists, the TCP port takes a connection on 127.0.0.1, and the
//!   command (if any) succeeds: the readiness check of a server whose
//!   readiness comes from its log.
//! - `status --state-dir DIR [--since N]`: prints the report (one JSON
//!   object) of the supervisor running on DIR, as the HTTP server serves it:
//!   for a backend that can exec in the container but not reach its network.
//! - `install-run --marker FILE --token TOKEN --log FILE [--termination-log
//!   FILE] -- COMMAND ARGS...`: runs an install script once per volume. When
//!   the marker holds exactly TOKEN, says `install: already done (TOKEN)`
//!   and exits 0. Else runs COMMAND (stdin /dev/null, in a process group of
//!   its own, signals passed on, orphans reaped), its stdout and stderr
//!   copied line by line to this stdout and to the log (written anew, its
//!   directory created). On exit 0 the marker gets TOKEN (atomically) and
//!   `install: done` is said; else the message `install exited with N:` (or
//!   `install killed by signal S:`, or `install could not run: why`) and the
//!   output's last lines (at most 20 lines, 4000 bytes) are written to the
//!   termination log (Kubernetes' `/dev/termination-log`) and said, the
//!   marker is left as it is, and the exit code is COMMAND's (1 when it was
//!   killed or could not run). What it says goes to stdout and the log
//!   (an install already done leaves the log of its run as it was).
//! - `install DIR`: copies this binary to `DIR/mettaton-supervisor` (run by
//!   the init container that brings it into the game's container).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mettaton_supervisor::install::{Failure, InstallRun, Tail};
use mettaton_supervisor::{
    BOOT_FILE, Config, EVENTS_FILE, Events, Lines, PLAYERS_FILE, Players, READY_FILE, Report, Stop, files, http,
};

/// Exit codes of the supervisor itself, as shells and container runtimes use
/// them: bad usage, a command that cannot run, a command not found.
const EXIT_USAGE: i32 = 125;
const EXIT_CANNOT_RUN: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;
/// How long the output of a game that exited may take to drain (a daemon it
/// left behind may hold its pipes open forever).
const DRAIN: Duration = Duration::from_secs(2);
/// The signals the supervisor takes instead of the game.
const HANDLED: [i32; 6] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];
/// How long changed players and events may wait to be written while the game
/// prints faster than they are (they are written whenever its output is all
/// taken).
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// The HTTP server: connections served at once (more are closed at once),
/// the time one gets for its request and for its response, a handler's stack.
const HTTP_CONNECTIONS: usize = 16;
const HTTP_DEADLINE: Duration = Duration::from_secs(5);
const HTTP_STACK: usize = 256 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("probe") => probe(&args[1..]),
        Some("status") => status(&args[1..]),
        Some("install") => install(&args[1..]),
        Some("install-run") => install_run(&args[1..]),
        _ => {
            say(
                "usage: mettaton-supervisor run|probe|status|install|install-run ... (see the project's ARCHITECTURE.md)",
            );
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}

/// A message of the supervisor's own, on its stderr.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "mettaton-supervisor: {message}");
}

enum Event {
    Line(String),
    Signal(i32),
    /// The child's wait status.
    Exited(i32),
    /// One of the game's output streams reached its end.
    Drained,
}

fn run(args: &[String]) -> i32 {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            say(&e);
            return EXIT_USAGE;
        }
    };
    // A container restarted on the same volume starts unready and empty.
    if let Err(e) = std::fs::create_dir_all(&config.state_dir) {
        say(&format!("cannot create the state directory {}: {e}", config.state_dir.display()));
        return EXIT_USAGE;
    }
    // The boot first: no report until this boot's files are all written.
    for file in [BOOT_FILE, READY_FILE, PLAYERS_FILE, EVENTS_FILE] {
        let _ = std::fs::remove_file(config.state_dir.join(file));
    }
    let mut state = State::new(&config);
    write_atomically(&config.state_dir, BOOT_FILE, format!("{}\n", unix_ms()).as_bytes());

    let set = take_signals();
    // Its threads, started after that mask, never take those signals.
    if let Some(port) = config.http {
        serve(port, config.state_dir.clone());
    }

    // Held (open) until the supervisor exits.
    let _lock = match &config.lock {
        Some(path) => match lock(path, &set) {
            Ok(file) => Some(file),
            Err(code) => return code,
        },
        None => None,
    };
    for file in &config.config_files {
        let path = &file.path;
        match files::apply(file) {
            Ok(()) => say(&format!("config: {path}: {} edits", file.edits.len())),
            Err(e) => say(&format!("config: {path}: {e}")),
        }
    }

    let mut game = Command::new(&config.command[0]);
    game.args(&config.command[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    own_group(&mut game);
    let mut child = match game.spawn() {
        Ok(c) => c,
        Err(e) => {
            say(&format!("cannot run {}: {e}", config.command[0]));
            return match e.kind() {
                ErrorKind::NotFound => EXIT_NOT_FOUND,
                _ => EXIT_CANNOT_RUN,
            };
        }
    };
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    let stdin = Arc::new(Mutex::new(child.stdin.take()));
    pump(child.stdout.take().unwrap(), 1, tx.clone());
    pump(child.stderr.take().unwrap(), 2, tx.clone());
    console(Arc::clone(&stdin));
    signals(set, tx.clone());
    reap(pid, tx);

    let mut kill_at: Option<Instant> = None;
    let mut exited: Option<(i32, Instant)> = None;
    let mut drained = 0;
    loop {
        let wait = match (exited, kill_at) {
            (Some((_, at)), _) => (at + DRAIN).saturating_duration_since(Instant::now()),
            (None, Some(at)) => at.saturating_duration_since(Instant::now()),
            (None, None) => Duration::from_secs(3600),
        };
        // Lines that came together are written together.
        let event = match rx.try_recv() {
            Ok(event) => Ok(event),
            Err(_) => {
                state.flush();
                rx.recv_timeout(wait)
            }
        };
        match event {
            Ok(Event::Line(line)) => state.observe(&line),
            Ok(Event::Signal(sig)) if sig == libc::SIGTERM || sig == libc::SIGINT => {
                if exited.is_none() && kill_at.is_none() {
                    stop(&config.stop, sig, pid, &stdin);
                    kill_at = Some(Instant::now() + config.grace);
                }
            }
            Ok(Event::Signal(sig)) => unsafe {
                libc::kill(-pid, sig);
            },
            Ok(Event::Exited(status)) => exited = Some((exit_code(status), Instant::now())),
            Ok(Event::Drained) => drained += 1,
            Err(_) => {}
        }
        // Checked on every turn: a game flooding its output after its stop
        // never lets the wait time out.
        if exited.is_none() && kill_at.is_some_and(|at| Instant::now() >= at) {
            say(&format!("the game did not exit within {} s of its stop: killed", config.grace.as_secs()));
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            kill_at = None;
        }
        if let Some((code, at)) = exited
            && (drained == 2 || at.elapsed() >= DRAIN)
        {
            state.flush();
            return code;
        }
    }
}

/// Has `command` start in a process group of its own, with a clean signal
/// mask: std's posix_spawn leaves the child our mask, and a blocked signal
/// stays blocked through exec: the game would never get SIGTERM (a shell
/// that clears its own mask hid it; `sleep` or a JVM started directly do
/// not). sigprocmask is async-signal-safe, as a pre_exec hook must be.
fn own_group(command: &mut Command) {
    command.process_group(0);
    unsafe {
        command.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            match libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
}

/// A wait status as an exit code: 128 + the signal when a signal ended it.
fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What the game's lines made of the state directory's files.
struct State<'a> {
    config: &'a Config,
    ready: bool,
    players: Players,
    events: Events,
    /// Players or events changed since they were last written.
    dirty: bool,
    flushed: Instant,
}

impl State<'_> {
    /// A new boot's files: unready unless there is no ready line to wait for,
    /// no players, no events.
    fn new(config: &Config) -> State<'_> {
        let state = State {
            config,
            ready: config.ready.is_empty(),
            players: Players::default(),
            events: Events::default(),
            dirty: false,
            flushed: Instant::now(),
        };
        if state.ready {
            write_atomically(&config.state_dir, READY_FILE, b"ready\n");
        }
        state.write();
        state
    }

    /// One line may be a ready line, a join or leave line and an event at once.
    fn observe(&mut self, line: &str) {
        if !self.ready && self.config.ready.iter().any(|p| p.matches(line)) {
            self.ready = true;
            write_atomically(&self.config.state_dir, READY_FILE, b"ready\n");
        }
        self.dirty |= self.players.observe(self.config, line);
        self.dirty |= self.events.observe(self.config, line, unix_ms());
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.dirty {
            self.write();
            self.dirty = false;
        }
        self.flushed = Instant::now();
    }

    fn write(&self) {
        let dir = &self.config.state_dir;
        if !self.config.join.is_empty() {
            write_atomically(dir, PLAYERS_FILE, self.players.to_json().as_bytes());
        }
        write_atomically(dir, EVENTS_FILE, self.events.to_json().as_bytes());
    }
}

/// Serves the report on 0.0.0.0:`port`, from threads of its own: one takes
/// the connections, one per connection (at most [`HTTP_CONNECTIONS`]) reads
/// its request and answers it, within [`HTTP_DEADLINE`] each way. Nothing
/// here may stop the game: a failure is said and the game runs on.
fn serve(port: u16, dir: PathBuf) {
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(l) => l,
        Err(e) => {
            say(&format!("cannot serve the report on port {port}: {e}; the game runs on without it"));
            return;
        }
    };
    let accept = move || {
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, say: not a busy loop.
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if active.load(Ordering::SeqCst) >= HTTP_CONNECTIONS {
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (dir, done) = (dir.clone(), Arc::clone(&active));
            let handler = thread::Builder::new().stack_size(HTTP_STACK).spawn(move || {
                answer(stream, &dir);
                done.fetch_sub(1, Ordering::SeqCst);
            });
            if handler.is_err() {
                active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    };
    if let Err(e) = thread::Builder::new().stack_size(HTTP_STACK).spawn(accept) {
        say(&format!("cannot serve the report on port {port}: {e}; the game runs on without it"));
    }
}

/// Reads one request (its head, at most [`http::MAX_HEAD`] bytes, within the
/// deadline), answers it and closes the connection.
fn answer(mut stream: TcpStream, dir: &Path) {
    let deadline = Instant::now() + HTTP_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let response = loop {
        if let Some(end) = http::head_end(&buf) {
            break respond(&buf[..end], dir);
        }
        if buf.len() >= http::MAX_HEAD {
            let message = format!("the request's head is longer than {} bytes\n", http::MAX_HEAD);
            break http::response(431, "text/plain", message.as_bytes());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break http::response(408, "text/plain", b"no whole request in time\n");
        }
        let room = chunk.len().min(http::MAX_HEAD - buf.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break http::response(408, "text/plain", b"no whole request in time\n");
            }
            Err(_) => return,
        }
    };
    let _ = stream.set_write_timeout(Some(HTTP_DEADLINE));
    let _ = stream.write_all(&response);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn respond(head: &[u8], dir: &Path) -> Vec<u8> {
    match http::parse(head) {
        Ok(since) => match Report::read(dir, since) {
            Ok(report) => http::response(200, "application/json", report.to_json().as_bytes()),
            Err(e) => http::response(503, "text/plain", format!("{e}\n").as_bytes()),
        },
        Err(refused) => http::response(refused.status, "text/plain", format!("{}\n", refused.message).as_bytes()),
    }
}

/// Takes the lock on `path`, waiting while another instance holds it; a stop
/// signal meanwhile ends the wait (the exit code of that signal).
fn lock(path: &Path, set: &libc::sigset_t) -> Result<File, i32> {
    use std::os::fd::AsRawFd;
    let file = match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            say(&format!("cannot open the lock {}: {e}", path.display()));
            return Err(EXIT_CANNOT_RUN);
        }
    };
    let mut said = false;
    loop {
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            if said {
                say(&format!("{} released: starting the game", path.display()));
            }
            return Ok(file);
        }
        if !said {
            say(&format!("waiting for the instance holding {} (still saving its world?) to end", path.display()));
            said = true;
        }
        let timeout = libc::timespec { tv_sec: 0, tv_nsec: 200_000_000 };
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            say("stopped while waiting for the lock: the game never started");
            return Err(128 + sig);
        }
    }
}

fn signal_set() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Asks the game to stop, as `--stop` says.
fn stop(how: &Stop, got: i32, pid: libc::pid_t, stdin: &Mutex<Option<ChildStdin>>) {
    match how {
        Stop::Line(line) => {
            say(&format!("stopping the game: typing `{line}` into its console"));
            let mut stdin = stdin.lock().unwrap();
            let sent = stdin.as_mut().map(|s| s.write_all(format!("{line}\n").as_bytes()).and_then(|_| s.flush()));
            if !matches!(sent, Some(Ok(()))) {
                say("the game's console is closed: sending it SIGTERM instead");
                unsafe { libc::kill(-pid, libc::SIGTERM) };
            }
        }
        Stop::Signal(sig) => unsafe {
            libc::kill(-pid, *sig);
        },
        Stop::Forward => unsafe {
            libc::kill(-pid, got);
        },
    }
}

/// Passes one of the game's output streams on to the supervisor's own file
/// descriptor `fd`, unchanged and unbuffered, and its lines to the loop.
fn pump(mut from: impl Read + Send + 'static, fd: i32, tx: Sender<Event>) {
    thread::spawn(move || {
        // Not std's Stdout: it buffers until a newline, and a prompt has none.
        let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        let mut lines = Lines::default();
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // Nobody reading our output must not stop the game.
                    let _ = out.write_all(&buf[..n]);
                    for line in lines.push(&buf[..n]) {
                        let _ = tx.send(Event::Line(line));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(Event::Drained);
    });
}

/// The console: what comes on the supervisor's stdin goes to the game's.
fn console(stdin: Arc<Mutex<Option<ChildStdin>>>) {
    thread::spawn(move || {
        let mut input = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
        let mut buf = [0u8; 4096];
        loop {
            match input.read(&mut buf) {
                // End of input (no console attached, /dev/null): the game's
                // stdin stays open.
                Ok(0) => return,
                Ok(n) => {
                    let mut game = stdin.lock().unwrap();
                    if let Some(s) = game.as_mut()
                        && s.write_all(&buf[..n]).and_then(|_| s.flush()).is_err()
                    {
                        *game = None;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
}

fn signals(set: libc::sigset_t, tx: Sender<Event>) {
    thread::spawn(move || {
        loop {
            let mut sig = 0;
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 && tx.send(Event::Signal(sig)).is_err() {
                return;
            }
        }
    });
}

/// Reaps every child (as PID 1, orphans of the game's own children too) and
/// reports the game's end (its wait status).
fn reap(game: libc::pid_t, tx: Sender<Event>) {
    thread::spawn(move || {
        loop {
            let mut status = 0;
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid == game {
                let _ = tx.send(Event::Exited(status));
            } else if pid < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                // No child left: the game is gone and reported.
                thread::sleep(Duration::from_millis(100));
            }
        }
    });
}

/// Writes `dir/name` so that a reader sees the old content or the new one.
fn write_atomically(dir: &Path, name: &str, content: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    let done = std::fs::write(&tmp, content).and_then(|_| std::fs::rename(&tmp, dir.join(name)));
    if let Err(e) = done {
        say(&format!("cannot write {}: {e}", dir.join(name).display()));
    }
}

fn probe(args: &[String]) -> i32 {
    let mut state_dir = None;
    let mut tcp = None;
    let mut command: &[String] = &[];
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--", _) => {
                command = &args[i + 1..];
                break;
            }
            ("--state-dir", Some(v)) => state_dir = Some(v.clone()),
            ("--tcp", Some(v)) => match v.parse::<u16>() {
                Ok(p) => tcp = Some(p),
                Err(_) => {
                    say(&format!("probe: --tcp: `{v}` is not a port"));
                    return EXIT_USAGE;
                }
            },
            (other, _) => {
                say(&format!("probe: unknown option or missing value: {other}"));
                return EXIT_USAGE;
            }
        }
        i += 2;
    }
    let Some(state_dir) = state_dir else {
        say("probe: --state-dir is required");
        return EXIT_USAGE;
    };
    if !Path::new(&state_dir).join(READY_FILE).exists() {
        say("not ready: the game has not printed its ready line yet");
        return 1;
    }
    if let Some(port) = tcp {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            say(&format!("not ready: nothing takes a connection on port {port}: {e}"));
            return 1;
        }
    }
    if let Some((program, rest)) = command.split_first() {
        return match Command::new(program).args(rest).status() {
            Ok(s) => s.code().unwrap_or(1),
            Err(e) => {
                say(&format!("not ready: cannot run {program}: {e}"));
                1
            }
        };
    }
    0
}

fn status(args: &[String]) -> i32 {
    let mut state_dir = None;
    let mut since = 0;
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--state-dir", Some(v)) => state_dir = Some(v.clone()),
            ("--since", Some(v)) => match v.parse::<u64>() {
                Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => since = n,
                _ => {
                    say(&format!("status: --since: `{v}` is not a seq (a number from 0)"));
                    return EXIT_USAGE;
                }
            },
            (other, _) => {
                say(&format!("status: unknown option or missing value: {other}"));
                return EXIT_USAGE;
            }
        }
        i += 2;
    }
    let Some(state_dir) = state_dir else {
        say("status: --state-dir is required");
        return EXIT_USAGE;
    };
    match Report::read(Path::new(&state_dir), since) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{}", report.to_json()).and_then(|_| out.flush()) {
                Ok(()) => 0,
                Err(e) => {
                    say(&format!("status: cannot print the report: {e}"));
                    1
                }
            }
        }
        Err(e) => {
            say(&e);
            1
        }
    }
}

fn install(args: &[String]) -> i32 {
    let [dir] = args else {
        say("usage: mettaton-supervisor install DIR");
        return EXIT_USAGE;
    };
    let dir = Path::new(dir);
    let copy = || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(".mettaton-supervisor.tmp");
        std::fs::copy("/proc/self/exe", &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, dir.join("mettaton-supervisor"))
    };
    match copy() {
        Ok(()) => 0,
        Err(e) => {
            say(&format!("cannot install into {}: {e}", dir.display()));
            EXIT_CANNOT_RUN
        }
    }
}

/// Orphans of the command's children are ours to reap even when we are not
/// PID 1 (a container runtime's init in front of us, or a test). The
/// signals are taken by the signal thread with sigwait (the set returned),
/// to be passed on; the command spawned with [`own_group`] gets a clean mask
/// and, for these signals, the default dispositions: one ignored by whatever
/// started the supervisor (`nohup` ignores SIGHUP) would stay ignored in the
/// command through exec.
fn take_signals() -> libc::sigset_t {
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let set = signal_set();
    for sig in HANDLED {
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    set
}

/// Sends the lines of the install's output to the loop (the last one even
/// without its line ending).
fn lines(mut from: impl Read + Send + 'static, tx: Sender<Event>) {
    thread::spawn(move || {
        let mut lines = Lines::default();
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for line in lines.push(&buf[..n]) {
                        let _ = tx.send(Event::Line(line));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if let Some(line) = lines.finish() {
            let _ = tx.send(Event::Line(line));
        }
        let _ = tx.send(Event::Drained);
    });
}

/// Where `install-run` writes: its stdout and the log (when it could be
/// opened), a line at a time.
struct Output {
    log: Option<File>,
}

impl Output {
    fn line(&mut self, line: &str) {
        let line = format!("{line}\n");
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        if let Some(log) = &mut self.log {
            let _ = log.write_all(line.as_bytes());
        }
    }

    fn say(&mut self, message: &str) {
        self.line(&format!("mettaton-supervisor: {message}"));
    }
}

fn install_run(args: &[String]) -> i32 {
    let run = match InstallRun::from_args(args) {
        Ok(r) => r,
        Err(e) => {
            say(&format!("install-run: {e}"));
            return EXIT_USAGE;
        }
    };
    let mut out = Output { log: None };
    if run.done(std::fs::read_to_string(&run.marker).ok().as_deref()) {
        out.say(&format!("install: already done ({})", run.token));
        return 0;
    }
    let open_log = || {
        if let Some(dir) = run.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        File::create(&run.log)
    };
    match open_log() {
        Ok(log) => out.log = Some(log),
        Err(e) => {
            let why = format!("cannot write its log {}: {e}", run.log.display());
            return failed(&run, &mut out, Failure::NotRun(why), &Tail::default());
        }
    }
    let set = take_signals();
    // One pipe for both: its lines come in the order they were written.
    let spawned = std::io::pipe().and_then(|(output, input)| {
        let mut command = Command::new(&run.command[0]);
        command.args(&run.command[1..]).stdin(Stdio::null()).stdout(input.try_clone()?).stderr(input);
        own_group(&mut command);
        // The command (and its copy of the pipe's input) is dropped here: the
        // output ends when the install's processes are all gone.
        Ok((command.spawn()?, output))
    });
    let (child, output) = match spawned {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot run {}: {e}", run.command[0]);
            return failed(&run, &mut out, Failure::NotRun(why), &Tail::default());
        }
    };
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    lines(output, tx.clone());
    signals(set, tx.clone());
    reap(pid, tx);

    let mut tail = Tail::default();
    let mut exited: Option<(i32, Instant)> = None;
    let mut drained = false;
    let status = loop {
        let wait = match exited {
            Some((_, at)) => (at + DRAIN).saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(wait) {
            Ok(Event::Line(line)) => {
                out.line(&line);
                tail.push(line);
            }
            Ok(Event::Signal(sig)) => unsafe {
                libc::kill(-pid, sig);
            },
            Ok(Event::Exited(status)) => exited = Some((status, Instant::now())),
            Ok(Event::Drained) => drained = true,
            Err(_) => {}
        }
        if let Some((status, at)) = exited
            && (drained || at.elapsed() >= DRAIN)
        {
            break status;
        }
    };
    if libc::WIFSIGNALED(status) {
        return failed(&run, &mut out, Failure::Killed(libc::WTERMSIG(status)), &tail);
    }
    match libc::WEXITSTATUS(status) {
        0 => match write_marker(&run) {
            Ok(()) => {
                out.say("install: done");
                0
            }
            Err(e) => {
                let why = format!("it succeeded, but its marker {} cannot be written: {e}", run.marker.display());
                failed(&run, &mut out, Failure::NotRun(why), &tail)
            }
        },
        code => failed(&run, &mut out, Failure::Exited(code), &tail),
    }
}

/// Writes the failure's message to the termination log and says it.
fn failed(run: &InstallRun, out: &mut Output, failure: Failure, tail: &Tail) -> i32 {
    let message = failure.message(tail);
    if let Some(path) = &run.termination_log
        && let Err(e) = std::fs::write(path, &message)
    {
        out.say(&format!("install: cannot write the termination log {}: {e}", path.display()));
    }
    out.say(message.trim_end());
    failure.code()
}

/// The marker holds the token, written so that a reader sees the old content
/// or the new one.
fn write_marker(run: &InstallRun) -> std::io::Result<()> {
    let name = run.marker.file_name().map_or("marker".into(), |n| n.to_string_lossy().into_owned());
    let tmp = run.marker.with_file_name(format!(".{name}.tmp"));
    if let Some(dir) = run.marker.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, &run.token)?;
    std::fs::rename(&tmp, &run.marker)
}
