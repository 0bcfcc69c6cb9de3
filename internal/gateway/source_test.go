package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// numbered returns the config of policies ps at generation gen, as bytes.
func numbered(t *testing.T, gen int64, minInterval string) []byte {
	t.Helper()
	p := standardPolicy()
	p.Feed.MinInterval = dur(minInterval)
	c := configOf(p)
	c.Generation = gen
	return marshal(t, c)
}

// TestGenerationRule checks docs/design.md#config-travel step by step, with the file and the
// pushed config interleaved as a kubelet and a watch deliver them: the newer generation wins
// whatever its source; an older one never rolls the gateway back, and leaves the state alone.
func TestGenerationRule(t *testing.T) {
	h := newHarness(t, nil)
	file := filepath.Join(t.TempDir(), "config.json")
	writeFile := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.g.LoadFile(file); err != nil {
			t.Fatal(err)
		}
	}
	push := func(b []byte) {
		t.Helper()
		if err := h.g.ApplyPushed(b); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step string, gen int64, source, minInterval string, applies uint64) {
		t.Helper()
		st := h.g.Status()
		if st.ConfigGeneration != gen || st.ConfigSource != source || st.Generation != applies {
			t.Fatalf("%s: generation %d from %q after %d applies, want %d from %q after %d", step, st.ConfigGeneration, st.ConfigSource, st.Generation, gen, source, applies)
		}
		if got := time.Duration(h.g.active.Load().policy.base.interval); got != dur(minInterval).D() {
			t.Fatalf("%s: minInterval %s in force, want %s", step, got, minInterval)
		}
	}

	writeFile(numbered(t, 3, "2s"))
	want("start-up file", 3, SourceFile, "2s", 1)
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "")

	push(numbered(t, 3, "2s"))
	want("the watch's first event, same bytes", 3, SourceFile, "2s", 1)

	push(numbered(t, 4, "5s"))
	want("an edit pushed", 4, SourceWatch, "5s", 2)
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled") // state kept

	writeFile(numbered(t, 3, "3s"))
	want("a late copy of generation 3", 4, SourceWatch, "5s", 2)
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled")
	if err := h.g.LoadFile(file); err != nil { // the 10 s resync reads it again: same bytes, not counted again
		t.Fatal(err)
	}
	want("the resync of the stale file", 4, SourceWatch, "5s", 2)

	writeFile(numbered(t, 4, "5s"))
	want("the kubelet catches up", 4, SourceWatch, "5s", 2)

	writeFile(numbered(t, 6, "7s"))
	want("the file ahead of a lagging watch", 6, SourceFile, "7s", 3)
	push(numbered(t, 5, "1s"))
	want("the watch behind the file", 6, SourceFile, "7s", 3)

	push(numbered(t, 6, "8s"))
	want("the same generation with other bytes", 6, SourceWatch, "8s", 4)

	push(numbered(t, 0, "9s"))
	want("a config without a generation after numbered ones", 6, SourceWatch, "8s", 4)

	if !hasMetric(t, h.g, `offerfeed_gateway_config_stale_total{source="file"} 1`) ||
		!hasMetric(t, h.g, `offerfeed_gateway_config_stale_total{source="watch"} 2`) {
		t.Errorf("stale configs not counted:\n%s", metricText(t, h.g))
	}
	if !hasMetric(t, h.g, "offerfeed_gateway_enforced_config_generation 6") || !hasMetric(t, h.g, `offerfeed_gateway_config_source{source="watch"} 1`) ||
		!hasMetric(t, h.g, `offerfeed_gateway_config_source{source="file"} 0`) {
		t.Errorf("generation or source not in the metrics:\n%s", metricText(t, h.g))
	}
	readyz := httptestGet(h.g.AdminHandler(), "/readyz").Body.String()
	if !strings.Contains(readyz, `"configGeneration": 6`) || !strings.Contains(readyz, `"configSource": "watch"`) {
		t.Errorf("/readyz does not say the generation and source:\n%s", readyz)
	}

	// An invalid pushed config is refused as a bad file is; the last good one stays.
	if err := h.g.ApplyPushed([]byte(`{"schemaVersion": 1, "generation": 9, "namespace": "offers", "policies": [{}]}`)); err == nil {
		t.Fatal("invalid pushed config accepted")
	}
	want("an invalid pushed config", 6, SourceWatch, "8s", 4)
	if err := h.g.ApplyPushed([]byte(`{"schemaVersion": 1, "generation": -1, "namespace": "offers", "policies": []}`)); err == nil {
		t.Fatal("negative generation accepted")
	}
}

// TestGenerationRuleWithoutNumbers keeps configs without a generation (hand-written files,
// older operators) working as before: each new one applies.
func TestGenerationRuleWithoutNumbers(t *testing.T) {
	h := newHarness(t, nil)
	for i, iv := range []string{"2s", "3s", "2s"} {
		if err := h.g.ApplyPushed(numbered(t, 0, iv)); err != nil {
			t.Fatal(err)
		}
		if got := h.g.Status().Generation; got != uint64(i+1) {
			t.Fatalf("config %d: %d applies", i, got)
		}
	}
}

// TestEnforcedNotifies checks what the pod reporter reads: the policy hash and generation in
// force, and a channel closed by the next apply, labels changes included.
func TestEnforcedNotifies(t *testing.T) {
	h := newHarness(t, nil)
	e, ch := h.g.Enforced()
	if e.Loaded || e.PolicyHash != "" {
		t.Fatalf("before any config: %+v", e)
	}
	if err := h.g.ApplyPushed(numbered(t, 2, "2s")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("apply did not notify")
	}
	e, ch = h.g.Enforced()
	cfg, err := gatewayconfig.Parse(numbered(t, 2, "2s"))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Loaded || e.Generation != 2 || e.PolicyHash != cfg.Policies[0].Hash {
		t.Fatalf("after generation 2: %+v, want hash %s", e, cfg.Policies[0].Hash)
	}
	if err := h.g.SetPodLabels(map[string]string{"app": "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("a labels change did not notify")
	}
	if e, _ = h.g.Enforced(); e.PolicyHash != "" || e.Generation != 2 {
		t.Fatalf("after the pod left the policy: %+v", e)
	}
}

// TestPushedLabelsWin checks that once the pod's labels came from the API server, the downward
// API labels file (a later copy of the same labels) cannot move the pod back.
func TestPushedLabelsWin(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	file := filepath.Join(t.TempDir(), "labels")
	if err := os.WriteFile(file, []byte(`app="elsewhere"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.g.loadLabelsFile(file); err != nil {
		t.Fatal(err)
	}
	if p := h.g.Status().Policy; p != "" {
		t.Fatalf("before the push the file applies: policy %q", p)
	}
	if err := h.g.SetPushedPodLabels(map[string]string{"app": "offer-service"}); err != nil {
		t.Fatal(err)
	}
	if err := h.g.loadLabelsFile(file); err != nil {
		t.Fatal(err)
	}
	if p := h.g.Status().Policy; p != "standard" {
		t.Fatalf("the stale labels file moved the pod: policy %q", p)
	}
}
