package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/cmd/flagcompat"
	"github.com/offerfeed/offerfeed/internal/market"
)

func TestFlags(t *testing.T) {
	o := &options{}
	cmd := newCommand(o)
	args := []string{"--duration", "30s", "-humans=20", "--bots", "5", "--compliant-bots", "2", "--jittered-bots", "3", "--warm-up", "90s", "--seed", "9", "--shape", "flex",
		"--runs", "enforce,fair", "--award", "Random", "-offer-interval", "2s", "--report", "", "--v", "--replicas", "3",
		"--redis-server", "/opt/redis-server"}
	if err := cmd.ParseFlags(flagcompat.GoStyleArgs(cmd.Flags(), args)); err != nil {
		t.Fatal(err)
	}
	if err := o.complete(io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	d := o.Options
	if d.Duration != 30*time.Second || d.Humans != 20 || d.Bots != 5 || d.CompliantBots != 2 || d.JitteredBots != 3 || d.WarmUp != 90*time.Second || d.Seed != 9 ||
		d.Shape != market.ShapeFlex || !slices.Equal(d.Runs, []string{"enforce", "fair"}) || d.Award != v1alpha1.AwardRandom ||
		d.OfferInterval != 2*time.Second || d.ReportFile != "" || !o.verbose || d.Out == nil || d.Logger.GetSink() == nil ||
		d.Replicas != 3 || d.RedisServer != "/opt/redis-server" {
		t.Errorf("options %+v", o)
	}
}

// TestDefaultRuns: without --runs the demo picks its runs (by --replicas).
func TestDefaultRuns(t *testing.T) {
	o := &options{}
	cmd := newCommand(o)
	if err := cmd.ParseFlags([]string{"--replicas", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := o.complete(io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if o.Runs != nil || o.Replicas != 3 {
		t.Errorf("runs %q, replicas %d; want the demo's default runs", o.Runs, o.Replicas)
	}
}

// TestUsage checks the exit codes of help and of usage errors, which end before the demo starts.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"-h"}, exitOK, "Usage:\n  offerfeed-demo [flags]", ""},
		{[]string{"--help"}, exitOK, "--compliant-bots int", ""},
		{[]string{"--award", "Fastest"}, exitUsage, "", `--award must be Random or LeastRecentlyWon, not "Fastest"`},
		{[]string{"--shape", "soap"}, exitUsage, "", `--shape must be rest or flex, not "soap"`},
		{[]string{"--replicas", "0"}, exitUsage, "", `--replicas must be from 1 to 16, not 0`},
		{[]string{"--replicas", "17"}, exitUsage, "", `--replicas must be from 1 to 16, not 17`},
		{[]string{"--no-such-flag"}, exitUsage, "", "unknown flag: --no-such-flag"},
		{[]string{"--humans", "many"}, exitUsage, "", `invalid argument "many" for "--humans"`},
		{[]string{"extra"}, exitUsage, "", `unknown command "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tc.args, &stdout, &stderr)
		if code != tc.wantCode || !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("offerfeed-demo %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.wantCode, stdout.String(), stderr.String())
		}
		if tc.wantCode == exitUsage && !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("offerfeed-demo %q: no usage on stderr:\n%s", tc.args, stderr.String())
		}
	}
}
