// Package webhook is offerfeed's pod injection webhook: it adds the gateway sidecar to the pods
// of namespaces labelled offerfeed.dev/injection=enabled (docs/design.md#injection).
//
// The mutation is the pure function Inject (a pod and a Config in, the changed pod and a
// warning out, no client); PodInjector is the thin admission handler around it that the
// manager's webhook server serves at Path.
package webhook

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

// Names of what Inject adds to a pod.
const (
	// ContainerName is the name of the gateway sidecar (an init container with restartPolicy
	// Always).
	ContainerName = "offerfeed-gateway"
	// PortName is the gateway's proxy port; Services target it.
	PortName = "offerfeed"
	// AdminPortName is the gateway's admin port: /metrics, /healthz and /readyz.
	AdminPortName = "offerfeed-admin"
	// ConfigVolumeName is the volume of ConfigMap offerfeed-gateway (optional: the pod starts
	// before the namespace has a policy, and the gateway proxies everything until it has one).
	ConfigVolumeName = "offerfeed-config"
	// PodInfoVolumeName is the downward API volume with the pod's labels.
	PodInfoVolumeName = "offerfeed-podinfo"
	// ConfigDir is where the config volume is mounted; the config is ConfigDir/config.json.
	ConfigDir = "/etc/offerfeed"
	// PodInfoDir is where the downward API volume is mounted; the labels are PodInfoDir/labels.
	PodInfoDir = "/etc/podinfo"
	// TokenVolumeName is the projected volume with the gateway's own API credentials: a
	// service-account token bound to the pod, the cluster's CA and the namespace. Only the
	// gateway container mounts it, at TokenDir; the app gains nothing, and pods with
	// automountServiceAccountToken: false get it too.
	TokenVolumeName = "offerfeed-token"
	// TokenDir is where the token volume is mounted: token, ca.crt and namespace.
	TokenDir = "/var/run/secrets/offerfeed.dev/serviceaccount"
	// TokenExpirationSeconds is the token's requested lifetime; the kubelet rotates it at 80%
	// and the gateway re-reads the file.
	TokenExpirationSeconds int64 = 3600
	// InjectedValue is the value of v1alpha1.InjectedAnnotation on injected pods.
	InjectedValue = "true"
)

// Defaults of Config.
const (
	DefaultPort      int32 = 8480
	DefaultAdminPort int32 = 8481
	// nonRootUID is the uid of the distroless "nonroot" user the image runs as.
	nonRootUID int64 = 65532
)

// Config is what the webhook injects: the gateway image and its ports and resources.
type Config struct {
	// Image is the offerfeed image (the manager's own); required.
	Image string
	// ImagePullPolicy of the sidecar; empty leaves the API server's default.
	ImagePullPolicy corev1.PullPolicy
	// Port is the gateway's proxy port, named PortName (default DefaultPort).
	Port int32
	// AdminPort is the gateway's admin port, named AdminPortName (default DefaultAdminPort).
	AdminPort int32
	// Resources of the sidecar; nil requests 50m CPU and 64Mi memory with a 256Mi memory limit.
	Resources *corev1.ResourceRequirements
}

func (c Config) withDefaults() Config {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.AdminPort == 0 {
		c.AdminPort = DefaultAdminPort
	}
	if c.Resources == nil {
		c.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("256Mi"),
			},
		}
	}
	return c
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Image == "" {
		return fmt.Errorf("gateway image is empty")
	}
	for _, p := range []int32{c.Port, c.AdminPort} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("gateway port %d out of range 1-65535", p)
		}
	}
	if c.Port == c.AdminPort {
		return fmt.Errorf("gateway port and admin port are both %d", c.Port)
	}
	return nil
}

