package webhook

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

var testConfig = Config{Image: "registry.example/offerfeed:v1"}

// appPod returns a pod with one app container serving port "http" (8080).
func appPod(mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "offers-1", Namespace: "offers",
			Labels:      map[string]string{"app": "offer-service"},
			Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: "http"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "offers:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func annotate(k, v string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Annotations[k] = v }
}

func TestInject(t *testing.T) {
	tests := []struct {
		desc         string
		pod          *corev1.Pod
		cfg          Config
		wantChanged  bool
		wantUpstream string // --upstream of the sidecar when changed
		wantWarning  string // substring; "" wants no warning
	}{
		{desc: "named port", pod: appPod(), wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},
		{desc: "numbered port", pod: appPod(annotate(v1alpha1.UpstreamPortAnnotation, "9090")),
			wantChanged: true, wantUpstream: "http://127.0.0.1:9090"},
		{desc: "named port of a second container", pod: appPod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "api", Image: "api:1",
				Ports: []corev1.ContainerPort{{Name: "api", ContainerPort: 7000}}})
			p.Annotations[v1alpha1.UpstreamPortAnnotation] = "api"
		}), wantChanged: true, wantUpstream: "http://127.0.0.1:7000"},
		{desc: "explicit opt-in", pod: appPod(annotate(v1alpha1.InjectAnnotation, "true")),
			wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},
		{desc: "other ports in config", pod: appPod(annotate(v1alpha1.UpstreamPortAnnotation, "8480")),
			cfg: Config{Image: "x", Port: 15000, AdminPort: 15001}, wantChanged: true, wantUpstream: "http://127.0.0.1:8480"},
		{desc: "no annotations at all: the one port is the app's", pod: appPod(func(p *corev1.Pod) { p.Annotations = nil }),
			wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},
		{desc: "annotation copied without the sidecar is injected",
			pod:         appPod(annotate(v1alpha1.InjectedAnnotation, "true")),
			wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},

		{desc: "opt-out", pod: appPod(annotate(v1alpha1.InjectAnnotation, "false"))},
		{desc: "opt-out without upstream port", pod: appPod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{v1alpha1.InjectAnnotation: "false"}
		})},
		{desc: "inject annotation not a bool", pod: appPod(annotate(v1alpha1.InjectAnnotation, "maybe")),
			wantWarning: `annotation offerfeed.dev/inject is "maybe"`},
		{desc: "no upstream port annotation: the one port is the app's", pod: appPod(func(p *corev1.Pod) { delete(p.Annotations, v1alpha1.UpstreamPortAnnotation) }),
			wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},
		{desc: "blank upstream port annotation: inferred", pod: appPod(annotate(v1alpha1.UpstreamPortAnnotation, " ")),
			wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},
		{desc: "inferred: one unnamed port of a second container", pod: appPod(func(p *corev1.Pod) {
			p.Annotations = nil
			p.Spec.Containers[0].Ports = nil
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "api", Image: "api:1",
				Ports: []corev1.ContainerPort{{ContainerPort: 7000}}})
		}), wantChanged: true, wantUpstream: "http://127.0.0.1:7000"},
		{desc: "inferred: one port declared twice (TCP by default and explicitly)", pod: appPod(func(p *corev1.Pod) {
			p.Annotations = nil
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "web", ContainerPort: 8080})
		}), wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},
		{desc: "inferred: UDP ports and init containers' ports are not the app's", pod: appPod(func(p *corev1.Pod) {
			p.Annotations = nil
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP})
			always := corev1.ContainerRestartPolicyAlways
			p.Spec.InitContainers = []corev1.Container{{Name: "mesh", Image: "mesh:1", RestartPolicy: &always,
				Ports: []corev1.ContainerPort{{Name: "mesh-admin", ContainerPort: 15000}}}}
		}), wantChanged: true, wantUpstream: "http://127.0.0.1:8080"},
		{desc: "no annotation, two ports: ambiguous", pod: appPod(func(p *corev1.Pod) {
			delete(p.Annotations, v1alpha1.UpstreamPortAnnotation)
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9090})
		}), wantWarning: `annotation offerfeed.dev/upstream-port is missing and the app's port is ambiguous: the containers declare 2 TCP ports, 8080 (http of app), 9090 (metrics of app); set annotation offerfeed.dev/upstream-port to the name or number of the app's port, for example offerfeed.dev/upstream-port: "http"`},
		{desc: "no annotation, ports in two containers: ambiguous", pod: appPod(func(p *corev1.Pod) {
			delete(p.Annotations, v1alpha1.UpstreamPortAnnotation)
			p.Spec.Containers[0].Ports[0].Name = ""
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "api", Image: "api:1",
				Ports: []corev1.ContainerPort{{Name: "api", ContainerPort: 7000}}})
		}), wantWarning: `2 TCP ports, 8080 (of app), 7000 (api of api); set annotation offerfeed.dev/upstream-port to the name or number of the app's port, for example offerfeed.dev/upstream-port: "8080"`},
		{desc: "no annotation, no port", pod: appPod(func(p *corev1.Pod) {
			delete(p.Annotations, v1alpha1.UpstreamPortAnnotation)
			p.Spec.Containers[0].Ports = nil
		}), wantWarning: `annotation offerfeed.dev/upstream-port is missing and no container of the pod declares a TCP port to infer it from; set annotation offerfeed.dev/upstream-port to the name or number of the app's port, for example offerfeed.dev/upstream-port: "8080"`},
		{desc: "no annotation, the one port is the gateway's", pod: appPod(func(p *corev1.Pod) {
			delete(p.Annotations, v1alpha1.UpstreamPortAnnotation)
			p.Spec.Containers[0].Ports[0].ContainerPort = 8480
		}), wantWarning: "the app's port 8480 is one of the gateway's ports"},
		{desc: "unknown port name", pod: appPod(annotate(v1alpha1.UpstreamPortAnnotation, "grpc")),
			wantWarning: `names port "grpc", which no container of the pod declares`},
		{desc: "UDP port name", pod: appPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolUDP
		}), wantWarning: `names port "http"`},
		{desc: "port number out of range", pod: appPod(annotate(v1alpha1.UpstreamPortAnnotation, "70000")),
			wantWarning: "not a port in 1-65535"},
		{desc: "upstream is the gateway's port", pod: appPod(annotate(v1alpha1.UpstreamPortAnnotation, "8480")),
			wantWarning: "the app's port 8480 is one of the gateway's ports"},
		{desc: "app container uses the admin port", pod: appPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 8481})
		}), wantWarning: "container app uses port 8481"},
		{desc: "app container has a port named offerfeed", pod: appPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "offerfeed", ContainerPort: 9000})
		}), wantWarning: "already has a port named offerfeed"},
		{desc: "container name clash", pod: appPod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: ContainerName, Image: "x"})
		}), wantWarning: "already has a container named offerfeed-gateway"},
		{desc: "sidecar without the annotation", pod: appPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: ContainerName, Image: "x"})
		}), wantWarning: "already has a container named offerfeed-gateway"},
		{desc: "volume name clash", pod: appPod(func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: ConfigVolumeName})
		}), wantWarning: "already has a volume named offerfeed-config"},
		{desc: "host network", pod: appPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
			wantWarning: "uses the host network"},
		{desc: "windows pod", pod: appPod(func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }),
			wantWarning: "runs on Linux only"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Image == "" {
				cfg = testConfig
			}
			pod := tc.pod.DeepCopy()
			changed, warning := Inject(pod, cfg)
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if tc.wantWarning == "" && warning != "" {
				t.Errorf("unexpected warning %q", warning)
			}
			if tc.wantWarning != "" && !strings.Contains(warning, tc.wantWarning) {
				t.Errorf("warning = %q, want it to contain %q", warning, tc.wantWarning)
			}
			if warning != "" && !strings.HasPrefix(warning, "offerfeed: gateway sidecar not injected: ") {
				t.Errorf("warning %q does not say what was skipped", warning)
			}
			if !changed {
				if diff := cmp.Diff(tc.pod, pod); diff != "" {
					t.Errorf("pod changed though Inject said it did not (-before +after):\n%s", diff)
				}
				return
			}
			if !Injected(pod) {
				t.Fatalf("Injected(pod) = false after injection")
			}
			if pod.Annotations[v1alpha1.InjectedAnnotation] != InjectedValue {
				t.Errorf("annotation %s = %q", v1alpha1.InjectedAnnotation, pod.Annotations[v1alpha1.InjectedAnnotation])
			}
			sc := pod.Spec.InitContainers[len(pod.Spec.InitContainers)-1]
			if got := flagValue(sc.Args, "--upstream"); got != tc.wantUpstream {
				t.Errorf("--upstream = %q, want %q", got, tc.wantUpstream)
			}
			// Idempotent: a second pass changes nothing and warns about nothing.
			again := pod.DeepCopy()
			if changed, warning := Inject(again, cfg); changed || warning != "" {
				t.Errorf("second Inject = (%v, %q), want (false, \"\")", changed, warning)
			}
			if diff := cmp.Diff(pod, again); diff != "" {
				t.Errorf("second Inject changed the pod:\n%s", diff)
			}
		})
	}
}

