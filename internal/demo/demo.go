// Package demo is `offerfeed-demo`: a whole offerfeed installation on one machine. It starts the
// envtest control plane (a real kube-apiserver and etcd), installs the CRD, runs the manager in
// process, applies a policy, and then plays a simulated offer market (package market) through
// the gateway with the config the operator rendered — first with the policy in DryRun, then
// switched to Enforce by updating the resource — and reports who won the offers.
package demo

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/config/gatewayaccess"
	cfgwebhook "github.com/offerfeed/offerfeed/config/webhook"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/gateway/push"
	"github.com/offerfeed/offerfeed/internal/market"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

// Namespace and PolicyName are where the demo's policy lives.
const (
	Namespace  = "offers"
	PolicyName = "standard"
	// AppLabel is the label of the demo's offer-service pod, selected by the policy.
	AppLabel = "offer-service"
	// MaxAccepts is the demo policy's accept.maxAccepts per 10m: a cap on volume, loose
	// enough that pacing, reaction time and fair draws decide who wins.
	MaxAccepts = 20
	// DefaultOfferInterval is the time between two offers: offers are scarce, as they are
	// where bots pay off (eight people together accept about one offer every second or two).
	DefaultOfferInterval = 4 * time.Second
	// FairnessWindow is the fair-draw window of the demo's runs with fair draws.
	FairnessWindow = 3 * time.Second
	// ScoreRunLength is how many times Duration the run "score" plays, after its warm-up.
	ScoreRunLength = 3
	// DefaultWarmUp is how long the drivers of the run "score" play before the run counts: the
	// gateway forms a driver's bot score only after 32 polls or 16 accepts (about two minutes
	// for a bot at minInterval 2s).
	DefaultWarmUp = 2 * time.Minute
	// GatewayImage is the image the demo's manager injects (no kubelet runs it: the demo runs
	// the gateway in process).
	GatewayImage = "offerfeed:demo"
)

// Options configure the demo.
type Options struct {
	// Out receives the progress lines and the tables.
	Out io.Writer
	// Duration is how long each market run plays (wall clock). Default 16s.
	Duration time.Duration
	// Humans, Bots and CompliantBots are the drivers of each class. Defaults 8, 2, 1. The
	// compliant bots play only in the runs "compliant", "fair" and "score".
	Humans, Bots, CompliantBots int
	// JitteredBots are the compliant bots with a jitter to look human (market.ClassJitteredBot);
	// they play only in the run "score". Default 1.
	JitteredBots int
	// WarmUp is how long (before Scale) the drivers of the run "score" play, unrecorded, before
	// the run itself, so that the gateway has formed their scores; default DefaultWarmUp.
	WarmUp time.Duration
	// Seed makes the market's random delays and offers deterministic. Default 1.
	Seed uint64
	// Scale multiplies every delay of the market and of the policy (0.1: ten times faster);
	// 0 means 1. Tests play a faster market.
	Scale float64
	// Shape is the offer API shape: market.ShapeREST (default) or market.ShapeFlex.
	Shape market.Shape
	// ReportFile is where the HTML chart is written; empty writes none.
	ReportFile string
	// Logger receives the manager's and gateway's logs; the zero value discards them.
	Logger logr.Logger
	// Runs names the market runs, in order, from RunNames; default all of them.
	Runs []string
	// Award is the fair draws' award rule; default LeastRecentlyWon.
	Award v1alpha1.FairnessAward
	// OfferInterval is the time between two offers (before Scale); default DefaultOfferInterval.
	OfferInterval time.Duration
	// Replicas is how many gateways play, behind a round-robin front (at most MaxReplicas);
	// 0 or 1 is one gateway, reached directly. With more, each run is played twice, with
	// per-replica state and then with state shared on a Redis server that the demo starts,
	// the default runs are ReplicaRunNames, and compliant bots send each accept Replicas
	// times.
	Replicas int
	// RedisServer is the Redis server binary for shared state; empty looks for one
	// ($OFFERFEED_REDIS_SERVER, then redis-server or valkey-server on PATH).
	RedisServer string

	runs []runSpec
}

