// Command offerfeed-demo plays a simulated offer market of people and bots through offerfeed, on
// a control plane it starts (package internal/demo): the manager renders a policy, the webhook
// injects the gateway, and five runs show who wins the offers. `make demo` builds and runs it.
//
// It is a binary of its own so that offerfeed, the production binary, links neither envtest
// nor the market simulator.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/cmd/flagcompat"
	"github.com/offerfeed/offerfeed/internal/demo"
	"github.com/offerfeed/offerfeed/internal/market"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the demo's flags.
type options struct {
	demo.Options
	runs    string
	shape   string
	award   string
	verbose bool
}

// runError is an error of the demo itself, after its flags were taken.
type runError struct{ error }

func (e runError) Unwrap() error { return e.error }

// newCommand returns the demo's command, its flags bound to o.
func newCommand(o *options) *cobra.Command {
	def := demo.Defaults()
	cmd := &cobra.Command{
		Use:   "offerfeed-demo",
		Short: "play a simulated offer market through offerfeed on an embedded control plane",
		Long: `Starts a control plane (kube-apiserver and etcd, as built by make controlplane) with the
CRD and the injection webhook, runs the offerfeed manager in this process, applies a policy,
and plays a market of people and bots through the gateway with the config the operator
rendered, once per run (--runs). Ctrl-C stops everything it started.`,
		Example:           "  offerfeed-demo --duration 30s --humans 20 --bots 5 --runs compliant,fair --award Random\n  offerfeed-demo --replicas 3",
		Args:              cobra.NoArgs,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(cmd.OutOrStdout(), cmd.ErrOrStderr()); err != nil {
				return err
			}
			if _, err := demo.Run(cmd.Context(), o.Options); err != nil {
				return runError{err}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.SetNormalizeFunc(flagcompat.Aliases(map[string]string{"v": "verbose"}))
	fs.DurationVar(&o.Duration, "duration", def.Duration, "how long each market run plays")
	fs.IntVar(&o.Humans, "humans", def.Humans, "human drivers: poll every 2 s or more (4.5 s median, log-normal), react in 1 s or more (1.8 s median, long tail), pause between sessions")
	fs.IntVar(&o.Bots, "bots", def.Bots, "bots: poll every 100 ms, accept within 50 ms, ignore Retry-After")
	fs.IntVar(&o.CompliantBots, "compliant-bots", def.CompliantBots, "bots that obey every limit of the policy exactly; they play in the runs compliant and fair")
	fs.IntVar(&o.JitteredBots, "jittered-bots", def.JitteredBots, "compliant bots with a random jitter on polling and reaction to look human; they play in the run score")
	fs.DurationVar(&o.WarmUp, "warm-up", def.WarmUp, "how long the drivers of the run score play, unrecorded, before it, for the gateway to form their bot scores")
	fs.StringVar(&o.runs, "runs", "", "the market runs to play, in order: dryrun, enforce (people and raw bots), compliant (Enforce, compliant bots join), fair (Enforce with fair draws, compliant bots play), score (Enforce with score-weighted fair draws, a jittered bot joins); default "+strings.Join(demo.RunNames, ",")+", or "+strings.Join(demo.ReplicaRunNames, ",")+" with --replicas above 1")
	fs.Uint64Var(&o.Seed, "seed", def.Seed, "seed of the market's random delays and offers")
	fs.StringVar(&o.shape, "shape", string(def.Shape), "offer API shape: rest (GET /offers) or flex (POST /GetOffersForProviderPost)")
	fs.StringVar(&o.award, "award", string(def.Award), "award rule of the fair draws: Random or LeastRecentlyWon")
	fs.DurationVar(&o.OfferInterval, "offer-interval", def.OfferInterval, "time between two offers of the offer service")
	fs.IntVar(&o.Replicas, "replicas", 1, "gateways in front of the offer service, behind a round-robin front; above 1 each run plays twice, with per-replica state and then with state shared on a Redis server the demo starts (default runs then: "+strings.Join(demo.ReplicaRunNames, ",")+")")
	fs.StringVar(&o.RedisServer, "redis-server", "", "Redis server binary for --replicas above 1; default $"+demo.EnvRedisServer+", then redis-server or valkey-server on PATH")
	fs.StringVar(&o.ReportFile, "report", "offerfeed-demo.html", "HTML chart of the runs; empty for none")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "show the manager's and gateway's logs")
	return cmd
}

// complete checks the flags and sets the rest of the demo's options.
func (o *options) complete(stdout, stderr io.Writer) error {
	o.Shape = market.Shape(o.shape)
	o.Runs = nil // the demo's default, which depends on Replicas
	if o.runs != "" {
		o.Runs = strings.Split(o.runs, ",")
	}
	o.Award = v1alpha1.FairnessAward(o.award)
	if o.Award != v1alpha1.AwardRandom && o.Award != v1alpha1.AwardLeastRecentlyWon {
		return fmt.Errorf("--award must be Random or LeastRecentlyWon, not %q", o.award)
	}
	if o.Shape != market.ShapeREST && o.Shape != market.ShapeFlex {
		return fmt.Errorf("--shape must be rest or flex, not %q", o.shape)
	}
	if o.Replicas < 1 || o.Replicas > demo.MaxReplicas {
		return fmt.Errorf("--replicas must be from 1 to %d, not %d", demo.MaxReplicas, o.Replicas)
	}
	o.Out = stdout
	level := zapcore.ErrorLevel
	if o.verbose {
		level = zapcore.InfoLevel
	}
	o.Logger = zap.New(zap.WriteTo(stderr), zap.Level(level))
	ctrl.SetLogger(o.Logger)
	return nil
}

// run runs the demo's command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand(&options{})
	cmd.SetArgs(flagcompat.GoStyleArgs(cmd.Flags(), args))
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	var failed runError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &failed) && errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "offerfeed-demo: interrupted; everything it started is stopped")
		return exitInterrupted
	case errors.As(err, &failed):
		fmt.Fprintf(stderr, "offerfeed-demo: %v\n", err)
		return exitFailed
	default:
		// An unknown flag or argument, or a bad flag value.
		fmt.Fprintf(stderr, "offerfeed-demo: %v\n\n%s", err, cmd.UsageString())
		return exitUsage
	}
}
