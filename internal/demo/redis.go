package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvRedisServer names the environment variable holding the path of the Redis server binary
// (the variable make test and make demo set from hack/redis/find.sh).
const EnvRedisServer = "OFFERFEED_REDIS_SERVER"

// redisStartTimeout bounds how long the demo's Redis server may take to answer PING.
const redisStartTimeout = 10 * time.Second

// errNoRedisServer says what to install when no Redis server binary is found.
var errNoRedisServer = errors.New("shared state needs a Redis server, and none was found: give --redis-server PATH or set " +
	EnvRedisServer + ", or install one (Debian/Ubuntu: apt-get install redis-server, or valkey-server; Fedora: dnf install redis; " +
	"macOS: brew install redis); make demo runs hack/redis/find.sh, which installs Debian's redis-server when run as root")

// redisFallbackPaths are where Debian installs the servers, for a PATH that lacks /usr/bin.
var redisFallbackPaths = []string{"/usr/bin/redis-server", "/usr/bin/valkey-server"}

// findRedisServer returns the Redis server binary the demo starts: path when set, else
// $OFFERFEED_REDIS_SERVER, else redis-server or valkey-server from PATH or /usr/bin, as
// hack/redis/find.sh looks for them.
func findRedisServer(path string) (string, error) {
	for _, p := range []string{path, os.Getenv(EnvRedisServer)} {
		if p == "" {
			continue
		}
		if err := executable(p); err != nil {
			return "", fmt.Errorf("redis server %s: %w", p, err)
		}
		return p, nil
	}
	for _, b := range []string{"redis-server", "valkey-server"} {
		if p, err := exec.LookPath(b); err == nil {
			return p, nil
		}
	}
	for _, p := range redisFallbackPaths {
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", errNoRedisServer
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// redisServer is the demo's own Redis server on a free loopback port: no persistence, a
// temporary directory, stopped (SIGKILL: it keeps nothing) when the demo ends.
type redisServer struct {
	addr string
	dir  string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// startRedis starts bin on a free loopback port and waits until it answers PING.
func startRedis(ctx context.Context, bin string) (*redisServer, error) {
	var lastErr error
	for range 3 { // a port probed free may be taken before the server binds it
		s, err := tryStartRedis(ctx, bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func tryStartRedis(ctx context.Context, bin string) (*redisServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "offerfeed-demo-redis-")
	if err != nil {
		return nil, err
	}
	s := &redisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, out: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
		"--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", "--logfile", "")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(redisStartTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			s.stop()
			return nil, fmt.Errorf("%s on %s exited: %s", bin, s.addr, bytes.TrimSpace(s.out.Bytes()))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s on %s did not answer PING in %v: %w", bin, s.addr, redisStartTimeout, err)
		}
	}
}

// stop kills the server, waits for it to exit and removes its directory.
func (s *redisServer) stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
	_ = os.RemoveAll(s.dir)
}
