// Package redistest starts a real Redis server (redis-server or valkey-server) on a free
// loopback port for a test, and stops it when the test ends.
//
// The server binary is $OFFERFEED_REDIS_SERVER when set (make test sets it from
// hack/redis/find.sh); a test then fails when the server cannot start. Without the variable,
// redis-server or valkey-server is taken from PATH, and a test skips when neither is there:
// outside make test only, so CI never skips silently.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// EnvServer names the environment variable holding the path of the server binary.
const EnvServer = "OFFERFEED_REDIS_SERVER"

// startTimeout bounds how long a server may take to answer PING after it is started.
const startTimeout = 10 * time.Second

// Server is a running redis-server, owned by one test.
type Server struct {
	// Addr is host:port on loopback.
	Addr string
	bin  string
	argv []string
	// user and pass authenticate Do (pass "": no AUTH).
	user, pass string
	paused     atomic.Bool

	mu   sync.Mutex // guards the process: Restart replaces it
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// Binary returns the path of the server binary, and whether a missing one must fail the test
// (EnvServer is set) rather than skip it.
func Binary() (path string, required bool, err error) {
	if p := os.Getenv(EnvServer); p != "" {
		return p, true, nil
	}
	for _, b := range []string{"redis-server", "valkey-server"} {
		if p, err := exec.LookPath(b); err == nil {
			return p, false, nil
		}
	}
	return "", false, errors.New("no redis-server or valkey-server on PATH (run hack/redis/find.sh, or set " + EnvServer + ")")
}

// Start starts a server for t on a free loopback port, with no persistence, in a temporary
// directory; it is killed when t ends. args are added to the server's command line (for
// example "--maxmemory", "1mb").
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, required, err := Binary()
	if err != nil {
		if required {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	// A port probed free may be taken before the server binds it: try a few.
	var lastErr error
	for range 3 {
		s, err := start(t, bin, spec{args: args})
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// spec is how to start one server.
type spec struct {
	// conf, when not empty, is written to a file in the server's directory and given first
	// on the command line (a Sentinel needs a config file it can rewrite).
	conf string
	// args are added to the command line.
	args []string
	// user and pass, when pass is set, authenticate Do and the start-up PING (user "": the
	// default user).
	user, pass string
}

// start starts one server as sp says.
func start(t testing.TB, bin string, sp spec) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	var argv []string
	if sp.conf != "" {
		f := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(f, []byte(sp.conf), 0o600); err != nil {
			return nil, err
		}
		argv = []string{f}
	}
	argv = append(argv, []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--logfile", "",
	}...)
	argv = append(argv, sp.args...)
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, argv: argv, user: sp.user, pass: sp.pass}
	if err := s.run(); err != nil {
		return nil, err
	}
	t.Cleanup(s.kill)
	return s, nil
}

// run starts the server's process and waits until it answers PING.
func (s *Server) run() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &bytes.Buffer{}
	cmd := exec.Command(s.bin, s.argv...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	s.cmd, s.out, s.done = cmd, out, done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("%s on %s did not answer PING in %v: %w; output:\n%s", s.bin, s.Addr, startTimeout, err, out)
		}
		select {
		case <-done:
			return fmt.Errorf("%s on %s exited: %s", s.bin, s.Addr, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill stops the server (SIGKILL: it persists nothing, and a stopped process dies too) and
// waits for it to exit.
func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Stop kills the server now (SIGKILL); the test's cleanup then has nothing left to do.
func (s *Server) Stop() { s.kill() }

// Kill is Stop: SIGKILL, as a crash or an OOM kill does. Its data is lost.
func (s *Server) Kill() { s.kill() }

// Pause freezes the server (SIGSTOP): connections stay open and commands get no answer
// until Resume.
func (s *Server) Pause() error {
	s.paused.Store(true)
	return s.signal(syscall.SIGSTOP)
}

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() error {
	err := s.signal(syscall.SIGCONT)
	s.paused.Store(false)
	return err
}

// Paused says whether the server is paused (Pause without Resume).
func (s *Server) Paused() bool { return s.paused.Load() }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Signal(sig)
}

// Restart kills the server (SIGKILL) and starts a new one on the same address, empty: what a
// restart without persistence does. It fails the test when the new one does not start.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.kill()
	if err := s.run(); err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
}

// Do sends one command to the server on a new connection and returns the reply's first line
// (for example "+PONG", ":3", "$5" for a bulk string of 5 bytes). It is meant for test
// set-up and inspection (FLUSHALL, DBSIZE, TTL), not for the code under test.
func (s *Server) Do(args ...string) (string, error) {
	if s.pass != "" {
		return doAuth(s.Addr, s.user, s.pass, false, args...)
	}
	return do(s.Addr, args...)
}

// DoBulk is Do, returning a bulk string reply whole (INFO, CLIENT LIST).
func (s *Server) DoBulk(args ...string) (string, error) {
	if s.pass != "" {
		return doAuth(s.Addr, s.user, s.pass, true, args...)
	}
	return doBulk(s.Addr, args...)
}

func (s *Server) ping() error {
	r, err := s.Do("PING")
	if err != nil {
		return err
	}
	if r != "+PONG" {
		return fmt.Errorf("PING answered %q", r)
	}
	return nil
}

// do sends one command to addr and returns the first line of its reply, without CRLF.
func do(addr string, args ...string) (string, error) { return exchange(addr, args, readLine) }

// exchange sends one command to addr on a connection of its own and reads the reply with read.
func exchange(addr string, args []string, read func(*bufio.Reader) (string, error)) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	return read(bufio.NewReader(c))
}

// readLine reads one line of a reply, without CRLF.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\r\n"), nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
