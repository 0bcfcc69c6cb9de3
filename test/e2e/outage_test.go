package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

// outage is how long the API server is down in TestWebhookSurvivesAPIOutage: three times the
// leader's renew deadline (10s), after which controller-runtime's leader election ends the
// manager.
const outage = 30 * time.Second

// admissionClient sends AdmissionReviews to a webhook server as the API server does: HTTPS,
// verifying the server's certificate with the webhook configuration's CA.
type admissionClient struct {
	url string
	hc  *http.Client
}

func newAdmissionClient(t *testing.T, in *installation, port int) *admissionClient {
	t.Helper()
	wo := in.env.WebhookInstallOptions
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(wo.LocalServingCAData) {
		t.Fatal("webhook CA unreadable")
	}
	return &admissionClient{
		url: "https://" + wo.LocalServingHost + ":" + strconv.Itoa(port) + webhook.Path,
		hc:  &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
}

// inject asks the webhook to admit a new pod of ns and returns its answer.
func (a *admissionClient) inject(ns string, n int) (*admissionv1.AdmissionResponse, error) {
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("offers-%d", n), Namespace: ns, Labels: map[string]string{"app": "offer-service"},
			Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: "http"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "offer-service:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(fmt.Sprintf("outage-%d", n)),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Name:      pod.Name,
			Namespace: ns,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Post(a.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	out := &admissionv1.AdmissionReview{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	if out.Response == nil || out.Response.UID != review.Request.UID {
		return nil, fmt.Errorf("answer for another request: %s", b)
	}
	return out.Response, nil
}

// TestWebhookSurvivesAPIOutage stops the API server for 30 s under a leader-elected
// `offerfeed manager`: the webhook keeps injecting pods all along (another API server, or one
// coming back, may call it), the process stays up, and once the API server is back the
// manager leads and reconciles again.
func TestWebhookSurvivesAPIOutage(t *testing.T) {
	in := install(t)
	ctx := context.Background()
	mgr := in.startManager(t, 0)
	eventually(t, "leader elected", func() error {
		if h, err := in.leaseHolder(ctx); err != nil || h == "" {
			return fmt.Errorf("lease holder %q: %w", h, err)
		}
		return nil
	})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-"}}
	if err := in.admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	policy := &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns.Name},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service"}),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
		},
	}
	if err := in.admin.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	programmed := func(minInterval string) func() error {
		return func() error {
			p := &v1alpha1.OfferFeedPolicy{}
			if err := in.admin.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
			if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != p.Generation || string(p.Spec.Feed.MinInterval) != minInterval {
				return fmt.Errorf("not programmed at generation %d: %+v", p.Generation, p.Status)
			}
			return nil
		}
	}
	eventually(t, "policy programmed", programmed("2s"))
	wh := newAdmissionClient(t, in, in.env.WebhookInstallOptions.LocalServingPort)

	// A pod of the namespace before the outage: the webhook has read its policies once, as it
	// has in any namespace it served (during the outage it mounts what it read then).
	if resp, err := wh.inject(ns.Name, 0); err != nil || !resp.Allowed || resp.Patch == nil || len(resp.Warnings) > 0 {
		t.Fatalf("before the outage the webhook did not inject: %+v, %v", resp, err)
	}

	// Stop closes the port at once; the process takes a while to end (it drains watches).
	apiServer := in.env.ControlPlane.APIServer
	down := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- apiServer.Stop() }()
	n := 0
	for time.Since(down) < outage {
		n++
		resp, err := wh.inject(ns.Name, n)
		switch {
		case err != nil:
			t.Fatalf("%s into the outage the webhook failed: %v", time.Since(down).Round(time.Second), err)
		case !resp.Allowed || resp.Patch == nil || len(resp.Warnings) > 0:
			t.Fatalf("%s into the outage the webhook did not inject: %+v", time.Since(down).Round(time.Second), resp)
		}
		select {
		case err := <-mgr.done:
			mgr.done <- err
			t.Fatalf("the manager exited %s into the outage: %v", time.Since(down).Round(time.Second), err)
		case <-time.After(time.Second):
		}
	}
	if err := wantOK("http://" + mgr.probeAddr + "/healthz")(); err != nil {
		t.Errorf("liveness after %s without an API server: %v", outage, err)
	}
	t.Logf("the webhook answered %d admission reviews during a %s API server outage", n, outage)

	if err := <-stopped; err != nil {
		t.Fatalf("stopping the API server: %v", err)
	}
	t.Logf("the API server was down for %s", time.Since(down).Round(time.Second))
	if err := apiServer.Start(); err != nil {
		t.Fatalf("restarting the API server: %v", err)
	}
	// Informers reconnect with a backoff that grew during the outage (up to 30s).
	deadline := 90 * time.Second
	waitFor(t, deadline, "leader elected again", func() error {
		if h, err := in.leaseHolder(ctx); err != nil || h == "" {
			return fmt.Errorf("lease holder %q: %w", h, err)
		}
		return nil
	})
	waitFor(t, deadline, "policy updated after the outage", func() error {
		p := &v1alpha1.OfferFeedPolicy{}
		if err := in.admin.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
			return err
		}
		p.Spec.Feed.MinInterval = "5s"
		return in.admin.Update(ctx, p)
	})
	waitFor(t, deadline, "the update reconciled after the outage", programmed("5s"))
	mgr.stop(t)
}

// waitFor retries f until it returns nil or d passes.
func waitFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
