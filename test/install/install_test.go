// Package install checks the install manifests: `kustomize build config/default` (and the
// variant without cert-manager) builds, and holds a complete, consistent, least-privilege
// install. Nothing here needs a cluster.
package install

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/kustomize"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

const (
	namespace   = "offerfeed-system"
	image       = "offerfeed:latest"
	webhookPort = 9443
	certDir     = "/tmp/k8s-webhook-server/serving-certs"
)

// install is the output of one kustomize build, by kind.
type install struct {
	t       *testing.T
	objects map[string][]*unstructured.Unstructured
}

func build(t *testing.T, dir string) *install {
	t.Helper()
	docs, err := kustomize.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	in := &install{t: t, objects: map[string][]*unstructured.Unstructured{}}
	for _, d := range docs {
		in.objects[d.Object.GetKind()] = append(in.objects[d.Object.GetKind()], d.Object)
	}
	return in
}

// one decodes the only object of kind into out; its name must be name.
func (in *install) one(kind, name string, out any) {
	in.t.Helper()
	objs := in.objects[kind]
	if len(objs) != 1 {
		in.t.Fatalf("%d objects of kind %s, want 1", len(objs), kind)
	}
	if objs[0].GetName() != name {
		in.t.Errorf("%s is named %s, want %s", kind, objs[0].GetName(), name)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, out); err != nil {
		in.t.Fatalf("decoding %s: %v", kind, err)
	}
}

// all decodes every object of kind.
func all[T any](in *install, kind string) []*T {
	in.t.Helper()
	var out []*T
	for _, o := range in.objects[kind] {
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v); err != nil {
			in.t.Fatalf("decoding %s %s: %v", kind, o.GetName(), err)
		}
		out = append(out, v)
	}
	return out
}

func TestDefault(t *testing.T) {
	in := build(t, "../../config/default")
	d := checkCommon(t, in)

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	in.one("MutatingWebhookConfiguration", "offerfeed-mutating-webhook-configuration", &mwc)
	var cert unstructured.Unstructured
	if c := in.objects["Certificate"]; len(c) != 1 {
		t.Fatalf("%d Certificates, want 1", len(c))
	} else {
		cert = *c[0]
	}
	if got, want := mwc.Annotations["cert-manager.io/inject-ca-from"], namespace+"/"+cert.GetName(); got != want {
		t.Errorf("inject-ca-from = %q, want %q", got, want)
	}
	if cert.GetNamespace() != namespace {
		t.Errorf("Certificate in namespace %q", cert.GetNamespace())
	}
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	svc := "offerfeed-webhook-service." + namespace + ".svc"
	if !slices.Equal(dnsNames, []string{svc, svc + ".cluster.local"}) {
		t.Errorf("Certificate dnsNames = %v, want the webhook Service's", dnsNames)
	}
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	if got := certSecret(t, d); got != secret {
		t.Errorf("manager mounts Secret %q, the Certificate writes %q", got, secret)
	}
	issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	if is := in.objects["Issuer"]; len(is) != 1 || is[0].GetName() != issuer || is[0].GetNamespace() != namespace {
		t.Errorf("Certificate's issuer %q is not the Issuer of the install", issuer)
	}
}