// runSpec is one market run: the policy's mode, whether it holds fair draws and weighs them
// by the drivers' bot scores, and whether the compliant (and jittered) bots play.
type runSpec struct {
	name, title string
	mode        v1alpha1.PolicyMode
	fair        bool
	weighted    bool
	compliant   bool
	// replicated runs play through several gateways; shared ones with state shared on Redis
	// (the policy's spec.sharedState: sharedStateSpec).
	replicated, shared bool
	jittered           bool
}

// RunNames are the runs the demo can play, in their default order: people against raw bots
// with the policy in DryRun, then enforced; then the compliant bots join, first come first
// served, then with fair draws; last a jittered bot joins too and the draws are weighted by
// the drivers' bot scores.
var RunNames = []string{"dryrun", "enforce", "compliant", "fair", "score"}

var runSpecs = map[string]runSpec{
	"dryrun":    {name: "dryrun", title: "policy in DryRun", mode: v1alpha1.ModeDryRun},
	"enforce":   {name: "enforce", title: "policy in Enforce", mode: v1alpha1.ModeEnforce},
	"compliant": {name: "compliant", title: "policy in Enforce, a compliant bot joins", mode: v1alpha1.ModeEnforce, compliant: true},
	"fair":      {name: "fair", title: "policy in Enforce with fair draws", mode: v1alpha1.ModeEnforce, fair: true, compliant: true},
	"score": {name: "score", title: "policy in Enforce with score-weighted fair draws, a jittered bot joins", mode: v1alpha1.ModeEnforce,
		fair: true, weighted: true, compliant: true, jittered: true},
}

// samePolicy reports whether r and o play under the same policy.
func (r runSpec) samePolicy(o runSpec) bool {
	return r.mode == o.mode && r.fair == o.fair && r.weighted == o.weighted && r.shared == o.shared
}

// describe says how the run's policy differs, as the step lines show it.
func (r runSpec) describe(scale float64, award v1alpha1.FairnessAward) string {
	if r.weighted {
		return fmt.Sprintf("mode %s with fair draws (window %s, award %s) weighted by bot score (botScore.drawWeighting %s)",
			r.mode, fairnessWindow(scale), award, v1alpha1.DrawWeightingScore)
	}
	if r.fair {
		return fmt.Sprintf("mode %s with fair draws (window %s, award %s)", r.mode, fairnessWindow(scale), award)
	}
	return "mode " + string(r.mode)
}

// fairnessWindow is FairnessWindow times scale (0 means 1), in whole milliseconds.
func fairnessWindow(scale float64) time.Duration {
	w := FairnessWindow
	if scale > 0 {
		w = time.Duration(float64(w) * scale)
	}
	return w.Truncate(time.Millisecond)
}

// apply sets the run's mode and fairness on p.
func (r runSpec) apply(p *v1alpha1.OfferFeedPolicy, scale float64, award v1alpha1.FairnessAward) {
	p.Spec.Mode = r.mode
	p.Spec.Accept.Fairness = nil
	if r.fair {
		p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: v1alpha1.Duration(fmt.Sprintf("%dms", fairnessWindow(scale)/time.Millisecond)),
			Award: award}
	}
	p.Spec.BotScore = v1alpha1.BotScore{}
	if r.weighted {
		p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingScore}
	}
}

// Result is what the demo measured.
type Result struct {
	// Runs are the market reports, in the order of Options.Runs (with several replicas,
	// each run twice: per-replica state, then shared).
	Runs []*market.Report
	// Comparisons set each run with per-replica state beside the same run with shared
	// state; empty with one replica.
	Comparisons []Comparison
	// InjectedPod is the offer-service pod as the API server stored it.
	InjectedPod *corev1.Pod
}

// Defaults returns the options that Run uses for the ones left zero.
func Defaults() Options {
	return Options{Duration: 16 * time.Second, Humans: 8, Bots: 2, CompliantBots: 1, JitteredBots: 1, WarmUp: DefaultWarmUp, Seed: 1,
		Shape: market.ShapeREST, Award: v1alpha1.AwardLeastRecentlyWon, OfferInterval: DefaultOfferInterval}
}

