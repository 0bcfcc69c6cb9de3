package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/demo"
	"github.com/offerfeed/offerfeed/internal/market"
)

func init() {
	register("demo", "run a simulated offer market through offerfeed on an embedded control plane", runDemo)
}

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var opts demo.Options
	def := demo.Defaults()
	fs.DurationVar(&opts.Duration, "duration", def.Duration, "how long each market run plays")
	fs.IntVar(&opts.Humans, "humans", def.Humans, "human drivers: poll every 3-6 s, react in 1-3 s")
	fs.IntVar(&opts.Bots, "bots", def.Bots, "bots: poll every 100 ms, accept within 50 ms, ignore Retry-After")
	fs.IntVar(&opts.CompliantBots, "compliant-bots", def.CompliantBots, "bots that obey every limit of the policy exactly; they play in the runs compliant and fair")
	runs := fs.String("runs", strings.Join(demo.RunNames, ","), "the market runs to play, in order: dryrun, enforce (people and raw bots), compliant (Enforce, compliant bots join), fair (Enforce with fair draws, compliant bots play)")
	fs.Uint64Var(&opts.Seed, "seed", def.Seed, "seed of the market's random delays and offers")
	shape := fs.String("shape", string(def.Shape), "offer API shape: rest (GET /offers) or flex (POST /GetOffersForProviderPost)")
	award := fs.String("award", string(def.Award), "award rule of the fair draws: Random or LeastRecentlyWon")
	fs.DurationVar(&opts.OfferInterval, "offer-interval", def.OfferInterval, "time between two offers of the offer service")
	fs.StringVar(&opts.ReportFile, "report", "offerfeed-demo.html", "HTML chart of the runs; empty for none")
	verbose := fs.Bool("v", false, "show the manager's and gateway's logs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts.Shape = market.Shape(*shape)
	opts.Runs = strings.Split(*runs, ",")
	opts.Award = v1alpha1.FairnessAward(*award)
	if opts.Award != v1alpha1.AwardRandom && opts.Award != v1alpha1.AwardLeastRecentlyWon {
		fmt.Fprintf(os.Stderr, "offerfeed demo: --award must be Random or LeastRecentlyWon, not %q\n", *award)
		return 2
	}
	if opts.Shape != market.ShapeREST && opts.Shape != market.ShapeFlex {
		fmt.Fprintf(os.Stderr, "offerfeed demo: --shape must be rest or flex, not %q\n", *shape)
		return 2
	}
	opts.Out = os.Stdout
	level := zapcore.ErrorLevel
	if *verbose {
		level = zapcore.InfoLevel
	}
	opts.Logger = zap.New(zap.WriteTo(os.Stderr), zap.Level(level))
	ctrl.SetLogger(opts.Logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := demo.Run(ctx, opts)
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "offerfeed demo: interrupted; everything it started is stopped")
		return 130
	case err != nil:
		fmt.Fprintf(os.Stderr, "offerfeed demo: %v\n", err)
		return 1
	}
	return 0
}
