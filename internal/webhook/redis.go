package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// The credentials of a policy's shared state (spec.sharedState.redis.credentialsSecretRef)
// reach the gateway, and nothing else, this way (docs/design.md#shared-state-on-redis):
//
//   - the webhook mounts each Secret named by a policy of the pod's namespace whose selector
//     matches the pod (in precedence order, at most MaxRedisSecrets) into the gateway
//     container only, read-only, at gatewayconfig.RedisCredentialsDir/<name>, as an optional
//     volume (a Secret created later appears in the pod without a restart);
//   - the webhook reads policies, never Secrets: the manager needs no permission on Secrets,
//     and the kubelet mounts them for the pod;
//   - the gateway config names the Secret, and the gateway reads the files on every new
//     connection, so a rotated Secret takes effect without a restart.
//
// Every matching policy's Secret is mounted, not only the one that wins today, so that the
// gateway finds the Secret of whichever policy it applies after a conflict is resolved. A pod
// created before its policy named a Secret has no mount: its gateway says so in /readyz and
// keeps its state locally until the pod is recreated.

// MaxRedisSecrets bounds the Secrets mounted into one gateway.
const MaxRedisSecrets = 4

// redisVolumePrefix starts the names of the Secret volumes ("offerfeed-redis-0", ...).
const redisVolumePrefix = "offerfeed-redis-"

// RedisSecrets returns the names of the Secrets of shared state that the gateway of a pod
// with labels podLabels may need: those of the policies whose selector matches, in
// precedence order (older first, then by name), each once, at most MaxRedisSecrets.
func RedisSecrets(podLabels map[string]string, policies []v1alpha1.OfferFeedPolicy) []string {
	ps := make([]*v1alpha1.OfferFeedPolicy, 0, len(policies))
	for i := range policies {
		ps = append(ps, &policies[i])
	}
	slices.SortFunc(ps, precedence)
	var out []string
	for _, p := range ps {
		ss := &p.Spec.SharedState
		// The API refuses other names (gatewayconfig.RedisSecretPrefix); the webhook does not
		// rely on it: it never mounts another application's Secret.
		if name := ss.Redis.CredentialsSecretRef.Name; !strings.HasPrefix(name, gatewayconfig.RedisSecretPrefix) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.TargetSelector.AsMetav1())
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		if name := ss.Redis.CredentialsSecretRef.Name; !slices.Contains(out, name) && len(out) < MaxRedisSecrets {
			out = append(out, name)
		}
	}
	return out
}

// precedence orders policies as render.Precedence does: older first, then by name.
func precedence(a, b *v1alpha1.OfferFeedPolicy) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

// MountRedisSecrets mounts the Secrets named into the gateway container of an injected pod,
// read-only and optional, at gatewayconfig.RedisCredentialsDir/<name>. App containers get
// nothing. It reports false (and changes nothing) when the pod has no gateway container or
// already has a volume of the names it would add.
func MountRedisSecrets(pod *corev1.Pod, names []string) bool {
	if len(names) == 0 {
		return true
	}
	gw := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == ContainerName })
	if gw < 0 {
		return false
	}
	for i := range names {
		if slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == redisVolume(i) }) {
			return false
		}
	}
	c := &pod.Spec.InitContainers[gw]
	for i, name := range names {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: redisVolume(i), VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: name, Optional: ptr.To(true)},
		}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{
			Name: redisVolume(i), MountPath: gatewayconfig.RedisCredentialsDir + "/" + name, ReadOnly: true,
		})
	}
	return true
}

func redisVolume(i int) string { return fmt.Sprintf("%s%d", redisVolumePrefix, i) }

// redisSecretsOf lists the policies of the pod's namespace and returns the Secrets to mount.
// When the API server cannot be read (an outage), it uses the last list it read of that
// namespace, kept in known: pods created during an outage get the mounts the namespace's
// pods got before it. It fails only for a namespace it has never read.
func redisSecretsOf(ctx context.Context, r client.Reader, known *sync.Map, pod *corev1.Pod) ([]string, error) {
	var list v1alpha1.OfferFeedPolicyList
	err := r.List(ctx, &list, client.InNamespace(pod.Namespace))
	switch {
	case err == nil && known != nil:
		known.Store(pod.Namespace, list.Items)
	case err != nil && known != nil:
		v, ok := known.Load(pod.Namespace)
		if !ok {
			return nil, fmt.Errorf("listing the OfferFeedPolicies of namespace %s: %w", pod.Namespace, err)
		}
		log.FromContext(ctx).V(1).Info("policies unreadable; the last list read of the namespace decides the mounts", "namespace", pod.Namespace, "error", err.Error())
		list.Items = v.([]v1alpha1.OfferFeedPolicy)
	case err != nil:
		return nil, fmt.Errorf("listing the OfferFeedPolicies of namespace %s: %w", pod.Namespace, err)
	}
	return RedisSecrets(pod.Labels, list.Items), nil
}
