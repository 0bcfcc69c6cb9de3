package v1alpha1

// OfferFeedPolicyConditionType is the type of a condition in an OfferFeedPolicy's
// status.conditions. metav1.Condition keeps it as a plain string: convert with string(...)
// when setting or finding a condition.
type OfferFeedPolicyConditionType string

// OfferFeedPolicyConditionReason is the reason of a condition in an OfferFeedPolicy's
// status.conditions, a CamelCase word that machines may match on. metav1.Condition keeps it as
// a plain string: convert with string(...).
type OfferFeedPolicyConditionReason string

// Condition types of an OfferFeedPolicy.
const (
	// ConditionAccepted is True when the policy is valid and no older policy in its namespace
	// governs the same pods.
	ConditionAccepted OfferFeedPolicyConditionType = "Accepted"
	// ConditionProgrammed is True when the policy is in the gateway config (ConfigMap
	// offerfeed-gateway) of its namespace.
	ConditionProgrammed OfferFeedPolicyConditionType = "Programmed"
	// ConditionReady summarises the others for people and GitOps tools (kstatus, Argo CD): it
	// is True when every condition it summarises (Accepted and Programmed today) is True at
	// the policy's current generation. When it is not, its reason and message are those of
	// the first condition that is not True. Its observedGeneration is the generation it
	// summarises.
	ConditionReady OfferFeedPolicyConditionType = "Ready"
	// ConditionEnforced is True when the gateway of every pod the policy governs reports
	// (annotation offerfeed.dev/enforced-policy-hash on its pod) that it enforces the
	// policy's current configHash: `kubectl wait --for=condition=Enforced` then means "every
	// governed pod enforces this generation". It is True with no governed pods. Ready does
	// not include it (docs/design.md#status says why).
	ConditionEnforced OfferFeedPolicyConditionType = "Enforced"
	// ConditionStalled is present, and True, only while the policy cannot become Ready until
	// someone changes something (its reason says what: Conflicted, Invalid,
	// ConfigMapNotManaged). kstatus reports such a policy as Failed rather than InProgress,
	// so a GitOps tool stops waiting for it. It is removed once the cause is gone.
	ConditionStalled OfferFeedPolicyConditionType = "Stalled"
)

// Reasons of the Ready condition. When Ready is False it carries the reason of the first
// condition it summarises that is not True (for example Conflicted or ConfigMapNotManaged).
const (
	// ReasonReady (Ready=True): the policy is Accepted and Programmed at its current generation.
	ReasonReady OfferFeedPolicyConditionReason = "Ready"
	// ReasonReconciling (Ready=Unknown): a condition that Ready summarises has not been
	// computed for the current generation yet.
	ReasonReconciling OfferFeedPolicyConditionReason = "Reconciling"
)

// Reasons of the Accepted condition.
const (
	// ReasonAccepted (Accepted=True): the policy is valid and wins every conflict it is in.
	ReasonAccepted OfferFeedPolicyConditionReason = "Accepted"
	// ReasonConflicted (Accepted=False): an older policy (or, at the same age, one with a
	// smaller name) has an equal selector or selects a pod this policy selects too. The message
	// names it. The policy takes over by itself when that policy goes away.
	ReasonConflicted OfferFeedPolicyConditionReason = "Conflicted"
	// ReasonInvalid (Accepted=False): the policy passed the schema but cannot be enforced,
	// for example a label selector that does not parse. The message says why.
	ReasonInvalid OfferFeedPolicyConditionReason = "Invalid"
)

// Reasons of the Programmed condition.
const (
	// ReasonProgrammed (Programmed=True): the policy is in the gateway config of its namespace.
	ReasonProgrammed OfferFeedPolicyConditionReason = "Programmed"
	// ReasonNotAccepted (Programmed=False): the policy is not Accepted, so it is not in the
	// gateway config.
	ReasonNotAccepted OfferFeedPolicyConditionReason = "NotAccepted"
	// ReasonConfigMapNotManaged (Programmed=False): a ConfigMap named offerfeed-gateway exists
	// in the namespace but was not written by offerfeed; the operator leaves it alone.
	ReasonConfigMapNotManaged OfferFeedPolicyConditionReason = "ConfigMapNotManaged"
)

// Reasons of the Enforced condition.
const (
	// ReasonEnforced (Enforced=True): every governed pod enforces the policy's configHash.
	ReasonEnforced OfferFeedPolicyConditionReason = "Enforced"
	// ReasonLagging (Enforced=False): some governed pods do not report the configHash yet;
	// the message counts them and names the first few, sorted.
	ReasonLagging OfferFeedPolicyConditionReason = "Lagging"
	// ReasonNotProgrammed (Enforced=False): the policy is not Programmed, so no gateway can
	// enforce it.
	ReasonNotProgrammed OfferFeedPolicyConditionReason = "NotProgrammed"
)
