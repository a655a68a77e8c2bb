// Command testgame is a tiny stand-in for a dedicated game server, used by
// mettaton's Docker Swarm tests. It has no dependencies and is built as a
// static binary (CGO_ENABLED=0) that is the whole image.
//
// Behaviour (every setting from the environment, ports also as flags):
//
//	GAME_TCP_PORT (-tcp, default 7777)  TCP: greets "hello from NAME", then
//	                                    answers each line with "echo: LINE".
//	GAME_UDP_PORT (-udp, default 7778)  UDP: answers each datagram with
//	                                    "pong: PAYLOAD".
//	GAME_NAME                           NAME in the greeting (default: hostname).
//	GAME_CONFIG=/a[:/b...]              prints each file's content at start.
//	GAME_READY_FILE=/path               written once both ports listen.
//	GAME_CRASH_AFTER_SECONDS=N          exits 1 after N seconds.
//	GAME_SAVE_SECONDS=N                 "saving world" takes N seconds on stop.
//	GAME_SAVE_FILE=/path                the world: loaded at start ("loaded world
//	                                    starts=N data=D"), saved on stop (written
//	                                    to a temporary file, synced, renamed) as
//	                                    "starts=N\ndata=D\n". A TCP player sets
//	                                    D with "set D" and reads it with "get".
//	GAME_LISTEN_DELAY_SECONDS=N         listens only after N seconds (a world
//	                                    that loads slowly, or never).
//	GAME_HANG_AFTER_SECONDS=N           after N seconds stops answering TCP
//	                                    (closes its listener) but keeps running,
//	                                    as a hung server does.
//	GAME_CONSOLE=1                      reads console commands from stdin (see
//	                                    below); otherwise stdin is never read.
//	GAME_STOP_ON=console                SIGTERM and SIGINT are logged and ignored:
//	                                    only the console's "stop" stops it.
//	GAME_DONE_AFTER_SECONDS=N           prints Minecraft's "Done (N.000s)! For
//	                                    help, type "help"" N seconds after both
//	                                    ports listen (they listen as always).
//	GAME_MAX_PLAYERS=N                  the max in "list" (default 20).
//
// On SIGTERM or SIGINT it prints "saving world", saves, prints "stopped" and
// exits 0. Every log line goes to stdout.
//
// The console (GAME_CONSOLE=1), read once both ports listen, logs each
// non-empty line as "console: LINE", then: "say TEXT" prints "[Server] TEXT";
// "save" saves the world now and prints "saved world"; "list" prints "There are
// N of a max of M players online: a, b"; "stop", "quit" and "exit" stop the game
// as SIGTERM does; "help" lists them; anything else prints "Unknown command:
// WORD". End of input only ends the reading: the game goes on.
//
// A TCP player that sends "login NAME" is answered "logged in as NAME" and the
// game prints "NAME joined the game"; when that connection closes it prints
// "NAME left the game".
//
// "testgame -touch PATH" writes PATH (with the time) and exits: a stop command
// for tests, run in the container before the stop signal. "testgame -cat PATH"
// prints PATH and exits (the image has no shell; `kubectl exec` runs this).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var logMu sync.Mutex

// logf prints one line to stdout.
func logf(format string, args ...any) {
	logMu.Lock()
	defer logMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		logf("bad %s=%q: %v", name, v, err)
		os.Exit(2)
	}
	return n
}

