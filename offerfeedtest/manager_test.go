package offerfeedtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/offerfeedtest"
)

func init() { logf.SetLogger(logr.Discard()) }

// startEnv starts a control plane of its own with the offerfeed CRDs, as a downstream suite
// does (the binaries from testenv, which honours KUBEBUILDER_ASSETS).
func startEnv(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	dir, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: offerfeedtest.CRDs()},
		ErrorIfCRDPathMissing: true,
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
	c, err := client.New(cfg, client.Options{Scheme: offerfeedtest.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c
}

func newPolicy(ns, name, minInterval string) *v1alpha1.OfferFeedPolicy {
	return &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(podLabels),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: v1alpha1.Duration(minInterval)},
		},
	}
}

func createNamespace(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// TestManagers runs two suites side by side, each with its own control plane and manager, and
// restarts a manager within one of them: controller names never collide and Stop returns once
// the manager has finished.
func TestManagers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two control planes")
	}
	for _, suite := range []string{"a", "b"} {
		t.Run(suite, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cfg, c := startEnv(t)

			m, err := offerfeedtest.StartManager(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			createNamespace(ctx, t, c, "offers")
			if _, err := offerfeedtest.GatewayConfig(ctx, c, "offers"); !apierrors.IsNotFound(err) {
				t.Fatalf("GatewayConfig before any policy: %v, want NotFound", err)
			}
			key := types.NamespacedName{Namespace: "offers", Name: "standard"}
			if err := c.Create(ctx, newPolicy("offers", "standard", "2s")); err != nil {
				t.Fatal(err)
			}
			got, err := offerfeedtest.WaitForPolicyProgrammed(ctx, c, key)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Policies) != 1 || got.Policies[0].Feed.MinInterval.D() != 2*time.Second {
				t.Fatalf("rendered config %+v, want policy standard with minInterval 2s", got)
			}
			if err := offerfeedtest.Programmed(ctx, c, key); err != nil {
				t.Fatal(err)
			}

			// A second policy selecting the same pods conflicts: Programmed says why not.
			if err := c.Create(ctx, newPolicy("offers", "younger", "1s")); err != nil {
				t.Fatal(err)
			}
			younger := types.NamespacedName{Namespace: "offers", Name: "younger"}
			var perr error
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				perr = offerfeedtest.Programmed(ctx, c, younger)
				if perr != nil && strings.Contains(perr.Error(), string(v1alpha1.ReasonConflicted)) {
					break
				}
			}
			if perr == nil || !strings.Contains(perr.Error(), "Accepted=False, reason Conflicted") {
				t.Fatalf("Programmed(younger) = %v, want an error naming the conflict", perr)
			}

			if err := m.Stop(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-m.Done():
			default:
				t.Fatal("Stop returned before the manager finished")
			}
			if err := m.Stop(); err != nil {
				t.Fatalf("second Stop: %v", err)
			}

			// A new manager in the same process picks up where the first left off.
			m2, err := offerfeedtest.StartManager(ctx, cfg, offerfeedtest.WithPodSelector("app=offer-service"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := m2.Stop(); err != nil {
					t.Error(err)
				}
			}()
			if m2.ControllerName() == m.ControllerName() {
				t.Fatalf("two managers named %q", m.ControllerName())
			}
			var p v1alpha1.OfferFeedPolicy
			if err := c.Get(ctx, key, &p); err != nil {
				t.Fatal(err)
			}
			p.Spec.Feed.MinInterval = "3s"
			if err := c.Update(ctx, &p); err != nil {
				t.Fatal(err)
			}
			got, err = offerfeedtest.WaitForPolicyProgrammed(ctx, c, key)
			if err != nil {
				t.Fatal(err)
			}
			if got.Policies[0].Feed.MinInterval.D() != 3*time.Second {
				t.Fatalf("minInterval %s after the update, want 3s", got.Policies[0].Feed.MinInterval.D())
			}

			// The rendered config drives a gateway.
			up := newOfferService(t)
			gw, err := offerfeedtest.NewGateway(got, up.URL, podLabels)
			if err != nil {
				t.Fatal(err)
			}
			expect(t, do(gw, "GET", "/offers", "d1"), 200, "")
			expect(t, do(gw, "GET", "/offers", "d1"), 429, offerfeedtest.DecisionFeedThrottled)
		})
	}
}

// TestStartManagerWithoutCRDs checks that a control plane without the offerfeed CRDs is an
// error that says what to do, not a manager that waits for them.
func TestStartManagerWithoutCRDs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	t.Parallel()
	dir, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: dir}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop() //nolint:errcheck // the test is over; a stop error has no one to tell
	_, err = offerfeedtest.StartManager(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "install the offerfeed CRDs") {
		t.Fatalf("StartManager without CRDs: %v, want an error asking for the CRDs", err)
	}
}

// TestStartManagerErrors covers a manager that cannot start and one whose context ends.
func TestStartManagerErrors(t *testing.T) {
	t.Parallel()
	if _, err := offerfeedtest.StartManager(context.Background(), nil); err == nil {
		t.Fatal("StartManager(nil config) succeeded")
	}
	// Nothing listens on port 1: the manager cannot sync its caches.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := offerfeedtest.StartManager(ctx, &rest.Config{Host: "http://127.0.0.1:1"},
		offerfeedtest.WithStartTimeout(time.Second), offerfeedtest.WithGracefulShutdownTimeout(time.Second))
	if err == nil {
		t.Fatal("StartManager against no API server succeeded")
	}
	t.Log(err)
}

// TestInstallGatewayAccess installs the gateways' access as config/default names it, twice
// (the second time changes nothing): the binding names the policy, whose parameter is the
// operator's RoleBinding. test/e2e (TestGatewayAccessLimits) proves what the policy refuses.
func TestInstallGatewayAccess(t *testing.T) {
	_, c := startEnv(t)
	ctx := t.Context()
	for range 2 {
		if err := offerfeedtest.InstallGatewayAccess(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	role := &rbacv1.ClusterRole{}
	if err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.GatewayClusterRoleName}, role); err != nil || len(role.Rules) == 0 {
		t.Fatalf("ClusterRole %s: %v %+v", v1alpha1.GatewayClusterRoleName, err, role.Rules)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	if err := c.Get(ctx, client.ObjectKey{Name: "offerfeed-gateway-pod-report"}, binding); err != nil {
		t.Fatal(err)
	}
	if binding.Spec.PolicyName != "offerfeed-gateway-pod-report" || binding.Spec.ParamRef == nil ||
		binding.Spec.ParamRef.Name != v1alpha1.GatewayRoleBindingName {
		t.Errorf("binding %+v", binding.Spec)
	}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	if err := c.Get(ctx, client.ObjectKey{Name: binding.Spec.PolicyName}, policy); err != nil {
		t.Fatalf("the binding's policy: %v", err)
	}
	if policy.Spec.ParamKind == nil || policy.Spec.ParamKind.Kind != "RoleBinding" || len(policy.Spec.Validations) == 0 {
		t.Errorf("policy %+v", policy.Spec)
	}
}