func (o *Options) defaults() error {
	o.Replicas = max(o.Replicas, 1)
	if o.Replicas > MaxReplicas {
		return fmt.Errorf("replicas must be at most %d, not %d", MaxReplicas, o.Replicas)
	}
	if len(o.Runs) == 0 {
		o.Runs = RunNames
		if o.Replicas > 1 {
			o.Runs = ReplicaRunNames
		}
	}
	o.runs = nil
	for _, n := range o.Runs {
		r, ok := runSpecs[n]
		if !ok {
			return fmt.Errorf("unknown run %q; runs are %v", n, RunNames)
		}
		if o.Replicas == 1 {
			o.runs = append(o.runs, r)
			continue
		}
		// Each run twice: per-replica state, then shared.
		r.replicated = true
		title := r.title
		r.title = fmt.Sprintf("%s, %d gateways, per-replica state", title, o.Replicas)
		o.runs = append(o.runs, r)
		r.shared, r.title = true, fmt.Sprintf("%s, %d gateways, state shared on Redis", title, o.Replicas)
		o.runs = append(o.runs, r)
	}
	def := Defaults()
	o.Out = cmp.Or[io.Writer](o.Out, io.Discard)
	o.Duration = cmp.Or(o.Duration, def.Duration)
	o.OfferInterval = cmp.Or(o.OfferInterval, def.OfferInterval)
	o.WarmUp = cmp.Or(o.WarmUp, def.WarmUp)
	if o.Humans == 0 && o.Bots == 0 && o.CompliantBots == 0 && o.JitteredBots == 0 {
		o.Humans, o.Bots, o.CompliantBots, o.JitteredBots = def.Humans, def.Bots, def.CompliantBots, def.JitteredBots
	}
	for _, r := range o.runs {
		if o.Humans+o.Bots+o.compliantBots(r)+o.jitteredBots(r) == 0 {
			return fmt.Errorf("run %q would have no drivers: compliant bots play only in the runs compliant, fair and score, jittered bots only in score", r.name)
		}
	}
	o.Seed = cmp.Or(o.Seed, def.Seed)
	o.Award = cmp.Or(o.Award, def.Award)
	o.Shape = cmp.Or(o.Shape, def.Shape)
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	return nil
}

// compliantBots returns how many compliant bots play in run r.
func (o *Options) compliantBots(r runSpec) int {
	if !r.compliant {
		return 0
	}
	return o.CompliantBots
}

// jitteredBots returns how many jittered bots play in run r.
func (o *Options) jitteredBots(r runSpec) int {
	if !r.jittered {
		return 0
	}
	return o.JitteredBots
}

// duration returns how long run r plays.
func (o *Options) duration(r runSpec) time.Duration {
	if r.weighted {
		return ScoreRunLength * o.Duration
	}
	return o.Duration
}

// demo holds the running parts.
type demo struct {
	opts    Options
	wg      sync.WaitGroup // the background goroutines: servers, projector, file watch
	dir     string         // the projected ConfigMap volume
	env     *envtest.Environment
	cfg     *rest.Config
	c       client.Client
	gws     []*gateway.Gateway // every gateway, all reading the projected config
	pod     *corev1.Pod
	service *market.OfferService
	gwURL   string // where drivers send requests: the gateway, or the round-robin front

	// With several replicas: the gateways of each kind of state (sets[0] per-replica,
	// sets[1] shared), the round-robin front, and the Redis server with its client.
	sets     [2]*replicaSet
	lb       *roundRobin
	redisBin string
	redis    *redisServer
}

