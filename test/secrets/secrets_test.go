// Package secrets holds the secrets grep test of shared state (issue 10): with a policy whose
// shared state takes its credentials from a Secret, the Redis password must appear nowhere
// but in the Secret (and the gateway's mount of it): not in the gateway's logs, /readyz or
// /metrics, nor in the manager's logs, the events, the policy's status or the ConfigMap.
package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/internal/webhook"
	"github.com/offerfeed/offerfeed/offerfeedtest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		fmt.Fprintf(&b.buf, "%s %s\n", prefix, args)
	}, funcr.Options{Verbosity: 10})
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// leaks lists the forms of the credentials that must not appear in text: the password as it
// is, base64-encoded as in a Secret's data, and any URL or user:password@ form.
func leaks(text, user, pass string) []string {
	var found []string
	for _, f := range []string{pass, base64.StdEncoding.EncodeToString([]byte(pass)), user + ":" + pass} {
		if strings.Contains(text, f) {
			found = append(found, fmt.Sprintf("%q", f))
		}
	}
	if m := userinfoRE.FindString(text); m != "" {
		found = append(found, fmt.Sprintf("a user:password@ form %q", m))
	}
	return found
}

// userinfoRE matches a URL with user information, or a host preceded by user:password@.
var userinfoRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/\s"@]*@|[\w.-]+:[^\s"/@]+@[\w.-]+:[0-9]+`)

func TestPasswordAppearsOnlyInTheSecret(t *testing.T) {
	const user = "offerfeed-gateway"
	pass := "pw-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "") + "-Zq8"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The process-wide loggers (controller-runtime's and klog's) write where the grep reads.
	var managerLog logBuffer
	ctrllog.SetLogger(managerLog.logger())
	klog.SetLogger(managerLog.logger())

	// A real Redis that only the ACL user may use.
	srv := redistest.Start(t)
	for _, cmd := range [][]string{{"ACL", "SETUSER", user, "on", ">" + pass, "~*", "&*", "+@all"}, {"ACL", "SETUSER", "default", "off"}} {
		if r, err := srv.Do(cmd...); err != nil || r != "+OK" {
			t.Fatalf("%s: %q, %v", cmd[:3], r, err)
		}
	}

	// A real API server with the CRDs, and the manager.
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	k8s, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := offerfeedtest.StartManager(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mgr.Stop() })

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "offerfeed-redis", Namespace: ns.Name},
		StringData: map[string]string{"username": user, "password": pass}}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	maxAccepts, window, mrt, shown := int32(3), v1alpha1.Duration("10m"), v1alpha1.Duration("800ms"), true
	policy := &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns.Name},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service"}),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
			Accept: &v1alpha1.AcceptLimits{PathTemplate: "/offers/{offerId}/accept", MaxAccepts: &maxAccepts, Window: &window,
				MinReactionTime: &mrt, RequireShown: &shown},
			ShownOffers: &v1alpha1.ShownOffers{JSONPath: "offers[].id"},
			SharedState: v1alpha1.SharedState{Redis: v1alpha1.RedisConnection{
				Addresses:            []v1alpha1.RedisAddress{v1alpha1.RedisAddress(srv.Addr)},
				CredentialsSecretRef: v1alpha1.SecretReference{Name: secret.Name},
			}},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	var gwcfg *gatewayconfig.Config
	for gwcfg == nil {
		if gwcfg, err = offerfeedtest.WaitForPolicyProgrammed(ctx, k8s, client.ObjectKeyFromObject(policy)); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
	}

	// Mount the Secret as the kubelet would, where the webhook puts it for this pod.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "offers-1", Namespace: ns.Name, Labels: map[string]string{"app": "offer-service"},
		Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: "8080"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "offers:1"}}}}
	if changed, warning := webhook.Inject(pod, webhook.Config{Image: "offerfeed:test"}); !changed {
		t.Fatalf("not injected: %s", warning)
	}
	if !webhook.MountRedisSecrets(pod, webhook.RedisSecrets(pod.Labels, []v1alpha1.OfferFeedPolicy{*policy})) {
		t.Fatal("Secret not mounted")
	}
	mounts := t.TempDir()
	mountSecret := func() {
		t.Helper()
		var s corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(secret), &s); err != nil {
			t.Fatal(err)
		}
		for _, m := range pod.Spec.InitContainers[0].VolumeMounts {
			if strings.HasPrefix(m.MountPath, gatewayconfig.RedisCredentialsDir+"/") {
				dir := filepath.Join(mounts, strings.TrimPrefix(m.MountPath, gatewayconfig.RedisCredentialsDir+"/"))
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				for k, v := range s.Data {
					if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	mountSecret()

	// Two gateways from the rendered config, and an offer service.
	offers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, `{"offers":[{"id":"o1"},{"id":"o2"}]}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer offers.Close()
	up, _ := url.Parse(offers.URL)
	var gatewayLog logBuffer
	var gws []*gateway.Gateway
	var admins []*httptest.Server
	for range 2 {
		g, err := gateway.New(gateway.Options{Upstream: up, PodLabels: pod.Labels, Namespace: ns.Name,
			RedisCredentialsDir: mounts, Logger: gatewayLog.logger()})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if err := g.Apply(gwcfg); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
		a := httptest.NewServer(g.AdminHandler())
		defer a.Close()
		admins = append(admins, a)
	}
	get := func(u string) string {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	serve := func(method, path, driver string) (int, string) {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("X-Driver-Id", driver)
		w := httptest.NewRecorder()
		gws[len(driver)%2].ServeHTTP(w, r)
		return w.Code, w.Header().Get(gateway.HeaderDecision)
	}
	traffic := func() {
		for i := range 6 {
			driver := fmt.Sprintf("driver-%d", i)
			serve("GET", "/offers", driver)
			serve("GET", "/offers", driver)
			serve("POST", "/offers/o1/accept", driver)
			serve("POST", "/offers/o9/accept", driver)
		}
	}
	traffic()
	if rz := get(admins[0].URL + "/readyz"); !strings.Contains(rz, `"connected": true`) {
		t.Fatalf("the gateway is not connected to Redis, so the test would not show much:\n%s", rz)
	}
	// Shared: a poll on one gateway right after one on the other is throttled.
	if code, d := serve("GET", "/offers", "shared-a"); code != 200 || d != "" {
		t.Fatalf("first poll: %d %q", code, d)
	}
	r := httptest.NewRequest("GET", "/offers", nil)
	r.Header.Set("X-Driver-Id", "shared-a")
	w := httptest.NewRecorder()
	gws[1-len("shared-a")%2].ServeHTTP(w, r)
	if w.Header().Get(gateway.HeaderDecision) != gateway.FeedThrottled.String() {
		t.Fatalf("a poll on the other gateway: %d %q; the gateways do not share state", w.Code, w.Header().Get(gateway.HeaderDecision))
	}

	// The Secret rotates to a password Redis does not take; the connections drop. The
	// gateways fail to authenticate, and say so.
	secret.StringData = map[string]string{"password": pass + "-rotated"}
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	mountSecret()
	if r, err := srv.Do("PING"); err != nil || r == "+PONG" {
		t.Fatal("the default user answers")
	}
	killConnections(t, srv.Addr, user, pass)
	time.Sleep(1100 * time.Millisecond) // past /readyz's cached PING
	traffic()
	if rz := get(admins[0].URL + "/readyz"); !strings.Contains(rz, `"connected": false`) {
		t.Errorf("with a wrong password, /readyz says:\n%s", rz)
	}

	// Gather everything and grep it.
	var evs corev1.EventList
	var evs2 eventsv1.EventList
	var cm corev1.ConfigMap
	var got v1alpha1.OfferFeedPolicy
	var sec corev1.Secret
	for _, err := range []error{
		k8s.List(ctx, &evs, client.InNamespace(ns.Name)),
		k8s.List(ctx, &evs2, client.InNamespace(ns.Name)),
		k8s.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: v1alpha1.GatewayConfigMapName}, &cm),
		k8s.Get(ctx, client.ObjectKeyFromObject(policy), &got),
		k8s.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: "offerfeed-redis"}, &sec),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	places := map[string]string{
		"gateway logs": gatewayLog.String(),
		"/readyz":      get(admins[0].URL+"/readyz") + get(admins[1].URL+"/readyz"),
		"/metrics":     get(admins[0].URL+"/metrics") + get(admins[1].URL+"/metrics"),
		"manager logs": managerLog.String(),
		"events":       js(evs) + js(evs2),
		"policy":       js(got),
		"ConfigMap":    js(cm),
	}
	for where, text := range places {
		if text == "" {
			t.Errorf("%s: nothing to grep", where)
		}
		if found := leaks(text, user, pass); len(found) > 0 {
			t.Errorf("%s shows the credentials: %s", where, strings.Join(found, ", "))
		}
	}
	// The grep finds the password where it belongs: the Secret, as the API server returns it.
	if found := leaks(js(sec), user, pass+"-rotated"); len(found) == 0 {
		t.Error("the grep does not find the password in the Secret: it proves nothing")
	}
	if found := leaks("redis://"+user+":x@redis:6379", user, pass); len(found) == 0 {
		t.Error("the grep does not find a redis URL with credentials: it proves nothing")
	}
	// And the places hold what they should: the gateway logged its client, the ConfigMap
	// names the Secret, the manager logged its work.
	for where, want := range map[string]string{"gateway logs": "Redis client made", "ConfigMap": `\"credentialsSecret\": \"offerfeed-redis\"`,
		"/readyz": `"secret": "offerfeed-redis"`, "manager logs": "standard"} {
		if !strings.Contains(places[where], want) {
			t.Errorf("%s lacks %s", where, want)
		}
	}
}

// killConnections drops the ACL user's connections (the gateways'), so that they connect
// again with the Secret as it is now.
func killConnections(t *testing.T, addr, user, pass string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: pass})
	defer c.Close()
	if err := c.Do(context.Background(), "CLIENT", "KILL", "USER", user, "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
}
