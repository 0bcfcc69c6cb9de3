package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// quotaPolicy is standardPolicy with one accept per window and no shown-offer checks, so that a
// driver uses up its quota with one accept.
func quotaPolicy() *gatewayconfig.Policy {
	p := standardPolicy()
	p.Accept.MaxAccepts, p.Accept.RequireShown, p.Accept.MinReactionTime = 1, false, 0
	return &p
}

// TestReloadConfigMissing: the config file of a kubelet-like ConfigMap volume that goes away —
// the key's symlink removed, or ..data left dangling — keeps the last good config and every
// driver's state in force, says so in /readyz and in a metric, and a restore (the same bytes
// or a changed config of the same policy) finds a driver who used its quota still throttled.
func TestReloadConfigMissing(t *testing.T) {
	vol := newKubeletVolume(t)
	cfg := marshal(t, configOf(*quotaPolicy()))
	vol.write(map[string][]byte{"config.json": cfg})
	h := newHarness(t, nil)
	startWatch(t, h.g, filepath.Join(vol.dir, "config.json"), "")
	eventually(t, "the config", func() bool { return h.g.Status().Policy == "standard" })
	gen := h.g.Status().Generation
	if !hasMetric(t, h.g, "offerfeed_gateway_config_source_missing 0") {
		t.Error("config source reported missing while it is there")
	}
	expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 200, "")
	expect(t, h.do("POST", "/offers/o2/accept", "", drv("d1")...), 429, "accept-throttled")

	missing := func(what string) {
		t.Helper()
		eventually(t, what+" to be noticed", func() bool { return h.g.Status().ConfigFileMissing })
		st := h.g.Status()
		if st.Policy != "standard" || !st.ConfigLoaded || st.Generation != gen || st.ConfigFileMissingSince == nil ||
			!strings.Contains(st.Detail, "config file is missing") {
			t.Errorf("%s: %+v", what, st)
		}
		if !hasMetric(t, h.g, "offerfeed_gateway_config_source_missing 1") {
			t.Errorf("%s: not in offerfeed_gateway_config_source_missing", what)
		}
		readyz := httptestGet(h.g.AdminHandler(), "/readyz")
		if readyz.Code != 200 || !strings.Contains(readyz.Body.String(), `"configFileMissing": true`) {
			t.Errorf("%s: /readyz %d\n%s", what, readyz.Code, readyz.Body)
		}
		// Still enforced, with the state as it was.
		expect(t, h.do("POST", "/offers/o3/accept", "", drv("d1")...), 429, "accept-throttled")
		expect(t, h.do("GET", "/offers", ""), 400, "missing-identity")
	}
	back := func(what string) {
		t.Helper()
		eventually(t, what, func() bool { return !h.g.Status().ConfigFileMissing })
		if !hasMetric(t, h.g, "offerfeed_gateway_config_source_missing 0") {
			t.Errorf("%s: still in offerfeed_gateway_config_source_missing", what)
		}
		expect(t, h.do("POST", "/offers/o4/accept", "", drv("d1")...), 429, "accept-throttled")
	}

	// The key's symlink removed, then restored with the same bytes: nothing applied again.
	if err := os.Remove(filepath.Join(vol.dir, "config.json")); err != nil {
		t.Fatal(err)
	}
	missing("the removed file")
	vol.write(map[string][]byte{"config.json": cfg})
	back("the file restored")
	if g := h.g.Status().Generation; g != gen {
		t.Errorf("the same bytes restored were applied again: generation %d, was %d", g, gen)
	}

	// ..data dangling: the directory it points to removed.
	if err := os.RemoveAll(filepath.Join(vol.dir, vol.cur)); err != nil {
		t.Fatal(err)
	}
	missing("the dangling ..data")
	// Restored with a change to the policy in force: applied, the state kept.
	changed := quotaPolicy()
	changed.Feed.Burst = 2
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(*changed))})
	back("the changed config")
	if st := h.g.Status(); st.Generation != gen+1 || st.LastReloadError != "" {
		t.Errorf("the changed config: %+v", st)
	}
}

// TestReloadConfigMissingAtStart: a config file never seen means no config (proxy everything),
// reported as missing.
func TestReloadConfigMissingAtStart(t *testing.T) {
	vol := newKubeletVolume(t)
	h := newHarness(t, nil)
	startWatch(t, h.g, filepath.Join(vol.dir, "config.json"), "")
	eventually(t, "the missing config", func() bool { return h.g.Status().ConfigFileMissing })
	if st := h.g.Status(); st.ConfigLoaded || st.Policy != "" || !strings.Contains(st.Detail, "no config file") {
		t.Errorf("%+v", st)
	}
	if !hasMetric(t, h.g, "offerfeed_gateway_config_source_missing 1") {
		t.Error("not in offerfeed_gateway_config_source_missing")
	}
	expect(t, h.do("GET", "/offers", ""), 200, "")
	vol.write(map[string][]byte{"config.json": marshal(t, configOf(standardPolicy()))})
	eventually(t, "the config", func() bool { return h.g.Status().Policy == "standard" })
	if h.g.Status().ConfigFileMissing || !hasMetric(t, h.g, "offerfeed_gateway_config_source_missing 0") {
		t.Error("still reported missing")
	}
}

// TestStateRetainedWithoutPolicy: a config in which no policy applies to the pod, then the same
// policy again, keeps its drivers' state; a policy that comes back after another one was in
// force starts afresh.
func TestStateRetainedWithoutPolicy(t *testing.T) {
	h := newHarness(t, configOf(*quotaPolicy()))
	expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 200, "")
	expect(t, h.do("POST", "/offers/o2/accept", "", drv("d1")...), 429, "accept-throttled")

	// The policy removed from the config (all policies deleted: the controller writes a config
	// without policies), then created again.
	if err := h.g.Apply(configOf()); err != nil {
		t.Fatal(err)
	}
	expect(t, h.do("POST", "/offers/o2/accept", "", drv("d1")...), 200, "")
	if err := h.g.Apply(configOf(*quotaPolicy())); err != nil {
		t.Fatal(err)
	}
	expect(t, h.do("POST", "/offers/o3/accept", "", drv("d1")...), 429, "accept-throttled")

	// Its selector stops matching the pod, then matches again.
	away := quotaPolicy()
	away.Selector.MatchLabels = map[string]string{"app": "elsewhere"}
	if err := h.g.Apply(configOf(*away)); err != nil {
		t.Fatal(err)
	}
	if err := h.g.Apply(configOf(*quotaPolicy())); err != nil {
		t.Fatal(err)
	}
	expect(t, h.do("POST", "/offers/o3/accept", "", drv("d1")...), 429, "accept-throttled")

	// Another policy in force in between: that state is let go.
	other := quotaPolicy()
	other.Name = "other"
	for _, c := range [][]gatewayconfig.Policy{{*other}, nil, {*quotaPolicy()}} {
		if err := h.g.Apply(configOf(c...)); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, h.do("POST", "/offers/o3/accept", "", drv("d1")...), 200, "")
}
