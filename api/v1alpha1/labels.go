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

	// ServiceAccountAnnotation is set by the webhook on the pods it injects: the name of the
	// pod's ServiceAccount, which the metadata-only pod cache of the operator does not hold
	// otherwise. The operator binds the gateway's ClusterRole to these ServiceAccounts.
	ServiceAccountAnnotation = "offerfeed.dev/service-account"
	// EnforcedAnnotationPrefix starts the annotations a gateway sets on its own pod after it
	// applied a config; a ValidatingAdmissionPolicy lets the pod's own token change these and
	// nothing else (config/gatewayaccess).
	EnforcedAnnotationPrefix = "offerfeed.dev/enforced-"
	// EnforcedPolicyHashAnnotation is the hash of the policy the pod's gateway enforces (the
	// policy's status.configHash), or "none" when no policy applies to the pod.
	EnforcedPolicyHashAnnotation = EnforcedAnnotationPrefix + "policy-hash"
	// EnforcedGenerationAnnotation is the generation of the config the pod's gateway applied,
	// in decimal.
	EnforcedGenerationAnnotation = EnforcedAnnotationPrefix + "generation"
	// EnforcedPolicyNone is the value of EnforcedPolicyHashAnnotation when no policy applies.
	EnforcedPolicyNone = "none"
)

// Access of the gateways to the API server.
const (
	// GatewayClusterRoleName is the ClusterRole that lets a gateway read its namespace's
	// gateway config and its own pod, and report on its own pod.
	GatewayClusterRoleName = "offerfeed-gateway"
	// GatewayRoleBindingName is the RoleBinding, one per namespace with injected pods, that
	// the operator creates to bind GatewayClusterRoleName to their ServiceAccounts.
	GatewayRoleBindingName = "offerfeed-gateway"
)