// Run runs the demo until it is done or ctx ends; everything it started is stopped before it
// returns.
func Run(ctx context.Context, opts Options) (res *Result, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	d := &demo{opts: opts}
	if opts.Replicas > 1 {
		// Before anything starts: a missing server is a quick, clear error.
		if d.redisBin, err = findRedisServer(opts.RedisServer); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	d.step("starting the control plane (kube-apiserver %s and etcd, built from Go modules) with the CRD and the injection webhook", testenv.KubernetesVersion)
	env, err := testenv.New()
	if err != nil {
		return nil, err
	}
	if env.WebhookInstallOptions.MutatingWebhooks, err = cfgwebhook.MutatingWebhookConfigurations(); err != nil {
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	d.env, d.cfg = env, cfg
	defer func() {
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stopping the control plane: %w", stopErr)
		}
	}()
	d.c, err = client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return nil, err
	}

	d.step("starting the offerfeed manager in this process")
	wo := env.WebhookInstallOptions
	mgr, err := operator.NewManager(testenv.Unthrottled(cfg), operator.Options{
		Controller:  operator.UniqueControllerName(), // Run may be called again in a process
		Gateway:     webhook.Config{Image: GatewayImage},
		WebhookHost: wo.LocalServingHost, WebhookPort: wo.LocalServingPort, WebhookCertDir: wo.LocalServingCertDir,
	})
	if err != nil {
		return nil, err
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if mgrErr := <-mgrDone; mgrErr != nil && err == nil && !errors.Is(mgrErr, context.Canceled) {
			err = fmt.Errorf("manager: %w", mgrErr)
		}
	}()

	if err := waitWebhook(ctx, net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort))); err != nil {
		return nil, err
	}

	// Runs before the manager and the control plane stop (defers run last first).
	defer func() {
		cancel()
		d.wg.Wait()
		if d.dir != "" {
			_ = os.RemoveAll(d.dir)
		}
		if d.redis != nil {
			d.redis.stop()
		}
	}()

	res = &Result{}
	if err := d.setUpCluster(ctx, res); err != nil {
		return res, err
	}
	if err := d.startServices(ctx, res.InjectedPod.Labels); err != nil {
		return res, err
	}

	for i, run := range d.opts.runs {
		if run.replicated && (i == 0 || run.shared != d.opts.runs[i-1].shared) {
			d.useState(run.shared)
		}
		if i == 0 || !run.samePolicy(d.opts.runs[i-1]) {
			if i > 0 {
				d.step("updating policy %s/%s to %s (kubectl edit, in effect)", Namespace, PolicyName, run.describe(d.opts.Scale, d.opts.Award))
				if err := d.update(ctx, run); err != nil {
					return res, err
				}
			}
			if err := d.waitGateway(ctx, run.mode); err != nil {
				return res, err
			}
		}
		if n := d.opts.compliantBots(run); n > 0 && (i == 0 || !d.opts.runs[i-1].compliant) {
			copies := ""
			if run.replicated {
				copies = fmt.Sprintf(", sending each accept %d times to reach every replica", d.opts.Replicas)
			}
			if n == 1 {
				d.step("a compliant bot joins the market: it polls exactly every minInterval and accepts right after minReactionTime%s", copies)
			} else {
				d.step("%d compliant bots join the market: they poll exactly every minInterval and accept right after minReactionTime%s", n, copies)
			}
		}
		if n := d.opts.jitteredBots(run); n > 0 && (i == 0 || !d.opts.runs[i-1].jittered) {
			tm := market.DefaultTiming().Scaled(d.opts.Scale)
			d.step("%d jittered bot(s) join the market: compliant, with a random jitter on polling (up to %s) and on reaction (up to %s) to look human",
				n, tm.JitterPoll, tm.JitterReact)
		}
		title := fmt.Sprintf("Run %d: %s", i+1, run.title)
		mc := d.marketConfig(title, fmt.Sprintf("demo-%d", i+1))
		mc.CompliantBots, mc.JitteredBots = d.opts.compliantBots(run), d.opts.jitteredBots(run)
		mc.Duration = d.opts.duration(run)
		if run.replicated {
			mc.CompliantAcceptCopies = d.opts.Replicas
		}
		// Fresh identities per run: the gateway remembers drivers, and one run's accepts
		// should not count against the next run's maxAccepts.
		mc.DriverSuffix = fmt.Sprintf(".run%d", i+1)
		if run.weighted {
			if err := d.warmUp(ctx, mc); err != nil {
				return res, err
			}
		}
		d.step("playing the market for %s: %s", d.opts.duration(run), title)
		rep, err := market.Run(ctx, mc)
		if rep != nil {
			res.Runs = append(res.Runs, rep)
			fmt.Fprintln(d.opts.Out)
			_ = rep.WriteTable(d.opts.Out)
			if run.replicated {
				fmt.Fprintf(d.opts.Out, "Requests per gateway (round-robin): %s\n", d.lb.spread())
			}
			fmt.Fprintln(d.opts.Out)
		}
		if err != nil {
			return res, err
		}
	}
	d.summary(res)
	var sections []market.Section
	if d.opts.Replicas > 1 {
		res.Comparisons = d.compare(res.Runs)
		var b strings.Builder
		writeComparisons(&b, d.opts.Replicas, res.Comparisons)
		fmt.Fprint(d.opts.Out, "\n"+b.String())
		sections = append(sections, market.Section{Title: "Replicas: per-replica state against shared state", Text: b.String()})
	}
	if d.opts.ReportFile != "" {
		if err := writeReport(d.opts.ReportFile, res.Runs, sections); err != nil {
			return res, err
		}
		abs, _ := filepath.Abs(d.opts.ReportFile)
		d.step("wrote the chart to %s", abs)
	}
	return res, nil
}

