package offerfeedtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/offerfeedtest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestConfigHelpers checks GatewayConfig, Programmed and WaitForPolicyProgrammed on a fake
// client, in each state a policy can be in.
func TestConfigHelpers(t *testing.T) {
	t.Parallel()
	cfg := config(gatewayconfig.ModeEnforce)
	h, err := gatewayconfig.PolicyHash(cfg.Policies[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policies[0].Hash = h
	data, err := gatewayconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cm := func(data string) *corev1.ConfigMap {
		return &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.GatewayConfigMapName, Namespace: "offers"},
			Data:       map[string]string{v1alpha1.GatewayConfigKey: data},
		}
	}
	policy := func(gen, observed int64, hash string, conds ...metav1.Condition) *v1alpha1.OfferFeedPolicy {
		p := newPolicy("offers", "standard", "2s")
		p.Generation = gen
		p.Status.ObservedGeneration = observed
		p.Status.ConfigHash = hash
		p.Status.Conditions = conds
		return p
	}
	cond := func(typ v1alpha1.OfferFeedPolicyConditionType, status metav1.ConditionStatus, reason v1alpha1.OfferFeedPolicyConditionReason,
		gen int64) metav1.Condition {
		return metav1.Condition{Type: string(typ), Status: status, Reason: string(reason), Message: "because", ObservedGeneration: gen,
			LastTransitionTime: metav1.Now()}
	}
	programmed := cond(v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed, 2)
	key := types.NamespacedName{Namespace: "offers", Name: "standard"}

	for _, tc := range []struct {
		desc          string
		objs          []client.Object
		wantProgammed string // "" means Programmed returns nil
		wantWait      string // "" means WaitForPolicyProgrammed returns the config
	}{{
		desc:          "no policy",
		wantProgammed: "not found",
		wantWait:      "not found",
	}, {
		desc:          "generation not reconciled",
		objs:          []client.Object{policy(2, 1, h, programmed), cm(string(data))},
		wantProgammed: "generation 2 not reconciled yet",
		wantWait:      "generation 2 not reconciled yet",
	}, {
		desc: "conflicted",
		objs: []client.Object{policy(2, 2, "",
			cond(v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted, 2),
			cond(v1alpha1.ConditionProgrammed, metav1.ConditionFalse, v1alpha1.ReasonNotAccepted, 2))},
		wantProgammed: "Programmed=False, reason NotAccepted: because; Accepted=False, reason Conflicted: because",
		wantWait:      "reason Conflicted",
	}, {
		desc:     "programmed, no ConfigMap",
		objs:     []client.Object{policy(2, 2, h, programmed)},
		wantWait: "not found",
	}, {
		desc:     "programmed, ConfigMap of an older generation",
		objs:     []client.Object{policy(2, 2, "sha256:0000", programmed), cm(string(data))},
		wantWait: "its status says sha256:0000",
	}, {
		desc:     "programmed, ConfigMap without the policy",
		objs:     []client.Object{policy(2, 2, h, programmed), cm(`{"schemaVersion":1,"namespace":"offers","policies":[]}`)},
		wantWait: "does not hold policy standard",
	}, {
		desc:     "programmed, ConfigMap that does not parse",
		objs:     []client.Object{policy(2, 2, h, programmed), cm(`{"schemaVersion":2}`)},
		wantWait: "schemaVersion: 2 is not supported",
	}, {
		desc: "programmed and in the config",
		objs: []client.Object{policy(2, 2, h, programmed), cm(string(data))},
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(offerfeedtest.NewScheme()).WithObjects(tc.objs...).
				WithStatusSubresource(&v1alpha1.OfferFeedPolicy{}).Build()
			ctx := context.Background()
			checkErr(t, "Programmed", offerfeedtest.Programmed(ctx, c, key), tc.wantProgammed)

			wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			got, err := offerfeedtest.WaitForPolicyProgrammed(wctx, c, key)
			checkErr(t, "WaitForPolicyProgrammed", err, tc.wantWait)
			if err == nil && (len(got.Policies) != 1 || got.Policies[0].Hash != h) {
				t.Fatalf("WaitForPolicyProgrammed returned %+v", got)
			}
			if err != nil && !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
				t.Fatalf("WaitForPolicyProgrammed error %v does not say it timed out", err)
			}
		})
	}

	c := fake.NewClientBuilder().WithScheme(offerfeedtest.NewScheme()).Build()
	if _, err := offerfeedtest.GatewayConfig(context.Background(), c, "offers"); !apierrors.IsNotFound(err) {
		t.Fatalf("GatewayConfig without ConfigMap: %v, want NotFound", err)
	}
	c = fake.NewClientBuilder().WithScheme(offerfeedtest.NewScheme()).WithObjects(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.GatewayConfigMapName, Namespace: "offers"}}).Build()
	_, err = offerfeedtest.GatewayConfig(context.Background(), c, "offers")
	checkErr(t, "GatewayConfig without key", err, "has no key config.json")
}

func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("%s: %v", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("%s: error %v, want one containing %q", what, err, want)
	}
}
