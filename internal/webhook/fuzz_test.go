package webhook

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

// FuzzInject: whatever the annotations and ports, Inject does not panic, leaves a pod it warns
// about unchanged, and injects at most once.
func FuzzInject(f *testing.F) {
	f.Add("http", "", int32(8080), "http", false)
	f.Add("8480", "true", int32(8480), "offerfeed", false)
	f.Add("", "false", int32(0), "", true)
	f.Add("-1", "maybe", int32(65536), "x", false)
	f.Fuzz(func(t *testing.T, upstream, inject string, port int32, portName string, set bool) {
		pod := appPod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{}
			if upstream != "" || set {
				p.Annotations[v1alpha1.UpstreamPortAnnotation] = upstream
			}
			if inject != "" {
				p.Annotations[v1alpha1.InjectAnnotation] = inject
			}
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: portName, ContainerPort: port}}
		})
		before := pod.DeepCopy()
		changed, warning := Inject(pod, testConfig)
		if changed && warning != "" {
			t.Fatalf("changed and warned %q", warning)
		}
		if !changed {
			if diff := cmp.Diff(before, pod); diff != "" {
				t.Fatalf("unchanged pod changed:\n%s", diff)
			}
			return
		}
		if !Injected(pod) {
			t.Fatal("changed but not Injected")
		}
		again := pod.DeepCopy()
		if changed, warning := Inject(again, testConfig); changed || warning != "" {
			t.Fatalf("second Inject = (%v, %q)", changed, warning)
		}
	})
}