func flagValue(args []string, flag string) string {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

// TestInjectSidecar checks the sidecar in full: command line, ports, probes, volumes,
// resources and the restricted security context.
func TestInjectSidecar(t *testing.T) {
	pod := appPod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "offers:1"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
	})
	cfg := testConfig
	cfg.ImagePullPolicy = corev1.PullIfNotPresent
	if changed, warning := Inject(pod, cfg); !changed || warning != "" {
		t.Fatalf("Inject = (%v, %q)", changed, warning)
	}
	if n := len(pod.Spec.InitContainers); n != 2 || pod.Spec.InitContainers[0].Name != "migrate" {
		t.Fatalf("init containers = %v; want migrate, then the sidecar appended", pod.Spec.InitContainers)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Errorf("containers = %d, want the app's only", len(pod.Spec.Containers))
	}
	sc := pod.Spec.InitContainers[1]
	if sc.Name != ContainerName || sc.Image != cfg.Image || sc.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("sidecar %s image %s policy %s", sc.Name, sc.Image, sc.ImagePullPolicy)
	}
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("restartPolicy = %v, want Always (native sidecar)", sc.RestartPolicy)
	}
	wantArgs := []string{"gateway", "--config", "/etc/offerfeed/config.json", "--upstream", "http://127.0.0.1:8080",
		"--listen", ":8480", "--admin-listen", ":8481", "--pod-labels-file", "/etc/podinfo/labels",
		"--kube-token-file", TokenDir + "/token", "--kube-ca-file", TokenDir + "/ca.crt"}
	if diff := cmp.Diff(wantArgs, sc.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	wantPorts := []corev1.ContainerPort{
		{Name: "offerfeed", ContainerPort: 8480, Protocol: corev1.ProtocolTCP},
		{Name: "offerfeed-admin", ContainerPort: 8481, Protocol: corev1.ProtocolTCP},
	}
	if diff := cmp.Diff(wantPorts, sc.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": sc.ReadinessProbe, "liveness": sc.LivenessProbe, "startup": sc.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.StrVal != AdminPortName {
			t.Errorf("%s probe %+v: want HTTP on port %s", name, p, AdminPortName)
		}
	}
	if sc.ReadinessProbe.HTTPGet.Path != "/readyz" || sc.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probe paths readiness %s liveness %s", sc.ReadinessProbe.HTTPGet.Path, sc.LivenessProbe.HTTPGet.Path)
	}
	if got := sc.Resources.Requests.Cpu(); got.Cmp(resource.MustParse("50m")) != 0 {
		t.Errorf("cpu request %s", got)
	}
	if got := sc.Resources.Requests.Memory(); got.IsZero() {
		t.Errorf("no memory request")
	}
	sec := sc.SecurityContext
	if sec == nil || !ptr.Deref(sec.RunAsNonRoot, false) || !ptr.Deref(sec.ReadOnlyRootFilesystem, false) ||
		ptr.Deref(sec.AllowPrivilegeEscalation, true) || sec.Capabilities == nil ||
		!slices.Equal(sec.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sec.Capabilities.Add) != 0 ||
		sec.SeccompProfile == nil || sec.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("security context not restricted: %+v", sec)
	}
	mounts := map[string]string{}
	for _, m := range sc.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.Name)
		}
		mounts[m.Name] = m.MountPath
	}
	if mounts[ConfigVolumeName] != "/etc/offerfeed" || mounts[PodInfoVolumeName] != "/etc/podinfo" || mounts[TokenVolumeName] != TokenDir {
		t.Errorf("mounts = %v", mounts)
	}
	if len(pod.Spec.Volumes) != 4 || pod.Spec.Volumes[0].Name != "data" {
		t.Fatalf("volumes = %v; want data, then the gateway's three", pod.Spec.Volumes)
	}
	if tok := pod.Spec.Volumes[3].Projected; tok == nil || len(tok.Sources) != 3 || tok.Sources[0].ServiceAccountToken == nil ||
		tok.Sources[0].ServiceAccountToken.Audience != "" || tok.Sources[1].ConfigMap == nil || tok.Sources[1].ConfigMap.Name != "kube-root-ca.crt" {
		t.Errorf("token volume %+v: want a token for the API server's audience, then its CA", pod.Spec.Volumes[3])
	}
	if pod.Spec.ServiceAccountName != "default" {
		t.Errorf("serviceAccountName %q: a token volume needs one named", pod.Spec.ServiceAccountName)
	}
	cm := pod.Spec.Volumes[1].ConfigMap
	if cm == nil || cm.Name != v1alpha1.GatewayConfigMapName || !ptr.Deref(cm.Optional, false) {
		t.Errorf("config volume %+v: want optional ConfigMap %s", pod.Spec.Volumes[1], v1alpha1.GatewayConfigMapName)
	}
	dw := pod.Spec.Volumes[2].DownwardAPI
	if dw == nil || len(dw.Items) != 1 || dw.Items[0].Path != "labels" || dw.Items[0].FieldRef.FieldPath != "metadata.labels" {
		t.Errorf("pod info volume %+v", pod.Spec.Volumes[2])
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		wantErr string
	}{
		{cfg: Config{Image: "x"}},
		{cfg: Config{}, wantErr: "image is empty"},
		{cfg: Config{Image: "x", Port: 9000, AdminPort: 9000}, wantErr: "both 9000"},
		{cfg: Config{Image: "x", Port: 70000}, wantErr: "out of range"},
		{cfg: Config{Image: "x", AdminPort: -1}, wantErr: "out of range"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.cfg, err, tc.wantErr)
		}
	}
}

// TestInjectRecordsServiceAccount: an injected pod names its ServiceAccount in an annotation
// (the operator binds the gateway's ClusterRole to it), whatever value its creator wrote there.
func TestInjectRecordsServiceAccount(t *testing.T) {
	for _, tc := range []struct {
		desc string
		pod  *corev1.Pod
		want string
	}{
		{"named", appPod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "offers" }), "offers"},
		{"deprecated field", appPod(func(p *corev1.Pod) { p.Spec.DeprecatedServiceAccount = "legacy" }), "legacy"},
		{"unset is default", appPod(), "default"},
		{"a forged annotation is overwritten", appPod(annotate(v1alpha1.ServiceAccountAnnotation, "admin"),
			func(p *corev1.Pod) { p.Spec.ServiceAccountName = "offers" }), "offers"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if changed, warning := Inject(tc.pod, Config{Image: "offerfeed:test"}); !changed || warning != "" {
				t.Fatalf("Inject = (%v, %q)", changed, warning)
			}
			if got := tc.pod.Annotations[v1alpha1.ServiceAccountAnnotation]; got != tc.want {
				t.Errorf("annotation %s = %q, want %q", v1alpha1.ServiceAccountAnnotation, got, tc.want)
			}
		})
	}
}
