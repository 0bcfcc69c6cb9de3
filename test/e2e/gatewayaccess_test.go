package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/operator"
)

// policyFor is the smallest policy that governs the pods labelled sel.
func policyFor(ns string, sel map[string]string) *v1alpha1.OfferFeedPolicy {
	return &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(sel),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
		},
	}
}

// appPod is an offer-service pod running as ServiceAccount sa, for the webhook to inject.
func appPod(ns, name, sa string, sel map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: sel,
			Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: "http"}},
		Spec: corev1.PodSpec{ServiceAccountName: sa,
			Containers: []corev1.Container{{Name: "app", Image: "offer-service:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
}

// podToken returns a token of ServiceAccount ns/sa bound to pod (as the kubelet projects it into
// the sidecar), or bound to nothing when pod is nil.
func podToken(t *testing.T, ctx context.Context, admin client.Client, ns, sa string, pod *corev1.Pod) string {
	t.Helper()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}
	if err := admin.SubResource("token").Create(ctx, acct, tr); err != nil {
		t.Fatalf("token of %s: %v", sa, err)
	}
	return tr.Status.Token
}

// tokenClient is a client that authenticates with token only.
func tokenClient(t *testing.T, cfg *rest.Config, token string) client.WithWatch {
	t.Helper()
	c := rest.AnonymousClientConfig(cfg)
	c.BearerToken = token
	cl, err := client.NewWithWatch(c, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func annotationPatch(kv ...string) client.Patch {
	var b strings.Builder
	b.WriteString(`{"metadata":{"annotations":{`)
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%q", kv[i], kv[i+1])
	}
	b.WriteString(`}}}`)
	return client.RawPatch(types.MergePatchType, []byte(b.String()))
}

// byPolicy reports whether err is a refusal of the admission policy (not of RBAC).
func byPolicy(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy")
}

// TestGatewayAccessLimits runs `offerfeed manager` under the install's RBAC, with the
// gateways' ClusterRole and admission policy installed, and sends real requests to the API
// server with a gateway's pod-bound token (TokenRequest with boundObjectRef, as the sidecar's
// projected volume holds it): the operator granted what a gateway needs (its namespace's
// config, its own pod, its own enforced-* annotations), and nothing else: not another
// namespace's config, no Secret, no other pod, nothing else of its own pod, and no token of the
// same ServiceAccount that is not bound to the pod. Workloads that may update pods, and people,
// keep what RBAC gives them. The report then counts in the policy's status.
func TestGatewayAccessLimits(t *testing.T) {
	in := install(t)
	ctx := context.Background()
	admin := in.admin
	in.startManager(t, 0)

	sel := map[string]string{"app": "offer-service"}
	newNS := func() string {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-",
			Labels: map[string]string{v1alpha1.InjectionLabel: "enabled"}}}
		if err := admin.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		return ns.Name
	}
	nsA, nsB := newNS(), newNS()
	for _, o := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "offers", Namespace: nsA}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "offers", Namespace: nsB}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "patroni", Namespace: nsA}},
		policyFor(nsA, sel), policyFor(nsB, sel),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: nsA}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: nsA}, StringData: map[string]string{"password": "x"}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	own, other, far := appPod(nsA, "offers-1", "offers", sel), appPod(nsA, "offers-2", "offers", sel), appPod(nsB, "offers-1", "offers", sel)
	// A workload whose own role may update pods (as Patroni's does), not governed.
	patroni := appPod(nsA, "patroni-0", "patroni", map[string]string{"app": "db"})
	patroni.Annotations[v1alpha1.InjectAnnotation] = "false"
	for _, p := range []*corev1.Pod{own, other, far, patroni} {
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if got := own.Annotations[v1alpha1.ServiceAccountAnnotation]; got != "offers" {
		t.Fatalf("the webhook recorded ServiceAccount %q, want offers", got)
	}
	for _, o := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "patroni", Namespace: nsA},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "patch", "update"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "patroni", Namespace: nsA},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "patroni"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "patroni", Namespace: nsA}}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	eventually(t, "the operator binds the gateway ClusterRole to the pods' ServiceAccount", func() error {
		rb := &rbacv1.RoleBinding{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: nsA, Name: v1alpha1.GatewayRoleBindingName}, rb); err != nil {
			return err
		}
		want := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "offers", Namespace: nsA}}
		if rb.RoleRef.Name != v1alpha1.GatewayClusterRoleName || fmt.Sprint(rb.Subjects) != fmt.Sprint(want) {
			return fmt.Errorf("RoleBinding %+v %+v", rb.RoleRef, rb.Subjects)
		}
		return nil
	})

	cfg := in.env.Config
	gw := tokenClient(t, cfg, podToken(t, ctx, admin, nsA, "offers", own))
	unbound := tokenClient(t, cfg, podToken(t, ctx, admin, nsA, "offers", nil))
	db := tokenClient(t, cfg, podToken(t, ctx, admin, nsA, "patroni", patroni))
	report := annotationPatch(v1alpha1.EnforcedPolicyHashAnnotation, "none", v1alpha1.EnforcedGenerationAnnotation, "1")

	// The admission policy is in force once it refuses a report on another pod (dry run).
	eventually(t, "admission policy in force", func() error {
		if err := gw.Patch(ctx, other.DeepCopy(), report, client.DryRunAll); err == nil {
			return errors.New("a report on another pod was allowed")
		} else if !byPolicy(err) {
			return fmt.Errorf("report on another pod: %w", err)
		}
		return nil
	})

	cmKey := func(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
	byName := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", v1alpha1.GatewayConfigMapName)}
	allowed := []struct {
		what string
		do   func() error
	}{
		{"get its namespace's gateway config", func() error {
			return gw.Get(ctx, cmKey(nsA, v1alpha1.GatewayConfigMapName), &corev1.ConfigMap{})
		}},
		{"watch its namespace's gateway config by name", func() error {
			w, err := gw.Watch(ctx, &corev1.ConfigMapList{}, client.InNamespace(nsA), byName)
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"get its own pod", func() error { return gw.Get(ctx, client.ObjectKeyFromObject(own), &corev1.Pod{}) }},
		{"watch its own pod by name", func() error {
			w, err := gw.Watch(ctx, &corev1.PodList{}, client.InNamespace(nsA),
				client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", own.Name)})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		// The trade-off of config/rbac/README.md: pod reads are not name-scoped.
		{"list the pods of its namespace", func() error { return gw.List(ctx, &corev1.PodList{}, client.InNamespace(nsA)) }},
		{"report on its own pod", func() error { return gw.Patch(ctx, own.DeepCopy(), report) }},
		// Who else updates pods keeps doing so: people, and workloads whose role may update pods.
		{"an administrator labels the gateway's pod", func() error {
			return admin.Patch(ctx, own.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"a"}}}`)))
		}},
		{"a workload that may update pods labels its own pod with its pod-bound token", func() error {
			return db.Patch(ctx, patroni.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"role":"primary"}}}`)))
		}},
		{"a workload that may update pods annotates another pod with its pod-bound token", func() error {
			return db.Patch(ctx, other.DeepCopy(), annotationPatch("db/seen", "yes"))
		}},
	}
	for _, a := range allowed {
		eventually(t, a.what, a.do) // RBAC may take a moment to see the new binding
	}

	refusedByRBAC := []struct {
		what string
		do   func() error
	}{
		{"get another namespace's gateway config", func() error {
			return gw.Get(ctx, cmKey(nsB, v1alpha1.GatewayConfigMapName), &corev1.ConfigMap{})
		}},
		{"get another ConfigMap of its namespace", func() error { return gw.Get(ctx, cmKey(nsA, "other"), &corev1.ConfigMap{}) }},
		{"list the ConfigMaps of its namespace", func() error { return gw.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(nsA)) }},
		{"watch every ConfigMap of its namespace", func() error {
			w, err := gw.Watch(ctx, &corev1.ConfigMapList{}, client.InNamespace(nsA))
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"get a Secret", func() error { return gw.Get(ctx, cmKey(nsA, "db"), &corev1.Secret{}) }},
		{"list Secrets", func() error { return gw.List(ctx, &corev1.SecretList{}, client.InNamespace(nsA)) }},
		{"get a pod of another namespace", func() error { return gw.Get(ctx, client.ObjectKeyFromObject(far), &corev1.Pod{}) }},
		{"report on a pod of another namespace", func() error { return gw.Patch(ctx, far.DeepCopy(), report) }},
		{"update (PUT) its own pod", func() error {
			p := &corev1.Pod{}
			if err := admin.Get(ctx, client.ObjectKeyFromObject(own), p); err != nil {
				return err
			}
			p.Annotations[v1alpha1.EnforcedGenerationAnnotation] = "2"
			return gw.Update(ctx, p)
		}},
		{"delete its own pod", func() error { return gw.Delete(ctx, own.DeepCopy()) }},
		{"create a pod", func() error { return gw.Create(ctx, appPod(nsA, "intruder", "offers", nil)) }},
		{"patch its own pod's status", func() error {
			return gw.Status().Patch(ctx, own.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"message":"x"}}`)))
		}},
		{"change the RoleBinding that grants it", func() error {
			return gw.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: v1alpha1.GatewayRoleBindingName}})
		}},
	}
	for _, r := range refusedByRBAC {
		if err := r.do(); !apierrors.IsForbidden(err) || byPolicy(err) {
			t.Errorf("%s: %v; want forbidden by RBAC", r.what, err)
		}
	}

	jsonPatch := func(p string) client.Patch { return client.RawPatch(types.JSONPatchType, []byte(p)) }
	refusedByPolicy := []struct {
		what string
		do   func() error
	}{
		{"report on another pod", func() error { return gw.Patch(ctx, other.DeepCopy(), report) }},
		{"change its own pod's labels", func() error {
			return gw.Patch(ctx, own.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`)))
		}},
		{"add another annotation to its own pod", func() error {
			return gw.Patch(ctx, own.DeepCopy(), annotationPatch(v1alpha1.EnforcedPolicyHashAnnotation, "none", "offerfeed.dev/inject", "false"))
		}},
		{"remove the injected annotation of its own pod", func() error {
			return gw.Patch(ctx, own.DeepCopy(), jsonPatch(`[{"op":"remove","path":"/metadata/annotations/offerfeed.dev~1injected"}]`))
		}},
		{"change its own pod's spec", func() error {
			return gw.Patch(ctx, own.DeepCopy(), jsonPatch(`[{"op":"replace","path":"/spec/containers/0/image","value":"evil:1"}]`))
		}},
		{"add a finalizer to its own pod", func() error {
			return gw.Patch(ctx, own.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":["x.dev/hold"]}}`)))
		}},
		{"report with a token of its ServiceAccount not bound to the pod", func() error {
			return unbound.Patch(ctx, own.DeepCopy(), report)
		}},
		{"change another pod with a token not bound to a pod", func() error {
			return unbound.Patch(ctx, other.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`)))
		}},
	}
	for _, r := range refusedByPolicy {
		if err := r.do(); !byPolicy(err) {
			t.Errorf("%s: %v; want refused by the admission policy", r.what, err)
		}
	}

	// The report counts: one of two governed pods enforces the policy's hash, then both.
	policyKey := client.ObjectKey{Namespace: nsA, Name: "standard"}
	var hash string
	eventually(t, "policy programmed", func() error {
		p := &v1alpha1.OfferFeedPolicy{}
		if err := admin.Get(ctx, policyKey, p); err != nil {
			return err
		}
		if hash = p.Status.ConfigHash; hash == "" || p.Status.TargetedPods != 2 {
			return fmt.Errorf("status %+v", p.Status)
		}
		return nil
	})
	if err := gw.Patch(ctx, own.DeepCopy(), annotationPatch(v1alpha1.EnforcedPolicyHashAnnotation, hash)); err != nil {
		t.Fatalf("reporting the policy's hash: %v", err)
	}
	enforced := func(n int32, status metav1.ConditionStatus, msg string) func() error {
		return func() error {
			p := &v1alpha1.OfferFeedPolicy{}
			if err := admin.Get(ctx, policyKey, p); err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionEnforced))
			if p.Status.EnforcedPods != n || c == nil || c.Status != status || !strings.Contains(c.Message, msg) {
				return fmt.Errorf("enforcedPods %d, Enforced %+v", p.Status.EnforcedPods, c)
			}
			return nil
		}
	}
	eventually(t, "one of two pods enforces", enforced(1, metav1.ConditionFalse, "1 of 2 governed pods do not report enforcing "+hash+" yet: offers-2"))
	if err := admin.Patch(ctx, other.DeepCopy(), annotationPatch(v1alpha1.EnforcedPolicyHashAnnotation, hash)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both pods enforce", enforced(2, metav1.ConditionTrue, "all 2 governed pods"))
}
