package main

// These tests build the test game and run it as a subprocess, as the swarm and
// Kubernetes tests do in a container: its stdout, its stdin, signals, ports.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "testgame-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "testgame")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const timeout = 5 * time.Second

// game is one running test game.
type game struct {
	t        *testing.T
	cmd      *exec.Cmd
	stdin    io.WriteCloser // nil unless started with a stdin pipe
	tcp, udp int
	lines    chan line // stdout, in order, for expect
	exited   chan struct{}
	waitErr  error
	stderr   bytes.Buffer

	mu  sync.Mutex
	log []string // everything printed so far, for failure messages
}

type line struct {
	text string
	at   time.Time
}

// freePort finds a port free on both TCP and UDP.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// start runs the game with env (NAME=VALUE) added; with pipe its stdin is a
// pipe (g.stdin), else /dev/null.
func start(t *testing.T, pipe bool, env ...string) *game {
	t.Helper()
	g := &game{t: t, tcp: freePort(t), lines: make(chan line, 1000), exited: make(chan struct{})}
	g.udp = freePort(t)
	for g.udp == g.tcp {
		g.udp = freePort(t)
	}
	g.cmd = exec.Command(binPath)
	g.cmd.Env = append([]string{
		"GAME_NAME=g",
		fmt.Sprintf("GAME_TCP_PORT=%d", g.tcp),
		fmt.Sprintf("GAME_UDP_PORT=%d", g.udp),
	}, env...)
	g.cmd.Stderr = &g.stderr
	out, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if pipe {
		if g.stdin, err = g.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			g.mu.Lock()
			g.log = append(g.log, s.Text())
			g.mu.Unlock()
			g.lines <- line{s.Text(), time.Now()}
		}
		g.waitErr = g.cmd.Wait()
		close(g.lines)
		close(g.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			g.cmd.Process.Kill()
			<-g.exited
		}
	})
	return g
}

func (g *game) output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.log, "\n") + "\nstderr: " + g.stderr.String()
}

// expect waits for the next line that matches (skipping others), returning it.
func (g *game) expectFunc(what string, match func(string) bool) line {
	g.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-g.lines:
			if !ok {
				g.t.Fatalf("game exited before printing %s; output:\n%s", what, g.output())
			}
			if match(l.text) {
				return l
			}
		case <-deadline:
			g.t.Fatalf("no %s in %v; output:\n%s", what, timeout, g.output())
		}
	}
}

func (g *game) expect(want string) line {
	g.t.Helper()
	return g.expectFunc(fmt.Sprintf("line %q", want), func(s string) bool { return s == want })
}

func (g *game) expectPrefix(prefix string) line {
	g.t.Helper()
	return g.expectFunc(fmt.Sprintf("line starting %q", prefix), func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func (g *game) listening() line {
	g.t.Helper()
	return g.expect(fmt.Sprintf("game server listening tcp=%d udp=%d name=g", g.tcp, g.udp))
}

func (g *game) send(cmd string) {
	g.t.Helper()
	if _, err := io.WriteString(g.stdin, cmd+"\n"); err != nil {
		g.t.Fatalf("console %q: %v", cmd, err)
	}
}

func (g *game) signal(sig syscall.Signal) {
	g.t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		g.t.Fatal(err)
	}
}

// exitCode waits for the game to exit.
func (g *game) exitCode() int {
	g.t.Helper()
	select {
	case <-g.exited:
	case <-time.After(timeout):
		g.t.Fatalf("game still running after %v; output:\n%s", timeout, g.output())
	}
	if g.waitErr != nil {
		if e, ok := g.waitErr.(*exec.ExitError); ok {
			return e.ExitCode()
		}
		g.t.Fatal(g.waitErr)
	}
	return 0
}

// running fails the test if the game has exited.
func (g *game) running() {
	g.t.Helper()
	select {
	case <-g.exited:
		g.t.Fatalf("game exited; output:\n%s", g.output())
	default:
	}
}

// player is one TCP connection to the game.
type player struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func connect(t *testing.T, g *game) *player {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", g.tcp), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &player{t: t, c: c, r: bufio.NewReader(c)}
	if got := p.read(); got != "hello from g" {
		t.Fatalf("greeting %q", got)
	}
	return p
}

func (p *player) read() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(timeout))
	s, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return strings.TrimSuffix(s, "\n")
}

