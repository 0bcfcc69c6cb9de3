package e2e

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/kustomize"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/testenv"
)

// TestInstallRBACIsLeastPrivilege applies the install's RBAC and sends real requests to the
// API server as the manager's ServiceAccount: what the manager does is allowed, and ConfigMaps
// other than offerfeed-gateway, deletes, kube-system, full pod reads, and RoleBindings other than
// the gateways' (to any ClusterRole but theirs) are not.
func TestInstallRBACIsLeastPrivilege(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	docs, err := kustomize.Build("../../config/default")
	if err != nil {
		t.Fatal(err)
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
	for _, kinds := range [][]string{{"Namespace"}, {"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}} {
		for _, d := range docs {
			if slices.Contains(kinds, d.Object.GetKind()) {
				if err := admin.Create(ctx, d.Object); err != nil {
					t.Fatalf("creating %s %s: %v", d.Object.GetKind(), d.Object.GetName(), err)
				}
			}
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-"}}
	if err := admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "other"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "other"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: v1alpha1.GatewayConfigMapName}},
	} {
		if err := admin.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	pod := newPlainPod(ns.Name, "offers-1")
	if err := admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}

	// The manager's identity, as its pod's ServiceAccount token names it.
	saCfg := rest.CopyConfig(cfg)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: managerUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + managerNamespace, "system:authenticated"}}
	sa, err := client.New(saCfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	gateway := func(ns string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.GatewayConfigMapName},
			Data: map[string]string{"config.json": "{}"}}
	}
	other := func(ns string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}}
	}
	byName := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", v1alpha1.GatewayConfigMapName)}
	merge := client.RawPatch(types.MergePatchType, []byte(`{"data":{"x":"y"}}`))
	gatewayBinding := func(role string) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: v1alpha1.GatewayRoleBindingName},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns.Name}}}
	}
	rbByName := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", v1alpha1.GatewayRoleBindingName)}
	rbMerge := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`))
	if err := admin.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "other"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns.Name}}}); err != nil {
		t.Fatal(err)
	}
	podMeta := &metav1.PartialObjectMetadataList{}
	podMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))

	allowed := []struct {
		what string
		do   func() error
	}{
		{"create ConfigMap offerfeed-gateway", func() error { return sa.Create(ctx, gateway(ns.Name)) }},
		{"get ConfigMap offerfeed-gateway", func() error { return sa.Get(ctx, client.ObjectKeyFromObject(gateway(ns.Name)), &corev1.ConfigMap{}) }},
		{"patch ConfigMap offerfeed-gateway", func() error { return sa.Patch(ctx, gateway(ns.Name), merge) }},
		{"update ConfigMap offerfeed-gateway", func() error {
			cm := &corev1.ConfigMap{}
			if err := sa.Get(ctx, client.ObjectKeyFromObject(gateway(ns.Name)), cm); err != nil {
				return err
			}
			cm.Data = map[string]string{"config.json": "{}"}
			return sa.Update(ctx, cm)
		}},
		{"list ConfigMaps of every namespace named offerfeed-gateway (the cache's list)", func() error {
			return sa.List(ctx, &corev1.ConfigMapList{}, byName)
		}},
		{"list the metadata of every pod (the cache's list)", func() error { return sa.List(ctx, podMeta) }},
		{"list policies", func() error { return sa.List(ctx, &v1alpha1.OfferFeedPolicyList{}) }},
		{"bind the gateway ClusterRole in a namespace", func() error { return sa.Create(ctx, gatewayBinding(v1alpha1.GatewayClusterRoleName)) }},
		{"list RoleBindings named offerfeed-gateway (the cache's list)", func() error {
			return sa.List(ctx, &rbacv1.RoleBindingList{}, rbByName)
		}},
		{"patch RoleBinding offerfeed-gateway", func() error { return sa.Patch(ctx, gatewayBinding(v1alpha1.GatewayClusterRoleName), rbMerge) }},
		{"delete RoleBinding offerfeed-gateway", func() error { return sa.Delete(ctx, gatewayBinding(v1alpha1.GatewayClusterRoleName)) }},
	}
	for _, a := range allowed {
		if err := a.do(); err != nil {
			t.Errorf("%s: %v; the manager needs it", a.what, err)
		}
	}
	refused := []struct {
		what string
		do   func() error
	}{
		{"patch another ConfigMap", func() error { return sa.Patch(ctx, other(ns.Name), merge) }},
		{"update another ConfigMap", func() error { return sa.Update(ctx, other(ns.Name)) }},
		{"get another ConfigMap", func() error { return sa.Get(ctx, client.ObjectKeyFromObject(other(ns.Name)), &corev1.ConfigMap{}) }},
		{"patch another ConfigMap in kube-system", func() error { return sa.Patch(ctx, other("kube-system"), merge) }},
		{"delete ConfigMap offerfeed-gateway", func() error { return sa.Delete(ctx, gateway(ns.Name)) }},
		{"delete a ConfigMap in kube-system", func() error { return sa.Delete(ctx, other("kube-system")) }},
		{"delete offerfeed-gateway in kube-system", func() error { return sa.Delete(ctx, gateway("kube-system")) }},
		{"list every ConfigMap", func() error { return sa.List(ctx, &corev1.ConfigMapList{}) }},
		{"list the ConfigMaps of a namespace", func() error { return sa.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(ns.Name)) }},
		{"get a pod", func() error { return sa.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}) }},
		{"update a pod", func() error { return sa.Update(ctx, pod.DeepCopy()) }},
		{"list secrets", func() error { return sa.List(ctx, &corev1.SecretList{}) }},
		// bind is limited to the gateway's ClusterRole: the manager cannot grant rights it does
		// not hold (RBAC's escalation check still lets it bind a role whose rights it holds,
		// such as its own; config/rbac/README.md).
		{"bind ClusterRole cluster-admin", func() error { return sa.Create(ctx, gatewayBinding("cluster-admin")) }},
		{"bind the metrics reader", func() error { return sa.Create(ctx, gatewayBinding("offerfeed-metrics-reader")) }},
		{"get another RoleBinding", func() error {
			return sa.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "other"}, &rbacv1.RoleBinding{})
		}},
		{"delete another RoleBinding", func() error {
			return sa.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "other"}})
		}},
		{"list every RoleBinding", func() error { return sa.List(ctx, &rbacv1.RoleBindingList{}) }},
		// It binds the gateways' rights without holding them.
		{"patch a pod", func() error { return sa.Patch(ctx, pod.DeepCopy(), merge) }},
	}
	for _, r := range refused {
		if err := r.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v; want forbidden", r.what, err)
		}
	}

	// Watches are authorized like lists: with the name selector, and only with it.
	ww, err := client.NewWithWatch(saCfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		opts []client.ListOption
		ok   bool
	}{
		{"watch ConfigMaps named offerfeed-gateway (the cache's watch)", []client.ListOption{byName}, true},
		{"watch every ConfigMap", nil, false},
		{"watch ConfigMaps named other", []client.ListOption{client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", "other")}}, false},
	} {
		w, err := ww.Watch(ctx, &corev1.ConfigMapList{}, tc.opts...)
		if err == nil {
			w.Stop()
		}
		if tc.ok && err != nil {
			t.Errorf("%s: %v; the manager needs it", tc.what, err)
		}
		if !tc.ok && !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v; want forbidden", tc.what, err)
		}
	}
}

func newPlainPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "offer-service:1"}}},
	}
}
