// Package render turns the OfferFeedPolicies of one namespace into the gateway config of that
// namespace and into what the status of each policy should say. It is pure: no client, no
// clock, no I/O. The policy controller gathers its inputs and applies its outputs; `offerfeed
// render` calls it on manifests.
package render

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/validation"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Pod is what rendering needs to know of a pod: its name, labels, whether the injection
// webhook gave it the gateway sidecar, and the policy hash its gateway reports enforcing
// (annotation offerfeed.dev/enforced-policy-hash; empty when it reported nothing).
//
// ServiceAccount (annotation offerfeed.dev/service-account) does not change the render; the
// controller binds the gateway's ClusterRole to it.
type Pod struct {
	Name           string
	Labels         map[string]string
	Injected       bool
	EnforcedHash   string
	ServiceAccount string
}

// Result is the gateway config of a namespace and the outcome for each of its policies.
type Result struct {
	// Config is the gateway config.
	Config *gatewayconfig.Config
	// Data is Config as the bytes of the ConfigMap key config.json.
	Data []byte
	// Policies holds the outcome for each policy, by name.
	Policies map[string]PolicyResult
}

// PolicyResult is what the status of one policy should say.
type PolicyResult struct {
	// Accepted is false when the policy is invalid or loses a conflict.
	Accepted bool
	// Reason is one of the Accepted condition reasons of api/v1alpha1.
	Reason v1alpha1.OfferFeedPolicyConditionReason
	// Message explains Reason to a person.
	Message string
	// TargetedPods counts the injected pods the policy governs.
	TargetedPods int32
	// UninjectedPods counts the pods the policy selects that have no gateway sidecar.
	UninjectedPods int32
	// Hash is the policy's entry hash in the config; empty when not accepted.
	Hash string
	// EnforcedPods counts the governed pods whose gateway reports enforcing Hash.
	EnforcedPods int32
	// LaggingPods names, sorted, the governed pods whose gateway does not report Hash.
	LaggingPods []string
}

// ConfigMap returns ConfigMap offerfeed-gateway of ns holding the rendered config data (a
// Result's Data), labelled as offerfeed's and annotated with the data's hash: what the policy
// controller creates and `offerfeed render` prints. It is annotated with the data's generation too.
func ConfigMap(ns string, data []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: v1alpha1.GatewayConfigMapName, Namespace: ns,
			Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue},
			Annotations: map[string]string{v1alpha1.ConfigHashAnnotation: gatewayconfig.Hash(data),
				v1alpha1.ConfigGenerationAnnotation: strconv.FormatInt(gatewayconfig.PeekGeneration(data), 10)},
		},
		Data: map[string]string{v1alpha1.GatewayConfigKey: string(data)},
	}
}

// FirstGeneration is the generation of a namespace's first config, and what Render writes:
// `offerfeed render` prints the config of a namespace without a ConfigMap yet. The controller
// then numbers each changed config with SetGeneration (docs/design.md#the-gateway-config).
const FirstGeneration = 1

// SetGeneration numbers the config gen (at least 1) and writes Data again.
func (r *Result) SetGeneration(gen int64) error {
	if gen < FirstGeneration {
		return fmt.Errorf("generation %d: want at least %d", gen, FirstGeneration)
	}
	if r.Config.Generation == gen {
		return nil
	}
	r.Config.Generation = gen
	data, err := gatewayconfig.Marshal(r.Config)
	if err != nil {
		return err
	}
	r.Data = data
	return nil
}