// Inject adds the gateway sidecar to pod, unless the pod opted out, is already injected or
// cannot be injected. It returns whether it changed the pod and, when it skipped a pod that
// wants injection, a warning for the person who created it. A pod already injected (it has
// v1alpha1.InjectedAnnotation and the container ContainerName) and a pod with
// offerfeed.dev/inject: "false" come back unchanged without a warning. On a warning the pod
// is never changed.
func Inject(pod *corev1.Pod, cfg Config) (changed bool, warning string) {
	cfg = cfg.withDefaults()
	if Injected(pod) {
		return false, ""
	}
	if v, ok := pod.Annotations[v1alpha1.InjectAnnotation]; ok {
		inject, err := strconv.ParseBool(v)
		if err != nil {
			return false, skipped("annotation %s is %q; want \"true\" or \"false\"", v1alpha1.InjectAnnotation, truncate(v, 64))
		}
		if !inject {
			return false, ""
		}
	}
	if pod.Spec.OS != nil && pod.Spec.OS.Name != corev1.Linux {
		return false, skipped("the gateway runs on Linux only; spec.os.name is %q", pod.Spec.OS.Name)
	}
	if pod.Spec.HostNetwork {
		return false, skipped("the pod uses the host network, where the gateway's ports %d and %d may be taken", cfg.Port, cfg.AdminPort)
	}
	upstream, why := upstreamPort(pod, cfg)
	if why != "" {
		return false, skipped("%s", why)
	}
	if why := clash(pod, cfg); why != "" {
		return false, skipped("%s", why)
	}

	pod.Spec.InitContainers = append(pod.Spec.InitContainers, sidecar(cfg, upstream))
	pod.Spec.Volumes = append(pod.Spec.Volumes, volumes()...)
	if pod.Spec.ServiceAccountName == "" {
		// A token volume needs the pod's ServiceAccount named; the API server's ServiceAccount
		// admission plugin, when enabled, has already set this very default (or the one of
		// the deprecated field).
		pod.Spec.ServiceAccountName = cmp.Or(pod.Spec.DeprecatedServiceAccount, "default")
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[v1alpha1.InjectedAnnotation] = InjectedValue
	// The operator binds the gateway's ClusterRole to this ServiceAccount; its pod cache
	// holds metadata only. Whoever can create the pod can name any ServiceAccount of the
	// namespace anyway, so the value grants nothing a pod's creator does not have.
	pod.Annotations[v1alpha1.ServiceAccountAnnotation] = pod.Spec.ServiceAccountName
	return true, ""
}

// Injected reports whether pod has the gateway sidecar that Inject adds: the annotation and
// the container. (The annotation alone, copied from another pod, does not count.)
func Injected(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[v1alpha1.InjectedAnnotation]; !ok {
		return false
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == ContainerName {
			return true
		}
	}
	return false
}

// skipped formats the warning for a pod that wants the gateway but does not get it.
func skipped(format string, args ...any) string {
	return "offerfeed: gateway sidecar not injected: " + fmt.Sprintf(format, args...)
}

// upstreamPort resolves annotation offerfeed.dev/upstream-port to a port number: a number, or
// the name of a TCP port of one of the pod's containers. Without the annotation the port is
// inferred when the pod's containers (spec.containers: the app; init containers and native
// sidecars are not) declare exactly one TCP port number.
func upstreamPort(pod *corev1.Pod, cfg Config) (int32, string) {
	v, ok := pod.Annotations[v1alpha1.UpstreamPortAnnotation]
	v = strings.TrimSpace(v)
	var port int32
	if !ok || v == "" {
		var why string
		if port, why = inferPort(pod); why != "" {
			return 0, why
		}
	} else if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		if n < 1 || n > 65535 {
			return 0, fmt.Sprintf("annotation %s is %s, not a port in 1-65535", v1alpha1.UpstreamPortAnnotation, v)
		}
		port = int32(n)
	} else {
		port = namedPort(pod, v)
		if port == 0 {
			return 0, fmt.Sprintf("annotation %s names port %q, which no container of the pod declares (as TCP)", v1alpha1.UpstreamPortAnnotation, truncate(v, 64))
		}
	}
	if port == cfg.Port || port == cfg.AdminPort {
		return 0, fmt.Sprintf("the app's port %d is one of the gateway's ports (%d, %d)", port, cfg.Port, cfg.AdminPort)
	}
	return port, ""
}

// inferPort returns the app's port of a pod without annotation offerfeed.dev/upstream-port:
// the one TCP port number that its containers declare. Otherwise it explains, naming the
// annotation and a value that would fix it.
func inferPort(pod *corev1.Pod) (int32, string) {
	type decl struct {
		container, name string
		port            int32
	}
	var ports []decl
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) &&
				!slices.ContainsFunc(ports, func(d decl) bool { return d.port == p.ContainerPort }) {
				ports = append(ports, decl{c.Name, p.Name, p.ContainerPort})
			}
		}
	}
	if len(ports) == 1 {
		return ports[0].port, ""
	}
	const fix = "set annotation %s to the name or number of the app's port, for example %s: %q"
	if len(ports) == 0 {
		return 0, fmt.Sprintf("annotation %s is missing and no container of the pod declares a TCP port to infer it from; "+fix,
			v1alpha1.UpstreamPortAnnotation, v1alpha1.UpstreamPortAnnotation, v1alpha1.UpstreamPortAnnotation, "8080")
	}
	list := make([]string, 0, min(len(ports), 4))
	for i, d := range ports {
		if i == 4 {
			list = append(list, "…")
			break
		}
		if d.name != "" {
			list = append(list, fmt.Sprintf("%d (%s of %s)", d.port, d.name, d.container))
		} else {
			list = append(list, fmt.Sprintf("%d (of %s)", d.port, d.container))
		}
	}
	example := cmp.Or(ports[0].name, strconv.Itoa(int(ports[0].port)))
	return 0, fmt.Sprintf("annotation %s is missing and the app's port is ambiguous: the containers declare %d TCP ports, %s; "+fix,
		v1alpha1.UpstreamPortAnnotation, len(ports), strings.Join(list, ", "), v1alpha1.UpstreamPortAnnotation, v1alpha1.UpstreamPortAnnotation, example)
}