func main() {
	tcpPort := flag.Int("tcp", envInt("GAME_TCP_PORT", 7777), "TCP port (env GAME_TCP_PORT)")
	udpPort := flag.Int("udp", envInt("GAME_UDP_PORT", 7778), "UDP port (env GAME_UDP_PORT)")
	touch := flag.String("touch", "", "write this file and exit")
	cat := flag.String("cat", "", "print this file and exit")
	flag.Parse()
	if *cat != "" {
		data, err := os.ReadFile(*cat)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cat %s: %v\n", *cat, err)
			os.Exit(1)
		}
		os.Stdout.Write(data)
		os.Exit(0)
	}
	if *touch != "" {
		if err := os.WriteFile(*touch, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "touch %s: %v\n", *touch, err)
			os.Exit(1)
		}
		os.Exit(0)
	}

	console := envInt("GAME_CONSOLE", 0) != 0
	stopOnConsole := false
	switch v := os.Getenv("GAME_STOP_ON"); v {
	case "", "signal":
	case "console":
		stopOnConsole = true
	default:
		logf("bad GAME_STOP_ON=%q: want signal or console", v)
		os.Exit(2)
	}
	doneAfter := envInt("GAME_DONE_AFTER_SECONDS", 0)
	maxPlayers = envInt("GAME_MAX_PLAYERS", 20)
	if stopOnConsole {
		// From the start, so that no signal kills it while the world loads.
		ignored := make(chan os.Signal, 1)
		signal.Notify(ignored, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			for sig := range ignored {
				logf("got %v, ignored (stop through the console)", sig)
			}
		}()
	}

	name := os.Getenv("GAME_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}

	if cfg := os.Getenv("GAME_CONFIG"); cfg != "" {
		for _, path := range strings.Split(cfg, ":") {
			if path == "" {
				continue
			}
			data, err := os.ReadFile(path)
			if err != nil {
				logf("config %s: %v", path, err)
				continue
			}
			logf("config %s:", path)
			text := strings.TrimRight(string(data), "\n")
			for _, line := range strings.Split(text, "\n") {
				logf("  %s", line)
			}
		}
	}

	saveFile = os.Getenv("GAME_SAVE_FILE")
	if saveFile != "" {
		w := loadWorld(saveFile)
		w.starts++
		world.Store(w)
		logf("loaded world starts=%d data=%s", w.starts, w.data)
	}

	if n := envInt("GAME_LISTEN_DELAY_SECONDS", 0); n > 0 {
		logf("loading world for %d s", n)
		time.Sleep(time.Duration(n) * time.Second)
	}

	tl, err := net.Listen("tcp", fmt.Sprintf(":%d", *tcpPort))
	if err != nil {
		logf("cannot listen on tcp %d: %v", *tcpPort, err)
		os.Exit(1)
	}
	uc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", *udpPort))
	if err != nil {
		logf("cannot listen on udp %d: %v", *udpPort, err)
		os.Exit(1)
	}
	logf("game server listening tcp=%d udp=%d name=%s", *tcpPort, *udpPort, name)

	if ready := os.Getenv("GAME_READY_FILE"); ready != "" {
		if err := os.WriteFile(ready, []byte("ready\n"), 0o644); err != nil {
			logf("cannot write ready file %s: %v", ready, err)
		}
	}

	go serveTCP(tl, name)
	go serveUDP(uc)

	if n := envInt("GAME_CRASH_AFTER_SECONDS", 0); n > 0 {
		go func() {
			time.Sleep(time.Duration(n) * time.Second)
			logf("crashing after %d s as asked", n)
			os.Exit(1)
		}()
	}

	if n := envInt("GAME_HANG_AFTER_SECONDS", 0); n > 0 {
		go func() {
			time.Sleep(time.Duration(n) * time.Second)
			logf("hanging after %d s as asked", n)
			tl.Close()
		}()
	}

	if doneAfter > 0 {
		go func() {
			time.Sleep(time.Duration(doneAfter) * time.Second)
			logf(`Done (%d.000s)! For help, type "help"`, doneAfter)
		}()
	}

	// A stop asked on the console; buffered so that the console never waits.
	stopAsked := make(chan struct{}, 1)
	if console {
		go readConsole(os.Stdin, stopAsked)
	}

	if stopOnConsole {
		<-stopAsked
	} else {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		select {
		case sig := <-sigs:
			logf("got %v", sig)
		case <-stopAsked:
		}
	}
	logf("saving world")
	if n := envInt("GAME_SAVE_SECONDS", 0); n > 0 {
		time.Sleep(time.Duration(n) * time.Second)
	}
	if saveFile != "" {
		if err := saveNow(); err != nil {
			logf("cannot save world to %s: %v", saveFile, err)
			os.Exit(1)
		}
		logf("world saved to %s", saveFile)
	}
	tl.Close()
	uc.Close()
	logf("stopped")
	os.Exit(0)
}

