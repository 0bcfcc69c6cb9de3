package gatewayconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The rules of the config format are the rules of the OfferFeedPolicy schema, so that a config
// the operator renders always parses and a hand-written one is held to the same rules. Each is
// written once, as a marker in api/v1alpha1: controller-gen turns the markers into the CRD, and
// hack/gatewayrules reads the patterns, bounds and enums (and the duration ranges and reserved
// header names of its CEL rules) from the CRD into zz_generated.rules.go, and checks that the
// CRD's label rules use the formats checkSelector checks (`make generate`;
// `make verify-gen` fails when it is stale). The package keeps no dependency on the CRD or the
// API server code: it is what the gateway and GitOps tools import. Rules across fields are
// code in validatePolicy; the render tests hold them to every invalid case of internal/celcases
// and test/drift checks every bound of the CRD against Parse and the JSON Schema.
const (
	// MaxConfigBytes is the largest config file Parse reads (a ConfigMap holds at most 1 MiB).
	MaxConfigBytes = 1 << 20
	// MaxPolicies is the most policies one config may hold.
	MaxPolicies = 1024

	// OfferIDSegment is the path template segment that matches the offer id.
	OfferIDSegment = "{offerId}"

	// HashPattern is the form of Policy.Hash.
	HashPattern = `^sha256:[0-9a-f]{64}$`
)

var (
	jsonPathRE     = regexp.MustCompile(JSONPathPattern)
	feedPathRE     = regexp.MustCompile(FeedPathPattern)
	pathTemplateRE = regexp.MustCompile(PathTemplatePattern)
	fieldRE        = regexp.MustCompile(FieldPattern)
	headerRE       = regexp.MustCompile(HeaderPattern)
	hashRE         = regexp.MustCompile(HashPattern)
)