// warmUp plays the market of mc, with its drivers, for the scaled WarmUp, unrecorded: the
// gateway forms the drivers' bot scores meanwhile. Their accepts count against their
// maxAccepts in the run that follows.
func (d *demo) warmUp(ctx context.Context, mc market.Config) error {
	warm := mc
	warm.Title, warm.RunID = "warm-up", mc.RunID+"-warm-up"
	warm.Duration = d.opts.WarmUp
	if d.opts.Scale > 0 {
		warm.Duration = time.Duration(float64(warm.Duration) * d.opts.Scale)
	}
	d.step("warming up for %s: the same drivers play unrecorded until the gateway has formed their bot scores (after 32 polls or 16 accepts); it sends each score to the offer service (header OfferFeed-Score)",
		warm.Duration)
	_, err := market.Run(ctx, warm)
	return err
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.opts.Out, "▸ "+format+"\n", args...)
}

// Policy returns the demo's policy: the REST or Flex example of docs/design.md#api in the given mode,
// its durations multiplied by scale (0 means 1) to match a market played faster.
func Policy(shape market.Shape, mode v1alpha1.PolicyMode, scale float64) *v1alpha1.OfferFeedPolicy {
	rt := shape.Routes()
	dur := func(d time.Duration) v1alpha1.Duration {
		if scale > 0 {
			d = time.Duration(float64(d) * scale)
		}
		switch {
		case d%time.Minute == 0:
			return v1alpha1.Duration(fmt.Sprintf("%dm", d/time.Minute))
		case d%time.Second == 0:
			return v1alpha1.Duration(fmt.Sprintf("%ds", d/time.Second))
		}
		return v1alpha1.Duration(fmt.Sprintf("%dms", d/time.Millisecond))
	}
	p := &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName, Namespace: Namespace},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": AppLabel}),
			Mode:           mode,
			ClientIdentity: v1alpha1.ClientIdentity{Header: market.DefaultIdentityHeader},
			Feed:           &v1alpha1.FeedLimits{Method: v1alpha1.HTTPMethod(rt.FeedMethod), Path: rt.FeedPath, MinInterval: dur(2 * time.Second), Burst: 1},
			Accept: &v1alpha1.AcceptLimits{Method: "POST", PathTemplate: rt.AcceptPathTemplate, OfferIDField: rt.OfferIDField,
				MaxAccepts: ptr.To[int32](MaxAccepts), Window: ptr.To(dur(10 * time.Minute)),
				MinReactionTime: ptr.To(dur(800 * time.Millisecond)), RequireShown: ptr.To(true)},
			ShownOffers: &v1alpha1.ShownOffers{JSONPath: rt.ShownOffersPath},
		},
	}
	return p
}

