package offerfeedtest

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// PollInterval is how often WaitForPolicyProgrammed looks at the policy.
const PollInterval = 50 * time.Millisecond

// GatewayConfig reads the gateway config that the manager rendered for namespace ns: ConfigMap
// offerfeed-gateway, key config.json, parsed as the gateway sidecar parses it. The error wraps
// the client's: apierrors.IsNotFound(err) is true while there is no such ConfigMap (the manager
// writes it once the namespace has a policy).
func GatewayConfig(ctx context.Context, c client.Client, ns string) (*gatewayconfig.Config, error) {
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}
	if err := c.Get(ctx, key, cm); err != nil {
		return nil, fmt.Errorf("getting ConfigMap %s: %w", key, err)
	}
	data, ok := cm.Data[v1alpha1.GatewayConfigKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s has no key %s", key, v1alpha1.GatewayConfigKey)
	}
	cfg, err := gatewayconfig.Parse([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s, key %s: %w", key, v1alpha1.GatewayConfigKey, err)
	}
	return cfg, nil
}

// Programmed returns nil when the OfferFeedPolicy key is Programmed for its current
// generation, that is, in the gateway config of its namespace; otherwise an error that says
// where it stands (not found, not yet reconciled, or its Accepted and Programmed conditions).
// It fits gomega's Eventually:
//
//	Eventually(offerfeedtest.Programmed).WithContext(ctx).WithArguments(k8sClient, key).Should(Succeed())
func Programmed(ctx context.Context, c client.Client, key types.NamespacedName) error {
	_, err := programmed(ctx, c, key)
	return err
}

func programmed(ctx context.Context, c client.Client, key types.NamespacedName) (*v1alpha1.OfferFeedPolicy, error) {
	p := &v1alpha1.OfferFeedPolicy{}
	if err := c.Get(ctx, key, p); err != nil {
		return nil, fmt.Errorf("getting OfferFeedPolicy %s: %w", key, err)
	}
	if p.Status.ObservedGeneration != p.Generation {
		return nil, fmt.Errorf("OfferFeedPolicy %s: generation %d not reconciled yet (status.observedGeneration %d)",
			key, p.Generation, p.Status.ObservedGeneration)
	}
	pc := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
	if pc != nil && pc.Status == metav1.ConditionTrue && pc.ObservedGeneration == p.Generation {
		return p, nil
	}
	state := "no Programmed condition"
	if pc != nil {
		state = fmt.Sprintf("Programmed=%s, reason %s: %s", pc.Status, pc.Reason, pc.Message)
	}
	if ac := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionAccepted)); ac != nil && ac.Status != metav1.ConditionTrue {
		state += fmt.Sprintf("; Accepted=%s, reason %s: %s", ac.Status, ac.Reason, ac.Message)
	}
	return nil, fmt.Errorf("OfferFeedPolicy %s is not Programmed: %s", key, state)
}

// WaitForPolicyProgrammed waits until the OfferFeedPolicy key is Programmed for its current
// generation and the gateway config of its namespace holds it as its status says
// (status.configHash), then returns that config. It polls every PollInterval until ctx is
// done; give ctx a deadline. The error after a timeout says where the policy stood.
func WaitForPolicyProgrammed(ctx context.Context, c client.Client, key types.NamespacedName) (*gatewayconfig.Config, error) {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		cfg, err := programmedConfig(ctx, c, key)
		if err == nil {
			return cfg, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for OfferFeedPolicy %s to be Programmed: %w (last: %w)", key, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// programmedConfig returns the gateway config of key's namespace when key is Programmed and in
// that config with the hash of its status.
func programmedConfig(ctx context.Context, c client.Client, key types.NamespacedName) (*gatewayconfig.Config, error) {
	p, err := programmed(ctx, c, key)
	if err != nil {
		return nil, err
	}
	cfg, err := GatewayConfig(ctx, c, key.Namespace)
	if err != nil {
		return nil, err
	}
	for _, cp := range cfg.Policies {
		if cp.Name == key.Name {
			if cp.Hash != p.Status.ConfigHash {
				return nil, fmt.Errorf("gateway config of %s holds policy %s with hash %s, its status says %s",
					key.Namespace, key.Name, cp.Hash, p.Status.ConfigHash)
			}
			return cfg, nil
		}
	}
	return nil, fmt.Errorf("gateway config of %s does not hold policy %s yet", key.Namespace, key.Name)
}