// Parse reads a config file strictly: unknown fields are refused, the schema version must be
// SchemaVersion, and every policy must pass Validate. A policy without a Hash gets one computed
// with PolicyHash. Errors name the policy (index and name) and the field.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("config is %d bytes, more than the limit of %d", len(data), MaxConfigBytes)
	}
	// Peek at the version first, so that a config of another version gets a clear error rather
	// than an unknown-field one.
	var v struct {
		SchemaVersion *int `json:"schemaVersion"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("config is not valid JSON: %w", err)
	}
	if v.SchemaVersion == nil {
		return nil, errors.New("schemaVersion: required")
	}
	if *v.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("schemaVersion: %d is not supported (this gateway reads version %d)", *v.SchemaVersion, SchemaVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("config: unexpected data after the JSON object")
	}
	for i := range c.Policies {
		if c.Policies[i].Hash == "" {
			h, err := PolicyHash(c.Policies[i])
			if err != nil {
				return nil, err
			}
			c.Policies[i].Hash = h
		}
	}
	if err := Validate(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the semantic rules of a config: the rules of the OfferFeedPolicy schema and
// its cross-field validations, plus that selectors parse. It returns every problem found,
// joined, each naming the policy and field.
func Validate(c *Config) error {
	if c == nil {
		return errors.New("config: nil")
	}
	var errs []error
	if c.SchemaVersion != SchemaVersion {
		errs = append(errs, fmt.Errorf("schemaVersion: %d is not supported (this gateway reads version %d)", c.SchemaVersion, SchemaVersion))
	}
	if c.Generation < 0 {
		errs = append(errs, fmt.Errorf("generation: %d is negative", c.Generation))
	}
	if len(c.Policies) > MaxPolicies {
		errs = append(errs, fmt.Errorf("policies: %d policies, more than the limit of %d", len(c.Policies), MaxPolicies))
	}
	names := make(map[string]int, len(c.Policies))
	for i := range c.Policies {
		p := &c.Policies[i]
		if j, dup := names[p.Name]; dup && p.Name != "" {
			errs = append(errs, fmt.Errorf("policies[%d] (%s): name: duplicate of policies[%d]", i, p.Name, j))
		}
		names[p.Name] = i
		for _, e := range validatePolicy(p) {
			errs = append(errs, fmt.Errorf("policies[%d] (%s): %w", i, p.Name, e))
		}
	}
	return errors.Join(errs...)
}

// ValidatePolicy checks one policy as Validate does; its errors name the field, not the policy.
func ValidatePolicy(p *Policy) error { return errors.Join(validatePolicy(p)...) }

// problemFunc records a problem with a field: the field's path, then a message.
type problemFunc = func(field, format string, args ...any)

// collect returns a problemFunc that appends each problem to *errs as "field: message".
func collect(errs *[]error) problemFunc {
	return func(field, format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
}

// validatePolicy returns a policy's problems, field group by field group, in field order.
func validatePolicy(p *Policy) []error {
	var errs []error
	add := collect(&errs)
	checkNameAndMode(add, p)
	checkSelector(add, p.Selector)
	checkIdentityHeader(add, p.IdentityHeader)
	if p.Feed == nil && p.Accept == nil {
		add("feed", "at least one of feed and accept must be set")
	}
	if f := p.Feed; f != nil {
		checkFeed(add, f)
	}
	if a := p.Accept; a != nil {
		checkAccept(add, a, p.ShownOffers != nil)
	}
	checkRoutesDiffer(add, p.Feed, p.Accept)
	if s := p.ShownOffers; s != nil {
		checkShownOffers(add, s, p.Feed != nil)
	}
	checkOverrides(add, p)
	p.Refusal.check(add)
	return errs
}

// checkNameAndMode checks the policy's name, hash and mode.
func checkNameAndMode(add problemFunc, p *Policy) {
	if p.Name == "" {
		add("name", "required")
	}
	if p.Hash != "" && !hashRE.MatchString(p.Hash) {
		add("hash", "%q is not \"sha256:\" and 64 lowercase hex digits", p.Hash)
	}
	if !slices.Contains(Modes(), string(p.Mode)) {
		add("mode", "%q is not %s", p.Mode, strings.Join(Modes(), " or "))
	}
}

// checkSelector checks a policy's selector as the API checks spec.targetSelector: its bounds,
// the syntax of its label keys and values (validation.IsQualifiedName and IsValidLabelValue,
// the checks behind the CRD's CEL formats qualifiedName and labelValue), that it parses and
// that it selects something. A selector whose keys or values are already refused is not
// parsed too, which would only repeat the problem.
func checkSelector(report problemFunc, sel metav1.LabelSelector) {
	problems := 0
	add := func(field, format string, args ...any) {
		problems++
		report(field, format, args...)
	}
	if len(sel.MatchLabels) > MaxSelectorLabels {
		add("selector.matchLabels", "%d labels, more than the limit of %d", len(sel.MatchLabels), MaxSelectorLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		checkLabelKey(add, "selector.matchLabels", k)
		checkLabelValue(add, "selector.matchLabels["+k+"]", sel.MatchLabels[k])
	}
	if len(sel.MatchExpressions) > MaxSelectorExpressions {
		add("selector.matchExpressions", "%d requirements, more than the limit of %d", len(sel.MatchExpressions), MaxSelectorExpressions)
	}
	for i, r := range sel.MatchExpressions {
		field := fmt.Sprintf("selector.matchExpressions[%d]", i)
		checkLabelKey(add, field+".key", r.Key)
		if len(r.Values) > MaxSelectorValues {
			add(field+".values", "%d values, more than the limit of %d", len(r.Values), MaxSelectorValues)
		}
		for j, v := range r.Values {
			checkLabelValue(add, fmt.Sprintf("%s.values[%d]", field, j), v)
		}
	}
	if problems > 0 {
		return
	}
	if _, err := metav1.LabelSelectorAsSelector(&sel); err != nil {
		add("selector", "does not parse: %v", err)
	} else if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		add("selector", "must set matchLabels or matchExpressions; an empty selector would govern every pod in the namespace")
	}
}

// checkLabelKey checks a label key of a selector: a qualified name, as the API's
// format.qualifiedName checks it.
func checkLabelKey(add problemFunc, field, k string) {
	if n := utf8.RuneCountInString(k); n > MaxLabelKeyLen {
		add(field, "label key of %d characters, longer than %d", n, MaxLabelKeyLen)
	} else if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		add(field, "invalid label key %q: %s", k, strings.Join(errs, "; "))
	}
}

// checkLabelValue checks a label value of a selector, as the API's format.labelValue checks it.
func checkLabelValue(add problemFunc, field, v string) {
	if n := utf8.RuneCountInString(v); n > MaxLabelValueLen {
		add(field, "label value of %d characters, longer than %d", n, MaxLabelValueLen)
	} else if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		add(field, "invalid label value %q: %s", v, strings.Join(errs, "; "))
	}
}

// checkIdentityHeader checks the header that carries the driver id.
func checkIdentityHeader(add problemFunc, h string) {
	switch {
	case len(h) < MinHeaderLen:
		add("identityHeader", "required")
	case len(h) > MaxHeaderLen:
		add("identityHeader", "longer than %d characters", MaxHeaderLen)
	case !headerRE.MatchString(h):
		add("identityHeader", "%q is not a valid header name", h)
	case strings.HasPrefix(strings.ToLower(h), ReservedHeaderPrefix):
		add("identityHeader", "%q must not start with OfferFeed-: the gateway strips those headers from clients", h)
	case slices.Contains(ReservedHeaders(), strings.ToLower(h)):
		add("identityHeader", "%q must not be Host or a hop-by-hop header: proxies and the gateway's HTTP server do not pass them on as request headers", h)
	}
}

// checkFeed checks the feed's route and pacing.
func checkFeed(add problemFunc, f *Feed) {
	if !validMethod(f.Method) {
		add("feed.method", "%q is not one of %s", f.Method, strings.Join(Methods(), ", "))
	}
	if len(f.Path) < MinPathLen || len(f.Path) > MaxPathLen {
		add("feed.path", "not %d to %d characters", MinPathLen, MaxPathLen)
	} else if !feedPathRE.MatchString(f.Path) {
		add("feed.path", "%q must start with '/' and hold no '?', '#' or white space", f.Path)
	}
	checkInterval(add, "feed.minInterval", f.MinInterval)
	checkBurst(add, "feed.burst", f.Burst)
}

// checkAccept checks the accept's route, limits and fair draws; shown tells whether the
// policy reads shown offers.
func checkAccept(add problemFunc, a *Accept, shown bool) {
	checkAcceptRoute(add, a)
	checkAcceptLimits(add, a)
	if f := a.Fairness; f != nil {
		checkFairness(add, f)
	}
	if a.MinReactionTime > 0 && !shown {
		add("accept.minReactionTime", "needs shownOffers, to learn when an offer was shown to a driver")
	}
	if a.RequireShown && !shown {
		add("accept.requireShown", "needs shownOffers, to learn which offers a driver was shown")
	}
}

// checkAcceptRoute checks the accept's method, path template and where it finds the offer id.
func checkAcceptRoute(add problemFunc, a *Accept) {
	if !validMethod(a.Method) {
		add("accept.method", "%q is not one of %s", a.Method, strings.Join(Methods(), ", "))
	}
	if len(a.PathTemplate) < MinPathTemplateLen || len(a.PathTemplate) > MaxPathTemplateLen {
		add("accept.pathTemplate", "not %d to %d characters", MinPathTemplateLen, MaxPathTemplateLen)
	} else if !pathTemplateRE.MatchString(a.PathTemplate) {
		add("accept.pathTemplate", "%q must be '/'-separated segments, each a literal without '{', '}', '?', '#' or white space, or {offerId}", a.PathTemplate)
	} else if strings.Count(a.PathTemplate, OfferIDSegment) > 1 {
		add("accept.pathTemplate", "%q holds {offerId} more than once", a.PathTemplate)
	}
	inPath := strings.Contains(a.PathTemplate, OfferIDSegment)
	switch {
	case inPath && a.OfferIDField != "":
		add("accept.offerIdField", "must not be set when pathTemplate has a {offerId} segment: exactly one must name the offer")
	case !inPath && a.OfferIDField == "":
		add("accept.offerIdField", "required when pathTemplate has no {offerId} segment: exactly one must name the offer")
	case a.OfferIDField != "" && (len(a.OfferIDField) < MinFieldLen || len(a.OfferIDField) > MaxFieldLen || !fieldRE.MatchString(a.OfferIDField)):
		add("accept.offerIdField", "%q is not a JSON field name such as offerId", a.OfferIDField)
	}
}

// checkAcceptLimits checks maxAccepts, window and minReactionTime, and that the accept limits
// something.
func checkAcceptLimits(add problemFunc, a *Accept) {
	checkMaxAccepts(add, "accept.maxAccepts", a.MaxAccepts)
	if (a.MaxAccepts > 0) != (a.Window > 0) {
		add("accept.window", "maxAccepts and window must be set together")
	}
	if a.Window > 0 {
		checkWindow(add, "accept.window", a.Window)
	}
	if a.MinReactionTime.D() > MaxMinReactionTime {
		add("accept.minReactionTime", "%s is more than %s", a.MinReactionTime.D(), MaxMinReactionTime)
	}
	if a.Window > 0 && a.Window < a.MinReactionTime {
		add("accept.window", "window must be at least minReactionTime")
	}
	if a.MaxAccepts == 0 && a.MinReactionTime == 0 && !a.RequireShown && a.Fairness == nil {
		add("accept", "accept must limit something: set maxAccepts and window, minReactionTime, requireShown, or fairness")
	}
}

// checkFairness checks the fair draws' window and award.
func checkFairness(add problemFunc, f *Fairness) {
	if f.Window.D() < MinFairnessWindow || f.Window.D() > MaxFairnessWindow {
		add("accept.fairness.window", "%s is not between %s and %s", f.Window.D(), MinFairnessWindow, MaxFairnessWindow)
	}
	if !slices.Contains(Awards(), string(f.Award)) {
		add("accept.fairness.award", "%q is not %s", f.Award, strings.Join(Awards(), " or "))
	}
}

// checkRoutesDiffer checks that the feed and the accept (either may be nil) are not one route.
func checkRoutesDiffer(add problemFunc, f *Feed, a *Accept) {
	if f != nil && a != nil && f.Method == a.Method &&
		(f.Path == a.PathTemplate || (!strings.HasSuffix(f.Path, "/") && f.Path+"/" == a.PathTemplate)) {
		add("accept.pathTemplate", "feed and accept must not be the same route: the gateway matches accept first, so the feed would never be paced; give them different paths or methods")
	}
}

// checkShownOffers checks where shown offers are read; feed tells whether the policy has a feed.
func checkShownOffers(add problemFunc, s *ShownOffers, feed bool) {
	if !feed {
		add("shownOffers", "needs feed: shown offers are read from feed responses")
	}
	if len(s.JSONPath) < MinJSONPathLen || len(s.JSONPath) > MaxJSONPathLen || !jsonPathRE.MatchString(s.JSONPath) {
		add("shownOffers.jsonPath", "%q is not a path such as offers[].id (names joined by '.', name[] walks an array)", s.JSONPath)
	}
}

// checkOverrides checks the overrides of p, each with the limits it changes.
func checkOverrides(add problemFunc, p *Policy) {
	if len(p.Overrides) > MaxOverrides {
		add("overrides", "%d overrides, more than the limit of %d", len(p.Overrides), MaxOverrides)
	}
	for i, o := range p.Overrides {
		f := fmt.Sprintf("overrides[%d]", i)
		checkOverrideDrivers(add, f, o.Drivers)
		if o.Feed == nil && o.Accept == nil {
			add(f, "an override must change feed or accept")
		}
		if of := o.Feed; of != nil {
			checkFeedOverride(add, f, of, p.Feed != nil)
		}
		if oa := o.Accept; oa != nil {
			checkAcceptOverride(add, f, oa, p)
		}
	}
}

// checkOverrideDrivers checks the drivers of the override at field f.
func checkOverrideDrivers(add problemFunc, f string, drivers []string) {
	if len(drivers) < MinOverrideDrivers || len(drivers) > MaxOverrideDrivers {
		add(f+".drivers", "must list %d to %d drivers", MinOverrideDrivers, MaxOverrideDrivers)
	}
	// Errors name a driver by its index, never by its id: they end up in /readyz, logs and
	// the policy's status, and driver ids are personal data.
	seen := make(map[string]int, len(drivers))
	for j, d := range drivers {
		if len(d) < MinDriverLen || len(d) > MaxDriverLen {
			add(fmt.Sprintf("%s.drivers[%d]", f, j), "must be %d to %d characters", MinDriverLen, MaxDriverLen)
		}
		if k, dup := seen[d]; dup {
			add(fmt.Sprintf("%s.drivers[%d]", f, j), "duplicate of drivers[%d]", k)
			continue
		}
		seen[d] = j
	}
}

// checkFeedOverride checks the feed override of the override at field f; feed tells whether
// the policy has a feed.
func checkFeedOverride(add problemFunc, f string, of *FeedOverride, feed bool) {
	if !feed {
		add(f+".feed", "an override of feed needs feed to be set")
	}
	if of.MinInterval == 0 && of.Burst == 0 {
		add(f+".feed", "a feed override must set minInterval or burst")
	}
	if of.MinInterval != 0 {
		checkInterval(add, f+".feed.minInterval", of.MinInterval)
	}
	if of.Burst != 0 {
		checkBurst(add, f+".feed.burst", of.Burst)
	}
}

// checkAcceptOverride checks the accept override of the override at field f, alone and
// combined with the accept of p.
func checkAcceptOverride(add problemFunc, f string, oa *AcceptOverride, p *Policy) {
	if p.Accept == nil {
		add(f+".accept", "an override of accept needs accept to be set")
	}
	if oa.MaxAccepts == 0 && oa.Window == 0 && oa.MinReactionTime == nil {
		add(f+".accept", "an accept override must set maxAccepts, window or minReactionTime")
	}
	checkMaxAccepts(add, f+".accept.maxAccepts", oa.MaxAccepts)
	if oa.Window != 0 {
		checkWindow(add, f+".accept.window", oa.Window)
	}
	if oa.MinReactionTime != nil && oa.MinReactionTime.D() > MaxMinReactionTime {
		add(f+".accept.minReactionTime", "%s is more than %s", oa.MinReactionTime.D(), MaxMinReactionTime)
	}
	if p.Accept != nil {
		// The effective limits must still make sense.
		eff := p.Accept.With(oa)
		maxA, win, mrt := eff.MaxAccepts, eff.Window, eff.MinReactionTime
		if (maxA > 0) != (win > 0) {
			add(f+".accept", "maxAccepts and window must be set together (with the policy's values)")
		}
		if win > 0 && win < mrt {
			add(f+".accept", "window must be at least minReactionTime (with the policy's values)")
		}
		if mrt > 0 && p.ShownOffers == nil {
			add(f+".accept.minReactionTime", "needs shownOffers, to learn when an offer was shown to a driver")
		}
	}
}

func validMethod(m string) bool { return slices.Contains(Methods(), m) }

// checkMaxAccepts checks a maxAccepts of the config, where 0 stands for an absent one.
func checkMaxAccepts(add problemFunc, field string, n int32) {
	if n != 0 && (n < MinMaxAccepts || n > MaxMaxAccepts) {
		add(field, "%d is not between %d and %d", n, MinMaxAccepts, MaxMaxAccepts)
	}
}

func checkInterval(add problemFunc, field string, d Duration) {
	if d.D() < MinFeedInterval || d.D() > MaxFeedInterval {
		add(field, "%s is not between %s and %s", d.D(), MinFeedInterval, MaxFeedInterval)
	}
}

func checkBurst(add problemFunc, field string, b int32) {
	if b < MinBurst || b > MaxBurst {
		add(field, "%d is not between %d and %d", b, MinBurst, MaxBurst)
	}
}

func checkWindow(add problemFunc, field string, d Duration) {
	if d.D() < MinWindow || d.D() > MaxWindow {
		add(field, "%s is not between %s and %s", d.D(), MinWindow, MaxWindow)
	}
}

// PeekGeneration returns the generation of config data without checking the rest: 0 when
// the data has none or is not a JSON object. The operator reads it from the ConfigMap it is
// about to rewrite, to write the next one.
func PeekGeneration(data []byte) int64 {
	var v struct {
		Generation int64 `json:"generation"`
	}
	if json.Unmarshal(data, &v) != nil || v.Generation < 0 {
		return 0
	}
	return v.Generation
}
