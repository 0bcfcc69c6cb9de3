package v1alpha1

// Condition types of an OfferFeedPolicy.
const (
	// ConditionAccepted is True when the policy is valid and no older policy in its namespace
	// governs the same pods.
	ConditionAccepted = "Accepted"
	// ConditionProgrammed is True when the policy is in the gateway config (ConfigMap
	// offerfeed-gateway) of its namespace.
	ConditionProgrammed = "Programmed"
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
