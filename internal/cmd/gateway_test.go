package cmd

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, name string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, data, perm); err != nil {
		t.Fatal(err)
	}
}

func TestGatewayFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                               // no --upstream
		{"--upstream", "127.0.0.1:8080"}, // not a URL
		{"--upstream", "http://x", "--pod-labels", "a=b", "--pod-labels-file", "f"},
		{"--upstream", "http://x", "--pod-labels", "no-value"},
		{"--upstream", "http://x", "--log-level", "loud"},
		{"--upstream", "http://x", "--body-timeout", "-1s"},
		{"--upstream", "http://x", "--read-header-timeout", "0s"},
		{"--upstream", "http://x", "--idle-timeout", "soon"},
		{"--no-such-flag"},
	} {
		if code, _, stderr := runOfferfeed(t, "", append([]string{"gateway"}, args...)...); code != ExitUsage {
			t.Errorf("offerfeed gateway %q: exit %d, want %d; stderr:\n%s", args, code, ExitUsage, stderr)
		}
	}
}

// TestGatewayCommand runs `offerfeed gateway` in process: it enforces the config, serves the
// admin port, and on SIGTERM fails /readyz and lets a request in flight finish.
func TestGatewayCommand(t *testing.T) {
	slow := make(chan struct{})
	reached := make(chan struct{}, 1) // the slow request reached the offer service
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			reached <- struct{}{}
			<-slow
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	dir := t.TempDir()
	config := filepath.Join(dir, "config.json")
	writeFile(t, config, []byte(`{"schemaVersion":1,"namespace":"offers","policies":[{"name":"standard","mode":"Enforce",
		"selector":{"matchLabels":{"app":"offer-service"}},"identityHeader":"X-Driver-Id",
		"feed":{"method":"GET","path":"/offers","minInterval":"2s","burst":1}}]}`), 0o644)
	labels := filepath.Join(dir, "labels")
	writeFile(t, labels, []byte("app=\"offer-service\"\n"), 0o644)
	listen, admin := freeAddr(t), freeAddr(t)
	done := make(chan int, 1)
	go func() {
		// One-dash long flags, as the flag package took them, still work.
		code, _, _ := runOfferfeed(t, "", "gateway", "--config", config, "--upstream", up.URL, "-listen", listen, "--admin-listen", admin,
			"--pod-labels-file", labels, "--log-level", "error", "-shutdown-timeout=10s")
		done <- code
	}()
	get := func(addr, path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("X-Driver-Id", "d1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, body := get(admin, "/readyz"); code == 200 && strings.Contains(body, `"policy": "standard"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready with the policy")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := get(listen, "/offers"); code != 200 {
		t.Fatalf("first poll %d", code)
	}
	if code, _ := get(listen, "/offers"); code != 429 {
		t.Fatalf("second poll %d, want 429", code)
	}
	if code, body := get(admin, "/metrics"); code != 200 || !strings.Contains(body, `offerfeed_gateway_decisions_total{decision="feed-throttled",policy="standard",route="feed"} 1`) {
		t.Fatalf("metrics %d:\n%s", code, body)
	}

	inflight := make(chan string, 1)
	go func() {
		code, body := get(listen, "/slow")
		inflight <- fmt.Sprint(code, " ", body)
	}()
	<-reached
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if code, _ := get(admin, "/readyz"); code == http.StatusServiceUnavailable || code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readyz did not fail after SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(slow)
	if got := <-inflight; got != "200 ok" {
		t.Errorf("request in flight at SIGTERM: %q, want 200 ok", got)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not stop")
	}
}
