package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/render"
	"github.com/offerfeed/offerfeed/internal/testenv"
)

// TestGatewayCommandPush runs `offerfeed gateway` with the --kube-* and --pod-* flags against a
// real API server, with a token bound to its Pod and a Role granting only what a gateway needs:
// without any config file, it enforces the ConfigMap's config from the watch and reports it on
// its pod; it stops cleanly when its context ends.
func TestGatewayCommandPush(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	admin, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	const ns, name = "offers", "offers-1"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "offer-service"}},
		Spec: corev1.PodSpec{ServiceAccountName: "offer-service", AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "app", Image: "offer-service:1"}}},
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "offer-service", Namespace: ns}}
	pol := gatewayPolicyManifest(t, ns)
	res, err := render.Render(ns, pol, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.SetGeneration(3); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, sa, pod, render.ConfigMap(ns, res.Data),
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "gateway", Namespace: ns}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{v1alpha1.GatewayConfigMapName}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, ResourceNames: []string{name}, Verbs: []string{"get", "list", "watch", "patch"}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gateway", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "gateway"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("creating %T: %v", o, err)
		}
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: name, UID: pod.UID}}}
	if err := admin.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token, ca := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	writeFile(t, token, []byte(tr.Status.Token), 0o600)
	writeFile(t, ca, cfg.CAData, 0o600)

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer up.Close()
	listen, adminAddr := freeAddr(t), freeAddr(t)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Execute(runCtx, []string{"gateway", "--config", filepath.Join(dir, "absent", "config.json"), "--upstream", up.URL,
			"--listen", listen, "--admin-listen", adminAddr, "--log-level", "error",
			"--kube-api-server", cfg.Host, "--kube-token-file", token, "--kube-ca-file", ca, "--pod-name", name, "--pod-namespace", ns},
			strings.NewReader(""), &bytes.Buffer{}, &stderr)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := readyz("http://" + adminAddr + "/readyz")
		if err == nil && st.ConfigSource == gateway.SourceWatch && st.ConfigGeneration == 3 && st.Policy == "standard" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pushed config not in force within a minute: %+v, %v\n%s", st, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		p := &corev1.Pod{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
			t.Fatal(err)
		}
		if p.Annotations[v1alpha1.EnforcedPolicyHashAnnotation] == res.Policies["standard"].Hash && p.Annotations[v1alpha1.EnforcedGenerationAnnotation] == "3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reported on the pod within a minute: %v\n%s", p.Annotations, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit code %d\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the gateway did not stop")
	}
}

// gatewayPolicyManifest returns policy standard of ns, as the API server would hold it.
func gatewayPolicyManifest(t *testing.T, ns string) []v1alpha1.OfferFeedPolicy {
	t.Helper()
	p := v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns, CreationTimestamp: metav1.Unix(1, 0)},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.LabelSelector{MatchLabels: map[string]v1alpha1.LabelValue{"app": "offer-service"}},
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Method: "GET", Path: "/offers", MinInterval: "2s"},
		},
	}
	return []v1alpha1.OfferFeedPolicy{p}
}

// readyz reads the gateway's /readyz.
func readyz(url string) (gateway.Status, error) {
	var st gateway.Status
	resp, err := http.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("readyz %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