// setUpCluster creates the namespace, the policy in DryRun and the offer-service pod, and waits
// for the policy to be programmed.
func (d *demo) setUpCluster(ctx context.Context, res *Result) error {
	d.step("installing the gateways' access: ClusterRole %s and admission policy %s%s", v1alpha1.GatewayClusterRoleName,
		gatewayaccess.NamePrefix, "gateway-pod-report")
	objs, err := gatewayaccess.Objects()
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := d.c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	d.step("creating namespace %s, labelled %s=enabled", Namespace, v1alpha1.InjectionLabel)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace,
		Labels: map[string]string{v1alpha1.InjectionLabel: "enabled"}}}
	if err := d.c.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace: %w", err)
	}
	// The pod's ServiceAccount; this control plane has no controller that makes it.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: Namespace}}
	if err := d.c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ServiceAccount: %w", err)
	}
	first := d.opts.runs[0]
	p := Policy(d.opts.Shape, first.mode, d.opts.Scale)
	first.apply(p, d.opts.Scale, d.opts.Award)
	d.sharedStateSpec(first, p)
	d.step("applying OfferFeedPolicy %s/%s: %s, feed minInterval %s, accept minReactionTime %s, maxAccepts %d per %s, requireShown",
		Namespace, PolicyName, first.describe(d.opts.Scale, d.opts.Award), p.Spec.Feed.MinInterval, *p.Spec.Accept.MinReactionTime,
		*p.Spec.Accept.MaxAccepts, *p.Spec.Accept.Window)
	if err := d.c.Create(ctx, p); err != nil {
		return fmt.Errorf("creating the policy: %w", err)
	}
	d.step("creating the offer-service pod")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "offer-service-0", Namespace: Namespace,
			Labels:      map[string]string{"app": AppLabel},
			Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: "http"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "offer-service", Image: "example.com/offer-service:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
	if err := d.c.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating the pod: %w", err)
	}
	res.InjectedPod, d.pod = pod, pod
	if _, ok := pod.Annotations[v1alpha1.InjectedAnnotation]; !ok {
		return fmt.Errorf("the webhook did not inject the gateway into pod %s", pod.Name)
	}
	d.step("the webhook injected the gateway sidecar; the pod as stored:")
	d.describePod(pod)

	return d.waitProgrammed(ctx, first.mode)
}

// describePod prints the pod's containers as the API server stored them.
func (d *demo) describePod(pod *corev1.Pod) {
	ports := func(c corev1.Container) string {
		out := ""
		for _, p := range c.Ports {
			out += fmt.Sprintf(" %s:%d", p.Name, p.ContainerPort)
		}
		return out
	}
	for _, c := range pod.Spec.InitContainers {
		policy := ""
		if c.RestartPolicy != nil {
			policy = " (native sidecar: restartPolicy " + string(*c.RestartPolicy) + ")"
		}
		fmt.Fprintf(d.opts.Out, "    initContainer %-18s %-16s ports%s%s\n", c.Name, c.Image, ports(c), policy)
	}
	for _, c := range pod.Spec.Containers {
		fmt.Fprintf(d.opts.Out, "    container     %-18s %-16s ports%s\n", c.Name, c.Image, ports(c))
	}
}

// waitWebhook waits until the manager's webhook server accepts TLS connections.
func waitWebhook(ctx context.Context, addr string) error {
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
			&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a readiness probe; nothing is sent
		if err == nil {
			return conn.Close()
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for the webhook server on %s: %w", addr, err)
		}
	}
}

// waitProgrammed waits until the policy is Programmed in the given mode, at its generation.
func (d *demo) waitProgrammed(ctx context.Context, mode v1alpha1.PolicyMode) error {
	start := time.Now()
	return d.pollPolicy(ctx, 50*time.Millisecond, func(p *v1alpha1.OfferFeedPolicy) bool {
		if !meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionProgrammed)) ||
			p.Status.ObservedGeneration != p.Generation || p.Spec.Mode != mode || p.Status.TargetedPods == 0 {
			return false
		}
		d.step("policy is Accepted and Programmed in ConfigMap %s (%s), governing %d pod, after %s", v1alpha1.GatewayConfigMapName,
			shortHash(p.Status.ConfigHash), p.Status.TargetedPods, time.Since(start).Round(time.Millisecond))
		return true
	})
}

// pollPolicy gets the demo's policy every interval until done returns true for it.
func (d *demo) pollPolicy(ctx context.Context, every time.Duration, done func(*v1alpha1.OfferFeedPolicy) bool) error {
	for {
		p := &v1alpha1.OfferFeedPolicy{}
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: PolicyName}, p); err != nil {
			return err
		}
		if done(p) {
			return nil
		}
		if err := sleep(ctx, every); err != nil {
			return err
		}
	}
}