func TestDefaultNoCertManager(t *testing.T) {
	in := build(t, "../../config/default-no-certmanager")
	d := checkCommon(t, in)
	for _, kind := range []string{"Certificate", "Issuer"} {
		if len(in.objects[kind]) != 0 {
			t.Errorf("%s in the install without cert-manager", kind)
		}
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	in.one("MutatingWebhookConfiguration", "offerfeed-mutating-webhook-configuration", &mwc)
	if _, ok := mwc.Annotations["cert-manager.io/inject-ca-from"]; ok {
		t.Errorf("inject-ca-from annotation without cert-manager")
	}
	if got := certSecret(t, d); got != "webhook-server-cert" {
		t.Errorf("manager mounts Secret %q; docs/install.md tells people to create webhook-server-cert", got)
	}
}

// checkCommon checks what both installs hold and returns the manager Deployment.
func checkCommon(t *testing.T, in *install) *appsv1.Deployment {
	for kind := range in.objects {
		for _, o := range in.objects[kind] {
			cluster := kind == "Namespace" || kind == "CustomResourceDefinition" || strings.HasPrefix(kind, "Cluster") ||
				strings.HasSuffix(kind, "WebhookConfiguration")
			if !cluster && o.GetNamespace() != namespace {
				t.Errorf("%s %s in namespace %q, want %s", kind, o.GetName(), o.GetNamespace(), namespace)
			}
		}
	}

	var ns corev1.Namespace
	in.one("Namespace", namespace, &ns)
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace labels %v: want the restricted Pod Security Standard enforced", ns.Labels)
	}
	if _, ok := ns.Labels[v1alpha1.InjectionLabel]; ok {
		t.Errorf("the manager's namespace must not have injection on")
	}

	crds := in.objects["CustomResourceDefinition"]
	if len(crds) != 1 || crds[0].GetName() != "offerfeedpolicies.offerfeed.dev" {
		t.Errorf("CRDs %v, want offerfeedpolicies.offerfeed.dev", names(crds))
	}

	d := checkDeployment(t, in)
	podLabels := labels.Set(d.Spec.Template.Labels)

	var pdb policyv1.PodDisruptionBudget
	in.one("PodDisruptionBudget", "offerfeed-controller-manager", &pdb)
	if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) {
		t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	if pdb.Spec.Selector == nil || !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("PDB selector %v does not select the manager pods %v", pdb.Spec.Selector, podLabels)
	}

	services := map[string]*corev1.Service{}
	for _, s := range all[corev1.Service](in, "Service") {
		services[s.Name] = s
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) || len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selector %v does not select the manager pods", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if containerPort(d, p.TargetPort) == 0 {
				t.Errorf("Service %s targets port %s, which the manager does not declare", s.Name, p.TargetPort.String())
			}
		}
	}
	whSvc := services["offerfeed-webhook-service"]
	if whSvc == nil || len(whSvc.Spec.Ports) != 1 || whSvc.Spec.Ports[0].Port != 443 ||
		containerPort(d, whSvc.Spec.Ports[0].TargetPort) != webhookPort {
		t.Errorf("webhook Service %+v: want port 443 to the manager's %d", whSvc, webhookPort)
	}
	if m := services["offerfeed-controller-manager-metrics-service"]; m == nil || len(m.Spec.Ports) != 1 ||
		containerPort(d, m.Spec.Ports[0].TargetPort) != 8443 || m.Spec.Ports[0].Name != "https" {
		t.Errorf("metrics Service %+v: want port https to the manager's 8443", m)
	}

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	in.one("MutatingWebhookConfiguration", "offerfeed-mutating-webhook-configuration", &mwc)
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(mwc.Webhooks))
	}
	wh := mwc.Webhooks[0]
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("failurePolicy = %v, want Ignore", wh.FailurePolicy)
	}
	if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds > 10 {
		t.Errorf("timeoutSeconds = %v, want a short one", wh.TimeoutSeconds)
	}
	if wh.NamespaceSelector == nil || len(wh.NamespaceSelector.MatchExpressions) != 0 ||
		!maps.Equal(wh.NamespaceSelector.MatchLabels, map[string]string{v1alpha1.InjectionLabel: "enabled"}) {
		t.Errorf("namespaceSelector = %+v, want %s=enabled", wh.NamespaceSelector, v1alpha1.InjectionLabel)
	}
	if s := wh.ClientConfig.Service; s == nil || s.Name != "offerfeed-webhook-service" || s.Namespace != namespace ||
		ptr.Deref(s.Path, "") != webhook.Path {
		t.Errorf("webhook client config %+v, want the webhook Service and path %s", wh.ClientConfig, webhook.Path)
	}
	if wh.SideEffects == nil || (*wh.SideEffects != admissionregistrationv1.SideEffectClassNone &&
		*wh.SideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun) {
		t.Errorf("sideEffects = %v", wh.SideEffects)
	}
	if len(wh.Rules) != 1 || !slices.Equal(wh.Rules[0].Resources, []string{"pods"}) ||
		!slices.Equal(wh.Rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) {
		t.Errorf("rules = %+v, want pod CREATE only", wh.Rules)
	}

	checkRBAC(t, in, d)
	return d
}

func checkDeployment(t *testing.T, in *install) *appsv1.Deployment {
	var d appsv1.Deployment
	in.one("Deployment", "offerfeed-controller-manager", &d)
	if ptr.Deref(d.Spec.Replicas, 1) != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Deployment selector does not match its pods")
	}
	ps := d.Spec.Template.Spec
	if ps.SecurityContext == nil || !ptr.Deref(ps.SecurityContext.RunAsNonRoot, false) ||
		ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", ps.SecurityContext)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want the manager", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image != image {
		t.Errorf("image = %q, want %q", c.Image, image)
	}
	for _, want := range []string{"manager", "--leader-elect", "--health-probe-bind-address=:8081",
		"--metrics-bind-address=:8443", "--gateway-image=$(GATEWAY_IMAGE)",
		fmt.Sprintf("--webhook-port=%d", webhookPort), "--webhook-cert-dir=" + certDir} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	gatewayImage := ""
	for _, e := range c.Env {
		if e.Name == "GATEWAY_IMAGE" {
			gatewayImage = e.Value
		}
	}
	if gatewayImage != c.Image {
		t.Errorf("GATEWAY_IMAGE = %q, want the manager's own image %q", gatewayImage, c.Image)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || containerPort(&d, p.HTTPGet.Port) != 8081 {
			t.Errorf("%s probe %+v: want HTTP on :8081", name, p)
		}
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probe paths %s %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
	sc := c.SecurityContext
	if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || ptr.Deref(sc.Privileged, false) {
		t.Errorf("container security context %+v", sc)
	}
	if containerPort(&d, intstr.FromInt32(webhookPort)) == 0 {
		t.Errorf("the manager does not declare the webhook port %d", webhookPort)
	}
	return &d
}

