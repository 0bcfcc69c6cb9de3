package observability

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/offerfeedtest"
)

// healthScript is the Argo CD health check shipped in config/argocd.
var healthScript = filepath.Join("..", "..", "config", "argocd", "health.lua")

// TestGitOpsHealth takes policies from the API server in each state a GitOps tool meets and
// checks what kstatus (Flux, kpt, cli-utils) and the Argo CD health script make of them:
// Ready is Current/Healthy, a conflict is Failed/Degraded, a spec change the manager has not
// seen is InProgress/Progressing, and so is a policy the manager never saw.
func TestGitOpsHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script, err := os.ReadFile(healthScript)
	if err != nil {
		t.Fatal(err)
	}
	ns := "gitops"
	createNamespace(ctx, t, ns)
	sel := map[string]string{"app": "offer-service"}
	newPolicy := func(name string) *v1alpha1.OfferFeedPolicy {
		return &v1alpha1.OfferFeedPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.OfferFeedPolicySpec{
				TargetSelector: v1alpha1.SelectLabels(sel),
				ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
				Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
			},
		}
	}
	check := func(name string, wantKstatus status.Status, wantArgo, wantMessage string) {
		t.Helper()
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("OfferFeedPolicy"))
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u); err != nil {
			t.Fatal(err)
		}
		res, err := status.Compute(u)
		if err != nil {
			t.Fatalf("kstatus of %s: %v", name, err)
		}
		if res.Status != wantKstatus {
			t.Errorf("kstatus of %s = %s (%s), want %s; status %v", name, res.Status, res.Message, wantKstatus, u.Object["status"])
		}
		health, msg, err := argoHealth(script, u.Object)
		if err != nil {
			t.Fatalf("health script on %s: %v", name, err)
		}
		if health != wantArgo || !strings.Contains(msg, wantMessage) {
			t.Errorf("Argo CD health of %s = %s %q, want %s with %q", name, health, msg, wantArgo, wantMessage)
		}
	}
	waitFor := func(name string, typ v1alpha1.OfferFeedPolicyConditionType, st metav1.ConditionStatus) {
		t.Helper()
		for {
			p := &v1alpha1.OfferFeedPolicy{}
			err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, p)
			c := metaCondition(p, typ)
			if err == nil && p.Status.ObservedGeneration == p.Generation && c != nil && c.Status == st && c.ObservedGeneration == p.Generation {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("policy %s: %s=%s never came (last %v, %+v)", name, typ, st, err, p.Status)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	// Applied before any manager runs: nobody wrote a status, the API server's defaults
	// (observedGeneration 0) make it InProgress for kstatus.
	if err := k8s.Create(ctx, newPolicy("standard")); err != nil {
		t.Fatal(err)
	}
	check("standard", status.InProgressStatus, "Progressing", "Waiting for the offerfeed manager to reconcile the policy")
	// A list (what informers of GitOps tools read) carries the defaults too.
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("OfferFeedPolicyList"))
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("listed %d policies, want 1", len(list.Items))
	}
	if res, err := status.Compute(&list.Items[0]); err != nil || res.Status != status.InProgressStatus {
		t.Errorf("kstatus of the listed policy = %v (%v), want %s; status %v", res, err, status.InProgressStatus, list.Items[0].Object["status"])
	}

	m, err := offerfeedtest.StartManager(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor("standard", v1alpha1.ConditionReady, metav1.ConditionTrue)
	check("standard", status.CurrentStatus, "Healthy", "accepted and in the gateway config")

	// creationTimestamp has a resolution of one second: make "younger" younger for sure.
	time.Sleep(1100 * time.Millisecond)
	if err := k8s.Create(ctx, newPolicy("younger")); err != nil {
		t.Fatal(err)
	}
	waitFor("younger", v1alpha1.ConditionStalled, metav1.ConditionTrue)
	check("younger", status.FailedStatus, "Degraded", "Conflicted: Accepted=False")

	// The manager stops; a spec change is not observed.
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.OfferFeedPolicy{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "standard"}, p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Feed.MinInterval = "3s"
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	check("standard", status.InProgressStatus, "Progressing", "observe generation 2")

	// A manager again: Ready at generation 2.
	m, err = offerfeedtest.StartManager(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop() }()
	waitFor("standard", v1alpha1.ConditionReady, metav1.ConditionTrue)
	check("standard", status.CurrentStatus, "Healthy", "accepted")
}

// TestArgoReadmeHoldsTheScript: the argocd-cm snippet of config/argocd/README.md is health.lua.
func TestArgoReadmeHoldsTheScript(t *testing.T) {
	script, err := os.ReadFile(healthScript)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(healthScript), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const key = "resource.customizations.health.offerfeed.dev_OfferFeedPolicy: |\n"
	_, block, ok := strings.Cut(string(readme), key)
	if !ok {
		t.Fatalf("README.md has no %q", strings.TrimSpace(key))
	}
	block, _, _ = strings.Cut(block, "```")
	var got strings.Builder
	for _, line := range strings.SplitAfter(block, "\n") {
		got.WriteString(strings.TrimPrefix(line, "    "))
	}
	if got.String() != string(script) {
		t.Errorf("the README's snippet differs from health.lua:\n%s", got.String())
	}
}

// argoHealth runs the health script as Argo CD does: the object as the global obj, the
// returned table's status and message.
func argoHealth(script []byte, obj map[string]any) (string, string, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, open := range []lua.LGFunction{lua.OpenBase, lua.OpenTable, lua.OpenString, lua.OpenMath} {
		L.Push(L.NewFunction(open))
		L.Call(0, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		return "", "", err
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", nil
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message")), nil
}

// toLua converts a JSON-like value (an unstructured object) to Lua, as Argo CD does.
func toLua(ls *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := ls.NewTable()
		for k, x := range v {
			t.RawSetString(k, toLua(ls, x))
		}
		return t
	case []any:
		t := ls.NewTable()
		for _, x := range v {
			t.Append(toLua(ls, x))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	}
	return lua.LNil
}

func metaCondition(p *v1alpha1.OfferFeedPolicy, typ v1alpha1.OfferFeedPolicyConditionType) *metav1.Condition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == string(typ) {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}
