package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/config/grafana"
	"github.com/offerfeed/offerfeed/config/prometheus"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/offerfeedtest"
)

// metricName matches the metric names the dashboard and the rules use: offerfeed's own, and
// those of controller-runtime, its work queues and the process and Go collectors.
var metricName = regexp.MustCompile(`\b(?:offerfeed|controller_runtime|workqueue|process|go)_[a-z0-9_]*[a-z0-9]\b`)

// TestQueriesNameExposedMetrics runs a manager (metrics on) and a gateway with the config the
// manager rendered, drives traffic through the gateway that makes every kind of series
// appear (decisions, a fair draw, an upstream error), scrapes both /metrics, and checks that
// each metric named by a dashboard query or an alert expression is exposed.
func TestQueriesNameExposedMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	referenced := map[string][]string{} // metric name -> where
	for _, q := range dashboardQueries(t, grafana.Dashboard) {
		for _, n := range metricName.FindAllString(q, -1) {
			referenced[n] = append(referenced[n], "dashboard: "+q)
		}
	}
	for alert, expr := range ruleExprs(t, prometheus.Rules) {
		for _, n := range metricName.FindAllString(expr, -1) {
			referenced[n] = append(referenced[n], "alert "+alert)
		}
	}
	for _, must := range []string{"offerfeed_gateway_decisions_total", "offerfeed_policy_condition",
		"controller_runtime_reconcile_errors_total", "workqueue_depth", "offerfeed_gateway_draw_hold_seconds_bucket"} {
		if _, ok := referenced[must]; !ok {
			t.Errorf("the dashboard and the rules do not use %s; the name extraction is broken", must)
		}
	}

	// The manager, serving its metrics as in production (plain HTTP here).
	addr := freeAddr(t)
	mgr, err := operator.NewManager(cfg, operator.Options{MetricsAddr: addr, Controller: operator.UniqueControllerName()})
	if err != nil {
		t.Fatal(err)
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	ns := "metrics"
	createNamespace(ctx, t, ns)
	p := &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "standard"},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service"}),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "1s"},
			Accept: &v1alpha1.AcceptLimits{
				Method: "POST", PathTemplate: "/offers/{offerId}/accept",
				MinReactionTime: ptr.To(v1alpha1.Duration("50ms")), RequireShown: ptr.To(true),
				Fairness: &v1alpha1.Fairness{Window: "200ms", Award: "Random"},
			},
			ShownOffers: &v1alpha1.ShownOffers{JSONPath: "offers[].id"},
		},
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	gwcfg, err := offerfeedtest.WaitForPolicyProgrammed(ctx, k8s, types.NamespacedName{Namespace: ns, Name: "standard"})
	if err != nil {
		t.Fatal(err)
	}

	// The offer service: one open offer; accepts succeed; /boom drops the connection.
	offer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/offers":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"offers": [{"id": "o1"}]}`)
		case r.URL.Path == "/boom":
			panic(http.ErrAbortHandler)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(offer.Close)
	u, _ := url.Parse(offer.URL)
	g, err := gateway.New(gateway.Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(gwcfg); err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g)
	t.Cleanup(gw.Close)
	admin := httptest.NewServer(g.AdminHandler())
	t.Cleanup(admin.Close)

	do := func(method, path, driver string) int {
		req, _ := http.NewRequestWithContext(ctx, method, gw.URL+path, nil)
		if driver != "" {
			req.Header.Set("X-Driver-Id", driver)
		}
		resp, err := gw.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, d := range []string{"d1", "d2"} {
		if c := do("GET", "/offers", d); c != 200 {
			t.Fatalf("poll of %s: %d", d, c)
		}
	}
	if c := do("GET", "/offers", "d1"); c != http.StatusTooManyRequests {
		t.Errorf("second poll of d1: %d, want 429 feed-throttled", c)
	}
	if c := do("GET", "/offers", ""); c != http.StatusBadRequest {
		t.Errorf("poll without identity: %d, want 400", c)
	}
	if c := do("POST", "/offers/o1/accept", "d1"); c != http.StatusTooManyRequests {
		t.Errorf("accept right after the poll: %d, want 429 too-fast", c)
	}
	time.Sleep(100 * time.Millisecond) // past minReactionTime
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i, d := range []string{"d1", "d2"} {
		wg.Go(func() { codes[i] = do("POST", "/offers/o1/accept", d) })
	}
	wg.Wait()
	slices.Sort(codes)
	if !slices.Equal(codes, []int{200, http.StatusConflict}) {
		t.Errorf("the draw answered %v, want one 200 and one 409", codes)
	}
	if c := do("POST", "/boom", ""); c != http.StatusBadGateway {
		t.Errorf("an upstream that drops the connection: %d, want 502", c)
	}

	exposed := map[string]bool{}
	gwFamilies := scrape(t, admin.URL+"/metrics")
	addNames(exposed, gwFamilies)
	var mgrFamilies map[string]*dto.MetricFamily
	// The manager exports the policy's conditions after its reconcile; wait for them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mgrFamilies = scrape(t, "http://"+addr+"/metrics")
		if hasPolicyReady(mgrFamilies, ns) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	addNames(exposed, mgrFamilies)
	if !hasPolicyReady(mgrFamilies, ns) {
		t.Errorf("offerfeed_policy_condition has no Ready=True series for %s/standard", ns)
	}

	for _, n := range slices.Sorted(maps.Keys(referenced)) {
		if !exposed[n] {
			t.Errorf("%s is not exposed by the gateway or the manager; used by:\n  %s", n, strings.Join(slices.Compact(referenced[n]), "\n  "))
		}
	}
	// The controller-runtime queries select the policy controller by label: those labels exist.
	for fam, label := range map[string]string{"controller_runtime_reconcile_errors_total": "controller",
		"controller_runtime_reconcile_total": "controller", "workqueue_depth": "name"} {
		found := false
		for _, m := range mgrFamilies[fam].GetMetric() {
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == label && strings.HasPrefix(l.GetValue(), "offerfeedpolicy"))
			}
		}
		if !found {
			t.Errorf("%s has no series with %s=offerfeedpolicy…, which the dashboard and the rules select", fam, label)
		}
	}
	if !t.Failed() {
		t.Logf("%d metric names referenced, all exposed", len(referenced))
	}
}