func serveTCP(l net.Listener, name string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) {
			defer c.Close()
			peer := c.RemoteAddr().String()
			logf("player connected from %s", peer)
			fmt.Fprintf(c, "hello from %s\n", name)
			player := ""
			defer func() {
				if player != "" {
					leave(c)
					logf("%s left the game", player)
				}
				logf("player disconnected from %s", peer)
			}()
			s := bufio.NewScanner(c)
			for s.Scan() {
				line := s.Text()
				reply := "echo: " + line
				if n, ok := strings.CutPrefix(line, "login "); ok && strings.TrimSpace(n) != "" {
					if player != "" {
						reply = "already logged in as " + player
					} else {
						player = strings.TrimSpace(n)
						join(c, player)
						logf("%s joined the game", player)
						reply = "logged in as " + player
					}
				} else if d, ok := strings.CutPrefix(line, "set "); ok {
					w, _ := world.Load().(gameWorld)
					w.data = d
					world.Store(w)
					reply = "set: " + d
				} else if line == "get" {
					w, _ := world.Load().(gameWorld)
					reply = fmt.Sprintf("world: starts=%d data=%s", w.starts, w.data)
				}
				if _, err := fmt.Fprintf(c, "%s\n", reply); err != nil {
					break
				}
			}
		}(c)
	}
}

func serveUDP(c net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		payload := strings.TrimRight(string(buf[:n]), "\r\n")
		logf("udp datagram from %s", addr)
		c.WriteTo([]byte("pong: "+payload+"\n"), addr)
	}
}

// gameWorld is what the game keeps across restarts in GAME_SAVE_FILE.
type gameWorld struct {
	starts int
	data   string
}

var world atomic.Value // gameWorld

func init() { world.Store(gameWorld{}) }

func loadWorld(path string) gameWorld {
	var w gameWorld
	data, err := os.ReadFile(path)
	if err != nil {
		if !os.IsNotExist(err) {
			logf("cannot load world from %s: %v", path, err)
		}
		return w
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "starts="); ok {
			w.starts, _ = strconv.Atoi(v)
		} else if v, ok := strings.CutPrefix(line, "data="); ok {
			w.data = v
		}
	}
	return w
}

func saveWorld(path string, w gameWorld) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "starts=%d\ndata=%s\n", w.starts, w.data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var (
	saveFile string     // GAME_SAVE_FILE, "" for none
	saveMu   sync.Mutex // one save at a time (they share PATH.tmp)
)

// saveNow writes the world as it is now to saveFile.
func saveNow() error {
	saveMu.Lock()
	defer saveMu.Unlock()
	return saveWorld(saveFile, world.Load().(gameWorld))
}

// The players logged in ("login NAME"), by connection.
var (
	maxPlayers int
	playersMu  sync.Mutex
	players    = map[net.Conn]string{}
)

func join(c net.Conn, name string) {
	playersMu.Lock()
	defer playersMu.Unlock()
	players[c] = name
}

func leave(c net.Conn) {
	playersMu.Lock()
	defer playersMu.Unlock()
	delete(players, c)
}

// playerList is the answer to "list": Minecraft's words, names sorted.
func playerList() string {
	playersMu.Lock()
	names := make([]string, 0, len(players))
	for _, n := range players {
		names = append(names, n)
	}
	playersMu.Unlock()
	sort.Strings(names)
	line := fmt.Sprintf("There are %d of a max of %d players online:", len(names), maxPlayers)
	if len(names) > 0 {
		line += " " + strings.Join(names, ", ")
	}
	return line
}

// readConsole runs the console commands read from in until its end (which
// does not stop the game); "stop" asks main to stop through stopAsked.
func readConsole(in *os.File, stopAsked chan<- struct{}) {
	s := bufio.NewScanner(in)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" {
			continue
		}
		logf("console: %s", line)
		cmd, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		switch cmd {
		case "say":
			logf("%s", strings.TrimSpace("[Server] "+arg))
		case "save":
			if saveFile != "" {
				if err := saveNow(); err != nil {
					logf("cannot save world to %s: %v", saveFile, err)
					continue
				}
			}
			logf("saved world")
		case "list":
			logf("%s", playerList())
		case "stop", "quit", "exit":
			select {
			case stopAsked <- struct{}{}:
			default: // already asked
			}
		case "help":
			logf("commands: say TEXT, save, list, stop (or quit, exit), help")
		default:
			logf("Unknown command: %s", cmd)
		}
	}
}