// certSecret returns the Secret mounted at the webhook cert dir.
func certSecret(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath != certDir {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
	}
	t.Errorf("no Secret mounted at %s", certDir)
	return ""
}

// containerPort resolves a port (number or name) of the manager container; 0 when undeclared.
func containerPort(d *appsv1.Deployment, p intstr.IntOrString) int32 {
	for _, cp := range d.Spec.Template.Spec.Containers[0].Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

func checkRBAC(t *testing.T, in *install, d *appsv1.Deployment) {
	sa := d.Spec.Template.Spec.ServiceAccountName
	if sas := in.objects["ServiceAccount"]; len(sas) != 1 || sas[0].GetName() != sa {
		t.Errorf("ServiceAccounts %v, want the manager's %q", names(sas), sa)
	}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, r := range all[rbacv1.ClusterRole](in, "ClusterRole") {
		roles["ClusterRole/"+r.Name] = r.Rules
	}
	for _, r := range all[rbacv1.Role](in, "Role") {
		roles["Role/"+r.Name] = r.Rules
	}
	for name, rules := range roles {
		for _, r := range rules {
			for _, s := range slices.Concat(r.Verbs, r.Resources, r.APIGroups, r.NonResourceURLs) {
				if strings.Contains(s, "*") {
					t.Errorf("%s has a wildcard rule %+v", name, r)
				}
			}
			if slices.Contains(r.Resources, "secrets") {
				t.Errorf("%s grants access to Secrets: %+v", name, r)
			}
		}
	}
	bound := map[string]bool{}
	check := func(kind, name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) {
		if _, ok := roles[ref.Kind+"/"+ref.Name]; !ok {
			t.Errorf("%s %s binds %s/%s, which the install does not have", kind, name, ref.Kind, ref.Name)
		}
		for _, s := range subjects {
			if s.Kind != "ServiceAccount" || s.Name != sa || s.Namespace != namespace {
				t.Errorf("%s %s binds %+v, want only the manager's ServiceAccount", kind, name, s)
			}
		}
		bound[ref.Kind+"/"+ref.Name] = true
	}
	for _, b := range all[rbacv1.ClusterRoleBinding](in, "ClusterRoleBinding") {
		check("ClusterRoleBinding", b.Name, b.RoleRef, b.Subjects)
	}
	for _, b := range all[rbacv1.RoleBinding](in, "RoleBinding") {
		check("RoleBinding", b.Name, b.RoleRef, b.Subjects)
	}
	for _, want := range []string{"ClusterRole/offerfeed-manager-role", "Role/offerfeed-leader-election-role"} {
		if !bound[want] {
			t.Errorf("%s is not bound to the manager", want)
		}
	}
	// Scrapers get the metrics-reader role, which allows exactly get on /metrics; the install
	// binds it to no one.
	want := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	if r, ok := roles["ClusterRole/offerfeed-metrics-reader"]; !ok || !equality.Semantic.DeepEqual(r, want) {
		t.Errorf("ClusterRole offerfeed-metrics-reader rules %+v, want %+v", r, want)
	}
	if bound["ClusterRole/offerfeed-metrics-reader"] {
		t.Errorf("the install binds offerfeed-metrics-reader; it is for the user's Prometheus")
	}
	// The manager's cluster-wide rules: exactly what role.yaml's markers generate.
	mgr := roles["ClusterRole/offerfeed-manager-role"]
	for _, r := range mgr {
		// The gateways' access (issue 11): the manager binds the one ClusterRole
		// offerfeed-gateway and manages the RoleBindings of that one name.
		if slices.Equal(r.ResourceNames, []string{"offerfeed-gateway"}) && slices.Equal(r.APIGroups, []string{"rbac.authorization.k8s.io"}) &&
			(slices.Equal(r.Resources, []string{"clusterroles"}) && slices.Equal(r.Verbs, []string{"bind"}) ||
				slices.Equal(r.Resources, []string{"rolebindings"})) {
			continue
		}
		for _, v := range r.Verbs {
			if v == "delete" || v == "deletecollection" || v == "escalate" || v == "bind" || v == "impersonate" {
				t.Errorf("manager role allows %s: %+v", v, r)
			}
		}
		if slices.Contains(r.Resources, "pods") && slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) {
			t.Errorf("manager role may change pods: %+v", r)
		}
	}
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	return out
}
