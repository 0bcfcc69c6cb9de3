package webhook

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

func sharedPolicy(name string, age time.Duration, selector map[string]string, secret string) v1alpha1.OfferFeedPolicy {
	p := v1alpha1.OfferFeedPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "offers",
		CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(-age))}}
	p.Spec.TargetSelector = v1alpha1.SelectLabels(selector)
	if secret != "" {
		p.Spec.SharedState = v1alpha1.SharedState{Redis: v1alpha1.RedisConnection{
			Addresses:            []v1alpha1.RedisAddress{"redis:6379"},
			CredentialsSecretRef: v1alpha1.SecretReference{Name: secret},
		}}
	}
	return p
}

// TestRedisSecrets: the Secrets of the policies that select the pod, older policy first,
// each once, bounded; not those of other pods' policies nor of policies without credentials.
func TestRedisSecrets(t *testing.T) {
	app := map[string]string{"app": "offer-service"}
	ps := []v1alpha1.OfferFeedPolicy{
		sharedPolicy("newer", time.Hour, app, "offerfeed-redis-newer"),
		sharedPolicy("older", 2*time.Hour, app, "offerfeed-redis-older"),
		sharedPolicy("other-app", 3*time.Hour, map[string]string{"app": "billing"}, "offerfeed-redis-billing"),
		sharedPolicy("local", 4*time.Hour, app, ""),
		sharedPolicy("same-secret", 30*time.Minute, app, "offerfeed-redis-older"),
		// Refused by the API server; the webhook does not mount another application's
		// Secret even if such a policy were stored.
		sharedPolicy("foreign", 5*time.Hour, app, "billing-db"),
	}
	got := RedisSecrets(map[string]string{"app": "offer-service", "pod-template-hash": "x"}, ps)
	if want := []string{"offerfeed-redis-older", "offerfeed-redis-newer"}; !cmp.Equal(got, want) {
		t.Errorf("RedisSecrets = %v, want %v", got, want)
	}
	var many []v1alpha1.OfferFeedPolicy
	for i := range MaxRedisSecrets + 2 {
		many = append(many, sharedPolicy(string(rune('a'+i)), time.Duration(i)*time.Minute, app, "offerfeed-s"+string(rune('a'+i))))
	}
	if got := RedisSecrets(app, many); len(got) != MaxRedisSecrets {
		t.Errorf("RedisSecrets of %d policies = %v, want %d", len(many), got, MaxRedisSecrets)
	}
	if got := RedisSecrets(map[string]string{"app": "web"}, ps); len(got) != 0 {
		t.Errorf("RedisSecrets of a pod no policy selects = %v", got)
	}
}

// TestMountRedisSecrets: the Secrets go into the gateway container only, read-only, optional,
// at the path the gateway derives from the config.
func TestMountRedisSecrets(t *testing.T) {
	pod := appPod()
	if changed, w := Inject(pod, testConfig); !changed || w != "" {
		t.Fatalf("Inject: %v, %q", changed, w)
	}
	if !MountRedisSecrets(pod, []string{"redis-creds"}) {
		t.Fatal("MountRedisSecrets refused an injected pod")
	}
	var gw *corev1.Container
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == ContainerName {
			gw = &pod.Spec.InitContainers[i]
		}
	}
	var mount *corev1.VolumeMount
	for i, m := range gw.VolumeMounts {
		if m.MountPath == gatewayconfig.RedisCredentialsDir+"/redis-creds" {
			mount = &gw.VolumeMounts[i]
		}
	}
	if mount == nil || !mount.ReadOnly {
		t.Fatalf("gateway mounts %+v; want redis-creds read-only at %s/redis-creds", gw.VolumeMounts, gatewayconfig.RedisCredentialsDir)
	}
	var vol *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		if v.Name == mount.Name {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "redis-creds" || vol.Secret.Optional == nil || !*vol.Secret.Optional {
		t.Fatalf("volume %+v; want optional Secret redis-creds", vol)
	}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if m.Name == mount.Name {
				t.Errorf("app container %s mounts the credentials", c.Name)
			}
		}
	}
	// A pod that already has such a volume is left alone.
	again := pod.DeepCopy()
	if MountRedisSecrets(again, []string{"other"}) || len(again.Spec.Volumes) != len(pod.Spec.Volumes) {
		t.Error("MountRedisSecrets mounted over an existing volume")
	}
	// A pod without the gateway gets nothing.
	plain := appPod()
	if MountRedisSecrets(plain, []string{"redis-creds"}) || len(plain.Spec.Volumes) != 0 {
		t.Error("MountRedisSecrets mounted into a pod without the gateway")
	}
}

// TestManagerCannotReadSecrets: the credentials reach the gateway through the kubelet; the
// manager's role grants nothing on Secrets.
func TestManagerCannotReadSecrets(t *testing.T) {
	b, err := os.ReadFile("../../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role struct {
		Rules []struct {
			Resources []string `json:"resources"`
		} `json:"rules"`
	}
	if err := yaml.Unmarshal(b, &role); err != nil || len(role.Rules) == 0 {
		t.Fatalf("reading the manager's role: %v (%d rules)", err, len(role.Rules))
	}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			if strings.HasPrefix(res, "secrets") || res == "*" {
				t.Errorf("the manager's role grants %q", res)
			}
		}
	}
}

// outageReader lists policies until down is set, then fails as an unreachable API server does.
type outageReader struct {
	client.Reader
	items []v1alpha1.OfferFeedPolicy
	down  bool
}

func (r *outageReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	if r.down {
		return errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	}
	list.(*v1alpha1.OfferFeedPolicyList).Items = r.items
	return nil
}

// TestRedisSecretsDuringOutage: once the API server is down, a namespace read before gets the
// mounts of its last list; one never read is an error (the pod is injected with a warning).
func TestRedisSecretsDuringOutage(t *testing.T) {
	app := map[string]string{"app": "offer-service"}
	r := &outageReader{items: []v1alpha1.OfferFeedPolicy{sharedPolicy("p", time.Hour, app, "offerfeed-redis")}}
	var known sync.Map
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "offers", Labels: app}}
	if got, err := redisSecretsOf(context.Background(), r, &known, pod); err != nil || !cmp.Equal(got, []string{"offerfeed-redis"}) {
		t.Fatalf("before the outage: %v, %v", got, err)
	}
	r.down = true
	if got, err := redisSecretsOf(context.Background(), r, &known, pod); err != nil || !cmp.Equal(got, []string{"offerfeed-redis"}) {
		t.Errorf("during the outage, a namespace read before: %v, %v; want its last mounts", got, err)
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Labels: app}}
	if got, err := redisSecretsOf(context.Background(), r, &known, other); err == nil {
		t.Errorf("during the outage, a namespace never read: %v, no error", got)
	}
}