// startServices starts the offer service and the gateway on loopback, the gateway reading the
// ConfigMap through a kubelet-like projection into a directory.
func (d *demo) startServices(ctx context.Context, podLabels map[string]string) error {
	mc := d.marketConfig("", "")
	d.service = market.NewOfferService(mc.ServiceConfig())
	upstream, err := d.serve(ctx, d.service)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "offerfeed-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	proj := &projector{c: d.c, key: client.ObjectKey{Namespace: Namespace, Name: v1alpha1.GatewayConfigMapName}, dir: dir}
	d.wg.Go(func() { proj.run(ctx) })

	u, _ := url.Parse(upstream)
	configFile := filepath.Join(dir, v1alpha1.GatewayConfigKey)
	if d.opts.Replicas > 1 {
		if err := d.startReplicas(ctx, u, podLabels, configFile); err != nil {
			return err
		}
		return d.startPush(ctx) // the first gateway is the pod's; the others stand for its replicas
	}
	_, gwURL, err := d.startGateway(ctx, u, podLabels, configFile, nil)
	if err != nil {
		return err
	}
	d.gwURL = gwURL.String()
	d.step("offer service on %s; gateway on %s reading %s as the kubelet would mount it", upstream, d.gwURL, configFile)
	return d.startPush(ctx)
}

// startPush runs the gateway's push as the sidecar does: a token bound to the pod (the
// projected volume's), the ConfigMap and the pod watched on the API server, the enforced hash
// reported on the pod, which the policy's status counts.
func (d *demo) startPush(ctx context.Context) error {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: d.pod.Name, UID: d.pod.UID}}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: d.pod.Spec.ServiceAccountName, Namespace: Namespace}}
	if err := d.c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return fmt.Errorf("a token bound to pod %s: %w", d.pod.Name, err)
	}
	tokenFile, caFile := filepath.Join(d.dir, "token"), filepath.Join(d.dir, "ca.crt")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(caFile, d.cfg.CAData, 0o600); err != nil {
		return err
	}
	rc, err := push.RESTConfig(d.cfg.Host, tokenFile, caFile)
	if err != nil {
		return err
	}
	d.wg.Go(func() {
		_ = push.Run(ctx, push.Options{Config: rc, Namespace: Namespace, PodName: d.pod.Name, Gateway: d.gws[0],
			Logger: d.opts.Logger.WithName("push")})
	})
	d.step("the gateway also watches ConfigMap %s and its pod on the API server, with a token bound to pod %s, and reports what it enforces on the pod",
		v1alpha1.GatewayConfigMapName, d.pod.Name)
	return nil
}

// startGateway starts a gateway in front of upstream, watching configFile and serving on a
// loopback port, with shared state when shared is set.
func (d *demo) startGateway(ctx context.Context, upstream *url.URL, podLabels map[string]string, configFile string,
	shared *gateway.SharedState) (*gateway.Gateway, *url.URL, error) {
	gw, err := gateway.New(gateway.Options{Upstream: upstream, PodLabels: podLabels, Namespace: Namespace,
		Logger: d.opts.Logger.WithName("gateway").WithValues("replica", len(d.gws)), SharedState: shared})
	if err != nil {
		return nil, nil, err
	}
	d.wg.Go(func() { _ = gw.Watch(ctx, configFile, "") })
	addr, err := d.serve(ctx, gw)
	if err != nil {
		return nil, nil, err
	}
	d.gws = append(d.gws, gw)
	u, _ := url.Parse(addr)
	return gw, u, nil
}

// waitEnforced waits until the policy's status says that every governed pod enforces its
// current generation, as `kubectl wait --for=condition=Enforced` does.
func (d *demo) waitEnforced(ctx context.Context, start time.Time) error {
	return d.pollPolicy(ctx, 20*time.Millisecond, func(p *v1alpha1.OfferFeedPolicy) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionEnforced))
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != p.Generation || p.Status.TargetedPods == 0 {
			return false
		}
		d.step("kubectl wait --for=condition=Enforced returns: every governed pod (%d/%d) enforces %s, %s after the update",
			p.Status.EnforcedPods, p.Status.TargetedPods, shortHash(p.Status.ConfigHash), time.Since(start).Round(time.Millisecond))
		return true
	})
}