// NextGeneration returns the generation of the config to write over previous (the data of
// the ConfigMap in place, nil when there is none) and numbers r with it: the previous
// generation when r's bytes are the same at that generation (nothing to write), else the
// previous generation plus one. A ConfigMap without a readable generation counts as 0.
//
// recorded is the generation the ConfigMap's annotation says was written last (0 if none): the
// next generation is never below it, even when someone edited the data by hand.
func (r *Result) NextGeneration(previous []byte, recorded int64) (int64, error) {
	prev := gatewayconfig.PeekGeneration(previous)
	if recorded > prev {
		prev = recorded
		previous = nil // the data was not written by offerfeed at that generation
	}
	if prev >= FirstGeneration {
		if err := r.SetGeneration(prev); err != nil {
			return 0, err
		}
		if bytes.Equal(r.Data, previous) {
			return prev, nil
		}
	}
	if prev == math.MaxInt64 {
		return 0, errors.New("the ConfigMap's generation is at its maximum; delete ConfigMap " + v1alpha1.GatewayConfigMapName + " to start again at 1 and restart the gateways")
	}
	return prev + 1, r.SetGeneration(prev + 1)
}

// candidate is a policy on its way through rendering.
type candidate struct {
	policy   *v1alpha1.OfferFeedPolicy
	canon    string // canonical form of the selector, to compare selectors
	selected []bool // by index into the pods (sorted by name): whether it selects that pod
}

// Render renders the policies of one namespace. Pods are the live pods of the namespace; a pod
// with a deletion timestamp should not be passed. Conflicts are resolved by age: the older
// policy (then the smaller name) wins when two have equal selectors or select a common pod.
func Render(namespace string, policies []v1alpha1.OfferFeedPolicy, pods []Pod) (*Result, error) {
	res := &Result{Policies: make(map[string]PolicyResult, len(policies))}
	// By name, so that a conflict message names the same common pod whatever order the
	// caller's cache listed the pods in (a different message would be a status write).
	pods = slices.SortedFunc(slices.Values(pods), func(a, b Pod) int { return cmp.Compare(a.Name, b.Name) })

	ordered := make([]*v1alpha1.OfferFeedPolicy, 0, len(policies))
	for i := range policies {
		ordered = append(ordered, &policies[i])
	}
	slices.SortFunc(ordered, Precedence)

	var winners []*candidate
	cfg := &gatewayconfig.Config{
		SchemaVersion: gatewayconfig.SchemaVersion,
		Generation:    FirstGeneration,
		Namespace:     namespace,
		Policies:      []gatewayconfig.Policy{},
	}
	for _, p := range ordered {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.TargetSelector.AsMetav1())
		if err != nil {
			res.Policies[p.Name] = PolicyResult{Reason: v1alpha1.ReasonInvalid,
				Message: fmt.Sprintf("spec.targetSelector: %v", err)}
			continue
		}
		c := &candidate{policy: p, canon: sel.String(), selected: make([]bool, len(pods))}
		var targeted, uninjected int32
		for i := range pods {
			if !sel.Matches(labels.Set(pods[i].Labels)) {
				continue
			}
			c.selected[i] = true
			if pods[i].Injected {
				targeted++
			} else {
				uninjected++
			}
		}
		if w, why := conflict(c, winners, pods); w != nil {
			res.Policies[p.Name] = PolicyResult{Reason: v1alpha1.ReasonConflicted,
				Message:        fmt.Sprintf("conflicts with policy %s, which %s and takes precedence (older, or as old with a smaller name); this policy takes over when %s goes away", w.policy.Name, why, w.policy.Name),
				UninjectedPods: uninjected}
			continue
		}
		gp, err := Policy(p)
		if err == nil {
			// What the API server admitted passes; this keeps a policy that reached us some
			// other way from making the gateways refuse the whole config.
			if verr := gatewayconfig.ValidatePolicy(&gp); verr != nil {
				err = fmt.Errorf("the gateway would refuse it: %s", strings.ReplaceAll(verr.Error(), "\n", "; "))
			}
		}
		if err != nil {
			res.Policies[p.Name] = PolicyResult{Reason: v1alpha1.ReasonInvalid, Message: err.Error()}
			continue
		}
		winners = append(winners, c)
		cfg.Policies = append(cfg.Policies, gp)
		enforced, lagging := enforcement(c.selected, pods, gp.Hash)
		res.Policies[p.Name] = PolicyResult{Accepted: true, Reason: v1alpha1.ReasonAccepted,
			Message: "the policy is valid and governs the pods it selects", TargetedPods: targeted,
			UninjectedPods: uninjected, Hash: gp.Hash, EnforcedPods: enforced, LaggingPods: lagging}
	}

	data, err := gatewayconfig.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	res.Config, res.Data = cfg, data
	return res, nil
}