// dashboardQueries returns every PromQL query of the dashboard: the panels' targets and the
// template variables' queries.
func dashboardQueries(t *testing.T, dashboard []byte) []string {
	t.Helper()
	var d any
	if err := json.Unmarshal(dashboard, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d)
	if len(out) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(out))
	}
	return out
}

// ruleExprs returns the expression of each alert of the rules file.
func ruleExprs(t *testing.T, rules []byte) map[string]string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(rules, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	if len(out) == 0 {
		t.Fatal("no alerts in the rules file")
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// scrape reads a /metrics endpoint, retrying while its server starts.
func scrape(t *testing.T, u string) map[string]*dto.MetricFamily {
	t.Helper()
	var last error
	for range 50 {
		resp, err := http.Get(u)
		if err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			last = fmt.Errorf("GET %s: %d %w", u, resp.StatusCode, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("parsing %s: %v", u, err)
		}
		return fams
	}
	t.Fatalf("scraping %s: %v", u, last)
	return nil
}

// addNames adds the names of the series of fams: a histogram's _bucket, _sum and _count, a
// summary's _sum and _count, and the family's own name. A family without samples adds nothing.
func addNames(names map[string]bool, fams map[string]*dto.MetricFamily) {
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue
		}
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
}

func hasSample(f *dto.MetricFamily, want map[string]string) bool {
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if match && m.GetGauge().GetValue() == 1 {
			return true
		}
	}
	return false
}

func hasPolicyReady(fams map[string]*dto.MetricFamily, ns string) bool {
	return hasSample(fams["offerfeed_policy_condition"], map[string]string{"namespace": ns, "policy": "standard",
		"type": string(v1alpha1.ConditionReady), "status": "True", "reason": string(v1alpha1.ReasonReady)})
}
