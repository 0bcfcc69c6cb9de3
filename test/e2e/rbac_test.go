package e2e

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
// other than offerfeed-gateway, deletes, kube-system and full pod reads are not.
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