// say sends a line and returns the answer.
func (p *player) say(s string) string {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.c, "%s\n", s); err != nil {
		p.t.Fatal(err)
	}
	return p.read()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Without the new settings the output is exactly as before, and stdin is not
// read even when something is written to it.
func TestDefaultUnchanged(t *testing.T) {
	t.Parallel()
	save := filepath.Join(t.TempDir(), "world")
	g := start(t, true, "GAME_SAVE_FILE="+save)
	g.listening()
	g.send("stop")
	g.send("say hi")
	time.Sleep(300 * time.Millisecond)
	g.running()
	g.signal(syscall.SIGTERM)
	if code := g.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := strings.Join([]string{
		"loaded world starts=1 data=",
		fmt.Sprintf("game server listening tcp=%d udp=%d name=g", g.tcp, g.udp),
		"got terminated",
		"saving world",
		"world saved to " + save,
		"stopped",
	}, "\n")
	g.mu.Lock()
	got := strings.Join(g.log, "\n")
	g.mu.Unlock()
	if got != want {
		t.Fatalf("output:\n%s\nwant:\n%s", got, want)
	}
	if got := readFile(t, save); got != "starts=1\ndata=\n" {
		t.Fatalf("save file %q", got)
	}
}

func TestConsoleSayUnknownAndStop(t *testing.T) {
	t.Parallel()
	g := start(t, true, "GAME_CONSOLE=1")
	g.listening()
	g.send("say hello there")
	g.expect("console: say hello there")
	g.expect("[Server] hello there")
	g.send("frobnicate now")
	g.expect("console: frobnicate now")
	g.expect("Unknown command: frobnicate")
	g.send("list")
	g.expect("console: list")
	g.expect("There are 0 of a max of 20 players online:")
	g.send("stop")
	g.expect("console: stop")
	g.expect("saving world")
	g.expect("stopped")
	if code := g.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := g.output(); strings.Contains(out, "got ") {
		t.Fatalf("a signal line, yet no signal was sent:\n%s", out)
	}
}

func TestConsoleQuitAndExitStop(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"quit", "exit"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			g := start(t, true, "GAME_CONSOLE=1")
			g.listening()
			g.send(cmd)
			g.expect("console: " + cmd)
			g.expect("saving world")
			g.expect("stopped")
			if code := g.exitCode(); code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
	}
}

