package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where the manager's webhook server serves the pod injection webhook.
const Path = "/mutate-v1-pod"

// Event reasons of the webhook.
const (
	// ReasonInjectionSkipped (Warning): a pod that wants the gateway (its namespace has
	// offerfeed.dev/injection=enabled) was admitted without it; the note says why. Recorded
	// regarding the pod's controller (usually its ReplicaSet), else the pod by name.
	ReasonInjectionSkipped = "InjectionSkipped"
	// actionInject is the action of the webhook's events.
	actionInject = "Inject"
)

// The webhook only mutates pods on CREATE. failurePolicy=Ignore with a 5s timeout: an operator
// outage never blocks pods, at the price that pods created meanwhile run without the gateway
// (the policy's Programmed condition counts them). sideEffects=NoneOnDryRun: its only side
// effect, an event about a skipped pod, is not recorded for dry-run requests. The
// namespaceSelector (offerfeed.dev/injection=enabled) is added by a kustomize patch in
// config/webhook, since the marker cannot express it.
//
// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=ignore,sideEffects=NoneOnDryRun,groups="",resources=pods,verbs=create,versions=v1,name=pods.offerfeed.dev,admissionReviewVersions=v1,timeoutSeconds=5,reinvocationPolicy=Never,matchPolicy=Equivalent
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// PodInjector is the admission handler of the pod injection webhook: it decodes the pod, calls
// Inject and answers with the patch, or with a warning (and an event) for a pod it skipped. It
// never denies a pod.
type PodInjector struct {
	// Config is what Inject adds.
	Config Config
	// Decoder decodes pods from admission requests.
	Decoder admission.Decoder
	// Recorder records an event for each skipped pod; nil records none.
	Recorder events.EventRecorder
	// Policies reads the OfferFeedPolicies of the pod's namespace, to mount the Secrets of
	// their shared state into the gateway (redis.go); nil mounts none.
	Policies client.Reader

	// known is the last list of policies read per namespace, for an API server outage
	// (redisSecretsOf). A deleted namespace's entry stays: a few policies each.
	known sync.Map
}

// SetupWithManager registers the pod injection webhook at Path on the manager's webhook server.
// recorderName is the reporting controller of its events.
func SetupWithManager(mgr manager.Manager, cfg Config, recorderName string) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("pod injection webhook: %w", err)
	}
	h := &PodInjector{
		Config:   cfg,
		Decoder:  admission.NewDecoder(mgr.GetScheme()),
		Recorder: mgr.GetEventRecorder(recorderName),
		// Read from the API server, not the cache: a policy applied with its Deployment must
		// be seen by the pods it creates.
		Policies: mgr.GetAPIReader(),
	}
	mgr.GetWebhookServer().Register(Path, &admission.Webhook{Handler: h})
	return nil
}

// Handle answers one admission request.
func (h *PodInjector) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	logger := log.FromContext(ctx)
	defer func() {
		// A panic must not deny the pod: admit it unchanged, as for any other skip.
		if r := recover(); r != nil {
			logger.Error(fmt.Errorf("panic: %v", r), "pod injection failed")
			resp = admission.Allowed("").WithWarnings(skipped("internal error in the webhook"))
		}
	}()
	if req.Operation != admissionv1.Create || req.SubResource != "" ||
		req.Kind.Group != "" || req.Kind.Kind != "Pod" {
		return admission.Allowed("")
	}
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		logger.Error(err, "decoding pod")
		return admission.Allowed("").WithWarnings(skipped("the pod could not be decoded: %v", err))
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	original, err := json.Marshal(pod)
	if err != nil {
		return admission.Allowed("").WithWarnings(skipped("%v", err))
	}
	changed, warning := Inject(pod, h.Config)
	if warning != "" {
		logger.Info("pod not injected", "namespace", pod.Namespace, "name", podName(pod), "reason", warning)
		if req.DryRun == nil || !*req.DryRun {
			h.recordSkip(pod, warning)
		}
		return admission.Allowed("").WithWarnings(warning)
	}
	if !changed {
		return admission.Allowed("")
	}
	var warnings []string
	if h.Policies != nil {
		// The gateway is injected even when its Secrets cannot be mounted: it keeps its state
		// locally and says why in /readyz.
		names, err := redisSecretsOf(ctx, h.Policies, &h.known, pod)
		switch {
		case err != nil:
			logger.Error(err, "shared-state credentials not mounted", "namespace", pod.Namespace, "name", podName(pod))
			warnings = append(warnings, "offerfeed: the gateway's shared-state credentials are not mounted (recreate the pod to retry): "+truncate(err.Error(), 200))
		case !MountRedisSecrets(pod, names):
			warnings = append(warnings, "offerfeed: the gateway's shared-state credentials are not mounted: the pod already has a volume named "+redisVolumePrefix+"N")
		}
	}
	injected, err := json.Marshal(pod)
	if err != nil {
		return admission.Allowed("").WithWarnings(skipped("%v", err))
	}
	// Both documents come from the typed pod, so the patch holds only Inject's changes and
	// never drops fields of the request that this binary's Pod type does not know.
	logger.V(1).Info("pod injected", "namespace", pod.Namespace, "name", podName(pod))
	return admission.PatchResponseFromRaw(original, injected).WithWarnings(warnings...)
}

// recordSkip records a Warning event about a skipped pod. The pod does not exist yet, so the
// event is regarding its controller (a ReplicaSet, StatefulSet, Job…) when it has one, which is
// where `kubectl describe` shows it next to the controller's own events about creating pods;
// else regarding the pod by its name (listed by `kubectl events -n NS --for pod/NAME`).
func (h *PodInjector) recordSkip(pod *corev1.Pod, warning string) {
	if h.Recorder == nil {
		return
	}
	var ref *corev1.ObjectReference
	if owner := metav1.GetControllerOfNoCopy(pod); owner != nil {
		ref = &corev1.ObjectReference{
			APIVersion: owner.APIVersion, Kind: owner.Kind, Name: owner.Name, UID: owner.UID,
			Namespace: pod.Namespace,
		}
	} else if name := podName(pod); name != "" {
		ref = &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Name: name, Namespace: pod.Namespace}
	} else {
		return
	}
	h.Recorder.Eventf(ref, nil, corev1.EventTypeWarning, ReasonInjectionSkipped, actionInject, "%s", truncate(warning, 1000))
}

// podName is the pod's name, else its generateName without the trailing dash.
func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return strings.TrimRight(pod.GenerateName, "-.")
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
