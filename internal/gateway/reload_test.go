package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// kubeletVolume mimics how the kubelet writes a ConfigMap volume: the files live in a
// timestamped directory, ..data is a symlink to it, and each key is a symlink through ..data.
// An update writes a new directory and swaps ..data atomically (symlink, then rename).
type kubeletVolume struct {
	t   testing.TB
	dir string
	n   int
	cur string
}

func newKubeletVolume(t testing.TB) *kubeletVolume {
	return &kubeletVolume{t: t, dir: t.TempDir()}
}

func (v *kubeletVolume) write(files map[string][]byte) {
	v.t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", v.n, v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		v.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), data, 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				v.t.Fatal(err)
			}
		}
	}
	if v.cur != "" {
		os.RemoveAll(filepath.Join(v.dir, v.cur))
	}
	v.cur = ts
}

func marshal(t testing.TB, c *gatewayconfig.Config) []byte {
	t.Helper()
	b, err := gatewayconfig.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startWatch(t testing.TB, g *Gateway, configFile, labelsFile string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Watch(ctx, configFile, labelsFile) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
}

func TestReloadKubeletVolume(t *testing.T) {
	vol := newKubeletVolume(t)
	h := newHarness(t, nil)
	configFile := filepath.Join(vol.dir, "config.json")
	// The ConfigMap volume is optional: no file at start proxies everything.
	startWatch(t, h.g, configFile, "")
	eventually(t, "the missing config to be noticed", func() bool { return strings.Contains(h.g.Status().Detail, "no config file") })
	expect(t, h.do("GET", "/offers", ""), 200, "")

	other := standardPolicy()
	other.Name, other.Selector.MatchLabels = "other", map[string]string{"app": "elsewhere"}
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(other, standardPolicy()))})
	eventually(t, "the first config", func() bool { return h.g.Status().Policy == "standard" })
	gen := h.g.Status().Generation
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "")
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled")

	// A change to another policy: applied, and d1's state is kept.
	other.Feed.MinInterval = dur("5s")
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(other, standardPolicy()))})
	eventually(t, "the second config", func() bool { return h.g.Status().Generation > gen })
	gen = h.g.Status().Generation
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled")

	// A new limit of the policy in force applies; the state stays.
	changed := standardPolicy()
	changed.Feed.Burst = 2
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(other, changed))})
	eventually(t, "the third config", func() bool { return h.g.Status().Generation > gen })
	gen = h.g.Status().Generation
	w := h.do("GET", "/offers", "", drv("d1")...)
	expect(t, w, 200, "")
	if w.Header().Get("RateLimit-Policy") != `"feed";q=2;w=4` {
		t.Errorf("new limit not in force: %q", w.Header().Get("RateLimit-Policy"))
	}
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled")

	// A broken config is refused; the last good one stays, and says so.
	vol.write(map[string][]byte{"config.json": []byte(`{"schemaVersion": 1, "policies": [{"name": "x"`)})
	eventually(t, "the broken config to be refused", func() bool { return h.g.Status().LastReloadError != "" })
	st := h.g.Status()
	if st.Policy != "standard" || st.Generation != gen {
		t.Errorf("after a broken config: %+v", st)
	}
	if !hasMetric(t, h.g, "offerfeed_gateway_config_reload_failures_total 1") {
		t.Error("reload failure not counted")
	}
	if !hasMetric(t, h.g, "offerfeed_gateway_config_last_reload_successful 0") {
		t.Error("offerfeed_gateway_config_last_reload_successful is not 0 after a refused config")
	}
	readyz := httptestGet(h.g.AdminHandler(), "/readyz").Body.String()
	if !strings.Contains(readyz, `"lastReloadError": "config file`) {
		t.Errorf("readyz does not show the reload error:\n%s", readyz)
	}
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled")

	// An invalid (but well-formed) one too.
	bad := standardPolicy()
	bad.Accept.PathTemplate = "/offers/{offerId}/{offerId}"
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(bad))})
	eventually(t, "the invalid config to be refused", func() bool {
		return strings.Contains(h.g.Status().LastReloadError, "accept.pathTemplate")
	})
	if h.g.Status().Generation != gen {
		t.Error("invalid config applied")
	}

	// Fixed: applied, the error clears, and the state is still there.
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(other, changed))})
	eventually(t, "the fixed config", func() bool { return h.g.Status().LastReloadError == "" })
	if !hasMetric(t, h.g, "offerfeed_gateway_config_last_reload_successful 1") {
		t.Error("offerfeed_gateway_config_last_reload_successful is not 1 once the config is fixed")
	}
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled")

	// Renamed policy: new state.
	renamed := changed
	renamed.Name = "renamed"
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(renamed))})
	eventually(t, "the renamed policy", func() bool { return h.g.Status().Policy == "renamed" })
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "")
}