// namedPort returns the number of the TCP port called name, searching the containers first,
// then the init containers; 0 when none declares it.
func namedPort(pod *corev1.Pod, name string) int32 {
	for _, c := range appContainers(pod) {
		for _, p := range c.Ports {
			if p.Name == name && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// appContainers returns the pod's containers and init containers.
func appContainers(pod *corev1.Pod) []corev1.Container {
	all := make([]corev1.Container, 0, len(pod.Spec.Containers)+len(pod.Spec.InitContainers))
	all = append(all, pod.Spec.Containers...)
	return append(all, pod.Spec.InitContainers...)
}

// clash reports a name or port of the pod that the sidecar would take too.
func clash(pod *corev1.Pod, cfg Config) string {
	for _, c := range appContainers(pod) {
		if c.Name == ContainerName {
			return fmt.Sprintf("the pod already has a container named %s", ContainerName)
		}
		for _, p := range c.Ports {
			if p.Name == PortName || p.Name == AdminPortName {
				return fmt.Sprintf("container %s already has a port named %s", c.Name, p.Name)
			}
			if p.ContainerPort == cfg.Port || p.ContainerPort == cfg.AdminPort {
				return fmt.Sprintf("container %s uses port %d, which the gateway needs (ports %d, %d)", c.Name, p.ContainerPort, cfg.Port, cfg.AdminPort)
			}
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == ConfigVolumeName || v.Name == PodInfoVolumeName || v.Name == TokenVolumeName {
			return fmt.Sprintf("the pod already has a volume named %s", v.Name)
		}
	}
	return ""
}

// sidecar returns the gateway container: a native sidecar that forwards to the app on
// 127.0.0.1:upstream, restricted-compliant (Pod Security Standard "restricted").
func sidecar(cfg Config, upstream int32) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(AdminPortName), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   1,
			SuccessThreshold: 1,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:            ContainerName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		RestartPolicy:   &always,
		Args: []string{
			"gateway",
			"--config", ConfigDir + "/" + v1alpha1.GatewayConfigKey,
			"--upstream", fmt.Sprintf("http://127.0.0.1:%d", upstream),
			"--listen", fmt.Sprintf(":%d", cfg.Port),
			"--admin-listen", fmt.Sprintf(":%d", cfg.AdminPort),
			"--pod-labels-file", PodInfoDir + "/labels",
			"--kube-token-file", TokenDir + "/token",
			"--kube-ca-file", TokenDir + "/ca.crt",
		},
		Env: []corev1.EnvVar{
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
			}},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
			}},
			{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{
				ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: ContainerName, Resource: "limits.memory"},
			}},
		},
		Ports: []corev1.ContainerPort{
			{Name: PortName, ContainerPort: cfg.Port, Protocol: corev1.ProtocolTCP},
			{Name: AdminPortName, ContainerPort: cfg.AdminPort, Protocol: corev1.ProtocolTCP},
		},
		// The app's containers start once the gateway listens.
		StartupProbe:   probe("/healthz", 1, 30),
		ReadinessProbe: probe("/readyz", 5, 1),
		LivenessProbe:  probe("/healthz", 10, 3),
		Resources:      *cfg.Resources.DeepCopy(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: ConfigVolumeName, MountPath: ConfigDir, ReadOnly: true},
			{Name: PodInfoVolumeName, MountPath: PodInfoDir, ReadOnly: true},
			{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(nonRootUID),
			RunAsGroup:               ptr.To(nonRootUID),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// volumes returns the gateway's volumes: its config (optional), the pod's labels and its API
// credentials (a token bound to the pod, for the API server's default audience).
func volumes() []corev1.Volume {
	return []corev1.Volume{
		{Name: ConfigVolumeName, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: v1alpha1.GatewayConfigMapName},
			Optional:             ptr.To(true),
		}}},
		{Name: PodInfoVolumeName, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     "labels",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"},
			}},
		}}},
		{Name: TokenVolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To(TokenExpirationSeconds)}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
					Path:     "namespace",
					FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
				}}}},
			},
		}}},
	}
}
