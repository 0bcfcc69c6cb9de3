package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

// recorded is one event of fakeRecorder.
type recorded struct {
	regarding *corev1.ObjectReference
	eventtype string
	reason    string
	note      string
}

type fakeRecorder struct{ events []recorded }

func (f *fakeRecorder) Eventf(regarding, _ runtime.Object, eventtype, reason, _, note string, args ...any) {
	f.events = append(f.events, recorded{regarding.(*corev1.ObjectReference), eventtype, reason, fmt.Sprintf(note, args...)})
}

func (f *fakeRecorder) WithLogger(klog.Logger) events.EventRecorderLogger { return f }

func request(t *testing.T, raw []byte, mutate ...func(*admission.Request)) admission.Request {
	t.Helper()
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: "offers",
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
	for _, m := range mutate {
		m(&req)
	}
	return req
}

func podJSON(t *testing.T, pod *corev1.Pod) []byte {
	t.Helper()
	pod.APIVersion, pod.Kind = "v1", "Pod"
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newInjector() (*PodInjector, *fakeRecorder) {
	rec := &fakeRecorder{}
	return &PodInjector{Config: testConfig, Decoder: admission.NewDecoder(scheme.Scheme), Recorder: rec}, rec
}

// TestHandleInjects applies the response's patch to the request's raw pod, which carries a
// field this binary's Pod type does not know: the patch adds the sidecar and keeps the field.
func TestHandleInjects(t *testing.T) {
	pod := appPod(func(p *corev1.Pod) { p.Namespace = "" })
	var doc map[string]any
	if err := json.Unmarshal(podJSON(t, pod), &doc); err != nil {
		t.Fatal(err)
	}
	doc["spec"].(map[string]any)["fieldFromTheFuture"] = "keep me"
	raw, _ := json.Marshal(doc)

	h, rec := newInjector()
	resp := h.Handle(context.Background(), request(t, raw))
	if !resp.Allowed || len(resp.Warnings) != 0 || resp.PatchType == nil {
		t.Fatalf("response = %+v, want allowed with a patch and no warning", resp.AdmissionResponse)
	}
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range resp.Patches {
		if op.Operation == "remove" || strings.HasPrefix(op.Path, "/metadata/namespace") {
			t.Errorf("patch touches what it should not: %+v", op)
		}
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("applying %s: %v", ops, err)
	}
	if !strings.Contains(string(patched), `"fieldFromTheFuture":"keep me"`) {
		t.Errorf("the patch dropped an unknown field: %s", patched)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	if !Injected(&got) || len(got.Spec.Volumes) != 3 {
		t.Errorf("patched pod not injected: %+v", got)
	}
	if len(rec.events) != 0 {
		t.Errorf("events for an injected pod: %+v", rec.events)
	}

	// The stored pod goes through the webhook again: nothing to do.
	resp = h.Handle(context.Background(), request(t, patched))
	if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) != 0 {
		t.Errorf("second pass = %+v, want allowed unchanged", resp)
	}
}

func TestHandleSkips(t *testing.T) {
	owned := appPod(func(p *corev1.Pod) {
		p.Name, p.GenerateName = "", "offers-7d9f-"
		delete(p.Annotations, v1alpha1.UpstreamPortAnnotation)
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9090})
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "offers-7d9f", UID: "u1", Controller: ptr.To(true)}}
	})
	bare := appPod(annotate(v1alpha1.UpstreamPortAnnotation, "nope"))
	for _, tc := range []struct {
		desc          string
		pod           *corev1.Pod
		dryRun        bool
		wantRegarding string // kind/name; "" wants no event
	}{
		{desc: "owned pod: event on its controller", pod: owned, wantRegarding: "ReplicaSet/offers-7d9f"},
		{desc: "bare pod: event on the pod's name", pod: bare, wantRegarding: "Pod/offers-1"},
		{desc: "dry run: no event", pod: bare, dryRun: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h, rec := newInjector()
			resp := h.Handle(context.Background(), request(t, podJSON(t, tc.pod.DeepCopy()), func(r *admission.Request) {
				r.DryRun = ptr.To(tc.dryRun)
			}))
			if !resp.Allowed || len(resp.Patches) != 0 || resp.PatchType != nil {
				t.Errorf("response = %+v, want allowed unchanged", resp)
			}
			if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "not injected") {
				t.Errorf("warnings = %q", resp.Warnings)
			}
			if tc.wantRegarding == "" {
				if len(rec.events) != 0 {
					t.Errorf("events = %+v, want none", rec.events)
				}
				return
			}
			if len(rec.events) != 1 {
				t.Fatalf("events = %+v, want one", rec.events)
			}
			ev := rec.events[0]
			if got := ev.regarding.Kind + "/" + ev.regarding.Name; got != tc.wantRegarding || ev.regarding.Namespace != "offers" {
				t.Errorf("event regarding %s in %q, want %s in offers", got, ev.regarding.Namespace, tc.wantRegarding)
			}
			if ev.eventtype != corev1.EventTypeWarning || ev.reason != ReasonInjectionSkipped || ev.note != resp.Warnings[0] {
				t.Errorf("event = %+v", ev)
			}
		})
	}
}

func TestHandleIgnores(t *testing.T) {
	h, rec := newInjector()
	raw := podJSON(t, appPod())
	for _, tc := range []struct {
		desc   string
		mutate func(*admission.Request)
	}{
		{"update", func(r *admission.Request) { r.Operation = admissionv1.Update }},
		{"subresource", func(r *admission.Request) { r.SubResource = "ephemeralcontainers" }},
		{"other kind", func(r *admission.Request) { r.Kind.Kind = "ConfigMap" }},
		{"undecodable", func(r *admission.Request) { r.Object.Raw = []byte("{not json") }},
	} {
		resp := h.Handle(context.Background(), request(t, raw, tc.mutate))
		if !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("%s: response = %+v, want allowed unchanged", tc.desc, resp)
		}
	}
	if len(rec.events) != 0 {
		t.Errorf("events = %+v", rec.events)
	}
}

// TestHandlePanic: a bug in Inject admits the pod unchanged rather than denying it.
func TestHandlePanic(t *testing.T) {
	h, _ := newInjector()
	h.Decoder = nil
	resp := h.Handle(context.Background(), request(t, podJSON(t, appPod())))
	if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) != 1 {
		t.Errorf("response = %+v, want allowed with a warning", resp)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"éé", 3, "é"},
	} {
		if got := truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