// waitGateway waits until the gateway enforces the policy's current config.
func (d *demo) waitGateway(ctx context.Context, mode v1alpha1.PolicyMode) error {
	start := time.Now()
	var st gateway.Status
	err := d.pollPolicy(ctx, 20*time.Millisecond, func(p *v1alpha1.OfferFeedPolicy) bool {
		for _, gw := range d.gws {
			st = gw.Status()
			if st.PolicyHash == "" || st.PolicyHash != p.Status.ConfigHash || st.Mode != string(mode) {
				return false
			}
		}
		who := "gateway enforces"
		if d.opts.Replicas > 1 {
			who = fmt.Sprintf("all %d gateways enforce", len(d.gws))
		}
		d.step("%s policy %s in %s (config generation %d, %s after the update)",
			who, st.Policy, st.Mode, st.Generation, time.Since(start).Round(time.Millisecond))
		return true
	})
	if err != nil {
		return fmt.Errorf("waiting for the gateway to load the config (status %+v): %w", st, err)
	}
	return d.waitEnforced(ctx, start)
}

// update changes the policy's mode and fairness, as `kubectl edit` would, and waits until it
// is programmed.
func (d *demo) update(ctx context.Context, run runSpec) error {
	p := &v1alpha1.OfferFeedPolicy{}
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: PolicyName}, p); err != nil {
		return err
	}
	run.apply(p, d.opts.Scale, d.opts.Award)
	d.sharedStateSpec(run, p)
	if err := d.c.Update(ctx, p); err != nil {
		return fmt.Errorf("updating the policy: %w", err)
	}
	return d.waitProgrammed(ctx, run.mode)
}

func (d *demo) marketConfig(title, runID string) market.Config {
	pol := Policy(d.opts.Shape, v1alpha1.ModeEnforce, d.opts.Scale).Spec
	return market.Config{
		Title: title, BaseURL: d.gwURL, Shape: d.opts.Shape, RunID: runID,
		Humans: d.opts.Humans, Bots: d.opts.Bots, CompliantBots: d.opts.CompliantBots, JitteredBots: d.opts.JitteredBots,
		Policy: market.Policy{
			MinInterval:     mustDuration(pol.Feed.MinInterval),
			MinReactionTime: mustDuration(*pol.Accept.MinReactionTime),
			MaxAccepts:      int(*pol.Accept.MaxAccepts), Window: mustDuration(*pol.Accept.Window),
		},
		Duration: d.opts.Duration, Seed: d.opts.Seed, Scale: d.opts.Scale, Service: d.service,
		Timing: market.Timing{OfferInterval: d.opts.OfferInterval},
	}
}

// summary prints the one-line verdict of each run.
func (d *demo) summary(res *Result) {
	fmt.Fprintln(d.opts.Out, "Offers won by class (share of won offers; fair share = share of drivers)")
	width := 0
	for _, r := range res.Runs {
		width = max(width, len(r.Title))
	}
	for _, r := range res.Runs {
		line := fmt.Sprintf("  %-*s", width, r.Title)
		for _, c := range r.Classes {
			line += fmt.Sprintf("  %s %d (%.0f%%, fair %.0f%%)", c.Class, c.OffersWon, 100*c.Share, 100*c.FairShare)
		}
		fmt.Fprintln(d.opts.Out, line)
	}
}

func writeReport(path string, runs []*market.Report, sections []market.Section) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	if err := market.WriteHTMLSections(f, runs, sections...); err != nil {
		f.Close()
		return fmt.Errorf("writing the chart: %w", err)
	}
	return f.Close()
}

// serve serves h on a loopback port until ctx ends and returns its URL; Run waits for the
// server to shut down.
func (d *demo) serve(ctx context.Context, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	d.wg.Go(func() { _ = srv.Serve(l) })
	d.wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	return "http://" + l.Addr().String(), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func mustDuration(d v1alpha1.Duration) time.Duration {
	v, err := time.ParseDuration(string(d))
	if err != nil {
		panic(err)
	}
	return v
}

func shortHash(h string) string {
	if len(h) > 19 {
		return h[:19] + "…"
	}
	return h
}
