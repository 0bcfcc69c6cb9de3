package v1alpha1

// Names of objects, keys, labels and annotations shared by the operator, the gateway, the
// injection webhook and `offerfeed render`. Each is defined here once.
const (
	// GatewayConfigMapName is the ConfigMap, one per namespace, that holds the gateway config.
	GatewayConfigMapName = "offerfeed-gateway"
	// GatewayConfigKey is the key of the gateway config in that ConfigMap.
	GatewayConfigKey = "config.json"
)

// Labels.
const (
	// ManagedByLabel marks the objects offerfeed writes; its value is ManagedByValue.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on objects offerfeed writes.
	ManagedByValue = "offerfeed"

	// InjectionLabel on a namespace, set to "enabled", turns on sidecar injection there.
	InjectionLabel = "offerfeed.dev/injection"
)

// Annotations.
const (
	// InjectAnnotation on a pod, set to "false", opts the pod out of injection.
	InjectAnnotation = "offerfeed.dev/inject"
	// UpstreamPortAnnotation on a pod names (or numbers) the app's container port that the
	// gateway forwards to.
	UpstreamPortAnnotation = "offerfeed.dev/upstream-port"
	// InjectedAnnotation is set by the webhook on the pods it injected the gateway into.
	InjectedAnnotation = "offerfeed.dev/injected"
	// ConfigHashAnnotation on the gateway ConfigMap holds the hash ("sha256:" and hex) of its
	// config.json, as gatewayconfig.Hash computes it.
	ConfigHashAnnotation = "offerfeed.dev/config-hash"
	// ConfigGenerationAnnotation on the gateway ConfigMap repeats the generation of its
	// config.json, so that a hand edit of the data that drops or lowers it does not lower the
	// next generation the operator writes.
	ConfigGenerationAnnotation = "offerfeed.dev/config-generation"

	// EnforcedPolicyHashAnnotation is set by the gateway sidecar on its own pod: the hash of
	// the policy it enforces for that pod (gatewayconfig.Policy.Hash, as the policy's
	// status.configHash), or "none" when no policy of its config applies to the pod.
	EnforcedPolicyHashAnnotation = "offerfeed.dev/enforced-policy-hash"
	// EnforcedGenerationAnnotation is set by the gateway sidecar on its own pod: the
	// generation of the gateway config it enforces, in decimal.
	EnforcedGenerationAnnotation = "offerfeed.dev/enforced-generation"
	// EnforcedPolicyNone is the value of EnforcedPolicyHashAnnotation when no policy applies.
	EnforcedPolicyNone = "none"
)