func TestConsoleSaveWritesTheWorld(t *testing.T) {
	t.Parallel()
	save := filepath.Join(t.TempDir(), "world")
	if err := os.WriteFile(save, []byte("starts=4\ndata=old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := start(t, true, "GAME_CONSOLE=1", "GAME_SAVE_FILE="+save)
	g.expect("loaded world starts=5 data=old")
	g.listening()
	p := connect(t, g)
	if got := p.say("set gold"); got != "set: gold" {
		t.Fatalf("set: %q", got)
	}
	g.send("save")
	g.expect("console: save")
	g.expect("saved world")
	if got := readFile(t, save); got != "starts=5\ndata=gold\n" {
		t.Fatalf("save file after save: %q", got)
	}
	g.running()
	if got := p.say("set silver"); got != "set: silver" {
		t.Fatalf("set: %q", got)
	}
	g.stopThroughConsole(t, save)
	if got := readFile(t, save); got != "starts=5\ndata=silver\n" {
		t.Fatalf("save file after stop: %q", got)
	}
}

func TestStopOnConsoleIgnoresSignals(t *testing.T) {
	t.Parallel()
	save := filepath.Join(t.TempDir(), "world")
	g := start(t, true, "GAME_CONSOLE=1", "GAME_STOP_ON=console", "GAME_SAVE_FILE="+save)
	g.listening()
	g.signal(syscall.SIGTERM)
	g.expect("got terminated, ignored (stop through the console)")
	g.signal(syscall.SIGINT)
	g.expect("got interrupt, ignored (stop through the console)")
	time.Sleep(200 * time.Millisecond)
	g.running()
	connect(t, g)
	if _, err := os.Stat(save); !os.IsNotExist(err) {
		t.Fatalf("saved before the stop command: %v", err)
	}
	g.stopThroughConsole(t, save)
	if got := readFile(t, save); got != "starts=1\ndata=\n" {
		t.Fatalf("save file %q", got)
	}
}

func TestBadStopOn(t *testing.T) {
	t.Parallel()
	g := start(t, false, "GAME_STOP_ON=sometimes")
	g.expect(`bad GAME_STOP_ON="sometimes": want signal or console`)
	if code := g.exitCode(); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}

// The ports (and the ready file) come before the done line, which comes
// GAME_DONE_AFTER_SECONDS later.
func TestDoneLineAfterDelay(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	g := start(t, false, "GAME_DONE_AFTER_SECONDS=1", "GAME_READY_FILE="+ready)
	listening := g.listening()
	connect(t, g)
	if got := readFile(t, ready); got != "ready\n" {
		t.Fatalf("ready file %q", got)
	}
	g.expectFunc("player connected line before the done line", func(s string) bool {
		if strings.HasPrefix(s, "Done") {
			t.Fatalf("done line before the TCP player connected: %q", s)
		}
		return strings.HasPrefix(s, "player connected from ")
	})
	done := g.expect(`Done (1.000s)! For help, type "help"`)
	if d := done.at.Sub(listening.at); d < 900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("done line %v after listening, want about 1 s", d)
	}
	g.signal(syscall.SIGTERM)
	g.expect("stopped")
	if code := g.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestPlayersJoinLeaveAndList(t *testing.T) {
	t.Parallel()
	g := start(t, true, "GAME_CONSOLE=1", "GAME_MAX_PLAYERS=5")
	g.listening()
	g.send("list")
	g.expect("There are 0 of a max of 5 players online:")

	zoe := connect(t, g)
	if got := zoe.say("login zoe"); got != "logged in as zoe" {
		t.Fatalf("login: %q", got)
	}
	g.expect("zoe joined the game")
	adam := connect(t, g)
	if got := adam.say("login adam"); got != "logged in as adam" {
		t.Fatalf("login: %q", got)
	}
	g.expect("adam joined the game")
	if got := adam.say("login eve"); got != "already logged in as adam" {
		t.Fatalf("second login: %q", got)
	}
	if got := adam.say("hi"); got != "echo: hi" {
		t.Fatalf("after login: %q", got)
	}
	guest := connect(t, g) // never logs in: as before, an echo
	if got := guest.say("hi"); got != "echo: hi" {
		t.Fatalf("guest: %q", got)
	}

	g.send("list")
	g.expect("There are 2 of a max of 5 players online: adam, zoe")

	zoe.c.Close()
	g.expect("zoe left the game")
	g.expectPrefix("player disconnected from ")
	g.send("list")
	g.expect("There are 1 of a max of 5 players online: adam")

	guest.c.Close()
	g.expectPrefix("player disconnected from ")
	g.send("list")
	g.expect("There are 1 of a max of 5 players online: adam")

	g.send("stop")
	g.expect("stopped")
	if code := g.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := g.output(); strings.Contains(out, "eve joined") {
		t.Fatalf("a second login joined:\n%s", out)
	}
}

// The end of stdin only ends the console: the game goes on until SIGTERM.
func TestConsoleEOFKeepsRunning(t *testing.T) {
	t.Parallel()
	t.Run("closed pipe", func(t *testing.T) {
		t.Parallel()
		g := start(t, true, "GAME_CONSOLE=1")
		g.send("say bye")
		g.stdin.Close()
		g.listening()
		g.expect("console: say bye")
		g.expect("[Server] bye")
		time.Sleep(300 * time.Millisecond)
		g.running()
		connect(t, g)
		g.signal(syscall.SIGTERM)
		g.expect("got terminated")
		g.expect("stopped")
		if code := g.exitCode(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("dev null", func(t *testing.T) {
		t.Parallel()
		g := start(t, false, "GAME_CONSOLE=1")
		g.listening()
		time.Sleep(300 * time.Millisecond)
		g.running()
		connect(t, g)
		g.signal(syscall.SIGTERM)
		g.expect("got terminated")
		g.expect("stopped")
		if code := g.exitCode(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	})
}

// stopThroughConsole types stop and checks the game saves to save and exits 0.
func (g *game) stopThroughConsole(t *testing.T, save string) {
	t.Helper()
	g.send("stop")
	g.expect("console: stop")
	g.expect("saving world")
	g.expect("world saved to " + save)
	g.expect("stopped")
	if code := g.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