// Precedence orders policies for conflict resolution: older first, then by name.
func Precedence(a, b *v1alpha1.OfferFeedPolicy) int {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if c := ta.Compare(tb); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// conflict returns the first winner that c conflicts with, and why.
func conflict(c *candidate, winners []*candidate, pods []Pod) (*candidate, string) {
	for _, w := range winners {
		if w.canon == c.canon {
			return w, "has the same targetSelector"
		}
		for i, selected := range c.selected {
			if selected && w.selected[i] {
				return w, fmt.Sprintf("selects pod %s too", pods[i].Name)
			}
		}
	}
	return nil, ""
}

// Policy renders one policy into its gateway config entry, with durations canonical and the
// defaults of the CRD applied by the API server's own structural defaulting (the
// +default markers of api/v1alpha1 are their only definition), so a policy read
// from a manifest renders as the same policy read back from the API server. It fails on
// durations that do not parse; other values the schema refuses it passes on, for Render to
// find with the gateway's own checks.
func Policy(p *v1alpha1.OfferFeedPolicy) (gatewayconfig.Policy, error) {
	s, err := defaulted(&p.Spec)
	if err != nil {
		return gatewayconfig.Policy{}, err
	}
	out := gatewayconfig.Policy{
		Name:           p.Name,
		Mode:           s.Mode,
		Selector:       *s.TargetSelector.AsMetav1(),
		IdentityHeader: s.ClientIdentity.Header,
	}
	var errs []string
	dur := func(field string, d *v1alpha1.Duration) gatewayconfig.Duration {
		if d == nil || *d == "" {
			return 0
		}
		v, err := time.ParseDuration(string(*d))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", field, err))
		}
		return gatewayconfig.Duration(v)
	}
	if f := s.Feed; f != nil {
		out.Feed = &gatewayconfig.Feed{
			Method:      string(f.Method),
			Path:        f.Path,
			MinInterval: dur("spec.feed.minInterval", &f.MinInterval),
			Burst:       f.Burst,
		}
	}
	if a := s.Accept; a != nil {
		out.Accept = &gatewayconfig.Accept{
			Method:          string(a.Method),
			PathTemplate:    a.PathTemplate,
			OfferIDField:    a.OfferIDField,
			MaxAccepts:      deref(a.MaxAccepts),
			Window:          dur("spec.accept.window", a.Window),
			MinReactionTime: dur("spec.accept.minReactionTime", a.MinReactionTime),
			RequireShown:    deref(a.RequireShown),
		}
		if f := a.Fairness; f != nil {
			out.Accept.Fairness = &gatewayconfig.Fairness{
				Window: dur("spec.accept.fairness.window", &f.Window),
				Award:  f.Award,
			}
		}
	}
	if so := s.ShownOffers; so != nil {
		out.ShownOffers = &gatewayconfig.ShownOffers{JSONPath: so.JSONPath}
	}
	for i, o := range s.Overrides {
		g := gatewayconfig.Override{Drivers: slices.Clone(o.Drivers)}
		if o.Feed != nil {
			g.Feed = &gatewayconfig.FeedOverride{
				MinInterval: dur(fmt.Sprintf("spec.overrides[%d].feed.minInterval", i), o.Feed.MinInterval),
				Burst:       deref(o.Feed.Burst),
			}
		}
		if o.Accept != nil {
			g.Accept = &gatewayconfig.AcceptOverride{
				MaxAccepts: deref(o.Accept.MaxAccepts),
				Window:     dur(fmt.Sprintf("spec.overrides[%d].accept.window", i), o.Accept.Window),
			}
			if o.Accept.MinReactionTime != nil {
				mrt := dur(fmt.Sprintf("spec.overrides[%d].accept.minReactionTime", i), o.Accept.MinReactionTime)
				g.Accept.MinReactionTime = &mrt
			}
		}
		out.Overrides = append(out.Overrides, g)
	}
	if r := s.Refusal; r != nil {
		out.Refusal = Refusal(r)
		// The schema cannot parse JSON: a body that is not JSON for its JSON content type is
		// found here, and the policy is refused rather than break the apps it answers.
		if err := out.Refusal.Validate(); err != nil {
			errs = append(errs, "spec."+strings.ReplaceAll(err.Error(), "\n", "; spec."))
		}
	}
	if ss := &s.SharedState; !ss.IsZero() {
		out.SharedState = SharedState(ss, dur("spec.sharedState.timeout", &ss.Timeout))
	}
	if b := s.BotScore; b != (v1alpha1.BotScore{}) {
		out.BotScore = &gatewayconfig.BotScore{DrawWeighting: b.DrawWeighting, RefuseAbovePermille: b.RefuseAbovePermille}
	}
	if len(errs) > 0 {
		return gatewayconfig.Policy{}, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	h, err := gatewayconfig.PolicyHash(out)
	if err != nil {
		return gatewayconfig.Policy{}, err
	}
	out.Hash = h
	return out, nil
}

// SharedState renders spec.sharedState (defaults applied) with its parsed timeout. The config
// names the credentials' Secret, never what it holds: the gateway reads that from the Secret
// the injection webhook mounts.
func SharedState(ss *v1alpha1.SharedState, timeout gatewayconfig.Duration) *gatewayconfig.SharedState {
	r := &ss.Redis
	out := &gatewayconfig.SharedState{
		Timeout:       timeout,
		OnUnavailable: ss.OnUnavailable,
		Redis: gatewayconfig.Redis{
			Mode:               r.Mode,
			SentinelMasterName: r.SentinelMasterName,
			Database:           deref(r.Database),
		},
	}
	for _, a := range r.Addresses {
		out.Redis.Addresses = append(out.Redis.Addresses, string(a))
	}
	if !r.TLS.IsZero() {
		out.Redis.TLS = &gatewayconfig.RedisTLS{ServerName: r.TLS.ServerName}
	}
	out.Redis.CredentialsSecret = r.CredentialsSecretRef.Name
	return out
}

// Refusal renders spec.refusal as the config holds it, unchecked (Policy checks it with
// Refusal.Validate).
func Refusal(r *v1alpha1.Refusal) *gatewayconfig.Refusal {
	out := &gatewayconfig.Refusal{Status: int(deref(r.Status)), ContentType: r.ContentType, Body: r.Body}
	for _, d := range r.Decisions {
		out.Decisions = append(out.Decisions, gatewayconfig.DecisionRefusal{Decision: d.Decision,
			Status: int(deref(d.Status)), ContentType: d.ContentType, Body: d.Body})
	}
	return out
}

// defaulted returns a copy of spec with the defaults of the embedded CRD applied.
func defaulted(spec *v1alpha1.OfferFeedPolicySpec) (*v1alpha1.OfferFeedPolicySpec, error) {
	v, err := validation.Embedded()
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(spec)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	obj := map[string]any{"spec": m}
	if err := v.Default(v1alpha1.GroupVersion.WithKind("OfferFeedPolicy"), obj); err != nil {
		return nil, err
	}
	out := &v1alpha1.OfferFeedPolicySpec{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, out); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// enforcement counts the governed pods (selected and injected) whose gateway reports hash, and
// names, sorted, those whose gateway does not.
func enforcement(selected []bool, pods []Pod, hash string) (int32, []string) {
	var enforced int32
	var lagging []string
	for i := range pods {
		if !selected[i] || !pods[i].Injected {
			continue
		}
		if pods[i].EnforcedHash == hash {
			enforced++
		} else {
			lagging = append(lagging, pods[i].Name)
		}
	}
	slices.Sort(lagging)
	return enforced, lagging
}