// TestReloadPlainFile: an ordinary file written in place, renamed over, and removed.
func TestReloadPlainFile(t *testing.T) {
	dir := t.TempDir()
	configFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(configFile, marshal(t, configOf(standardPolicy())), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil)
	startWatch(t, h.g, configFile, "")
	eventually(t, "the config", func() bool { return h.g.Status().Policy == "standard" })

	p := standardPolicy()
	p.Name = "written"
	if err := os.WriteFile(configFile, marshal(t, configOf(p)), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the written config", func() bool { return h.g.Status().Policy == "written" })

	p.Name = "renamed"
	tmp := filepath.Join(dir, "tmp.json")
	if err := os.WriteFile(tmp, marshal(t, configOf(p)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, configFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the renamed-over config", func() bool { return h.g.Status().Policy == "renamed" })

	// A file that was there and goes away keeps the last good config in force.
	os.Remove(configFile)
	eventually(t, "the removal", func() bool { return h.g.Status().ConfigFileMissing })
	if st := h.g.Status(); st.Policy != "renamed" || !st.ConfigLoaded {
		t.Errorf("after the removal: %+v", st)
	}
	expect(t, h.do("GET", "/offers", ""), 400, "missing-identity")
}

// TestReloadPodLabels: the downward API labels file picks the policy, and its updates too.
func TestReloadPodLabels(t *testing.T) {
	cfgVol, labelVol := newKubeletVolume(t), newKubeletVolume(t)
	cfgVol.write(map[string][]byte{"config.json": marshal(t, configOf(standardPolicy()))})
	labelVol.write(map[string][]byte{"labels": []byte("app=\"nope\"\npod-template-hash=\"abc\"\n")})
	h := newHarness(t, nil, func(o *Options) { o.PodLabels = nil })
	startWatch(t, h.g, filepath.Join(cfgVol.dir, "config.json"), filepath.Join(labelVol.dir, "labels"))
	eventually(t, "the config", func() bool { return h.g.Status().ConfigLoaded })
	if p := h.g.Status().Policy; p != "" {
		t.Fatalf("policy %q for labels that match none", p)
	}
	labelVol.write(map[string][]byte{"labels": []byte("app=\"offer-service\"\npod-template-hash=\"abc\"\n")})
	eventually(t, "the labels update", func() bool { return h.g.Status().Policy == "standard" })
}

// BenchmarkReload measures the time from the kubelet's swap of the ..data symlink to the new
// policy in force (ns/op), through the real file watch and its debounce:
//
//	go test ./internal/gateway -run '^$' -bench Reload -benchtime 20x
func BenchmarkReload(b *testing.B) {
	vol := newKubeletVolume(b)
	vol.write(map[string][]byte{"config.json": marshal(b, configOf(standardPolicy()))})
	h := newHarness(b, nil)
	startWatch(b, h.g, filepath.Join(vol.dir, "config.json"), "")
	eventually(b, "the config", func() bool { return h.g.Status().Policy == "standard" })
	configs := make([][]byte, b.N)
	for i := range configs {
		p := standardPolicy()
		p.Name = fmt.Sprint("p", i)
		configs[i] = marshal(b, configOf(p))
	}
	var worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		vol.write(map[string][]byte{"config.json": configs[i]})
		want := fmt.Sprint("p", i)
		for h.g.Status().Policy != want {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("config %s not applied after 10s", want)
			}
			time.Sleep(100 * time.Microsecond)
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
}

func TestParsePodLabels(t *testing.T) {
	l, err := ParsePodLabelsFile([]byte("app=\"offer-service\"\nteam=\"a \\\"b\\\"\"\n\n"))
	if err != nil || l["app"] != "offer-service" || l["team"] != `a "b"` {
		t.Errorf("%v %v", l, err)
	}
	if _, err := ParsePodLabelsFile([]byte("app=offer-service\n")); err == nil {
		t.Error("unquoted value accepted")
	}
	l, err = ParsePodLabelsList("app=offer-service, tier=web")
	if err != nil || l["tier"] != "web" {
		t.Errorf("%v %v", l, err)
	}
	if _, err := ParsePodLabelsList("app"); err == nil {
		t.Error("bad list accepted")
	}
}

// TestReloadDirectoryAppears: the config's directory does not exist at start; the gateway
// proxies everything, and applies the config once the directory and file appear.
func TestReloadDirectoryAppears(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	h := newHarness(t, nil)
	startWatch(t, h.g, filepath.Join(dir, "config.json"), "")
	eventually(t, "the missing config to be noticed", func() bool { return strings.Contains(h.g.Status().Detail, "no config file") })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), marshal(t, configOf(standardPolicy())), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the config", func() bool { return h.g.Status().Policy == "standard" })
}
