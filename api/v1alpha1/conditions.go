package v1alpha1

// Condition types of an OfferFeedPolicy.
const (
	// ConditionAccepted is True when the policy is valid and no older policy in its namespace
	// governs the same pods.
	ConditionAccepted = "Accepted"
	// ConditionProgrammed is True when the policy is in the gateway config (ConfigMap
	// offerfeed-gateway) of its namespace.
	ConditionProgrammed = "Programmed"
	// ConditionReady summarises the others for people and GitOps tools (kstatus, Argo CD): it
	// is True when every condition it summarises (Accepted and Programmed today) is True at
	// the policy's current generation. When it is not, its reason and message are those of
	// the first condition that is not True. Its observedGeneration is the generation it
	// summarises.
	ConditionReady = "Ready"
	// ConditionStalled is present, and True, only while the policy cannot become Ready until
	// someone changes something (its reason says what: Conflicted, Invalid,
	// ConfigMapNotManaged). kstatus reports such a policy as Failed rather than InProgress,
	// so a GitOps tool stops waiting for it. It is removed once the cause is gone.
	ConditionStalled = "Stalled"
)

// Reasons of the Ready condition. When Ready is False it carries the reason of the first
// condition it summarises that is not True (for example Conflicted or ConfigMapNotManaged).
const (
	// ReasonReady (Ready=True): the policy is Accepted and Programmed at its current generation.
	ReasonReady = "Ready"
	// ReasonReconciling (Ready=Unknown): a condition that Ready summarises has not been
	// computed for the current generation yet.
	ReasonReconciling = "Reconciling"
)

// Reasons of the Accepted condition.
const (
	// ReasonAccepted (Accepted=True): the policy is valid and wins every conflict it is in.
	ReasonAccepted = "Accepted"
	// ReasonConflicted (Accepted=False): an older policy (or, at the same age, one with a
	// smaller name) has an equal selector or selects a pod this policy selects too. The message
	// names it. The policy takes over by itself when that policy goes away.
	ReasonConflicted = "Conflicted"
	// ReasonInvalid (Accepted=False): the policy passed the schema but cannot be enforced,
	// for example a label selector that does not parse. The message says why.
	ReasonInvalid = "Invalid"
)

// Reasons of the Programmed condition.
const (
	// ReasonProgrammed (Programmed=True): the policy is in the gateway config of its namespace.
	ReasonProgrammed = "Programmed"
	// ReasonNotAccepted (Programmed=False): the policy is not Accepted, so it is not in the
	// gateway config.
	ReasonNotAccepted = "NotAccepted"
	// ReasonConfigMapNotManaged (Programmed=False): a ConfigMap named offerfeed-gateway exists
	// in the namespace but was not written by offerfeed; the operator leaves it alone.
	ReasonConfigMapNotManaged = "ConfigMapNotManaged"
)

// Names shared by the operator, the gateway and the injection webhook.
const (
	// GatewayConfigMapName is the ConfigMap, one per namespace, that holds the gateway config.
	GatewayConfigMapName = "offerfeed-gateway"
	// GatewayConfigKey is the key of the gateway config in that ConfigMap.
	GatewayConfigKey = "config.json"

	// ManagedByLabel marks the objects offerfeed writes; its value is ManagedByValue.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on objects offerfeed writes.
	ManagedByValue = "offerfeed"

	// InjectionLabel on a namespace, set to "enabled", turns on sidecar injection there.
	InjectionLabel = "offerfeed.dev/injection"
	// InjectAnnotation on a pod, set to "false", opts the pod out of injection.
	InjectAnnotation = "offerfeed.dev/inject"
	// UpstreamPortAnnotation on a pod names (or numbers) the app's container port that the
	// gateway forwards to.
	UpstreamPortAnnotation = "offerfeed.dev/upstream-port"
	// InjectedAnnotation is set by the webhook on the pods it injected the gateway into.
	InjectedAnnotation = "offerfeed.dev/injected"
)
